//! The volume store: directories that outlive the sandboxes using them.
//!
//! ```text
//! $XDG_DATA_HOME/hutch/volumes/        0700, the store
//!   NAME/                              a volume, created 0700 on first use
//!   .locks/NAME                        its lock file (flock, held by the launcher)
//!   .tmp/SANDBOX/                      a running sandbox's tmp volumes, flocked by
//!   .tmp/SANDBOX/VOLUME/               its launcher and removed when it exits
//! ```
//!
//! Everything below `$XDG_DATA_HOME` is opened one component at a time,
//! relative to the directory before it, without following symlinks
//! (`openat2` with `RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS`),
//! and must be a directory owned by the caller. A symlink planted in place of
//! the store, a volume or its parents stops hutch with an error; hutch never
//! writes through it. `$XDG_DATA_HOME` itself is the user's configuration and
//! may be a symlink.
//!
//! The launcher pins each volume directory (an `O_PATH` descriptor) and passes
//! the child its path *and* its device and inode: the child, whose mount
//! namespace is a copy of the host's, cannot mount the launcher's descriptor
//! (the kernel refuses to clone a mount of another namespace, EINVAL), so it
//! opens the same path again without following symlinks and mounts it only if
//! it is the very directory the launcher checked (the pinned inode cannot be
//! reused while the launcher holds it).
//!
//! Volumes are never deleted implicitly: only `hutch volume rm` deletes one,
//! and only while no sandbox holds its lock.

use std::fs::{File, TryLockError};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use serde::Serialize;

use crate::host::Host;
use crate::paths::{VOLUME_NAME_RULE, VOLUME_TMP_DIR, valid_name};
use crate::registry::{self, VolumeUse};
use crate::safe_fs::tree::make_accessible;
use crate::safe_fs::{
    self, Dir, FsError, RemoveError, Require, is_dir, list_names, lstat_at, open_beneath, stat_fd,
};

const LOCK_DIR: &str = ".locks";
/// Deepest directory nesting `volume inspect` counts the disk usage of
/// (removal has no limit: see `safe_fs::tree`).
const MAX_DEPTH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(
        "cannot locate the volume store: neither XDG_DATA_HOME nor HOME is set to an absolute path; set HOME"
    )]
    NoStore,
    #[error("invalid volume name {0:?}: {VOLUME_NAME_RULE}")]
    InvalidName(String),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("volume `{name}` is in use by {}{}", by_list(.by), .hint)]
    InUse {
        name: String,
        by: Vec<String>,
        hint: &'static str,
    },
    #[error("no volume named `{0}` (see `hutch volume list`)")]
    NotFound(String),
    #[error(
        "volume `{name}` is not empty ({entries} entries at its top); add --force to delete it with everything in it"
    )]
    NotEmpty { name: String, entries: usize },
    #[error(transparent)]
    Remove(#[from] RemoveError),
}

