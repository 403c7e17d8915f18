//! The profile's mounts lowered for the child: one [`MountInstr`] per
//! planned mount, every path a C string, every host path the child opens
//! first (bind sources, the host's /proc, /dev/null for masks, device
//! nodes) added to the sources.

use std::ffi::CString;
use std::path::Path;

use super::{NulError, cstring, cstring_path};
use crate::plan::mounts::{DEV_NODES, PROC_MASKED, PROC_READONLY};
use crate::plan::{MountOp, Plan};
use crate::sys;

/// One mount instruction for the child, applied in the plan's order on
/// the new root.
#[derive(Debug)]
pub enum MountInstr {
    Bind {
        source: usize,
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
        host_source: Option<usize>,
        /// Made read-only in place: (name inside /proc, full path for messages).
        readonly: Vec<(CString, CString)>,
        /// Covered with a read-only /dev/null: (name, full path, source index).
        masked: Vec<(CString, CString, usize)>,
    },
    /// `first_node` indexes the sources for [`DEV_NODES`], in that order.
    Dev {
        dst: CString,
        first_node: usize,
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
    },
}

/// The child's mount instructions for `plan.mounts`; host paths to open
/// are added to `sources`. A volume's bind points after the sources (the
/// launcher's opened volumes take those slots, in the plan's order).
pub fn lower(plan: &Plan, sources: &mut Vec<CString>) -> Result<Vec<MountInstr>, NulError> {
    let mut instrs = Vec::with_capacity(plan.mounts.len());
    // Instructions that bind volume number N, to point at their slot once
    // `sources` is complete.
    let mut volume_instrs = Vec::new();
    for m in &plan.mounts {
        let instr = match &m.op {
            MountOp::Volume { dst, readonly, .. } => {
                volume_instrs.push(instrs.len());
                let mut attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
                if *readonly {
                    attrs |= sys::MOUNT_ATTR_RDONLY;
                }
                MountInstr::Bind {
                    source: volume_instrs.len() - 1,
                    dst: cstring_path("mount destination", dst)?,
                    attrs,
                }
            }
            op => lower_one(op, plan.namespaces.pid, sources)?,
        };
        instrs.push(instr);
    }
    for &i in &volume_instrs {
        if let MountInstr::Bind { source, .. } = &mut instrs[i] {
            *source += sources.len();
        }
    }
    Ok(instrs)
}

/// Every mount but a volume.
fn lower_one(
    op: &MountOp,
    pid_ns: bool,
    sources: &mut Vec<CString>,
) -> Result<MountInstr, NulError> {
    Ok(match op {
        MountOp::Bind {
            src,
            dst,
            readonly,
            devices,
        } => {
            sources.push(cstring_path("bind source", src)?);
            let mut attrs = sys::MOUNT_ATTR_NOSUID;
            if !devices {
                attrs |= sys::MOUNT_ATTR_NODEV;
            }
            if *readonly {
                attrs |= sys::MOUNT_ATTR_RDONLY;
            }
            MountInstr::Bind {
                source: sources.len() - 1,
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
        MountOp::Proc { dst } => proc(dst, pid_ns, sources)?,
        MountOp::Dev { dst } => {
            let first_node = sources.len();
            for node in DEV_NODES {
                sources.push(cstring("device", format!("/dev/{node}").as_bytes())?);
            }
            MountInstr::Dev {
                dst: cstring_path("mount destination", dst)?,
                first_node,
            }
        }
        MountOp::Dir { dst, mode } => MountInstr::Dir {
            dst: cstring_path("directory", dst)?,
            mode: *mode,
        },
        MountOp::Symlink { target, dst } => MountInstr::Symlink {
            target: cstring_path("symlink target", target)?,
            dst: cstring_path("symlink", dst)?,
        },
        MountOp::File { dst, content, mode } => MountInstr::File {
            dst: cstring_path("file", dst)?,
            content: content.as_bytes().to_vec(),
            mode: *mode,
        },
        MountOp::Volume { .. } => unreachable!("volumes are lowered by the caller"),
    })
}

/// A /proc: new in the sandbox's pid namespace, else the host's bound
/// (a sandbox without a pid namespace of its own may not mount one);
/// either way with the sensitive entries made read-only or masked.
fn proc(dst: &Path, pid_ns: bool, sources: &mut Vec<CString>) -> Result<MountInstr, NulError> {
    let host_source = if pid_ns {
        None
    } else {
        sources.push(cstring("proc", b"/proc")?);
        Some(sources.len() - 1)
    };
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
        sources.push(cstring("device", b"/dev/null")?);
        masked.push((
            cstring("proc entry", n.as_bytes())?,
            cstring_path("proc entry", &dst.join(n))?,
            sources.len() - 1,
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
    use crate::prepare::prepare;
    use crate::prepare::tests::plan_of;

    #[test]
    fn proc_without_a_pid_namespace_binds_the_hosts() {
        let proc = "[[mount]]\ntype = \"proc\"\ndst = \"/proc\"\n";
        let plan = plan_of(&format!("version = 1\n[namespaces]\npid = false\n{proc}"));
        assert!(matches!(&plan.mounts[0].op, MountOp::Proc { .. }));
        let prepared = prepare(&plan).unwrap();
        assert!(matches!(
            &prepared.mounts[0],
            MountInstr::Proc {
                host_source: Some(_),
                ..
            }
        ));
        // Control: with its own pid namespace, the sandbox gets a new one.
        let plan = plan_of(&format!("version = 1\n{proc}"));
        let prepared = prepare(&plan).unwrap();
        assert!(matches!(
            &prepared.mounts[0],
            MountInstr::Proc {
                host_source: None,
                ..
            }
        ));
    }
}
