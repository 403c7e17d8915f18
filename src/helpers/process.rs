//! Starting a helper process, the one way hutch does: a child of the
//! launcher, tied to it (`PR_SET_PDEATHSIG(SIGKILL)`, checked against a
//! launcher that died before the signal was armed), held by a pidfd from
//! the clone itself, with the default signal mask (the launcher blocks the
//! signals it forwards), and killed when the launch finishes or fails —
//! so a helper never outlives the sandbox, SIGKILL of hutch included.
//!
//! [`spawn`] runs a function of hutch's in the new process (the network
//! namespace maker); [`spawn_program`] executes a program there, with the
//! descriptors it is given and nothing else, and reports a program that
//! cannot be executed as an error of the launch.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

use super::HelperError;
use crate::prepare::{NulError, cstring};
use crate::sys;

/// A process a helper started.
#[derive(Debug)]
pub struct HelperProcess {
    /// The helper it belongs to, for messages.
    helper: &'static str,
    pid: libc::pid_t,
    pidfd: OwnedFd,
    /// Its wait status, once reaped.
    status: Option<libc::c_int>,
    /// Killed by [`HelperProcess::kill`], left for the kernel to finish.
    killed: bool,
}

/// Starts a process for `helper` that runs `run` and exits with what it
/// returns. `run` executes in a fork of the launcher: it must only make
/// system calls (no allocation, no locks: another thread of the launcher
/// may hold one) and end by returning or in execve.
pub fn spawn(
    helper: &'static str,
    run: impl FnOnce() -> i32,
) -> Result<HelperProcess, HelperError> {
    let launcher = nix::unistd::getpid();
    match sys::fork_with_pidfd() {
        Err(errno) => Err(HelperError::Start { helper, errno }),
        Ok(sys::Forked::Child) => {
            let code = match tie_to(launcher) {
                Ok(()) => run(),
                Err(_) => 1,
            };
            sys::exit_now(code)
        }
        Ok(sys::Forked::Parent { pid, pidfd }) => Ok(HelperProcess {
            helper,
            pid,
            pidfd,
            status: None,
            killed: false,
        }),
    }
}

/// In the new process: dies with the launcher, even one that died first.
fn tie_to(launcher: nix::unistd::Pid) -> Result<(), Errno> {
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)?;
    // Armed too late if the launcher is gone already: it re-parented us.
    if nix::unistd::getppid() != launcher {
        return Err(Errno::ESRCH);
    }
    sys::unblock_all_signals();
    Ok(())
}

/// A program a helper runs, ready for execve before the fork.
#[derive(Debug)]
pub struct Program {
    path: CString,
    _argv: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    envp: Vec<*const libc::c_char>,
    /// Descriptors it gets: (the launcher's, the number it has there).
    fds: Vec<(RawFd, RawFd)>,
    /// Descriptors passed with [`Program::pass_owned`], held until the
    /// program is dropped.
    owned: Vec<OwnedFd>,
}

/// At most this many descriptors are passed to a program.
const MAX_FDS: usize = 8;

impl Program {
    /// `argv[0]` is executed (an absolute path: no PATH lookup), with the
    /// environment `env` (`NAME=value` entries) and no other.
    pub fn new<A: AsRef<OsStr>>(argv: &[A], env: &[&str]) -> Result<Program, NulError> {
        let argv: Vec<CString> = argv
            .iter()
            .map(|a| cstring("helper argument", a.as_ref().as_bytes()))
            .collect::<Result<_, _>>()?;
        let env: Vec<CString> = env
            .iter()
            .map(|e| cstring("helper environment", e.as_bytes()))
            .collect::<Result<_, _>>()?;
        let pointers = |strings: &[CString]| {
            let mut p: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
            p.push(std::ptr::null());
            p
        };
        Ok(Program {
            path: argv.first().cloned().unwrap_or_default(),
            argv: pointers(&argv),
            _argv: argv,
            envp: pointers(&env),
            _env: env,
            fds: Vec::new(),
            owned: Vec::new(),
        })
    }

    /// Passes the launcher's `fd` to the program as descriptor `to`. The
    /// program gets only 0, 1, 2 and what is passed so.
    pub fn pass_fd(mut self, fd: impl AsFd, to: RawFd) -> Program {
        self.fds.push((fd.as_fd().as_raw_fd(), to));
        self
    }

    /// Like [`Program::pass_fd`], for a descriptor the program keeps open
    /// until it is dropped (the launcher's copy of a pipe end the started
    /// program alone should hold: drop the `Program` once started).
    pub fn pass_owned(mut self, fd: OwnedFd, to: RawFd) -> Program {
        self.fds.push((fd.as_raw_fd(), to));
        self.owned.push(fd);
        self
    }
}

