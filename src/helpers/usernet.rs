//! `[network]` user mode at run time: the program that connects the
//! sandbox's network namespace to the outside (pasta, [`super::pasta`];
//! or slirp4netns, [`super::slirp4netns`]), as a helper.
//!
//! - **before clone**: the namespace comes from the clone itself (no
//!   namespace maker: the program needs it right after clone), and the
//!   launcher, not the child, writes the child's uid and gid maps, so that
//!   they are in place before the program joins the user namespace; the
//!   child waits at the early barrier meanwhile.
//! - **start**: the maps, then the program, pointed at the child's
//!   namespaces by `/proc/PID/ns/…` (the child is hutch's own and not yet
//!   reaped, so its pid cannot name another process; a current pasta
//!   closes every inherited descriptor but 0, 1, 2, so none is passed
//!   beyond those), with the default signal mask, tied to hutch
//!   (`process::spawn_program`), its standard output a readiness pipe and
//!   its standard error captured;
//! - **ready**: the program's own word that the interface is up (pasta's
//!   PID file, slirp4netns's ready descriptor), never a sleep; the child
//!   waits at the late barrier, before it confines itself, until then;
//! - **supervise**: its standard error is drained (a program blocked on a
//!   full pipe would stop forwarding), its exit is noticed and reported;
//! - **finish**: killed (and by the death signal if hutch is killed);
//!   reaped only when the sandbox published ports, so that they are free
//!   again when hutch returns: else hutch does not wait the 15 to 30 ms
//!   the kernel takes to remove pasta's tap device (bench/README.md).
//!
//! A failure is a [`NetworkError`] with the program's own standard error,
//! minus Debian pasta's complaints that there is no syslog.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::process::{self, HelperProcess};
use super::{CloneSetup, Helper, HelperError, Started};
use crate::plan::network::{Backend, UserNetwork};
use crate::prepare::Barrier;

/// How long the program may take to say it is ready: far more than it
/// needs (a few milliseconds), so that only a hung program reaches it.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How much of the program's standard error is kept for a report.
const STDERR_KEPT: usize = 8 * 1024;

/// A failure of the network program.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot write the sandbox's {what} for {program}: {}", .errno.desc())]
    IdMap {
        program: &'static str,
        what: &'static str,
        errno: Errno,
    },
    #[error("{program} could not connect the sandbox's network ({status}){}", stderr_part(.stderr))]
    Exited {
        program: &'static str,
        status: String,
        stderr: String,
    },
    #[error(
        "{program} did not report the sandbox's network ready within {} s{}",
        READY_TIMEOUT.as_secs(),
        stderr_part(.stderr)
    )]
    Timeout {
        program: &'static str,
        stderr: String,
    },
}

fn stderr_part(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {}", crate::diag::sanitize(stderr))
    }
}

/// The helper of `[network]` user mode.
pub struct UserNet {
    plan: UserNetwork,
    /// The child's uid and gid maps, written by the launcher.
    id_maps: Option<(Vec<u8>, Vec<u8>)>,
    process: Option<HelperProcess>,
    ready: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    /// The last [`STDERR_KEPT`] bytes of its standard error.
    stderr_tail: Vec<u8>,
    /// Its exit was reported (once).
    exit_reported: bool,
}

impl UserNet {
    pub fn new(plan: &UserNetwork) -> UserNet {
        UserNet {
            plan: plan.clone(),
            id_maps: None,
            process: None,
            ready: None,
            stderr: None,
            stderr_tail: Vec::new(),
            exit_reported: false,
        }
    }

