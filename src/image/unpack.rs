//! Unpacking one layer into a directory that can serve as an overlayfs
//! lower layer mounted with `userxattr`.
//!
//! Safety rules (a layer is untrusted input):
//! - every path is split into components and resolved one component at a
//!   time with `openat(O_NOFOLLOW | O_DIRECTORY)` from the layer directory,
//!   so nothing is ever created through a symlink and nothing outside the
//!   layer directory is reachable; a leading `/` or `./` is dropped;
//! - entries with a `..` component are refused, as are paths longer than
//!   `PATH_MAX`, entries whose parent is a symlink or a non-directory, and
//!   hardlinks whose target is outside the layer, missing from it (links
//!   may only point to entries earlier in the same layer), a directory or a
//!   special file;
//! - device nodes (other than the 0:0 character device, which is an
//!   overlay whiteout) and FIFOs are refused;
//! - setuid and setgid bits are stripped (the sticky bit is kept);
//! - extended attributes and ownership recorded in the layer are ignored:
//!   files belong to the importing user, and a layer cannot smuggle in
//!   `user.overlay.*` attributes of its own;
//! - existing entries are replaced by unlinking them and creating a new
//!   inode with `O_EXCL`, never by writing through them.
//!
//! OCI whiteouts become overlayfs whiteouts: `.wh.NAME` becomes a 0:0
//! character device `NAME` (unless this layer itself has `NAME`, which then
//! wins, as the spec says), and `.wh..wh..opq` sets
//! `user.overlay.opaque="y"` on its directory. Other `.wh..wh.*` entries
//! are aufs metadata and are skipped.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{
    Mode, SFlag, UtimensatFlags, fchmod, fstatat, futimens, makedev, mkdirat, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{UnlinkatFlags, linkat, symlinkat, unlinkat};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use super::budget::{Budget, Metered, SpaceGuard};
use super::digest::HashingReader;
use super::error::{ImageError, clip, clip_bytes};
use super::oci::Compression;
use super::opaque;
use super::resolve::{LayerRef, check_digest};
use super::tar_stream::{Entry, Kind, Stream, TarError, TarReader};
use crate::safe_fs::{file_type, open_dir_below, remove_tree_at};

/// Longest entry path accepted (Linux `PATH_MAX`).
const MAX_PATH: usize = 4096;
/// Longest path component (Linux `NAME_MAX`).
const MAX_NAME: usize = 255;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";

/// The name of a layer's format, for messages.
fn format_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "tar",
        Compression::Gzip => "tar+gzip",
        Compression::Zstd => "tar+zstd",
    }
}

/// Unpacks `blob` (the layer as stored, possibly compressed) into the empty
/// directory `dest`. While unpacking, the blob is hashed again and the
/// uncompressed stream is hashed; both must match `layer` or the import
/// fails (the caller discards `dest`). Returns the length of the
/// uncompressed stream (what the layer costs unpacked). Every byte of the uncompressed
/// stream is charged to `budget` as it is read, before anything of it is
/// written, and `space` stops the unpacking before the store's filesystem
/// fills up.
pub(crate) fn unpack_layer(
    blob: impl Read,
    layer: &LayerRef,
    (dest, dest_path): (BorrowedFd<'_>, &Path),
    budget: &mut Budget,
    space: &mut SpaceGuard,
) -> Result<u64, ImageError> {
    let layer_name = layer.blob.to_string();
    let format = format_name(layer.compression);
    let limited: Box<dyn Read> = match layer.size {
        Some(s) => Box::new(blob.take(s.saturating_add(1))),
        None => Box::new(blob),
    };
    let mut blob_hr = HashingReader::new(limited);
    let (diff_id, tar_len) = {
        let decompressed: Box<dyn Read + '_> = match layer.compression {
            Compression::None => Box::new(&mut blob_hr),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut blob_hr)),
            Compression::Zstd => Box::new(ZstdReader::new(&mut blob_hr)),
        };
        let diff_hr = HashingReader::new(Metered::new(decompressed, budget));
        let mut archive = TarReader::new(Stream::new(diff_hr));
        let mut unpacker = Unpacker::new(dest, dest_path, layer_name.clone(), format, space);
        let stream_err = |e| stream_error(&layer_name, format, e);
        while let Some(entry) = archive.next_entry().map_err(|e| unpacker.tar_error(e))? {
            unpacker.entry(&entry, &mut archive.data())?;
        }
        unpacker.finish()?;
        let diff_hr = archive.into_inner().into_inner();
        diff_hr.finish().map_err(stream_err)?
    };
    let (actual, blob_len) = blob_hr
        .finish()
        .map_err(|e| stream_error(&layer_name, format, e))?;
    check_digest(&layer.blob, layer.size, &layer.what, &actual, blob_len)?;
    if diff_id != layer.diff_id {
        return Err(ImageError::DiffIdMismatch {
            layer: layer_name,
            expected: layer.diff_id.to_string(),
            actual: diff_id.to_string(),
        });
    }
    Ok(tar_len)
}

