//! firejail's system call filter (`seccomp`, `seccomp LIST`,
//! `seccomp.drop`, `allow-debuggers`) as additions to hutch's default
//! filter. The groups are those of firejail 0.9.72 (`src/lib/syscall.c`);
//! names that are no system call on the architectures hutch filters
//! (`vm86`, `s390_*`, ...) cannot be called there and are left out.

use std::collections::BTreeSet;

use crate::plan::seccomp::{GROUPS, is_syscall};

/// firejail's groups that its default filter uses.
const FJ_GROUPS: &[(&str, &[&str])] = &[
    (
        "@clock",
        &[
            "adjtimex",
            "clock_adjtime",
            "clock_settime",
            "settimeofday",
            "stime",
        ],
    ),
    (
        "@cpu-emulation",
        &[
            "modify_ldt",
            "subpage_prot",
            "switch_endian",
            "vm86",
            "vm86old",
        ],
    ),
    (
        "@debug",
        &[
            "lookup_dcookie",
            "perf_event_open",
            "pidfd_getfd",
            "process_vm_writev",
            "rtas",
            "s390_runtime_instr",
            "sys_debug_setcontext",
        ],
    ),
    ("@module", &["delete_module", "finit_module", "init_module"]),
    (
        "@mount",
        &[
            "chroot",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "mount",
            "move_mount",
            "open_tree",
            "pivot_root",
            "umount",
            "umount2",
        ],
    ),
    (
        "@obsolete",
        &[
            "_sysctl",
            "afs_syscall",
            "bdflush",
            "break",
            "create_module",
            "ftime",
            "get_kernel_syms",
            "getpmsg",
            "gtty",
            "idle",
            "lock",
            "mpx",
            "prof",
            "profil",
            "putpmsg",
            "query_module",
            "security",
            "sgetmask",
            "ssetmask",
            "stty",
            "sysfs",
            "tuxcall",
            "ulimit",
            "uselib",
            "ustat",
            "vserver",
        ],
    ),
    (
        "@raw-io",
        &[
            "ioperm",
            "iopl",
            "pciconfig_iobase",
            "pciconfig_read",
            "pciconfig_write",
            "s390_mmio_read",
            "s390_mmio_write",
        ],
    ),
    ("@reboot", &["kexec_load", "kexec_file_load", "reboot"]),
    ("@swap", &["swapon", "swapoff"]),
    (
        "@default",
        &[
            "@clock",
            "@cpu-emulation",
            "@debug",
            "@module",
            "@mount",
            "@obsolete",
            "@raw-io",
            "@reboot",
            "@swap",
            "open_by_handle_at",
            "name_to_handle_at",
            "ioprio_set",
            "ni_syscall",
            "syslog",
            "fanotify_init",
            "add_key",
            "request_key",
            "mbind",
            "migrate_pages",
            "move_pages",
            "keyctl",
            "io_setup",
            "io_destroy",
            "io_getevents",
            "io_submit",
            "io_cancel",
            "remap_file_pages",
            "set_mempolicy",
            "vmsplice",
            "userfaultfd",
            "acct",
            "bpf",
            "nfsservctl",
            "setdomainname",
            "sethostname",
            "vhangup",
        ],
    ),
    (
        "@default-nodebuggers",
        &["@default", "ptrace", "personality", "process_vm_readv"],
    ),
    (
        "@aio",
        &[
            "io_cancel",
            "io_destroy",
            "io_getevents",
            "io_pgetevents",
            "io_setup",
            "io_submit",
            "io_uring_enter",
            "io_uring_register",
            "io_uring_setup",
        ],
    ),
    (
        "@resources",
        &[
            "ioprio_set",
            "mbind",
            "migrate_pages",
            "move_pages",
            "nice",
            "sched_setaffinity",
            "sched_setattr",
            "sched_setparam",
            "sched_setscheduler",
            "set_mempolicy",
        ],
    ),
    ("@keyring", &["add_key", "keyctl", "request_key"]),
    (
        "@memlock",
        &["mlock", "mlock2", "mlockall", "munlock", "munlockall"],
    ),
    (
        "@chown",
        &[
            "chown", "chown32", "fchown", "fchown32", "fchownat", "lchown", "lchown32",
        ],
    ),
];

/// A list item: a system call or group, `!` to take it out; `:ERRNO`
/// suffixes are dropped (hutch has one errno for the whole filter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListItem {
    pub allow: bool,
    pub name: String,
    pub had_errno: bool,
}

pub fn parse_list(list: &str) -> Vec<ListItem> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (allow, rest) = match s.strip_prefix('!') {
                Some(r) => (true, r),
                None => (false, s),
            };
            let (name, had_errno) = match rest.split_once(':') {
                Some((n, _)) => (n, true),
                None => (rest, false),
            };
            ListItem {
                allow,
                name: name.to_string(),
                had_errno,
            }
        })
        .collect()
}

