//! Writing a file whole or not at all: the bytes go to a temporary file,
//! which is then renamed onto the name, so a reader sees the old file or
//! the new one, never a part. The registry publishes its records this way
//! (refusing to replace a name another launch took), the image store its
//! metadata (synced, so that a crash keeps one of the two).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, renameat};
use nix::sys::stat::Mode;
use nix::unistd::{UnlinkatFlags, fsync, linkat, unlinkat};

use super::{Dir, FsError, cstr, io_errno, open_beneath, open_dir};

/// How [`Dir::publish`] puts a file in place.
pub struct Publish<'a> {
    /// The directory of the temporary file (the same filesystem as the
    /// destination), and its name there: a leftover of that name (of a
    /// writer killed before it renamed) is removed first.
    pub tmp_dir: &'a Dir,
    pub tmp_name: &'a str,
    /// Whether an existing file of the name is replaced; if not, it stays
    /// and the answer is [`FsError::Exists`].
    pub replace: bool,
    /// Whether the file and the directory are synced to disk, so that
    /// after a crash the name holds the old file or the new one.
    pub durable: bool,
}

impl Dir {
    /// Writes `bytes` as the file `name` in this directory (mode 0600),
    /// whole or not at all; nothing on the way is a symlink followed.
    pub fn publish(&self, name: &str, bytes: &[u8], how: Publish<'_>) -> Result<(), FsError> {
        let tmp_path = how.tmp_dir.path().join(how.tmp_name);
        let mut file = how.tmp_dir.create_new(how.tmp_name)?;
        let written = file
            .write_all(bytes)
            .and_then(|()| if how.durable { file.sync_all() } else { Ok(()) })
            .map_err(|e| FsError::io("cannot write", &tmp_path, io_errno(&e)));
        drop(file);
        let published = written.and_then(|()| self.rename_from(name, &how));
        if !matches!(published, Ok(Renamed::Moved)) {
            // Linked (the temporary name is left) or failed.
            let _ = unlinkat(how.tmp_dir.fd(), how.tmp_name, UnlinkatFlags::NoRemoveDir);
        }
        published?;
        if how.durable {
            let dir = self.readable()?;
            fsync(&dir).map_err(|e| FsError::io("cannot sync", &self.path, e))?;
        }
        Ok(())
    }

    /// Creates the file `name` here, for writing (mode 0600), replacing a
    /// leftover of that name.
    fn create_new(&self, name: &str) -> Result<std::fs::File, FsError> {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        let create = || open_beneath(self.fd(), name, flags, Mode::from_bits_truncate(0o600));
        let fd = match create() {
            Err(Errno::EEXIST) => {
                let _ = unlinkat(self.fd(), name, UnlinkatFlags::NoRemoveDir);
                create()
            }
            other => other,
        }
        .map_err(|e| FsError::io("cannot create", self.path.join(name), e))?;
        Ok(std::fs::File::from(fd))
    }

    /// Moves the temporary file of `how` onto `name` in this directory.
    fn rename_from(&self, name: &str, how: &Publish<'_>) -> Result<Renamed, FsError> {
        let path = self.path.join(name);
        let failed = |e| FsError::io("cannot write", &path, e);
        let (from, tmp) = (how.tmp_dir.fd(), how.tmp_name);
        if how.replace {
            renameat(from, tmp, self.fd(), name).map_err(failed)?;
            return Ok(Renamed::Moved);
        }
        let (c_tmp, c_name) = (
            cstr(tmp.as_ref()).map_err(failed)?,
            cstr(name.as_ref()).map_err(failed)?,
        );
        let no_replace = crate::sys::renameat2(
            from.as_raw_fd(),
            &c_tmp,
            self.fd().as_raw_fd(),
            &c_name,
            crate::sys::RENAME_NOREPLACE,
        );
        match no_replace {
            Ok(()) => Ok(Renamed::Moved),
            Err(Errno::EEXIST) => Err(FsError::Exists(path)),
            // A filesystem without RENAME_NOREPLACE: link(2) never replaces.
            Err(Errno::EINVAL) => match linkat(from, tmp, self.fd(), name, AtFlags::empty()) {
                Ok(()) => Ok(Renamed::Linked),
                Err(Errno::EEXIST) => Err(FsError::Exists(path)),
                Err(e) => Err(failed(e)),
            },
            Err(e) => Err(failed(e)),
        }
    }
}

/// Where the temporary file of a publication ended up.
enum Renamed {
    /// At the name: nothing is left to remove.
    Moved,
    /// Linked to the name: the temporary name is left to remove.
    Linked,
}

/// Syncs a directory given by path (after renaming into it).
pub fn fsync_dir(path: &Path) -> std::io::Result<()> {
    fsync(open_dir(path)?)?;
    Ok(())
}

/// A suffix unique on this machine for the life of a store: pid, time and
/// a per-process counter (for temporary names).
pub fn unique_suffix() -> String {
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

    fn publish(dir: &Dir, name: &str, bytes: &[u8], replace: bool) -> Result<(), FsError> {
        let how = Publish {
            tmp_dir: dir,
            tmp_name: ".tmp",
            replace,
            durable: replace,
        };
        dir.publish(name, bytes, how)
    }

    #[test]
    fn a_file_is_published_whole_and_replaced_only_when_asked() {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open_existing(d.path()).unwrap();
        publish(&dir, "x.json", b"one", false).unwrap();
        let e = publish(&dir, "x.json", b"two", false).unwrap_err();
        assert!(matches!(e, FsError::Exists(_)), "{e}");
        assert_eq!(std::fs::read(d.path().join("x.json")).unwrap(), b"one");
        publish(&dir, "x.json", b"three", true).unwrap();
        assert_eq!(std::fs::read(d.path().join("x.json")).unwrap(), b"three");
        // No temporary file is left, whatever happened.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        // A leftover temporary file (a writer killed before it renamed)
        // does not stop the next one.
        std::fs::write(d.path().join(".tmp"), b"stale").unwrap();
        publish(&dir, "y.json", b"four", false).unwrap();
        assert_eq!(std::fs::read(d.path().join("y.json")).unwrap(), b"four");
        assert!(!d.path().join(".tmp").exists());
    }

    #[test]
    fn a_symlink_in_place_of_the_temporary_file_is_not_written_through() {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open_existing(d.path()).unwrap();
        std::os::unix::fs::symlink(d.path().join("target"), d.path().join(".tmp")).unwrap();
        publish(&dir, "x.json", b"data", false).unwrap();
        assert!(!d.path().join("target").exists());
        assert_eq!(std::fs::read(d.path().join("x.json")).unwrap(), b"data");
    }
}
