//! Raw system calls that nix does not wrap, each a thin, allocation-free
//! wrapper safe to call between clone and exec.
//!
//! Every function returns `Err(errno)` on failure and never panics.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

pub mod notify;
pub mod terminal;

// ABI constants from <linux/mount.h> and <linux/sched.h>; stable kernel ABI.
/// The type of `RLIMIT_*` and `setrlimit`'s first argument: `c_uint` in
/// glibc, `c_int` in musl.
#[cfg(target_env = "gnu")]
pub type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub type RlimitResource = libc::c_int;

pub const OPEN_TREE_CLONE: u32 = 0x1;
pub const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
pub const AT_RECURSIVE: u32 = 0x8000;
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
pub const FSOPEN_CLOEXEC: u32 = 0x1;
pub const FSMOUNT_CLOEXEC: u32 = 0x1;
pub const FSCONFIG_SET_FLAG: u32 = 0;
pub const FSCONFIG_SET_STRING: u32 = 1;
pub const FSCONFIG_CMD_CREATE: u32 = 6;
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

fn check(rc: libc::c_long) -> Result<libc::c_long, Errno> {
    if rc < 0 { Err(Errno::last()) } else { Ok(rc) }
}

fn check_fd(rc: libc::c_long) -> Result<RawFd, Errno> {
    check(rc).map(|fd| fd as RawFd)
}

/// `struct clone_args` of clone3(2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Fork-like clone with namespace flags: returns 0 in the child and the
/// child's pid in the parent. `cgroup_fd` places the child in a cgroup
/// atomically (clone3 only).
///
/// The child runs on a copy of the caller's stack, like after fork(2), but
/// glibc's fork bookkeeping does not run: the child must only make raw system
/// calls and must never return into code that relies on libc's thread state.
pub fn clone_fork(flags: u64, cgroup_fd: Option<RawFd>) -> Result<libc::pid_t, Errno> {
    clone_raw(flags, cgroup_fd, None)
}

/// What [`fork_with_pidfd`] returns on each side.
#[derive(Debug)]
pub enum Forked {
    /// In the new process.
    Child,
    /// In the caller: the new process and a pidfd that refers to it.
    Parent { pid: libc::pid_t, pidfd: OwnedFd },
}

/// A fork (as [`clone_fork`] makes it, with its rules for the child) that
/// also returns a pidfd for the new process, made by the same system call
/// (`CLONE_PIDFD`): the process is held without a race on its number.
pub fn fork_with_pidfd() -> Result<Forked, Errno> {
    let mut pidfd: RawFd = -1;
    match clone_raw(0, None, Some(&mut pidfd))? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid,
            // SAFETY: the kernel stored a new descriptor for the child here
            // (CLONE_PIDFD), which nothing else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

fn clone_raw(
    flags: u64,
    cgroup_fd: Option<RawFd>,
    pidfd: Option<&mut RawFd>,
) -> Result<libc::pid_t, Errno> {
    let mut args = CloneArgs {
        flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    // Where the kernel stores the pidfd: clone3's `pidfd`, the legacy
    // clone's parent_tid (its third argument on x86_64 and aarch64).
    let pidfd_at = pidfd.map_or(0, |p| p as *mut RawFd as u64);
    if pidfd_at != 0 {
        args.flags |= libc::CLONE_PIDFD as u64;
        args.pidfd = pidfd_at;
    }
    // SAFETY: args is a valid clone_args of the size passed, and its pidfd
    // field, when set, points to a RawFd the caller keeps alive; with no
    // stack and no CLONE_VM the kernel gives the child a private copy of
    // our memory, as fork does, so both returns continue on valid stacks.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match check(rc) {
        Err(Errno::ENOSYS) if cgroup_fd.is_none() => {
            // SAFETY: the legacy clone with a NULL stack is fork with flags;
            // the x86_64/aarch64 argument order is (flags, stack, ptid, ...),
            // and ptid, where CLONE_PIDFD stores the pidfd, is as above.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    args.flags | libc::SIGCHLD as u64,
                    0usize,
                    pidfd_at as usize,
                    0usize,
                    0usize,
                )
            };
            check(rc).map(|pid| pid as libc::pid_t)
        }
        other => other.map(|pid| pid as libc::pid_t),
    }
}

