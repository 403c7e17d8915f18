//! The launcher's side: reserve what the sandbox holds, clone it, start its
//! helpers, release it, relay signals, report failures, and exit the way
//! the payload did. [`run`] reads as those stages, in order.

pub mod join;
pub mod report;
pub mod reserve;
mod supervise;
pub mod terminal;

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::child;
use crate::helpers::{CloneSetup, HelperError, Helpers, Started};
use crate::host::Host;
use crate::plan::Plan;
use crate::prepare::{self, Barrier, Pipes, Prepared, report::Step};
use crate::registry::{self, Registry, RegistryError};
use crate::sys;
use crate::volume::VolumeError;
pub use report::Failure;
use reserve::Reserved;
use supervise::{Signals, kill_and_reap};

/// Exit code for hutch's own failures.
pub use crate::exit::FAILED as EXIT_LAUNCH_FAILED;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "hutch must be single-threaded when it creates the sandbox, but has {0} threads (this is a bug in hutch; please report it)"
    )]
    Threads(usize),
    #[error(transparent)]
    Prepare(#[from] prepare::PrepareError),
    #[error(transparent)]
    Upper(#[from] reserve::UpperError),
    #[error("cannot create the sandbox's namespaces: {}{}", .0.desc(), clone_help(*.0))]
    Clone(Errno),
    #[error("{what}: {}", .errno.desc())]
    Sys { what: &'static str, errno: Errno },
    /// The child reported a failed step.
    #[error("{0}")]
    Setup(Failure),
    /// A helper failed (the `[limits]` could not be applied, ...).
    #[error(transparent)]
    Helper(#[from] HelperError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("cannot enter the sandbox's namespaces: {}", .0.desc())]
    Join(Errno),
}

fn clone_help(e: Errno) -> &'static str {
    match e {
        Errno::EPERM => {
            " (unprivileged user namespaces are disabled or restricted here: see `hutch doctor`; on Ubuntu install packaging/apparmor/hutch, elsewhere check the sysctls kernel.unprivileged_userns_clone and user.max_user_namespaces)"
        }
        Errno::ENOSPC | Errno::EUSERS => {
            " (the limit on namespaces is reached: raise user.max_user_namespaces or the other user.max_*_namespaces sysctls)"
        }
        Errno::EINVAL => {
            " (the kernel does not support one of the requested namespaces; see `hutch doctor`)"
        }
        _ => "",
    }
}

impl LaunchError {
    /// The exit code hutch uses for this failure: 127/126 when the command
    /// could not be executed (like a shell), 125 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            LaunchError::Setup(f) if f.step == Step::Exec => {
                if f.errno == Errno::ENOENT {
                    crate::exit::NOT_FOUND
                } else {
                    crate::exit::CANNOT_EXECUTE
                }
            }
            _ => EXIT_LAUNCH_FAILED,
        }
    }
}

/// Checks the invariant that makes clone safe: no other thread can hold a
/// lock the child would need.
fn assert_single_threaded() -> Result<(), LaunchError> {
    // procfs gives a task directory one link per thread plus two: a single
    // stat instead of reading and parsing /proc/self/status.
    use std::os::unix::fs::MetadataExt;
    let links = std::fs::metadata("/proc/self/task")
        .map_err(|e| LaunchError::Sys {
            what: "reading /proc/self/task",
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?
        .nlink();
    let threads = links.saturating_sub(2) as usize;
    if threads != 1 {
        return Err(LaunchError::Threads(threads));
    }
    Ok(())
}

fn pipe() -> Result<(OwnedFd, OwnedFd), LaunchError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|errno| LaunchError::Sys {
        what: "creating a pipe",
        errno,
    })
}

/// Runs the plan; returns the exit code hutch should exit with. `registry` is
/// the caller's `Registry::open(host, true)`, whose error is reported here.
/// `verbose` says on stderr what the helpers do.
pub fn run(
    plan: &Plan,
    host: &Host,
    registry: Result<Option<Registry>, RegistryError>,
    name: Option<&str>,
    verbose: bool,
) -> Result<i32, LaunchError> {
    run_with(plan, host, registry, name, verbose).map(|(code, _)| code)
}

