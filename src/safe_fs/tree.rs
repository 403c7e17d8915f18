//! Deleting a directory tree without ever following a symlink: a
//! directory is entered only through a descriptor opened below its parent
//! with `O_NOFOLLOW`, everything else is unlinked.
//!
//! No depth limit: a sandbox can nest directories as deep as its disk
//! allows, and what it leaves must still go. The walk keeps its own stack
//! (no recursion), one entry a level: the directory's device and inode
//! and its name in the level above. It holds descriptors for at most
//! [`OPEN_LEVELS`] levels: going deeper closes the uppermost, and coming
//! back up reopens it through `..` of the level below, used only if it is
//! the same directory (device and inode) — a directory moved meanwhile
//! stops the removal rather than let it delete elsewhere. Each level's
//! names are read in batches of [`BATCH`] and read again after a
//! subdirectory is done, so that memory does not grow with the width of a
//! directory either.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::{FchmodatFlags, FileStat, Mode, fchmodat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::{is_dir, open_beneath, stat_fd};

/// Levels of a tree held open at once while it is removed.
pub const OPEN_LEVELS: usize = 32;
/// Names of a directory read at a time.
const BATCH: usize = 1024;

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

/// One directory being emptied: its descriptor (unless closed to save
/// descriptors), its device and inode, and its name in the level above.
struct Level {
    fd: Option<OwnedFd>,
    dev: u64,
    ino: u64,
    name: Option<OsString>,
}

impl Level {
    fn new(fd: OwnedFd, name: Option<OsString>) -> Result<Level, Errno> {
        let st = stat_fd(fd.as_fd())?;
        Ok(Level {
            fd: Some(fd),
            dev: st.st_dev,
            ino: st.st_ino,
            name,
        })
    }
}

/// Up to [`BATCH`] names of the directory `dir` (`.` and `..` left out),
/// read from its start through a descriptor of their own.
fn read_batch(dir: BorrowedFd<'_>) -> Result<Vec<OsString>, Errno> {
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
            if names.len() == BATCH {
                break;
            }
        }
    }
    Ok(names)
}

/// The walk of [`remove_contents`]: the levels from the top down, and
/// where the descriptors held start (levels `open..` have theirs).
struct Walk<'a> {
    at: &'a Path,
    stack: Vec<Level>,
    open: usize,
    max_open: usize,
}

impl Walk<'_> {
    /// The path of the deepest level, for messages: the top's path and the
    /// names below it (the middle left out when the tree is deep).
    fn path(&self) -> PathBuf {
        let names: Vec<&OsStr> = self
            .stack
            .iter()
            .filter_map(|l| l.name.as_deref())
            .collect();
        if names.len() <= 8 {
            return names.iter().fold(self.at.to_path_buf(), |p, n| p.join(n));
        }
        let head = names[..3]
            .iter()
            .fold(self.at.to_path_buf(), |p, n| p.join(n));
        let skipped = format!("({} more levels)", names.len() - 6);
        names[names.len() - 3..]
            .iter()
            .fold(head.join(skipped), |p, n| p.join(n))
    }

    fn fail(&self, what: impl Into<String>, errno: Errno) -> RemoveError {
        RemoveError {
            path: self.path(),
            what: what.into(),
            errno,
        }
    }

    fn current(&self) -> BorrowedFd<'_> {
        let level = self.stack.last().expect("a level is on the stack");
        level
            .fd
            .as_ref()
            .expect("the deepest level is open")
            .as_fd()
    }

    /// Goes down into `sub` (named `name` here), closing the uppermost
    /// descriptor held if there are too many.
    fn descend(&mut self, sub: OwnedFd, name: OsString) -> Result<(), RemoveError> {
        let level = Level::new(sub, Some(name)).map_err(|e| self.fail("cannot inspect", e))?;
        self.stack.push(level);
        if self.stack.len() - self.open > self.max_open {
            self.stack[self.open].fd = None;
            self.open += 1;
        }
        Ok(())
    }

    /// The deepest level is empty: goes back up (reopening the level above
    /// through `..` if its descriptor was closed) and removes it. `false`:
    /// it was the top, which stays.
    fn ascend(&mut self) -> Result<bool, RemoveError> {
        if self.stack.len() == 1 {
            return Ok(false);
        }
        let parent_at = self.stack.len() - 2;
        if self.stack[parent_at].fd.is_none() {
            // `..` is never a symlink; where it leads is checked below.
            let up = openat(
                self.current(),
                c"..",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.fail("cannot reopen the directory above", e))?;
            let st = stat_fd(up.as_fd()).map_err(|e| self.fail("cannot inspect", e))?;
            let parent = &self.stack[parent_at];
            if (st.st_dev, st.st_ino) != (parent.dev, parent.ino) {
                return Err(self.fail(
                    "the directory above was moved while it was being removed; nothing was removed there",
                    Errno::ESTALE,
                ));
            }
            self.stack[parent_at].fd = Some(up);
            self.open -= 1;
        }
        let done = self.stack.pop().expect("two levels");
        drop(done.fd);
        let name = done.name.expect("a level below the top has a name");
        rmdir(self.current(), &name)
            .map_err(|e| self.fail(format!("cannot remove {name:?}"), e))?;
        Ok(true)
    }
}

/// Deletes everything inside the directory `dir` (a readable descriptor,
/// `at` its path for messages), however deep.
pub fn remove_contents(dir: BorrowedFd<'_>, at: &Path) -> Result<(), RemoveError> {
    remove_contents_holding(dir, at, OPEN_LEVELS)
}

