//! The launcher's (parent side's) one way of opening the host's files and
//! directories: relative to a directory already open, one component at a
//! time, never following a symlink, and checking who owns what it finds,
//! so that nobody but the caller and root can have put there what hutch
//! uses, and a planted symlink never redirects it. Every store (volumes,
//! registry, images) and the OCI exporter go through it; nix makes the
//! system calls.
//!
//! - Primitives on descriptors: [`open_beneath`] (one component, no
//!   symlink: `openat2` with `RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS`, or
//!   `O_NOFOLLOW` where openat2 is missing), [`open_dir_at`],
//!   [`open_dir_below`] (several components, creating what is missing),
//!   [`lstat_at`], [`list_names`].
//! - [`Dir`]: a checked directory. [`Dir::sub`] and [`Dir::open_file`]
//!   open one component below it, create what is missing with a mode of
//!   the caller's choosing, and check the owner (and with [`Require`] the
//!   mode); [`Dir::read_file`] reads a file of the caller's;
//!   [`Dir::publish`] writes one whole or not at all ([`write`]);
//!   [`Dir::pin`] keeps a directory for the child to find again (see
//!   [`Pinned`]).
//! - [`tree`]: deleting a directory tree without following symlinks, with
//!   an explicit stack rather than recursion.
//! - [`trusted`]: walking an absolute path from `/` for a directory a
//!   sandbox writes to ([`open_dir_for_writing`]), and reading a
//!   configuration file only the caller or root can have written
//!   ([`open_trusted_file`]).
//!
//! The child side (between clone and exec, allocation-free) has its own
//! walker in `child::resolve`.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, mkdirat};

pub mod tree;
pub mod trusted;
pub mod write;

pub use tree::{RemoveError, remove_contents, remove_tree_at};
pub use trusted::{TrustError, open_dir_for_writing, open_trusted_file};
pub use write::{Publish, fsync_dir, unique_suffix};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// A system call on `path` failed: the one I/O error of the stores.
    #[error("{what} {}: {}", .path.display(), .errno.desc())]
    Io {
        what: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error(
        "{} is a symlink; hutch never follows symlinks here (one planted there could make a sandbox read or write elsewhere): inspect it and remove it",
        .0.display()
    )]
    Symlink(PathBuf),
    #[error("{} is not a directory: inspect it and move it away", .0.display())]
    NotADirectory(PathBuf),
    #[error("{} is not a regular file: inspect it and move it away", .0.display())]
    NotAFile(PathBuf),
    #[error("{} exists already", .0.display())]
    Exists(PathBuf),
    #[error(
        "{} belongs to uid {owner}, not to you (uid {uid}): another user may have put it there, and hutch only uses what you own here; inspect it and remove it",
        .path.display()
    )]
    NotYours { path: PathBuf, owner: u32, uid: u32 },
    #[error(
        "{} has mode {mode:04o}: other users may write to it; run `chmod go-w {}` if that is not meant",
        .path.display(), .path.display()
    )]
    WritableByOthers { path: PathBuf, mode: u32 },
    #[error(
        "{} has mode {mode:04o}: other users may enter it; run `chmod 700 {}`",
        .path.display(), .path.display()
    )]
    NotPrivate { path: PathBuf, mode: u32 },
    #[error(
        "{} is a symlink owned by uid {owner}; on the way to a directory a sandbox writes to, hutch follows only root's symlinks: write the path without it (`realpath` shows it)",
        .path.display()
    )]
    ForeignSymlink { path: PathBuf, owner: u32 },
    #[error(
        "{} belongs to uid {owner}, who could replace what is inside it",
        .path.display()
    )]
    ForeignParent { path: PathBuf, owner: u32 },
    #[error(
        "{} has mode {mode:04o}: other users may write to it without the sticky bit, so any of them could replace what is inside it",
        .path.display()
    )]
    OpenParent { path: PathBuf, mode: u32 },
    #[error("too many symlinks on the way to {}", .0.display())]
    TooManyLinks(PathBuf),
}

impl FsError {
    /// The error of a failed system call on `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, errno: Errno) -> FsError {
        FsError::Io {
            what,
            path: path.into(),
            errno,
        }
    }
}

impl From<FsError> for std::io::Error {
    /// The errno of a failed system call; any other refusal as its message.
    fn from(e: FsError) -> std::io::Error {
        match e {
            FsError::Io { errno, .. } => errno.into(),
            other => std::io::Error::other(other.to_string()),
        }
    }
}

