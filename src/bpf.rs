//! Classic BPF for seccomp: the instruction format, a compiler from
//! per-system-call rules to one filter program, and an evaluator that runs a
//! program the way the kernel does (for tests and `hutch doctor`).
//!
//! A bottom module: it knows system call numbers, argument words and return
//! values, not profiles or plans. Which calls are filtered and why is the
//! policy of `plan::seccomp`.
//!
//! The program: check the audit architecture (a foreign ABI, i386 through
//! `int 0x80` or arm32 compat, is killed, since its numbers mean other
//! calls), refuse the x32 ABI on x86_64 (its calls carry the x86_64 audit
//! value with bit 30 set in the number), then a binary search over the
//! numbers that have rules, down to runs of a few comparisons. Each call has
//! its own action (EPERM for most, ENOSYS where callers fall back, a
//! profile's errno, log or kill), all in one filter. An argument check
//! compares the low 32 bits of the argument, which is what the kernel reads
//! for `int` arguments such as an ioctl request: high bits set by the caller
//! cannot hide a request. Calls decided without looking at arguments are
//! cached as allowed by the kernel (5.11+), so they cost nothing after the
//! first call; the search matters for the argument-checked ones.
//!
//! Why not seccompiler (rust-vmm, checked in its 0.5 source): its
//! `SeccompFilter` has one match action and one mismatch action, so per-call
//! actions take one stacked filter per action; its prologue checks only the
//! audit architecture and a rule names single numbers, so the x32 range
//! needs a hand-made filter anyway; and it emits a linear chain. Argument
//! width is not a reason: its `SeccompCmpArgLen::Dword` also compares only
//! the low 32 bits. The decision and its measurements are in
//! docs/ARCHITECTURE.md ("Dependencies").

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What the filter does with a matching system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action", content = "errno")]
pub enum Action {
    Allow,
    /// Fail with this errno.
    Errno(u32),
    /// Allow, but log to the kernel's audit log.
    Log,
    /// Kill the whole process.
    Kill,
    /// Hand the call to the filter's listener, which answers it (`hutch
    /// learn`; never in a profile's filter).
    Notify,
}

impl Action {
    /// The filter's return value for this action.
    pub fn ret(self) -> u32 {
        match self {
            Action::Allow => SECCOMP_RET_ALLOW,
            Action::Errno(e) => SECCOMP_RET_ERRNO | (e & SECCOMP_RET_DATA),
            Action::Log => SECCOMP_RET_LOG,
            Action::Kill => SECCOMP_RET_KILL_PROCESS,
            Action::Notify => SECCOMP_RET_USER_NOTIF,
        }
    }
}

/// When a rule matches, given the system call's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "when")]
pub enum Check {
    /// Always.
    Always,
    /// The low 32 bits of argument `arg` equal one of `values`.
    ArgIn { arg: u8, values: Vec<u32> },
    /// The low 32 bits of argument `arg` are none of `values`.
    ArgNotIn { arg: u8, values: Vec<u32> },
    /// Argument `arg` has any bit of `mask` set.
    ArgHasBits { arg: u8, mask: u32 },
}

/// One system call's rule, as the compiler takes it: the caller's rule
/// type lends its fields, so compiling allocates no copies.
#[derive(Debug, Clone, Copy)]
pub struct SyscallRule<'a> {
    /// The kernel's name for the call (as in `man 2 syscalls`).
    pub syscall: &'a str,
    pub check: &'a Check,
    pub action: Action,
}

/// The architectures hutch can compile filters for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    /// `AUDIT_ARCH_*`: what the kernel puts in `seccomp_data.arch`.
    pub fn audit(self) -> u32 {
        match self {
            Arch::X86_64 => 0xC000_003E,
            Arch::Aarch64 => 0xC000_00B7,
        }
    }

    /// The number of a system call on this architecture, if it exists there.
    pub fn number(self, name: &str) -> Option<u32> {
        match self {
            Arch::X86_64 => syscalls::x86_64::Sysno::from_str(name)
                .ok()
                .map(|s| s.id() as u32),
            Arch::Aarch64 => syscalls::aarch64::Sysno::from_str(name)
                .ok()
                .map(|s| s.id() as u32),
        }
    }
}

