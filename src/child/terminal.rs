//! The payload's own pseudo-terminal (`terminal = "pty"`): opened in the
//! sandbox's new devpts while /dev is built, so `/dev/pts/N` exists inside;
//! its master handed to the launcher, which relays it to the caller's
//! terminal; its slave put in place of the standard descriptors that were
//! the caller's terminal (which so never enters the sandbox), and made the
//! payload's controlling terminal once it leads a session of its own.
//! hutch's init tells the launcher when the terminal stopped the payload
//! (Ctrl-Z), so that hutch stops too and the caller's shell regains its
//! terminal. Allocation-free.

use std::os::fd::RawFd;

use nix::errno::Errno;

use super::Fail;
use crate::prepare::PtyInstr;
use crate::prepare::report::Step;
use crate::sys;
use crate::sys::terminal::PtyPair;

/// Opens a pseudo-terminal in the devpts mounted at `pts` under the new
/// /dev (`dev`), with the caller's terminal's mode and size.
pub fn open(dev: RawFd, pty: &PtyInstr) -> Result<PtyPair, Errno> {
    // Both the tmpfs and its `pts` directory were made by this process a
    // moment ago: nothing on the way can be a symlink.
    // SAFETY: "pts" is NUL-terminated.
    let pts = unsafe {
        libc::openat(
            dev,
            c"pts".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if pts < 0 {
        return Err(Errno::last());
    }
    let pair = sys::terminal::open_pty(pts);
    sys::close(pts);
    let pair = pair?;
    let set = match &pty.mode {
        Some(mode) => sys::terminal::set_attributes(pair.slave, &mode.termios)
            .and_then(|()| sys::terminal::set_window_size(pair.slave, &mode.size)),
        None => Ok(()),
    };
    if let Err(e) = set {
        sys::close(pair.master);
        sys::close(pair.slave);
        return Err(e);
    }
    Ok(pair)
}

/// Sends the master to the launcher over `sock` and puts the slave in
/// place of the standard descriptors `replaces` names; closes both.
pub fn hand_over(pair: PtyPair, sock: RawFd, replaces: [bool; 3]) -> Result<(), Fail<'static>> {
    let sent = sys::send_fds(sock, b"m", &[pair.master]);
    sys::close(pair.master);
    let mut result = sent;
    for (fd, replace) in (0..).zip(replaces) {
        if replace && result.is_ok() {
            result = sys::dup2(pair.slave, fd);
        }
    }
    sys::close(pair.slave);
    result.map_err(|e| Fail::new(Step::HandOffTerminal, e))
}

/// After setsid (hutch's init, or a payload without one): standard input,
/// the slave, becomes the session's controlling terminal, with this
/// process's group in its foreground.
pub fn take_controlling() -> Result<(), Errno> {
    sys::terminal::make_controlling(0)
}

/// hutch's init leads the terminal's session, so that the payload's
/// process group, a child of it in the same session, is not orphaned: the
/// terminal may stop it (Ctrl-Z), and init sees that.
pub fn lead_session() -> Result<(), Errno> {
    // SAFETY: setsid has no arguments.
    if unsafe { libc::setsid() } < 0 {
        return Err(Errno::last());
    }
    take_controlling()
}

/// The payload under init: a process group of its own, made the
/// terminal's foreground. SIGTTOU is blocked: a background group may then
/// take the foreground instead of being stopped for trying.
pub fn enter_foreground() -> Result<(), Errno> {
    // SAFETY: setpgid(0, 0) makes this process a group leader.
    if unsafe { libc::setpgid(0, 0) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: an all-zero sigset is valid storage; sigemptyset initialises it.
    let mut ttou: libc::sigset_t = unsafe { std::mem::zeroed() };
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "a one-signal set built and blocked: one sequence on a local"
    )]
    // SAFETY: ttou is valid; SIG_BLOCK adds it to the mask, which the
    // payload's exec path empties afterwards.
    unsafe {
        libc::sigemptyset(&mut ttou);
        libc::sigaddset(&mut ttou, libc::SIGTTOU);
        libc::sigprocmask(libc::SIG_BLOCK, &ttou, std::ptr::null_mut());
    }
    // SAFETY: getpid has no arguments.
    let me = unsafe { libc::getpid() };
    // SAFETY: tcsetpgrp takes a descriptor and a group by value.
    if unsafe { libc::tcsetpgrp(0, me) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The signals by which a terminal stops its foreground process group.
pub fn is_terminal_stop(sig: libc::c_int) -> bool {
    matches!(sig, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU)
}

/// Init's side: the payload was stopped by `sig` (Ctrl-Z); tells the
/// launcher, which stops itself the same way.
pub fn report_stop(sock: RawFd, sig: libc::c_int) {
    if sock >= 0 && is_terminal_stop(sig) {
        let _ = sys::send_fds(sock, &[sig as u8], &[]);
    }
}
