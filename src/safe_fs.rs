//! Opening the host's files and directories for the launcher (the parent
//! side) so that nobody but the caller and root can have put there what
//! hutch uses, and a planted symlink never redirects it.
//!
//! - [`Dir::sub`] and [`Dir::open_file`] open one component below an open
//!   directory, never following a symlink (`openat2` with
//!   `RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS`, or `O_NOFOLLOW` where openat2 is
//!   missing), create what is missing with a mode of the caller's choosing,
//!   and check the owner (and with [`Require::writable_only_by`] the mode).
//! - [`open_dir_for_writing`] opens a directory given by absolute path for a
//!   sandbox to write into: it walks from `/` one component at a time, and
//!   refuses any directory on the way that another user could change
//!   (owned by another non-root user, or writable by group or others
//!   without the sticky bit) and any symlink on the way not owned by root.
//! - [`Dir::pin`] keeps a checked directory open (`O_PATH`) and records its
//!   canonical path, device and inode: the child, which cannot use the
//!   launcher's descriptor for mounts, opens the path again without
//!   following symlinks and uses it only if it is the same inode (see
//!   `sys::open_pinned_dir`).
//! - [`open_trusted_file`] reads a configuration file only from a directory
//!   and file that the caller or root alone can write.
//!
//! The child side (between clone and exec) has its own allocation-free
//! functions in `sys`.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, mkdirat};

/// Most symlinks followed on the way to one directory (as the kernel's
/// own limit for a path walk).
const MAX_LINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
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

/// What a directory or file hutch opens must satisfy.
#[derive(Debug, Clone, Copy)]
pub struct Require {
    uid: u32,
    /// Group and others may not write to it either.
    sole_writer: bool,
}

impl Require {
    /// Owned by `uid`.
    pub fn owned_by(uid: u32) -> Require {
        Require {
            uid,
            sole_writer: false,
        }
    }

    /// Owned by `uid`, and no group or other write permission.
    pub fn writable_only_by(uid: u32) -> Require {
        Require {
            uid,
            sole_writer: true,
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
        if self.sole_writer && st.st_mode & 0o022 != 0 {
            return Err(FsError::WritableByOthers {
                path: path.to_path_buf(),
                mode: st.st_mode & 0o7777,
            });
        }
        Ok(())
    }
}

/// The type bits of a mode.
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
pub fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> Result<FileStat, Errno> {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

/// Opens the single component `name` below `dir` without following a
/// symlink, whatever the kernel. With `O_PATH`, a symlink is opened itself
/// (callers reject it by type); without, it fails with `ELOOP`.
pub fn open_beneath(
    dir: BorrowedFd<'_>,
    name: &CStr,
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
            // A concurrent rename could have made the walk unsafe: again.
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
            Err(errno) => Err(FsError::Io {
                what: "cannot open",
                path: path.to_path_buf(),
                errno,
            }),
        }
    }