/// The error of reading the layer's stream: over the budget, or a stream
/// that is not what its format says.
fn stream_error(layer: &str, format: &'static str, source: io::Error) -> ImageError {
    match Budget::exceeded(&source) {
        Some(e) => e,
        None => ImageError::CorruptLayer {
            layer: layer.to_owned(),
            format,
            source,
        },
    }
}

/// Splits an archive path into safe components. Drops empty and `.`
/// components (so `/a`, `./a` and `a//b/` are normalised); refuses `..`.
pub(crate) fn split_path(raw: &[u8]) -> Result<Vec<OsString>, String> {
    if raw.len() > MAX_PATH {
        return Err(format!("path is longer than {MAX_PATH} bytes"));
    }
    let mut comps = Vec::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                return Err("path has a '..' component, which could escape the layer".into());
            }
            c if c.len() > MAX_NAME => {
                return Err(format!("a path component is longer than {MAX_NAME} bytes"));
            }
            c => comps.push(OsStr::from_bytes(c).to_owned()),
        }
    }
    Ok(comps)
}

fn display(comps: &[OsString]) -> String {
    let joined: Vec<_> = comps.iter().map(|c| c.to_string_lossy()).collect();
    clip(&joined.join("/"))
}

/// The kind of an entry: old (v7) archives mark directories as regular
/// files whose name ends in `/`.
fn content_kind(entry: &Entry) -> Kind {
    if entry.kind == Kind::Regular && entry.path.ends_with(b"/") {
        return Kind::Directory;
    }
    entry.kind
}

/// Layer permission bits as stored: setuid and setgid are stripped.
fn sanitize_mode(mode: u32) -> Mode {
    Mode::from_bits_truncate(mode & 0o1777)
}

fn timespec(secs: u64) -> TimeSpec {
    TimeSpec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0)
}

enum Slot {
    Empty,
    ExistingDir,
}

struct DirMeta {
    mode: u32,
    mtime: Option<u64>,
}

struct Unpacker<'a> {
    root: BorrowedFd<'a>,
    root_path: &'a Path,
    layer: String,
    format: &'static str,
    /// Final mode/mtime of every directory, applied after all entries
    /// (directories are created 0700 so restrictive modes cannot block the
    /// creation of their content).
    dirs: HashMap<Vec<OsString>, DirMeta>,
    buf: Vec<u8>,
    space: &'a mut SpaceGuard,
}

impl<'a> Unpacker<'a> {
    fn new(
        root: BorrowedFd<'a>,
        root_path: &'a Path,
        layer: String,
        format: &'static str,
        space: &'a mut SpaceGuard,
    ) -> Self {
        // The layer root is 0755 unless the layer has an entry for it.
        let dirs = HashMap::from([(
            Vec::new(),
            DirMeta {
                mode: 0o755,
                mtime: None,
            },
        )]);
        Unpacker {
            root,
            root_path,
            layer,
            format,
            dirs,
            buf: vec![0; 128 * 1024],
            space,
        }
    }

    /// The error of a header the tar reader refused or could not read.
    fn tar_error(&self, e: TarError) -> ImageError {
        match e {
            TarError::Io(source) => stream_error(&self.layer, self.format, source),
            TarError::Refused { entry, reason } => ImageError::UnsafeEntry {
                layer: self.layer.clone(),
                entry: entry.map_or_else(|| "(an extension header)".into(), |e| clip_bytes(&e)),
                reason,
            },
        }
    }

    fn refuse(&self, entry: &str, reason: impl Into<String>) -> ImageError {
        ImageError::UnsafeEntry {
            layer: self.layer.clone(),
            entry: entry.to_owned(),
            reason: reason.into(),
        }
    }