// Classic BPF, as seccomp runs it (<linux/filter.h>, <linux/seccomp.h>).
const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const JA: u16 = 0x05;
const RET_K: u16 = 0x06;
pub const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
pub const SECCOMP_RET_LOG: u32 = 0x7ffc_0000;
pub const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_DATA: u32 = 0xffff;
/// x32 system calls share the x86_64 audit arch with this bit set in the number.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const EPERM: u32 = 1;
/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;
const SECCOMP_DATA_LEN: usize = 64;
/// The kernel refuses longer programs (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// One BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// Offset of the low 32 bits of argument `i` (both supported
/// architectures are little-endian).
fn arg_low(i: u8) -> u32 {
    OFF_ARGS + 8 * i as u32
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompileError {
    #[error("system call `{0}` has two rules that conflict; keep one")]
    Conflict(String),
    #[error("the seccomp filter would be too large ({0} instructions)")]
    TooLarge(usize),
}

/// The code deciding one system call, ending in returns.
fn block(check: &Check, action: Action) -> Vec<Insn> {
    let deny = stmt(RET_K, action.ret());
    let allow = stmt(RET_K, SECCOMP_RET_ALLOW);
    // A comparison chain over `values`: each match jumps to the instruction
    // after the chain's fall-through return.
    let chain = |arg: u8, values: &[u32], on_match: Insn, otherwise: Insn| {
        let mut b = vec![stmt(LD_W_ABS, arg_low(arg))];
        let n = values.len();
        for (i, v) in values.iter().enumerate() {
            b.push(jump(JEQ_K, *v, (n - i) as u8, 0));
        }
        b.push(otherwise);
        b.push(on_match);
        b
    };
    match check {
        Check::Always => vec![deny],
        Check::ArgIn { arg, values } => chain(*arg, values, deny, allow),
        Check::ArgNotIn { arg, values } => chain(*arg, values, allow, deny),
        Check::ArgHasBits { arg, mask } => vec![
            stmt(LD_W_ABS, arg_low(*arg)),
            jump(JSET_K, *mask, 1, 0),
            allow,
            deny,
        ],
    }
}

/// Emits the dispatch over `entries` (sorted by number): a binary search down
/// to runs of a few comparisons. Unmatched numbers are allowed.
fn dispatch(entries: &[(u32, Vec<Insn>)]) -> Vec<Insn> {
    const LEAF: usize = 4;
    if entries.len() <= LEAF {
        let mut out = Vec::new();
        for (nr, b) in entries {
            out.push(jump(JEQ_K, *nr, 0, b.len() as u8));
            out.extend_from_slice(b);
        }
        out.push(stmt(RET_K, SECCOMP_RET_ALLOW));
        return out;
    }
    let mid = entries.len() / 2;
    let left = dispatch(&entries[..mid]);
    let right = dispatch(&entries[mid..]);
    let mut out = Vec::with_capacity(left.len() + right.len() + 2);
    if left.len() <= u8::MAX as usize {
        out.push(jump(JGE_K, entries[mid].0, left.len() as u8, 0));
    } else {
        out.push(jump(JGE_K, entries[mid].0, 0, 1));
        out.push(stmt(JA, left.len() as u32));
    }
    out.extend(left);
    out.extend(right);
    out
}

/// Compiles the rules for `arch`. Rules for system calls that do not exist
/// there are left out (nothing can call them).
pub fn compile<'a>(
    rules: impl IntoIterator<Item = SyscallRule<'a>>,
    arch: Arch,
) -> Result<Vec<Insn>, CompileError> {
    let mut by_nr: BTreeMap<u32, Vec<Insn>> = BTreeMap::new();
    for r in rules {
        let Some(nr) = arch.number(r.syscall) else {
            continue;
        };
        if by_nr.insert(nr, block(r.check, r.action)).is_some() {
            return Err(CompileError::Conflict(r.syscall.to_string()));
        }
    }
    let entries: Vec<(u32, Vec<Insn>)> = by_nr.into_iter().collect();
    let mut prog = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        jump(JEQ_K, arch.audit(), 1, 0),
        stmt(RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(LD_W_ABS, OFF_NR),
    ];
    if arch == Arch::X86_64 {
        prog.push(jump(JGE_K, X32_SYSCALL_BIT, 0, 1));
        prog.push(stmt(RET_K, SECCOMP_RET_ERRNO | EPERM));
    }
    prog.extend(dispatch(&entries));
    if prog.len() > MAX_INSNS {
        return Err(CompileError::TooLarge(prog.len()));
    }
    Ok(prog)
}

