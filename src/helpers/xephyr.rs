//! The nested X server of `x11 = "nested"` (see `plan::desktop`): Xephyr,
//! started by the desktop session before clone, in a hutch sandbox of its
//! own — it parses everything the app sends it, so it gets no more than
//! it needs: the host's system directories read-only, the host display
//! (through that sandbox's own `[desktop] x11 = "host"`: the socket and a
//! private copy of the cookie), its cookie file, and the launch
//! directory's `x11/` as its /tmp/.X11-unix, where it makes its socket.
//!
//! X servers make their socket in /tmp/.X11-unix, a path compiled in;
//! the sandbox puts the launch directory there. `-nolisten tcp -nolisten
//! local` leaves only that socket (no TCP port, no abstract socket), and
//! `-auth` a fresh cookie the app's Xauthority holds too; never `-ac`.
//! Xephyr writes its display number on `-displayfd 1` (the sandbox's
//! stdout, a pipe read here) once it accepts clients: no sleeping.
//!
//! The process held is the inner `hutch run`: it is tied to this launcher
//! (`helpers::process`), and its sandbox to it. At the end it gets SIGTERM
//! (it forwards it to Xephyr, which removes its socket, and removes its
//! own launch directory), and SIGKILL if it has not exited within a second.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::HelperError;
use super::process::{self, HelperProcess, Program};
use crate::plan::desktop::{NESTED_AUTH_FILE, NESTED_PROFILE_FILE, NESTED_SOCKET_DIR, X11Plan};

const NAME: &str = "the nested X server";
/// How long Xephyr may take to accept clients.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long it may take to exit when asked.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// Where its sandbox has its cookie file.
const AUTH_INSIDE: &str = "/tmp/xephyr-auth";

/// The profile of Xephyr's sandbox, for its directory `dir`
/// ([`crate::plan::desktop::NestedPlan::dir`]) and the program `xephyr`
/// (bound too: PATH may name a directory outside the system's).
pub fn profile(dir: &Path, xephyr: &Path) -> String {
    let quote = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    format!(
        "version = 1\n\
         description = \"hutch's nested X server (x11 = \\\"nested\\\")\"\n\
         extends = [\"base/system\"]\n\
         [[mount]]\ntype = \"bind\"\nsrc = {}\ndst = \"/tmp/.X11-unix\"\n\
         [[mount]]\ntype = \"ro-bind\"\nsrc = {}\ndst = \"{AUTH_INSIDE}\"\n\
         [[mount]]\ntype = \"ro-bind\"\nsrc = {2}\ndst = {2}\n\
         [desktop]\ndisplay = \"x11\"\nx11 = \"host\"\n",
        quote(&dir.join(NESTED_SOCKET_DIR)),
        quote(&dir.join(NESTED_AUTH_FILE)),
        quote(xephyr),
    )
}

/// A running nested server.
#[derive(Debug)]
pub struct Nested {
    process: HelperProcess,
    /// The read end of its stdout, held so that a later write there
    /// does not fail (or kill it).
    _stdout: OwnedFd,
}

impl Nested {
    /// Starts Xephyr for `x11` in its sandbox (its profile already in the
    /// launch directory `launch_dir`, as [`profile`] writes it) with the
    /// title `title`, and waits until it accepts clients.
    pub fn spawn(x11: &X11Plan, launch_dir: &Path, title: &str) -> Result<Starting, HelperError> {
        let fail = |errno| HelperError::Start {
            helper: NAME,
            errno,
        };
        let nested = x11.nested.as_ref().ok_or(fail(Errno::EINVAL))?;
        let hutch = std::env::current_exe()
            .map_err(|e| fail(Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT))))?;
        let display = format!(":{}", x11.display);
        let profile = launch_dir.join(NESTED_PROFILE_FILE);
        let argv: Vec<&std::ffi::OsStr> = vec![
            hutch.as_os_str(),
            "run".as_ref(),
            "--profile".as_ref(),
            profile.as_os_str(),
            "--".as_ref(),
            nested.xephyr.as_os_str(),
            display.as_ref(),
            "-displayfd".as_ref(),
            "1".as_ref(),
            "-nolisten".as_ref(),
            "tcp".as_ref(),
            "-nolisten".as_ref(),
            "local".as_ref(),
            "-auth".as_ref(),
            AUTH_INSIDE.as_ref(),
            "-screen".as_ref(),
            nested.size.as_ref(),
            "-resizeable".as_ref(),
            "-no-host-grab".as_ref(),
            "-title".as_ref(),
            title.as_ref(),
        ];
        // The caller's environment: the inner hutch finds the host display,
        // its cookie and its own runtime directory as this one did.
        let env: Vec<String> = std::env::vars_os()
            .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, v.to_str()?)))
            .collect();
        let env: Vec<&str> = env.iter().map(String::as_str).collect();
        let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(fail)?;
        let program = Program::new(&argv, &env)
            .map_err(|_| fail(Errno::EINVAL))?
            .pass_fd(&ready_w, 1);
        let process = process::spawn_program(NAME, &program)?;
        Ok(Starting {
            process,
            ready: ready_r,
            display: x11.display,
        })
    }

    pub fn pid(&self) -> libc::pid_t {
        self.process.pid()
    }

    /// Asks it to exit (SIGTERM); [`Nested::wait`] then waits for that.
    pub fn ask_stop(&mut self) {
        if !self.process.reaped() {
            let _ = crate::sys::pidfd_send_signal(self.process.pidfd().as_raw_fd(), libc::SIGTERM);
        }
    }

    /// Waits for it to exit once asked; kills it if it has not after the
    /// grace time.
    pub fn wait(&mut self) {
        if !self.process.reaped() {
            self.process.wait_or_kill(STOP_GRACE);
        }
    }
}

/// A nested server started and not ready yet: [`Starting::ready`] waits
/// for the display number it writes, so that the launcher can start the
/// D-Bus proxy meanwhile.
#[derive(Debug)]
pub struct Starting {
    process: HelperProcess,
    /// The read end of its `-displayfd` pipe.
    ready: OwnedFd,
    display: u32,
}

impl Starting {
    /// Waits until the server says its display number.
    pub fn ready(self) -> Result<Nested, HelperError> {
        let Starting {
            mut process,
            ready,
            display,
        } = self;
        match wait_display(&ready, display) {
            Ok(()) => Ok(Nested {
                process,
                _stdout: ready,
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
}

/// The caller's environment, for an inner `hutch run`: it finds the host
/// display, its cookie, the buses and its own runtime directory as this
/// one did.
pub fn caller_env() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, v.to_str()?)))
        .collect()
}

/// Reads Xephyr's `-displayfd` line from `ready`: its number, `expected`.
fn wait_display(ready: &OwnedFd, expected: u32) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "Xephyr did not accept clients within {} s",
                READY_TIMEOUT.as_secs()
            ));
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
            Err(Errno::EINTR) | Ok(0) => continue,
            Err(e) => return Err(format!("waiting for it failed: {}", e.desc())),
            Ok(_) => {}
        }
        let mut buf = [0u8; 32];
        match nix::unistd::read(ready, &mut buf) {
            Ok(0) => {
                return Err(
                    "it exited before it accepted clients (its message, if any, is above)".into(),
                );
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("reading its display number failed: {}", e.desc())),
        }
        if got.len() > 64 {
            return Err("it wrote more than a display number on its -displayfd".into());
        }
        if let Some(end) = got.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&got[..end]);
            return match line.trim().parse::<u32>() {
                Ok(n) if n == expected => Ok(()),
                _ => Err(format!("it said it is display {line:?}, not :{expected}")),
            };
        }
    }
}