fn by_list(by: &[String]) -> String {
    match by {
        [] => "another hutch (a sandbox that is starting, or `hutch volume rm`)".to_string(),
        [one] => format!("sandbox `{one}`"),
        many => format!(
            "sandboxes {}",
            many.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `dir/name`, a directory of `uid`'s (made with mode 0700 when `create`).
fn sub(dir: &Dir, name: &str, create: bool, uid: u32) -> Result<Option<Dir>, VolumeError> {
    Ok(dir.sub(name, create.then_some(0o700), Require::owned_by(uid))?)
}

/// Takes the flock of `fd` without waiting: exclusive, or shared.
/// `Ok(None)`: somebody holds a conflicting lock.
fn try_lock(fd: OwnedFd, exclusive: bool) -> Result<Option<OwnedFd>, Errno> {
    let file = File::from(fd);
    let locked = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match locked {
        Ok(()) => Ok(Some(file.into())),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(Errno::from_raw(e.raw_os_error().unwrap_or(0))),
    }
}

/// The volume store, opened safely.
pub struct Store {
    dir: Dir,
    uid: u32,
}

impl Store {
    /// Opens the store; with `create`, makes what is missing (the store
    /// directories with mode 0700). `Ok(None)`: there is no store yet.
    pub fn open(host: &Host, create: bool) -> Result<Option<Store>, VolumeError> {
        let store = crate::paths::volume_store(host).ok_or(VolumeError::NoStore)?;
        let hutch_dir = store.parent().expect("the store path has a parent");
        let data = hutch_dir
            .parent()
            .expect("the store path has a grandparent");
        if create {
            std::fs::create_dir_all(data).map_err(|e| {
                FsError::io(
                    "cannot create",
                    data,
                    Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                )
            })?;
        }
        // $XDG_DATA_HOME itself is the user's own setting: symlinks allowed.
        let Some(data) = Dir::open_configured(data)? else {
            return Ok(None);
        };
        let uid = host.uid;
        let Some(hutch) = sub(&data, "hutch", create, uid)? else {
            return Ok(None);
        };
        let Some(dir) = sub(&hutch, "volumes", create, uid)? else {
            return Ok(None);
        };
        Ok(Some(Store { dir, uid }))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn volume_dir(&self, name: &str, create: bool) -> Result<Option<Dir>, VolumeError> {
        if !valid_name(name) {
            return Err(VolumeError::InvalidName(name.to_string()));
        }
        sub(&self.dir, name, create, self.uid)
    }

    /// Takes the lock of volume `name` without waiting: exclusive, or shared
    /// (`shared` volumes). `Ok(None)`: somebody holds a conflicting lock.
    fn lock(&self, name: &str, exclusive: bool) -> Result<Option<OwnedFd>, VolumeError> {
        let locks = sub(&self.dir, LOCK_DIR, true, self.uid)?.expect("created if missing");
        let path = locks.path().join(name);
        loop {
            let fd = locks.open_file(name, 0o600, self.uid)?;
            let st = stat_fd(fd.as_fd())
                .map_err(|e| FsError::io("cannot inspect the lock file", &path, e))?;
            let Some(fd) =
                try_lock(fd, exclusive).map_err(|e| FsError::io("cannot lock", &path, e))?
            else {
                return Ok(None);
            };
            // `volume rm` unlinks the lock file of the volume it deletes: if
            // that happened between our open and our flock, this lock guards
            // nothing. Start again with the file now at that name.
            match lstat_at(locks.fd(), name) {
                Ok(now) if now.st_ino == st.st_ino && now.st_dev == st.st_dev => {
                    return Ok(Some(fd));
                }
                _ => continue,
            }
        }
    }

    /// The directory of `.tmp` (created if missing).
    fn tmp_root(&self) -> Result<Dir, VolumeError> {
        Ok(sub(&self.dir, VOLUME_TMP_DIR, true, self.uid)?.expect("created if missing"))
    }

    /// Removes the tmp volumes of sandboxes that are gone (their launcher
    /// was killed before it could). Errors are returned as warnings.
    pub fn clean_stale_tmp(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let tmp = match sub(&self.dir, VOLUME_TMP_DIR, false, self.uid) {
            Ok(Some(t)) => t,
            Ok(None) => return warnings,
            Err(e) => return vec![e.to_string()],
        };
        for name in utf8_names(&tmp).unwrap_or_default() {
            // Only an area no launcher holds locked is stale.
            if let Ok(Some(area)) = sub(&tmp, &name, false, self.uid)
                && let Ok(fd) = area.readable()
                && let Ok(Some(fd)) = try_lock(fd, true)
                && let Err(e) = remove_dir(&tmp, &name, fd.as_fd())
            {
                warnings.push(e.to_string());
            }
        }
        warnings
    }

    /// The tmp volumes in the store: (sandbox, volume, path, whether the
    /// sandbox is running). A sandbox's area that nobody holds locked is
    /// not running: one [`Store::clean_stale_tmp`] could not remove.
    fn tmp_volumes(&self) -> Vec<(String, String, PathBuf, bool)> {
        let mut out = Vec::new();
        let Ok(Some(tmp)) = sub(&self.dir, VOLUME_TMP_DIR, false, self.uid) else {
            return out;
        };
        for sandbox in utf8_names(&tmp).unwrap_or_default() {
            let Ok(Some(area)) = sub(&tmp, &sandbox, false, self.uid) else {
                continue;
            };
            // Taken (and let go at once) only if no launcher holds it.
            let running = area
                .readable()
                .is_ok_and(|fd| matches!(try_lock(fd, true), Ok(None)));
            for vol in utf8_names(&area).unwrap_or_default() {
                let path = area.path().join(&vol);
                out.push((sandbox.clone(), vol, path, running));
            }
        }
        out
    }
}

/// The entries of a directory whose names are text (no volume or sandbox
/// name is anything else), `.` and `..` left out.
fn utf8_names(dir: &Dir) -> Result<Vec<String>, VolumeError> {
    Ok(dir
        .names()?
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .collect())
}

/// Empties and removes `parent/name`, whose readable descriptor is `fd`
/// (which may hold the lock that keeps others away meanwhile).
fn remove_dir(parent: &Dir, name: &str, fd: BorrowedFd<'_>) -> Result<(), VolumeError> {
    let path = parent.path().join(name);
    let st = stat_fd(fd).map_err(|e| FsError::io("cannot inspect", &path, e))?;
    make_accessible(fd, &st).map_err(|errno| RemoveError {
        path: path.clone(),
        what: "cannot change its mode".into(),
        errno,
    })?;
    safe_fs::remove_contents(fd, &path)?;
    match unlinkat(parent.fd(), name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(RemoveError {
            path,
            what: "cannot remove the directory itself".into(),
            errno,
        }
        .into()),
    }
}

/// A volume directory the launcher has checked and pinned.
#[derive(Debug)]
pub struct Pinned {
    pub name: String,
    /// The directory, for the child to open again and compare.
    pub dir: safe_fs::Pinned,
    /// Held for the sandbox's life (none for tmp volumes: their sandbox's
    /// directory is locked instead).
    _lock: Option<OwnedFd>,
}

impl Pinned {
    fn new(name: &str, dir: Dir, lock: Option<OwnedFd>) -> Result<Pinned, VolumeError> {
        Ok(Pinned {
            name: name.to_string(),
            dir: dir.pin()?,
            _lock: lock,
        })
    }
}

/// The directory holding one sandbox's tmp volumes, locked by its launcher.
struct TmpArea {
    parent: Dir,
    name: String,
    /// The directory itself, and a readable descriptor of it that holds
    /// the lock.
    dir: Dir,
    fd: OwnedFd,
    removed: bool,
}

impl TmpArea {
    fn create(store: &Store, sandbox: &str) -> Result<TmpArea, VolumeError> {
        let parent = store.tmp_root()?;
        let path = parent.path().join(sandbox);
        loop {
            match mkdirat(parent.fd(), sandbox, Mode::from_bits_truncate(0o700)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => return Err(FsError::io("cannot create", &path, errno).into()),
            }
            let Some(dir) = sub(&parent, sandbox, false, store.uid)? else {
                continue;
            };
            let fd = dir.readable()?;
            let Some(fd) = try_lock(fd, true).map_err(|e| FsError::io("cannot lock", &path, e))?
            else {
                return Err(VolumeError::InUse {
                    name: format!("{VOLUME_TMP_DIR}/{sandbox}"),
                    by: vec![sandbox.to_string()],
                    hint: "",
                });
            };
            // Removed as stale between our mkdir and our flock? Again.
            let st = stat_fd(fd.as_fd()).map_err(|e| FsError::io("cannot inspect", &path, e))?;
            match lstat_at(parent.fd(), sandbox) {
                Ok(now) if now.st_ino == st.st_ino && now.st_dev == st.st_dev => {}
                _ => continue,
            }
            // Left over by a killed sandbox of the same name: start empty.
            safe_fs::remove_contents(fd.as_fd(), dir.path())?;
            return Ok(TmpArea {
                parent,
                name: sandbox.to_string(),
                dir,
                fd,
                removed: false,
            });
        }
    }

    fn volume(&self, name: &str, uid: u32) -> Result<Dir, VolumeError> {
        Ok(sub(&self.dir, name, true, uid)?.expect("created if missing"))
    }

    fn remove(&mut self) -> Result<(), VolumeError> {
        self.removed = true;
        remove_dir(&self.parent, &self.name, self.fd.as_fd())
    }
}

impl Drop for TmpArea {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.remove();
        }
    }
}

/// Everything a launch holds for its volumes until the sandbox has exited:
/// the pinned directories, the locks, and its tmp volumes.
pub struct Held {
    /// In the order of the uses given to [`acquire`].
    pub volumes: Vec<Pinned>,
    tmp: Option<TmpArea>,
}

impl Held {
    /// Releases the locks and removes the tmp volumes.
    pub fn release(mut self) -> Result<(), VolumeError> {
        self.volumes.clear();
        match self.tmp.as_mut() {
            Some(t) => t.remove(),
            None => Ok(()),
        }
    }
}

/// Opens, creates, checks, locks and pins every volume a sandbox uses (in
/// the order of its mounts), for the sandbox named `sandbox`. Fails if one
/// is in use (see `shared`).
pub fn acquire(uses: &[VolumeUse], sandbox: &str, host: &Host) -> Result<Held, VolumeError> {
    let mut held = Held {
        volumes: Vec::with_capacity(uses.len()),
        tmp: None,
    };
    if uses.is_empty() {
        return Ok(held);
    }
    let store = Store::open(host, true)?.expect("created if missing");
    if uses.iter().any(|u| u.tmp) {
        for w in store.clean_stale_tmp() {
            crate::diag::warning(&w);
        }
        held.tmp = Some(TmpArea::create(&store, sandbox)?);
    }
    for VolumeUse { name, shared, tmp } in uses {
        let (name, shared) = (name.as_str(), *shared);
        if *tmp {
            let area = held.tmp.as_ref().expect("created above");
            let dir = area.volume(name, store.uid)?;
            held.volumes.push(Pinned::new(name, dir, None)?);
            continue;
        }
        let Some(lock) = store.lock(name, !shared)? else {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                by: registry::users_of_volume(host, name, Some(sandbox)),
                hint: if shared {
                    " (it uses the volume exclusively)"
                } else {
                    "; set `shared = true` on the volume in the profiles of every sandbox that should use it at the same time"
                },
            });
        };
        let dir = store.volume_dir(name, true)?.expect("created if missing");
        held.volumes.push(Pinned::new(name, dir, Some(lock))?);
    }
    Ok(held)
}