/// Starts `program` for `helper`. Returns once the program is executed,
/// or with the reason it could not be.
pub fn spawn_program(
    helper: &'static str,
    program: &Program,
) -> Result<HelperProcess, HelperError> {
    if program.fds.len() > MAX_FDS {
        return Err(HelperError::Start {
            helper,
            errno: Errno::EINVAL,
        });
    }
    // Closed on a successful exec: end of file. Else the errno comes first.
    let (exec_r, exec_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|errno| HelperError::Start { helper, errno })?;
    let process = spawn(helper, || {
        let errno = match place_fds(&program.fds) {
            Ok(()) => sys::execve(&program.path, &program.argv, &program.envp),
            Err(e) => e,
        };
        let _ = sys::write_all(exec_w.as_raw_fd(), &(errno as i32).to_ne_bytes());
        127
    })?;
    drop(exec_w);
    let mut reason = [0u8; 4];
    let n = loop {
        match nix::unistd::read(&exec_r, &mut reason) {
            Err(Errno::EINTR) => continue,
            other => break other.unwrap_or(0),
        }
    };
    if n == reason.len() {
        let mut process = process;
        process.finish();
        return Err(HelperError::Start {
            helper,
            errno: Errno::from_raw(i32::from_ne_bytes(reason)),
        });
    }
    Ok(process)
}

/// In the new process: puts each passed descriptor at its number, without
/// one overwriting another that is still to be moved (each goes above all
/// targets first). Allocation-free.
fn place_fds(fds: &[(RawFd, RawFd)]) -> Result<(), Errno> {
    let above = fds.iter().map(|&(_, to)| to).max().unwrap_or(0) + 1;
    let mut moved = [-1; MAX_FDS];
    for (slot, &(from, _)) in moved.iter_mut().zip(fds) {
        *slot = sys::dup_above(from, above)?;
    }
    for (&tmp, &(_, to)) in moved.iter().zip(fds) {
        sys::dup2(tmp, to)?;
    }
    Ok(())
}