/// Runs a learning plan (`security.seccomp.learn`, see `hutch learn`):
/// the exit code and what the run was seen to do.
pub fn learn(
    plan: &Plan,
    host: &Host,
    registry: Result<Option<Registry>, RegistryError>,
    name: Option<&str>,
    verbose: bool,
) -> Result<(i32, crate::helpers::learn::Journal), LaunchError> {
    let (code, journal) = run_with(plan, host, registry, name, verbose)?;
    Ok((code, journal.unwrap_or_default()))
}

fn run_with(
    plan: &Plan,
    host: &Host,
    registry: Result<Option<Registry>, RegistryError>,
    name: Option<&str>,
    verbose: bool,
) -> Result<(i32, Option<crate::helpers::learn::Journal>), LaunchError> {
    // Reserve what can refuse the launch, before anything is cloned.
    let registry = registry?.expect("created if missing");
    let mut reserved = Reserved::take(plan, host, &registry, name)?;
    // Prepare: the plan lowered for the child.
    let mut prepared = prepare::prepare(plan, reserved.for_child()?)?;
    // The payload's own terminal starts as the caller's is now.
    if let Some(pty) = &mut prepared.pty {
        pty.mode = terminal::caller_mode();
    }
    // Helpers before clone, while hutch is single-threaded.
    let mut helpers = Helpers::for_plan(plan)?;
    let channels = Channels::open(prepared.pty.is_some())?;
    let mut pipes = channels.pipes();
    let mut setup = CloneSetup {
        flags: prepared.clone_flags,
        into_cgroup: None,
        prepared: &mut prepared,
        pipes: &mut pipes,
    };
    helpers.before_clone(&mut setup)?;
    // Clone.
    let signals = Signals::block(channels.terminal.is_some())?;
    let child = clone(&mut setup, &mut helpers)?;
    let Channels {
        report,
        go,
        handoff,
        terminal,
        child_ends,
    } = channels;
    drop(child_ends);
    let mut relay = terminal.map(|(ours, _)| terminal::Relay::new(ours));
    // Helpers start while the child waits at its barriers; a generated
    // name is reserved meanwhile.
    let entry = after_clone(plan, &registry, &mut reserved, &mut helpers, &child);
    let mut entry = entry.inspect_err(|_| kill_and_reap(child.pid))?;
    if verbose {
        for line in helpers.describe() {
            crate::diag::note(&line);
        }
    }
    release(&go, &prepared, Barrier::Early).inspect_err(|_| kill_and_reap(child.pid))?;
    // Helpers that work on the child's namespaces get ready while the
    // child builds its filesystem; it waits before confining itself.
    if let Err(e) = helpers.ready() {
        kill_and_reap(child.pid);
        // A child that failed first took the namespaces with it: its own
        // report says what went wrong.
        return Err(match supervise::read_failure(&report) {
            Some(f) => LaunchError::Setup(f),
            None => e.into(),
        });
    }
    release(&go, &prepared, Barrier::Late).inspect_err(|_| kill_and_reap(child.pid))?;
    // Supervise, until the sandbox has exited.
    let new_session = prepared.new_session;
    // Every namespace the sandbox has, however it was made.
    let ns_flags = prepared.namespace_flags();
    drop(prepared);
    let cgroup = helpers
        .cgroup
        .as_ref()
        .map(|c| c.cgroup_dirs())
        .unwrap_or_default();
    // The namespaces, held for the sandbox's life: `hutch exec` reopens
    // them through this process's descriptors (see registry::HeldNamespaces).
    let mut namespaces = None;
    let result = supervise::supervise(
        child.pid,
        &report,
        &signals,
        new_session,
        &mut helpers,
        relay.as_mut(),
        &mut || {
            // Only now may `hutch exec` join it: the sandbox is built. (A
            // command that has already ended is not worth recording.)
            if supervise::exited(child.pid) {
                return;
            }
            let recorded = registry::HeldNamespaces::receive(&handoff, ns_flags, entry.name())
                .and_then(|ns| {
                    entry.running(child.pid, namespaces.insert(ns), cgroup.clone(), plan)
                });
            if let Err(e) = recorded {
                crate::diag::warning(format_args!(
                    "{e}; `hutch ps`, `exec` and `stop` will not see this sandbox"
                ));
            }
        },
    );
    // Finish: let go of what the sandbox held, then the helpers.
    drop(go);
    drop(namespaces);
    drop(entry);
    reserved.release();
    let code = result?;
    let code = helpers.finish(code);
    Ok((code, helpers.learn.as_ref().map(|l| l.journal())))
}

