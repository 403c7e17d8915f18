//! The seccomp policy: which system calls the default filter denies and how,
//! the named groups a profile can allow or deny, and the rules a plan
//! carries. The BPF they compile to, and why hutch compiles its own, is
//! `crate::bpf`.

use serde::{Deserialize, Serialize};

pub use crate::bpf::{
    Action, Arch, Check, CompileError, ERRNOS, Insn, SyscallRule, evaluate, ret_name,
};

/// One rule of the filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub syscall: String,
    #[serde(flatten)]
    pub check: Check,
    #[serde(flatten)]
    pub action: Action,
    /// The group or profile key the rule comes from, for `--explain`.
    pub reason: String,
}

impl Rule {
    /// The rule as the compiler takes it.
    pub fn bpf(&self) -> SyscallRule<'_> {
        SyscallRule {
            syscall: &self.syscall,
            check: &self.check,
            action: self.action,
        }
    }
}

/// Compiles the plan's rules into one filter for `arch`.
pub fn compile(rules: &[Rule], arch: Arch) -> Result<Vec<Insn>, CompileError> {
    crate::bpf::compile(rules.iter().map(Rule::bpf), arch)
}

/// Whether `name` is a system call on any architecture hutch supports.
pub fn is_syscall(name: &str) -> bool {
    Arch::X86_64.number(name).is_some() || Arch::Aarch64.number(name).is_some()
}

pub const TIOCSTI: u32 = 0x5412;
pub const TIOCLINUX: u32 = 0x541C;
pub const CLONE_NEWUSER: u32 = 0x1000_0000;
const PER_LINUX: u32 = 0;
const PERSONALITY_QUERY: u32 = 0xffff_ffff;
const EPERM: u32 = 1;
pub const ENOSYS: u32 = 38;

/// The named groups a profile can allow or deny with `@name`, and what the
/// default filter denies.
pub struct Group {
    pub name: &'static str,
    pub syscalls: &'static [&'static str],
    /// Part of the default filter.
    pub default: bool,
    pub description: &'static str,
}

pub const GROUPS: &[Group] = &[
    Group {
        name: "keyring",
        syscalls: &["add_key", "keyctl", "request_key"],
        default: true,
        description: "kernel keyrings",
    },
    Group {
        name: "bpf",
        syscalls: &["bpf"],
        default: true,
        description: "eBPF programs and maps",
    },
    Group {
        name: "perf",
        syscalls: &["perf_event_open"],
        default: true,
        description: "performance counters",
    },
    Group {
        name: "userfaultfd",
        syscalls: &["userfaultfd"],
        default: true,
        description: "user page-fault handling (exploit helper)",
    },
    Group {
        name: "kexec",
        syscalls: &["kexec_load", "kexec_file_load"],
        default: true,
        description: "loading a new kernel",
    },
    Group {
        name: "module",
        syscalls: &["init_module", "finit_module", "delete_module"],
        default: true,
        description: "kernel modules",
    },
    Group {
        name: "handle",
        syscalls: &["open_by_handle_at"],
        default: true,
        description: "opening files by handle (bypasses paths)",
    },
    Group {
        name: "debug",
        syscalls: &["ptrace", "process_vm_readv", "process_vm_writev"],
        default: true,
        description: "tracing and reading other processes' memory",
    },
    Group {
        name: "mount",
        syscalls: &[
            "mount",
            "umount2",
            "pivot_root",
            "move_mount",
            "open_tree",
            "fsopen",
            "fsmount",
            "fsconfig",
            "fspick",
            "mount_setattr",
        ],
        default: true,
        description: "mounting (the new mount API fails with ENOSYS so callers fall back)",
    },
    Group {
        name: "swap",
        syscalls: &["swapon", "swapoff"],
        default: true,
        description: "swap devices",
    },
    Group {
        name: "reboot",
        syscalls: &["reboot"],
        default: true,
        description: "rebooting",
    },
    Group {
        name: "syslog",
        syscalls: &["syslog"],
        default: true,
        description: "the kernel log",
    },
    Group {
        name: "acct",
        syscalls: &["acct"],
        default: true,
        description: "process accounting",
    },
    Group {
        name: "clock",
        syscalls: &["settimeofday", "clock_settime", "clock_adjtime", "adjtimex"],
        default: true,
        description: "setting the clock",
    },
    Group {
        name: "raw-io",
        syscalls: &["iopl", "ioperm"],
        default: true,
        description: "direct port I/O",
    },
    Group {
        name: "personality",
        syscalls: &["personality"],
        default: true,
        description: "execution domains other than the default",
    },
    Group {
        name: "userns",
        syscalls: &["unshare", "clone", "clone3"],
        default: true,
        description: "new user namespaces (nested sandboxes)",
    },
    Group {
        name: "io_uring",
        syscalls: IO_URING_CALLS,
        default: true,
        description: "io_uring, which opens, reads, writes, connects and sends without those system calls (fails with ENOSYS so programs fall back)",
    },
    Group {
        name: "tty-inject",
        syscalls: &["ioctl"],
        default: true,
        description: "TIOCSTI and TIOCLINUX: typing into the terminal",
    },
];

