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
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag, fstat};

use super::error::{ImageError, clip};
use super::tar_stream::{FileAt, Kind as TarKind, TarReader};
use crate::safe_fs::{file_type, open_inside};

/// Longest symlink/hardlink chain followed inside an archive.
const MAX_LINK_HOPS: usize = 16;
/// Most entries of an archive indexed: an OCI archive holds a few files
/// per blob, a `docker save` one a few per layer.
const MAX_ARCHIVE_ENTRIES: usize = 65_536;
/// Longest name (or link target) of an archive entry indexed: blobs are
/// named `blobs/sha256/<64 hex digits>` or `<64 hex digits>/layer.tar`;
/// longer names are left out (nothing refers to them).
const MAX_ARCHIVE_NAME: usize = 512;

enum TarItem {
    File { offset: u64, size: u64 },
    Link(String),
}

enum Kind {
    /// A directory, opened: files are opened below it, following a
    /// symlink only where it stays inside (`docker save` links a layer
    /// stored twice to its first copy).
    Dir(OwnedFd),
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

/// What a file that is not a regular file is, for messages.
fn kind_name(kind: SFlag) -> &'static str {
    match kind {
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFDIR => "a directory",
        _ => "not a regular file",
    }
}

impl Source {
    /// Opens `path`: a directory is used as is; a regular file must be an
    /// uncompressed tar archive and is indexed (not copied). Anything else
    /// (a FIFO, a device) is refused without being read: opened with
    /// `O_NONBLOCK`, so that a FIFO cannot block the import.
    pub(crate) fn open(path: &Path) -> Result<Source, ImageError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(ImageError::io("open image source", path))?;
        let st = fstat(&fd).map_err(ImageError::io("read image source", path))?;
        let invalid = |reason: String| ImageError::InvalidSource {
            path: path.to_owned(),
            reason,
        };
        match file_type(&st) {
            SFlag::S_IFDIR => {
                return Ok(Source {
                    path: path.to_owned(),
                    kind: Kind::Dir(fd),
                });
            }
            SFlag::S_IFREG => {}
            other => {
                return Err(invalid(format!(
                    "neither a directory nor a regular file but {}",
                    kind_name(other)
                )));
            }
        }
        let file = File::from(fd);
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
        let len = u64::try_from(st.st_size).unwrap_or(0);
        let items = index_tar(&file, len)
            .map_err(|e| invalid(format!("not a readable tar archive ({e})")))?;
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
    /// root). Returns `Ok(None)` if it does not exist (or is a directory).
    /// What it returns ends where the file did when it was opened.
    pub(crate) fn open_file(&self, rel: &str) -> Result<Option<Box<dyn Read + '_>>, ImageError> {
        let Some(norm) = normalize(rel).filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        match &self.kind {
            Kind::Dir(root) => self.open_in_dir(root, &norm),
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
                    reason: format!("too many levels of links at {}", clip(rel)),
                })
            }
        }
    }

    /// Opens `rel` below the source directory `root`: never outside it
    /// (a symlink that leads out, to `/dev/zero` say, is refused), and
    /// only a regular file, read no further than its size at opening.
    fn open_in_dir(
        &self,
        root: &OwnedFd,
        rel: &str,
    ) -> Result<Option<Box<dyn Read + '_>>, ImageError> {
        let invalid = |reason: String| ImageError::InvalidSource {
            path: self.path.clone(),
            reason,
        };
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK;
        let fd = match open_inside(root.as_fd(), rel, flags) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
            Err(Errno::EXDEV | Errno::ELOOP) => {
                return Err(invalid(format!(
                    "{} leads out of the image source (through a symlink); only links that stay inside it are followed",
                    clip(rel)
                )));
            }
            Err(e) => return Err(ImageError::io("open", self.path.join(rel))(e)),
        };
        let st = fstat(&fd).map_err(ImageError::io("inspect", self.path.join(rel)))?;
        match file_type(&st) {
            SFlag::S_IFREG => {}
            // A directory is not a blob.
            SFlag::S_IFDIR => return Ok(None),
            other => {
                return Err(invalid(format!(
                    "{} is {}, not a regular file",
                    clip(rel),
                    kind_name(other)
                )));
            }
        }
        let len = u64::try_from(st.st_size).unwrap_or(0);
        Ok(Some(Box::new(File::from(fd).take(len))))
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

/// Indexes the files and links of an archive of `len` bytes, reading its
/// headers only (the reader seeks over the data).
fn index_tar(file: &File, len: u64) -> Result<HashMap<String, TarItem>, String> {
    let mut items = HashMap::new();
    let mut archive = TarReader::new(FileAt::new(file, len));
    while let Some(entry) = archive.next_entry().map_err(|e| e.to_string())? {
        let name = std::str::from_utf8(&entry.path).ok().and_then(normalize);
        let Some(name) = name.filter(|n| n.len() <= MAX_ARCHIVE_NAME) else {
            continue;
        };
        let item = match entry.kind {
            TarKind::Regular => TarItem::File {
                offset: archive.position(),
                size: entry.size,
            },
            TarKind::Symlink | TarKind::Hardlink => {
                let target = std::str::from_utf8(&entry.link).ok();
                let Some(target) = target.filter(|t| t.len() <= MAX_ARCHIVE_NAME) else {
                    continue;
                };
                if entry.kind == TarKind::Hardlink {
                    TarItem::Link(format!("@{target}"))
                } else {
                    TarItem::Link(target.to_owned())
                }
            }
            _ => continue,
        };
        if items.len() >= MAX_ARCHIVE_ENTRIES && !items.contains_key(&name) {
            return Err(format!(
                "it has more than {MAX_ARCHIVE_ENTRIES} files; an image archive has a few per blob"
            ));
        }
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
