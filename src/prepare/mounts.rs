//! The profile's mounts lowered for the child: one [`MountInstr`] per
//! planned mount, every path a C string, and a slot for every descriptor
//! the child opens first (bind sources, the host's /proc, /dev/null for
//! masks, device nodes, the volumes the launcher holds).

use std::ffi::CString;
use std::path::Path;

use super::slots::{Mount, Slot, SlotTable};
use super::{NulError, PinnedDir, PrepareError, cstring, cstring_path};
use crate::plan::mounts::{DEV_NODES, PROC_MASKED, PROC_READONLY};
use crate::plan::{MountOp, Plan};
use crate::sys;

/// One mount instruction for the child, applied in the plan's order on
/// the new root.
#[derive(Debug)]
pub enum MountInstr {
    Bind {
        source: Slot<Mount>,
        dst: CString,
        attrs: u64,
    },
    Tmpfs {
        dst: CString,
        mode: CString,
        size: Option<CString>,
    },
    /// A procfs: new, or (`host_source`) the host's bound; then hardened.
    Proc {
        dst: CString,
        host_source: Option<Slot<Mount>>,
        /// Made read-only in place: (name inside /proc, full path for messages).
        readonly: Vec<(CString, CString)>,
        /// Covered with a read-only /dev/null: (name, full path, the /dev/null).
        masked: Vec<(CString, CString, Slot<Mount>)>,
    },
    /// A read-only tmpfs with the host's device nodes bound in: (name
    /// inside /dev, the node).
    Dev {
        dst: CString,
        nodes: Vec<(CString, Slot<Mount>)>,
        /// The payload's own pseudo-terminal is opened in this devpts.
        terminal: bool,
    },
    Dir {
        dst: CString,
        mode: u32,
    },
    Symlink {
        target: CString,
        dst: CString,
    },
    File {
        dst: CString,
        content: Vec<u8>,
        mode: u32,
        /// Mounted read-only over what is at `dst` (see `MountOp::File`).
        cover: bool,
    },
}

/// The child's mount instructions for `plan.mounts`, with their slots in
/// `slots`. `volumes` are the launcher's, one per volume mount in the
/// plan's order.
pub fn lower(
    plan: &Plan,
    volumes: Vec<PinnedDir>,
    slots: &mut SlotTable,
) -> Result<Vec<MountInstr>, PrepareError> {
    let mut volumes = volumes.into_iter();
    let mut instrs = Vec::with_capacity(plan.mounts.len());
    for m in &plan.mounts {
        let instr = match &m.op {
            MountOp::Volume { dst, readonly, .. } => {
                let held = volumes.next().ok_or(PrepareError::NotHeld("volume"))?;
                let mut attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
                if *readonly {
                    attrs |= sys::MOUNT_ATTR_RDONLY;
                }
                MountInstr::Bind {
                    source: slots.volume(held),
                    dst: cstring_path("mount destination", dst)?,
                    attrs,
                }
            }
            op => lower_one(op, plan.namespaces.pid, slots)?,
        };
        instrs.push(instr);
    }
    if volumes.next().is_some() {
        return Err(PrepareError::HeldUnused("volume"));
    }
    if let Some(pty) = &plan.security.pty {
        mark_terminal(&mut instrs, plan, &pty.dev);
    }
    Ok(instrs)
}

/// Marks the last `dev` mount at `dev` (the one the sandbox sees) as
/// where the payload's pseudo-terminal is opened.
fn mark_terminal(instrs: &mut [MountInstr], plan: &Plan, dev: &std::path::Path) {
    let last = plan
        .mounts
        .iter()
        .rposition(|m| matches!(&m.op, MountOp::Dev { dst } if dst == dev));
    if let Some(MountInstr::Dev { terminal, .. }) = last.and_then(|i| instrs.get_mut(i)) {
        *terminal = true;
    }
}