/// What a program returned, and how many instructions it executed to get
/// there (the return included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub ret: u32,
    pub steps: usize,
}

/// Runs `prog` the way the kernel would on one system call. Knows the
/// instructions seccomp programs use for comparisons (loads from
/// `seccomp_data`, AND with a constant, conditional and plain jumps,
/// returns): hutch's compiler emits a subset, libseccomp the rest.
///
/// # Panics
/// On any other instruction, a load outside `seccomp_data`, or a program
/// that runs off its end: the kernel refuses such programs when they are
/// loaded, so a panic here means the program under test is wrong.
pub fn run(prog: &[Insn], arch_audit: u32, nr: u32, args: [u64; 6]) -> Verdict {
    let mut data = [0u8; SECCOMP_DATA_LEN];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch_audit.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        let at = OFF_ARGS as usize + 8 * i;
        data[at..at + 8].copy_from_slice(&a.to_le_bytes());
    }
    let mut acc = 0u32;
    let mut pc = 0usize;
    let mut steps = 0;
    while let Some(insn) = prog.get(pc) {
        steps += 1;
        pc += 1;
        let branch = |taken: bool| if taken { insn.jt } else { insn.jf } as usize;
        match insn.code {
            LD_W_ABS => {
                let k = insn.k as usize;
                let word = data
                    .get(k..k + 4)
                    .filter(|_| k.is_multiple_of(4))
                    .unwrap_or_else(|| panic!("BPF load at offset {k} outside seccomp_data"));
                acc = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            }
            ALU_AND_K => acc &= insn.k,
            JEQ_K => pc += branch(acc == insn.k),
            JGT_K => pc += branch(acc > insn.k),
            JGE_K => pc += branch(acc >= insn.k),
            JSET_K => pc += branch(acc & insn.k != 0),
            JA => pc += insn.k as usize,
            RET_K => return Verdict { ret: insn.k, steps },
            other => panic!("unexpected BPF opcode {other:#x} at {}", pc - 1),
        }
    }
    panic!("BPF program fell off its end");
}

/// The return value `prog` gives one system call (see [`run`]).
pub fn evaluate(prog: &[Insn], arch_audit: u32, nr: u32, args: [u64; 6]) -> u32 {
    run(prog, arch_audit, nr, args).ret
}

pub fn ret_name(ret: u32) -> String {
    match ret & 0xffff_0000 {
        SECCOMP_RET_ALLOW => "allow".into(),
        SECCOMP_RET_LOG => "log".into(),
        SECCOMP_RET_USER_NOTIF => "notify".into(),
        SECCOMP_RET_ERRNO => format!("errno {}", ret & SECCOMP_RET_DATA),
        _ if ret == SECCOMP_RET_KILL_PROCESS => "kill".into(),
        _ => format!("{ret:#x}"),
    }
}

