//! The launcher's side: clone the sandbox, relay signals, report failures,
//! and exit the way the payload did.

pub mod join;
pub mod prepare;
pub mod report;
pub mod root;

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::cgroup;
use crate::child::{self, Pipes};
use crate::host::Host;
use crate::plan::Plan;
use crate::registry::{self, Registry, RegistryError};
use crate::sys;
use crate::volume::{self, VolumeError};
pub use report::Failure;

/// Exit code for hutch's own failures.
pub const EXIT_LAUNCH_FAILED: i32 = 125;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "hutch must be single-threaded when it creates the sandbox, but has {0} threads (this is a bug in hutch; please report it)"
    )]
    Threads(usize),
    #[error(transparent)]
    Prepare(#[from] prepare::PrepareError),
    #[error("cannot create the sandbox's namespaces: {}{}", .0.desc(), clone_help(*.0))]
    Clone(Errno),
    #[error("{what}: {}", .errno.desc())]
    Sys { what: &'static str, errno: Errno },
    /// The child reported a failed step.
    #[error("{0}")]
    Setup(Failure),
    /// The `[limits]` could not be applied.
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("cannot enter the sandbox's namespaces: {}", .0.desc())]
    Join(Errno),
    /// `[desktop]`'s launch directory or Wayland security context.
    #[error(transparent)]
    Desktop(#[from] crate::helpers::desktop::DesktopError),
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
            LaunchError::Setup(f) if f.step == report::Step::Exec => {
                if f.errno == Errno::ENOENT {
                    127
                } else {
                    126
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
/// `verbose` says on stderr where the limits were applied.
pub fn run(
    plan: &Plan,
    host: &Host,
    registry: Result<Option<Registry>, RegistryError>,
    name: Option<&str>,
    verbose: bool,
) -> Result<i32, LaunchError> {
    // A name the user chose and the volumes can refuse a launch (taken; in
    // use): they are settled before anything is cloned, and held until the
    // sandbox is gone. A generated name is reserved after clone instead,
    // while the child builds its filesystem (it costs ~40 us).
    let registry = registry?.expect("created if missing");
    let has_volumes = plan
        .mounts
        .iter()
        .any(|m| matches!(m.op, crate::plan::MountOp::Volume { .. }));
    let early_entry = if name.is_some() || has_volumes {
        Some(registry.reserve(name, plan)?)
    } else {
        None
    };
    let held = volume::acquire(plan, early_entry.as_ref().map_or("", |e| e.name()), host)?;
    // Held until the sandbox has exited.
    let upper = root::claim_upper(plan, host).map_err(prepare::PrepareError::from)?;
    // [desktop]: the files and the Wayland socket the binds take, held
    // (and then removed) until the sandbox has exited.
    let desktop = plan
        .desktop
        .as_ref()
        .map(|d| crate::helpers::desktop::Session::before_clone(d, host.uid))
        .transpose()?;
    let mut prepared = prepare::prepare(plan)?;
    prepared.volumes = held
        .volumes
        .iter()
        .map(|v| prepare::PinnedDir::of("volume", &v.dir))
        .collect::<Result<_, prepare::NulError>>()
        .map_err(prepare::PrepareError::from)?;
    prepared.upper = upper
        .as_ref()
        .map(root::ClaimedUpper::for_child)
        .transpose()
        .map_err(prepare::PrepareError::from)?;
    // cgroup limits: a cgroup directory is made before clone (the child is
    // cloned straight into it); a systemd scope after clone, while the
    // child waits on the go pipe. See crate::cgroup.
    let mut limits = match &plan.limits {
        Some(l) => Some(cgroup::Session::before_clone(l, verbose)?),
        None => None,
    };
    if limits.is_some() && plan.namespaces.cgroup {
        // Rooted at the limits cgroup, not at hutch's own.
        prepared.clone_flags &= !(libc::CLONE_NEWCGROUP as u64);
        prepared.unshare_cgroup_ns = true;
    }
    assert_single_threaded()?;

    let set = child::signal_set();
    // SAFETY: blocking signals in this (single) thread; the old mask is not needed.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let (report_r, report_w) = pipe()?;
    let (go_r, go_w) = pipe()?;

    // Bind sources, volumes, then the root's layer directories.
    let root_fds = prepared.root.as_ref().map_or(0, root::RootOp::fd_slots);
    let mut source_fds = vec![-1; prepared.sources.len() + prepared.volumes.len() + root_fds];
    // The child hands its namespaces back over this, for `hutch exec`.
    let handoff = sys::seqpacket_pair().map_err(|errno| LaunchError::Sys {
        what: "creating a socket pair",
        errno,
    })?;
    let mut clone_flags = prepared.clone_flags;
    let netns = if prepared.net_ns && child::netns::worth_a_helper() {
        clone_flags &= !(libc::CLONE_NEWNET as u64);
        // (the helper's end, the child's end)
        Some(sys::seqpacket_pair().map_err(|errno| LaunchError::Sys {
            what: "creating a socket pair",
            errno,
        })?)
    } else {
        None
    };
    let mut into = limits.as_ref().and_then(|l| l.clone_into());
    let pid = loop {
        prepared.wait_for_parent = limits.is_some() && into.is_none();
        match sys::clone_fork(clone_flags, into) {
            Ok(0) => child::run(
                &prepared,
                &mut source_fds,
                Pipes {
                    report: report_w.as_raw_fd(),
                    go: go_r.as_raw_fd(),
                    netns: netns.as_ref().map_or(-1, |(_, child)| child.as_raw_fd()),
                    handoff: handoff.1.as_raw_fd(),
                },
            ),
            Ok(pid) => break pid,
            // The kernel refused the cgroup, not the namespaces: clone
            // without it, and move the child before releasing it.
            Err(_) if into.is_some() => into = None,
            Err(e) => return Err(LaunchError::Clone(e)),
        }
    };
    drop(report_w);
    drop(go_r);
    drop(handoff.1);
    // The network namespace is made meanwhile, by a helper in the child's
    // user namespace (see child::netns).
    let helper = match netns {
        Some((helper_end, child_end)) => {
            let userns =
                std::ffi::CString::new(format!("/proc/{pid}/ns/user")).expect("no NUL in a number");
            let h = child::netns::start_helper(&userns, helper_end.as_raw_fd());
            drop((helper_end, child_end));
            match h {
                Ok(h) => Some(h),
                Err(errno) => {
                    kill_and_reap(pid);
                    return Err(LaunchError::Sys {
                        what: "starting the network namespace helper",
                        errno,
                    });
                }
            }
        }
        None => None,
    };
    let mut entry = match early_entry {
        Some(e) => e,
        None => match registry.reserve(None, plan) {
            Ok(e) => e,
            Err(e) => {
                kill_and_reap(pid);
                return Err(e.into());
            }
        },
    };
    // The limits (a D-Bus round trip for a systemd scope) while the child
    // waits on the go pipe; threads are allowed from here on.
    if let Some(l) = &mut limits
        && let Err(e) = l.after_clone(pid, into.is_some())
    {
        kill_and_reap(pid);
        return Err(e.into());
    }
    if prepared.wait_for_parent {
        // A child that already failed has closed its end: EPIPE, not a
        // SIGPIPE that would kill hutch before it reports why.
        // SAFETY: standard dispositions for one signal, set back right after.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let released = sys::write_all(go_w.as_raw_fd(), b"g");
        // SAFETY: as above.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        match released {
            // Its report says what went wrong; supervise reads it.
            Ok(()) | Err(Errno::EPIPE) => {}
            Err(errno) => {
                kill_and_reap(pid);
                return Err(LaunchError::Sys {
                    what: "releasing the sandbox",
                    errno,
                });
            }
        }
    }
    let new_session = prepared.new_session;
    // Every namespace the sandbox has, however it was made.
    let ns_flags = prepared.namespace_flags();
    drop(prepared);
    // The namespaces, held for the sandbox's life: `hutch exec` reopens
    // them through this process's descriptors (see registry::HeldNamespaces).
    let mut namespaces = None;
    let cgroup = limits.as_ref().map(|l| l.cgroup_dirs()).unwrap_or_default();
    let result = supervise(
        pid,
        helper,
        &report_r,
        &set,
        new_session,
        limits.as_mut(),
        &mut || {
            // Only now may `hutch exec` join it: the sandbox is built. (A
            // command that has already ended is not worth recording.)
            if exited(pid) {
                return;
            }
            let recorded = registry::HeldNamespaces::receive(&handoff.0, ns_flags)
                .map_err(|errno| RegistryError::Io {
                    what: "cannot receive the namespaces of",
                    path: format!("sandbox {}", entry.name()).into(),
                    errno,
                })
                .and_then(|ns| entry.running(pid, namespaces.insert(ns), cgroup.clone(), plan));
            if let Err(e) = recorded {
                eprintln!(
                    "hutch: warning: {e}; `hutch ps`, `exec` and `stop` will not see this sandbox"
                );
            }
        },
    );
    drop(go_w);
    drop(namespaces);
    drop(entry);
    drop(upper);
    drop(desktop);
    if let Err(e) = held.release() {
        eprintln!("hutch: warning: {e}");
    }
    let code = result?;
    Ok(match &mut limits {
        Some(l) => l.finish(code),
        None => code,
    })
}

/// Whether the child has exited, without reaping it.
fn exited(pid: libc::pid_t) -> bool {
    // SAFETY: an all-zero siginfo is valid storage for waitid to fill.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: info is valid for writes; WNOWAIT leaves the child unreaped.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: waitid filled info (si_pid stays 0 if nothing has exited).
    rc == 0 && unsafe { info.si_pid() } != 0
}

/// How long after the payload was executed the sandbox is recorded as
/// running (see `supervise`).
const STARTED_DELAY: std::time::Duration = std::time::Duration::from_millis(5);

/// Ends a child that has not been released yet.
fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: signalling our own child, reaped just below.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_plain(pid);
}

/// Waits for the sandbox while forwarding signals; decodes failures.
/// `started` runs [`STARTED_DELAY`] after the payload was executed, if the
/// sandbox is still running then.
/// With `limits`, the cgroup's event files are watched too (their changes
/// wake poll() with POLLPRI), to catch OOM kills while the cgroup exists.
fn supervise(
    pid: libc::pid_t,
    mut helper: Option<libc::pid_t>,
    report: &OwnedFd,
    set: &libc::sigset_t,
    new_session: bool,
    mut limits: Option<&mut cgroup::Session>,
    started: &mut dyn FnMut(),
) -> Result<i32, LaunchError> {
    // SAFETY: set is a valid sigset; -1 asks for a new descriptor.
    let sfd = unsafe { libc::signalfd(-1, set, libc::SFD_CLOEXEC) };
    if sfd < 0 {
        // Without a signalfd we can still wait; the child is running already.
        return Ok(wait_plain(pid));
    }
    let mut record = Vec::new();
    let mut report_open = true;
    let mut status = None;
    // memory.events and pids.events (-1: none; poll skips negative fds).
    let watched = limits.as_ref().map(|l| l.watch_fds()).unwrap_or_default();
    let watch = |i: usize| libc::pollfd {
        fd: watched.get(i).copied().unwrap_or(-1),
        events: libc::POLLPRI,
        revents: 0,
    };
    // When to call `started`: a little after the payload was executed, so
    // that a command that is over by then costs nothing.
    let mut started_at = None;
    while status.is_none() || report_open {
        if let Some(t) = started_at
            && status.is_none()
            && std::time::Instant::now() >= t
        {
            started_at = None;
            started();
        }
        let timeout = started_at.map_or(-1, |t: std::time::Instant| {
            // Rounded up: waking early would only spin.
            let us = t
                .saturating_duration_since(std::time::Instant::now())
                .as_micros();
            us.div_ceil(1000).min(1000) as libc::c_int
        });
        let mut fds = [
            libc::pollfd {
                fd: sfd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if report_open { report.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            watch(0),
            watch(1),
        ];
        // SAFETY: fds is a valid array of fds.len() pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            status = Some(wait_plain(pid));
            break;
        }
        if fds[2..].iter().any(|f| f.revents != 0)
            && let Some(l) = limits.as_mut()
        {
            l.refresh();
        }
        if fds[1].revents != 0 {
            let mut buf = [0u8; 2048];
            // SAFETY: buf is valid for its length.
            let r = unsafe { libc::read(report.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r > 0 {
                record.extend_from_slice(&buf[..r as usize]);
            } else if r == 0 || Errno::last() != Errno::EINTR {
                report_open = false;
                if r == 0 && record.is_empty() {
                    started_at = Some(std::time::Instant::now() + STARTED_DELAY);
                }
            }
        }
        if fds[0].revents != 0 {
            // SAFETY: an all-zero siginfo is valid storage.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: info is valid for `size` bytes.
            let r =
                unsafe { libc::read(sfd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
            if r != size as isize {
                continue;
            }
            let sig = info.ssi_signo as libc::c_int;
            if sig == libc::SIGCHLD {
                if let Some(h) = helper {
                    let mut st = 0;
                    // SAFETY: st is a valid out-pointer; h is our child.
                    if unsafe { libc::waitpid(h, &mut st, libc::WNOHANG) } == h {
                        helper = None;
                    }
                }
                let mut st = 0;
                // SAFETY: st is a valid out-pointer; pid is our child.
                if unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } == pid {
                    status = Some(child::init::exit_code(st));
                }
            } else if info.ssi_code != libc::SI_KERNEL || new_session {
                // Terminal-generated signals already reached a payload that
                // shares our terminal; anything else is relayed.
                // SAFETY: signalling our own, not yet reaped, child.
                unsafe { libc::kill(pid, sig) };
            }
        }
    }
    sys::close(sfd);
    if let Some(h) = helper {
        // It exits as soon as it has handed over the namespace (or failed to).
        let mut st = 0;
        // SAFETY: reaping our own child; st is a valid out-pointer.
        unsafe { libc::waitpid(h, &mut st, 0) };
    }
    if let Some(failure) = report::decode(&record) {
        return Err(LaunchError::Setup(failure));
    }
    Ok(status.unwrap_or(EXIT_LAUNCH_FAILED))
}

fn wait_plain(pid: libc::pid_t) -> i32 {
    loop {
        let mut st = 0;
        // SAFETY: st is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            return child::init::exit_code(st);
        }
        if r < 0 && Errno::last() != Errno::EINTR {
            return EXIT_LAUNCH_FAILED;
        }
    }
}
