//! Planning confinement: the seccomp rules, Landlock rules and resource
//! limits, with what this kernel can and cannot enforce (the terminal
//! policy is `plan::terminal`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::mounts::{MountOp, PlannedMount};
use super::seccomp::{self, Action, Arch, Check, Rule};
use crate::diag::Diagnostic;
use crate::host::Host;
use crate::landlock::{self, Feature, Support};
use crate::profile::schema::{Enforce, SeccompAction};
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
    /// Calls the filter denies that io_uring, which the profile allows
    /// (`allow = ["@io_uring"]`), can still perform: said by `--explain`
    /// and `-v`. (Absent from the records of sandboxes started by an older
    /// hutch.)
    #[serde(default)]
    pub through_io_uring: Vec<String>,
    /// `hutch learn`: the filter loaded is the rules' learning filter
    /// (`seccomp::learning_rules`), whose listener the launcher serves.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub learn: bool,
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
            through_io_uring: Vec::new(),
            learn: false,
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
    if let Some(because) = edit_rules(profile, &mut rules, deny_action)? {
        deny_io_uring_too(&mut rules, &because);
    }
    if action != SeccompAction::Errno {
        for r in &mut rules {
            r.action = deny_action;
        }
    }
    let log_only = action == SeccompAction::Log;
    Ok(SeccompPlan {
        enforce,
        active: arch.is_some(),
        arch,
        through_io_uring: if log_only {
            Vec::new()
        } else {
            through_io_uring(&rules)
        },
        rules,
        log_only,
        learn: false,
    })
}

