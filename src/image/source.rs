//! Read-only access to the files of an import source: a directory, or an
//! uncompressed tar archive of one (read in place, by offset, without
//! unpacking it anywhere).
//!
//! Paths inside the source come from untrusted JSON (`manifest.json` of a
//! `docker save` archive) or are built from validated digests; they are
//! normalised here and never allowed to climb above the source root.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::ImageError;

/// Longest symlink/hardlink chain followed inside an archive.
const MAX_LINK_HOPS: usize = 16;

enum TarItem {
    File { offset: u64, size: u64 },
    Link(String),
}

enum Kind {
    Dir(PathBuf),
    Tar {
        file: File,
        items: HashMap<String, TarItem>,
    },
}

/// An opened import source.
pub(crate) struct Source {
    path: PathBuf,
    kind: Kind,
}

/// Normalises a relative path inside the source: drops `.` and empty
/// components and a leading `/`; `..` climbs but never above the root.
/// Returns `None` for a path that tries to climb above the root.
pub(crate) fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn parent_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

impl Source {
    /// Opens `path`: a directory is used as is; a regular file must be an
    /// uncompressed tar archive and is indexed (not copied).
    pub(crate) fn open(path: &Path) -> Result<Source, ImageError> {
        let meta = std::fs::metadata(path).map_err(ImageError::io("read image source", path))?;
        if meta.is_dir() {
            return Ok(Source {
                path: path.to_owned(),
                kind: Kind::Dir(path.to_owned()),
            });
        }
        if !meta.is_file() {
            return Err(ImageError::InvalidSource {
                path: path.to_owned(),
                reason: "neither a directory nor a regular file".into(),
            });
        }
        let file = File::open(path).map_err(ImageError::io("open image archive", path))?;
        let mut magic = [0u8; 6];
        let n = file
            .read_at(&mut magic, 0)
            .map_err(ImageError::io("read image archive", path))?;
        let compression = match &magic[..n] {
            [0x1f, 0x8b, ..] => Some("gzip"),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some("zstd"),
            [0xfd, b'7', b'z', b'X', b'Z', 0] => Some("xz"),
            [b'B', b'Z', b'h', ..] => Some("bzip2"),
            _ => None,
        };
        if let Some(compression) = compression {
            return Err(ImageError::CompressedArchive {
                path: path.to_owned(),
                compression,
            });
        }
        let items = index_tar(&file).map_err(|e| ImageError::InvalidSource {
            path: path.to_owned(),
            reason: format!("not a readable tar archive ({e})"),
        })?;
        Ok(Source {
            path: path.to_owned(),
            kind: Kind::Tar { file, items },
        })
    }

    /// The path the source was opened from.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the file at `rel` (a `/`-separated path relative to the source
    /// root). Returns `Ok(None)` if it does not exist.
    pub(crate) fn open_file(&self, rel: &str) -> Result<Option<Box<dyn Read + '_>>, ImageError> {
        let Some(norm) = normalize(rel).filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        match &self.kind {
            Kind::Dir(root) => {
                let full = root.join(&norm);
                match File::open(&full) {
                    Ok(f) => {
                        // A directory opens fine but is not a blob.
                        let is_dir = f.metadata().map(|m| m.is_dir()).unwrap_or(false);
                        if is_dir {
                            return Ok(None);
                        }
                        Ok(Some(Box::new(f)))
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(ImageError::io("open", full)(e)),
                }
            }
            Kind::Tar { file, items } => {
                let mut name = norm;
                for _ in 0..MAX_LINK_HOPS {
                    match items.get(&name) {
                        None => return Ok(None),
                        Some(TarItem::File { offset, size }) => {
                            return Ok(Some(Box::new(RangeReader {
                                file,
                                pos: *offset,
                                end: offset + size,
                            })));
                        }
                        Some(TarItem::Link(target)) => {
                            // Symlink targets are relative to the link's
                            // directory; hardlink targets are stored as
                            // "@root-relative".
                            let joined = match target.strip_prefix('@') {
                                Some(t) => t.to_owned(),
                                None if target.starts_with('/') => target.clone(),
                                None => format!("{}/{}", parent_of(&name), target),
                            };
                            match normalize(&joined) {
                                Some(n) => name = n,
                                None => return Ok(None),
                            }
                        }
                    }
                }
                Err(ImageError::InvalidSource {
                    path: self.path.clone(),
                    reason: format!("too many levels of links at {rel}"),
                })
            }
        }
    }

    /// Reads a small file completely, refusing more than `max` bytes.
    pub(crate) fn read_small(&self, rel: &str, max: u64) -> Result<Option<Vec<u8>>, ImageError> {
        let Some(r) = self.open_file(rel)? else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        r.take(max + 1)
            .read_to_end(&mut buf)
            .map_err(ImageError::io("read", self.path.join(rel)))?;
        if buf.len() as u64 > max {
            return Err(ImageError::malformed(
                rel,
                format!("file is larger than the {max} byte limit"),
            ));
        }
        Ok(Some(buf))
    }
}

fn index_tar(file: &File) -> io::Result<HashMap<String, TarItem>> {
    let mut items = HashMap::new();
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries_with_seek()? {
        let entry = entry?;
        let raw = entry.path_bytes();
        let Some(name) = std::str::from_utf8(&raw).ok().and_then(normalize) else {
            continue;
        };
        let ty = entry.header().entry_type();
        let item = if ty.is_file() || ty == tar::EntryType::Continuous {
            TarItem::File {
                offset: entry.raw_file_position(),
                size: entry.size(),
            }
        } else if ty.is_symlink() || ty.is_hard_link() {
            let Some(target) = entry.link_name_bytes() else {
                continue;
            };
            let Ok(target) = std::str::from_utf8(&target) else {
                continue;
            };
            if ty.is_hard_link() {
                TarItem::Link(format!("@{target}"))
            } else {
                TarItem::Link(target.to_owned())
            }
        } else {
            continue;
        };
        items.insert(name, item);
    }
    Ok(items)
}

/// Reads `[pos, end)` of a file with positional reads.
struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive is truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_clamps_and_refuses_escape() {
        assert_eq!(normalize("./blobs//sha256/x").unwrap(), "blobs/sha256/x");
        assert_eq!(normalize("/a/b/../c").unwrap(), "a/c");
        assert_eq!(normalize("a/../../b"), None);
        assert_eq!(normalize("..").as_deref(), None);
        assert_eq!(normalize("").unwrap(), "");
    }
}