/// [`remove_contents`], holding at most `max_open` levels open.
fn remove_contents_holding(
    dir: BorrowedFd<'_>,
    at: &Path,
    max_open: usize,
) -> Result<(), RemoveError> {
    let fail = |what: &str, errno| RemoveError {
        path: at.to_path_buf(),
        what: what.into(),
        errno,
    };
    let top = open_beneath(
        dir,
        c".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .map_err(|e| fail("cannot open it", e))?;
    let top = Level::new(top, None).map_err(|e| fail("cannot inspect it", e))?;
    let mut walk = Walk {
        at,
        stack: vec![top],
        open: 0,
        max_open: max_open.max(2),
    };
    'levels: loop {
        let names = read_batch(walk.current()).map_err(|e| walk.fail("cannot list it", e))?;
        if names.is_empty() {
            if walk.ascend()? {
                continue;
            }
            return Ok(());
        }
        for name in names {
            match unlink_or_open(walk.current(), &name) {
                Ok(None) => {}
                Ok(Some(sub)) => {
                    walk.descend(sub, name)?;
                    continue 'levels;
                }
                Err((what, e)) => return Err(walk.fail(what, e)),
            }
        }
    }
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
pub fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsStr, at: &Path) -> Result<(), RemoveError> {
    let fail = |what: String, errno| RemoveError {
        path: at.to_path_buf(),
        what,
        errno,
    };
    let Some(dir) = unlink_or_open(parent, name).map_err(|(what, e)| fail(what, e))? else {
        return Ok(());
    };
    remove_contents(dir.as_fd(), &at.join(name))?;
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
        remove_tree_at(base_fd.as_fd(), OsStr::new("t"), base.path()).unwrap();
        assert!(!t.exists());
        assert!(outside.join("keep").exists());
        // Missing is fine; so is a file.
        remove_tree_at(base_fd.as_fd(), OsStr::new("t"), base.path()).unwrap();
        std::fs::write(base.path().join("f"), b"x").unwrap();
        remove_tree_at(base_fd.as_fd(), OsStr::new("f"), base.path()).unwrap();
        assert!(!base.path().join("f").exists());
    }

    /// `n` directories nested below `base`, each holding a file.
    fn nest(base: &Path, n: usize) {
        let fd = open_dir(base).unwrap();
        let mut cur = fd.try_clone().unwrap();
        for i in 0..n {
            nix::sys::stat::mkdirat(cur.as_fd(), "d", Mode::from_bits_truncate(0o700)).unwrap();
            let f = openat(
                cur.as_fd(),
                format!("f{i}").as_str(),
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .unwrap();
            drop(f);
            cur = crate::safe_fs::open_dir_at(cur.as_fd(), "d").unwrap();
        }
    }

    #[test]
    fn levels_above_the_open_ones_are_reopened_through_dotdot() {
        let base = tempfile::tempdir().unwrap();
        nest(base.path(), 50);
        let fd = open_dir(base.path()).unwrap();
        remove_contents_holding(fd.as_fd(), base.path(), 3).unwrap();
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_directory_moved_during_the_removal_stops_it() {
        // The level above the deepest open one is swapped for another
        // directory: coming back up through `..` finds the wrong inode.
        let base = tempfile::tempdir().unwrap();
        nest(base.path(), 6);
        let fd = open_dir(base.path()).unwrap();
        let mut walk = Walk {
            at: base.path(),
            stack: vec![Level::new(open_dir(base.path()).unwrap(), None).unwrap()],
            open: 0,
            max_open: 2,
        };
        for _ in 0..3 {
            let sub = crate::safe_fs::open_dir_at(walk.current(), "d").unwrap();
            walk.descend(sub, "d".into()).unwrap();
        }
        assert!(
            walk.stack[1].fd.is_none(),
            "the uppermost levels were closed"
        );
        std::fs::rename(base.path().join("d/d"), base.path().join("elsewhere")).unwrap();
        std::fs::create_dir(base.path().join("d/d")).unwrap();
        // Empty the deepest level, then go up twice: the second time the
        // level above is reopened through `..`, and is not the one walked.
        remove_contents(walk.current(), base.path()).unwrap();
        assert!(walk.ascend().unwrap());
        let e = walk.ascend().unwrap_err();
        assert_eq!(e.errno, Errno::ESTALE, "{e}");
        drop(fd);
    }

    #[test]
    fn messages_name_a_deep_path_with_its_middle_left_out() {
        let base = Path::new("/store/.tmp/x");
        let walk = Walk {
            at: base,
            stack: (0..20)
                .map(|i| Level {
                    fd: None,
                    dev: 0,
                    ino: 0,
                    name: (i > 0).then(|| OsString::from(format!("n{i}"))),
                })
                .collect(),
            open: 0,
            max_open: 2,
        };
        assert_eq!(
            walk.path(),
            Path::new("/store/.tmp/x/n1/n2/n3/(13 more levels)/n17/n18/n19")
        );
    }

    #[test]
    fn a_deep_tree_needs_no_deep_recursion() {
        // Far deeper than a recursive walk on a small thread stack would
        // survive, or than descriptors would last if each level kept one.
        let base = tempfile::tempdir().unwrap();
        let base_path = base.path().to_path_buf();
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let fd = open_dir(&base_path).unwrap();
                let mut cur = fd.try_clone().unwrap();
                for _ in 0..1100 {
                    nix::sys::stat::mkdirat(cur.as_fd(), "d", Mode::from_bits_truncate(0o700))
                        .unwrap();
                    cur = crate::safe_fs::open_dir_at(cur.as_fd(), "d").unwrap();
                }
                drop(cur);
                remove_contents(fd.as_fd(), &base_path).unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
    }
}