/// Applies the layers' `allow` and `deny`, in order: a later layer's allow
/// undoes an earlier deny and the other way round. Returns the `deny`
/// entry that makes io_uring denied too, if any: a call io_uring can
/// perform, denied in a layer that does not allow `@io_uring` (allowing
/// `io_uring_setup` is what counts) and not followed by one that does.
fn edit_rules(
    profile: &Profile,
    rules: &mut Vec<Rule>,
    deny_action: Action,
) -> Result<Option<String>, ProfileError> {
    let mut io_uring_denied_by = None;
    for layer in &profile.layers {
        let Some(s) = &layer.raw.seccomp else {
            continue;
        };
        let mut opts_in = false;
        for item in s.allow.iter().flatten() {
            let names = names_of(item, &layer.file)?;
            opts_in |= names.iter().any(|n| n == "io_uring_setup");
            rules.retain(|r| !names.contains(&r.syscall));
        }
        if opts_in {
            io_uring_denied_by = None;
        }
        for item in s.deny.iter().flatten() {
            for name in names_of(item, &layer.file)? {
                if !opts_in && io_uring_denied_by.is_none() && seccomp::io_uring_performs(&name) {
                    io_uring_denied_by = Some(format!("deny = {:?}", item.get_ref()));
                }
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
    Ok(io_uring_denied_by)
}

/// Denies io_uring's calls that no rule covers yet, as the default filter's
/// `@io_uring` does (ENOSYS: programs fall back to plain calls, which the
/// filter then sees), because the entry `because` denies work io_uring
/// could do instead.
fn deny_io_uring_too(rules: &mut Vec<Rule>, because: &str) {
    for call in seccomp::IO_URING_CALLS {
        if rules.iter().any(|r| r.syscall == *call) {
            continue;
        }
        rules.push(Rule {
            syscall: call.to_string(),
            check: Check::Always,
            action: Action::Errno(seccomp::ENOSYS),
            reason: format!("@io_uring for {because}"),
        });
    }
}

/// The calls `rules` deny outright that io_uring can perform, when
/// `io_uring_setup` is allowed: those rules do not bind io_uring.
fn through_io_uring(rules: &[Rule]) -> Vec<String> {
    if rules.iter().any(|r| r.syscall == "io_uring_setup") {
        return Vec::new();
    }
    rules
        .iter()
        .filter(|r| r.check == Check::Always && seccomp::io_uring_performs(&r.syscall))
        .map(|r| r.syscall.clone())
        .collect()
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

/// Whether a mount after `mounts[i]`, at `path` or above it, covers what
/// `mounts[i]` shows there (a directory or a symlink made later does not).
fn covered_later(mounts: &[PlannedMount], i: usize, path: &Path) -> bool {
    mounts[i + 1..].iter().any(|later| {
        !matches!(later.op, MountOp::Dir { .. } | MountOp::Symlink { .. })
            && path.starts_with(later.op.dst())
    })
}

/// Rules that let the payload use what the mounts show it, and nothing else:
/// list any directory; read and execute read-only binds; read and write
/// writable binds and tmpfs; devices only in /dev. A mount that a later one
/// covers gets no rule: the payload sees the later one there, and a rule
/// would give its path the hidden mount's rights (those of a tmpfs below a
/// read-only bind, say).
fn derive_rules(mounts: &[PlannedMount], handled: u64, host: &Host) -> Vec<LandlockRule> {
    let writable = handled & !access::IOCTL_DEV;
    let mut rules = vec![LandlockRule {
        path: "/".into(),
        access: access::READ_DIR,
        derived: true,
        is_dir: Some(true),
    }];
    for (i, m) in mounts.iter().enumerate() {
        let mut add = |path: &Path, bits: u64, is_dir: Option<bool>| {
            if !covered_later(mounts, i, path) {
                rules.push(LandlockRule {
                    path: path.to_path_buf(),
                    access: bits & handled,
                    derived: true,
                    is_dir,
                });
            }
        };
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

    /// The seccomp plan of `p.toml` among `files` (name, body after
    /// `version = 1`).
    fn seccomp_plan(files: &[(&str, &str)]) -> SeccompPlan {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            std::fs::write(
                dir.path().join(format!("{name}.toml")),
                format!("version = 1\n{body}"),
            )
            .unwrap();
        }
        let path = dir.path().display().to_string();
        let host = Host::fixed(1000, 1000, &[("HUTCH_PROFILE_PATH", &path)], "/");
        let profile = load(&ProfileRef::Name("p".into()), &SearchPath::standard(&host)).unwrap();
        plan_seccomp(&profile).unwrap()
    }

    /// The rules for io_uring's calls, as (call, action, reason).
    fn io_uring_rules(plan: &SeccompPlan) -> Vec<(String, Action, String)> {
        plan.rules
            .iter()
            .filter(|r| r.syscall.starts_with("io_uring"))
            .map(|r| (r.syscall.clone(), r.action, r.reason.clone()))
            .collect()
    }

    fn io_uring_denied(action: Action, reason: &str) -> Vec<(String, Action, String)> {
        seccomp::IO_URING_CALLS
            .iter()
            .map(|c| (c.to_string(), action, reason.to_string()))
            .collect()
    }

    #[test]
    fn io_uring_is_denied_by_default_and_with_any_call_it_can_perform() {
        let enosys = Action::Errno(seccomp::ENOSYS);
        let plan = seccomp_plan(&[("p", "")]);
        assert_eq!(io_uring_rules(&plan), io_uring_denied(enosys, "@io_uring"));
        let socket = "[seccomp]\ndefault = false\ndeny = [\"ptrace\", \"socket\"]\n";
        let plan = seccomp_plan(&[("p", socket)]);
        let implied = io_uring_denied(enosys, "@io_uring for deny = \"socket\"");
        assert_eq!(io_uring_rules(&plan), implied);
        assert!(plan.through_io_uring.is_empty());
        // A call io_uring cannot make denies nothing more.
        let plan = seccomp_plan(&[("p", "[seccomp]\ndefault = false\ndeny = [\"chroot\"]\n")]);
        assert_eq!(io_uring_rules(&plan), []);
        // Kill, like the calls it stands in for.
        let kill = format!("{socket}action = \"kill\"\n");
        let plan = seccomp_plan(&[("p", &kill)]);
        assert!(io_uring_rules(&plan).iter().all(|r| r.1 == Action::Kill));
        // An explicit deny of io_uring keeps its own errno.
        let own =
            "[seccomp]\ndefault = false\nerrno = \"EACCES\"\ndeny = [\"@io_uring\", \"socket\"]\n";
        let plan = seccomp_plan(&[("p", own)]);
        assert_eq!(
            io_uring_rules(&plan),
            io_uring_denied(Action::Errno(13), "deny = \"@io_uring\"")
        );
    }

    #[test]
    fn only_an_allow_of_io_uring_at_or_after_the_deny_lets_it_through() {
        let allow = "[seccomp]\nallow = [\"@io_uring\"]\n";
        let deny = "[seccomp]\ndeny = [\"connect\", \"openat2\"]\n";
        let both = "[seccomp]\nallow = [\"@io_uring\"]\ndeny = [\"connect\", \"openat2\"]\n";
        let plan = seccomp_plan(&[("p", both)]);
        assert_eq!(io_uring_rules(&plan), []);
        assert_eq!(plan.through_io_uring, ["connect", "openat2"]);
        // Allowed in the base, denied after: io_uring is denied again.
        let plan = seccomp_plan(&[
            ("base", allow),
            ("p", &format!("extends = [\"base\"]\n{deny}")),
        ]);
        assert_eq!(
            io_uring_rules(&plan),
            io_uring_denied(
                Action::Errno(seccomp::ENOSYS),
                "@io_uring for deny = \"connect\""
            )
        );
        assert!(plan.through_io_uring.is_empty());
        // Denied in the base, allowed after: the later word stands, and is said.
        let plan = seccomp_plan(&[
            ("base", deny),
            ("p", &format!("extends = [\"base\"]\n{allow}")),
        ]);
        assert_eq!(io_uring_rules(&plan), []);
        assert_eq!(plan.through_io_uring, ["connect", "openat2"]);
        // In log mode nothing is blocked, so nothing is said either.
        let log = format!("{both}action = \"log\"\n");
        assert!(seccomp_plan(&[("p", &log)]).through_io_uring.is_empty());
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