/// The errno names a profile may use, with their numbers (the same on
/// x86_64 and aarch64).
pub const ERRNOS: &[(&str, u32)] = &[
    ("EPERM", 1),
    ("ENOENT", 2),
    ("EIO", 5),
    ("EBADF", 9),
    ("EAGAIN", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EFAULT", 14),
    ("EBUSY", 16),
    ("EEXIST", 17),
    ("EINVAL", 22),
    ("ENOSYS", 38),
    ("EOPNOTSUPP", 95),
    ("ENOTSUP", 95),
    ("EAFNOSUPPORT", 97),
];

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: u32 = SECCOMP_RET_ALLOW;
    const DENY: u32 = SECCOMP_RET_ERRNO | EPERM;

    fn rule<'a>(syscall: &'a str, check: &'a Check) -> SyscallRule<'a> {
        SyscallRule {
            syscall,
            check,
            action: Action::Errno(EPERM),
        }
    }

    fn eval(prog: &[Insn], name: &str, args: [u64; 6]) -> u32 {
        let arch = Arch::X86_64;
        evaluate(prog, arch.audit(), arch.number(name).unwrap(), args)
    }

    #[test]
    fn argument_checks_read_the_low_word_of_their_own_argument() {
        let checks = [
            Check::ArgIn {
                arg: 5,
                values: vec![7, 9],
            },
            Check::ArgNotIn {
                arg: 3,
                values: vec![0, 0xffff_ffff],
            },
            Check::ArgHasBits { arg: 2, mask: 0x10 },
        ];
        let names = ["read", "write", "openat"];
        let prog = compile(
            names.iter().zip(&checks).map(|(n, c)| rule(n, c)),
            Arch::X86_64,
        )
        .unwrap();
        let with = |i: usize, v: u64| {
            let mut args = [0xdead_0000_0000_0000; 6];
            args[i] = v;
            args
        };
        assert_eq!(eval(&prog, "read", with(5, 9)), DENY);
        assert_eq!(eval(&prog, "read", with(5, 0xffff_0000_0000_0007)), DENY);
        assert_eq!(eval(&prog, "read", with(4, 9)), ALLOW);
        assert_eq!(eval(&prog, "write", with(3, 1 << 32)), ALLOW);
        assert_eq!(eval(&prog, "write", with(3, 5)), DENY);
        assert_eq!(eval(&prog, "openat", with(2, 0x11)), DENY);
        assert_eq!(eval(&prog, "openat", with(2, 0x10 << 32)), ALLOW);
    }

    #[test]
    fn x32_and_foreign_architectures_are_refused() {
        let always = Check::Always;
        let prog = compile([rule("keyctl", &always)], Arch::X86_64).unwrap();
        let getpid = Arch::X86_64.number("getpid").unwrap();
        let audit = Arch::X86_64.audit();
        assert_eq!(evaluate(&prog, audit, getpid, [0; 6]), ALLOW);
        assert_eq!(
            evaluate(&prog, audit, X32_SYSCALL_BIT | getpid, [0; 6]),
            DENY
        );
        assert_eq!(
            evaluate(&prog, 0x4000_0003, getpid, [0; 6]),
            SECCOMP_RET_KILL_PROCESS
        );
        let prog = compile([rule("keyctl", &always)], Arch::Aarch64).unwrap();
        assert_eq!(
            evaluate(&prog, audit, getpid, [0; 6]),
            SECCOMP_RET_KILL_PROCESS
        );
    }

    #[test]
    fn large_filters_keep_their_jumps_in_range() {
        let names: Vec<&str> = syscalls::x86_64::Sysno::iter()
            .map(|s| s.name())
            .filter(|n| *n != "exit_group" && *n != "exit")
            .collect();
        let always = Check::Always;
        let prog = compile(names.iter().map(|n| rule(n, &always)), Arch::X86_64).unwrap();
        assert!(
            prog.iter().any(|i| i.code == JA),
            "a filter this large needs long jumps"
        );
        for n in &names {
            assert_eq!(eval(&prog, n, [0; 6]), DENY, "{n}");
        }
        assert_eq!(eval(&prog, "exit_group", [0; 6]), ALLOW);
    }

    #[test]
    fn two_rules_for_one_call_are_refused() {
        let always = Check::Always;
        assert_eq!(
            compile([rule("read", &always), rule("read", &always)], Arch::X86_64),
            Err(CompileError::Conflict("read".into()))
        );
    }

    #[test]
    fn run_counts_the_instructions_it_executes() {
        let prog = [
            stmt(LD_W_ABS, OFF_NR),
            jump(JEQ_K, 3, 0, 1),
            stmt(RET_K, 1),
            stmt(RET_K, 2),
        ];
        assert_eq!(run(&prog, 0, 3, [0; 6]), Verdict { ret: 1, steps: 3 });
        assert_eq!(run(&prog, 0, 4, [0; 6]), Verdict { ret: 2, steps: 3 });
        assert_eq!(run(&prog[2..], 0, 0, [0; 6]), Verdict { ret: 1, steps: 1 });
    }
}
