//! slirp4netns, the fallback of `user` mode where pasta is not installed:
//! its command line. The lifecycle is [`super::usernet`]'s.
//!
//! It cannot forward single ports without its API socket (the planner
//! refuses `host_ports` and `publish` with it), reaches the host's
//! loopback at 10.0.2.2 unless `--disable-host-loopback`, and answers DNS
//! at 10.0.2.3. Its own sandbox (`--enable-sandbox`) needs uid 0 mapped in
//! the user namespace, which hutch's single-id map has only with
//! `identity = "root"`: it runs without it, with its seccomp filter.

use std::os::fd::OwnedFd;

use nix::errno::Errno;

use super::process::{Launch, base_program};
use crate::plan::network::UserNetwork;

/// The descriptor slirp4netns writes "1" to once the interface is up.
const READY_FD: i32 = 3;

/// slirp4netns's command line for the sandbox whose first process is `pid`.
pub fn argv(plan: &UserNetwork, pid: libc::pid_t) -> Vec<String> {
    let mut argv = vec![
        plan.program.display().to_string(),
        "--configure".into(),
        "--mtu=65520".into(),
        format!("--ready-fd={READY_FD}"),
        "--enable-seccomp".into(),
        format!("--userns-path=/proc/{pid}/ns/user"),
        "--netns-type=path".into(),
    ];
    if !plan.host_loopback {
        argv.push("--disable-host-loopback".into());
    }
    if plan.dns.is_none() {
        argv.push("--disable-dns".into());
    }
    argv.extend([format!("/proc/{pid}/ns/net"), "tap0".into()]);
    argv
}

/// slirp4netns for the sandbox `pid`; its standard output (a summary of
/// its configuration) goes to /dev/null.
pub fn launch(plan: &UserNetwork, pid: libc::pid_t, stderr: &OwnedFd) -> Result<Launch, Errno> {
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let devnull = std::fs::File::options()
        .write(true)
        .open("/dev/null")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let program = base_program(&argv(plan, pid), stderr)?
        .pass_owned(OwnedFd::from(devnull), 1)
        .pass_owned(ready_w, READY_FD);
    Ok(Launch {
        program,
        ready: ready_r,
    })
}
