//! The relay between the caller's terminal and the payload's own
//! pseudo-terminal (`terminal = "pty"`), as `docker run -it` does it.
//!
//! While hutch is in the foreground of the caller's terminal, that terminal
//! is in raw mode: every byte typed (Ctrl-C, Ctrl-Z, Ctrl-D too) goes to the
//! payload's terminal, whose line discipline echoes it, edits lines and
//! sends the signals; the payload's output comes back unchanged. The mode
//! is put back whenever hutch leaves the foreground or exits: on a fatal
//! signal too, by `sys::terminal::restore_on_fatal_signal`, and after a
//! SIGKILL of hutch by a small keeper process (`hutch-tty`) that hutch
//! tells the mode to restore and that acts when hutch is gone. Window sizes
//! follow (SIGWINCH).
//!
//! Job control: when the payload's terminal stops the payload (Ctrl-Z),
//! hutch's init says so, and hutch puts the caller's terminal back and
//! stops itself with the same signal, so the caller's shell takes over
//! (`[1]+ Stopped`). When continued (`fg`, `bg`: SIGCONT), it takes the
//! terminal again if it is in the foreground, and continues the payload's
//! foreground process group. In the background it relays output only and
//! never reads the caller's terminal. A shell as payload does its own job
//! control in its terminal, as over ssh.

use std::io::Stdin;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::PollFlags;
use nix::poll::{PollFd, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, killpg, pthread_sigmask};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
use nix::unistd::{Pid, getpgrp, tcgetpgrp};

use crate::prepare::TerminalMode;
use crate::sys;

/// How much typed input waits for the payload's terminal before hutch
/// stops reading the caller's.
const PENDING_MAX: usize = 64 * 1024;

/// The caller's terminal (standard input) mode and size, which the
/// payload's terminal starts with; `None` if it cannot be read.
pub fn caller_mode() -> Option<TerminalMode> {
    let termios = tcgetattr(std::io::stdin()).ok()?;
    let size = sys::terminal::window_size(0).ok()?;
    Some(TerminalMode {
        termios: termios.into(),
        size,
    })
}

/// What a descriptor the relay polls is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watched {
    /// The socket the master and the stop reports arrive on.
    Socket,
    /// The caller's terminal, for input.
    Input,
    /// The payload's terminal.
    Master,
}

pub struct Relay {
    /// The caller's terminal: hutch's standard input.
    stdin: Stdin,
    /// The launcher's end of the child's terminal socket (until it closes).
    socket: Option<OwnedFd>,
    master: Option<OwnedFd>,
    /// The caller's terminal's mode, while hutch has made it raw.
    saved: Option<Termios>,
    /// Whether hutch reads the caller's terminal (in its foreground).
    reading: bool,
    /// End of the caller's input (hang-up).
    input_closed: bool,
    /// The payload's terminal has no reader-writer left (every slave closed).
    output_closed: bool,
    /// Writing to the caller's terminal failed: output is dropped.
    output_lost: bool,
    /// Typed input not yet taken by the payload's terminal.
    pending: Vec<u8>,
    /// The socket to the keeper that restores the caller's terminal mode
    /// if hutch is killed (started the first time the terminal goes raw).
    keeper: Option<OwnedFd>,
}

impl Relay {
    pub fn new(socket: OwnedFd) -> Relay {
        Relay {
            stdin: std::io::stdin(),
            socket: Some(socket),
            master: None,
            saved: None,
            reading: false,
            input_closed: false,
            output_closed: false,
            output_lost: false,
            pending: Vec::new(),
            keeper: None,
        }
    }

    /// The descriptors to poll now, and for what.
    pub fn watch(&self) -> Vec<(BorrowedFd<'_>, PollFlags, Watched)> {
        let mut out = Vec::with_capacity(3);
        if let Some(s) = &self.socket {
            out.push((s.as_fd(), PollFlags::POLLIN, Watched::Socket));
        }
        let Some(master) = &self.master else {
            return out;
        };
        if self.reading && !self.input_closed && self.pending.len() < PENDING_MAX {
            out.push((self.stdin.as_fd(), PollFlags::POLLIN, Watched::Input));
        }
        let mut flags = PollFlags::empty();
        if !self.output_closed {
            flags |= PollFlags::POLLIN;
        }
        if !self.pending.is_empty() {
            flags |= PollFlags::POLLOUT;
        }
        if !flags.is_empty() {
            out.push((master.as_fd(), flags, Watched::Master));
        }
        out
    }

