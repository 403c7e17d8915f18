//! The D-Bus proxy of `[dbus]` (see `plan::dbus`): one xdg-dbus-proxy for
//! every bus the profile names, started by the desktop session before
//! clone (the sandbox binds its sockets) and stopped before the session
//! removes its directories.
//!
//! The proxy parses everything the app sends, so it runs in a hutch
//! sandbox of its own ([`profile`]): the system directories read-only,
//! the program, the directory it listens in, the buses' sockets when they
//! are paths —
//! and, only for a bus on an abstract socket or TCP, the host's network
//! namespace without Landlock's scoping, to reach it. The inner hutch
//! passes only descriptors 0, 1 and 2, so the arguments come in on stdin
//! (`--args=0`, a sealed memory file, NUL separated: no length limit of a
//! pipe, nothing on a command line for other users' `ps`) and readiness
//! on stdout (`--fd=1`, the write end of a pipe): the proxy writes a byte
//! there once it listens on every socket, and exits when the read end,
//! held here, is closed — at the end, or by the kernel when hutch dies.
//! The inner hutch is tied to this launcher by `helpers::process`.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::HelperError;
use super::process::{self, HelperProcess, Program};
use crate::plan::dbus::{DbusPlan, PortalScope};
use crate::plan::desktop::PROXY_PROFILE_FILE;

const NAME: &str = "the D-Bus proxy";
/// How long the proxy (and its sandbox) may take to listen.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// The profile of the proxy's sandbox.
pub fn profile(plan: &DbusPlan) -> String {
    let quote = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    let mut out = format!(
        "version = 1\n\
         description = \"hutch's D-Bus proxy ([dbus])\"\n\
         extends = [\"base/system\"]\n\
         [[mount]]\ntype = \"bind\"\nsrc = {0}\ndst = {0}\n",
        quote(&plan.dir)
    );
    // The program itself, wherever it is (PATH may name a directory
    // outside the system's).
    let sockets = plan.buses.iter().filter_map(|b| b.host_socket.as_ref());
    for socket in std::iter::once(&plan.proxy).chain(sockets) {
        out.push_str(&format!(
            "[[mount]]\ntype = \"ro-bind\"\nsrc = {0}\ndst = {0}\n",
            quote(socket)
        ));
    }
    if plan.buses.iter().any(|b| b.host_socket.is_none()) {
        out.push_str("[namespaces]\nnet = false\n[landlock]\nscope = \"off\"\n");
    }
    out
}

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    process: HelperProcess,
    /// The read end of the readiness pipe: closing it stops the proxy.
    hold: Option<OwnedFd>,
    /// The app scope's cgroup when hutch made it (removed at the end).
    made_scope: Option<std::path::PathBuf>,
}

/// A proxy started and not listening yet: [`Starting::ready`] waits for
/// it, so that the launcher can start the nested X server meanwhile.
#[derive(Debug)]
pub struct Starting {
    process: HelperProcess,
    /// The read end of the readiness pipe.
    ready: OwnedFd,
}

