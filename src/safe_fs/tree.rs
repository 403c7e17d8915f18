//! Deleting a directory tree without ever following a symlink: a
//! directory is entered only through a descriptor opened below its parent
//! with `O_NOFOLLOW`, everything else is unlinked. The walk keeps its own
//! stack (one open directory per level), so a deep tree cannot overflow
//! the launcher's stack; a depth limit is the caller's choice.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, fchmodat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::{is_dir, list_names, open_beneath, stat_fd};

/// Why a tree could not be removed completely: the directory where it
/// stopped, what failed there, and the errno.
#[derive(Debug, thiserror::Error)]
#[error("cannot remove {} completely: {what}: {}", .path.display(), .errno.desc())]
pub struct RemoveError {
    pub path: PathBuf,
    pub what: String,
    pub errno: Errno,
}

impl From<RemoveError> for std::io::Error {
    fn from(e: RemoveError) -> std::io::Error {
        e.errno.into()
    }
}

/// Gives the owner full access to a directory about to be emptied (a
/// sandbox or a layer may have left it mode 0500 or 0). `pinned` is an
/// `O_PATH` descriptor of the directory itself: the mode is changed
/// through its `/proc/self/fd` link, which names exactly that directory
/// (`fchmod` does not take `O_PATH` descriptors), so no name is resolved
/// again.
pub fn make_accessible(pinned: BorrowedFd<'_>, st: &FileStat) -> Result<(), Errno> {
    if st.st_mode & 0o700 == 0o700 {
        return Ok(());
    }
    let link = format!("/proc/self/fd/{}", pinned.as_raw_fd());
    let mode = Mode::from_bits_truncate((st.st_mode & 0o7777) | 0o700);
    fchmodat(AT_FDCWD, link.as_str(), mode, FchmodatFlags::FollowSymlink)
}

/// Opens a directory for emptying: made accessible, then opened for
/// reading through the checked `O_PATH` descriptor `pinned`.
fn open_to_empty(pinned: OwnedFd) -> Result<OwnedFd, (&'static str, Errno)> {
    let st = stat_fd(pinned.as_fd()).map_err(|e| ("cannot inspect", e))?;
    if !is_dir(&st) {
        return Err(("cannot remove a non-directory as one", Errno::ENOTDIR));
    }
    make_accessible(pinned.as_fd(), &st).map_err(|e| ("cannot change the mode of", e))?;
    open_beneath(
        pinned.as_fd(),
        c".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .map_err(|e| ("cannot open", e))
}

/// Removes `name` in `dir` if it is not a directory (`Ok(None)`, also when
/// it is gone already); a directory is opened for emptying instead.
/// `Err`: what failed, and why.
fn unlink_or_open(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Option<OwnedFd>, (String, Errno)> {
    let unlinked = match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(None),
        // A directory (EPERM is what POSIX allows unlink to say).
        Err(e @ (Errno::EISDIR | Errno::EPERM)) => e,
        Err(e) => return Err((format!("cannot remove {name:?}"), e)),
    };
    let pinned = match open_beneath(dir, name, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()) {
        Ok(fd) => fd,
        // Not a directory after all: unlink's answer says why it stays.
        Err(Errno::ENOTDIR | Errno::ELOOP) => {
            return Err((format!("cannot remove {name:?}"), unlinked));
        }
        Err(e) => return Err((format!("cannot open {name:?}"), e)),
    };
    open_to_empty(pinned)
        .map(Some)
        .map_err(|(what, e)| (format!("{what} {name:?}"), e))
}

/// One directory being emptied: its readable descriptor, its path (for
/// messages), its name in the level above (to remove it once empty), and
/// the names in it still to remove.
struct Level {
    fd: OwnedFd,
    path: PathBuf,
    name: Option<OsString>,
    left: Vec<OsString>,
}

impl Level {
    fn new(fd: OwnedFd, path: PathBuf, name: Option<OsString>) -> Result<Level, RemoveError> {
        match list_names(fd.as_fd()) {
            Ok(left) => Ok(Level {
                fd,
                path,
                name,
                left,
            }),
            Err(errno) => Err(RemoveError {
                path,
                what: "cannot list it".into(),
                errno,
            }),
        }
    }

    fn fail(&self, (what, errno): (String, Errno)) -> RemoveError {
        RemoveError {
            path: self.path.clone(),
            what,
            errno,
        }
    }
}

/// Deletes everything inside the directory `dir` (a readable descriptor,
/// `at` its path for messages), and no deeper than `max_depth` levels
/// below it (`None`: no limit but the descriptors the process may open).
pub fn remove_contents(
    dir: BorrowedFd<'_>,
    at: &Path,
    max_depth: Option<usize>,
) -> Result<(), RemoveError> {
    let top = open_beneath(
        dir,
        c".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .map_err(|errno| RemoveError {
        path: at.to_path_buf(),
        what: "cannot open it".into(),
        errno,
    })?;
    let mut stack = vec![Level::new(top, at.to_path_buf(), None)?];
    while let Some(level) = stack.last_mut() {
        let Some(name) = level.left.pop() else {
            let done = stack.pop().expect("a level is on the stack");
            if let (Some(name), Some(parent)) = (done.name, stack.last()) {
                drop(done.fd);
                rmdir(parent.fd.as_fd(), &name).map_err(|errno| RemoveError {
                    path: parent.path.clone(),
                    what: format!("cannot remove {name:?}"),
                    errno,
                })?;
            }
            continue;
        };
        let sub = match unlink_or_open(level.fd.as_fd(), &name) {
            Ok(None) => continue,
            Ok(Some(sub)) => sub,
            Err(failed) => return Err(level.fail(failed)),
        };
        let path = level.path.join(&name);
        if max_depth.is_some_and(|max| stack.len() > max) {
            return Err(RemoveError {
                path,
                what: "directories nested too deeply".into(),
                errno: Errno::ELOOP,
            });
        }
        stack.push(Level::new(sub, path, Some(name))?);
    }
    Ok(())
}

