//! Terminal calls nix does not wrap, or not allocation-free: opening a
//! pseudo-terminal through a devpts mount, making it a controlling
//! terminal, window sizes, and the caller's terminal mode put back when
//! hutch dies of a signal while the terminal is raw (by a handler, and by
//! a keeper process for SIGKILL, which no handler sees).

use std::cell::UnsafeCell;
use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::errno::Errno;

use super::close;

/// A pseudo-terminal pair, both ends close-on-exec and not a controlling
/// terminal of anyone yet.
#[derive(Debug, Clone, Copy)]
pub struct PtyPair {
    pub master: RawFd,
    pub slave: RawFd,
}

/// Opens a new pseudo-terminal in the devpts instance `devpts` (a
/// descriptor of its root, e.g. the mount from fsmount): its `ptmx`, the
/// slave unlocked and opened through the master (TIOCGPTPEER, Linux 4.13),
/// so no path is looked up. Allocation-free.
pub fn open_pty(devpts: RawFd) -> Result<PtyPair, Errno> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: "ptmx" is NUL-terminated.
    let master = unsafe { libc::openat(devpts, c"ptmx".as_ptr(), flags) };
    if master < 0 {
        return Err(Errno::last());
    }
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from a valid pointer.
    let slave = if unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &unlock) } < 0 {
        -1
    } else {
        // SAFETY: TIOCGPTPEER takes open flags by value and returns a descriptor.
        unsafe { libc::ioctl(master, libc::TIOCGPTPEER, flags) }
    };
    if slave < 0 {
        let e = Errno::last();
        close(master);
        return Err(e);
    }
    Ok(PtyPair { master, slave })
}

/// Makes the terminal `fd` the controlling terminal of this process, a
/// session leader without one (TIOCSCTTY); it becomes the terminal's
/// foreground process group.
pub fn make_controlling(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal).
    if unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The window size of the terminal `fd`.
pub fn window_size(fd: RawFd) -> Result<libc::winsize, Errno> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize to a valid pointer.
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } < 0 {
        return Err(Errno::last());
    }
    Ok(size)
}

/// Sets the window size of the terminal `fd` (on a master: of its slave,
/// whose foreground process group gets SIGWINCH if it changed).
pub fn set_window_size(fd: RawFd, size: &libc::winsize) -> Result<(), Errno> {
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, size) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Sets the attributes of the terminal `fd` at once (tcsetattr TCSANOW).
/// Allocation-free.
pub fn set_attributes(fd: RawFd, termios: &libc::termios) -> Result<(), Errno> {
    // SAFETY: termios is a valid, initialised struct.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, termios) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Whether `sig` is pending for this thread or process (blocked and
/// raised, not yet taken).
pub fn signal_pending(sig: libc::c_int) -> bool {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "sigpending fills the set that sigismember then reads: one sequence on a local"
    )]
    // SAFETY: sigpending initialises `set` on success; sigismember reads it only then.
    unsafe {
        libc::sigpending(set.as_mut_ptr()) == 0 && libc::sigismember(set.as_ptr(), sig) == 1
    }
}

/// waitpid(2) without waiting, reporting a stopped child too
/// (`WUNTRACED`): `Ok(None)` while `pid` runs, else its raw status.
pub fn waitpid_untraced(pid: libc::pid_t) -> Result<Option<libc::c_int>, Errno> {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::WUNTRACED) };
        match r {
            0 => return Ok(None),
            r if r > 0 => return Ok(Some(status)),
            _ if Errno::last() == Errno::EINTR => continue,
            _ => return Err(Errno::last()),
        }
    }
}

/// The signals whose default action ends hutch and that it neither
/// relays nor expects: if one arrives while the caller's terminal is in
/// raw mode, the handler puts the terminal's mode back first. (SIGKILL
/// cannot be caught; SIGPIPE is left alone: hutch writes to terminals and
/// to pipes it made, and ignores it around the latter.)
const FATAL: &[libc::c_int] = &[
    libc::SIGABRT,
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGSYS,
    libc::SIGTRAP,
    libc::SIGALRM,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGIO,
    libc::SIGPWR,
    libc::SIGSTKFLT,
];

/// The terminal mode to put back, read by the signal handler: written only
/// while `armed` is false.
struct SavedMode {
    armed: AtomicBool,
    fd: AtomicI32,
    termios: UnsafeCell<MaybeUninit<libc::termios>>,
}

// SAFETY: `termios` is written only by `restore_on_fatal_signal` while
// `armed` is false, and read only by the handler after it saw `armed`
// true (SeqCst on both sides).
unsafe impl Sync for SavedMode {}

static SAVED: SavedMode = SavedMode {
    armed: AtomicBool::new(false),
    fd: AtomicI32::new(-1),
    termios: UnsafeCell::new(MaybeUninit::uninit()),
};
static HANDLERS: AtomicBool = AtomicBool::new(false);

