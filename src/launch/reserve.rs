//! What a launch reserves on the host before anything is cloned, and
//! holds until the sandbox is gone: a name the user chose (or any name,
//! for a sandbox with volumes), the volumes, and the directory of a
//! persistent upper layer (`writable`), opened without following
//! symlinks, checked, locked and pinned. Each of them can refuse the
//! launch (taken, in use), so they are settled first.

use std::fs::File;
use std::path::PathBuf;

use super::LaunchError;
use crate::host::Host;
use crate::plan::rootfs::Upper;
use crate::plan::{MountOp, Plan};
use crate::prepare::{self, NulError, PinnedDir};
use crate::registry::{self, Entry, Registry};
use crate::safe_fs::{self, Dir, FsError, Require};
use crate::volume;

/// The volumes of `plan`, as the volume store and the registry take them.
fn volume_uses(plan: &Plan) -> Vec<registry::VolumeUse> {
    plan.mounts
        .iter()
        .filter_map(|m| match &m.op {
            MountOp::Volume {
                name, shared, tmp, ..
            } => Some(registry::VolumeUse {
                name: name.clone(),
                shared: *shared,
                tmp: *tmp,
            }),
            _ => None,
        })
        .collect()
}

/// What a launch holds until its sandbox has exited.
pub struct Reserved<'r> {
    /// The registry record, when it had to be reserved before clone. A
    /// generated name is reserved after clone instead, while the child
    /// builds its filesystem (it costs ~40 us).
    pub entry: Option<Entry<'r>>,
    volumes: volume::Held,
    upper: Option<ClaimedUpper>,
}

impl<'r> Reserved<'r> {
    /// Reserves the name (`name`, or any for a sandbox with volumes), the
    /// volumes and a persistent upper layer of `plan`.
    pub fn take(
        plan: &Plan,
        host: &Host,
        registry: &'r Registry,
        name: Option<&str>,
    ) -> Result<Reserved<'r>, LaunchError> {
        let uses = volume_uses(plan);
        let entry = if name.is_some() || !uses.is_empty() {
            Some(registry.reserve(name, &plan.profile, &plan.argv, &uses)?)
        } else {
            None
        };
        let sandbox = entry.as_ref().map_or("", |e| e.name());
        let volumes = volume::acquire(&uses, sandbox, host)?;
        let upper = claim_upper(plan, host)?;
        Ok(Reserved {
            entry,
            volumes,
            upper,
        })
    }

    /// Reserves a generated name, after clone.
    pub fn reserve_name(
        &mut self,
        plan: &Plan,
        registry: &'r Registry,
    ) -> Result<Entry<'r>, LaunchError> {
        match self.entry.take() {
            Some(e) => Ok(e),
            None => Ok(registry.reserve(None, &plan.profile, &plan.argv, &volume_uses(plan))?),
        }
    }

    /// What the child opens again of what is held.
    pub fn for_child(&self) -> Result<prepare::Held, LaunchError> {
        let volume = |v: &volume::Pinned| PinnedDir::of("volume", &v.dir);
        Ok(prepare::Held {
            volumes: self
                .volumes
                .volumes
                .iter()
                .map(volume)
                .collect::<Result<_, NulError>>()
                .map_err(prepare::PrepareError::from)?,
            upper: self
                .upper
                .as_ref()
                .map(ClaimedUpper::for_child)
                .transpose()
                .map_err(UpperError::from)?,
        })
    }

    /// Lets go of everything (the sandbox has exited): the record, the
    /// upper layer's lock, the volumes' (deleting tmp volumes).
    pub fn release(self) {
        drop(self.entry);
        drop(self.upper);
        if let Err(e) = self.volumes.release() {
            crate::diag::warning(&e);
        }
    }
}

/// A persistent upper layer that cannot be claimed.
#[derive(Debug, thiserror::Error)]
pub enum UpperError {
    #[error(
        "cannot use `writable` directory {}: {source}; or keep the changes in a volume: `writable = \"volume:NAME\"`",
        .path.display()
    )]
    Writable {
        path: PathBuf,
        #[source]
        source: FsError,
    },
    #[error(
        "{path} is in use by another sandbox (it keeps the changes of its root); wait for it to exit, or use another `writable` directory"
    )]
    UpperInUse { path: PathBuf },
    #[error("cannot lock {}: {source}", .path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Volume(crate::volume::VolumeError),
    #[error(transparent)]
    Nul(#[from] NulError),
}

/// A persistent upper layer, claimed for one sandbox: held until it exits.
#[derive(Debug)]
pub struct ClaimedUpper {
    /// `upper` and `work`, for the child to find again.
    pub upper: safe_fs::Pinned,
    pub work: safe_fs::Pinned,
    /// The directory holding them.
    _dir: safe_fs::Pinned,
    /// An exclusive flock: overlayfs must not use one upper layer twice at
    /// a time (close-on-exec; the child closes it too).
    _lock: File,
}

impl ClaimedUpper {
    /// What the child needs to open `upper` and `work` again.
    pub fn for_child(&self) -> Result<[PinnedDir; 2], NulError> {
        Ok([
            PinnedDir::of("upper directory", &self.upper)?,
            PinnedDir::of("work directory", &self.work)?,
        ])
    }
}

/// On the host, before clone: opens (creating what is missing) and locks
/// the directory of a persistent upper layer, and its `upper` and `work`,
/// without following symlinks and only if nobody but the caller can have
/// put them there (see [`safe_fs::open_dir_for_writing`]); pins them.
pub fn claim_upper(plan: &Plan, host: &Host) -> Result<Option<ClaimedUpper>, UpperError> {
    let Some(root) = &plan.root else {
        return Ok(None);
    };
    let (lock, dir, require) = match &root.writable {
        Upper::ReadOnly | Upper::Tmpfs => return Ok(None),
        Upper::Volume { name, .. } => {
            let (lock, dir) =
                crate::volume::claim_for_upper(host, name).map_err(UpperError::Volume)?;
            // Inside the store (mode 0700), only the owner matters.
            (File::from(lock), dir, Require::owned_by(host.uid))
        }
        Upper::Dir { path } => {
            let writable = |source| UpperError::Writable {
                path: path.clone(),
                source,
            };
            let dir = safe_fs::open_dir_for_writing(path, host.uid, true).map_err(writable)?;
            let lock = dir.open_file("lock", 0o600, host.uid).map_err(writable)?;
            (File::from(lock), dir, Require::writable_only_by(host.uid))
        }
    };
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(UpperError::UpperInUse {
                path: dir.path().to_path_buf(),
            });
        }
        Err(std::fs::TryLockError::Error(source)) => {
            return Err(UpperError::Lock {
                path: dir.path().join("lock"),
                source,
            });
        }
    }
    let dir_path = dir.path().to_path_buf();
    let fs_error = |source: FsError| match &root.writable {
        Upper::Volume { .. } => UpperError::Volume(source.into()),
        _ => UpperError::Writable {
            path: dir_path.clone(),
            source,
        },
    };
    // The upper directory's mode is the root's: 0755 like any `/`.
    let open = |name, mode| -> Result<safe_fs::Pinned, FsError> {
        let sub: Option<Dir> = dir.sub(name, Some(mode), require)?;
        sub.expect("created if missing").pin()
    };
    let upper = open("upper", 0o755).map_err(fs_error)?;
    let work = open("work", 0o700).map_err(fs_error)?;
    Ok(Some(ClaimedUpper {
        upper,
        work,
        _dir: dir.pin().map_err(fs_error)?,
        _lock: lock,
    }))
}
