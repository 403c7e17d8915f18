//! Opening the prepared slots, in the table's order, before anything is
//! mounted: so a bind source under /tmp is still reachable, and every
//! failure to open one stops the launch before the root exists.
//!
//! A volume, and a persistent upper layer's `upper` and `work`, are opened
//! again here, in the child's mount namespace (a copy of the host's; the
//! launcher's descriptors cannot be mounted from here, the kernel refuses
//! mounts of another namespace), without following any symlink, and used
//! only if they are the very inodes the launcher checked and still pins.
//! Allocation-free.

use std::os::fd::RawFd;

use nix::errno::Errno;

use super::Fail;
use crate::prepare::report::Step;
use crate::prepare::slots::{Descriptors, Opening, SlotError, SlotKind, SlotTable};
use crate::sys;

/// Opens every slot of `table` into `fds` (made from `table`).
pub fn open_all<'a>(table: &'a SlotTable, fds: &mut Descriptors) -> Result<(), Fail<'a>> {
    for (index, entry) in table.entries().iter().enumerate() {
        let path = entry.opening.path().to_bytes();
        let fd = open(&entry.opening).map_err(|e| Fail::with(step(entry.kind), e, path))?;
        if let Err(e) = fds.fill(index, fd) {
            sys::close(fd);
            return Err(e.into());
        }
    }
    Ok(())
}

fn open(opening: &Opening) -> Result<RawFd, Errno> {
    match opening {
        Opening::Tree(path) => sys::open_tree_clone(path),
        Opening::PinnedTree(dir) => {
            let fd = super::resolve::open_pinned_dir(&dir.path, dir.dev, dir.ino)?;
            let r = sys::open_tree_clone_fd(fd);
            sys::close(fd);
            r
        }
        Opening::Dir(path) => {
            // SAFETY: path is NUL-terminated.
            let fd = unsafe {
                libc::open(
                    path.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 { Err(Errno::last()) } else { Ok(fd) }
        }
        Opening::PinnedDir(dir) => super::resolve::open_pinned_dir(&dir.path, dir.dev, dir.ino),
    }
}

/// The step a slot that cannot be opened fails.
fn step(kind: SlotKind) -> Step {
    match kind {
        SlotKind::BindSource
        | SlotKind::HostProc
        | SlotKind::ProcMask
        | SlotKind::DevNode
        | SlotKind::RootDir => Step::OpenBindSource,
        SlotKind::Volume => Step::OpenVolume,
        SlotKind::Layer => Step::RootOverlay,
        SlotKind::Upper | SlotKind::Work => Step::OpenWritable,
    }
}

impl From<SlotError> for Fail<'static> {
    fn from(e: SlotError) -> Self {
        let what = e.kind.map_or("slot of another table", SlotKind::name);
        Fail::with(Step::DescriptorSlot, Errno::EBADF, what.as_bytes())
    }
}
