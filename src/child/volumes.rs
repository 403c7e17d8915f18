//! Volumes in the child: open each volume directory again in the child's
//! mount namespace (a copy of the host's; the launcher's descriptor cannot be
//! mounted from here, the kernel refuses mounts of another namespace), without
//! following any symlink, and clone it only if it is the very inode the
//! launcher checked and still pins. Allocation-free.

use std::os::fd::RawFd;

use nix::errno::Errno;

use super::Fail;
use crate::prepare::report::Step;
use crate::prepare::{PinnedDir, Prepared};
use crate::sys;

/// A detached copy of the volume's directory, ready to be attached.
fn open(v: &PinnedDir) -> Result<RawFd, Errno> {
    let fd = sys::open_pinned_dir(&v.path, v.dev, v.ino)?;
    let r = sys::open_tree_clone_fd(fd);
    sys::close(fd);
    r
}

/// Fills the slots after the bind sources with the volumes' detached mounts.
pub fn open_all<'a>(prepared: &'a Prepared, source_fds: &mut [RawFd]) -> Result<(), Fail<'a>> {
    let slots = source_fds
        .get_mut(prepared.sources.len()..)
        .unwrap_or(&mut []);
    for (v, slot) in prepared.volumes.iter().zip(slots.iter_mut()) {
        *slot = open(v).map_err(|e| Fail::with(Step::OpenVolume, e, v.path.to_bytes()))?;
    }
    Ok(())
}
