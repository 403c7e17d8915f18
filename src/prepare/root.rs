//! The root of the sandbox, made ready for the child (before clone): C
//! strings for the overlay's layers, and, on the host, the directory that
//! keeps a persistent upper layer: opened without following symlinks,
//! checked, locked and pinned for the sandbox's life.
//!
//! # How overlayfs gets its layers
//! Option values given with `fsconfig` are limited to 255 bytes, and image
//! layers live at long paths (`…/hutch/images/layers/sha256/<64 hex>`).
//! So the child opens every layer directory (`O_PATH`) before it mounts
//! anything, then mounts a small private tmpfs, the *farm*, with a short
//! symlink per layer (`0` → `/proc/self/fd/N` of the highest layer, `1`, …)
//! and the upper and work directories (`u`, `w`: directories on the farm
//! for a tmpfs upper layer, links to the opened `DIR/upper` and `DIR/work`
//! for a persistent one), changes into it, and names the layers relative
//! to it. (The farm is attached where the new root will be staged, which
//! may hide the paths the layers were found at: hence the descriptors.)
//! The lower layers then go in one `lowerdir=0:1:…` value when it fits in
//! 255 bytes (up to 88 layers, any kernel with unprivileged overlayfs),
//! else one `lowerdir+` value per layer (Linux 6.8+, up to overlayfs's 500).

use std::ffi::CString;
use std::fs::File;
use std::path::PathBuf;

use super::{NulError, PinnedDir, c, cpath};
use crate::host::Host;
use crate::plan::rootfs::{RootSource, Upper};
use crate::plan::{Plan, RootPlan};
use crate::safe_fs::{self, Dir, FsError, Require};

/// Longest value `fsconfig` accepts, without the terminating NUL.
pub const FSCONFIG_VALUE_MAX: usize = 255;
/// The kernel that has `lowerdir+`.
const LOWERDIR_PLUS_KERNEL: (u32, u32) = (6, 8);

/// How the child builds the root.
#[derive(Debug)]
pub enum RootOp {
    /// A read-only recursive bind of the directory `sources[source]`.
    Bind {
        source: usize,
    },
    Overlay(OverlayOp),
}

#[derive(Debug)]
pub struct OverlayOp {
    /// Host directories the child opens first: the layers, highest first.
    pub dirs: Vec<CString>,
    /// Farm names of the layers (`0`, `1`, …), highest first.
    pub layers: Vec<CString>,
    /// All farm names joined with `:`, when that fits in one `lowerdir`
    /// value; else each goes in its own `lowerdir+`.
    pub lowerdir: Option<CString>,
    /// The upper layer is persistent: `Prepared::upper`, opened after the
    /// layers. Else it is on the farm tmpfs.
    pub persistent: bool,
    /// Mounted read-only once the profile's mounts are in place.
    pub readonly: bool,
    /// Describes the root in failure messages.
    pub what: CString,
}

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error(transparent)]
    Nul(#[from] NulError),
    #[error(
        "image {image} has {layers} layers; stacking more than {max} needs Linux {}.{} or later (this is {kernel}); flatten the image (e.g. `podman build --squash`) or upgrade the kernel",
        LOWERDIR_PLUS_KERNEL.0, LOWERDIR_PLUS_KERNEL.1
    )]
    TooManyLayers {
        image: String,
        layers: usize,
        max: usize,
        kernel: String,
    },
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
}

