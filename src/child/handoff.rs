//! Handing the sandbox's namespaces to the launcher, for `hutch exec`.
//!
//! Nobody else can open them later: `/proc/PID/ns/*` (and setns through a
//! pidfd) need ptrace access to the process, and hutch's init is non-dumpable
//! and, never having executed anything, subject to ptrace checks in the host's
//! user namespace, where its owner has no privilege. So the child opens its
//! own `/proc/self/ns` directory at the start (while the host's /proc is still
//! there) and, once every namespace is final — after the root is built and the
//! network namespace is joined, just before confinement — opens each
//! namespace through it and sends the descriptors to the launcher over a
//! socket pair, without waiting for it. Allocation-free.

use std::os::fd::RawFd;

use nix::errno::Errno;

use super::Fail;
use crate::prepare::report::Step;
use crate::registry::NS_KINDS;
use crate::sys;

/// Opens `/proc/self/ns` (an `O_PATH` directory): early, while the host's
/// /proc is reachable. -1 when there is nobody to hand the namespaces to.
pub fn open_ns_dir(sock: RawFd) -> Result<RawFd, Fail<'static>> {
    if sock < 0 {
        return Ok(-1);
    }
    // SAFETY: the path is NUL-terminated.
    let fd = unsafe {
        libc::open(
            c"/proc/self/ns".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Fail::new(Step::HandOffNamespaces, Errno::last()));
    }
    Ok(fd)
}

/// Sends the namespaces `flags` names (clone flags), in [`NS_KINDS`] order,
/// opened through `ns_dir`; closes `ns_dir` and `sock`.
pub fn send(ns_dir: RawFd, sock: RawFd, flags: u64) -> Result<(), Fail<'static>> {
    if sock < 0 {
        return Ok(());
    }
    let mut fds = [-1 as RawFd; NS_KINDS_MAX];
    let mut n = 0;
    let mut result = Ok(());
    for (kind, flag) in NS_KINDS {
        if flags & *flag as u64 == 0 {
            continue;
        }
        let mut name = [0u8; 8];
        name[..kind.len()].copy_from_slice(kind.as_bytes());
        // SAFETY: name is NUL-terminated (zero-filled past the kind).
        let fd = unsafe {
            libc::openat(
                ns_dir,
                name.as_ptr().cast(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            result = Err(Errno::last());
            break;
        }
        fds[n] = fd;
        n += 1;
    }
    if result.is_ok() {
        result = sys::send_fds(sock, &[0], &fds[..n]);
    }
    for &fd in &fds[..n] {
        sys::close(fd);
    }
    sys::close(ns_dir);
    sys::close(sock);
    result.map_err(|e| Fail::new(Step::HandOffNamespaces, e))
}

/// How many namespace kinds there are.
pub const NS_KINDS_MAX: usize = 7;
