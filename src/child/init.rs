//! hutch's init: PID 1 of the sandbox's pid namespace.
//!
//! It starts the payload, forwards signals to it, reaps every process that
//! ends up as its child (orphans are re-parented to PID 1), and exits with the
//! payload's status. When it exits the kernel ends everything else inside.

use nix::errno::Errno;

use super::{exec_payload, signal_set, terminal};
use crate::prepare::report::{self, Step};
use crate::prepare::{Pipes, Prepared};
use crate::sys;

/// Runs init; returns its exit code (the payload's status).
pub fn run(prepared: &Prepared, pipes: Pipes) -> i32 {
    if !prepared.pid_ns {
        // Without a pid namespace, orphans would go to the host's init: keep them.
        let _ = sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
    let _ = sys::prctl(libc::PR_SET_NAME, c"hutch-init".as_ptr() as libc::c_ulong);
    if let Some((start, end)) = prepared.title {
        set_title(start, end);
    }
    if prepared.pty.is_some()
        && let Err(e) = terminal::lead_session()
    {
        report::send(pipes.report, Step::ControllingTerminal, e, b"");
        return 125;
    }
    let set = signal_set();
    // SAFETY: set is a valid sigset; -1 asks for a new signalfd.
    let sfd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
    if sfd < 0 {
        report::send(pipes.report, Step::SignalFd, Errno::last(), b"");
        return 125;
    }
    // The payload starts on this stack buffer, sharing init's memory until
    // it executes: cheaper than copying init's page tables with fork.
    let mut stack = [0u8; 64 * 1024];
    let start = PayloadStart {
        prepared,
        report: pipes.report,
    };
    let payload = match sys::vfork_call(&mut stack, payload_entry, &start) {
        Ok(pid) => pid,
        Err(e) => {
            report::send(pipes.report, Step::ForkPayload, e, b"");
            return 125;
        }
    };
    // From here on only the payload may report: its exec closes the pipe.
    sys::close(pipes.report);
    sys::close(pipes.go);

    loop {
        // SAFETY: an all-zero siginfo is valid storage for read to fill.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: info is valid for `size` bytes.
        let n = unsafe { libc::read(sfd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        if n != size as isize {
            if n < 0 && Errno::last() == Errno::EINTR {
                continue;
            }
            // Cannot watch signals any more: wait for the payload plainly.
            return wait_blocking(payload);
        }
        let sig = info.ssi_signo as libc::c_int;
        if sig == libc::SIGCHLD {
            if let Some(code) = reap(payload, pipes.terminal) {
                return code;
            }
            continue;
        }
        // Signals the terminal sent to the foreground process group reached
        // the payload directly; the launcher forwards all others.
        if info.ssi_code == libc::SI_KERNEL {
            continue;
        }
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(payload, sig) };
    }
}

struct PayloadStart<'a> {
    prepared: &'a Prepared,
    report: libc::c_int,
}

extern "C" fn payload_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points to the PayloadStart in init's frame, which lives
    // until this child has executed or exited (CLONE_VFORK).
    let start = unsafe { &*(arg as *const PayloadStart) };
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    sys::exit_now(exec_payload(start.prepared, start.report))
}

/// Replaces the command line inherited from the launcher with
/// `hutch-init`, so that `ps` inside shows no host path or arguments.
fn set_title(start: usize, end: usize) {
    // SAFETY: [start, end) is the command-line area of the launcher's initial
    // stack, read from /proc/self/stat before clone; this process has its
    // own copy of that memory, and nothing here borrows it: init never
    // reads its arguments.
    let area = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, end - start) };
    area.fill(0);
    let name = b"hutch-init";
    let n = name.len().min(area.len().saturating_sub(1));
    area[..n].copy_from_slice(&name[..n]);
}

/// Reaps every exited child; returns the exit code once the payload is
/// gone. With a pseudo-terminal (`terminal` >= 0), a payload the terminal
/// stopped (Ctrl-Z) is reported to the launcher.
fn reap(payload: libc::pid_t, terminal: libc::c_int) -> Option<i32> {
    let flags = if terminal >= 0 {
        libc::WNOHANG | libc::WUNTRACED
    } else {
        libc::WNOHANG
    };
    let mut result = None;
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, flags) };
        if pid <= 0 {
            return result;
        }
        if pid != payload {
            continue;
        }
        if libc::WIFSTOPPED(status) {
            terminal::report_stop(terminal, libc::WSTOPSIG(status));
        } else {
            result = Some(sys::exit_code(status));
        }
    }
}

fn wait_blocking(payload: libc::pid_t) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == payload {
            return sys::exit_code(status);
        }
        if pid < 0 && Errno::last() != Errno::EINTR {
            return 125;
        }
    }
}