/// With `Some(mode)`: if hutch dies of one of the [`FATAL`] signals (a
/// panic aborts with SIGABRT), the terminal `fd` gets `mode` back first.
/// With `None`: nothing to put back any more.
pub fn restore_on_fatal_signal(fd: RawFd, mode: Option<&libc::termios>) {
    SAVED.armed.store(false, Ordering::SeqCst);
    let Some(mode) = mode else { return };
    // SAFETY: not armed, so the handler does not read it meanwhile.
    unsafe { (*SAVED.termios.get()).write(*mode) };
    SAVED.fd.store(fd, Ordering::SeqCst);
    SAVED.armed.store(true, Ordering::SeqCst);
    if HANDLERS.swap(true, Ordering::SeqCst) {
        return;
    }
    for &sig in FATAL {
        // SAFETY: an all-zero sigaction is valid storage; the fields are set below.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_fatal_signal as extern "C" fn(libc::c_int) as usize;
        #[allow(
            clippy::multiple_unsafe_ops_per_block,
            reason = "the handler's mask is built on the local action, then installed: one sequence"
        )]
        // SAFETY: the mask is the local action's; the handler is async-signal-safe.
        unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            // A hutch in the background may still reset the terminal.
            libc::sigaddset(&mut action.sa_mask, libc::SIGTTOU);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Puts the saved terminal mode back, then dies of `sig` as it would have.
extern "C" fn on_fatal_signal(sig: libc::c_int) {
    if SAVED.armed.swap(false, Ordering::SeqCst) {
        let fd = SAVED.fd.load(Ordering::SeqCst);
        // SAFETY: armed: the mode was written whole before, and is not
        // written while armed.
        let mode = unsafe { (*SAVED.termios.get()).as_ptr() };
        // SAFETY: tcsetattr is async-signal-safe; `mode` points at a valid termios.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, mode) };
    }
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "back to the default action, then raised again: one sequence"
    )]
    // SAFETY: signal and raise are async-signal-safe. `sig` is blocked
    // while this handler runs: it is taken, with the default action, on
    // return (a fault re-faults there).
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// The process name of the [`spawn_mode_keeper`] process (`ps`, tests).
pub const KEEPER_NAME: &CStr = c"hutch-tty";

/// Starts a process that puts the terminal on its standard input back in
/// the last mode it was sent over the returned socket (see
/// [`keeper_arm`]) when that socket's other end closes without
/// [`keeper_disarm`] after it: when hutch is gone, SIGKILL included. It
/// holds nothing else of hutch's (every descriptor but its standard input
/// and the socket closed) and ends
/// at once when the socket closes, so it never outlives hutch.
pub fn spawn_mode_keeper() -> Result<OwnedFd, Errno> {
    let (ours, theirs) = super::seqpacket_pair()?;
    if super::clone_fork(0, None)? == 0 {
        keep_mode(theirs.as_raw_fd());
    }
    Ok(ours)
}

/// Tells the keeper to restore `mode` if hutch ends now.
pub fn keeper_arm(keeper: RawFd, mode: &libc::termios) -> Result<(), Errno> {
    // SAFETY: termios is a plain C struct: its bytes are its value.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (mode as *const libc::termios).cast::<u8>(),
            std::mem::size_of::<libc::termios>(),
        )
    };
    super::send_fds(keeper, bytes, &[])
}

/// Tells the keeper there is nothing to restore.
pub fn keeper_disarm(keeper: RawFd) -> Result<(), Errno> {
    super::send_fds(keeper, b"d", &[])
}

/// The keeper's life, in a fork of hutch: raw system calls only.
fn keep_mode(sock: RawFd) -> ! {
    // Standard input (the terminal) stays; output and everything else of
    // hutch's close, so a pipe hutch writes to ends with hutch.
    super::close_fds_from(1, &[sock]);
    let _ = super::prctl(libc::PR_SET_NAME, KEEPER_NAME.as_ptr() as libc::c_ulong);
    // Every signal that can be blocked is: a hang-up, the shell's SIGINT
    // to the job, SIGTTOU when restoring from the background.
    let mut all = MaybeUninit::<libc::sigset_t>::uninit();
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "a full set built and blocked: one sequence on a local"
    )]
    // SAFETY: sigfillset initialises the set that sigprocmask then reads.
    unsafe {
        libc::sigfillset(all.as_mut_ptr());
        libc::sigprocmask(libc::SIG_BLOCK, all.as_ptr(), std::ptr::null_mut());
    }
    let size = std::mem::size_of::<libc::termios>();
    let mut mode = MaybeUninit::<libc::termios>::uninit();
    let mut armed = false;
    loop {
        let mut buf = [0u8; 256];
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(sock, buf.as_mut_ptr().cast(), buf.len(), 0) };
        match n {
            0 => break,
            n if n < 0 && Errno::last() == Errno::EINTR => continue,
            n if n < 0 => break,
            n if n as usize == size => {
                // SAFETY: exactly one termios's bytes, sent by keeper_arm.
                unsafe {
                    std::ptr::copy_nonoverlapping(buf.as_ptr(), mode.as_mut_ptr().cast(), size)
                };
                armed = true;
            }
            _ => armed = false,
        }
    }
    if armed {
        // SAFETY: armed: `mode` was filled; tcsetattr reads it.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, mode.as_ptr()) };
    }
    // SAFETY: _exit ends this process without running hutch's exit code.
    unsafe { libc::_exit(0) }
}