/// Every mount but a volume.
fn lower_one(op: &MountOp, pid_ns: bool, slots: &mut SlotTable) -> Result<MountInstr, NulError> {
    Ok(match op {
        MountOp::Bind {
            src,
            dst,
            readonly,
            devices,
        } => {
            let source = slots.bind_source(cstring_path("bind source", src)?);
            let mut attrs = sys::MOUNT_ATTR_NOSUID;
            if !devices {
                attrs |= sys::MOUNT_ATTR_NODEV;
            }
            if *readonly {
                attrs |= sys::MOUNT_ATTR_RDONLY;
            }
            MountInstr::Bind {
                source,
                dst: cstring_path("mount destination", dst)?,
                attrs,
            }
        }
        MountOp::Tmpfs { dst, size, mode } => MountInstr::Tmpfs {
            dst: cstring_path("mount destination", dst)?,
            mode: cstring("mode", format!("{mode:o}").as_bytes())?,
            size: size
                .map(|s| cstring("size", s.to_string().as_bytes()))
                .transpose()?,
        },
        MountOp::Proc { dst } => proc(dst, pid_ns, slots)?,
        MountOp::Dev { dst } => MountInstr::Dev {
            dst: cstring_path("mount destination", dst)?,
            nodes: DEV_NODES
                .iter()
                .map(|node| {
                    let path = cstring("device", format!("/dev/{node}").as_bytes())?;
                    Ok((cstring("device", node.as_bytes())?, slots.dev_node(path)))
                })
                .collect::<Result<_, NulError>>()?,
            terminal: false,
        },
        MountOp::Dir { dst, mode } => MountInstr::Dir {
            dst: cstring_path("directory", dst)?,
            mode: *mode,
        },
        MountOp::Symlink { target, dst } => MountInstr::Symlink {
            target: cstring_path("symlink target", target)?,
            dst: cstring_path("symlink", dst)?,
        },
        MountOp::File {
            dst,
            content,
            mode,
            cover,
        } => MountInstr::File {
            dst: cstring_path("file", dst)?,
            content: content.as_bytes().to_vec(),
            mode: *mode,
            cover: *cover,
        },
        MountOp::Volume { .. } => unreachable!("volumes are lowered by the caller"),
    })
}

/// A /proc: new in the sandbox's pid namespace, else the host's bound
/// (a sandbox without a pid namespace of its own may not mount one);
/// either way with the sensitive entries made read-only or masked.
fn proc(dst: &Path, pid_ns: bool, slots: &mut SlotTable) -> Result<MountInstr, NulError> {
    let host_source = (!pid_ns).then(|| slots.host_proc());
    // The host's /proc is the same kernel's: entries it lacks (kcore
    // without CONFIG_PROC_KCORE, ...) need no work.
    let present = |n: &&&str| Path::new("/proc").join(n).exists();
    let readonly = PROC_READONLY
        .iter()
        .filter(present)
        .map(|n| {
            Ok((
                cstring("proc entry", n.as_bytes())?,
                cstring_path("proc entry", &dst.join(n))?,
            ))
        })
        .collect::<Result<_, NulError>>()?;
    let mut masked = Vec::new();
    for n in PROC_MASKED.iter().filter(present) {
        masked.push((
            cstring("proc entry", n.as_bytes())?,
            cstring_path("proc entry", &dst.join(n))?,
            slots.proc_mask(),
        ));
    }
    Ok(MountInstr::Proc {
        dst: cstring_path("mount destination", dst)?,
        host_source,
        readonly,
        masked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepare::tests::plan_of;
    use crate::prepare::{Held, prepare};

    #[test]
    fn proc_without_a_pid_namespace_binds_the_hosts() {
        let proc = "[[mount]]\ntype = \"proc\"\ndst = \"/proc\"\n";
        let plan = plan_of(&format!("version = 1\n[namespaces]\npid = false\n{proc}"));
        assert!(matches!(&plan.mounts[0].op, MountOp::Proc { .. }));
        let prepared = prepare(&plan, Held::default()).unwrap();
        assert!(matches!(
            &prepared.mounts[0],
            MountInstr::Proc {
                host_source: Some(_),
                ..
            }
        ));
        // Control: with its own pid namespace, the sandbox gets a new one.
        let plan = plan_of(&format!("version = 1\n{proc}"));
        let prepared = prepare(&plan, Held::default()).unwrap();
        assert!(matches!(
            &prepared.mounts[0],
            MountInstr::Proc {
                host_source: None,
                ..
            }
        ));
    }
}
