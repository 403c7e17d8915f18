//! The D-Bus proxy of `[dbus]` (see `plan::dbus`): one xdg-dbus-proxy for
//! every bus the profile names, started by the desktop session before
//! clone (the sandbox binds its sockets) and stopped before the session
//! removes its directory.
//!
//! Its arguments go in through `--args=FD` (a sealed memory file, NUL
//! separated: no length limit of a pipe, nothing on its command line for
//! other users' `ps`). `--fd=FD` is the write end of a pipe: the proxy
//! writes a byte there once it listens on every socket, and exits when the
//! read end, held here, is closed — by the session's end, or by the kernel
//! when hutch dies; the process is also tied to hutch by
//! `helpers::process` (death signal, pidfd, killed at finish).

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::HelperError;
use super::process::{self, HelperProcess, Program};
use crate::plan::dbus::DbusPlan;

const NAME: &str = "the D-Bus proxy";
/// How long the proxy may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Its descriptors: the readiness pipe and the arguments.
const READY_FD: i32 = 3;
const ARGS_FD: i32 = 4;

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    process: HelperProcess,
    /// The read end of the readiness pipe: closing it stops the proxy.
    hold: Option<OwnedFd>,
}

impl Proxy {
    /// Starts the proxy for `plan` and waits until it listens.
    pub fn start(plan: &DbusPlan) -> Result<Proxy, HelperError> {
        let fail = |errno| HelperError::Start {
            helper: NAME,
            errno,
        };
        let args = args_file(&plan.proxy_args()).map_err(fail)?;
        let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(fail)?;
        let program = Program::new(
            &[
                plan.proxy.as_os_str(),
                format!("--fd={READY_FD}").as_ref(),
                format!("--args={ARGS_FD}").as_ref(),
            ],
            &[],
        )
        .map_err(|_| fail(Errno::EINVAL))?
        .pass_fd(&ready_w, READY_FD)
        .pass_fd(&args, ARGS_FD);
        let mut process = process::spawn_program(NAME, &program)?;
        drop(ready_w);
        drop(args);
        match wait_ready(&ready_r) {
            Ok(()) => Ok(Proxy {
                process,
                hold: Some(ready_r),
            }),
            Err(why) => {
                let status = process.finish();
                Err(HelperError::NotReady {
                    helper: NAME,
                    why: format!(
                        "{why}{}",
                        status
                            .filter(|_| why.contains("exited"))
                            .map(|s| format!(" (status {})", crate::sys::exit_code(s)))
                            .unwrap_or_default()
                    ),
                })
            }
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.process.pid()
    }

    /// Stops the proxy (if it still runs) and reaps it.
    pub fn stop(&mut self) {
        self.hold = None;
        self.process.finish();
    }
}

/// A memory file holding `args`, each ended by a NUL, at offset 0.
fn args_file(args: &[String]) -> Result<OwnedFd, Errno> {
    let fd = nix::sys::memfd::memfd_create(
        c"hutch-dbus-proxy-args",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
    )?;
    let mut file = std::fs::File::from(fd);
    for a in args {
        file.write_all(a.as_bytes())
            .and_then(|()| file.write_all(b"\0"))
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    }
    nix::unistd::lseek(file.as_fd(), 0, nix::unistd::Whence::SeekSet)?;
    Ok(OwnedFd::from(file))
}

/// Waits for the proxy's byte on `ready`; else says why it did not come.
fn wait_ready(ready: &OwnedFd) -> Result<(), String> {
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("waiting for it failed: {}", e.desc())),
            Ok(0) if left.is_zero() => {
                return Err(format!(
                    "it did not say it was listening within {} s",
                    READY_TIMEOUT.as_secs()
                ));
            }
            Ok(0) => continue,
            Ok(_) => break,
        }
    }
    let mut byte = [0u8; 1];
    match nix::unistd::read(ready, &mut byte) {
        Ok(1) => Ok(()),
        Ok(_) => Err("it exited before it was listening (its message, if any, is above)".into()),
        Err(e) => Err(format!("reading its readiness failed: {}", e.desc())),
    }
}
