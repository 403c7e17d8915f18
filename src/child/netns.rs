//! The sandbox's network namespace, made by a helper process while the child
//! builds the filesystem.
//!
//! Creating a network namespace is the most expensive part of a launch
//! (about 0.3 ms: the kernel sets up loopback, sysctls and per-namespace
//! tables). Instead of asking for it in the clone, the launcher forks a
//! helper right after the clone; the helper joins the sandbox's user
//! namespace (the caller owns it), creates the network namespace there,
//! brings `lo` up, and hands a descriptor for it to the child over a socket
//! pair (`SIOCGSKNS`). On a machine with a spare CPU this overlaps with the
//! child's mounts; the child joins the namespace before it confines itself.
//! The helper lives outside the sandbox's pid namespace, so the payload is
//! still PID 2. Only raw system calls after the fork.

use std::os::fd::RawFd;

use nix::errno::Errno;

use super::Fail;
use crate::prepare::report::Step;
use crate::sys;

const SIOCGIFFLAGS: libc::Ioctl = 0x8913;
const SIOCSIFFLAGS: libc::Ioctl = 0x8914;
const SIOCGSKNS: libc::Ioctl = 0x894C;

/// `struct ifreq` with the flags member of its union.
#[repr(C)]
struct IfreqFlags {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Forks the helper in the launcher; `userns` is the path of the child's
/// user namespace (`/proc/PID/ns/user`). Returns the helper's pid.
pub fn start_helper(userns: &std::ffi::CStr, sock: RawFd) -> Result<libc::pid_t, Errno> {
    match sys::clone_fork(0, None)? {
        0 => {
            let errno = match enter_userns(userns).and_then(|()| make_namespace()) {
                Ok(ns) => {
                    let r = send(sock, 0, Some(ns));
                    sys::close(ns);
                    r.err().map_or(0, |e| e as i32)
                }
                Err(e) => e as i32,
            };
            if errno != 0 {
                let _ = send(sock, errno, None);
            }
            sys::exit_now(0)
        }
        pid => Ok(pid),
    }
}

fn enter_userns(path: &std::ffi::CStr) -> Result<(), Errno> {
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fd names a user namespace this process's user owns.
    let r = unsafe { libc::setns(fd, libc::CLONE_NEWUSER) };
    let e = Errno::last();
    sys::close(fd);
    if r < 0 { Err(e) } else { Ok(()) }
}

/// In the helper: a new network namespace with loopback up; returns a
/// descriptor for it.
fn make_namespace() -> Result<RawFd, Errno> {
    // SAFETY: unshare takes a flag word.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } < 0 {
        return Err(Errno::last());
    }
    with_inet_socket(|s| {
        loopback_up_on(s)?;
        // SAFETY: SIOCGSKNS takes no argument and returns a new descriptor.
        let ns = unsafe { libc::ioctl(s, SIOCGSKNS, 0) };
        if ns < 0 { Err(Errno::last()) } else { Ok(ns) }
    })
}

/// Brings `lo` up in the current network namespace (a new one starts with
/// it down, and programs expect 127.0.0.1 to work).
pub fn loopback_up() -> Result<(), Fail<'static>> {
    with_inet_socket(loopback_up_on).map_err(|e| Fail::new(Step::NetNamespace, e))
}

fn with_inet_socket<T>(f: impl FnOnce(RawFd) -> Result<T, Errno>) -> Result<T, Errno> {
    // SAFETY: creating a socket in the current namespace.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(Errno::last());
    }
    let r = f(s);
    sys::close(s);
    r
}

fn loopback_up_on(s: RawFd) -> Result<(), Errno> {
    let mut ifr = IfreqFlags {
        name: [0; 16],
        flags: 0,
        _pad: [0; 22],
    };
    ifr.name[..2].copy_from_slice(b"lo");
    // SAFETY: ifr is a valid ifreq for these two requests.
    if unsafe { libc::ioctl(s, SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(Errno::last());
    }
    ifr.flags |= libc::IFF_UP as libc::c_short;
    // SAFETY: as above.
    if unsafe { libc::ioctl(s, SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Whether a helper can create the namespace in parallel: only with more
/// than one CPU to run on, else it only adds a process to schedule.
pub fn worth_a_helper() -> bool {
    // SAFETY: an all-zero cpu_set_t is valid storage for sched_getaffinity.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is valid for its size.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    // SAFETY: CPU_COUNT only reads the set.
    rc == 0 && unsafe { libc::CPU_COUNT(&set) } > 1
}

/// Sends a status word, and the namespace descriptor if there is one.
fn send(sock: RawFd, status: i32, fd: Option<RawFd>) -> Result<(), Errno> {
    let mut data = status.to_ne_bytes();
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // Room for one descriptor, aligned as cmsghdr needs.
    let mut control = [0u64; 4];
    // SAFETY: an all-zero msghdr is valid; the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is arithmetic.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as _;
        #[allow(
            clippy::multiple_unsafe_ops_per_block,
            reason = "filling the SCM_RIGHTS header goes through libc's CMSG helpers and writes through the pointer they return, sound only as a whole"
        )]
        // SAFETY: msg_control points to a buffer of msg_controllen bytes, so
        // the first header and its data lie inside it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        }
    }
    // SAFETY: msg and everything it points to are valid for the call.
    if unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// In the child: waits for the helper's namespace and moves into it.
pub fn join(sock: RawFd) -> Result<(), Fail<'static>> {
    let fail = |e| Fail::new(Step::NetNamespace, e);
    let mut data = [0u8; 4];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut control = [0u64; 4];
    // SAFETY: an all-zero msghdr is valid; the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = loop {
        // SAFETY: msg points to valid buffers of the given sizes.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        break n;
    };
    let recv_errno = Errno::last();
    sys::close(sock);
    if n < 0 {
        return Err(fail(recv_errno));
    }
    if n == 0 {
        // The launcher's helper died without a word.
        return Err(fail(Errno::ESRCH));
    }
    if n as usize != data.len() {
        return Err(fail(Errno::EPROTO));
    }
    let code = i32::from_ne_bytes(data);
    if code != 0 {
        return Err(fail(Errno::from_raw(code)));
    }
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "reading the SCM_RIGHTS header goes through libc's CMSG helpers and reads through the pointer they return, checked as one sequence"
    )]
    // SAFETY: the kernel filled msg_control; CMSG_FIRSTHDR checks its length.
    let fd = unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return Err(fail(Errno::EPROTO));
        }
        std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>())
    };
    // SAFETY: fd is the namespace descriptor just received.
    let r = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
    let e = Errno::last();
    sys::close(fd);
    if r < 0 {
        return Err(fail(e));
    }
    Ok(())
}