    fn root() -> Result<Dir, FsError> {
        Dir::open_configured(Path::new("/"))?.ok_or(FsError::Io {
            what: "cannot open",
            path: PathBuf::from("/"),
            errno: Errno::ENOENT,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stat(&self) -> Result<FileStat, FsError> {
        stat_fd(self.fd()).map_err(|errno| FsError::Io {
            what: "cannot inspect",
            path: self.path.clone(),
            errno,
        })
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
        let c = cstr(OsStr::new(name)).map_err(|errno| FsError::Io {
            what: "cannot open",
            path: path.clone(),
            errno,
        })?;
        let mut made = false;
        loop {
            match open_beneath(self.fd(), &c, OFlag::O_PATH, Mode::empty()) {
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
                    match mkdirat(self.fd(), c.as_c_str(), Mode::from_bits_truncate(mode)) {
                        Ok(()) | Err(Errno::EEXIST) => made = true,
                        Err(errno) => {
                            return Err(FsError::Io {
                                what: "cannot create",
                                path,
                                errno,
                            });
                        }
                    }
                }
                // Where openat2 refuses what the walk would cross.
                Err(Errno::ELOOP) | Err(Errno::EXDEV) => return Err(FsError::Symlink(path)),
                Err(errno) => {
                    return Err(FsError::Io {
                        what: "cannot open",
                        path,
                        errno,
                    });
                }
            }
        }
    }

    /// Opens (creating it with `create_mode` if missing) the regular file
    /// `name` below this directory for reading and writing, without
    /// following a symlink; it must belong to `uid`.
    pub fn open_file(&self, name: &str, create_mode: u32, uid: u32) -> Result<OwnedFd, FsError> {
        let path = self.path.join(name);
        let io = |what, errno| FsError::Io {
            what,
            path: path.clone(),
            errno,
        };
        let c = cstr(OsStr::new(name)).map_err(|e| io("cannot open", e))?;
        // O_NONBLOCK: a FIFO planted there must not block the launch.
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NONBLOCK;
        let fd = match open_beneath(self.fd(), &c, flags, Mode::from_bits_truncate(create_mode)) {
            Ok(fd) => fd,
            Err(Errno::ELOOP) | Err(Errno::EXDEV) => return Err(FsError::Symlink(path)),
            Err(errno) => return Err(io("cannot open", errno)),
        };
        let st = stat_fd(fd.as_fd()).map_err(|e| io("cannot inspect", e))?;
        if file_type(&st) != SFlag::S_IFREG {
            return Err(FsError::NotAFile(path));
        }
        Require::owned_by(uid).check(&st, &path)?;
        Ok(fd)
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
        .map_err(|errno| FsError::Io {
            what: "cannot read",
            path: self.path.clone(),
            errno,
        })
    }

    /// Keeps this directory for a child to find again (see [`Pinned`]).
    pub fn pin(self) -> Result<Pinned, FsError> {
        let st = self.stat()?;
        let path = fd_path(self.fd()).map_err(|errno| FsError::Io {
            what: "cannot inspect",
            path: self.path.clone(),
            errno,
        })?;
        Ok(Pinned {
            path,
            dev: st.st_dev,
            ino: st.st_ino,
            _fd: self.fd,
        })
    }

    /// The directory `..` of this one, with the path it is known by.
    fn parent(&self) -> Result<Dir, FsError> {
        let mut path = self.path.clone();
        path.pop();
        let fd = openat(
            self.fd(),
            c"..",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| FsError::Io {
            what: "cannot open",
            path: path.clone(),
            errno,
        })?;
        Ok(Dir { fd, path })
    }
}

/// The canonical path of an open descriptor, as the kernel names it.
pub fn fd_path(fd: BorrowedFd<'_>) -> Result<PathBuf, Errno> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))
}

/// A directory the launcher has checked, held open (`O_PATH`) so that its
/// inode, and so its number, cannot be reused while the sandbox starts.
#[derive(Debug)]
pub struct Pinned {
    /// Its path without symlinks, for the child to open again.
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    _fd: OwnedFd,
}

/// The absolute `path` as components to walk: `..` kept (symlink targets
/// have them), `.` and repeated slashes dropped.
fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Refuses a directory on the way to one a sandbox writes to that another
/// user could change: one of theirs (root and the caller are trusted), or
/// one they may write to without the sticky bit (which keeps them from
/// renaming what they do not own, as in `/tmp`).
fn check_ancestor(dir: &Dir, uid: u32) -> Result<(), FsError> {
    let st = dir.stat()?;
    if st.st_uid != 0 && st.st_uid != uid {
        return Err(FsError::ForeignParent {
            path: dir.path.clone(),
            owner: st.st_uid,
        });
    }
    if st.st_mode & 0o022 != 0 && st.st_mode & libc::S_ISVTX == 0 {
        return Err(FsError::OpenParent {
            path: dir.path.clone(),
            mode: st.st_mode & 0o7777,
        });
    }
    Ok(())
}

/// Walks from `/` to the directory `path`, one component at a time, each
/// checked by [`check_ancestor`]; follows only symlinks owned by root
/// (system layout links such as `/var/run → ../run`). Missing directories
/// are made (mode 0700) when `create`.
fn walk_trusted(path: &Path, uid: u32, create: bool) -> Result<Dir, FsError> {
    let mut cur = Dir::root()?;
    check_ancestor(&cur, uid)?;
    // A stack: the next component last.
    let mut pending = components(path);
    pending.reverse();
    let mut links = 0;
    let mut made = false;
    while let Some(name) = pending.pop() {
        if name == ".." {
            cur = cur.parent()?;
            check_ancestor(&cur, uid)?;
            continue;
        }
        let next = cur.path.join(&name);
        let io = |what, errno| FsError::Io {
            what,
            path: next.clone(),
            errno,
        };
        let c = cstr(&name).map_err(|e| io("cannot open", e))?;
        let fd = match open_beneath(cur.fd(), &c, OFlag::O_PATH, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if create && !made => {
                match mkdirat(cur.fd(), c.as_c_str(), Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(errno) => return Err(io("cannot create", errno)),
                }
                made = true;
                pending.push(name);
                continue;
            }
            Err(errno) => return Err(io("cannot open", errno)),
        };
        made = false;
        let st = stat_fd(fd.as_fd()).map_err(|e| io("cannot inspect", e))?;
        match file_type(&st) {
            SFlag::S_IFDIR => {
                cur = Dir { fd, path: next };
                check_ancestor(&cur, uid)?;
            }
            SFlag::S_IFLNK if st.st_uid == 0 => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(FsError::TooManyLinks(path.to_path_buf()));
                }
                // Read through the descriptor: the very link just checked.
                let target = readlinkat(fd.as_fd(), c"").map_err(|e| io("cannot read", e))?;
                let target = PathBuf::from(OsString::from_vec(target.into_vec()));
                if target.is_absolute() {
                    cur = Dir::root()?;
                    check_ancestor(&cur, uid)?;
                }
                pending.extend(components(&target).into_iter().rev());
            }
            SFlag::S_IFLNK => {
                return Err(FsError::ForeignSymlink {
                    path: next,
                    owner: st.st_uid,
                });
            }
            _ => return Err(FsError::NotADirectory(next)),
        }
    }
    Ok(cur)
}