/// The child's instructions for `plan.root`; bind sources are added to
/// `sources`.
pub fn prepare(plan: &Plan, sources: &mut Vec<CString>) -> Result<Option<RootOp>, RootError> {
    let Some(root) = &plan.root else {
        return Ok(None);
    };
    if !root.is_overlay() {
        let RootSource::Dir { path } = &root.source else {
            unreachable!("only a directory root is bound");
        };
        sources.push(cpath("root directory", path)?);
        return Ok(Some(RootOp::Bind {
            source: sources.len() - 1,
        }));
    }
    let lowers = root.lowers();
    let dirs = lowers
        .iter()
        .map(|l| cpath("layer", l))
        .collect::<Result<Vec<_>, NulError>>()?;
    let layers = (0..lowers.len())
        .map(|i| c("layer", i.to_string().as_bytes()))
        .collect::<Result<Vec<_>, NulError>>()?;
    let joined = (0..lowers.len())
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(":");
    let lowerdir = if joined.len() <= FSCONFIG_VALUE_MAX {
        Some(c("lowerdir", joined.as_bytes())?)
    } else {
        let kernel = kernel_release();
        if kernel_version(&kernel) < LOWERDIR_PLUS_KERNEL {
            return Err(RootError::TooManyLayers {
                image: describe(root),
                layers: lowers.len(),
                max: max_joined_layers(),
                kernel,
            });
        }
        None
    };
    Ok(Some(RootOp::Overlay(OverlayOp {
        persistent: root.writable.persistent_dir().is_some(),
        dirs,
        layers,
        lowerdir,
        readonly: root.writable == Upper::ReadOnly,
        what: c("root", describe(root).as_bytes())?,
    })))
}

fn describe(root: &RootPlan) -> String {
    match &root.source {
        RootSource::Dir { path } => path.display().to_string(),
        RootSource::Image { name, .. } => name.clone(),
    }
}

impl RootOp {
    /// Descriptors the child needs beyond the bind sources.
    pub fn fd_slots(&self) -> usize {
        match self {
            RootOp::Bind { .. } => 0,
            RootOp::Overlay(o) => o.dirs.len() + if o.persistent { 2 } else { 0 },
        }
    }
}

/// How many layers fit in one `lowerdir=0:1:…` value.
pub fn max_joined_layers() -> usize {
    let mut len = 0;
    let mut n = 0;
    loop {
        let add = n.to_string().len() + usize::from(n > 0);
        if len + add > FSCONFIG_VALUE_MAX {
            return n;
        }
        len += add;
        n += 1;
    }
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `(major, minor)` of a release string such as `6.8.0-45-generic`.
fn kernel_version(release: &str) -> (u32, u32) {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
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
pub fn claim_upper(plan: &Plan, host: &Host) -> Result<Option<ClaimedUpper>, RootError> {
    let Some(root) = &plan.root else {
        return Ok(None);
    };
    let (lock, dir, require) = match &root.writable {
        Upper::ReadOnly | Upper::Tmpfs => return Ok(None),
        Upper::Volume { name, .. } => {
            let (lock, dir) =
                crate::volume::claim_for_upper(host, name).map_err(RootError::Volume)?;
            // Inside the store (mode 0700), only the owner matters.
            (File::from(lock), dir, Require::owned_by(host.uid))
        }
        Upper::Dir { path } => {
            let writable = |source| RootError::Writable {
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
            return Err(RootError::UpperInUse {
                path: dir.path().to_path_buf(),
            });
        }
        Err(std::fs::TryLockError::Error(source)) => {
            return Err(RootError::Lock {
                path: dir.path().join("lock"),
                source,
            });
        }
    }
    let dir_path = dir.path().to_path_buf();
    let fs_error = |source: FsError| match &root.writable {
        Upper::Volume { .. } => RootError::Volume(source.into()),
        _ => RootError::Writable {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_layer_names_fit_in_one_value() {
        let n = max_joined_layers();
        assert_eq!(n, 88);
        let joined: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        assert!(joined.join(":").len() <= FSCONFIG_VALUE_MAX);
        let more: Vec<String> = (0..=n).map(|i| i.to_string()).collect();
        assert!(more.join(":").len() > FSCONFIG_VALUE_MAX);
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(kernel_version("6.8.0-45-generic"), (6, 8));
        assert_eq!(kernel_version("5.15.167"), (5, 15));
        assert_eq!(kernel_version("6.18.44-fc-v769"), (6, 18));
        assert!(kernel_version("6.7.12") < LOWERDIR_PLUS_KERNEL);
    }
}