/// waitpid(2), retried on EINTR: `Ok(None)` with `nohang` while `pid` runs,
/// else its raw wait status. Allocation-free.
pub fn waitpid(pid: libc::pid_t, nohang: bool) -> Result<Option<libc::c_int>, Errno> {
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        match r {
            0 => return Ok(None),
            r if r > 0 => return Ok(Some(status)),
            _ if Errno::last() == Errno::EINTR => continue,
            _ => return Err(Errno::last()),
        }
    }
}

/// The exit code a wait status stands for, the way a shell reports it:
/// exit status N → N; killed by signal S → 128 + S.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        125
    }
}

/// Unblocks every signal of this thread (a process a helper starts must
/// not inherit the launcher's blocked set through execve).
pub fn unblock_all_signals() {
    // SAFETY: an all-zero sigset is valid storage; sigemptyset initialises it.
    let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: empty is a valid sigset for sigemptyset to initialise.
    unsafe { libc::sigemptyset(&mut empty) };
    // SAFETY: setting the mask from a valid, empty set; the old one is not needed.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
}

/// Runs `f` with SIGPIPE ignored, so that a write to a pipe nobody reads
/// fails with EPIPE instead of killing the process; then restores the
/// default.
pub fn without_sigpipe<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: the standard disposition SIG_IGN for one signal.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let r = f();
    // SAFETY: back to the standard default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    r
}

/// unshare(2).
pub fn unshare(flags: libc::c_int) -> Result<(), Errno> {
    // SAFETY: unshare takes a flag word only.
    if unsafe { libc::unshare(flags) } < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

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

/// Runs `f` with a datagram socket of the current network namespace.
fn with_inet_socket<T>(f: impl FnOnce(RawFd) -> Result<T, Errno>) -> Result<T, Errno> {
    // SAFETY: creating a socket in the current namespace.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(Errno::last());
    }
    let r = f(s);
    close(s);
    r
}

/// Brings `lo` up in the current network namespace (a new one starts with
/// it down, and programs expect 127.0.0.1 to work).
pub fn loopback_up() -> Result<(), Errno> {
    with_inet_socket(|s| {
        let mut ifr = IfreqFlags {
            name: [0; 16],
            flags: 0,
            _pad: [0; 22],
        };
        ifr.name[..2].copy_from_slice(b"lo");
        // SAFETY: ifr is a valid ifreq for this request.
        if unsafe { libc::ioctl(s, SIOCGIFFLAGS, &mut ifr) } < 0 {
            return Err(Errno::last());
        }
        ifr.flags |= libc::IFF_UP as libc::c_short;
        // SAFETY: as above.
        if unsafe { libc::ioctl(s, SIOCSIFFLAGS, &ifr) } < 0 {
            return Err(Errno::last());
        }
        Ok(())
    })
}

/// A descriptor for the current network namespace (`SIOCGSKNS` on a
/// socket made in it), close-on-exec.
pub fn current_netns() -> Result<RawFd, Errno> {
    with_inet_socket(|s| {
        // SAFETY: SIOCGSKNS takes no argument and returns a new descriptor.
        let ns = unsafe { libc::ioctl(s, SIOCGSKNS, 0) };
        if ns < 0 { Err(Errno::last()) } else { Ok(ns) }
    })
}

/// A duplicate of `fd` at `min` or above, close-on-exec.
pub fn dup_above(fd: RawFd, min: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: F_DUPFD_CLOEXEC takes an integer argument.
    check_fd(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) } as libc::c_long)
}

/// dup2(2): `from` also as `to`, which is not close-on-exec.
pub fn dup2(from: RawFd, to: RawFd) -> Result<(), Errno> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::dup2(from, to) } as libc::c_long).map(drop)
}