/// What a directory or file hutch opens must satisfy: whose it is, and
/// what others may do with it.
#[derive(Debug, Clone, Copy)]
pub struct Require {
    uid: u32,
    others: Others,
}

/// What group and others may do with a directory or file.
#[derive(Debug, Clone, Copy)]
enum Others {
    Anything,
    NoWriting,
    Nothing,
}

impl Require {
    /// Owned by `uid`.
    pub fn owned_by(uid: u32) -> Require {
        Require {
            uid,
            others: Others::Anything,
        }
    }

    /// Owned by `uid`, and no group or other write permission.
    pub fn writable_only_by(uid: u32) -> Require {
        Require {
            uid,
            others: Others::NoWriting,
        }
    }

    /// Owned by `uid`, and no permission at all for group or others.
    pub fn private_to(uid: u32) -> Require {
        Require {
            uid,
            others: Others::Nothing,
        }
    }

    fn check(self, st: &FileStat, path: &Path) -> Result<(), FsError> {
        if st.st_uid != self.uid {
            return Err(FsError::NotYours {
                path: path.to_path_buf(),
                owner: st.st_uid,
                uid: self.uid,
            });
        }
        let (path, mode) = (path.to_path_buf(), st.st_mode & 0o7777);
        match self.others {
            Others::NoWriting if mode & 0o022 != 0 => Err(FsError::WritableByOthers { path, mode }),
            Others::Nothing if mode & 0o077 != 0 => Err(FsError::NotPrivate { path, mode }),
            _ => Ok(()),
        }
    }
}

/// The type bits of a file's mode.
pub fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

pub fn is_dir(st: &FileStat) -> bool {
    file_type(st) == SFlag::S_IFDIR
}

pub fn stat_fd(fd: BorrowedFd<'_>) -> Result<FileStat, Errno> {
    fstat(fd)
}

/// The status of `name` in `dir`, not following a symlink.
pub fn lstat_at<P: ?Sized + nix::NixPath>(
    dir: BorrowedFd<'_>,
    name: &P,
) -> Result<FileStat, Errno> {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

/// Opens the single component `name` below `dir` without following a
/// symlink, whatever the kernel. With `O_PATH`, a symlink is opened itself
/// (callers reject it by type); without, it fails with `ELOOP`.
pub fn open_beneath<P: ?Sized + nix::NixPath>(
    dir: BorrowedFd<'_>,
    name: &P,
    flags: OFlag,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let how = OpenHow::new().flags(flags).mode(mode).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    );
    loop {
        match openat2(dir, name, how) {
            // A concurrent rename could have let the walk escape: again.
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            // No openat2 (or a seccomp policy around hutch refuses it):
            // `name` is one component, so O_NOFOLLOW alone keeps the walk
            // from following a symlink.
            Err(Errno::ENOSYS) | Err(Errno::EPERM) => break,
            other => return other,
        }
    }
    openat(dir, name, flags, mode)
}