/// Claims volume `name` as the writable layer of an image or directory
/// root: opens it (creating it if missing) without following symlinks and
/// takes its lock exclusively (overlayfs must never use an upper layer twice
/// at a time). Returns the lock, to hold for the sandbox's life, and the
/// volume's directory, in which the caller opens `upper` and `work`.
pub fn claim_for_upper(host: &Host, name: &str) -> Result<(OwnedFd, Dir), VolumeError> {
    let store = Store::open(host, true)?.expect("created if missing");
    let Some(lock) = store.lock(name, true)? else {
        return Err(VolumeError::InUse {
            name: name.to_string(),
            by: registry::users_of_volume(host, name, None),
            hint: "; a volume that keeps a root's changes serves one sandbox at a time",
        });
    };
    let dir = store.volume_dir(name, true)?.expect("created if missing");
    Ok((lock, dir))
}

/// A volume as `hutch volume list` and `inspect` show it.
#[derive(Debug, Serialize)]
pub struct Info {
    pub name: String,
    /// `persistent`, `tmp` for a running sandbox's tmp volume, or
    /// `leftover` for one of a sandbox that is gone, which could not be
    /// removed (a warning says why).
    pub kind: &'static str,
    pub path: PathBuf,
    /// Running sandboxes using it (from the registry).
    pub in_use_by: Vec<String>,
    /// Last modification of its top directory (seconds since the epoch).
    pub modified: Option<i64>,
    pub mode: Option<String>,
    /// With `inspect`: bytes used on disk (allocated blocks), and entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_usage: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

/// Every volume in the store, and the tmp volumes of running sandboxes.
/// Also removes tmp volumes that sandboxes killed with SIGKILL left behind.
pub fn list(host: &Host) -> Result<(Vec<Info>, Vec<String>), VolumeError> {
    let Some(store) = Store::open(host, false)? else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut warnings = store.clean_stale_tmp();
    let users = registry::volume_users(host);
    let mut out = Vec::new();
    let mut names: Vec<String> = utf8_names(&store.dir)?
        .into_iter()
        .filter(|n| valid_name(n))
        .collect();
    names.sort();
    for name in names {
        let dir = match store.volume_dir(&name, false) {
            Ok(Some(dir)) => dir,
            Ok(None) => continue,
            Err(e) => {
                warnings.push(format!("skipping volume `{name}`: {e}"));
                continue;
            }
        };
        let st = stat_fd(dir.fd()).ok();
        out.push(Info {
            in_use_by: users.get(&name).cloned().unwrap_or_default(),
            kind: "persistent",
            path: dir.path().to_path_buf(),
            modified: st.map(|s| s.st_mtime),
            mode: st.map(|s| format!("{:04o}", s.st_mode & 0o7777)),
            name,
            disk_usage: None,
            files: None,
        });
    }
    for (sandbox, vol, path, running) in store.tmp_volumes() {
        out.push(Info {
            name: format!("{sandbox}/{vol}"),
            // What a sandbox that is gone left and could not be removed
            // (the warnings say why): in use by nobody.
            kind: if running { "tmp" } else { "leftover" },
            path,
            in_use_by: if running { vec![sandbox] } else { Vec::new() },
            modified: None,
            mode: None,
            disk_usage: None,
            files: None,
        });
    }
    Ok((out, warnings))
}

/// One volume, with its disk usage.
pub fn inspect(host: &Host, name: &str) -> Result<Info, VolumeError> {
    let store = Store::open(host, false)?.ok_or_else(|| VolumeError::NotFound(name.into()))?;
    let dir = store
        .volume_dir(name, false)?
        .ok_or_else(|| VolumeError::NotFound(name.into()))?;
    let st = dir.stat()?;
    let mut usage = (st.st_blocks as u64 * 512, 0u64);
    let fd = dir.readable()?;
    du(fd.as_fd(), 0, &mut usage);
    Ok(Info {
        in_use_by: registry::users_of_volume(host, name, None),
        name: name.to_string(),
        kind: "persistent",
        path: dir.path().to_path_buf(),
        modified: Some(st.st_mtime),
        mode: Some(format!("{:04o}", st.st_mode & 0o7777)),
        disk_usage: Some(usage.0),
        files: Some(usage.1),
    })
}

/// Adds up allocated bytes and entries below `dir`, never following a
/// symlink; unreadable parts are skipped.
fn du(dir: BorrowedFd<'_>, depth: usize, acc: &mut (u64, u64)) {
    if depth > MAX_DEPTH {
        return;
    }
    for name in list_names(dir).unwrap_or_default() {
        let Ok(st) = lstat_at(dir, name.as_os_str()) else {
            continue;
        };
        acc.0 += st.st_blocks as u64 * 512;
        acc.1 += 1;
        if is_dir(&st)
            && let Ok(sub) = open_beneath(
                dir,
                name.as_os_str(),
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                Mode::empty(),
            )
        {
            du(sub.as_fd(), depth + 1, acc);
        }
    }
}

/// The host path of a volume (which must exist).
pub fn path(host: &Host, name: &str) -> Result<PathBuf, VolumeError> {
    let store = Store::open(host, false)?.ok_or_else(|| VolumeError::NotFound(name.into()))?;
    let dir = store
        .volume_dir(name, false)?
        .ok_or_else(|| VolumeError::NotFound(name.into()))?;
    Ok(dir.path().to_path_buf())
}

/// Deletes a volume: refused while a sandbox uses it, and, unless `force`,
/// when it is not empty.
pub fn remove(host: &Host, name: &str, force: bool) -> Result<(), VolumeError> {
    let store = Store::open(host, false)?.ok_or_else(|| VolumeError::NotFound(name.into()))?;
    if !valid_name(name) {
        return Err(VolumeError::InvalidName(name.into()));
    }
    let Some(lock) = store.lock(name, true)? else {
        return Err(VolumeError::InUse {
            name: name.to_string(),
            by: registry::users_of_volume(host, name, None),
            hint: "; stop it first (`hutch stop NAME`)",
        });
    };
    // Unlinked while we hold the lock: a launcher that opened it
    // meanwhile notices and starts again.
    let drop_lock_file = || {
        if let Ok(Some(locks)) = sub(&store.dir, LOCK_DIR, false, store.uid) {
            let _ = locks.unlink(name);
        }
    };
    let Some(dir) = store.volume_dir(name, false)? else {
        drop_lock_file();
        return Err(VolumeError::NotFound(name.into()));
    };
    let fd = dir.readable()?;
    let n = dir.names()?.len();
    if n > 0 && !force {
        return Err(VolumeError::NotEmpty {
            name: name.into(),
            entries: n,
        });
    }
    remove_dir(&store.dir, name, fd.as_fd())?;
    drop_lock_file();
    drop(lock);
    Ok(())
}

/// Removes the tmp volumes of a sandbox whose launcher is gone (`hutch stop`
/// after SIGKILL). Returns warnings.
pub fn clean_stale(host: &Host) -> Vec<String> {
    match Store::open(host, false) {
        Ok(Some(store)) => store.clean_stale_tmp(),
        Ok(None) => Vec::new(),
        Err(e) => vec![e.to_string()],
    }
}