/// execve(2); returns only on failure, with the reason.
pub fn execve(path: &CStr, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> Errno {
    if argv.last().is_none_or(|p| !p.is_null()) || envp.last().is_none_or(|p| !p.is_null()) {
        return Errno::EINVAL;
    }
    // SAFETY: path is NUL-terminated; argv and envp are NULL-terminated
    // arrays (checked above) whose entries the caller keeps valid.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Errno::last()
}

/// A detached copy of the mount tree at `path` (recursive).
pub fn open_tree_clone(path: &CStr) -> Result<RawFd, Errno> {
    // SAFETY: path is NUL-terminated; the call only reads it.
    check_fd(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            (OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE) as libc::c_uint,
        )
    })
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets mount attributes on the mount `fd` refers to (and below it, if `recursive`).
pub fn mount_setattr(fd: RawFd, set: u64, recursive: bool) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: attr is a valid mount_attr of the size passed; "" is a valid C string.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Attaches the mount `from` on top of whatever `to` refers to.
pub fn move_mount(from: RawFd, to: RawFd) -> Result<(), Errno> {
    // SAFETY: both paths are the empty C string; fds are plain integers.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            c"".as_ptr(),
            to,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// Attaches the mount `from` at `path` (relative to the current directory).
pub fn move_mount_to_path(from: RawFd, path: &CStr) -> Result<(), Errno> {
    // SAFETY: path is NUL-terminated; "" is a valid C string.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from,
            c"".as_ptr(),
            libc::AT_FDCWD,
            path.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

pub fn fsopen(fstype: &CStr) -> Result<RawFd, Errno> {
    // SAFETY: fstype is NUL-terminated.
    check_fd(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })
}

pub fn fsconfig_string(fs: RawFd, key: &CStr, value: &CStr) -> Result<(), Errno> {
    // SAFETY: key and value are NUL-terminated.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    })
    .map(drop)
}

pub fn fsconfig_flag(fs: RawFd, key: &CStr) -> Result<(), Errno> {
    // SAFETY: key is NUL-terminated; value must be NULL for SET_FLAG.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_SET_FLAG,
            key.as_ptr(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })
    .map(drop)
}

pub fn fsconfig_create(fs: RawFd) -> Result<(), Errno> {
    // SAFETY: CMD_CREATE takes no pointers.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })
    .map(drop)
}

/// Turns a configured filesystem context into a detached mount.
pub fn fsmount(fs: RawFd, attrs: u64) -> Result<RawFd, Errno> {
    // SAFETY: plain integer arguments.
    check_fd(unsafe { libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs) })
}

pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> Result<(), Errno> {
    // SAFETY: both paths are NUL-terminated.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(drop)
}

/// Closes every descriptor from `first` up, except those in `keep` (sorted).
pub fn close_fds_from(first: u32, keep: &[RawFd]) {
    let mut lo = first;
    for &k in keep {
        if k < 0 {
            continue;
        }
        let k = k as u32;
        if k < lo {
            continue;
        }
        if k > lo {
            close_range(lo, k - 1);
        }
        lo = k + 1;
    }
    close_range(lo, u32::MAX);
}

fn close_range(lo: u32, hi: u32) {
    // SAFETY: plain integer arguments; closing descriptors we do not use.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, lo, hi, 0u32) };
    if rc < 0 {
        // Kernels before 5.9: close one by one up to the descriptor limit.
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass.
        let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            lim.rlim_cur.min(1 << 20) as u32
        } else {
            1024
        };
        for fd in lo..=hi.min(max) {
            // SAFETY: closing a descriptor number; EBADF is harmless.
            unsafe { libc::close(fd as RawFd) };
        }
    }
}

/// Writes all of `buf` to `fd`, retrying on EINTR and short writes.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        // SAFETY: buf is valid for reads of buf.len() bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Writes `content` to the file at `path` (opened write-only, no create).
pub fn write_file(path: &CStr, content: &[u8]) -> Result<(), Errno> {
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last());
    }
    let r = write_all(fd, content);
    // SAFETY: fd was opened above and is closed once.
    unsafe { libc::close(fd) };
    r
}

/// If the process was started with 0, 1 or 2 closed, the next descriptor
/// it opens would take that number (and become a payload's stdin, stdout
/// or stderr): opens /dev/null there instead. One `poll` when all three
/// are open. (On descriptor numbers that may name nothing: raw calls.)
pub fn ensure_stdio_open() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: fds is a valid array of three pollfds; zero timeout.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } <= 0 {
        return;
    }
    for p in fds {
        if p.revents & libc::POLLNVAL != 0 {
            // SAFETY: opening /dev/null; the lowest free number is p.fd,
            // which is left open for the process's life.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

/// keyctl(2) with three arguments (`hutch doctor` checks that the default
/// seccomp filter refuses it).
pub fn keyctl(
    operation: libc::c_int,
    arg2: libc::c_long,
    arg3: libc::c_long,
) -> Result<libc::c_long, Errno> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::syscall(libc::SYS_keyctl, operation, arg2, arg3) })
}

