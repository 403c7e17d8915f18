//! Waiting for the sandbox: relaying signals to it, waking the helpers
//! whose descriptors changed, reading what the child reports, and saying
//! when the sandbox has started.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd, siginfo};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

use super::terminal::{Relay, Watched};
use super::{EXIT_LAUNCH_FAILED, Failure, LaunchError};
use crate::helpers::Helpers;
use crate::prepare::FORWARDED;
use crate::sys;

/// How long after the payload was executed the sandbox is recorded as
/// running (see [`supervise`]).
const STARTED_DELAY: Duration = Duration::from_millis(5);

/// The signals the launcher relays, and SIGCHLD.
pub struct Signals(SigSet);

impl Signals {
    /// Blocks them in this thread, before clone: the child starts with them
    /// blocked too (its init reads them from a signalfd), and the launcher
    /// reads them from one in [`supervise`]. With a terminal `relay`, SIGCONT
    /// too: hutch takes the terminal back when continued.
    pub fn block(relay: bool) -> Result<Signals, LaunchError> {
        let mut set = SigSet::empty();
        for &s in FORWARDED.iter().chain(&[libc::SIGCHLD]) {
            set.add(Signal::try_from(s).expect("a signal nix knows"));
        }
        if relay {
            set.add(Signal::SIGCONT);
        }
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None).map_err(|errno| LaunchError::Sys {
            what: "blocking the signals hutch relays",
            errno,
        })?;
        Ok(Signals(set))
    }
}

/// What the loop has learnt so far.
#[derive(Default)]
struct Progress {
    /// What the child wrote on the report pipe.
    record: Vec<u8>,
    report_open: bool,
    /// The sandbox's exit code, once it has exited.
    status: Option<i32>,
    /// When to call `started`.
    started_at: Option<Instant>,
}

/// Waits for the sandbox `pid` while relaying signals; returns its exit
/// code, or the step it reported as failed. `started` runs
/// [`STARTED_DELAY`] after the payload was executed, if the sandbox is
/// still running then (a command that is over by then costs nothing).
/// The helpers' descriptors are polled too (cgroup event files, a
/// helper process that exited), and with `relay` the terminals it joins.
pub fn supervise(
    pid: libc::pid_t,
    report: &OwnedFd,
    signals: &Signals,
    new_session: bool,
    helpers: &mut Helpers,
    mut relay: Option<&mut Relay>,
    started: &mut dyn FnMut(),
) -> Result<i32, LaunchError> {
    let Ok(sfd) = SignalFd::with_flags(&signals.0, SfdFlags::SFD_CLOEXEC) else {
        // Without a signalfd we can still wait; the child is running already.
        return Ok(wait_plain(pid));
    };
    let mut p = Progress {
        report_open: true,
        ..Progress::default()
    };
    while p.status.is_none() || p.report_open {
        if let Some(t) = p.started_at
            && p.status.is_none()
            && Instant::now() >= t
        {
            p.started_at = None;
            started();
        }
        let Some(woke) = wait_for_events(&sfd, report, &p, helpers, relay.as_deref()) else {
            p.status = Some(wait_plain(pid));
            break;
        };
        for helper in woke.helpers {
            helpers.woken(helper);
        }
        if woke.report {
            read_report(report, &mut p);
        }
        if let Some(relay) = relay.as_deref_mut() {
            for what in woke.terminal {
                relay.ready(what);
            }
        }
        if woke.signal
            && let Ok(Some(info)) = sfd.read_signal()
        {
            on_signal(pid, &info, new_session, relay.as_deref_mut(), &mut p);
        }
    }
    if let Some(relay) = relay {
        relay.finish();
    }
    if let Some(failure) = Failure::decode(&p.record) {
        return Err(LaunchError::Setup(failure));
    }
    Ok(p.status.unwrap_or(EXIT_LAUNCH_FAILED))
}

/// What woke the loop.
#[derive(Default)]
struct Woke {
    signal: bool,
    report: bool,
    /// Helpers, by their index in [`Helpers::watch`].
    helpers: Vec<usize>,
    /// The terminal relay's descriptors that are ready.
    terminal: Vec<Watched>,
}

