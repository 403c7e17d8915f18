//! hutch's seccomp rules as OCI seccomp JSON: the `linux.seccomp` object of
//! a runtime-spec `config.json`, which is also the profile format Podman
//! (`--security-opt seccomp=FILE`) and Kubernetes (`seccompProfile:
//! Localhost`) read.
//!
//! The translation is exact for what hutch's filter decides, with one
//! exception that is listed ([`differences`]): the architecture check.
//! - Actions: `errno` → `SCMP_ACT_ERRNO` with `errnoRet`, `log` →
//!   `SCMP_ACT_LOG`, `kill` → `SCMP_ACT_KILL_PROCESS`; everything else is
//!   allowed (`defaultAction: SCMP_ACT_ALLOW`), as in hutch's filter.
//! - Arguments: hutch compares the low 32 bits of an argument (the kernel
//!   truncates an ioctl request to 32 bits, so high bits must not hide
//!   TIOCSTI). libseccomp compares all 64, so every comparison here is
//!   `SCMP_CMP_MASKED_EQ` with a mask within the low 32 bits: `(arg & value)
//!   == valueTwo`. OCI entries are ORed together, and runtimes (crun, runc)
//!   split two comparisons of one argument in one entry into separate rules
//!   (OR, not AND), so each entry here holds at most one comparison:
//!   "one of these values" is one entry per value, "any of these bits" one
//!   entry per bit, and "none of these values" the values outside the set
//!   written as a union of bit patterns (at most 32 per excluded value).
//! - Architectures: only the native one is listed, as hutch's filter
//!   accepts only it. libseccomp then treats every other ABI, x32 included,
//!   as a foreign one and applies its bad-architecture action, which OCI
//!   cannot set: it kills the thread (SIGSYS). hutch kills the process for
//!   a foreign ABI and fails x32 calls with EPERM.

use serde::{Deserialize, Serialize};

use crate::plan::seccomp::{Action, Arch, Check, Rule};
use crate::plan::security::SeccompPlan;

/// `linux.seccomp` of the runtime spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Seccomp {
    pub default_action: String,
    pub architectures: Vec<String>,
    pub syscalls: Vec<SyscallRule>,
}

/// One entry of `syscalls`: the action for these names when every
/// comparison in `args` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    pub names: Vec<String>,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgCmp>,
}

/// `(argument[index] & value) == valueTwo`, the only operator used here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArgCmp {
    pub index: u32,
    pub value: u64,
    pub value_two: u64,
    pub op: String,
}

const MASKED_EQ: &str = "SCMP_CMP_MASKED_EQ";
const LOW_32: u64 = 0xffff_ffff;

impl ArgCmp {
    fn masked(index: u8, mask: u64, value: u64) -> ArgCmp {
        ArgCmp {
            index: u32::from(index),
            value: mask,
            value_two: value,
            op: MASKED_EQ.to_string(),
        }
    }

    /// Whether the comparison holds for these system call arguments.
    pub fn holds(&self, args: &[u64; 6]) -> bool {
        let arg = args.get(self.index as usize).copied().unwrap_or(0);
        self.op == MASKED_EQ && arg & self.value == self.value_two
    }
}

/// The libseccomp name of hutch's architecture.
pub fn arch_name(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "SCMP_ARCH_X86_64",
        Arch::Aarch64 => "SCMP_ARCH_AARCH64",
    }
}

/// The OCI action and errno for one of hutch's; `None` for allow (the
/// default action).
fn action(a: Action) -> Option<(&'static str, Option<u32>)> {
    match a {
        Action::Allow => None,
        Action::Errno(e) => Some(("SCMP_ACT_ERRNO", Some(e))),
        Action::Log => Some(("SCMP_ACT_LOG", None)),
        Action::Kill => Some(("SCMP_ACT_KILL_PROCESS", None)),
        Action::Notify => Some(("SCMP_ACT_NOTIFY", None)),
    }
}

/// The argument conditions under which `check` matches, as alternatives
/// (ORed), each at most one comparison. `[[]]` is "always".
pub fn alternatives(check: &Check) -> Vec<Vec<ArgCmp>> {
    match check {
        Check::Always => vec![Vec::new()],
        Check::ArgIn { arg, values } => values
            .iter()
            .map(|v| vec![ArgCmp::masked(*arg, LOW_32, u64::from(*v))])
            .collect(),
        Check::ArgHasBits { arg, mask } => (0..32)
            .map(|b| 1u64 << b)
            .filter(|bit| u64::from(*mask) & bit != 0)
            .map(|bit| vec![ArgCmp::masked(*arg, bit, bit)])
            .collect(),
        Check::ArgNotIn { arg, values } => {
            let mut cubes = Vec::new();
            outside(values, 0, 0, 0, &mut cubes);
            cubes
                .into_iter()
                .map(|(mask, value)| {
                    if mask == 0 {
                        Vec::new()
                    } else {
                        vec![ArgCmp::masked(*arg, u64::from(mask), u64::from(value))]
                    }
                })
                .collect()
        }
    }
}