/// io_uring's system calls. `io_uring_setup` alone is enough to have
/// operations performed: with `IORING_SETUP_SQPOLL` (unprivileged since
/// Linux 5.11) a kernel thread reads the submission queue, and no
/// `io_uring_enter` is made.
pub const IO_URING_CALLS: &[&str] = &["io_uring_setup", "io_uring_enter", "io_uring_register"];

/// One io_uring operation and the system calls whose work it does.
pub struct IoUringOp {
    /// The operation, `IORING_OP_` left out.
    pub op: &'static str,
    /// The Linux release that added it.
    pub since: &'static str,
    /// The system calls it does the work of, which a seccomp filter never
    /// sees it make; none for operations that only manage the ring itself.
    pub performs: &'static [&'static str],
}

const fn op(op: &'static str, since: &'static str, performs: &'static [&'static str]) -> IoUringOp {
    IoUringOp {
        op,
        since,
        performs,
    }
}

const READ: &[&str] = &["read", "pread64"];
const READV: &[&str] = &["readv", "preadv", "preadv2"];
const WRITE: &[&str] = &["write", "pwrite64"];
const WRITEV: &[&str] = &["writev", "pwritev", "pwritev2"];
/// Commands of files and sockets: a driver's own (NVMe passthrough, ublk),
/// and on sockets SIOCINQ/SIOCOUTQ (6.7), socket options (6.7) and the
/// local address (6.19).
const URING_CMD: &[&str] = &["ioctl", "getsockopt", "setsockopt", "getsockname"];