impl HelperProcess {
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Readable once the process has exited (for the launcher's poll).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Whether it has exited and been reaped.
    pub fn reaped(&self) -> bool {
        self.status.is_some()
    }

    /// Reaps it if it has exited; its wait status once reaped.
    pub fn reap(&mut self) -> Option<libc::c_int> {
        if self.status.is_none()
            && let Ok(Some(status)) = sys::waitpid(self.pid, true)
        {
            self.status = Some(status);
        }
        self.status
    }

    /// Kills it (if it still runs) and reaps it; its wait status.
    pub fn finish(&mut self) -> Option<libc::c_int> {
        if self.status.is_none() {
            // Through the pidfd: the number cannot have been reused, the
            // process is ours and not reaped yet.
            let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
            self.status = sys::waitpid(self.pid, false).ok().flatten();
        }
        self.status
    }

    /// Kills it (if it still runs) without waiting for the kernel to
    /// finish tearing it down: the signal is delivered at once and the
    /// process never runs again, but its exit (pasta's: removing its tap
    /// device, which waits for the network stack's grace periods, 15 to
    /// 30 ms) goes on while the launcher exits; whoever inherits the
    /// process reaps it. For a launcher that is about to exit and needs
    /// nothing the process holds released first.
    pub fn kill(&mut self) {
        if self.status.is_none() && !self.killed {
            let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
            self.killed = true;
        }
    }

    /// Waits up to `grace` for it to exit, then kills it; reaps it.
    pub fn wait_or_kill(&mut self, grace: std::time::Duration) -> Option<libc::c_int> {
        if self.status.is_none() {
            let mut fds = [nix::poll::PollFd::new(
                self.pidfd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let ms = u16::try_from(grace.as_millis()).unwrap_or(u16::MAX);
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
        }
        self.finish()
    }

    /// The helper it belongs to.
    pub fn helper(&self) -> &'static str {
        self.helper
    }
}

impl Drop for HelperProcess {
    /// A launch that failed half-way still ends its helpers' processes.
    fn drop(&mut self) {
        if !self.killed {
            self.finish();
        }
    }
}

/// How a helper's program is started and how it says it is ready.
pub struct Launch {
    pub program: Program,
    /// The read end of the pipe the program writes to once ready.
    pub ready: OwnedFd,
}

/// A program started as a network backend (`super::pasta`,
/// `super::slirp4netns`): standard input /dev/null, standard error `stderr`.
pub fn base_program(argv: &[String], stderr: &OwnedFd) -> Result<Program, Errno> {
    let devnull = std::fs::File::open("/dev/null")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let program = Program::new(argv, &[]).map_err(|_| Errno::EINVAL)?;
    Ok(program
        .pass_owned(OwnedFd::from(devnull), 0)
        .pass_fd(stderr, 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    use std::time::Duration;

    /// Whether process `pid` (not ours: re-parented) is gone within
    /// `wait`: exited (a zombie) or reaped.
    fn exits_within(pid: libc::pid_t, wait: Duration) -> bool {
        let gone = || match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                .is_some_and(|state| state == "Z" || state == "X"),
        };
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            if gone() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        gone()
    }

    /// A stand-in for the launcher, forked from this test: starts `sleep`
    /// the way `start` says, writes its pid to `out`, then waits to be
    /// killed. Only system calls in it (the test harness has threads).
    fn stand_in(
        start: fn(&Program) -> libc::pid_t,
        program: &Program,
    ) -> (libc::pid_t, libc::pid_t) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let launcher = sys::clone_fork(0, None).unwrap();
        if launcher == 0 {
            let pid = start(program);
            let _ = sys::write_all(w.as_raw_fd(), &pid.to_ne_bytes());
            loop {
                nix::unistd::pause();
            }
        }
        drop(w);
        let mut buf = [0u8; 4];
        assert_eq!(nix::unistd::read(&r, &mut buf).unwrap(), 4);
        (launcher, libc::pid_t::from_ne_bytes(buf))
    }

    fn sleeper() -> Program {
        Program::new(&["/bin/sleep", "100"], &[]).unwrap()
    }

    #[test]
    fn a_helper_process_dies_with_a_killed_launcher() {
        let tied = |p: &Program| match spawn_program("test", p) {
            // Left running: the stand-in's end is what is tested.
            Ok(process) => std::mem::ManuallyDrop::new(process).pid(),
            Err(_) => -1,
        };
        let (launcher, helper) = stand_in(tied, &sleeper());
        assert!(helper > 0);
        assert!(!exits_within(helper, Duration::from_millis(100)));
        kill(Pid::from_raw(launcher), Signal::SIGKILL).unwrap();
        sys::waitpid(launcher, false).unwrap();
        assert!(
            exits_within(helper, Duration::from_secs(10)),
            "the helper outlived its launcher"
        );
    }

    /// The negative control: the same program started by a plain fork
    /// and exec survives its launcher's SIGKILL.
    #[test]
    fn without_the_tie_a_process_outlives_its_launcher() {
        let untied = |p: &Program| match sys::clone_fork(0, None) {
            Ok(0) => {
                sys::execve(&p.path, &p.argv, &p.envp);
                sys::exit_now(127)
            }
            Ok(pid) => pid,
            Err(_) => -1,
        };
        let (launcher, orphan) = stand_in(untied, &sleeper());
        assert!(orphan > 0);
        kill(Pid::from_raw(launcher), Signal::SIGKILL).unwrap();
        sys::waitpid(launcher, false).unwrap();
        let survived = !exits_within(orphan, Duration::from_millis(500));
        let _ = kill(Pid::from_raw(orphan), Signal::SIGKILL);
        assert!(
            survived,
            "the control died with its launcher: the test proves nothing"
        );
    }

    /// The check for a launcher that died before the death signal was
    /// armed: seen from the new process, its parent is not the launcher.
    #[test]
    fn a_process_whose_launcher_is_gone_does_not_go_on() {
        let pid = sys::clone_fork(0, None).unwrap();
        if pid == 0 {
            // As if the launcher were another process than our parent.
            let wrong = tie_to(Pid::from_raw(1)) == Err(Errno::ESRCH);
            let right = tie_to(nix::unistd::getppid()).is_ok();
            sys::exit_now(if wrong && right { 0 } else { 1 });
        }
        let status = sys::waitpid(pid, false).unwrap().unwrap();
        assert_eq!(sys::exit_code(status), 0);
    }

    #[test]
    fn a_program_gets_its_descriptors_and_is_killed_at_finish() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let program = Program::new(&["/bin/sh", "-c", "echo ready >&3; exec sleep 100"], &[])
            .unwrap()
            .pass_fd(&w, 3);
        let mut process = spawn_program("test", &program).unwrap();
        drop(w);
        let mut buf = [0u8; 6];
        assert_eq!(nix::unistd::read(&r, &mut buf).unwrap(), 6);
        assert_eq!(&buf, b"ready\n");
        assert!(!process.reaped());
        assert_eq!(process.reap(), None, "still running");
        let status = process.finish().unwrap();
        assert_eq!(sys::exit_code(status), 128 + libc::SIGKILL);
    }

    #[test]
    fn a_killed_program_dies_without_being_waited_for() {
        let program = Program::new(&["/bin/sleep", "100"], &[]).unwrap();
        let mut process = spawn_program("test", &program).unwrap();
        let pid = process.pid();
        process.kill();
        // Dropping it does not reap it (nor block): it is a zombie of ours.
        drop(process);
        assert!(
            exits_within(pid, Duration::from_secs(5)),
            "pid {pid} still runs"
        );
        let status = sys::waitpid(pid, false).unwrap().unwrap();
        assert_eq!(sys::exit_code(status), 128 + libc::SIGKILL);
    }

    #[test]
    fn a_program_that_cannot_be_executed_is_an_error_of_its_helper() {
        let program = Program::new(&["/nonexistent/helper"], &[]).unwrap();
        let e = spawn_program("the test helper", &program).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot start the test helper: No such file or directory"
        );
    }
}
