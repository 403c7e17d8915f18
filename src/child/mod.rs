//! The cloned child: applies the plan in a fixed order and executes the
//! payload (under hutch's init unless the profile says `init = false`).
//!
//! Order: close inherited fds → die-with-parent → id maps → (wait for the
//! parent, when it has outside work such as placing the child in its limits
//! cgroup) → (cgroup namespace, when created after that) → root filesystem
//! and pivot_root → (with `terminal = "pty"`: the payload's pseudo-terminal,
//! opened in the new /dev, its master handed to the launcher and its slave
//! in place of the standard descriptors that were the caller's terminal) →
//! join the network namespace the launcher's helper made meanwhile →
//! egress rules (`[network]` user mode) → hostname → working directory →
//! (wait for the helpers that work on the sandbox's namespaces, such as
//! pasta) → rlimits → non-dumpable → drop capabilities
//! and set no_new_privs → Landlock → seccomp → init forks the payload →
//! payload: signal mask, umask, session (and controlling terminal) → execve.
//!
//! Only system calls happen here: everything was computed before clone.

pub mod handoff;
pub mod home_note;
pub mod init;
pub mod join;
pub mod netfilter;
pub mod netns;
pub mod overlay;
pub mod resolve;
pub mod rootfs;
pub mod security;
pub mod slots;
pub mod terminal;

use std::os::fd::RawFd;

use nix::errno::Errno;

use crate::prepare::report::{self, Step};
use crate::prepare::slots::Descriptors;
use crate::prepare::{Barrier, FORWARDED, Pipes, Prepared};
use crate::sys;

/// A failed step, with the path or name it was about.
#[derive(Debug)]
pub struct Fail<'a> {
    pub step: Step,
    pub errno: Errno,
    pub arg: &'a [u8],
}

impl<'a> Fail<'a> {
    pub fn new(step: Step, errno: Errno) -> Fail<'a> {
        Fail {
            step,
            errno,
            arg: b"",
        }
    }

    pub fn with(step: Step, errno: Errno, arg: &'a [u8]) -> Fail<'a> {
        Fail { step, errno, arg }
    }
}

/// Entry point of the cloned child. Never returns.
pub fn run(prepared: &Prepared, fds: &mut Descriptors, pipes: Pipes) -> ! {
    let code = match setup(prepared, fds, pipes) {
        Ok(()) if prepared.init => {
            let code = init::run(prepared, pipes);
            if let Some(note) = &prepared.home_note {
                home_note::report(note);
            }
            code
        }
        Ok(()) => exec_payload(prepared, pipes.report),
        Err(f) => {
            report::send(pipes.report, f.step, f.errno, f.arg);
            125
        }
    };
    sys::exit_now(code)
}