    /// `what` is ready.
    pub fn ready(&mut self, what: Watched) {
        match what {
            Watched::Socket => self.receive(),
            Watched::Input => self.read_input(),
            Watched::Master => {
                self.copy_output();
                self.write_pending();
            }
        }
    }

    /// A signal the relay handles instead of forwarding it: true if taken.
    pub fn on_signal(&mut self, sig: libc::c_int) -> bool {
        match sig {
            // The payload's terminal gets the new size; its kernel sends
            // SIGWINCH to whoever is in its foreground.
            libc::SIGWINCH => self.sync_size(),
            libc::SIGCONT => self.resume(),
            _ => return false,
        }
        true
    }

    /// The payload was stopped by its terminal with `sig` (Ctrl-Z): hutch
    /// gives the caller's terminal back and stops the same way, so that
    /// the caller's shell takes over.
    pub fn payload_stopped(&mut self, sig: libc::c_int) {
        let Ok(signal) = Signal::try_from(sig) else {
            return;
        };
        self.leave_raw();
        self.reading = false;
        let _ = kill(Pid::this(), signal);
        // Stopped and continued: the SIGCONT waits in the signalfd. Not
        // stopped (an orphaned process group, or the signal ignored):
        // nobody would continue us, so go on now.
        if !sys::terminal::signal_pending(libc::SIGCONT) {
            self.resume();
        }
    }

    /// After the sandbox exited: what the payload's terminal still holds
    /// goes out, then the caller's terminal gets its mode back.
    pub fn finish(&mut self) {
        while !self.output_closed && self.master.is_some() {
            if !self.copy_output() {
                break;
            }
        }
        self.leave_raw();
    }

    fn receive(&mut self) {
        let Some(socket) = &self.socket else { return };
        let mut data = [0u8; 8];
        match sys::recv_message(socket.as_raw_fd(), &mut data) {
            Ok((_, Some(master))) => self.start(master),
            Ok((n, None)) if n > 0 => self.payload_stopped(data[0] as libc::c_int),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            // End of file: the child and its init are gone.
            _ => self.socket = None,
        }
    }

    /// The payload's terminal arrived: relay it.
    fn start(&mut self, master: OwnedFd) {
        let nonblocking = fcntl(&master, FcntlArg::F_GETFL)
            .map(|f| OFlag::from_bits_retain(f) | OFlag::O_NONBLOCK)
            .and_then(|f| fcntl(&master, FcntlArg::F_SETFL(f)));
        if nonblocking.is_err() {
            return;
        }
        self.master = Some(master);
        self.take_terminal();
        self.sync_size();
    }

    /// Continued (SIGCONT): take the terminal again if in its foreground,
    /// and continue the payload's foreground process group.
    fn resume(&mut self) {
        self.take_terminal();
        self.sync_size();
        if let Some(master) = &self.master
            && let Ok(pgrp) = tcgetpgrp(master)
        {
            let _ = killpg(pgrp, Signal::SIGCONT);
        }
    }

