//! Small fd-relative filesystem helpers that never follow symlinks inside
//! the store.

use std::ffi::{CStr, OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, fchmodat, fstatat};
use nix::unistd::{UnlinkatFlags, fsync, unlinkat};

/// Flags to open a directory for use as the base of `*at` calls, refusing
/// to follow a symlink in the last component.
pub(crate) fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// Opens the directory `name` inside `parent` without following symlinks.
pub(crate) fn open_dir_at(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(parent, name, dir_flags(), Mode::empty())
}

/// Opens a directory by path (the store root may itself be reached through
/// symlinks the user set up; everything below it is opened fd-relative).
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// The file type bits of a mode.
pub(crate) fn file_type(mode: u32) -> SFlag {
    SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits())
}

/// Names in a directory, without `.` and `..`.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    // A fresh open file description, so the caller's fd offset is untouched;
    // ownership passes to the DIR stream below.
    let fd = openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?
    .into_raw_fd();
    // SAFETY: `fd` is an open directory descriptor that we own; on success
    // fdopendir takes ownership of it (closedir below closes it).
    let dirp = unsafe { libc::fdopendir(fd) };
    if dirp.is_null() {
        let err = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `fd` is still ours to close.
        unsafe { libc::close(fd) };
        return Err(err);
    }
    let mut names = Vec::new();
    let result = loop {
        #[allow(
            clippy::multiple_unsafe_ops_per_block,
            reason = "writing errno takes libc's errno location and a write through it"
        )]
        // SAFETY: errno is thread-local; clearing it lets us tell the end
        // of the stream (NULL, errno 0) from an error (NULL, errno set).
        unsafe {
            *libc::__errno_location() = 0
        };
        // SAFETY: `dirp` is a valid DIR stream that is only used by this
        // thread and not yet closed.
        let ent = unsafe { libc::readdir64(dirp) };
        if ent.is_null() {
            let err = io::Error::last_os_error();
            break if err.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(err)
            };
        }
        #[allow(
            clippy::multiple_unsafe_ops_per_block,
            reason = "the entry's name is read through the dirent pointer readdir64 returned, under one guarantee"
        )]
        // SAFETY: a non-NULL dirent returned by readdir64 is valid until the
        // next readdir64/closedir call on the stream, and d_name is a
        // NUL-terminated string inside it; we copy it out immediately.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    };
    // SAFETY: `dirp` is valid and closed exactly once, here.
    unsafe { libc::closedir(dirp) };
    result.map(|()| names)
}

/// Removes `name` in `parent` and, if it is a directory, everything below
/// it, never following symlinks. Directories without owner rwx (layers may
/// contain mode 0555 or 0000 directories) are made writable first. A
/// missing entry is not an error.
pub(crate) fn remove_tree_at(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let st = match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if file_type(st.st_mode) != SFlag::S_IFDIR {
        return match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    if st.st_mode & 0o700 != 0o700 {
        fchmodat(
            parent,
            name,
            Mode::from_bits_truncate(0o700),
            FchmodatFlags::NoFollowSymlink,
        )?;
    }
    let dir = open_dir_at(parent, name)?;
    remove_dir_contents(dir.as_fd())?;
    drop(dir);
    match unlinkat(parent, name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes everything inside a directory (see [`remove_tree_at`]).
pub(crate) fn remove_dir_contents(dir: BorrowedFd<'_>) -> io::Result<()> {
    for name in list_dir(dir)? {
        remove_tree_at(dir, &name)?;
    }
    Ok(())
}

/// fsyncs a directory given by path.
pub(crate) fn fsync_dir(path: &Path) -> io::Result<()> {
    let fd = open_dir(path)?;
    fsync(&fd)?;
    Ok(())
}

/// Writes `bytes` to a fresh temporary file in `tmp_dir`, fsyncs it, renames
/// it over `dest` and fsyncs `dest`'s directory: readers see either the old
/// or the new content, never a partial file, even after a crash.
pub(crate) fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = tempfile_in(tmp_dir)?;
    tmp.1.write_all(bytes)?;
    tmp.1.sync_all()?;
    std::fs::rename(&tmp.0, dest)?;
    if let Some(parent) = dest.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Creates a new, uniquely named file in `dir` (mode 0600).
fn tempfile_in(dir: &Path) -> io::Result<(std::path::PathBuf, File)> {
    use std::os::unix::fs::OpenOptionsExt;
    loop {
        let path = dir.join(format!("meta-{}", unique_suffix()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A suffix unique within this machine for the life of the store:
/// pid, time and a per-process counter.
pub(crate) fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn remove_tree_handles_readonly_dirs_and_does_not_follow_symlinks() {
        let base = tempfile::tempdir().unwrap();
        let outside = base.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let t = base.path().join("t");
        std::fs::create_dir_all(t.join("a/b")).unwrap();
        std::fs::write(t.join("a/b/f"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, t.join("a/link")).unwrap();
        std::fs::set_permissions(t.join("a/b"), std::fs::Permissions::from_mode(0o000)).unwrap();
        std::fs::set_permissions(t.join("a"), std::fs::Permissions::from_mode(0o555)).unwrap();
        let base_fd = open_dir(base.path()).unwrap();
        remove_tree_at(base_fd.as_fd(), OsStr::new("t")).unwrap();
        assert!(!t.exists());
        assert!(outside.join("keep").exists());
        // Missing is fine.
        remove_tree_at(base_fd.as_fd(), OsStr::new("t")).unwrap();
    }

    #[test]
    fn write_atomic_replaces_content() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("x.json");
        write_atomic(d.path(), &dest, b"one").unwrap();
        write_atomic(d.path(), &dest, b"two").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