/// Every io_uring operation, in the kernel's order, through Linux 6.19:
/// `enum io_uring_op` of include/uapi/linux/io_uring.h (as liburing ships
/// it, 65 operations), with the release each appeared in from liburing's
/// io_uring_enter(2) and the system call each stands for from its
/// description there and the kernel's handler (io_uring/opdef.c). A
/// profile's `deny` of any call in a `performs` list also denies io_uring
/// (see `plan::security::plan_seccomp`).
pub const IO_URING_OPS: &[IoUringOp] = &[
    op("NOP", "5.1", &[]),
    op("READV", "5.1", READV),
    op("WRITEV", "5.1", WRITEV),
    op("FSYNC", "5.1", &["fsync", "fdatasync"]),
    op("READ_FIXED", "5.1", READ),
    op("WRITE_FIXED", "5.1", WRITE),
    op("POLL_ADD", "5.1", &["poll", "ppoll"]),
    op("POLL_REMOVE", "5.1", &[]),
    op("SYNC_FILE_RANGE", "5.2", &["sync_file_range"]),
    op("SENDMSG", "5.3", &["sendmsg"]),
    op("RECVMSG", "5.3", &["recvmsg"]),
    op("TIMEOUT", "5.4", &[]),
    op("TIMEOUT_REMOVE", "5.5", &[]),
    op("ACCEPT", "5.5", &["accept", "accept4"]),
    op("ASYNC_CANCEL", "5.5", &[]),
    op("LINK_TIMEOUT", "5.5", &[]),
    op("CONNECT", "5.5", &["connect"]),
    op("FALLOCATE", "5.6", &["fallocate"]),
    op("OPENAT", "5.6", &["open", "openat", "creat"]),
    op("CLOSE", "5.6", &["close"]),
    op("FILES_UPDATE", "5.6", &[]),
    op(
        "STATX",
        "5.6",
        &["statx", "stat", "lstat", "fstat", "newfstatat"],
    ),
    op("READ", "5.6", READ),
    op("WRITE", "5.6", WRITE),
    op("FADVISE", "5.6", &["fadvise64"]),
    op("MADVISE", "5.6", &["madvise"]),
    op("SEND", "5.6", &["sendto"]),
    op("RECV", "5.6", &["recvfrom"]),
    op("OPENAT2", "5.6", &["openat2"]),
    op("EPOLL_CTL", "5.6", &["epoll_ctl"]),
    op("SPLICE", "5.7", &["splice"]),
    op("PROVIDE_BUFFERS", "5.7", &[]),
    op("REMOVE_BUFFERS", "5.7", &[]),
    op("TEE", "5.8", &["tee"]),
    op("SHUTDOWN", "5.11", &["shutdown"]),
    op("RENAMEAT", "5.11", &["rename", "renameat", "renameat2"]),
    op("UNLINKAT", "5.11", &["unlink", "unlinkat", "rmdir"]),
    op("MKDIRAT", "5.15", &["mkdir", "mkdirat"]),
    op("SYMLINKAT", "5.15", &["symlink", "symlinkat"]),
    op("LINKAT", "5.15", &["link", "linkat"]),
    // Passes data, and registered files, to another ring.
    op("MSG_RING", "5.18", &[]),
    op("FSETXATTR", "5.19", &["fsetxattr"]),
    op("SETXATTR", "5.19", &["setxattr", "setxattrat"]),
    op("FGETXATTR", "5.19", &["fgetxattr"]),
    op("GETXATTR", "5.19", &["getxattr", "getxattrat"]),
    op("SOCKET", "5.19", &["socket"]),
    op("URING_CMD", "5.19", URING_CMD),
    op("SEND_ZC", "6.0", &["sendto"]),
    op("SENDMSG_ZC", "6.1", &["sendmsg"]),
    op("READ_MULTISHOT", "6.7", READ),
    // io_uring_enter(2) says 6.5; it was merged with the futex operations.
    op("WAITID", "6.7", &["waitid"]),
    op("FUTEX_WAIT", "6.7", &["futex"]),
    op("FUTEX_WAKE", "6.7", &["futex"]),
    op("FUTEX_WAITV", "6.7", &["futex_waitv"]),
    // Turns a file the ring holds into a descriptor of the process.
    op("FIXED_FD_INSTALL", "6.8", &[]),
    op("FTRUNCATE", "6.9", &["ftruncate"]),
    op("BIND", "6.11", &["bind"]),
    op("LISTEN", "6.11", &["listen"]),
    op("RECV_ZC", "6.15", &["recvfrom"]),
    op(
        "EPOLL_WAIT",
        "6.15",
        &["epoll_wait", "epoll_pwait", "epoll_pwait2"],
    ),
    op("READV_FIXED", "6.15", READV),
    op("WRITEV_FIXED", "6.15", WRITEV),
    op("PIPE", "6.16", &["pipe", "pipe2"]),
    op("NOP128", "6.19", &[]),
    op("URING_CMD128", "6.19", URING_CMD),
];

/// Whether io_uring can do the work of `syscall` without making it.
pub fn io_uring_performs(syscall: &str) -> bool {
    IO_URING_OPS.iter().any(|o| o.performs.contains(&syscall))
}

pub fn group(name: &str) -> Option<&'static Group> {
    GROUPS.iter().find(|g| g.name == name)
}