    fn program_name(&self) -> &'static str {
        self.plan.backend.name()
    }

    /// Writes the child's id maps, as its parent may for its own uid.
    fn write_id_maps(&self, pid: libc::pid_t) -> Result<(), NetworkError> {
        let Some((uid_map, gid_map)) = &self.id_maps else {
            return Ok(());
        };
        for (what, file, content) in [
            ("setgroups", "setgroups", &b"deny"[..]),
            ("uid map", "uid_map", uid_map),
            ("gid map", "gid_map", gid_map),
        ] {
            std::fs::write(format!("/proc/{pid}/{file}"), content).map_err(|e| {
                NetworkError::IdMap {
                    program: self.program_name(),
                    what,
                    errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                }
            })?;
        }
        Ok(())
    }

    /// Reads what is waiting on the program's standard error.
    fn drain_stderr(&mut self) {
        let Some(fd) = &self.stderr else { return };
        let mut buf = [0u8; 4096];
        loop {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => {
                    self.stderr = None;
                    return;
                }
                Ok(n) => {
                    self.stderr_tail.extend_from_slice(&buf[..n]);
                    let excess = self.stderr_tail.len().saturating_sub(STDERR_KEPT);
                    self.stderr_tail.drain(..excess);
                }
                Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }

    /// Its standard error, for a report: Debian's pasta without a syslog
    /// daemon says so on every line it logs, which is no news to anyone.
    pub fn stderr_text(&mut self) -> String {
        self.drain_stderr();
        clean_stderr(&String::from_utf8_lossy(&self.stderr_tail))
    }

    /// The program exited (or never became ready): the error, with its
    /// status and standard error.
    fn exited(&mut self) -> NetworkError {
        let status = self
            .process
            .as_mut()
            .and_then(|p| p.finish())
            .map_or("killed".to_string(), describe_status);
        NetworkError::Exited {
            program: self.program_name(),
            status,
            stderr: self.stderr_text(),
        }
    }

    /// Waits for the program's readiness byte, or its exit.
    fn wait_ready(&mut self) -> Result<(), NetworkError> {
        let Some(ready) = self.ready.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                if let Some(p) = &mut self.process {
                    p.finish();
                }
                return Err(NetworkError::Timeout {
                    program: self.program_name(),
                    stderr: self.stderr_text(),
                });
            }
            match self.poll_ready(&ready, left) {
                Ok(Woke::Nothing) => {}
                Ok(Woke::Ready) => {
                    let mut buf = [0u8; 32];
                    match nix::unistd::read(&ready, &mut buf) {
                        Ok(n) if n > 0 => return Ok(()),
                        Err(Errno::EINTR | Errno::EAGAIN) => {}
                        // End of file: it closed the pipe without a word.
                        _ => return Err(self.exited()),
                    }
                }
                Ok(Woke::Exited) | Err(_) => return Err(self.exited()),
            }
        }
    }

    /// Polls the readiness pipe and the program's pidfd for at most `left`.
    fn poll_ready(&self, ready: &OwnedFd, left: Duration) -> Result<Woke, Errno> {
        let Some(process) = &self.process else {
            return Ok(Woke::Exited);
        };
        let mut fds = [
            PollFd::new(ready.as_fd(), PollFlags::POLLIN),
            PollFd::new(process.pidfd(), PollFlags::POLLIN),
        ];
        let ms =
            PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Err(Errno::EINTR) | Ok(0) => return Ok(Woke::Nothing),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let woke = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        Ok(if woke(&fds[0]) {
            Woke::Ready
        } else if woke(&fds[1]) {
            Woke::Exited
        } else {
            Woke::Nothing
        })
    }
}

/// What woke [`UserNet::poll_ready`].
enum Woke {
    Nothing,
    /// The readiness pipe: a byte, or end of file.
    Ready,
    Exited,
}

/// `exit status 1`, `killed by signal 9`.
fn describe_status(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit status {}", libc::WEXITSTATUS(status))
    }
}

/// `text` without the lines that only say syslog is missing, trimmed,
/// its lines joined with "; ".
pub fn clean_stderr(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_syslog_complaint(l))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Debian's pasta without a syslog daemon: "Failed to send N bytes to syslog".
fn is_syslog_complaint(line: &str) -> bool {
    line.starts_with("Failed to send") && line.ends_with("to syslog")
}

/// A pipe whose ends are closed on exec; the read end does not block.
fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    nix::fcntl::fcntl(&r, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok((r, w))
}

impl Helper for UserNet {
    fn name(&self) -> &'static str {
        self.program_name()
    }

    /// The namespace comes with the clone; the launcher writes the id
    /// maps (see the module's documentation).
    fn before_clone(&mut self, setup: &mut CloneSetup<'_>) -> Result<(), HelperError> {
        setup.flags |= libc::CLONE_NEWNET as u64;
        self.id_maps = setup.prepared.id_maps.take();
        Ok(())
    }

    /// The early barrier while the launcher writes the id maps...
    fn barrier(&self, _setup: &CloneSetup<'_>) -> Option<Barrier> {
        Some(Barrier::Early)
    }

    /// ...and the late one until the network is up.
    fn ready_barrier(&self) -> bool {
        true
    }

    fn start(&mut self, child: &Started) -> Result<(), HelperError> {
        let name = self.program_name();
        self.write_id_maps(child.pid)?;
        let start = |errno| HelperError::Start {
            helper: name,
            errno,
        };
        let (stderr_r, stderr_w) = pipe().map_err(start)?;
        let launch = match self.plan.backend {
            Backend::Pasta => super::pasta::launch(&self.plan, child.pid, &stderr_w),
            Backend::Slirp4netns => super::slirp4netns::launch(&self.plan, child.pid, &stderr_w),
        }
        .map_err(start)?;
        let process = process::spawn_program(name, &launch.program)?;
        // Only the program holds the write ends now: end of file when it dies.
        drop(launch.program);
        drop(stderr_w);
        self.process = Some(process);
        self.ready = Some(launch.ready);
        self.stderr = Some(stderr_r);
        Ok(())
    }

    fn ready(&mut self) -> Result<(), HelperError> {
        self.wait_ready().map_err(HelperError::from)
    }

    fn describe(&self) -> Option<String> {
        let pid = self.process.as_ref().map_or(0, HelperProcess::pid);
        Some(format!(
            "network: user mode, connected by {} (pid {pid}), {} egress rules",
            self.plan.program.display(),
            self.plan.egress.len()
        ))
    }

    fn watch(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        let mut out = Vec::new();
        if let Some(fd) = &self.stderr {
            out.push((fd.as_fd(), PollFlags::POLLIN));
        }
        if let Some(p) = &self.process
            && !p.reaped()
        {
            out.push((p.pidfd(), PollFlags::POLLIN));
        }
        out
    }

    /// Its standard error is kept; its exit while the sandbox runs is
    /// said once: the sandbox goes on, without a network.
    fn woken(&mut self) {
        self.drain_stderr();
        let Some(p) = &mut self.process else { return };
        if let Some(status) = p.reap()
            && !self.exit_reported
        {
            self.exit_reported = true;
            let err = self.stderr_text();
            eprintln!(
                "hutch: warning: {} exited while the sandbox runs ({}){}; the sandbox has no network from now on",
                self.program_name(),
                describe_status(status),
                stderr_part(&err)
            );
        }
    }

    fn finish(&mut self, code: i32) -> i32 {
        if let Some(p) = &mut self.process {
            if self.plan.publish.is_empty() {
                p.kill();
            } else {
                p.finish();
            }
        }
        code
    }
}