fn setup<'a>(prepared: &'a Prepared, fds: &mut Descriptors, pipes: Pipes) -> Result<(), Fail<'a>> {
    let mut keep = [
        pipes.report,
        pipes.go,
        pipes.netns,
        pipes.handoff,
        pipes.terminal,
        pipes.learn,
    ];
    keep.sort_unstable();
    sys::close_fds_from(3, &keep);
    die_with_parent(pipes.go)?;
    // Modes in the profile are exact; the caller's umask is restored for the payload.
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    // For `hutch exec`: opened now, while the host's /proc is reachable.
    let ns_dir = handoff::open_ns_dir(pipes.handoff)?;

    if let Some((uid_map, gid_map)) = &prepared.id_maps {
        sys::write_file(c"/proc/self/setgroups", b"deny")
            .map_err(|e| Fail::new(Step::SetGroups, e))?;
        sys::write_file(c"/proc/self/uid_map", uid_map).map_err(|e| Fail::new(Step::UidMap, e))?;
        sys::write_file(c"/proc/self/gid_map", gid_map).map_err(|e| Fail::new(Step::GidMap, e))?;
    }
    wait_at(Barrier::Early, prepared, pipes)?;
    if prepared.unshare_cgroup_ns {
        // SAFETY: unshare takes a flag word only.
        if unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } < 0 {
            return Err(Fail::new(Step::CgroupNamespace, Errno::last()));
        }
    }
    let pty = if prepared.mount_ns {
        rootfs::build(prepared, fds, pipes.report)?
    } else {
        None
    };
    match (pty, &prepared.pty) {
        (Some(pair), Some(instr)) => terminal::hand_over(pair, pipes.terminal, instr.replaces)?,
        // Planned only with a `dev` mount: never run without the terminal asked for.
        (None, Some(_)) => return Err(Fail::new(Step::Terminal, Errno::ENODEV)),
        _ => {}
    }
    if pipes.netns >= 0 {
        netns::join(pipes.netns)?;
    } else if prepared.net_ns {
        netns::loopback_up()?;
    }
    if let Some(batch) = &prepared.egress {
        netfilter::install(batch)?;
    }
    if let Some(h) = &prepared.hostname {
        // SAFETY: h points to h.len() valid bytes.
        if unsafe { libc::sethostname(h.as_ptr(), h.as_bytes().len()) } < 0 {
            return Err(Fail::new(Step::Hostname, Errno::last()));
        }
    }
    // SAFETY: cwd is NUL-terminated.
    if unsafe { libc::chdir(prepared.cwd.as_ptr()) } < 0 {
        return Err(Fail::with(
            Step::Chdir,
            Errno::last(),
            prepared.cwd.to_bytes(),
        ));
    }
    // Helpers working on the sandbox's namespaces (pasta) are ready.
    wait_at(Barrier::Late, prepared, pipes)?;
    handoff::send(ns_dir, pipes.handoff, prepared.namespace_flags())?;
    confine(prepared, pipes.learn)
}

/// Waits for the launcher's byte on the go pipe, if a helper declared
/// `barrier`.
fn wait_at(barrier: Barrier, prepared: &Prepared, pipes: Pipes) -> Result<(), Fail<'static>> {
    if !prepared.barriers.has(barrier) {
        return Ok(());
    }
    let mut byte = [0u8; 1];
    // SAFETY: reading one byte into a valid buffer.
    let n = unsafe { libc::read(pipes.go, byte.as_mut_ptr().cast(), 1) };
    if n != 1 {
        return Err(Fail::new(Step::WaitForParent, Errno::ESRCH));
    }
    Ok(())
}

/// Arms SIGKILL for when the launcher dies, then checks that it has not
/// died already (before the signal was armed): the launcher holds the write
/// end of `go` for as long as it lives.
fn die_with_parent(go: RawFd) -> Result<(), Fail<'static>> {
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
        .map_err(|e| Fail::new(Step::DeathSignal, e))?;
    let mut pfd = libc::pollfd {
        fd: go,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    if unsafe { libc::poll(&mut pfd, 1, 0) } > 0 && pfd.revents & libc::POLLHUP != 0 {
        return Err(Fail::new(Step::ParentGone, Errno::ESRCH));
    }
    Ok(())
}