/// Removes the empty directory `name` in `dir`; gone already is fine.
fn rmdir(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(), Errno> {
    match unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes `name` in `parent` and, if it is a directory, everything below
/// it (see [`remove_contents`]; `at` is `parent`'s path, for messages). A
/// missing entry is not an error.
pub fn remove_tree_at(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    at: &Path,
    max_depth: Option<usize>,
) -> Result<(), RemoveError> {
    let fail = |what: String, errno| RemoveError {
        path: at.to_path_buf(),
        what,
        errno,
    };
    let Some(dir) = unlink_or_open(parent, name).map_err(|(what, e)| fail(what, e))? else {
        return Ok(());
    };
    remove_contents(dir.as_fd(), &at.join(name), max_depth)?;
    drop(dir);
    rmdir(parent, name).map_err(|e| fail(format!("cannot remove {name:?}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safe_fs::open_dir;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_tree_goes_with_its_locked_directories_but_never_through_a_symlink() {
        let base = tempfile::tempdir().unwrap();
        let outside = base.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let t = base.path().join("t");
        std::fs::create_dir_all(t.join("a/b")).unwrap();
        std::fs::write(t.join("a/b/f"), b"x").unwrap();
        symlink(&outside, t.join("a/link")).unwrap();
        chmod(&t.join("a/b"), 0o000);
        chmod(&t.join("a"), 0o555);
        let base_fd = open_dir(base.path()).unwrap();
        remove_tree_at(base_fd.as_fd(), OsStr::new("t"), base.path(), None).unwrap();
        assert!(!t.exists());
        assert!(outside.join("keep").exists());
        // Missing is fine; so is a file.
        remove_tree_at(base_fd.as_fd(), OsStr::new("t"), base.path(), None).unwrap();
        std::fs::write(base.path().join("f"), b"x").unwrap();
        remove_tree_at(base_fd.as_fd(), OsStr::new("f"), base.path(), None).unwrap();
        assert!(!base.path().join("f").exists());
    }

    #[test]
    fn a_tree_deeper_than_asked_stops_with_the_path_where_it_did() {
        let base = tempfile::tempdir().unwrap();
        let deep = base.path().join("a/b/c/d");
        std::fs::create_dir_all(&deep).unwrap();
        let fd = open_dir(base.path()).unwrap();
        let e = remove_contents(fd.as_fd(), base.path(), Some(2)).unwrap_err();
        assert_eq!(e.errno, Errno::ELOOP);
        assert_eq!(e.path, base.path().join("a/b/c"));
        remove_contents(fd.as_fd(), base.path(), Some(4)).unwrap();
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_deep_tree_needs_no_deep_recursion() {
        // Far deeper than a recursive walk on a small thread stack would
        // survive; each level costs a descriptor, not stack frames.
        let base = tempfile::tempdir().unwrap();
        let base_path = base.path().to_path_buf();
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let fd = open_dir(&base_path).unwrap();
                let mut cur = fd.try_clone().unwrap();
                for _ in 0..400 {
                    nix::sys::stat::mkdirat(cur.as_fd(), "d", Mode::from_bits_truncate(0o700))
                        .unwrap();
                    cur = crate::safe_fs::open_dir_at(cur.as_fd(), "d").unwrap();
                }
                drop(cur);
                remove_contents(fd.as_fd(), &base_path, None).unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    }
}