    fn io(&self, entry: &str) -> impl FnOnce(io::Error) -> ImageError + use<> {
        let layer = self.layer.clone();
        let entry = entry.to_owned();
        move |source| ImageError::Unpack {
            layer,
            entry,
            source,
        }
    }

    /// For errors reading the archive itself (truncated or undecodable
    /// data, or more than the budget allows).
    fn corrupt(&self) -> impl FnOnce(io::Error) -> ImageError + use<> {
        let layer = self.layer.clone();
        let format = self.format;
        move |source| stream_error(&layer, format, source)
    }

    fn nix(&self, entry: &str) -> impl FnOnce(Errno) -> ImageError + use<> {
        let f = self.io(entry);
        move |e| f(io::Error::from(e))
    }

    /// Opens the directory `comps` below the layer root, one component at a
    /// time without following symlinks. Missing directories are created
    /// (mode decided later) when `create`; otherwise `Ok(None)` is returned.
    fn walk(
        &mut self,
        comps: &[OsString],
        create: bool,
        entry: &str,
    ) -> Result<Option<OwnedFd>, ImageError> {
        let mut made = Vec::new();
        let create = create.then(|| Mode::from_bits_truncate(0o700));
        let names = comps.iter().map(OsString::as_os_str);
        let opened = open_dir_below(self.root, names, create, |i| made.push(i));
        for i in made {
            self.dirs.entry(comps[..=i].to_vec()).or_insert(DirMeta {
                mode: 0o755,
                mtime: None,
            });
        }
        match opened {
            Ok(fd) => Ok(fd),
            Err((i, Errno::ELOOP)) => Err(self.refuse(
                entry,
                format!(
                    "its path goes through the symlink {:?}; following it could escape the layer",
                    display(&comps[..=i])
                ),
            )),
            Err((i, Errno::ENOTDIR)) => Err(self.refuse(
                entry,
                format!(
                    "its path goes through {:?}, which is not a directory",
                    display(&comps[..=i])
                ),
            )),
            Err((_, e)) => Err(self.nix(entry)(e)),
        }
    }

    /// Like `walk(.., true, ..)` but never returns `None`.
    fn parent(&mut self, comps: &[OsString], entry: &str) -> Result<OwnedFd, ImageError> {
        Ok(self
            .walk(comps, true, entry)?
            .expect("walk with create returns a directory"))
    }

