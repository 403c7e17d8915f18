//! Running a profile elsewhere: `hutch export oci` writes the plan hutch
//! would run as an OCI runtime bundle (`config.json`, `rootfs/` and the
//! seccomp filter as `seccomp.json`), which crun and runc run, and through
//! them Podman, containerd, CRI-O and Kubernetes.
//!
//! Data flows as for `run`: profile → plan → [`oci::export`] (pure but for
//! whether each bind's source is a file: the bundle as data, and what it
//! cannot express) → [`bundle::write`]. Nothing is launched.

pub mod bundle;
pub mod command;
pub mod oci;
pub mod seccomp_json;

use crate::host::Host;
use crate::host::cgroups::{CgroupDir, CgroupHost, V2Host};

/// The Landlock ABI a bundle is planned for: the newest hutch knows, so
/// that the rules recorded in the bundle's annotations are complete.
pub const TARGET_LANDLOCK_ABI: u32 = 7;

/// The host a bundle is planned for. The caller (ids, home, working
/// directory, environment) and the paths the profile binds are this
/// machine's; the kernel is the one the bundle will run on, which is not
/// known here: planning assumes one that has what hutch can use (Landlock,
/// whose rules the bundle can only record, and a cgroup v2 hierarchy with
/// the cpu, io, memory and pids controllers for the runtime to apply
/// `[limits]`), so that exporting never fails for what this kernel lacks.
/// Standard input counts as no terminal: an engine, not this shell, starts
/// the container.
pub fn target_host(host: Host) -> Host {
    let controllers: Vec<String> = ["cpu", "io", "memory", "pids"].map(String::from).to_vec();
    // The container's cgroup as a runtime gets it: a delegated v2 subtree.
    let delegated = CgroupDir {
        path: "/oci-runtime".into(),
        controllers: controllers.clone(),
        subtree: controllers,
        writable: true,
    };
    let cgroups = CgroupHost {
        uid: host.uid,
        v2: Some(V2Host {
            mount: "/sys/fs/cgroup".into(),
            unified: true,
            own: "/oci-runtime/container".into(),
            parent: Some(delegated.clone()),
            top: delegated,
            user_manager: None,
        }),
        v2_missing: None,
        v1: Vec::new(),
        bus: None,
        bus_missing: Some("the OCI runtime applies the limits".into()),
    };
    host.with_landlock_abi(TARGET_LANDLOCK_ABI)
        .with_cgroups(cgroups)
        .with_stdin_tty(false)
}
