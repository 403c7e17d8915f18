//! Planning confinement: the seccomp rules, Landlock rules, resource limits
//! and the terminal policy, with what this kernel can and cannot enforce.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::mounts::{MountOp, PlannedMount};
use super::seccomp::{self, Action, Arch, Check, Rule};
use crate::diag::Diagnostic;
use crate::host::Host;
use crate::landlock::{self, Feature, Support};
use crate::profile::schema::{Enforce, SeccompAction, Terminal};
use crate::profile::{Profile, ProfileError, vars};

/// Landlock's access rights, where the planner and `--explain` have
/// always found them.
pub use crate::landlock::access;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeccompPlan {
    pub enforce: Enforce,
    /// The filter is loaded (false when off, or best-effort and unsupported).
    pub active: bool,
    pub arch: Option<Arch>,
    pub rules: Vec<Rule>,
    /// `action = "log"`: nothing is blocked, matching calls are logged.
    pub log_only: bool,
}

impl SeccompPlan {
    /// Whether TIOCSTI/TIOCLINUX are blocked.
    pub fn blocks_tty_injection(&self) -> bool {
        self.active
            && !self.log_only
            && self.rules.iter().any(|r| {
                r.syscall == "ioctl"
                    && match &r.check {
                        Check::Always => true,
                        Check::ArgIn { values, .. } => {
                            values.contains(&seccomp::TIOCSTI)
                                && values.contains(&seccomp::TIOCLINUX)
                        }
                        _ => false,
                    }
            })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LandlockRule {
    /// A path inside the sandbox.
    pub path: PathBuf,
    pub access: u64,
    /// Rules derived from mounts are skipped if the path is missing; rules
    /// the profile lists are required to exist.
    pub derived: bool,
    /// Whether the path is a directory, when the plan knows (else the child
    /// checks): only file rights apply to a file.
    pub is_dir: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LandlockPlan {
    /// The kernel's Landlock ABI (0: none).
    pub abi: u32,
    /// Filesystem rights handled (everything not granted by a rule is denied).
    pub handled_fs: u64,
    pub fs_rules: Vec<LandlockRule>,
    pub handled_net: u64,
    /// (port, rights) pairs.
    pub net_rules: Vec<(u16, u64)>,
    pub scoped: u64,
    /// What the profile asked for that this kernel cannot enforce.
    pub not_enforced: Vec<String>,
    /// Known kernel bugs (Landlock errata) that affect what is enforced,
    /// because this kernel lacks their fix. (Absent from the records of
    /// sandboxes started by an older hutch.)
    #[serde(default)]
    pub caveats: Vec<String>,
}

impl LandlockPlan {
    pub fn active(&self) -> bool {
        self.handled_fs != 0 || self.handled_net != 0 || self.scoped != 0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RlimitPlan {
    pub name: String,
    /// Soft and hard limit; `None` is unlimited.
    pub value: Option<u64>,
}

/// `[rlimits]` keys and the resources they set.
pub const RLIMITS: &[(&str, crate::sys::RlimitResource)] = &[
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("as", libc::RLIMIT_AS),
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("fsize", libc::RLIMIT_FSIZE),
    ("stack", libc::RLIMIT_STACK),
    ("memlock", libc::RLIMIT_MEMLOCK),
];

fn sc(p: &crate::profile::RawProfile) -> Option<&crate::profile::schema::Seccomp> {
    p.seccomp.as_ref()
}

fn ll(p: &crate::profile::RawProfile) -> Option<&crate::profile::schema::Landlock> {
    p.landlock.as_ref()
}

fn enforce_of(
    profile: &Profile,
    f: impl Fn(&crate::profile::RawProfile) -> Option<&Spanned<Enforce>>,
    default: Enforce,
) -> (Enforce, Option<crate::profile::At<'_, Enforce>>) {
    match profile.last(f) {
        Some(a) => (*a.get(), Some(a)),
        None => (default, None),
    }
}

/// Names in `allow`/`deny`: system calls or `@group`s; returns the syscalls.
fn names_of(
    item: &Spanned<String>,
    file: &std::sync::Arc<crate::diag::SourceFile>,
) -> Result<Vec<String>, ProfileError> {
    let name = item.get_ref();
    if let Some(g) = name.strip_prefix('@') {
        return match seccomp::group(g) {
            Some(g) => Ok(g.syscalls.iter().map(|s| s.to_string()).collect()),
            None => Err(
                Diagnostic::new(format!("unknown system call group `{name}`"))
                    .at(file, item.span())
                    .help(format!(
                        "groups: {}",
                        seccomp::GROUPS
                            .iter()
                            .map(|g| format!("@{}", g.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .into(),
            ),
        };
    }
    if !seccomp::is_syscall(name) {
        return Err(Diagnostic::new(format!("unknown system call `{name}`"))
            .at(file, item.span())
            .help("use the kernel's name for it (as in `man 2 syscalls`, e.g. `clock_settime`), or a `@group`")
            .into());
    }
    Ok(vec![name.clone()])
}

pub fn plan_seccomp(profile: &Profile) -> Result<SeccompPlan, ProfileError> {
    let (enforce, enforce_at) = enforce_of(profile, |p| sc(p)?.enforce.as_ref(), Enforce::Required);
    let arch = Arch::native();
    if enforce == Enforce::Off {
        return Ok(SeccompPlan {
            enforce,
            active: false,
            arch,
            rules: Vec::new(),
            log_only: false,
        });
    }
    if arch.is_none() && enforce == Enforce::Required {
        let d = match &enforce_at {
            Some(a) => a.diag("seccomp filters are not supported on this architecture by hutch"),
            None => {
                Diagnostic::new("seccomp filters are not supported on this architecture by hutch")
            }
        };
        return Err(d
            .help("hutch builds filters for x86_64 and aarch64; set `[seccomp] enforce = \"best-effort\"` to run without one")
            .into());
    }
    let use_default = profile
        .last(|p| sc(p)?.default.as_ref())
        .is_none_or(|d| *d.get());
    let mut rules: Vec<Rule> = if use_default {
        seccomp::GROUPS
            .iter()
            .filter(|g| g.default)
            .flat_map(seccomp::default_rules)
            .collect()
    } else {
        Vec::new()
    };
    if profile
        .last(|p| sc(p)?.nested_userns.as_ref())
        .is_some_and(|n| *n.get())
    {
        rules.retain(|r| r.reason != "@userns");
    }
    let action = profile
        .last(|p| sc(p)?.action.as_ref())
        .map_or(SeccompAction::Errno, |a| *a.get());
    let errno = profile
        .last(|p| sc(p)?.errno.as_ref())
        .map_or(1, |e| e.get().0);
    let deny_action = match action {
        SeccompAction::Errno => Action::Errno(errno),
        SeccompAction::Log => Action::Log,
        SeccompAction::Kill => Action::Kill,
    };
    // Layers in order: a later layer's allow undoes an earlier deny and
    // the other way round.
    for layer in &profile.layers {
        let Some(s) = &layer.raw.seccomp else {
            continue;
        };
        for item in s.allow.iter().flatten() {
            let names = names_of(item, &layer.file)?;
            rules.retain(|r| !names.contains(&r.syscall));
        }
        for item in s.deny.iter().flatten() {
            for name in names_of(item, &layer.file)? {
                rules.retain(|r| r.syscall != name);
                rules.push(Rule {
                    syscall: name,
                    check: Check::Always,
                    action: deny_action,
                    reason: format!("deny = {:?}", item.get_ref()),
                });
            }
        }
    }
    if action != SeccompAction::Errno {
        for r in &mut rules {
            r.action = deny_action;
        }
    }
    Ok(SeccompPlan {
        enforce,
        active: arch.is_some(),
        arch,
        rules,
        log_only: action == SeccompAction::Log,
    })
}

fn landlock_unavailable(what: &str, need: &str, support: Support) -> String {
    match support.problem() {
        Some(problem) => format!("{what} (needs {need}): {problem}"),
        None => format!(
            "{what}: this kernel's Landlock ABI is {}, {need} is needed",
            support.abi()
        ),
    }
}

/// The errata whose fix this kernel lacks, among those that touch what the
/// plan enforces: said in `--explain`, never a reason to enforce less (see
/// `landlock::ERRATA`).
fn caveats(plan: &LandlockPlan, fixed: u32) -> Vec<String> {
    let features = [
        (Feature::Filesystem, plan.handled_fs != 0),
        (Feature::TcpPorts, plan.handled_net != 0),
        (
            Feature::SignalScope,
            plan.scoped & access::SCOPE_SIGNAL != 0,
        ),
    ];
    features
        .into_iter()
        .filter(|(_, enforced)| *enforced)
        .flat_map(|(feature, _)| landlock::unfixed(plan.abi, fixed, feature))
        .map(|e| {
            format!(
                "this kernel lacks the fix for Landlock erratum {}: {}",
                e.number, e.without_fix
            )
        })
        .collect()
}

pub fn plan_landlock(
    profile: &Profile,
    host: &Host,
    mounts: &[PlannedMount],
) -> Result<LandlockPlan, ProfileError> {
    let mut plan = LandlockPlan::default();
    let (fs, fs_at) = enforce_of(profile, |p| ll(p)?.fs.as_ref(), Enforce::Required);
    let (net, net_at) = enforce_of(profile, |p| ll(p)?.net.as_ref(), Enforce::Required);
    let (scope, scope_at) = enforce_of(profile, |p| ll(p)?.scope.as_ref(), Enforce::BestEffort);
    let bind_ports = profile.last(|p| ll(p)?.tcp_bind.as_ref());
    let connect_ports = profile.last(|p| ll(p)?.tcp_connect.as_ref());
    let wants_net = net != Enforce::Off && (bind_ports.is_some() || connect_ports.is_some());
    if fs == Enforce::Off && !wants_net && scope == Enforce::Off {
        return Ok(plan);
    }
    let support = host.landlock();
    let abi = support.abi();
    plan.abi = abi;

    let refuse = |at: Option<crate::profile::At<'_, Enforce>>,
                  what: String,
                  key: &str|
     -> ProfileError {
        let d = match at {
            Some(a) => a.diag(what),
            None => Diagnostic::new(what),
        };
        d.help(format!(
            "run `hutch doctor`; to run without it, set `[landlock] {key} = \"best-effort\"` (e.g. in a .local.toml override)"
        ))
        .into()
    };

    if fs != Enforce::Off {
        if abi == 0 {
            let msg = landlock_unavailable(
                "filesystem rules",
                "Linux 5.13+ with Landlock enabled",
                support,
            );
            if fs == Enforce::Required {
                return Err(refuse(fs_at, msg, "fs"));
            }
            plan.not_enforced.push(msg);
        } else {
            plan.handled_fs = access::all_fs(abi);
            let from_mounts = profile
                .last(|p| ll(p)?.from_mounts.as_ref())
                .is_none_or(|f| *f.get());
            if from_mounts {
                plan.fs_rules = derive_rules(mounts, plan.handled_fs, host);
            } else {
                plan.fs_rules.push(LandlockRule {
                    path: "/".into(),
                    access: access::READ_DIR,
                    derived: true,
                    is_dir: Some(true),
                });
            }
            let writable = plan.handled_fs & !access::IOCTL_DEV;
            for layer in &profile.layers {
                let Some(l) = &layer.raw.landlock else {
                    continue;
                };
                for (list, rights) in [(&l.read, access::READ), (&l.write, writable)] {
                    for item in list.iter().flatten() {
                        let path = landlock_path(item, host, layer)?;
                        plan.fs_rules.push(LandlockRule {
                            path,
                            access: rights,
                            derived: false,
                            is_dir: None,
                        });
                    }
                }
            }
        }
    }

    if wants_net {
        if abi < 4 {
            let msg =
                landlock_unavailable("TCP port rules", "Landlock ABI 4 (Linux 6.7+)", support);
            if net == Enforce::Required {
                return Err(refuse(net_at, msg, "net"));
            }
            plan.not_enforced.push(msg);
        } else {
            if let Some(ports) = &bind_ports {
                plan.handled_net |= access::NET_BIND_TCP;
                for p in ports.get() {
                    plan.net_rules.push((*p, access::NET_BIND_TCP));
                }
            }
            if let Some(ports) = &connect_ports {
                plan.handled_net |= access::NET_CONNECT_TCP;
                for p in ports.get() {
                    plan.net_rules.push((*p, access::NET_CONNECT_TCP));
                }
            }
        }
    }

    if scope != Enforce::Off {
        if abi < 6 {
            let msg = landlock_unavailable(
                "scoping of abstract unix sockets and signals",
                "Landlock ABI 6 (Linux 6.12+)",
                support,
            );
            if scope == Enforce::Required {
                return Err(refuse(scope_at, msg, "scope"));
            }
            plan.not_enforced.push(msg);
        } else {
            plan.scoped = access::SCOPE_ABSTRACT_UNIX_SOCKET | access::SCOPE_SIGNAL;
        }
    }
    if plan.active() {
        plan.caveats = caveats(&plan, host.landlock_errata());
    }
    Ok(plan)
}

/// Whether Landlock will keep the host's abstract unix sockets out of the
/// sandbox: `[landlock] scope` not off, on a kernel with ABI 6 (a
/// required scope on an older kernel is refused by [`plan_landlock`]).
pub fn scopes_abstract_sockets(profile: &Profile, host: &Host) -> bool {
    let (scope, _) = enforce_of(profile, |p| ll(p)?.scope.as_ref(), Enforce::BestEffort);
    scope != Enforce::Off && host.landlock_abi() >= 6
}

fn landlock_path(
    item: &Spanned<String>,
    host: &Host,
    layer: &crate::profile::Layer,
) -> Result<PathBuf, ProfileError> {
    let expanded = vars::expand(item.get_ref(), host).map_err(|err| {
        ProfileError::from(
            Diagnostic::new(err.message())
                .at(&layer.file, item.span())
                .help(err.help()),
        )
    })?;
    let path = PathBuf::from(&expanded);
    if !path.is_absolute()
        || path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(Diagnostic::new(format!(
            "key `landlock`: {expanded:?} must be an absolute path (inside the sandbox) without `..`"
        ))
        .at(&layer.file, item.span())
        .into());
    }
    Ok(path)
}

/// Rules that let the payload use what the mounts show it, and nothing else:
/// list any directory; read and execute read-only binds; read and write
/// writable binds and tmpfs; devices only in /dev.
fn derive_rules(mounts: &[PlannedMount], handled: u64, host: &Host) -> Vec<LandlockRule> {
    let writable = handled & !access::IOCTL_DEV;
    let mut rules = vec![LandlockRule {
        path: "/".into(),
        access: access::READ_DIR,
        derived: true,
        is_dir: Some(true),
    }];
    let mut add = |path: &Path, bits: u64, is_dir: Option<bool>| {
        rules.push(LandlockRule {
            path: path.to_path_buf(),
            access: bits & handled,
            derived: true,
            is_dir,
        })
    };
    for m in mounts {
        match &m.op {
            MountOp::Bind {
                src,
                dst,
                readonly,
                devices,
            } => {
                let is_dir = std::fs::metadata(host.fs_path(src))
                    .ok()
                    .map(|m| m.is_dir());
                // A read-only bind with device nodes is a granted device
                // (`[devices]`): its nodes are read, written and ioctl'd
                // (the read-only mount stops new entries, not that).
                let bits = if *readonly && *devices {
                    access::READ | access::WRITE_FILE | access::IOCTL_DEV
                } else if *readonly {
                    access::READ
                } else if *devices {
                    handled
                } else {
                    writable
                };
                add(dst, bits, is_dir);
            }
            MountOp::Tmpfs { dst, .. } => add(dst, writable, Some(true)),
            MountOp::Volume { dst, readonly, .. } => add(
                dst,
                if *readonly { access::READ } else { writable },
                Some(true),
            ),
            MountOp::Proc { dst } => add(
                dst,
                access::READ_FILE | access::READ_DIR | access::WRITE_FILE,
                Some(true),
            ),
            MountOp::Dev { dst } => {
                add(
                    dst,
                    access::READ_FILE
                        | access::READ_DIR
                        | access::WRITE_FILE
                        | access::TRUNCATE
                        | access::IOCTL_DEV,
                    Some(true),
                );
                add(&dst.join("shm"), writable, Some(true));
            }
            MountOp::File { dst, .. } => add(dst, access::READ_FILE, Some(false)),
            MountOp::Dir { .. } | MountOp::Symlink { .. } => {}
        }
    }
    rules
}

pub fn plan_rlimits(profile: &Profile) -> Vec<RlimitPlan> {
    let mut out = Vec::new();
    for (name, _) in RLIMITS {
        let value = profile.last(|p| {
            let r = p.rlimits.as_ref()?;
            match *name {
                "nofile" => r.nofile.as_ref(),
                "nproc" => r.nproc.as_ref(),
                "as" => r.address_space.as_ref(),
                "core" => r.core.as_ref(),
                "cpu" => r.cpu.as_ref(),
                "fsize" => r.fsize.as_ref(),
                "stack" => r.stack.as_ref(),
                _ => r.memlock.as_ref(),
            }
        });
        if let Some(v) = value {
            out.push(RlimitPlan {
                name: name.to_string(),
                value: v.get().0,
            });
        }
    }
    out
}

/// Decides whether the payload gets a new session.
pub fn plan_terminal(
    profile: &Profile,
    host: &Host,
    seccomp: &SeccompPlan,
) -> Result<bool, ProfileError> {
    let at = profile.last(|p| p.terminal.as_ref());
    let filtered = seccomp.blocks_tty_injection();
    match at.as_ref().map_or(Terminal::Auto, |a| *a.get()) {
        Terminal::None => Ok(true),
        Terminal::Auto => Ok(!(host.stdin_is_tty() && filtered)),
        Terminal::Inherit if filtered => Ok(false),
        Terminal::Inherit => Err(at
            .expect("explicit")
            .diag("`terminal = \"inherit\"` without the seccomp filter that blocks TIOCSTI and TIOCLINUX would let the program type commands into your terminal")
            .help("keep the default seccomp filter (and its @tty-inject group), or use `terminal = \"none\"`")
            .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::landlock::all_errata;
    use crate::profile::{ProfileRef, SearchPath, load};

    /// The Landlock plan of a profile on a kernel that answers the probes
    /// with `support` and `fixed_errata`.
    fn landlock_plan(
        profile: &str,
        support: Support,
        fixed_errata: u32,
    ) -> Result<LandlockPlan, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), format!("version = 1\n{profile}")).unwrap();
        let path = dir.path().display().to_string();
        let host = Host::fixed(
            1000,
            1000,
            &[("HOME", "/home/u"), ("HUTCH_PROFILE_PATH", &path)],
            "/home/u",
        )
        .with_landlock(support, fixed_errata);
        let search = SearchPath::standard(&host);
        let profile = load(&ProfileRef::Name("p".into()), &search).map_err(|e| e.to_string())?;
        plan_landlock(&profile, &host, &[]).map_err(|e| e.to_string())
    }

    #[test]
    fn missing_landlock_says_whether_it_is_not_built_or_not_enabled() {
        let best_effort = "[landlock]\nfs = \"best-effort\"\n";
        let plan = landlock_plan(best_effort, Support::NotBuilt, 0).unwrap();
        assert!(!plan.active());
        assert!(
            plan.not_enforced[0].contains("CONFIG_SECURITY_LANDLOCK"),
            "{:?}",
            plan.not_enforced
        );
        let plan = landlock_plan(best_effort, Support::Disabled, 0).unwrap();
        assert!(
            plan.not_enforced[0].contains("add `landlock` to the `lsm=` boot parameter"),
            "{:?}",
            plan.not_enforced
        );
        // Required (the default): refused, with the same reason.
        let err = landlock_plan("", Support::Disabled, 0).unwrap_err();
        assert!(err.contains("not enabled at boot"), "{err}");
        let err = landlock_plan("", Support::Abi(3), all_errata());
        assert!(err.is_ok(), "fs rules need ABI 1: {err:?}");
    }

    #[test]
    fn signal_scoping_stays_on_without_the_erratum_fix_and_says_so() {
        let erratum = |n: u32| format!("Landlock erratum {n}:");
        let unfixed_2 = all_errata() & !(1 << 1);
        let plan = landlock_plan("", Support::Abi(6), unfixed_2).unwrap();
        assert_ne!(plan.scoped & access::SCOPE_SIGNAL, 0, "signals stay scoped");
        assert_eq!(plan.caveats.len(), 1, "{:?}", plan.caveats);
        assert!(plan.caveats[0].contains(&erratum(2)), "{:?}", plan.caveats);
        // Fixed: nothing to say.
        let plan = landlock_plan("", Support::Abi(6), all_errata()).unwrap();
        assert_eq!(plan.caveats, Vec::<String>::new());
        // No signal scoping planned (scope off, or ABI 5): erratum 2 does
        // not matter; the filesystem's erratum 3 still does.
        let plan = landlock_plan("[landlock]\nscope = \"off\"\n", Support::Abi(6), 0).unwrap();
        assert_eq!(plan.caveats.len(), 1, "{:?}", plan.caveats);
        assert!(plan.caveats[0].contains(&erratum(3)), "{:?}", plan.caveats);
        let plan = landlock_plan("[landlock]\ntcp_connect = [443]\n", Support::Abi(5), 0).unwrap();
        let numbers: Vec<bool> = [1, 2, 3]
            .iter()
            .map(|n| plan.caveats.iter().any(|c| c.contains(&erratum(*n))))
            .collect();
        assert_eq!(numbers, [true, false, true], "{:?}", plan.caveats);
    }
}