    /// Makes room for a new entry `name`: removes whatever is there (a whole
    /// tree for a directory), except a directory when `keep_dir`.
    fn clear_slot(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        keep_dir: bool,
        entry: &str,
    ) -> Result<Slot, ImageError> {
        match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Err(Errno::ENOENT) => Ok(Slot::Empty),
            Err(e) => Err(self.nix(entry)(e)),
            Ok(st) if file_type(&st) == SFlag::S_IFDIR => {
                if keep_dir {
                    Ok(Slot::ExistingDir)
                } else {
                    remove_tree_at(parent, name, Path::new(entry))
                        .map_err(|e| self.io(entry)(e.into()))?;
                    Ok(Slot::Empty)
                }
            }
            Ok(_) => {
                unlinkat(parent, name, UnlinkatFlags::NoRemoveDir).map_err(self.nix(entry))?;
                Ok(Slot::Empty)
            }
        }
    }

    fn entry(&mut self, entry: &Entry, data: &mut impl Read) -> Result<(), ImageError> {
        let shown = clip_bytes(&entry.path);
        let kind = content_kind(entry);
        let comps = split_path(&entry.path).map_err(|r| self.refuse(&shown, r))?;
        self.space.entry()?;
        let (mode, mtime) = (entry.mode, entry.mtime);
        let Some((name, parent_comps)) = comps.split_last() else {
            return self.layer_root(kind, mode, mtime, &shown);
        };
        if self.overlay_entry(&comps, &shown)? {
            return Ok(());
        }
        match kind {
            Kind::Regular => {
                let parent = self.parent(parent_comps, &shown)?;
                self.regular_file(data, parent.as_fd(), name, (mode, mtime), &shown)
            }
            Kind::Directory => self.directory(&comps, mode, mtime, &shown),
            Kind::Symlink => {
                if entry.link.is_empty() {
                    return Err(self.refuse(&shown, "symlink without a target"));
                }
                if entry.link.len() > MAX_PATH {
                    return Err(self.refuse(
                        &shown,
                        format!("its target is longer than {MAX_PATH} bytes"),
                    ));
                }
                let parent = self.parent(parent_comps, &shown)?;
                self.symlink(parent.as_fd(), name, &entry.link, mtime, &shown)
            }
            Kind::Hardlink => {
                if entry.link.is_empty() {
                    return Err(self.refuse(&shown, "hardlink without a target"));
                }
                self.hardlink(&comps, &entry.link, &shown)
            }
            Kind::Char => {
                if entry.device != (0, 0) {
                    return Err(self.refuse(
                        &shown,
                        "character device nodes are not allowed in image layers",
                    ));
                }
                // An overlay-style whiteout stored as such in the tar.
                let parent = self.parent(parent_comps, &shown)?;
                self.clear_slot(parent.as_fd(), name, false, &shown)?;
                self.whiteout(parent.as_fd(), name, &shown)
            }
            Kind::Block => {
                Err(self.refuse(&shown, "block device nodes are not allowed in image layers"))
            }
            Kind::Fifo => Err(self.refuse(
                &shown,
                "FIFOs (named pipes) are not allowed in image layers",
            )),
            Kind::Other(flag) => Err(self.refuse(
                &shown,
                format!("unsupported tar entry type {:?}", flag as char),
            )),
        }
    }

    /// The layer root itself. It keeps owner rwx whatever the layer says:
    /// it must stay writable to be renamed into and out of layers/ (and the
    /// owner is root in the container anyway).
    fn layer_root(
        &mut self,
        kind: Kind,
        mode: u32,
        mtime: Option<u64>,
        shown: &str,
    ) -> Result<(), ImageError> {
        if kind != Kind::Directory {
            return Err(self.refuse(shown, "the layer root can only be a directory"));
        }
        self.dirs.insert(
            Vec::new(),
            DirMeta {
                mode: (mode & 0o1777) | 0o700,
                mtime,
            },
        );
        Ok(())
    }

    /// Handles what overlay and aufs names mean: the opaque marker, a
    /// whiteout, aufs metadata (skipped). `true`: the entry was one of
    /// them, and is done.
    fn overlay_entry(&mut self, comps: &[OsString], shown: &str) -> Result<bool, ImageError> {
        let (name, parent_comps) = comps.split_last().expect("not the layer root");
        let name_b = name.as_bytes();
        if name_b == OPAQUE_MARKER {
            let dir = self.parent(parent_comps, shown)?;
            self.set_opaque(dir.as_fd(), parent_comps, shown)?;
            return Ok(true);
        }
        if comps
            .iter()
            .any(|c| c.as_bytes().starts_with(AUFS_META_PREFIX))
        {
            return Ok(true); // aufs metadata (.wh..wh.plnk, .wh..wh.aufs, ...)
        }
        if parent_comps
            .iter()
            .any(|c| c.as_bytes().starts_with(WHITEOUT_PREFIX))
        {
            return Err(self.refuse(shown, "a whiteout name is used as a directory"));
        }
        let Some(hidden) = name_b.strip_prefix(WHITEOUT_PREFIX) else {
            return Ok(false);
        };
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(self.refuse(shown, "whiteout for an invalid name"));
        }
        let parent = self.parent(parent_comps, shown)?;
        let hidden = OsStr::from_bytes(hidden);
        // Per the OCI spec a whiteout only hides lower layers: if this
        // layer has the entry itself, the entry wins.
        match fstatat(parent.as_fd(), hidden, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(_) => return Ok(true),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(self.nix(shown)(e)),
        }
        self.whiteout(parent.as_fd(), hidden, shown)?;
        Ok(true)
    }

    /// A regular file: a new inode (whatever was there goes), its data,
    /// then its mode and mtime.
    fn regular_file(
        &mut self,
        data: &mut impl Read,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        (mode, mtime): (u32, Option<u64>),
        shown: &str,
    ) -> Result<(), ImageError> {
        self.clear_slot(parent, name, false, shown)?;
        let fd = openat(
            parent,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(self.nix(shown))?;
        let mut file = File::from(fd);
        self.copy_data(data, &mut file, shown)?;
        fchmod(&file, sanitize_mode(mode)).map_err(self.nix(shown))?;
        if let Some(t) = mtime {
            futimens(&file, &timespec(t), &timespec(t)).map_err(self.nix(shown))?;
        }
        Ok(())
    }

    /// A directory: made unless one is there (its mode and mtime are set
    /// at the end, deepest first: see `finish`).
    fn directory(
        &mut self,
        comps: &[OsString],
        mode: u32,
        mtime: Option<u64>,
        shown: &str,
    ) -> Result<(), ImageError> {
        let (name, parent_comps) = comps.split_last().expect("not the layer root");
        let parent = self.parent(parent_comps, shown)?;
        if let Slot::Empty = self.clear_slot(parent.as_fd(), name, true, shown)? {
            mkdirat(
                parent.as_fd(),
                name.as_os_str(),
                Mode::from_bits_truncate(0o700),
            )
            .map_err(self.nix(shown))?;
        }
        self.dirs.insert(
            comps.to_vec(),
            DirMeta {
                mode: mode & 0o1777,
                mtime,
            },
        );
        Ok(())
    }

    /// A symlink, made as it is (never followed).
    fn symlink(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        target: &[u8],
        mtime: Option<u64>,
        shown: &str,
    ) -> Result<(), ImageError> {
        self.clear_slot(parent, name, false, shown)?;
        symlinkat(OsStr::from_bytes(target), parent, name).map_err(self.nix(shown))?;
        if let Some(t) = mtime {
            utimensat(
                parent,
                name,
                &timespec(t),
                &timespec(t),
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(self.nix(shown))?;
        }
        Ok(())
    }

    fn copy_data(
        &mut self,
        src: &mut impl Read,
        dst: &mut File,
        shown: &str,
    ) -> Result<(), ImageError> {
        loop {
            let n = match src.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.corrupt()(e)),
            };
            self.space.wrote(n as u64)?;
            dst.write_all(&self.buf[..n]).map_err(self.io(shown))?;
        }
    }

    fn hardlink(
        &mut self,
        comps: &[OsString],
        target: &[u8],
        shown: &str,
    ) -> Result<(), ImageError> {
        let shown_target = clip_bytes(target);
        let tcomps = split_path(target)
            .map_err(|r| self.refuse(shown, format!("hardlink target {shown_target:?}: {r}")))?;
        let Some((tname, tparent_comps)) = tcomps.split_last() else {
            return Err(self.refuse(shown, "hardlink to the layer root"));
        };
        let missing = |this: &Self| {
            this.refuse(
                shown,
                format!(
                    "hardlink target {shown_target:?} does not exist in this layer (links may only point to files stored earlier in the same layer)"
                ),
            )
        };
        let Some(tparent) = self.walk(tparent_comps, false, shown)? else {
            return Err(missing(self));
        };
        let tst = match fstatat(
            tparent.as_fd(),
            tname.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Err(missing(self)),
            Err(e) => return Err(self.nix(shown)(e)),
        };
        let tkind = file_type(&tst);
        if tkind != SFlag::S_IFREG && tkind != SFlag::S_IFLNK {
            return Err(self.refuse(
                shown,
                format!("hardlink target {shown_target:?} is not a regular file or symlink"),
            ));
        }
        let (name, parent_comps) = comps.split_last().expect("caller checked non-empty");
        let parent = self.parent(parent_comps, shown)?;
        if let Ok(st) = fstatat(
            parent.as_fd(),
            name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) && st.st_dev == tst.st_dev
            && st.st_ino == tst.st_ino
        {
            return Ok(()); // already that file
        }
        self.clear_slot(parent.as_fd(), name, false, shown)?;
        // Flags 0: a symlink target is linked itself, never followed.
        linkat(
            tparent.as_fd(),
            tname.as_os_str(),
            parent.as_fd(),
            name.as_os_str(),
            AtFlags::empty(),
        )
        .map_err(self.nix(shown))
    }

    fn whiteout(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        shown: &str,
    ) -> Result<(), ImageError> {
        match mknodat(parent, name, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)) {
            Ok(()) => Ok(()),
            Err(Errno::EPERM) => Err(self.io(shown)(io::Error::other(
                "cannot create an overlayfs whiteout (character device 0:0): permission denied; unprivileged whiteouts need Linux >= 5.8",
            ))),
            Err(e) => Err(self.nix(shown)(e)),
        }
    }

    fn set_opaque(
        &self,
        dir: BorrowedFd<'_>,
        comps: &[OsString],
        shown: &str,
    ) -> Result<(), ImageError> {
        match opaque::set_opaque(dir) {
            Ok(()) => Ok(()),
            Err(Errno::EOPNOTSUPP) => Err(ImageError::NoUserXattr {
                path: self.root_path.join(display(comps)),
            }),
            Err(e) => Err(self.nix(shown)(e)),
        }
    }

    /// Applies directory modes and mtimes, deepest first (so setting a
    /// child's mtime does not disturb its parent's).
    fn finish(mut self) -> Result<(), ImageError> {
        let mut dirs: Vec<_> = std::mem::take(&mut self.dirs).into_iter().collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
        for (comps, meta) in dirs {
            let shown = display(&comps);
            // A directory replaced later in the layer by a file or symlink
            // is simply gone; walk() refuses symlinks, so skip those errors.
            let fd = match self.walk(&comps, false, &shown) {
                Ok(Some(fd)) => fd,
                Ok(None) | Err(ImageError::UnsafeEntry { .. }) => continue,
                Err(e) => return Err(e),
            };
            fchmod(&fd, sanitize_mode(meta.mode)).map_err(self.nix(&shown))?;
            if let Some(t) = meta.mtime {
                futimens(&fd, &timespec(t), &timespec(t)).map_err(self.nix(&shown))?;
            }
        }
        Ok(())
    }
}

