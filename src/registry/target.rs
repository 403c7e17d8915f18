//! Verifying the sandbox a record names before `exec` joins it or `stop`
//! signals it: the processes are held by pidfds and checked against the
//! record (start time, parent, executable, owner), so that a stale or
//! forged record cannot point them at another process (CVE-2022-31214).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{OFlag, open};
use nix::sys::stat::{Mode, fstat};
use serde::de::DeserializeOwned;

use super::namespaces::{NS_KINDS, ns_flag};
use super::procfs::{ProcId, exe_id, proc_stat, proc_uid};
use super::record::{NsRef, Record, State};
use super::{Registry, RegistryError};
use crate::sys;

/// A running sandbox, checked against its record: its namespaces (opened
/// from its verified launcher, in joining order, with their clone flags)
/// and its plan, read as the type `P` the caller asks for. What `exec`
/// joins.
pub struct Target<P> {
    pub namespaces: Vec<(libc::c_int, OwnedFd)>,
    pub record: Record,
    pub plan: P,
}

fn mismatch(r: &Record, why: impl Into<String>) -> RegistryError {
    RegistryError::Mismatch {
        name: r.name.clone(),
        why: why.into(),
    }
}

/// Holds `p` with a pidfd after checking it is still the process recorded.
fn pin(r: &Record, p: &ProcId, what: &str) -> Result<OwnedFd, RegistryError> {
    sys::pidfd_open(p.pid).map_err(|e| {
        mismatch(
            r,
            format!("its {what} (pid {}) is gone: {}", p.pid, e.desc()),
        )
    })
}

/// Checks that the launcher a record names is that launcher: same start
/// time, same executable, same owner.
fn check_launcher(r: &Record, uid: u32) -> Result<(), RegistryError> {
    let l = &r.launcher;
    if !r.launcher_alive() {
        return Err(mismatch(r, format!("its launcher (pid {}) is gone", l.pid)));
    }
    // (Recorded once running; a sandbox still starting is checked by its
    // start time and owner only.)
    if r.state == State::Running && exe_id(&l.pid.to_string()) != Some(r.exe) {
        return Err(mismatch(
            r,
            format!("process {} does not run the executable recorded", l.pid),
        ));
    }
    if proc_uid(l.pid) != Some(uid) || r.uid != uid {
        return Err(mismatch(r, format!("process {} is not yours", l.pid)));
    }
    Ok(())
}

/// Checks that the sandbox's first process is the one recorded: started
/// then, a child of the launcher, the caller's.
fn check_init(r: &Record, init: &ProcId, uid: u32) -> Result<(), RegistryError> {
    match proc_stat(init.pid) {
        Some((ppid, start)) if start == init.start && ppid == r.launcher.pid => {}
        Some(_) => {
            return Err(mismatch(
                r,
                format!(
                    "process {} is not the one recorded (its pid was reused)",
                    init.pid
                ),
            ));
        }
        None => return Err(RegistryError::NotFound(r.name.clone())),
    }
    if proc_uid(init.pid) != Some(uid) {
        return Err(mismatch(r, format!("process {} is not yours", init.pid)));
    }
    Ok(())
}

/// Opens the namespace `ns` from the launcher's descriptor, and checks it
/// is of the kind and inode recorded.
fn open_namespace(r: &Record, ns: &NsRef) -> Result<(libc::c_int, OwnedFd), RegistryError> {
    let Some(flag) = ns_flag(&ns.kind) else {
        return Err(mismatch(r, format!("unknown namespace kind {:?}", ns.kind)));
    };
    let path = format!("/proc/{}/fd/{}", r.launcher.pid, ns.fd);
    let fd = open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        mismatch(
            r,
            format!(
                "cannot open its {} namespace from its launcher: {}",
                ns.kind,
                e.desc()
            ),
        )
    })?;
    let same = fstat(&fd).is_ok_and(|st| (st.st_dev, st.st_ino) == (ns.dev, ns.ino));
    if !same || sys::ns_type(fd.as_fd()) != Ok(flag) {
        return Err(mismatch(
            r,
            format!(
                "descriptor {} of process {} is not its {} namespace",
                ns.fd, r.launcher.pid, ns.kind
            ),
        ));
    }
    Ok((flag, fd))
}

