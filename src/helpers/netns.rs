//! The sandbox's network namespace, made by a helper process while the child
//! builds the filesystem.
//!
//! Creating a network namespace is the most expensive part of a launch
//! (about 0.3 ms: the kernel sets up loopback, sysctls and per-namespace
//! tables). Instead of asking for it in the clone, the launcher starts a
//! helper right after the clone; the helper joins the sandbox's user
//! namespace (the caller owns it), creates the network namespace there,
//! brings `lo` up, and hands a descriptor for it to the child over a socket
//! pair (`SIOCGSKNS`). On a machine with a spare CPU this overlaps with the
//! child's mounts; the child joins the namespace before it confines itself
//! (`child::netns`). The helper lives outside the sandbox's pid namespace,
//! so the payload is still PID 2. Only system calls in the helper.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::PollFlags;
use nix::sys::stat::Mode;

use super::process::{self, HelperProcess};
use super::{CloneSetup, Helper, HelperError, Started};
use crate::sys;

const NAME: &str = "the network namespace maker";

/// The helper that makes the sandbox's network namespace.
#[derive(Debug)]
pub struct NetnsMaker {
    /// (the helper's end, the child's end); closed once both have theirs.
    socket: Option<(OwnedFd, OwnedFd)>,
    process: Option<HelperProcess>,
}

impl NetnsMaker {
    /// A maker for a sandbox with a network namespace of its own, when
    /// making it in parallel is worth a process: with more than one CPU
    /// to run on, else it only adds a process to schedule.
    pub fn wanted(net_ns: bool) -> Result<Option<NetnsMaker>, HelperError> {
        if !net_ns || !more_than_one_cpu() {
            return Ok(None);
        }
        let socket = sys::seqpacket_pair().map_err(|errno| HelperError::Start {
            helper: NAME,
            errno,
        })?;
        Ok(Some(NetnsMaker {
            socket: Some(socket),
            process: None,
        }))
    }
}

fn more_than_one_cpu() -> bool {
    use nix::sched::{CpuSet, sched_getaffinity};
    sched_getaffinity(nix::unistd::Pid::from_raw(0)).is_ok_and(|set| {
        (0..CpuSet::count())
            .filter(|&i| set.is_set(i).unwrap_or(false))
            .nth(1)
            .is_some()
    })
}

impl Helper for NetnsMaker {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The clone makes no network namespace; the child waits for this
    /// helper's on its end of the socket pair.
    fn before_clone(&mut self, setup: &mut CloneSetup<'_>) -> Result<(), HelperError> {
        setup.flags &= !(libc::CLONE_NEWNET as u64);
        if let Some((_, child_end)) = &self.socket {
            setup.pipes.netns = child_end.as_raw_fd();
        }
        Ok(())
    }

    fn start(&mut self, child: &Started) -> Result<(), HelperError> {
        let userns =
            CString::new(format!("/proc/{}/ns/user", child.pid)).expect("no NUL in a number");
        // Both ends are closed here once the processes have them.
        let Some((helper_end, _child_end)) = self.socket.take() else {
            return Ok(());
        };
        let sock = helper_end.as_raw_fd();
        self.process = Some(process::spawn(NAME, || make_and_send(&userns, sock))?);
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        Some(
            "network namespace: made by a helper process while the sandbox's filesystem is built"
                .into(),
        )
    }

    /// Readable when the helper has exited (it does once it has handed
    /// the namespace over).
    fn watch(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        match &self.process {
            Some(p) if !p.reaped() => vec![(p.pidfd(), PollFlags::POLLIN)],
            _ => Vec::new(),
        }
    }

    fn woken(&mut self) {
        if let Some(p) = &mut self.process {
            p.reap();
        }
    }

    fn finish(&mut self, code: i32) -> i32 {
        if let Some(p) = &mut self.process {
            p.finish();
        }
        code
    }
}

/// In the helper: makes the namespace in the child's user namespace and
/// sends it, or the errno that stopped it, to the child.
fn make_and_send(userns: &std::ffi::CStr, sock: RawFd) -> i32 {
    let status = match enter_userns(userns).and_then(|()| make_namespace()) {
        Ok(ns) => {
            let r = sys::send_fds(sock, &0i32.to_ne_bytes(), &[ns]);
            sys::close(ns);
            r.err().map_or(0, |e| e as i32)
        }
        Err(e) => e as i32,
    };
    if status != 0 {
        let _ = sys::send_fds(sock, &status.to_ne_bytes(), &[]);
    }
    0
}

fn enter_userns(path: &std::ffi::CStr) -> Result<(), Errno> {
    let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    sys::setns(fd.as_raw_fd(), libc::CLONE_NEWUSER)
}

/// A new network namespace with loopback up; a descriptor for it.
fn make_namespace() -> Result<RawFd, Errno> {
    sys::unshare(libc::CLONE_NEWNET)?;
    sys::loopback_up()?;
    sys::current_netns()
}