/// The pipes and the socket pair between the launcher and the child.
struct Channels {
    /// Read end: the child's failure record.
    report: OwnedFd,
    /// Write end: a byte per barrier.
    go: OwnedFd,
    /// The child hands its namespaces back over this, for `hutch exec`.
    handoff: OwnedFd,
    /// With a pseudo-terminal: ours and the child's end of the socket its
    /// master and the payload's stops arrive on.
    terminal: Option<(OwnedFd, OwnedFd)>,
    /// The child's ends (report, go, handoff), closed here once cloned.
    child_ends: [OwnedFd; 3],
}

impl Channels {
    fn open(pty: bool) -> Result<Channels, LaunchError> {
        let (report_r, report_w) = pipe()?;
        let (go_r, go_w) = pipe()?;
        let socket_pair = || {
            sys::seqpacket_pair().map_err(|errno| LaunchError::Sys {
                what: "creating a socket pair",
                errno,
            })
        };
        let (handoff, handoff_child) = socket_pair()?;
        let terminal = if pty { Some(socket_pair()?) } else { None };
        Ok(Channels {
            report: report_r,
            go: go_w,
            handoff,
            terminal,
            child_ends: [report_w, go_r, handoff_child],
        })
    }

    /// The child's ends, as the child knows them.
    fn pipes(&self) -> Pipes {
        let [report, go, handoff] = &self.child_ends;
        Pipes {
            report: report.as_raw_fd(),
            go: go.as_raw_fd(),
            netns: -1,
            learn: -1,
            handoff: handoff.as_raw_fd(),
            terminal: self
                .terminal
                .as_ref()
                .map_or(-1, |(_, child)| child.as_raw_fd()),
        }
    }
}

/// Clones the child, which applies `setup.prepared` and never returns
/// here. The child's descriptors are allocated first: the child must not.
fn clone(setup: &mut CloneSetup<'_>, helpers: &mut Helpers) -> Result<Started, LaunchError> {
    assert_single_threaded()?;
    let mut descriptors = setup.prepared.slots.descriptors();
    loop {
        setup.prepared.barriers = helpers.barriers(setup);
        match sys::clone_fork(setup.flags, setup.into_cgroup) {
            Ok(0) => child::run(setup.prepared, &mut descriptors, *setup.pipes),
            Ok(pid) => {
                return Ok(Started {
                    pid,
                    in_cgroup: setup.into_cgroup.is_some(),
                });
            }
            // The kernel refused the cgroup, not the namespaces: clone
            // without it; its helper moves the child before releasing it.
            Err(_) if setup.into_cgroup.is_some() => setup.into_cgroup = None,
            Err(e) => return Err(LaunchError::Clone(e)),
        }
    }
}

/// Starts the helpers (threads are allowed from here on) and reserves a
/// generated name, while the child builds its filesystem or waits at its
/// barriers. On error the caller ends the child.
fn after_clone<'r>(
    plan: &Plan,
    registry: &'r Registry,
    reserved: &mut Reserved<'r>,
    helpers: &mut Helpers,
    child: &Started,
) -> Result<registry::Entry<'r>, LaunchError> {
    helpers.start(child)?;
    reserved.reserve_name(plan, registry)
}

/// Lets the child past `barrier`, if it waits there: a byte.
fn release(go: &OwnedFd, prepared: &Prepared, barrier: Barrier) -> Result<(), LaunchError> {
    if !prepared.barriers.has(barrier) {
        return Ok(());
    }
    // A child that already failed has closed its end: EPIPE, not a
    // SIGPIPE that would kill hutch before it reports why.
    let released = sys::without_sigpipe(|| sys::write_all(go.as_raw_fd(), b"g"));
    match released {
        // Its report says what went wrong; supervise reads it.
        Ok(()) | Err(Errno::EPIPE) => Ok(()),
        Err(errno) => Err(LaunchError::Sys {
            what: "releasing the sandbox",
            errno,
        }),
    }
}