/// The 32-bit values with the high `depth` bits equal to `prefix` that are
/// not in `values`, as (mask, value) patterns: a walk down the binary trie
/// of `values` from the top bit, emitting each branch no value takes.
fn outside(values: &[u32], depth: u32, mask: u32, prefix: u32, out: &mut Vec<(u32, u32)>) {
    let inside: Vec<u32> = values
        .iter()
        .copied()
        .filter(|v| v & mask == prefix)
        .collect();
    if inside.is_empty() {
        out.push((mask, prefix));
        return;
    }
    if depth == 32 {
        return;
    }
    let bit = 1u32 << (31 - depth);
    for branch in [0, bit] {
        outside(&inside, depth + 1, mask | bit, prefix | branch, out);
    }
}

/// The filter of `plan` as OCI seccomp JSON; `None` when hutch loads no
/// filter. Rules without argument checks that share an action are one
/// entry; the order is the plan's.
pub fn translate(plan: &SeccompPlan) -> Option<Seccomp> {
    if !plan.active {
        return None;
    }
    let arch = plan.arch?;
    let mut syscalls: Vec<SyscallRule> = Vec::new();
    for Rule {
        syscall,
        check,
        action: act,
        ..
    } in &plan.rules
    {
        let Some((name, errno)) = action(*act) else {
            continue;
        };
        for args in alternatives(check) {
            let same = syscalls.iter_mut().find(|r| {
                args.is_empty() && r.args.is_empty() && r.action == name && r.errno_ret == errno
            });
            match same {
                Some(r) if !r.names.contains(syscall) => r.names.push(syscall.clone()),
                Some(_) => {}
                None => syscalls.push(SyscallRule {
                    names: vec![syscall.clone()],
                    action: name.to_string(),
                    errno_ret: errno,
                    args,
                }),
            }
        }
    }
    Some(Seccomp {
        default_action: "SCMP_ACT_ALLOW".to_string(),
        architectures: vec![arch_name(arch).to_string()],
        syscalls,
    })
}