/// Everything that limits what the process may do, applied last before the
/// payload runs. Whatever enters a sandbox later (`hutch exec`) goes through
/// this same function, so it can never be confined less than the payload.
/// A learning filter's listener goes to the launcher over `learn`; without
/// one to send it to nothing is run, as every watched call would fail
/// unanswered (`hutch exec` prepares the plan's own filter instead).
pub fn confine(prepared: &Prepared, learn: RawFd) -> Result<(), Fail<'_>> {
    security::set_rlimits(&prepared.rlimits)?;
    // Keeps the payload from ptracing or reading the memory of hutch's init
    // (execve makes the payload itself dumpable again).
    sys::prctl(libc::PR_SET_DUMPABLE, 0).map_err(|e| Fail::new(Step::Dumpable, e))?;
    security::drop_privileges()?;
    if let Some(l) = &prepared.landlock {
        security::apply_landlock(l)?;
    }
    // Last: from here on the filter applies to hutch's own calls too.
    match &prepared.seccomp {
        Some(filter) if prepared.seccomp_listener => {
            if learn < 0 {
                return Err(Fail::new(Step::Seccomp, Errno::EBUSY));
            }
            let listener = sys::notify::seccomp_load_listener(filter)
                .map_err(|e| Fail::new(Step::Seccomp, e))?;
            // Nothing this process does until the launcher holds the
            // listener is watched: it would wait for an answer forever.
            let sent = sys::send_fds(learn, &[0], &[listener]);
            sys::close(listener);
            sys::close(learn);
            sent.map_err(|e| Fail::new(Step::LearnListener, e))?;
        }
        Some(filter) => sys::seccomp_load(filter).map_err(|e| Fail::new(Step::Seccomp, e))?,
        None => {}
    }
    Ok(())
}

/// The forwarded signals plus SIGCHLD: blocked by the launcher before
/// clone (so the child starts with them blocked), read from a signalfd by
/// init.
fn signal_set() -> libc::sigset_t {
    // SAFETY: an all-zero sigset is valid storage; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "sigemptyset and sigaddset initialise one local set together"
    )]
    // SAFETY: set is valid; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        for &s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        libc::sigaddset(&mut set, libc::SIGCHLD);
    }
    set
}

/// The payload's session: the caller's; a new one; or, with a
/// pseudo-terminal, under hutch's init (which leads the terminal's session
/// so that the terminal can stop the payload: a session leader's own
/// process group would be orphaned) a process group of its own in the
/// terminal's foreground, and without an init a session of its own that
/// the terminal controls.
fn enter_session(prepared: &Prepared) -> Result<(), (Step, Errno)> {
    match (prepared.pty.is_some(), prepared.init) {
        (true, true) => terminal::enter_foreground().map_err(|e| (Step::ControllingTerminal, e)),
        (pty, _) if prepared.new_session => {
            // SAFETY: setsid has no arguments.
            if unsafe { libc::setsid() } < 0 {
                return Err((Step::NewSession, Errno::last()));
            }
            if pty {
                terminal::take_controlling().map_err(|e| (Step::ControllingTerminal, e))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Executes the payload; returns the exit code to use if that fails.
pub fn exec_payload(prepared: &Prepared, report: RawFd) -> i32 {
    // Before the signal mask is emptied: joining the terminal's foreground
    // must not stop the payload (SIGTTOU stays blocked until then).
    if let Err((step, e)) = enter_session(prepared) {
        report::send(report, step, e, b"");
        return 125;
    }
    // SAFETY: an all-zero sigset is valid storage; sigemptyset initialises it.
    let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "the payload's signal mask and umask are restored as one step on local values"
    )]
    // SAFETY: restoring an empty mask and the caller's umask; both always succeed.
    unsafe {
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::umask(prepared.umask);
    }
    let mut err = Errno::ENOENT;
    let mut denied = false;
    for cand in &prepared.exec.candidates {
        // SAFETY: cand, argv and envp are NUL-terminated strings and
        // NULL-terminated pointer arrays that live as long as this process.
        unsafe {
            libc::execve(
                cand.as_ptr(),
                prepared.exec.argv_ptrs.as_ptr(),
                prepared.exec.envp.as_ptr(),
            )
        };
        match Errno::last() {
            Errno::ENOENT | Errno::ENOTDIR => {}
            Errno::EACCES => denied = true,
            e => {
                err = e;
                break;
            }
        }
    }
    if err == Errno::ENOENT && denied {
        err = Errno::EACCES;
    }
    let name = prepared
        .exec
        .argv
        .first()
        .map_or(&b""[..], |a| a.to_bytes());
    report::send(report, Step::Exec, err, name);
    if err == Errno::ENOENT { 127 } else { 126 }
}