/// Opens the directory `path` (absolute, its last component not `..`)
/// for a sandbox to write into, on behalf of `uid`, creating it (mode
/// 0700, and what is missing above it) when `create`. It must be `uid`'s,
/// not writable by group or others, and not a symlink; above it, see
/// [`walk_trusted`]. Nothing on the way can then be replaced by another
/// user while hutch uses it.
pub fn open_dir_for_writing(path: &Path, uid: u32, create: bool) -> Result<Dir, FsError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(FsError::NotADirectory(path.to_path_buf()));
    };
    let parent = walk_trusted(parent, uid, create)?;
    let name = name.to_str().ok_or_else(|| FsError::Io {
        what: "cannot open",
        path: path.to_path_buf(),
        errno: Errno::EINVAL,
    })?;
    parent
        .sub(
            name,
            create.then_some(0o700),
            Require::writable_only_by(uid),
        )?
        .ok_or_else(|| FsError::Io {
            what: "cannot open",
            path: path.to_path_buf(),
            errno: Errno::ENOENT,
        })
}

/// Why a configuration file was refused by [`open_trusted_file`].
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{what} {}: {}", .path.display(), .errno.desc())]
    Io {
        what: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error("{} is a symlink", .0.display())]
    Symlink(PathBuf),
    #[error("{} is not a regular file", .0.display())]
    NotAFile(PathBuf),
    /// `path` (the file or its directory) may be written by someone other
    /// than the caller and root.
    #[error(
        "{} (owner uid {owner}, mode {mode:04o}) can be written by other users",
        .path.display()
    )]
    Untrusted {
        path: PathBuf,
        owner: u32,
        mode: u32,
    },
}

/// Whether only `uid` and root can write to what `st` describes: owned by
/// one of them, no group or other write permission (the sticky bit does
/// not help: anyone may add a file to a sticky directory).
fn trusted(st: &FileStat, uid: u32) -> bool {
    (st.st_uid == uid || st.st_uid == 0) && st.st_mode & 0o022 == 0
}

fn untrusted(path: &Path, st: &FileStat) -> TrustError {
    TrustError::Untrusted {
        path: path.to_path_buf(),
        owner: st.st_uid,
        mode: st.st_mode & 0o7777,
    }
}