/// Opens the relative `path` below `dir`, following a symlink only where
/// it stays below `dir` (`openat2` with `RESOLVE_BENEATH`: an absolute
/// target or one that climbs out is `EXDEV`; a magic link `ELOOP`). For a
/// tree someone else laid out (an image layout), where links between its
/// own files are normal but nothing may lead elsewhere. Where openat2 is
/// missing, no symlink is followed at all (each component is opened with
/// `O_NOFOLLOW`). A `..` component is `EXDEV`.
pub fn open_inside(dir: BorrowedFd<'_>, path: &str, flags: OFlag) -> Result<OwnedFd, Errno> {
    let flags = flags | OFlag::O_CLOEXEC;
    let how = OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    loop {
        match openat2(dir, path, how) {
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            Err(Errno::ENOSYS) | Err(Errno::EPERM) => break,
            other => return other,
        }
    }
    let mut parts = path.split('/').filter(|c| !c.is_empty() && *c != ".");
    let last = parts.next_back().ok_or(Errno::ENOENT)?;
    if last == ".." {
        return Err(Errno::EXDEV);
    }
    let dirs: Vec<&OsStr> = parts.map(OsStr::new).collect();
    if dirs.iter().any(|c| *c == "..") {
        return Err(Errno::EXDEV);
    }
    let parent = open_dir_below(dir, dirs, None, |_| {})
        .map_err(|(_, e)| e)?
        .ok_or(Errno::ENOENT)?;
    openat(
        parent.as_fd(),
        last,
        flags | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
}

/// Opens the directory `name` inside `parent` for reading and as the base
/// of `*at` calls, refusing a symlink or anything else that is not a
/// directory (`ENOTDIR`: `O_DIRECTORY` is checked before `O_NOFOLLOW`).
pub fn open_dir_at<P: ?Sized + nix::NixPath>(
    parent: BorrowedFd<'_>,
    name: &P,
) -> Result<OwnedFd, Errno> {
    openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Opens a directory by path, following symlinks: for a place the user
/// configured (a store's root); everything below it is opened
/// fd-relative.
pub fn open_dir(path: &Path) -> Result<OwnedFd, Errno> {
    nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Opens the directory `components` below `dir`, one component at a time
/// with [`open_dir_at`] (so never through a symlink). A missing directory
/// is made with `create`'s mode, and `made(i)` told that component `i` was
/// made; without `create`, `Ok(None)`. No components: `dir` itself, again.
/// `Err((i, errno))`: component `i` could not be opened (`ELOOP`: it is a
/// symlink; `ENOTDIR`: not a directory) or made; a `..` is `EINVAL`.
pub fn open_dir_below<'a>(
    dir: BorrowedFd<'_>,
    components: impl IntoIterator<Item = &'a OsStr>,
    create: Option<Mode>,
    mut made: impl FnMut(usize),
) -> Result<Option<OwnedFd>, (usize, Errno)> {
    let mut cur = dir.try_clone_to_owned().map_err(|e| (0, io_errno(&e)))?;
    for (i, name) in components.into_iter().enumerate() {
        if name == ".." {
            return Err((i, Errno::EINVAL));
        }
        cur = match (open_dir_at(cur.as_fd(), name), create) {
            (Ok(fd), _) => fd,
            (Err(Errno::ENOENT), Some(mode)) => {
                match mkdirat(cur.as_fd(), name, mode) {
                    Ok(()) => made(i),
                    Err(Errno::EEXIST) => {}
                    Err(errno) => return Err((i, errno)),
                }
                open_dir_at(cur.as_fd(), name).map_err(|errno| (i, errno))?
            }
            (Err(Errno::ENOENT), None) => return Ok(None),
            (Err(Errno::ENOTDIR), _) => {
                let link =
                    lstat_at(cur.as_fd(), name).is_ok_and(|st| file_type(&st) == SFlag::S_IFLNK);
                return Err((i, if link { Errno::ELOOP } else { Errno::ENOTDIR }));
            }
            (Err(errno), _) => return Err((i, errno)),
        };
    }
    Ok(Some(cur))
}

/// The names in a directory (`.` and `..` left out), read through a
/// descriptor of its own, so that `dir` (which may be `O_PATH`) and its
/// offset are left as they are.
pub fn list_names(dir: BorrowedFd<'_>) -> Result<Vec<OsString>, Errno> {
    let fd = openat(
        dir,
        c".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut stream = nix::dir::Dir::from_fd(fd)?;
    let mut names = Vec::new();
    for entry in stream.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(names)
}

/// The errno an `io::Error` of a system call carries.
fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

fn cstr(name: &OsStr) -> Result<CString, Errno> {
    CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)
}

/// A directory opened safely (an `O_PATH` descriptor), and its path for
/// messages.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens the directory `path` following symlinks: for a directory the
    /// user names in their own configuration (such as `$XDG_DATA_HOME`).
    /// `Ok(None)`: it does not exist.
    pub fn open_configured(path: &Path) -> Result<Option<Dir>, FsError> {
        match nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: path.to_path_buf(),
            })),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(FsError::io("cannot open", path, errno)),
        }
    }

    /// [`Dir::open_configured`], for a directory that must exist.
    pub fn open_existing(path: &Path) -> Result<Dir, FsError> {
        Dir::open_configured(path)?.ok_or_else(|| FsError::io("cannot open", path, Errno::ENOENT))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stat(&self) -> Result<FileStat, FsError> {
        stat_fd(self.fd()).map_err(|errno| FsError::io("cannot inspect", &self.path, errno))
    }

    /// Opens the directory `name` below this one (and if it is missing and
    /// `create` gives a mode, makes it): no symlink followed, a directory,
    /// as `require` says. `Ok(None)`: it does not exist and `create` is
    /// `None`.
    pub fn sub(
        &self,
        name: &str,
        create: Option<u32>,
        require: Require,
    ) -> Result<Option<Dir>, FsError> {
        let path = self.path.join(name);
        let mut made = false;
        loop {
            match open_beneath(self.fd(), name, OFlag::O_PATH, Mode::empty()) {
                Ok(fd) => {
                    let dir = Dir { fd, path };
                    let st = dir.stat()?;
                    match file_type(&st) {
                        SFlag::S_IFDIR => {}
                        SFlag::S_IFLNK => return Err(FsError::Symlink(dir.path)),
                        _ => return Err(FsError::NotADirectory(dir.path)),
                    }
                    require.check(&st, &dir.path)?;
                    return Ok(Some(dir));
                }
                Err(Errno::ENOENT) => {
                    let Some(mode) = create.filter(|_| !made) else {
                        return Ok(None);
                    };
                    match mkdirat(self.fd(), name, Mode::from_bits_truncate(mode)) {
                        Ok(()) | Err(Errno::EEXIST) => made = true,
                        Err(errno) => return Err(FsError::io("cannot create", path, errno)),
                    }
                }
                // Where openat2 refuses what the walk would cross.
                Err(Errno::ELOOP) | Err(Errno::EXDEV) => return Err(FsError::Symlink(path)),
                Err(errno) => return Err(FsError::io("cannot open", path, errno)),
            }
        }
    }

    /// Opens `name` below this directory with `flags` (and `O_NONBLOCK`: a
    /// FIFO planted there must not block the launch), without following a
    /// symlink; it must be a regular file belonging to `uid`.
    fn regular_file(
        &self,
        name: &str,
        flags: OFlag,
        mode: u32,
        uid: u32,
    ) -> Result<OwnedFd, FsError> {
        let path = self.path.join(name);
        let flags = flags | OFlag::O_NONBLOCK;
        let fd = match open_beneath(self.fd(), name, flags, Mode::from_bits_truncate(mode)) {
            Ok(fd) => fd,
            Err(Errno::ELOOP) | Err(Errno::EXDEV) => return Err(FsError::Symlink(path)),
            Err(errno) => return Err(FsError::io("cannot open", path, errno)),
        };
        let st = stat_fd(fd.as_fd()).map_err(|e| FsError::io("cannot inspect", &path, e))?;
        if file_type(&st) != SFlag::S_IFREG {
            return Err(FsError::NotAFile(path));
        }
        Require::owned_by(uid).check(&st, &path)?;
        Ok(fd)
    }

    /// Opens (creating it with `create_mode` if missing) the regular file
    /// `name` below this directory for reading and writing, without
    /// following a symlink; it must belong to `uid`.
    pub fn open_file(&self, name: &str, create_mode: u32, uid: u32) -> Result<OwnedFd, FsError> {
        self.regular_file(name, OFlag::O_RDWR | OFlag::O_CREAT, create_mode, uid)
    }

    /// Reads the regular file `name` below this directory, which must
    /// belong to `uid`, without following a symlink. `Ok(None)`: there is
    /// no such file.
    pub fn read_file(&self, name: &str, uid: u32) -> Result<Option<Vec<u8>>, FsError> {
        let fd = match self.regular_file(name, OFlag::O_RDONLY, 0, uid) {
            Ok(fd) => fd,
            Err(FsError::Io {
                errno: Errno::ENOENT,
                ..
            }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut bytes)
            .map_err(|e| FsError::io("cannot read", self.path.join(name), io_errno(&e)))?;
        Ok(Some(bytes))
    }

    /// Removes the file `name` below this directory (not a directory).
    pub fn unlink(&self, name: &str) -> Result<(), FsError> {
        nix::unistd::unlinkat(self.fd(), name, nix::unistd::UnlinkatFlags::NoRemoveDir)
            .map_err(|errno| FsError::io("cannot remove", self.path.join(name), errno))
    }

    /// A descriptor of this directory that can be read (listed), changed
    /// and flocked, opened through the pinned one (no path walked again).
    pub fn readable(&self) -> Result<OwnedFd, FsError> {
        open_beneath(
            self.fd(),
            c".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .map_err(|errno| FsError::io("cannot read", &self.path, errno))
    }

    /// The names in this directory (see [`list_names`]).
    pub fn names(&self) -> Result<Vec<OsString>, FsError> {
        list_names(self.fd()).map_err(|errno| FsError::io("cannot list", &self.path, errno))
    }

    /// Keeps this directory for a child to find again (see [`Pinned`]).
    pub fn pin(self) -> Result<Pinned, FsError> {
        let st = self.stat()?;
        let path =
            fd_path(self.fd()).map_err(|errno| FsError::io("cannot inspect", &self.path, errno))?;
        Ok(Pinned {
            path,
            dev: st.st_dev,
            ino: st.st_ino,
            _fd: self.fd,
        })
    }
}

/// The canonical path of an open descriptor, as the kernel names it.
pub fn fd_path(fd: BorrowedFd<'_>) -> Result<PathBuf, Errno> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|e| io_errno(&e))
}

/// A directory the launcher has checked, held open (`O_PATH`) so that its
/// inode, and so its number, cannot be reused while the sandbox starts.
/// The child, whose mount namespace is a copy of the host's, cannot mount
/// the launcher's descriptor (the kernel refuses to clone a mount of
/// another namespace): it opens `path` again without following symlinks
/// and uses it only if it is the same inode (`child::resolve::
/// open_pinned_dir`).
#[derive(Debug)]
pub struct Pinned {
    /// Its path without symlinks, for the child to open again.
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    _fd: OwnedFd,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn me() -> u32 {
        nix::unistd::getuid().as_raw()
    }

    #[test]
    fn a_file_where_a_directory_should_be_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), "").unwrap();
        let dir = Dir::open_existing(d.path()).unwrap();
        let e = dir.open_file("f", 0o600, me() + 1).unwrap_err();
        assert!(matches!(e, FsError::NotYours { .. }), "{e}");
        symlink("f", d.path().join("l")).unwrap();
        let e = dir.open_file("l", 0o600, me()).unwrap_err();
        assert!(matches!(e, FsError::Symlink(_)), "{e}");
        let e = dir.read_file("l", me()).unwrap_err();
        assert!(matches!(e, FsError::Symlink(_)), "{e}");
        let e = dir.sub("f", None, Require::owned_by(me())).unwrap_err();
        assert!(matches!(e, FsError::NotADirectory(_)), "{e}");
    }

    #[test]
    fn a_private_directory_is_the_callers_alone() {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open_existing(d.path()).unwrap();
        let made = dir.sub("p", Some(0o700), Require::private_to(me()));
        assert!(made.unwrap().is_some());
        std::fs::set_permissions(d.path().join("p"), std::fs::Permissions::from_mode(0o711))
            .unwrap();
        let e = dir.sub("p", None, Require::private_to(me())).unwrap_err();
        assert!(matches!(e, FsError::NotPrivate { mode: 0o711, .. }), "{e}");
        // Group write is what writable_only_by refuses; entering is fine.
        dir.sub("p", None, Require::writable_only_by(me())).unwrap();
        std::fs::set_permissions(d.path().join("p"), std::fs::Permissions::from_mode(0o770))
            .unwrap();
        let e = dir
            .sub("p", None, Require::writable_only_by(me()))
            .unwrap_err();
        assert!(matches!(e, FsError::WritableByOthers { .. }), "{e}");
    }

    #[test]
    fn a_file_is_read_only_if_it_is_the_callers() {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open_existing(d.path()).unwrap();
        assert_eq!(dir.read_file("r", me()).unwrap(), None);
        std::fs::write(d.path().join("r"), "text").unwrap();
        assert_eq!(dir.read_file("r", me()).unwrap().unwrap(), b"text");
        let e = dir.read_file("r", me() + 1).unwrap_err();
        assert!(matches!(e, FsError::NotYours { .. }), "{e}");
        nix::unistd::mkfifo(&d.path().join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let e = dir.read_file("fifo", me()).unwrap_err();
        assert!(matches!(e, FsError::NotAFile(_)), "{e}");
        dir.unlink("r").unwrap();
        assert_eq!(dir.read_file("r", me()).unwrap(), None);
    }

    #[test]
    fn directories_below_are_opened_without_symlinks_and_made_when_asked() {
        let d = tempfile::tempdir().unwrap();
        let root = open_dir(d.path()).unwrap();
        let comps = |s: &'static str| s.split('/').map(OsStr::new).collect::<Vec<_>>();
        assert!(
            open_dir_below(root.as_fd(), comps("a/b"), None, |_| {})
                .unwrap()
                .is_none()
        );
        let mut made = Vec::new();
        let mode = Some(Mode::from_bits_truncate(0o755));
        open_dir_below(root.as_fd(), comps("a/b"), mode, |i| made.push(i)).unwrap();
        assert_eq!(made, [0, 1]);
        assert!(d.path().join("a/b").is_dir());
        symlink("a", d.path().join("l")).unwrap();
        let e = open_dir_below(root.as_fd(), comps("l/b"), mode, |_| {}).unwrap_err();
        assert_eq!(e, (0, Errno::ELOOP));
        let e = open_dir_below(root.as_fd(), comps("a/../a"), mode, |_| {}).unwrap_err();
        assert_eq!(e, (1, Errno::EINVAL));
        let mut names = list_names(root.as_fd()).unwrap();
        names.sort();
        assert_eq!(names, [OsString::from("a"), OsString::from("l")]);
    }
}