/// What the OCI filter decides differently from hutch's: (key, what).
pub fn differences(plan: &SeccompPlan) -> Vec<(String, String)> {
    let Some(arch) = plan.arch.filter(|_| plan.active) else {
        return Vec::new();
    };
    let mut out = vec![(
        "seccomp.foreign-abi".to_string(),
        "system calls of a foreign ABI (i386 on x86_64, arm32 on aarch64): hutch's filter kills the process, libseccomp's (crun, runc) kills the calling thread with SIGSYS; the call is refused either way".to_string(),
    )];
    if arch == Arch::X86_64 {
        out.push((
            "seccomp.x32".to_string(),
            "x32 system calls: hutch's filter fails them with EPERM, libseccomp's (crun, runc) treats x32 as a foreign ABI and kills the calling thread with SIGSYS; the call is refused either way".to_string(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::seccomp::{GROUPS, TIOCSTI, default_rules};
    use crate::profile::schema::Enforce;

    fn default_plan() -> SeccompPlan {
        SeccompPlan {
            enforce: Enforce::Required,
            active: true,
            arch: Some(Arch::X86_64),
            rules: GROUPS.iter().flat_map(default_rules).collect(),
            log_only: false,
            through_io_uring: Vec::new(),
            learn: false,
        }
    }

    /// What hutch's filter decides for a check, on the low 32 bits.
    fn hutch_matches(check: &Check, args: &[u64; 6]) -> bool {
        let low = |i: u8| args[i as usize] as u32;
        match check {
            Check::Always => true,
            Check::ArgIn { arg, values } => values.contains(&low(*arg)),
            Check::ArgNotIn { arg, values } => !values.contains(&low(*arg)),
            Check::ArgHasBits { arg, mask } => low(*arg) & mask != 0,
        }
    }

    /// What the OCI entries decide: any alternative whose comparisons all hold.
    fn oci_matches(alts: &[Vec<ArgCmp>], args: &[u64; 6]) -> bool {
        alts.iter().any(|a| a.iter().all(|c| c.holds(args)))
    }

    /// Values around every interesting boundary, with and without high bits.
    fn samples(extra: &[u32]) -> Vec<u64> {
        let mut lows: Vec<u32> = vec![
            0,
            1,
            2,
            7,
            8,
            0x5401,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_fffe,
            0xffff_ffff,
        ];
        for v in extra {
            lows.extend([*v, v.wrapping_add(1), v.wrapping_sub(1), !v]);
            lows.extend((0..32).map(|b| v ^ (1 << b)));
        }
        // A deterministic spread of other values.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            lows.push(x);
        }
        lows.iter()
            .flat_map(|l| {
                [0u64, 0xdead_0000_0000_0000, 0xffff_ffff_0000_0000].map(|h| h | u64::from(*l))
            })
            .collect()
    }

    #[test]
    fn every_check_means_the_same_on_sampled_arguments() {
        let checks = [
            Check::Always,
            Check::ArgIn {
                arg: 1,
                values: vec![TIOCSTI, 0x541C],
            },
            Check::ArgNotIn {
                arg: 0,
                values: vec![0, 0xffff_ffff],
            },
            Check::ArgNotIn {
                arg: 2,
                values: vec![0x0040_0008, 5, 0x8000_0000],
            },
            Check::ArgNotIn {
                arg: 0,
                values: vec![],
            },
            Check::ArgHasBits {
                arg: 0,
                mask: 0x1000_0000,
            },
            Check::ArgHasBits {
                arg: 3,
                mask: 0x8000_0101,
            },
        ];
        for check in &checks {
            let alts = alternatives(check);
            let values = match check {
                Check::ArgIn { values, .. } | Check::ArgNotIn { values, .. } => values.clone(),
                Check::ArgHasBits { mask, .. } => vec![*mask],
                Check::Always => vec![],
            };
            for v in samples(&values) {
                for i in 0..6 {
                    let mut args = [0u64; 6];
                    args[i] = v;
                    assert_eq!(
                        oci_matches(&alts, &args),
                        hutch_matches(check, &args),
                        "{check:?} with argument {i} = {v:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn excluded_values_take_at_most_32_patterns_each() {
        let alts = alternatives(&Check::ArgNotIn {
            arg: 0,
            values: vec![0, 0xffff_ffff],
        });
        assert_eq!(alts.len(), 62);
        assert!(alts.iter().all(|a| a.len() == 1 && a[0].value >> 32 == 0));
        assert_eq!(
            alternatives(&Check::ArgNotIn {
                arg: 0,
                values: vec![7]
            })
            .len(),
            32
        );
    }

    #[test]
    fn the_default_filter_translates_rule_for_rule() {
        let json = translate(&default_plan()).unwrap();
        assert_eq!(json.default_action, "SCMP_ACT_ALLOW");
        assert_eq!(json.architectures, ["SCMP_ARCH_X86_64"]);
        let find = |name: &str| -> Vec<&SyscallRule> {
            json.syscalls
                .iter()
                .filter(|r| r.names.iter().any(|n| n == name))
                .collect()
        };
        // Unconditional EPERM and ENOSYS rules are two entries.
        let keyctl = find("keyctl");
        assert_eq!(keyctl.len(), 1);
        assert_eq!(
            (keyctl[0].action.as_str(), keyctl[0].errno_ret),
            ("SCMP_ACT_ERRNO", Some(1))
        );
        assert!(keyctl[0].args.is_empty());
        assert_eq!(find("fsopen")[0].errno_ret, Some(38));
        assert_eq!(find("clone3")[0].errno_ret, Some(38));
        assert_eq!(
            json.syscalls.iter().filter(|r| r.args.is_empty()).count(),
            2
        );
        // ioctl: one entry per request, on the low 32 bits.
        let ioctl = find("ioctl");
        assert_eq!(ioctl.len(), 2);
        assert_eq!(
            ioctl[0].args,
            [ArgCmp::masked(1, 0xffff_ffff, u64::from(TIOCSTI))]
        );
        // unshare and clone: the CLONE_NEWUSER bit.
        for name in ["unshare", "clone"] {
            let r = find(name);
            assert_eq!(r.len(), 1, "{name}");
            assert_eq!(r[0].args, [ArgCmp::masked(0, 0x1000_0000, 0x1000_0000)]);
        }
        assert_eq!(find("personality").len(), 62);
        // Every rule of the plan is there.
        for rule in &default_plan().rules {
            assert!(!find(&rule.syscall).is_empty(), "{}", rule.syscall);
        }
    }

    #[test]
    fn actions_and_inactive_filters() {
        let mut plan = default_plan();
        for r in &mut plan.rules {
            r.action = Action::Log;
        }
        let json = translate(&plan).unwrap();
        assert!(
            json.syscalls
                .iter()
                .all(|r| r.action == "SCMP_ACT_LOG" && r.errno_ret.is_none())
        );
        for r in &mut plan.rules {
            r.action = Action::Kill;
        }
        let json = translate(&plan).unwrap();
        assert!(
            json.syscalls
                .iter()
                .all(|r| r.action == "SCMP_ACT_KILL_PROCESS")
        );
        plan.active = false;
        assert_eq!(translate(&plan), None);
        assert!(differences(&plan).is_empty());
    }

    #[test]
    fn the_architecture_check_is_listed() {
        let keys: Vec<String> = differences(&default_plan())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["seccomp.foreign-abi", "seccomp.x32"]);
        let mut arm = default_plan();
        arm.arch = Some(Arch::Aarch64);
        assert_eq!(
            translate(&arm).unwrap().architectures,
            ["SCMP_ARCH_AARCH64"]
        );
        assert_eq!(differences(&arm).len(), 1);
    }
}