/// `hutch doctor`'s trial of a backend: a child in new user and network
/// namespaces, connected by the program as a sandbox would be (this
/// helper, its readiness and lifecycle), sends a byte to a TCP listener on
/// the host's loopback and reads it back: through pasta's `-T` forward, or
/// slirp4netns's gateway 10.0.2.2. Nothing leaves the machine.
pub fn probe(backend: Backend, program: &std::path::Path) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpListener};
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| format!("cannot listen on the host's loopback: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let (target, host_loopback, host_ports) = match backend {
        Backend::Pasta => (
            Ipv4Addr::LOCALHOST,
            false,
            vec![crate::plan::network::HostForward {
                proto: crate::plan::network::Proto::Tcp,
                port,
                from: "hutch doctor".into(),
            }],
        ),
        Backend::Slirp4netns => (Ipv4Addr::new(10, 0, 2, 2), true, Vec::new()),
    };
    let plan = UserNetwork {
        backend,
        program: program.to_path_buf(),
        host_loopback,
        host_ports,
        publish: Vec::new(),
        dns: None,
        egress: Vec::new(),
    };
    let (go_r, go_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| e.desc().to_string())?;
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let flags = (libc::CLONE_NEWUSER | libc::CLONE_NEWNET) as u64;
    let pid = crate::sys::clone_fork(flags, None)
        .map_err(|e| format!("cannot make user and network namespaces: {}", e.desc()))?;
    if pid == 0 {
        // The child: waits for the word, then the round trip. Exit status 0:
        // the byte came back; 2: no word; 3: connect failed; 4: no echo.
        drop(go_w);
        let mut b = [0u8; 1];
        if !matches!(nix::unistd::read(&go_r, &mut b), Ok(1)) {
            crate::sys::exit_now(2);
        }
        let Ok(mut s) = std::net::TcpStream::connect((target, port)) else {
            crate::sys::exit_now(3);
        };
        let mut back = [0u8; 1];
        let ok = s.write_all(b"h").is_ok() && s.read_exact(&mut back).is_ok() && back == *b"h";
        crate::sys::exit_now(if ok { 0 } else { 4 });
    }
    drop(go_r);
    let mut net = UserNet::new(&plan);
    net.id_maps = Some((
        format!("{uid} {uid} 1\n").into(),
        format!("{gid} {gid} 1\n").into(),
    ));
    let started = net
        .start(&Started {
            pid,
            in_cgroup: false,
        })
        .and_then(|()| net.ready());
    let result = started.map_err(|e| e.to_string()).and_then(|()| {
        nix::unistd::write(&go_w, b"g").map_err(|e| e.desc().to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err(format!("no connection came through {}", backend.name()));
                    }
                    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                    let _ = poll(&mut fds, PollTimeout::from(100u8));
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        let _ = conn.set_nonblocking(false);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut b = [0u8; 1];
        conn.read_exact(&mut b)
            .and_then(|()| conn.write_all(&b))
            .map_err(|e| format!("the connection through {} broke: {e}", backend.name()))
    });
    drop(go_w);
    let status = loop {
        match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Err(Errno::EINTR) => continue,
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => break Some(code),
            _ => break None,
        }
    };
    // Reaped here: doctor goes on after the trial.
    if let Some(p) = &mut net.process {
        p.finish();
    }
    result?;
    match status {
        Some(0) => Ok(()),
        Some(3) => Err(format!(
            "the namespace could not connect to the host through {}",
            backend.name()
        )),
        _ => Err(format!(
            "the byte sent through {} did not come back",
            backend.name()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_complaints_are_left_out_of_a_report() {
        let text = "Failed to send 52 bytes to syslog\n\
                    Failed to bind any port for '-t 127.0.0.1/8080:80', exiting\n\
                    Failed to send 70 bytes to syslog\n";
        assert_eq!(
            clean_stderr(text),
            "Failed to bind any port for '-t 127.0.0.1/8080:80', exiting"
        );
    }
}