/// The system calls a name stands for (a group expanded), or `None` for an
/// unknown group.
pub fn expand(name: &str) -> Option<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    if name.starts_with('@') {
        let (_, members) = FJ_GROUPS.iter().find(|(g, _)| *g == name)?;
        for m in *members {
            out.extend(expand(m)?);
        }
    } else {
        out.insert(name.to_string());
    }
    Some(out)
}

/// The system calls hutch's default filter denies whatever their
/// arguments (the argument-checked ones, `ioctl`, `personality`, `clone`
/// and `unshare`, do not count).
pub fn hutch_default_denies() -> BTreeSet<&'static str> {
    GROUPS
        .iter()
        .filter(|g| g.default && !matches!(g.name, "tty-inject" | "personality" | "userns"))
        .flat_map(|g| g.syscalls.iter().copied())
        .collect()
}

/// What a firejail filter becomes in hutch's `[seccomp]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Added to hutch's default filter.
    pub deny: BTreeSet<String>,
    /// Taken out of hutch's default filter (firejail allows them).
    pub allow: BTreeSet<String>,
    /// Names firejail lists that are no system call here (left out).
    pub unknown: BTreeSet<String>,
}

/// The filter firejail builds from its default list, a `seccomp LIST`
/// (added to and taken from the default) and `allow-debuggers`.
pub fn default_plus(list: Option<&str>, allow_debuggers: bool) -> Filter {
    let base = if allow_debuggers {
        "@default"
    } else {
        "@default-nodebuggers"
    };
    let mut denied = expand(base).unwrap_or_default();
    let mut allowed = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for item in parse_list(list.unwrap_or("")) {
        let Some(names) = expand(&item.name) else {
            unknown.insert(item.name.clone());
            continue;
        };
        for n in names {
            if item.allow {
                denied.remove(&n);
                allowed.insert(n);
            } else {
                allowed.remove(&n);
                denied.insert(n);
            }
        }
    }
    if allow_debuggers {
        for n in ["ptrace", "personality", "process_vm_readv"] {
            if !denied.contains(n) {
                allowed.insert(n.to_string());
            }
        }
    }
    finish(denied, allowed, unknown)
}

/// `seccomp.drop LIST`: only the list (hutch's default filter stays).
pub fn drop_only(list: &str) -> Filter {
    let mut denied = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    for item in parse_list(list) {
        match expand(&item.name) {
            Some(names) if !item.allow => denied.extend(names),
            Some(_) => {}
            None => {
                unknown.insert(item.name);
            }
        }
    }
    finish(denied, BTreeSet::new(), unknown)
}

fn finish(
    denied: BTreeSet<String>,
    allowed: BTreeSet<String>,
    mut unknown: BTreeSet<String>,
) -> Filter {
    let hutch = hutch_default_denies();
    let mut f = Filter::default();
    for n in denied {
        if !is_syscall(&n) {
            unknown.insert(n);
        } else if !hutch.contains(n.as_str()) {
            f.deny.insert(n);
        }
    }
    for n in allowed {
        // Only what hutch's default would deny needs taking out; a call
        // hutch checks by argument (personality) stays checked.
        if is_syscall(&n) && hutch.contains(n.as_str()) {
            f.allow.insert(n);
        }
    }
    f.unknown = unknown;
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_adds_what_hutch_lacks() {
        let f = default_plus(None, false);
        for n in [
            "chroot",
            "mbind",
            "set_mempolicy",
            "sethostname",
            "personality",
            "io_setup",
        ] {
            assert!(f.deny.contains(n), "{n}: {f:?}");
        }
        // Already in hutch's default: not repeated.
        assert!(!f.deny.contains("keyctl") && !f.deny.contains("ptrace"));
        assert!(f.allow.is_empty());
        assert!(f.unknown.contains("vm86") || f.unknown.contains("s390_mmio_read"));
    }

    #[test]
    fn bang_items_allow_and_others_deny() {
        let f = default_plus(Some("!chroot,!ptrace,socket"), false);
        assert!(!f.deny.contains("chroot"));
        assert!(f.allow.contains("ptrace"), "hutch denies ptrace by default");
        assert!(!f.allow.contains("chroot"), "hutch does not deny chroot");
        assert!(f.deny.contains("socket"));
        let f = default_plus(None, true);
        assert!(f.allow.contains("ptrace") && f.allow.contains("process_vm_readv"));
        assert!(!f.deny.contains("personality"));
    }

    #[test]
    fn lists() {
        assert_eq!(
            parse_list("!a,b:EPERM,,@g"),
            [
                ListItem {
                    allow: true,
                    name: "a".into(),
                    had_errno: false
                },
                ListItem {
                    allow: false,
                    name: "b".into(),
                    had_errno: true
                },
                ListItem {
                    allow: false,
                    name: "@g".into(),
                    had_errno: false
                },
            ]
        );
        let f = drop_only("@clock,mbind,nosuchcall");
        assert!(f.deny.contains("mbind") && f.unknown.contains("nosuchcall"));
        assert!(
            !f.deny.contains("clock_settime"),
            "in hutch's default already"
        );
    }
}
