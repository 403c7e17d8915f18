//! Finding programs in `PATH`, and telling hutch's shims apart from them by
//! what they are — the device and inode of the file a name leads to, which
//! for every shim is hutch's own executable — never by what they are
//! called or where they live. A shim directory anywhere in `PATH`, a second
//! one, a hard link of hutch: all are skipped, so a shim can never find
//! itself.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{FileStat, SFlag, stat};

/// The `PATH` of a process without one, as the C library's `execvp` uses
/// (`confstr(_CS_PATH)` on glibc and musl).
pub const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// A file's identity: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    fn of(st: &FileStat) -> FileId {
        FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

/// hutch's own executable, as the kernel knows it (not by the name it was
/// started with, which a shim changes).
pub fn own_id() -> Result<FileId, Errno> {
    stat("/proc/self/exe").map(|st| FileId::of(&st))
}

/// The absolute path of hutch's own executable, for a shim to point to.
pub fn own_path() -> Result<PathBuf, Errno> {
    let path = std::fs::read_link("/proc/self/exe")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    // The kernel appends " (deleted)" when the file was replaced since
    // hutch started (an upgrade): that name leads nowhere.
    if !path.is_absolute() || path.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(Errno::ENOENT);
    }
    Ok(path)
}

/// The identity of the file `path` leads to (following symlinks), if it
/// is a regular file someone may execute.
pub fn executable_id(path: &Path) -> Option<FileId> {
    let st = stat(path).ok()?;
    let regular = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG;
    (regular && st.st_mode & 0o111 != 0).then(|| FileId::of(&st))
}

/// The identity of a directory (following symlinks).
pub fn dir_id(path: &Path) -> Option<FileId> {
    stat(path).ok().map(|st| FileId::of(&st))
}

/// Whether two directory paths name the same directory: equal as paths,
/// or the same inode (a symlinked home, a trailing `/.`).
pub fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((dir_id(a), dir_id(b)), (Some(x), Some(y)) if x == y)
}

/// The directories of a `PATH` value, in order: only absolute ones. An
/// empty or relative entry (the current directory) is skipped: what it
/// names changes with the directory a command is started from, and the
/// sandbox needs the program's absolute path.
pub fn path_dirs(path: &OsStr) -> impl Iterator<Item = &Path> {
    path.as_bytes()
        .split(|b| *b == b':')
        .filter(|d| d.first() == Some(&b'/'))
        .map(|d| Path::new(OsStr::from_bytes(d)))
}

/// The caller's `PATH` (or [`DEFAULT_PATH`]).
pub fn current_path() -> OsString {
    std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into())
}

/// One executable `dir/NAME` found on `PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hit {
    /// It leads to hutch itself: a shim (or hutch under another name).
    Shim(PathBuf),
    /// Anything else: the program.
    Program(PathBuf),
}

/// What a walk of `PATH` for one name found: the first shim, and the
/// program (the first executable that is not hutch).
#[derive(Debug, Default, Clone)]
pub struct Found {
    pub shim: Option<PathBuf>,
    pub program: Option<PathBuf>,
    /// Whether the shim comes before the program in `PATH` (what a shell
    /// runs for the name is the shim).
    pub shim_first: bool,
}

/// Walks `path` for `name` until the program is found: the launch's walk,
/// one `stat` per directory up to the program.
pub fn find(name: &OsStr, path: &OsStr, own: FileId) -> Found {
    let mut found = Found::default();
    for dir in path_dirs(path) {
        match classify(&dir.join(name), own) {
            Some(Hit::Shim(p)) if found.shim.is_none() => {
                found.shim_first = true;
                found.shim = Some(p);
            }
            Some(Hit::Program(p)) => {
                found.program = Some(p);
                break;
            }
            Some(Hit::Shim(_)) | None => {}
        }
    }
    found
}

/// Every executable `dir/NAME` on `path`, in order.
pub fn all_hits(name: &OsStr, path: &OsStr, own: FileId) -> Vec<Hit> {
    path_dirs(path)
        .filter_map(|dir| classify(&dir.join(name), own))
        .collect()
}

fn classify(candidate: &Path, own: FileId) -> Option<Hit> {
    let id = executable_id(candidate)?;
    Some(if id == own {
        Hit::Shim(candidate.to_path_buf())
    } else {
        Hit::Program(candidate.to_path_buf())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn exe(path: &Path) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn shims_are_known_by_identity_not_by_name_or_place() {
        let d = tempfile::tempdir().unwrap();
        let (hutch, shims, other, bin) = (
            d.path().join("hutch"),
            d.path().join("shims"),
            d.path().join("other"),
            d.path().join("bin"),
        );
        for dir in [&shims, &other, &bin] {
            std::fs::create_dir(dir).unwrap();
        }
        exe(&hutch);
        let own = executable_id(&hutch).unwrap();
        symlink(&hutch, shims.join("tool")).unwrap();
        // A hard link under another name in another directory is hutch too.
        std::fs::hard_link(&hutch, other.join("tool")).unwrap();
        exe(&bin.join("tool"));
        let path = format!(
            "{}:relative:{}::{}",
            shims.display(),
            other.display(),
            bin.display()
        );
        let found = find("tool".as_ref(), path.as_ref(), own);
        assert_eq!(found.shim, Some(shims.join("tool")));
        assert_eq!(found.program, Some(bin.join("tool")));
        assert!(found.shim_first);
        assert_eq!(
            all_hits("tool".as_ref(), path.as_ref(), own),
            [
                Hit::Shim(shims.join("tool")),
                Hit::Shim(other.join("tool")),
                Hit::Program(bin.join("tool"))
            ]
        );
        // The program first: the shim is found, but not first.
        let later = format!("{}:{}", bin.display(), shims.display());
        let found = find("tool".as_ref(), later.as_ref(), own);
        assert_eq!(found.program, Some(bin.join("tool")));
        assert!(!found.shim_first && found.shim.is_none());
        // Only shims: no program.
        let only = format!("{}:{}", shims.display(), other.display());
        let found = find("tool".as_ref(), only.as_ref(), own);
        assert_eq!(found.program, None);
        assert_eq!(found.shim, Some(shims.join("tool")));
    }

    #[test]
    fn what_is_not_an_executable_file_is_no_hit() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("tool")).unwrap();
        std::fs::write(d.path().join("plain"), "").unwrap();
        symlink("missing", d.path().join("dangling")).unwrap();
        for n in ["tool", "plain", "dangling", "absent"] {
            assert_eq!(executable_id(&d.path().join(n)), None, "{n}");
        }
    }

    #[test]
    fn relative_and_empty_path_entries_are_skipped() {
        let dirs: Vec<&Path> = path_dirs(":.:bin:/usr/bin::/bin/".as_ref()).collect();
        assert_eq!(dirs, [Path::new("/usr/bin"), Path::new("/bin/")]);
    }
}
