//! Installs the egress rules (`prepare::netfilter`) in the sandbox's
//! network namespace: the batch is sent to the kernel's nf_tables over a
//! netlink socket, and every message's acknowledgement read back, while
//! the child still holds CAP_NET_ADMIN in the namespace (before it drops
//! its capabilities). Allocation-free: a fixed buffer for the replies.

use nix::errno::Errno;

use super::Fail;
use crate::prepare::netfilter::EgressBatch;
use crate::prepare::report::Step;
use crate::sys;

const NETLINK_NETFILTER: libc::c_int = 12;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;
const NLMSG_ERROR: u16 = 2;

/// Sends `batch` and waits for an acknowledgement of each message; a
/// refusal names the rule the kernel refused.
pub fn install(batch: &EgressBatch) -> Result<(), Fail<'_>> {
    let fail = |e| Fail::new(Step::Egress, e);
    // SAFETY: socket takes no pointers.
    let sock = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        )
    };
    if sock < 0 {
        return Err(fail(Errno::last()));
    }
    let r = send_and_check(sock, batch);
    sys::close(sock);
    r
}

fn send_and_check(sock: libc::c_int, batch: &EgressBatch) -> Result<(), Fail<'_>> {
    let fail = |e| Fail::new(Step::Egress, e);
    let one: libc::c_int = 1;
    // Refusals without the refused message copied back: they fit the buffer.
    // SAFETY: `one` is a valid c_int for the duration of the call.
    unsafe {
        libc::setsockopt(
            sock,
            SOL_NETLINK,
            NETLINK_CAP_ACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    // SAFETY: an all-zero sockaddr_nl is valid; pid 0 is the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: the batch and the address are valid for the call.
    let sent = unsafe {
        libc::sendto(
            sock,
            batch.bytes.as_ptr().cast(),
            batch.bytes.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(fail(Errno::last()));
    }
    if sent as usize != batch.bytes.len() {
        return Err(fail(Errno::EMSGSIZE));
    }
    read_acks(sock, batch)
}

/// The kernel processes the batch while `sendto` runs: every reply is
/// queued by now, so reading does not wait.
fn read_acks(sock: libc::c_int, batch: &EgressBatch) -> Result<(), Fail<'_>> {
    let mut buf = [0u8; 8192];
    let mut acked = 0;
    while acked < batch.what.len() {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(sock, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = Errno::last();
            // Fewer replies than messages: not what nf_tables does.
            let e = if e == Errno::EAGAIN { Errno::EPROTO } else { e };
            return Err(Fail::new(Step::Egress, e));
        }
        let mut at = 0usize;
        let n = n as usize;
        while at + 20 <= n {
            let len = u32::from_ne_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) as usize;
            let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            let seq = u32::from_ne_bytes([buf[at + 8], buf[at + 9], buf[at + 10], buf[at + 11]]);
            if len < 20 || at + len > n {
                return Err(Fail::new(Step::Egress, Errno::EPROTO));
            }
            if kind == NLMSG_ERROR {
                let code =
                    i32::from_ne_bytes([buf[at + 16], buf[at + 17], buf[at + 18], buf[at + 19]]);
                if code != 0 {
                    let what = batch
                        .what
                        .get(seq as usize)
                        .map_or(&b"nf_tables"[..], |w| w.to_bytes());
                    return Err(Fail::with(Step::Egress, Errno::from_raw(-code), what));
                }
                acked += 1;
            }
            at += (len + 3) & !3;
        }
    }
    Ok(())
}
