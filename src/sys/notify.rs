//! seccomp user notification (`SECCOMP_RET_USER_NOTIF`, Linux 5.0; the
//! continue flag 5.5): loading a filter that hands its listener back, and
//! the listener's ioctls, which nix does not wrap. `hutch learn` uses them
//! (see `helpers::learn`): the sandbox's filter notifies the open, exec,
//! connect, mkdir, unlink and rename calls, and the launcher reads each
//! call's path and lets it continue. Structures from <linux/seccomp.h>,
//! stable kernel ABI.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use super::check;

const SECCOMP_SET_MODE_FILTER: u32 = 1;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: u32 = 1 << 3;
/// `_IOWR('!', 0, struct seccomp_notif)`.
const SECCOMP_IOCTL_NOTIF_RECV: u64 = 0xC050_2100;
/// `_IOWR('!', 1, struct seccomp_notif_resp)`.
const SECCOMP_IOCTL_NOTIF_SEND: u64 = 0xC018_2101;
/// `_IOW('!', 2, __u64)`.
const SECCOMP_IOCTL_NOTIF_ID_VALID: u64 = 0x4008_2102;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;
/// `_IOW('!', 4, __u64)` (Linux 6.6).
const SECCOMP_IOCTL_NOTIF_SET_FLAGS: u64 = 0x4008_2104;
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// `struct seccomp_data`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SeccompData {
    pub nr: i32,
    pub arch: u32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

/// `struct seccomp_notif`: one system call waiting for an answer.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Notif {
    pub id: u64,
    /// The caller's thread, in the pid namespace of the one receiving.
    pub pid: u32,
    pub flags: u32,
    pub data: SeccompData,
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct NotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// What a notified call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The kernel runs the call as if the filter had allowed it (the next
    /// filters' decisions still apply).
    Continue,
    /// The call fails with this errno, unrun.
    Errno(i32),
}

/// Loads `filter` for this thread and returns its listener descriptor
/// (close-on-exec). no_new_privs must be set. Allocation-free.
pub fn seccomp_load_listener(filter: &[crate::bpf::Insn]) -> Result<RawFd, Errno> {
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const crate::bpf::Insn,
    }
    let prog = SockFprog {
        len: filter.len() as u16,
        filter: filter.as_ptr(),
    };
    // SAFETY: prog points to `len` valid sock_filter instructions (Insn has
    // the same layout) that outlive the call; the kernel copies them.
    check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const SockFprog,
        )
    })
    .map(|fd| fd as RawFd)
}

/// Owns the listener [`seccomp_load_listener`] returned (the launcher's
/// side, which may allocate; the child sends the raw descriptor on).
pub fn own_listener(fd: RawFd) -> OwnedFd {
    // SAFETY: a descriptor the kernel just returned and nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Takes the next notification (blocks unless one is pending: poll the
/// listener for POLLIN first). ENOENT: the caller was gone before it
/// could be read.
pub fn recv(listener: BorrowedFd<'_>) -> Result<Notif, Errno> {
    // The kernel insists on a zeroed structure.
    let mut n = Notif::default();
    // SAFETY: n is a valid, zeroed `struct seccomp_notif` the kernel fills.
    check(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_RECV as _,
            &mut n as *mut Notif,
        ) as libc::c_long
    })?;
    Ok(n)
}

/// Whether notification `id` is still pending: its caller has not died
/// (and its pid not been reused) since it was received.
pub fn id_valid(listener: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: the kernel reads one u64 from &id.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_ID_VALID as _,
            &id as *const u64,
        )
    };
    rc == 0
}

/// Asks the kernel to hand the CPU straight from a notifying caller to
/// the thread receiving on `listener`, and back with the answer, instead
/// of waking them through the scheduler (Linux 6.6; EINVAL before):
/// what makes a watched call cost microseconds rather than a scheduling
/// round trip.
pub fn set_sync_wakeup(listener: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: the flags argument is passed by value.
    check(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_SET_FLAGS as _,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        ) as libc::c_long
    })
    .map(drop)
}

/// Answers notification `id`. ENOENT: its caller is gone (killed, or
/// interrupted by a signal), which is no failure of the listener.
pub fn send(listener: BorrowedFd<'_>, id: u64, answer: Answer) -> Result<(), Errno> {
    let resp = match answer {
        Answer::Continue => NotifResp {
            id,
            flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE,
            ..NotifResp::default()
        },
        Answer::Errno(e) => NotifResp {
            id,
            error: -e,
            ..NotifResp::default()
        },
    };
    // SAFETY: resp is a valid `struct seccomp_notif_resp` the kernel reads.
    check(unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_SEND as _,
            &resp as *const NotifResp,
        ) as libc::c_long
    })
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structures_have_the_kernels_sizes() {
        // sizes from SECCOMP_GET_NOTIF_SIZES on Linux 5.0 through 6.x; the
        // ioctl numbers above encode them.
        assert_eq!(std::mem::size_of::<SeccompData>(), 64);
        assert_eq!(std::mem::size_of::<Notif>(), 80);
        assert_eq!(std::mem::size_of::<NotifResp>(), 24);
        assert_eq!((SECCOMP_IOCTL_NOTIF_RECV >> 16) & 0x3fff, 80);
        assert_eq!((SECCOMP_IOCTL_NOTIF_SEND >> 16) & 0x3fff, 24);
    }
}