/// The default filter's rules for one group.
pub fn default_rules(g: &Group) -> Vec<Rule> {
    let reason = format!("@{}", g.name);
    let rule = |syscall: &str, check: Check, action: Action| Rule {
        syscall: syscall.to_string(),
        check,
        action,
        reason: reason.clone(),
    };
    match g.name {
        "tty-inject" => vec![rule(
            "ioctl",
            Check::ArgIn {
                arg: 1,
                values: vec![TIOCSTI, TIOCLINUX],
            },
            Action::Errno(EPERM),
        )],
        "personality" => vec![rule(
            "personality",
            Check::ArgNotIn {
                arg: 0,
                values: vec![PER_LINUX, PERSONALITY_QUERY],
            },
            Action::Errno(EPERM),
        )],
        "userns" => vec![
            rule(
                "unshare",
                Check::ArgHasBits {
                    arg: 0,
                    mask: CLONE_NEWUSER,
                },
                Action::Errno(EPERM),
            ),
            rule(
                "clone",
                Check::ArgHasBits {
                    arg: 0,
                    mask: CLONE_NEWUSER,
                },
                Action::Errno(EPERM),
            ),
            // clone3 passes its flags in memory, which seccomp cannot read:
            // ENOSYS makes libc fall back to clone, which is checked.
            rule("clone3", Check::Always, Action::Errno(ENOSYS)),
        ],
        // ENOSYS, as on a kernel built without io_uring: the answer
        // libraries have fallen back on longest (ocaml-multicore/eio
        // learnt EPERM only in 2024, for Docker's filter).
        "io_uring" => g
            .syscalls
            .iter()
            .map(|s| rule(s, Check::Always, Action::Errno(ENOSYS)))
            .collect(),
        "mount" => g
            .syscalls
            .iter()
            .map(|s| {
                let errno = if matches!(*s, "mount" | "umount2" | "pivot_root") {
                    EPERM
                } else {
                    ENOSYS
                };
                rule(s, Check::Always, Action::Errno(errno))
            })
            .collect(),
        _ => g
            .syscalls
            .iter()
            .map(|s| rule(s, Check::Always, Action::Errno(EPERM)))
            .collect(),
    }
}

/// The calls `hutch learn` watches: the file and socket calls that name a
/// path (`connect` names one in its address).
pub const LEARNED_CALLS: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "creat",
    "execve",
    "execveat",
    "connect",
    "mkdir",
    "mkdirat",
    "unlink",
    "unlinkat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
];