/// A connected `SOCK_SEQPACKET` pair, close-on-exec: message boundaries and
/// descriptor passing between the launcher and its helpers or child.
pub fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    let mut pair = [-1; 2];
    // SAFETY: pair is valid for two descriptors.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    } < 0
    {
        return Err(Errno::last());
    }
    // SAFETY: both descriptors were just created and belong to nobody else.
    let first = unsafe { OwnedFd::from_raw_fd(pair[0]) };
    // SAFETY: as above, and a different descriptor.
    let second = unsafe { OwnedFd::from_raw_fd(pair[1]) };
    Ok((first, second))
}

pub fn close(fd: RawFd) {
    // SAFETY: closing a descriptor this code owns.
    unsafe { libc::close(fd) };
}

pub fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> Result<libc::c_int, Errno> {
    // SAFETY: the prctl options used by hutch take integer arguments only.
    let rc = unsafe {
        libc::prctl(
            option,
            arg2,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(rc) }
}

/// `_exit(2)`: ends the process without running atexit handlers or flushing
/// stdio buffers that belong to the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// A detached copy of the mount tree `fd` refers to (recursive).
pub fn open_tree_clone_fd(fd: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: "" is a valid C string; AT_EMPTY_PATH makes the call use fd itself.
    check_fd(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd,
            c"".as_ptr(),
            (OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE) as libc::c_uint
                | libc::AT_EMPTY_PATH as libc::c_uint,
        )
    })
}

/// Loads a seccomp BPF filter for this thread (no_new_privs must be set).
pub fn seccomp_load(filter: &[crate::bpf::Insn]) -> Result<(), Errno> {
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
            1u32, // SECCOMP_SET_MODE_FILTER
            0u32,
            &prog as *const SockFprog,
        )
    })
    .map(drop)
}

/// Runs `entry(arg)` in a new child process that shares this one's memory
/// until it executes a program or exits (CLONE_VM|CLONE_VFORK): no page
/// tables are copied, and this process is suspended until then. `entry` may
/// only make system calls and must end in execve or `_exit`.
pub fn vfork_call<T>(
    stack: &mut [u8],
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: &T,
) -> Result<libc::pid_t, Errno> {
    let arg = arg as *const T as *mut libc::c_void;
    // Stacks grow down on the supported architectures; the ABI wants 16-byte alignment.
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
    // SAFETY: `top` is the aligned end of a buffer that stays valid while the
    // child runs (the caller is suspended until the child execs or exits);
    // glibc's clone switches to it before calling `entry`.
    let pid = unsafe {
        libc::clone(
            entry,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            arg,
        )
    };
    if pid < 0 { Err(Errno::last()) } else { Ok(pid) }
}