/// Opens the configuration file `path` for reading, if it exists, only
/// when nobody but `uid` and root can have written it: the file and its
/// directory are checked (see [`trusted`]), and the file is not opened
/// through a symlink. `Ok(None)`: there is no such file (one failed
/// `open`, the usual case, costs nothing more).
pub fn open_trusted_file(path: &Path, uid: u32) -> Result<Option<std::fs::File>, TrustError> {
    let io = |what, path: &Path, errno| TrustError::Io {
        what,
        path: path.to_path_buf(),
        errno,
    };
    // O_NONBLOCK: a FIFO must not block before it is refused.
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let file = match nix::fcntl::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => return Ok(None),
        Err(Errno::ELOOP) => return Err(TrustError::Symlink(path.to_path_buf())),
        Err(errno) => return Err(io("cannot open", path, errno)),
    };
    let st = stat_fd(file.as_fd()).map_err(|e| io("cannot inspect", path, e))?;
    if file_type(&st) != SFlag::S_IFREG {
        return Err(TrustError::NotAFile(path.to_path_buf()));
    }
    if !trusted(&st, uid) {
        return Err(untrusted(path, &st));
    }
    let (Some(dir_path), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io("cannot open", path, Errno::EINVAL));
    };
    let dir_path = if dir_path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir_path
    };
    let dir = nix::fcntl::open(
        dir_path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("cannot open", dir_path, e))?;
    let dst = stat_fd(dir.as_fd()).map_err(|e| io("cannot inspect", dir_path, e))?;
    if !trusted(&dst, uid) {
        return Err(untrusted(dir_path, &dst));
    }
    // The file opened is the one in the directory checked (its path may
    // have led elsewhere meanwhile).
    let c = cstr(name).map_err(|e| io("cannot open", path, e))?;
    match lstat_at(dir.as_fd(), &c) {
        Ok(now) if now.st_dev == st.st_dev && now.st_ino == st.st_ino => {}
        Ok(_) | Err(_) => return Err(io("cannot open", path, Errno::ESTALE)),
    }
    Ok(Some(std::fs::File::from(file)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn me() -> u32 {
        nix::unistd::getuid().as_raw()
    }

    /// A 0700 scratch directory; its parents (/tmp) are root's and sticky.
    fn scratch() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        chmod(d.path(), 0o700);
        d
    }

    #[test]
    fn a_directory_to_write_to_is_created_and_reopened() {
        let d = scratch();
        let target = d.path().join("a/b/state");
        let dir = open_dir_for_writing(&target, me(), true).unwrap();
        assert_eq!(dir.path(), target);
        assert!(target.is_dir());
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let again = open_dir_for_writing(&target, me(), false).unwrap();
        let pinned = again.pin().unwrap();
        assert_eq!(pinned.path, std::fs::canonicalize(&target).unwrap());
    }

    #[test]
    fn a_symlinked_directory_to_write_to_is_refused() {
        let d = scratch();
        std::fs::create_dir(d.path().join("real")).unwrap();
        symlink(d.path().join("real"), d.path().join("link")).unwrap();
        let e = open_dir_for_writing(&d.path().join("link"), me(), true).unwrap_err();
        assert!(matches!(e, FsError::Symlink(_)), "{e}");
        // A symlink of the caller's above it is refused too (only root's
        // system links are followed).
        let r = open_dir_for_writing(&d.path().join("link/state"), me(), true);
        if me() == 0 {
            // root owns the link: followed.
            r.unwrap();
            assert!(d.path().join("real/state").is_dir());
        } else {
            let e = r.unwrap_err();
            assert!(matches!(e, FsError::ForeignSymlink { .. }), "{e}");
        }
    }

    #[test]
    fn roots_symlinks_above_are_followed_relative_and_absolute() {
        // Needs the links to be root's: as root only.
        if me() != 0 {
            return;
        }
        let d = scratch();
        std::fs::create_dir_all(d.path().join("x/real")).unwrap();
        symlink("../x/real", d.path().join("x/rel")).unwrap();
        symlink(d.path().join("x/real"), d.path().join("abs")).unwrap();
        for via in ["x/rel", "abs"] {
            let dir = open_dir_for_writing(&d.path().join(via).join("s"), 0, true).unwrap();
            let pinned = dir.pin().unwrap();
            assert_eq!(pinned.path, d.path().join("x/real/s"), "{via}");
        }
    }

    #[test]
    fn a_directory_others_may_write_to_is_refused_on_the_way_and_at_the_end() {
        let d = scratch();
        let open = d.path().join("open");
        std::fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        let e = open_dir_for_writing(&open.join("state"), me(), true).unwrap_err();
        assert!(matches!(e, FsError::OpenParent { mode: 0o777, .. }), "{e}");
        assert!(!open.join("state").exists());
        // With the sticky bit, others cannot rename what is not theirs.
        chmod(&open, 0o1777);
        open_dir_for_writing(&open.join("state"), me(), true).unwrap();
        // The directory itself must be the caller's alone.
        chmod(&open.join("state"), 0o770);
        let e = open_dir_for_writing(&open.join("state"), me(), true).unwrap_err();
        assert!(matches!(e, FsError::WritableByOthers { .. }), "{e}");
    }

    #[test]
    fn anothers_directory_or_symlink_on_the_way_is_refused() {
        let d = scratch();
        let theirs = d.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        symlink(&theirs, d.path().join("link")).unwrap();
        // As root, give them to another user; else the caller's own link
        // stands for one that is not root's.
        let other = if me() == 0 {
            let uid = Some(nix::unistd::Uid::from_raw(12345));
            nix::unistd::chown(&theirs, uid, None).unwrap();
            nix::unistd::fchownat(
                nix::fcntl::AT_FDCWD,
                &d.path().join("link"),
                uid,
                None,
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .unwrap();
            12345
        } else {
            me()
        };
        let e = open_dir_for_writing(&d.path().join("link/state"), me(), true).unwrap_err();
        assert!(
            matches!(e, FsError::ForeignSymlink { owner, .. } if owner == other),
            "{e}"
        );
        if me() == 0 {
            let e = open_dir_for_writing(&theirs.join("state"), 0, true).unwrap_err();
            assert!(
                matches!(e, FsError::ForeignParent { owner: 12345, .. }),
                "{e}"
            );
            assert!(!theirs.join("state").exists());
        }
    }

    #[test]
    fn a_file_where_a_directory_should_be_is_refused() {
        let d = scratch();
        std::fs::write(d.path().join("f"), "").unwrap();
        let e = open_dir_for_writing(&d.path().join("f/state"), me(), true).unwrap_err();
        assert!(matches!(e, FsError::NotADirectory(_)), "{e}");
        let dir = Dir::open_configured(d.path()).unwrap().unwrap();
        let e = dir.open_file("f", 0o600, me() + 1).unwrap_err();
        assert!(matches!(e, FsError::NotYours { .. }), "{e}");
        symlink("f", d.path().join("l")).unwrap();
        let e = dir.open_file("l", 0o600, me()).unwrap_err();
        assert!(matches!(e, FsError::Symlink(_)), "{e}");
        let e = dir.sub("f", None, Require::owned_by(me())).unwrap_err();
        assert!(matches!(e, FsError::NotADirectory(_)), "{e}");
    }

    #[test]
    fn a_trusted_file_is_read_and_others_are_refused() {
        let d = scratch();
        let f = d.path().join("app.local.toml");
        assert!(open_trusted_file(&f, me()).unwrap().is_none());
        std::fs::write(&f, "x").unwrap();
        chmod(&f, 0o644);
        assert!(open_trusted_file(&f, me()).unwrap().is_some());
        chmod(&f, 0o664);
        let e = open_trusted_file(&f, me()).unwrap_err();
        assert!(
            matches!(e, TrustError::Untrusted { mode: 0o664, .. }),
            "{e}"
        );
        chmod(&f, 0o644);
        chmod(d.path(), 0o1777);
        let e = open_trusted_file(&f, me()).unwrap_err();
        assert!(
            matches!(&e, TrustError::Untrusted { path, mode: 0o1777, .. } if path == d.path()),
            "{e}"
        );
        chmod(d.path(), 0o700);
        let l = d.path().join("link.local.toml");
        symlink(&f, &l).unwrap();
        let e = open_trusted_file(&l, me()).unwrap_err();
        assert!(matches!(e, TrustError::Symlink(_)), "{e}");
        // Owned by someone else: only the caller's and root's are trusted.
        let other = if me() == 0 {
            nix::unistd::chown(&f, Some(nix::unistd::Uid::from_raw(12345)), None).unwrap();
            0
        } else {
            me() + 1
        };
        let e = open_trusted_file(&f, other).unwrap_err();
        assert!(matches!(e, TrustError::Untrusted { .. }), "{e}");
        nix::unistd::mkfifo(&d.path().join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        let e = open_trusted_file(&d.path().join("fifo"), me()).unwrap_err();
        assert!(matches!(e, TrustError::NotAFile(_)), "{e}");
    }
}