    /// In the foreground of the caller's terminal: raw mode, and read it.
    /// In the background: leave the terminal to whoever has it.
    fn take_terminal(&mut self) {
        let stdin = &self.stdin;
        let foreground = tcgetpgrp(stdin).is_ok_and(|p| p == getpgrp());
        if !foreground {
            // The shell owns the terminal and its mode now.
            self.saved = None;
            sys::terminal::restore_on_fatal_signal(0, None);
            self.disarm_keeper();
            self.reading = false;
            return;
        }
        let saved = match self.saved.take() {
            Some(s) => s,
            None => match tcgetattr(stdin) {
                Ok(s) => s,
                Err(_) => return,
            },
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        // Both restorers hold the mode before the terminal goes raw: no
        // moment when a signal or a SIGKILL would leave it raw.
        let mode: libc::termios = saved.clone().into();
        sys::terminal::restore_on_fatal_signal(0, Some(&mode));
        self.arm_keeper(&mode);
        // TCSANOW: what was typed meanwhile stays, for the payload.
        if tcsetattr(&self.stdin, SetArg::TCSANOW, &raw).is_ok() {
            self.saved = Some(saved);
            self.reading = true;
        } else {
            sys::terminal::restore_on_fatal_signal(0, None);
            self.disarm_keeper();
        }
    }

    /// Has the keeper restore `mode` if hutch is killed. Best effort: if
    /// it cannot start, only a SIGKILL of hutch leaves the terminal raw.
    fn arm_keeper(&mut self, mode: &libc::termios) {
        if self.keeper.is_none() {
            self.keeper = sys::terminal::spawn_mode_keeper().ok();
        }
        if let Some(k) = &self.keeper
            && sys::terminal::keeper_arm(k.as_raw_fd(), mode).is_err()
        {
            self.keeper = None;
        }
    }

    fn disarm_keeper(&mut self) {
        if let Some(k) = &self.keeper
            && sys::terminal::keeper_disarm(k.as_raw_fd()).is_err()
        {
            self.keeper = None;
        }
    }

    /// Puts the caller's terminal mode back, if hutch changed it.
    fn leave_raw(&mut self) {
        let Some(saved) = self.saved.take() else {
            return;
        };
        sys::terminal::restore_on_fatal_signal(0, None);
        // A hutch that has just been put in the background still puts the
        // mode back, without being stopped for it (SIGTTOU).
        let mut ttou = SigSet::empty();
        ttou.add(Signal::SIGTTOU);
        let mut old = SigSet::empty();
        let blocked = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old));
        let _ = tcsetattr(&self.stdin, SetArg::TCSANOW, &saved);
        // Only now: killed before the line above, the keeper restores it.
        self.disarm_keeper();
        if blocked.is_ok() {
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        }
    }

    /// Gives the payload's terminal the caller's window size.
    fn sync_size(&self) {
        if let Some(master) = &self.master
            && let Ok(size) = sys::terminal::window_size(0)
        {
            let _ = sys::terminal::set_window_size(master.as_raw_fd(), &size);
        }
    }

    fn read_input(&mut self) {
        let mut buf = [0u8; 4096];
        match nix::unistd::read(&self.stdin, &mut buf) {
            Ok(0) => self.input_closed = true,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                self.write_pending();
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => self.input_closed = true,
        }
    }

    fn write_pending(&mut self) {
        let Some(master) = &self.master else { return };
        while !self.pending.is_empty() {
            match nix::unistd::write(master, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.pending.clear();
                    self.input_closed = true;
                }
            }
        }
    }

    /// Copies what the payload's terminal has to the caller's; false when
    /// nothing more is there now.
    fn copy_output(&mut self) -> bool {
        let Some(master) = &self.master else {
            return false;
        };
        let mut buf = [0u8; 16 * 1024];
        match nix::unistd::read(master, &mut buf) {
            Ok(0) | Err(Errno::EIO) => {
                self.output_closed = true;
                false
            }
            Ok(n) => {
                if !self.output_lost && write_out(&buf[..n]).is_err() {
                    self.output_lost = true;
                }
                true
            }
            Err(Errno::EINTR) => true,
            Err(_) => false,
        }
    }
}

/// Writes all of `buf` to standard output, the caller's terminal: waits
/// while it is full (also if someone left it non-blocking).
fn write_out(mut buf: &[u8]) -> Result<(), Errno> {
    let out = std::io::stdout();
    while !buf.is_empty() {
        match nix::unistd::write(&out, buf) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::NONE);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Drop for Relay {
    /// Whatever way the launch ends, the caller's terminal gets its mode
    /// back.
    fn drop(&mut self) {
        self.leave_raw();
    }
}