/// Makes every mount of this (new, private) mount namespace a slave: mounts
/// made here no longer propagate back to the host's namespace.
pub fn make_mounts_slave() -> Result<(), Errno> {
    // SAFETY: NULL source/fstype/data with MS_REC|MS_SLAVE only changes propagation.
    let rc = unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

// ---- The launcher's side: pinned directories, processes, namespaces ------

// `resolve` flags of openat2(2), from <linux/openat2.h>.
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(2): `path` relative to `dir`, with `resolve` restrictions.
pub fn openat2(
    dir: RawFd,
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
    resolve: u64,
) -> Result<RawFd, Errno> {
    let how = OpenHow {
        flags: flags as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: path is NUL-terminated and how is a valid open_how of the
        // size passed; the kernel only reads both.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match check_fd(rc) {
            // openat2 fails with EAGAIN when a concurrent rename could have
            // made a RESOLVE_BENEATH walk unsafe: try again.
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// The kernel's `struct statfs` (asm-generic, one word per count): the
/// libc crate hides `f_flags` of glibc's.
#[repr(C)]
struct KernelStatfs {
    f_type: libc::c_long,
    f_bsize: libc::c_long,
    f_blocks: libc::c_long,
    f_bfree: libc::c_long,
    f_bavail: libc::c_long,
    f_files: libc::c_long,
    f_ffree: libc::c_long,
    f_fsid: [libc::c_int; 2],
    f_namelen: libc::c_long,
    f_frsize: libc::c_long,
    f_flags: libc::c_long,
    f_spare: [libc::c_long; 4],
}

/// `ST_RDONLY` in `statfs.f_flags`.
const ST_RDONLY: libc::c_long = 1;

/// Whether the mount that holds the open descriptor `fd` is read-only
/// (`ST_RDONLY` of fstatfs(2): the mount's flags, not the filesystem's).
/// A raw system call: libc's fstatvfs may read /proc/mounts.
pub fn on_read_only_mount(fd: RawFd) -> Result<bool, Errno> {
    // SAFETY: an all-zero statfs is valid storage for fstatfs to fill.
    let mut st: KernelStatfs = unsafe { std::mem::zeroed() };
    // SAFETY: st is valid for writes of the kernel's struct statfs.
    if unsafe { libc::syscall(libc::SYS_fstatfs, fd, &mut st as *mut KernelStatfs) } < 0 {
        return Err(Errno::last());
    }
    Ok(st.f_flags & ST_RDONLY != 0)
}

/// `(st_dev, st_ino)` of an open descriptor.
pub fn dev_ino(fd: RawFd) -> Result<(u64, u64), Errno> {
    // SAFETY: an all-zero stat is valid storage for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is valid for writes.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(Errno::last());
    }
    Ok((st.st_dev, st.st_ino))
}

/// pidfd_open(2): a descriptor that refers to process `pid` for as long as
/// it is held, whatever happens to the number.
pub fn pidfd_open(pid: libc::pid_t) -> Result<OwnedFd, Errno> {
    // SAFETY: plain integer arguments.
    let fd = check_fd(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) })?;
    // SAFETY: the kernel just returned this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `NS_GET_NSTYPE` of <linux/nsfs.h>: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::Ioctl = 0xb703;

/// The kind of the namespace `fd` refers to, as its `CLONE_NEW*` flag.
pub fn ns_type(fd: BorrowedFd<'_>) -> Result<libc::c_int, Errno> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only answers.
    let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    if kind < 0 {
        Err(Errno::last())
    } else {
        Ok(kind)
    }
}

/// getrandom(2) without flags: fills `buf` from the kernel's generator;
/// returns how many bytes it filled.
pub fn getrandom(buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: buf is valid for writes of its length.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}

/// fgetxattr(2): reads the extended attribute `name` of the file `fd`
/// into `buf`; returns its length.
pub fn fgetxattr(fd: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: name is NUL-terminated and buf valid for writes of its length.
    let n = unsafe {
        libc::fgetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}

/// lgetxattr(2): as [`fgetxattr`], for the file at `path`, not following a
/// symlink there.
pub fn lgetxattr(path: &CStr, name: &CStr, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: both strings are NUL-terminated; buf is valid for writes of
    // its length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        Err(Errno::last())
    } else {
        Ok(n as usize)
    }
}

/// fsetxattr(2): sets the extended attribute `name` of the file `fd` to
/// `value` (created or replaced).
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> Result<(), Errno> {
    // SAFETY: name is NUL-terminated and value valid for reads of its length.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// pidfd_send_signal(2); signal 0 checks that the process still exists.
pub fn pidfd_send_signal(pidfd: RawFd, sig: libc::c_int) -> Result<(), Errno> {
    // SAFETY: a NULL siginfo makes the kernel fill it as kill(2) would.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    })
    .map(drop)
}

/// setns(2) with a namespace descriptor or a pidfd (then `nstype` may join
/// several namespaces of that process at once, atomically).
pub fn setns(fd: RawFd, nstype: libc::c_int) -> Result<(), Errno> {
    // SAFETY: plain integer arguments.
    if unsafe { libc::setns(fd, nstype) } < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

pub const RENAME_NOREPLACE: u32 = 1;

/// renameat2(2).
pub fn renameat2(
    old_dir: RawFd,
    old: &CStr,
    new_dir: RawFd,
    new: &CStr,
    flags: u32,
) -> Result<(), Errno> {
    // SAFETY: both names are NUL-terminated; the kernel only reads them.
    check(unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            old_dir,
            old.as_ptr(),
            new_dir,
            new.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// Sends `data` (at least one byte) and `fds` (at most 8) over the unix
/// socket `sock` in one message, the descriptors with SCM_RIGHTS.
/// Allocation-free.
pub fn send_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> Result<(), Errno> {
    const MAX: usize = 8;
    if fds.len() > MAX || data.is_empty() {
        return Err(Errno::EINVAL);
    }
    let bytes = std::mem::size_of_val(fds);
    // Room for a cmsghdr and 8 descriptors, 8-byte aligned.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is arithmetic.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(bytes as u32) } as _;
        #[allow(
            clippy::multiple_unsafe_ops_per_block,
            reason = "filling the SCM_RIGHTS header goes through libc's CMSG helpers and writes through the pointer they return, sound only as a whole"
        )]
        // SAFETY: msg_control points to `control`, which is large enough
        // (CMSG_SPACE(32) = 48 <= 64 bytes), so the first header and its
        // data lie inside it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(bytes as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
        }
    }
    loop {
        // SAFETY: msg and everything it points to are valid for the call;
        // the kernel only reads the data.
        if unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) } >= 0 {
            return Ok(());
        }
        if Errno::last() != Errno::EINTR {
            return Err(Errno::last());
        }
    }
}

