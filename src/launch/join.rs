//! `hutch exec`: runs a command inside a running sandbox, confined exactly as
//! its payload is.
//!
//! The sandbox's record (see `crate::registry`) gives its plan, and its
//! namespaces as descriptors its launcher holds; `Registry::target` has
//! verified the launcher and reopened those descriptors. hutch joins every
//! namespace (the user namespace first), forks (the child is born in the
//! sandbox's pid namespace), and the child
//! applies `child::confine` to a `Prepared` built from the recorded plan —
//! the very function the payload went through, so capabilities, no_new_privs,
//! rlimits, Landlock and seccomp are the same, never fewer — then executes the
//! command. This process, left in the sandbox's user namespace, drops its
//! capabilities there and only relays signals and the exit status. With
//! `[limits]`, it first enters the sandbox's cgroup, so the command counts
//! against the same limits (refused if the kernel says no and the limits are
//! required).
//!
//! Landlock: the command gets a ruleset equal to the payload's, in a domain of
//! its own; with signal and abstract-socket scoping (`[landlock] scope`) it
//! can then neither signal the payload nor be signalled by it.

use std::os::fd::AsRawFd;

use super::supervise::{self, Signals, kill_and_reap};
use super::{LaunchError, assert_single_threaded, pipe};
use crate::child;
use crate::helpers::{HelperError, Helpers};
use crate::host::Host;
use crate::plan::Plan;
use crate::prepare::{self, Pipes};
use crate::registry::Target;
use crate::sys;

/// Runs `command` in the sandbox `target`; returns the exit code.
pub fn exec(
    target: Target<Plan>,
    command: Vec<std::ffi::OsString>,
    host: &Host,
) -> Result<i32, LaunchError> {
    let mut plan = target.plan;
    plan.argv = command;
    plan.init = false;
    // The command joins the sandbox's mounts: nothing is mounted, nothing
    // is held for it.
    plan.mounts.clear();
    plan.root = None;
    // A watched sandbox (`hutch learn`, `--report-denied`): the command
    // gets the run's own filter, unwatched — the learning filter denies
    // the same calls, through its recorder, which is not the command's.
    plan.security.seccomp.learn = false;
    let mut prepared = prepare::prepare(&plan, prepare::Held::default())?;
    // Keep the caller's terminal only where the payload could have: when
    // the sandbox's filter blocks TIOCSTI and TIOCLINUX.
    prepared.new_session = !(host.stdin_is_tty() && plan.security.seccomp.blocks_tty_injection());
    // The payload's own terminal belongs to the payload.
    prepared.pty = None;
    // Once inside, no process of the sandbox may read or trace this one.
    sys::prctl(libc::PR_SET_DUMPABLE, 0).map_err(|errno| LaunchError::Sys {
        what: "cannot make hutch non-dumpable",
        errno,
    })?;
    assert_single_threaded()?;
    // The sandbox's [limits] bind the command too: this process enters its
    // cgroup while it can still name it (before the cgroup namespace), and
    // the command, forked below, starts there.
    join_cgroup(&target.record.cgroup, &plan)?;

    let signals = Signals::block(false)?;
    let (report_r, report_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    // The user namespace first: joining it grants what joining the others needs.
    for (flag, fd) in &target.namespaces {
        sys::setns(fd.as_raw_fd(), *flag).map_err(LaunchError::Join)?;
    }
    let pid = sys::clone_fork(0, None).map_err(|errno| LaunchError::Sys {
        // ENOMEM: the sandbox's init has exited, its pid namespace takes
        // no new process.
        what: "cannot start the command in the sandbox (has it just ended?)",
        errno,
    })?;
    if pid == 0 {
        child::join::run(
            &prepared,
            Pipes {
                report: report_w.as_raw_fd(),
                go: go_r.as_raw_fd(),
                netns: -1,
                handoff: -1,
                learn: -1,
                terminal: -1,
            },
        );
    }
    drop(report_w);
    drop(go_r);
    // This process stays in the sandbox's user namespace with the
    // capabilities joining gave it there: drop them, it only waits.
    if let Err(f) = child::security::drop_privileges() {
        kill_and_reap(pid);
        return Err(LaunchError::Setup(super::Failure {
            step: f.step,
            errno: f.errno,
            arg: Default::default(),
        }));
    }
    let new_session = prepared.new_session;
    drop(prepared);
    // The command has no helpers of its own.
    let mut helpers = Helpers::default();
    let result = supervise::supervise(
        pid,
        &report_r,
        &signals,
        new_session,
        &mut helpers,
        None,
        &mut || {},
    );
    drop(go_w);
    result
}

/// Moves this process into the sandbox's cgroup directories. If the kernel
/// refuses, required limits stop the command; best-effort ones are reported.
fn join_cgroup(dirs: &[std::path::PathBuf], plan: &crate::plan::Plan) -> Result<(), LaunchError> {
    use std::io::Write;
    for dir in dirs {
        let path = dir.join("cgroup.procs");
        let moved = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{}\n", std::process::id()).as_bytes()));
        if let Err(e) = moved {
            let required = plan
                .limits
                .as_ref()
                .is_some_and(|l| l.enforce == crate::profile::schema::Enforce::Required);
            let err = crate::helpers::cgroup::CgroupError::io(
                "put the command in the sandbox's cgroup (for its [limits])",
                path,
                e,
            );
            if required {
                return Err(HelperError::from(err).into());
            }
            crate::diag::warning(format_args!("not enforced: {err}"));
        }
    }
    Ok(())
}
