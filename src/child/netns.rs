//! The sandbox's network namespace, in the child: joined from the
//! launcher's helper (`crate::helpers::netns`), which makes it while the
//! child builds the filesystem, or, when the clone made it, with its
//! loopback brought up here. Allocation-free.

use std::os::fd::RawFd;

use nix::errno::Errno;

use super::Fail;
use crate::prepare::report::Step;
use crate::sys;

/// Brings `lo` up in the network namespace the clone made.
pub fn loopback_up() -> Result<(), Fail<'static>> {
    sys::loopback_up().map_err(|e| Fail::new(Step::NetNamespace, e))
}

/// Waits for the helper's namespace on `sock` and moves into it: the
/// helper sends its status (0, or the errno it failed with) and, on
/// success, the namespace.
pub fn join(sock: RawFd) -> Result<(), Fail<'static>> {
    let fail = |e| Fail::new(Step::NetNamespace, e);
    let mut status = [0u8; 4];
    let mut fds = [-1; 1];
    let received = sys::recv_fds_into(sock, &mut status, &mut fds, 0);
    sys::close(sock);
    let received = received.map_err(fail)?;
    if received.bytes == 0 {
        // The launcher's helper died without a word.
        return Err(fail(Errno::ESRCH));
    }
    let code = i32::from_ne_bytes(status);
    if received.bytes != status.len() || (code == 0) != (received.fds == 1) {
        if received.fds == 1 {
            sys::close(fds[0]);
        }
        return Err(fail(Errno::EPROTO));
    }
    if code != 0 {
        return Err(fail(Errno::from_raw(code)));
    }
    let r = sys::setns(fds[0], libc::CLONE_NEWNET);
    sys::close(fds[0]);
    r.map_err(fail)
}
