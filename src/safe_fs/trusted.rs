//! Walks from `/`: to a directory a sandbox writes to
//! ([`open_dir_for_writing`]), and to a configuration file
//! ([`open_trusted_file`]). Both refuse what another user could have
//! changed on the way.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, mkdirat};

use super::{Dir, FsError, Require, file_type, lstat_at, open_beneath, stat_fd};

/// Most symlinks followed on the way to one directory (as the kernel's
/// own limit for a path walk).
const MAX_LINKS: usize = 40;

impl Dir {
    fn root() -> Result<Dir, FsError> {
        Dir::open_existing(Path::new("/"))
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
        .map_err(|errno| FsError::io("cannot open", &path, errno))?;
        Ok(Dir { fd, path })
    }
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
        let fd = match open_beneath(cur.fd(), name.as_os_str(), OFlag::O_PATH, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if create && !made => {
                match mkdirat(cur.fd(), name.as_os_str(), Mode::from_bits_truncate(0o700)) {
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
    match lstat_at(dir.as_fd(), name) {
        Ok(now) if now.st_dev == st.st_dev && now.st_ino == st.st_ino => {}
        Ok(_) | Err(_) => return Err(io("cannot open", path, Errno::ESTALE)),
    }
    Ok(Some(std::fs::File::from(file)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::AtFlags;
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
    fn a_file_on_the_way_to_a_directory_is_refused() {
        let d = scratch();
        std::fs::write(d.path().join("f"), "").unwrap();
        let e = open_dir_for_writing(&d.path().join("f/state"), me(), true).unwrap_err();
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