/// What [`recv_fds_into`] received: bytes of data, descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub bytes: usize,
    pub fds: usize,
}

/// Receives one message sent by [`send_fds`]: its data into `data`, its
/// descriptors (close-on-exec) into `fds`; `flags` for recvmsg
/// (`MSG_DONTWAIT`: `EAGAIN` when nothing is there). Retried on EINTR.
/// More descriptors than `fds` holds (they are closed) is `EMSGSIZE`.
/// Allocation-free.
pub fn recv_fds_into(
    sock: RawFd,
    data: &mut [u8],
    fds: &mut [RawFd],
    flags: libc::c_int,
) -> Result<Received, Errno> {
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let bytes = loop {
        // SAFETY: msg points to valid buffers of the given sizes.
        let n = unsafe { libc::recvmsg(sock, &mut msg, flags | libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        if Errno::last() != Errno::EINTR {
            return Err(Errno::last());
        }
    };
    let mut count = 0;
    let mut overflow = msg.msg_flags & libc::MSG_CTRUNC != 0;
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "walking SCM_RIGHTS headers is one sequence of libc CMSG helpers and reads through the pointers they return, sound only as a whole"
    )]
    // SAFETY: the kernel wrote at most msg_controllen bytes of control
    // data, and the CMSG_* walk stays within what it wrote.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let at = libc::CMSG_DATA(cmsg) as *const RawFd;
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(at.add(i));
                    match fds.get_mut(count) {
                        Some(slot) => {
                            *slot = fd;
                            count += 1;
                        }
                        None => {
                            libc::close(fd);
                            overflow = true;
                        }
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if overflow {
        for &fd in &fds[..count] {
            close(fd);
        }
        return Err(Errno::EMSGSIZE);
    }
    Ok(Received { bytes, fds: count })
}

/// Receives one message sent by [`send_fds`] without waiting (`EAGAIN`
/// when nothing is there): its bytes into `data`, and its descriptor if
/// it carried one (close-on-exec; more than one is `EMSGSIZE`). 0 bytes
/// and no descriptor: the other end is closed.
pub fn recv_message(sock: RawFd, data: &mut [u8]) -> Result<(usize, Option<OwnedFd>), Errno> {
    let mut fds = [-1; 1];
    let got = recv_fds_into(sock, data, &mut fds, libc::MSG_DONTWAIT)?;
    // SAFETY: a new descriptor the kernel just gave us.
    let fd = (got.fds == 1).then(|| unsafe { OwnedFd::from_raw_fd(fds[0]) });
    Ok((got.bytes, fd))
}

/// Receives descriptors sent by [`send_fds`] without waiting (`EAGAIN`
/// when nothing is there); they are close-on-exec. (The launcher's side,
/// which may allocate: [`recv_fds_into`] is the allocation-free one.)
pub fn recv_fds(sock: RawFd) -> Result<Vec<OwnedFd>, Errno> {
    let mut data = [0u8; 1];
    recv_with_fds(sock, &mut data, libc::MSG_DONTWAIT).map(|(_, fds)| fds)
}

/// Receives one message: its bytes into `data` (their number first), and
/// up to 8 descriptors that came with them, owned (close-on-exec). `flags`
/// as for [`recv_fds_into`]. The launcher's side: it allocates.
pub fn recv_with_fds(
    sock: RawFd,
    data: &mut [u8],
    flags: libc::c_int,
) -> Result<(usize, Vec<OwnedFd>), Errno> {
    let mut fds = [-1; 8];
    let got = recv_fds_into(sock, data, &mut fds, flags)?;
    let owned = fds[..got.fds]
        .iter()
        // SAFETY: each is a new descriptor the kernel just gave us.
        .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    Ok((got.bytes, owned))
}