impl Proxy {
    /// Starts the proxy for `plan` in its sandbox (its profile already in
    /// the launch directory `launch_dir`, as [`profile`] writes it).
    pub fn spawn(plan: &DbusPlan, launch_dir: &Path) -> Result<Starting, HelperError> {
        let fail = |errno| HelperError::Start {
            helper: NAME,
            errno,
        };
        let hutch = std::env::current_exe()
            .map_err(|e| fail(Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT))))?;
        let args = args_file(&plan.proxy_args()).map_err(fail)?;
        let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(fail)?;
        let profile = launch_dir.join(PROXY_PROFILE_FILE);
        let argv: [&std::ffi::OsStr; 8] = [
            hutch.as_os_str(),
            "run".as_ref(),
            "--profile".as_ref(),
            profile.as_os_str(),
            "--".as_ref(),
            plan.proxy.as_os_str(),
            "--fd=1".as_ref(),
            "--args=0".as_ref(),
        ];
        let env = super::xephyr::caller_env();
        let env: Vec<&str> = env.iter().map(String::as_str).collect();
        let program = Program::new(&argv, &env)
            .map_err(|_| fail(Errno::EINVAL))?
            .pass_fd(&args, 0)
            .pass_fd(&ready_w, 1);
        let process = process::spawn_program(NAME, &program)?;
        Ok(Starting {
            process,
            ready: ready_r,
        })
    }

    pub fn pid(&self) -> libc::pid_t {
        self.process.pid()
    }

    /// Asks the proxy to stop: closing its `--fd` ends it, and its
    /// sandbox with it. [`Proxy::wait`] then waits for that.
    pub fn ask_stop(&mut self) {
        self.hold = None;
    }

    /// Waits for the proxy's sandbox to end once asked; kills it if that
    /// takes more than a second.
    pub fn wait(&mut self) {
        self.ask_stop();
        self.process.wait_or_kill(Duration::from_secs(1));
        if let Some(dir) = self.made_scope.take() {
            // Empty once the proxy has ended; a failure leaves an empty
            // cgroup behind, which costs nothing.
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// Puts the proxy's processes (every descendant of its sandbox's
    /// hutch: that sandbox's init and the proxy itself) in the app scope
    /// `scope`, so that xdg-desktop-portal, which asks the proxy's systemd
    /// unit for the app's id, knows the app by it. Through the user's
    /// systemd manager (a transient scope, as desktop launchers make), else
    /// in a cgroup hutch makes in the user's delegated tree; a failure is
    /// a warning: the portal then sees the app as hutch's own cgroup says
    /// (`--explain`).
    pub fn place_in(&mut self, scope: &PortalScope) {
        let pids = descendants(self.process.pid());
        if pids.is_empty() {
            eprintln!(
                "hutch: warning: {NAME}: its processes were not found, so it stays out of {}",
                scope.unit
            );
            return;
        }
        let mut why = Vec::new();
        if let Some(bus) = &scope.manager_bus {
            use super::cgroup::systemd::{Prop, start_scope};
            let props = vec![
                (
                    "Description",
                    Prop::Str(format!("hutch's D-Bus proxy for {}", scope.app_id)),
                ),
                ("PIDs", Prop::Pids(pids.iter().map(|&p| p as u32).collect())),
                ("CollectMode", Prop::Str("inactive-or-failed".into())),
            ];
            match start_scope(bus, false, &scope.unit, props) {
                Ok(()) => return,
                Err(e) => why.push(e.to_string()),
            }
        }
        match place_delegated(&scope.delegated_dir, &pids) {
            Ok(()) => self.made_scope = Some(scope.delegated_dir.clone()),
            Err(e) => {
                why.push(e);
                eprintln!(
                    "hutch: warning: {NAME} could not be placed in the systemd unit {} ({}): portals see the app as hutch's own cgroup says",
                    scope.unit,
                    why.join("; ")
                );
            }
        }
    }
}

impl Starting {
    /// Waits until the proxy listens on every socket.
    pub fn ready(self) -> Result<Proxy, HelperError> {
        let Starting { mut process, ready } = self;
        match wait_ready(&ready) {
            Ok(()) => Ok(Proxy {
                process,
                hold: Some(ready),
                made_scope: None,
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

/// Checks the installed proxy for the holes its security fixes closed
/// (`helpers::dbus_probe`, cached per binary): one that has a hole, or
/// that cannot be probed, is refused, or with `[desktop] enforce =
/// "best-effort"` used with a warning.
pub fn check_fixes(plan: &DbusPlan) -> Result<(), HelperError> {
    let found = match &plan.probe_daemon {
        None => Err("it cannot be checked for the holes its security fixes closed: the probe needs dbus-daemon, which is not in PATH (Debian: `apt install dbus-daemon`)".to_string()),
        Some(daemon) => super::dbus_probe::cached(&plan.proxy, daemon, &plan.probe_cache)
            .map_err(|e| format!("the check for the holes its security fixes closed failed: {e}"))
            .and_then(|r| {
                let holes = r.holes();
                if holes.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{} has a known hole: {}; upgrade it (your distribution's security update, or 0.1.8+)", plan.proxy.display(), holes.join("; ")))
                }
            }),
    };
    match (found, plan.need) {
        (Ok(()), _) => Ok(()),
        (Err(why), crate::profile::schema::Need::BestEffort) => {
            eprintln!(
                "hutch: warning: {NAME}: {why}; used anyway ([desktop] enforce = \"best-effort\")"
            );
            Ok(())
        }
        (Err(why), crate::profile::schema::Need::Required) => Err(HelperError::Refused {
            helper: NAME,
            why: format!("{why}; or set `[desktop] enforce = \"best-effort\"` to use it anyway"),
        }),
    }
}

/// Every descendant of `root` (not `root` itself), from /proc.
fn descendants(root: libc::pid_t) -> Vec<libc::pid_t> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some((ppid, _)) = crate::registry::proc_stat(pid) {
            parent_of.push((pid, ppid));
        }
    }
    let mut out: Vec<libc::pid_t> = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(child, _) in parent_of.iter().filter(|(_, pp)| *pp == p) {
            if !out.contains(&child) {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// Makes `dir` (in the user's delegated cgroup tree) and moves `pids`
/// into it.
fn place_delegated(dir: &Path, pids: &[libc::pid_t]) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot make cgroup {}: {e}", dir.display())),
    }
    let procs = dir.join("cgroup.procs");
    for pid in pids {
        if let Err(e) = std::fs::write(&procs, pid.to_string()) {
            let _ = std::fs::remove_dir(dir);
            return Err(format!("cannot move pid {pid} into {}: {e}", dir.display()));
        }
    }
    Ok(())
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