/// A zstd decoder for streams of several frames, skipping skippable frames
/// (zstd:chunked layers use both).
struct ZstdReader<R> {
    src: R,
    dec: FrameDecoder,
    in_frame: bool,
}

impl<R: Read> ZstdReader<R> {
    fn new(src: R) -> Self {
        ZstdReader {
            src,
            dec: FrameDecoder::new(),
            in_frame: false,
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl<R: Read> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                while self.dec.can_collect() == 0 && !self.dec.is_finished() {
                    self.dec
                        .decode_blocks(&mut self.src, BlockDecodingStrategy::UptoBlocks(1))
                        .map_err(io::Error::other)?;
                }
                let n = self.dec.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                if self.dec.is_finished() && self.dec.can_collect() == 0 {
                    self.in_frame = false;
                }
                continue;
            }
            let mut magic = [0u8; 4];
            match read_full(&mut self.src, &mut magic)? {
                0 => return Ok(0),
                4 => {}
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "truncated zstd stream",
                    ));
                }
            }
            let m = u32::from_le_bytes(magic);
            if (0x184D_2A50..=0x184D_2A5F).contains(&m) {
                let mut len = [0u8; 4];
                if read_full(&mut self.src, &mut len)? != 4 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "truncated zstd skippable frame",
                    ));
                }
                let len = u64::from(u32::from_le_bytes(len));
                let skipped = io::copy(&mut (&mut self.src).take(len), &mut io::sink())?;
                if skipped != len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "truncated zstd skippable frame",
                    ));
                }
                continue;
            }
            self.dec
                .reset((&magic[..]).chain(&mut self.src))
                .map_err(io::Error::other)?;
            self.in_frame = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_path_normalises_and_refuses_dotdot() {
        let s = |p: &str| split_path(p.as_bytes()).map(|v| display(&v));
        assert_eq!(s("/usr//bin/./sh").unwrap(), "usr/bin/sh");
        assert_eq!(s("./").unwrap(), "");
        assert!(s("../../x").is_err());
        assert!(s("/a/../b").is_err());
        assert!(s(&"a/".repeat(3000)).is_err());
        assert!(s(&"x".repeat(256)).is_err());
    }

    #[test]
    fn setid_bits_are_stripped_sticky_kept() {
        assert_eq!(sanitize_mode(0o6755).bits(), 0o755);
        assert_eq!(sanitize_mode(0o1777).bits(), 0o1777);
    }

    #[test]
    fn zstd_reader_handles_frames_and_skippable_frames() {
        use ruzstd::encoding::{CompressionLevel, compress_to_vec};
        let a = vec![b'a'; 100_000];
        let b = b"second frame".to_vec();
        let mut stream = compress_to_vec(&a[..], CompressionLevel::Fastest);
        stream.extend_from_slice(&0x184D_2A5Au32.to_le_bytes());
        stream.extend_from_slice(&3u32.to_le_bytes());
        stream.extend_from_slice(b"xyz");
        stream.extend_from_slice(&compress_to_vec(&b[..], CompressionLevel::Fastest));
        let mut out = Vec::new();
        ZstdReader::new(&stream[..]).read_to_end(&mut out).unwrap();
        let mut expected = a;
        expected.extend_from_slice(&b);
        assert_eq!(out, expected);

        let truncated = &stream[..stream.len() - 3];
        assert!(
            ZstdReader::new(truncated)
                .read_to_end(&mut Vec::new())
                .is_err()
        );
    }
}