/// The filter of a learning run: the run's own `rules` with every call of
/// [`LEARNED_CALLS`] handed to the listener, and every call the rules deny
/// outright (whatever its arguments) handed to it too, so that it is seen,
/// with the errno the listener must answer it with. The kernel lets an
/// errno action outrank a notification, so a stacked filter would never
/// show the denied calls; merged, nothing the rules deny is let through by
/// the filter itself, and a listener that is gone makes every notified
/// call fail (ENOSYS). Argument-checked rules (ioctl's TIOCSTI, clone's
/// new user namespaces, ...) and kills stay as they are.
pub fn learning_rules(rules: &[Rule]) -> (Vec<Rule>, Vec<(String, u32)>) {
    let mut out = Vec::with_capacity(rules.len() + LEARNED_CALLS.len());
    let mut refused = Vec::new();
    for r in rules {
        let mut r = r.clone();
        match (r.check.clone(), r.action) {
            (Check::Always, Action::Errno(e)) => {
                refused.push((r.syscall.clone(), e));
                r.action = Action::Notify;
            }
            (Check::Always, Action::Allow | Action::Log)
                if LEARNED_CALLS.contains(&r.syscall.as_str()) =>
            {
                r.action = Action::Notify;
            }
            _ => {}
        }
        out.push(r);
    }
    for call in LEARNED_CALLS {
        if !out.iter().any(|r| r.syscall == *call) {
            out.push(Rule {
                syscall: call.to_string(),
                check: Check::Always,
                action: Action::Notify,
                reason: "hutch learn".into(),
            });
        }
    }
    (out, refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::{SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS};
    use std::collections::BTreeMap;

    fn all_default_rules() -> Vec<Rule> {
        GROUPS.iter().flat_map(default_rules).collect()
    }

    const ALLOW: u32 = SECCOMP_RET_ALLOW;

    fn eval(arch: Arch, prog: &[Insn], name: &str, args: [u64; 6]) -> u32 {
        evaluate(prog, arch.audit(), arch.number(name).unwrap(), args)
    }

    #[test]
    fn default_filter_for_both_architectures() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let prog = compile(&all_default_rules(), arch).unwrap();
            let e = |name, args| eval(arch, &prog, name, args);
            let z = [0u64; 6];
            assert_eq!(e("getppid", z), ALLOW, "{arch:?}");
            assert_eq!(e("read", z), ALLOW);
            assert_eq!(e("keyctl", z), SECCOMP_RET_ERRNO | EPERM);
            assert_eq!(e("bpf", z), SECCOMP_RET_ERRNO | EPERM);
            assert_eq!(e("perf_event_open", z), SECCOMP_RET_ERRNO | EPERM);
            assert_eq!(e("ptrace", z), SECCOMP_RET_ERRNO | EPERM);
            assert_eq!(e("mount", z), SECCOMP_RET_ERRNO | EPERM);
            assert_eq!(e("fsopen", z), SECCOMP_RET_ERRNO | ENOSYS);
            assert_eq!(e("clone3", z), SECCOMP_RET_ERRNO | ENOSYS);
            assert_eq!(e("io_uring_setup", z), SECCOMP_RET_ERRNO | ENOSYS);
            assert_eq!(e("io_uring_enter", z), SECCOMP_RET_ERRNO | ENOSYS);
            // ioctl: only the two terminal-injection requests, compared on
            // the low 32 bits so high bits cannot hide them.
            assert_eq!(e("ioctl", [0, 0x5401, 0, 0, 0, 0]), ALLOW);
            assert_eq!(
                e("ioctl", [0, TIOCSTI as u64, 0, 0, 0, 0]),
                SECCOMP_RET_ERRNO | EPERM
            );
            assert_eq!(
                e(
                    "ioctl",
                    [0, 0xdead_0000_0000_0000 | TIOCSTI as u64, 0, 0, 0, 0]
                ),
                SECCOMP_RET_ERRNO | EPERM
            );
            assert_eq!(
                e("ioctl", [0, TIOCLINUX as u64, 0, 0, 0, 0]),
                SECCOMP_RET_ERRNO | EPERM
            );
            // New user namespaces only.
            assert_eq!(e("unshare", [0x0002_0000, 0, 0, 0, 0, 0]), ALLOW);
            assert_eq!(
                e("unshare", [CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]),
                SECCOMP_RET_ERRNO | EPERM
            );
            assert_eq!(e("clone", [0x11, 0, 0, 0, 0, 0]), ALLOW);
            assert_eq!(
                e("clone", [(CLONE_NEWUSER | 0x11) as u64, 0, 0, 0, 0, 0]),
                SECCOMP_RET_ERRNO | EPERM
            );
            assert_eq!(e("personality", [0, 0, 0, 0, 0, 0]), ALLOW);
            assert_eq!(e("personality", [0xffff_ffff, 0, 0, 0, 0, 0]), ALLOW);
            assert_eq!(
                e("personality", [0x0040_0008, 0, 0, 0, 0, 0]),
                SECCOMP_RET_ERRNO | EPERM
            );
            // The wrong architecture is killed.
            assert_eq!(evaluate(&prog, 0x4000_0003, 1, z), SECCOMP_RET_KILL_PROCESS);
        }
    }

    #[test]
    fn the_io_uring_table_names_real_calls_and_every_operation() {
        for o in IO_URING_OPS {
            for call in o.performs {
                assert!(is_syscall(call), "IORING_OP_{}: `{call}`", o.op);
            }
        }
        for call in IO_URING_CALLS {
            assert!(is_syscall(call), "{call}");
        }
        // IORING_OP_LAST of Linux 6.19, and no operation twice.
        assert_eq!(IO_URING_OPS.len(), 65);
        let names: std::collections::BTreeSet<&str> = IO_URING_OPS.iter().map(|o| o.op).collect();
        assert_eq!(names.len(), IO_URING_OPS.len());
        assert!(io_uring_performs("socket") && io_uring_performs("openat2"));
        assert!(!io_uring_performs("ptrace") && !io_uring_performs("io_uring_setup"));
    }

    /// The installed kernel headers' operations (CI's are Debian's) are the
    /// table's first ones, in order: a header that knows an operation the
    /// table lacks fails here.
    #[test]
    fn the_io_uring_table_follows_the_installed_kernel_header() {
        let Ok(header) = std::fs::read_to_string("/usr/include/linux/io_uring.h") else {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIP: no /usr/include/linux/io_uring.h (install linux-libc-dev)"
            );
            return;
        };
        let start = header.find("enum io_uring_op {").expect("the opcode enum");
        let end = start + header[start..].find('}').unwrap();
        let ops: Vec<&str> = header[start..end]
            .lines()
            .filter_map(|l| l.trim().strip_prefix("IORING_OP_"))
            .map(|l| l.trim_end_matches(','))
            .filter(|op| *op != "LAST")
            .collect();
        assert!(ops.len() > 20, "{ops:?}");
        let table: Vec<&str> = IO_URING_OPS.iter().map(|o| o.op).take(ops.len()).collect();
        assert_eq!(table, ops);
    }

    #[test]
    fn every_syscall_number_is_decided_as_a_lookup_would() {
        // The binary search must agree with a plain table for every number.
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let rules: Vec<Rule> = all_default_rules();
            let prog = compile(&rules, arch).unwrap();
            let denied: BTreeMap<u32, &Rule> = rules
                .iter()
                .filter_map(|r| Some((arch.number(&r.syscall)?, r)))
                .collect();
            for nr in 0..600u32 {
                let got = evaluate(&prog, arch.audit(), nr, [0; 6]);
                let want = match denied.get(&nr) {
                    Some(r) => match r.check {
                        Check::Always => r.action.ret(),
                        // With all-zero arguments: ioctl 0 and clone 0 pass,
                        // personality(0) is PER_LINUX and passes too.
                        _ => ALLOW,
                    },
                    None => ALLOW,
                };
                assert_eq!(got, want, "{arch:?} nr {nr}");
            }
        }
    }

    #[test]
    fn a_lookup_takes_few_instructions() {
        let arch = Arch::X86_64;
        let prog = compile(&all_default_rules(), arch).unwrap();
        let steps = |name, args| {
            crate::bpf::run(&prog, arch.audit(), arch.number(name).unwrap(), args).steps
        };
        // An allowed call the kernel cannot cache (it checks an argument)
        // and one without rules, which the cache serves after its first use.
        let ioctl = steps("ioctl", [0, 0x5401, 0, 0, 0, 0]);
        let getppid = steps("getppid", [0; 6]);
        assert!(ioctl <= 16, "{ioctl} instructions for an allowed ioctl");
        assert!(getppid <= 16, "{getppid} instructions for an allowed call");
    }

    #[test]
    fn learning_notifies_the_watched_and_the_denied_calls_and_allows_nothing_more() {
        use crate::bpf::SECCOMP_RET_USER_NOTIF;
        let base = all_default_rules();
        let (rules, refused) = learning_rules(&base);
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let prog = compile(&rules, arch).unwrap();
            let plain = compile(&base, arch).unwrap();
            let e = |name, args| eval(arch, &prog, name, args);
            let z = [0u64; 6];
            assert_eq!(e("openat", z), SECCOMP_RET_USER_NOTIF);
            assert_eq!(e("execve", z), SECCOMP_RET_USER_NOTIF);
            assert_eq!(e("connect", z), SECCOMP_RET_USER_NOTIF);
            assert_eq!(e("keyctl", z), SECCOMP_RET_USER_NOTIF);
            assert_eq!(e("read", z), ALLOW);
            // Argument checks stay errno: TIOCSTI is never handed over.
            assert_eq!(
                e("ioctl", [0, TIOCSTI as u64, 0, 0, 0, 0]),
                SECCOMP_RET_ERRNO | EPERM
            );
            // Every call the base filter does not allow is still not
            // allowed by the learning filter.
            for nr in 0..600u32 {
                for args in [z, [CLONE_NEWUSER as u64, TIOCSTI as u64, 0, 0, 0, 0]] {
                    let before = evaluate(&plain, arch.audit(), nr, args);
                    let after = evaluate(&prog, arch.audit(), nr, args);
                    if before != ALLOW {
                        assert_ne!(after, ALLOW, "{arch:?} nr {nr}");
                    }
                }
            }
        }
        assert!(refused.contains(&("keyctl".to_string(), EPERM)));
        assert!(refused.contains(&("clone3".to_string(), ENOSYS)));
        assert!(!refused.iter().any(|(s, _)| s == "ioctl"));
    }
}