/// Polls the signalfd, the report pipe (while open) and the helpers'
/// descriptors; `None` if poll fails for good.
fn wait_for_events(
    sfd: &SignalFd,
    report: &OwnedFd,
    p: &Progress,
    helpers: &Helpers,
    relay: Option<&Relay>,
) -> Option<Woke> {
    // Rounded up: waking early would only spin.
    let timeout = p.started_at.map_or(PollTimeout::NONE, |t| {
        let ms = t
            .saturating_duration_since(Instant::now())
            .as_micros()
            .div_ceil(1000);
        PollTimeout::from(ms.min(1000) as u16)
    });
    let watched = helpers.watch();
    let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
    if p.report_open {
        fds.push(PollFd::new(report.as_fd(), PollFlags::POLLIN));
    }
    for &(fd, events, _) in &watched {
        fds.push(PollFd::new(fd, events));
    }
    let terminal = relay.map(Relay::watch).unwrap_or_default();
    for &(fd, events, _) in &terminal {
        fds.push(PollFd::new(fd, events));
    }
    loop {
        match poll(&mut fds, timeout) {
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
    let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
    let mut woke = Woke {
        signal: ready(&fds[0]),
        report: p.report_open && ready(&fds[1]),
        ..Woke::default()
    };
    let first_helper = if p.report_open { 2 } else { 1 };
    for (f, &(_, _, helper)) in fds[first_helper..].iter().zip(&watched) {
        if ready(f) && !woke.helpers.contains(&helper) {
            woke.helpers.push(helper);
        }
    }
    let first_terminal = first_helper + watched.len();
    for (f, &(_, _, what)) in fds[first_terminal..].iter().zip(&terminal) {
        if ready(f) {
            woke.terminal.push(what);
        }
    }
    Some(woke)
}

/// Reads what the child wrote; end of file without a record means the
/// payload was executed.
fn read_report(report: &OwnedFd, p: &mut Progress) {
    let mut buf = [0u8; 2048];
    match nix::unistd::read(report, &mut buf) {
        Ok(n) if n > 0 => p.record.extend_from_slice(&buf[..n]),
        Err(Errno::EINTR) => {}
        r => {
            p.report_open = false;
            if r == Ok(0) && p.record.is_empty() {
                p.started_at = Some(Instant::now() + STARTED_DELAY);
            }
        }
    }
}

/// SIGCHLD: reaps the sandbox if it exited. With a terminal relay, the
/// relay takes window sizes and SIGCONT, and a payload its terminal
/// stopped (the sandbox's own process without an init) stops hutch too.
/// Any other signal is relayed to the sandbox, unless the terminal sent it
/// to a payload that shares it.
fn on_signal(
    pid: libc::pid_t,
    info: &siginfo,
    new_session: bool,
    relay: Option<&mut Relay>,
    p: &mut Progress,
) {
    let sig = info.ssi_signo as libc::c_int;
    if sig == libc::SIGCHLD {
        let Some(relay) = relay else {
            if let Ok(Some(status)) = sys::waitpid(pid, true) {
                p.status = Some(sys::exit_code(status));
            }
            return;
        };
        match sys::terminal::waitpid_untraced(pid) {
            Ok(Some(status)) if libc::WIFSTOPPED(status) => {
                let stop = libc::WSTOPSIG(status);
                if matches!(stop, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU) {
                    relay.payload_stopped(stop);
                }
            }
            Ok(Some(status)) => p.status = Some(sys::exit_code(status)),
            _ => {}
        }
    } else if relay.is_some_and(|r| r.on_signal(sig)) {
        // Taken by the relay.
    } else if info.ssi_code != libc::SI_KERNEL || new_session {
        // Terminal-generated signals already reached a payload that
        // shares our terminal; anything else is relayed.
        if let Ok(sig) = Signal::try_from(sig) {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }
}

/// The failure a child that has been reaped reported, if it did: all it
/// wrote on the report pipe, up to end of file.
pub fn read_failure(report: &OwnedFd) -> Option<Failure> {
    let mut record = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        match nix::unistd::read(report, &mut buf) {
            Ok(0) => break,
            Ok(n) => record.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    Failure::decode(&record)
}

/// Waits for `pid` without watching anything else; its exit code.
pub fn wait_plain(pid: libc::pid_t) -> i32 {
    match sys::waitpid(pid, false) {
        Ok(Some(status)) => sys::exit_code(status),
        _ => EXIT_LAUNCH_FAILED,
    }
}

/// Whether the child has exited, without reaping it.
pub fn exited(pid: libc::pid_t) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(
        waitid(Id::Pid(Pid::from_raw(pid)), flags),
        Ok(WaitStatus::StillAlive) | Err(_)
    )
}

/// Ends a child that has not been released yet.
pub fn kill_and_reap(pid: libc::pid_t) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    wait_plain(pid);
}