/// Confirms a pidfd still refers to a live process: if so, whatever was
/// read from `/proc/PID` before was about that very process.
fn still_alive(r: &Record, pidfd: &OwnedFd, pid: i32) -> Result<(), RegistryError> {
    sys::pidfd_send_signal(pidfd.as_raw_fd(), 0).map_err(|e| {
        mismatch(
            r,
            format!("process {pid} ended while being checked: {}", e.desc()),
        )
    })
}

impl Registry {
    /// The sandbox `name`, verified: its launcher is alive, started when
    /// recorded, runs the recorded hutch executable and is the caller's; its
    /// first process is alive and the launcher's child; and each namespace
    /// descriptor taken from the launcher is of the recorded kind and inode.
    pub fn target<P: DeserializeOwned>(&self, name: &str) -> Result<Target<P>, RegistryError> {
        let r = self.find(name)?;
        let (Some(init), Some(plan)) = (r.init, r.plan.as_ref()) else {
            return Err(RegistryError::Starting(name.into()));
        };
        let plan = serde_json::from_str(plan.get()).map_err(|e| RegistryError::Plan {
            name: name.to_string(),
            error: e.to_string(),
        })?;
        let launcher = pin(&r, &r.launcher, "launcher")?;
        check_launcher(&r, self.uid)?;
        check_init(&r, &init, self.uid)?;
        let mut namespaces = r
            .namespaces
            .iter()
            .map(|ns| open_namespace(&r, ns))
            .collect::<Result<Vec<_>, _>>()?;
        namespaces.sort_by_key(|(flag, _)| NS_KINDS.iter().position(|(_, f)| f == flag));
        // The launcher is still the process all of this was read from.
        still_alive(&r, &launcher, r.launcher.pid)?;
        Ok(Target {
            namespaces,
            record: r,
            plan,
        })
    }

    /// The launcher of sandbox `name`, verified and held by a pidfd: what
    /// `stop` signals.
    pub fn launcher(&self, name: &str) -> Result<(Record, OwnedFd), RegistryError> {
        let r = match self.find(name) {
            Err(RegistryError::Starting(_)) => self
                .read(name)?
                .ok_or_else(|| RegistryError::NotFound(name.into()))?,
            other => other?,
        };
        let pidfd = pin(&r, &r.launcher, "launcher")?;
        check_launcher(&r, self.uid)?;
        still_alive(&r, &pidfd, r.launcher.pid)?;
        Ok((r, pidfd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Host;
    use crate::registry::HeldNamespaces;
    use serde::{Deserialize, Serialize};
    use std::os::unix::fs::PermissionsExt;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Plan {
        argv: Vec<String>,
        init: bool,
    }

    /// The registry keeps a plan as it was given, without knowing its
    /// type, and `exec` gets it back as the type it asks for; one it does
    /// not fit is named as such, not taken for a missing sandbox.
    #[test]
    fn a_plan_is_kept_as_given_and_read_back_as_asked() {
        let runtime = tempfile::tempdir().unwrap();
        std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let env = [("XDG_RUNTIME_DIR", runtime.path().to_str().unwrap())];
        let uid = nix::unistd::getuid().as_raw();
        let host = Host::fixed(uid, nix::unistd::getgid().as_raw(), &env, "/");
        let registry = Registry::open(&host, true).unwrap().unwrap();
        let mut entry = registry
            .reserve(Some("t"), "cli", &["sleep".into()], &[])
            .unwrap();
        assert!(matches!(
            registry.target::<Plan>("t"),
            Err(RegistryError::Starting(_))
        ));
        // The sandbox's first process: a child of this "launcher".
        let mut init = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let plan = Plan {
            argv: vec!["sh".into(), "-c".into(), "x".into()],
            init: true,
        };
        let pid = init.id() as i32;
        entry
            .running(pid, &HeldNamespaces::none(), Vec::new(), &plan)
            .unwrap();
        let target = registry.target::<Plan>("t").unwrap();
        assert_eq!(target.plan, plan);
        assert_eq!(target.record.init.map(|i| i.pid), Some(pid));
        #[derive(Debug, Deserialize)]
        struct Other {
            #[allow(dead_code, reason = "only its absence is tested")]
            rules: Vec<u32>,
        }
        let e = registry.target::<Other>("t").err().unwrap();
        assert!(matches!(e, RegistryError::Plan { .. }), "{e}");
        init.kill().unwrap();
        init.wait().unwrap();
        drop(entry);
        assert!(matches!(
            registry.find("t"),
            Err(RegistryError::NotFound(_))
        ));
    }
}
