//! The root of the sandbox, made ready for the child (before clone): the
//! directory to bind, or the overlay's layers as C strings and the short
//! names the child gives them. (The directory of a persistent upper layer
//! is claimed on the host by the launcher: see `launch::reserve`.)
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

use super::slots::{Dir, Mount, Slot, SlotTable};
use super::{NulError, PinnedDir, PrepareError, cstring, cstring_path};
use crate::plan::rootfs::{RootSource, Upper};
use crate::plan::{Plan, RootPlan};

/// Longest value `fsconfig` accepts, without the terminating NUL.
pub const FSCONFIG_VALUE_MAX: usize = 255;
/// The kernel that has `lowerdir+`.
const LOWERDIR_PLUS_KERNEL: (u32, u32) = (6, 8);

/// How the child builds the root.
#[derive(Debug)]
pub enum RootInstr {
    /// A read-only recursive bind of a directory.
    Bind {
        source: Slot<Mount>,
    },
    Overlay(OverlayInstr),
}

#[derive(Debug)]
pub struct OverlayInstr {
    /// The layers, highest first: their farm names (`0`, `1`, …) and
    /// their directories.
    pub layers: Vec<(CString, Slot<Dir>)>,
    /// All farm names joined with `:`, when that fits in one `lowerdir`
    /// value; else each goes in its own `lowerdir+`.
    pub lowerdir: Option<CString>,
    /// A persistent upper layer's `upper` and `work`, which the launcher
    /// holds; `None`: the upper layer is on the farm tmpfs.
    pub upper: Option<[Slot<Dir>; 2]>,
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
}

/// The child's instructions for `plan.root`, with their slots in `slots`.
/// `upper` is the launcher's claim on a persistent upper layer.
pub fn lower(
    plan: &Plan,
    upper: Option<[PinnedDir; 2]>,
    slots: &mut SlotTable,
) -> Result<Option<RootInstr>, PrepareError> {
    let Some(root) = &plan.root else {
        no_upper_held(&upper)?;
        return Ok(None);
    };
    if !root.is_overlay() {
        let RootSource::Dir { path } = &root.source else {
            unreachable!("only a directory root is bound");
        };
        let source = slots.root_dir(cstring_path("root directory", path)?);
        no_upper_held(&upper)?;
        return Ok(Some(RootInstr::Bind { source }));
    }
    let lowers = root.lowers();
    let names: Vec<String> = (0..lowers.len()).map(|i| i.to_string()).collect();
    let joined = names.join(":");
    let lowerdir = if joined.len() <= FSCONFIG_VALUE_MAX {
        Some(cstring("lowerdir", joined.as_bytes())?)
    } else {
        let kernel = kernel_release();
        if kernel_version(&kernel) < LOWERDIR_PLUS_KERNEL {
            return Err(RootError::TooManyLayers {
                image: describe(root),
                layers: lowers.len(),
                max: max_joined_layers(),
                kernel,
            }
            .into());
        }
        None
    };
    let layers = lowers
        .iter()
        .zip(&names)
        .map(|(dir, name)| {
            Ok((
                cstring("layer", name.as_bytes())?,
                slots.layer(cstring_path("layer", dir)?),
            ))
        })
        .collect::<Result<_, NulError>>()?;
    // Fail closed: a persistent layer the launcher did not claim is never
    // opened by path.
    let upper = if root.writable.persistent_dir().is_some() {
        Some(slots.upper(upper.ok_or(PrepareError::NotHeld("writable layer"))?))
    } else {
        no_upper_held(&upper)?;
        None
    };
    Ok(Some(RootInstr::Overlay(OverlayInstr {
        layers,
        lowerdir,
        upper,
        readonly: root.writable == Upper::ReadOnly,
        what: cstring("root", describe(root).as_bytes())?,
    })))
}

/// A claimed upper layer for a root that has no persistent one is a bug.
fn no_upper_held(upper: &Option<[PinnedDir; 2]>) -> Result<(), PrepareError> {
    match upper {
        None => Ok(()),
        Some(_) => Err(PrepareError::HeldUnused("writable layer")),
    }
}

fn describe(root: &RootPlan) -> String {
    match &root.source {
        RootSource::Dir { path } => path.display().to_string(),
        RootSource::Image { name, .. } => name.clone(),
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
