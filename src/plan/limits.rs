//! `[limits]` planned: the profile's values checked and recorded with
//! where they were set, as a [`LimitsPlan`], and the host's cgroup layout
//! (probed only for profiles with `[limits]`, see [`crate::host::cgroups`])
//! deciding which backends can apply them, tried in this order:
//!
//! 1. the **systemd manager over D-Bus**: a transient scope with the limits
//!    and `Delegate=yes`, from the user's own manager (the system manager
//!    for root). The controllers it really got are checked: systemd
//!    silently ignores limits for controllers it was not delegated.
//! 2. a **cgroup v2 directory**: for an ordinary user, the parent of
//!    hutch's own cgroup when it is delegated to them; for root, the top of
//!    the hierarchy. The sandbox is cloned straight into the new cgroup
//!    (`CLONE_INTO_CGROUP`).
//! 3. the **cgroup v1 hierarchies** (root only), where the host still uses them.
//!
//! Also how the limits read in `--explain`, `-v` and `hutch doctor`. The
//! launch applies them with the cgroup helper (`crate::helpers::cgroup`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::diag::{Diagnostic, sanitize};
use crate::host::Host;
use crate::host::cgroups::{self, CgroupHost};
use crate::profile::schema::{Enforce, Limits};
use crate::profile::{At, Profile, ProfileError};

/// One limit a profile can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Key {
    Memory,
    Swap,
    Cpu,
    CpuWeight,
    Pids,
    IoWeight,
}

impl Key {
    pub const ALL: [Key; 6] = [
        Key::Memory,
        Key::Swap,
        Key::Cpu,
        Key::CpuWeight,
        Key::Pids,
        Key::IoWeight,
    ];

    /// The key as written in `[limits]`.
    pub fn name(self) -> &'static str {
        match self {
            Key::Memory => "memory",
            Key::Swap => "swap",
            Key::Cpu => "cpu",
            Key::CpuWeight => "cpu_weight",
            Key::Pids => "pids",
            Key::IoWeight => "io_weight",
        }
    }

    /// The cgroup v2 controller that enforces it.
    pub fn controller(self) -> &'static str {
        match self {
            Key::Memory | Key::Swap => "memory",
            Key::Cpu | Key::CpuWeight => "cpu",
            Key::Pids => "pids",
            Key::IoWeight => "io",
        }
    }
}

/// The limits a profile asks for, and how they can be applied here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitsPlan {
    /// `Required` or `BestEffort` (`off` plans no limits at all).
    pub enforce: Enforce,
    /// memory.max in bytes.
    pub memory: Option<u64>,
    /// memory.swap.max in bytes.
    pub swap: Option<u64>,
    /// CPU time as a number of CPUs (0.5: half of one CPU).
    pub cpu: Option<f64>,
    pub cpu_weight: Option<u64>,
    /// pids.max.
    pub pids: Option<u64>,
    pub io_weight: Option<u64>,
    /// Where each limit was set, as `file:line:col`.
    pub from: BTreeMap<Key, String>,
    /// Names the cgroup: `hutch-NAME-PID` (`app-hutch-NAME-PID.scope` for systemd).
    pub name: String,
    /// The backends that can apply the limits here, in the order they are
    /// tried (best first). Empty only for best-effort limits.
    pub backends: Vec<BackendPlan>,
    /// The backends that cannot, and why.
    pub unusable: Vec<String>,
}

impl LimitsPlan {
    /// The limits set, in a fixed order.
    pub fn keys(&self) -> Vec<Key> {
        Key::ALL
            .into_iter()
            .filter(|k| match k {
                Key::Memory => self.memory.is_some(),
                Key::Swap => self.swap.is_some(),
                Key::Cpu => self.cpu.is_some(),
                Key::CpuWeight => self.cpu_weight.is_some(),
                Key::Pids => self.pids.is_some(),
                Key::IoWeight => self.io_weight.is_some(),
            })
            .collect()
    }

    /// The controllers the limits need, each once.
    pub fn controllers(&self, skip: &[Key]) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for k in self.keys() {
            if !skip.contains(&k) && !out.contains(&k.controller()) {
                out.push(k.controller());
            }
        }
        out
    }

    /// `memory 512 MiB`, `cpu 0.5 CPUs`, ...
    pub fn describe(&self, key: Key) -> String {
        match key {
            Key::Memory => format!("memory {}", size(self.memory.unwrap_or(0))),
            Key::Swap => format!("swap {}", size(self.swap.unwrap_or(0))),
            Key::Cpu => format!("cpu {} CPUs", self.cpu.unwrap_or(0.0)),
            Key::CpuWeight => format!("cpu_weight {}", self.cpu_weight.unwrap_or(0)),
            Key::Pids => format!("pids {}", self.pids.unwrap_or(0)),
            Key::IoWeight => format!("io_weight {}", self.io_weight.unwrap_or(0)),
        }
    }

    /// CPU quota per 100 ms period, in microseconds (cpu.max's first field).
    pub fn cpu_quota_per_period(&self) -> Option<u64> {
        self.cpu
            .map(|c| ((c * CPU_PERIOD_US as f64).round() as u64).max(1000))
    }
}

/// The CPU period hutch uses (the kernel's and systemd's default).
pub const CPU_PERIOD_US: u64 = 100_000;

/// A size in bytes for people: `512 MiB`, `1.5 GiB`, `4096 bytes`.
pub fn size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (unit, n) in UNITS {
        if bytes >= n {
            let v = bytes as f64 / n as f64;
            return if bytes.is_multiple_of(n) {
                format!("{} {unit}", bytes / n)
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

/// A way to apply limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Backend {
    /// A transient scope from a systemd manager over D-Bus.
    Systemd {
        address: String,
        /// The system manager (root); otherwise the user's manager.
        system: bool,
        /// Where cgroup v2 is mounted, to check the scope's controllers.
        mount: PathBuf,
    },
    /// A new cgroup v2 directory under `parent`.
    V2 {
        mount: PathBuf,
        parent: String,
        /// Delegated to an ordinary user (not root writing anywhere).
        delegated: bool,
    },
    /// New cgroups in the v1 hierarchies: (controller, parent directory).
    V1 { dirs: Vec<(String, PathBuf)> },
}

impl Backend {
    /// What `--explain` and errors call it.
    pub fn title(&self) -> String {
        match self {
            Backend::Systemd { system: false, .. } => "systemd user manager".into(),
            Backend::Systemd { system: true, .. } => "systemd system manager".into(),
            Backend::V2 {
                delegated: true, ..
            } => "delegated cgroup v2 subtree".into(),
            Backend::V2 { .. } => "cgroup v2 (as root)".into(),
            Backend::V1 { .. } => "cgroup v1 (as root)".into(),
        }
    }

    /// Where the cgroup goes.
    pub fn location(&self, name: &str) -> String {
        match self {
            Backend::Systemd { address, .. } => format!(
                "transient scope {} with Delegate=yes, via {address}",
                unit_name(name, None)
            ),
            Backend::V2 { mount, parent, .. } => {
                format!("{}/{name}", cgroups::cgroup_path(mount, parent).display())
            }
            Backend::V1 { dirs } => dirs
                .iter()
                .map(|(c, d)| format!("{c}: {}/{name}", d.display()))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// A backend that can apply (some of) the limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendPlan {
    pub backend: Backend,
    /// Limits it cannot apply, and why (only for best-effort limits).
    pub missing: Vec<(Key, String)>,
}

impl BackendPlan {
    pub fn missing_keys(&self) -> Vec<Key> {
        self.missing.iter().map(|(k, _)| *k).collect()
    }
}

fn origin<T>(a: &At<'_, T>) -> String {
    let (line, col) = a.file.line_col(a.value.span().start);
    format!("{}:{line}:{col}", a.file.name)
}

fn last<'a, T>(
    profile: &'a Profile,
    f: impl Fn(&Limits) -> Option<&Spanned<T>>,
) -> Option<At<'a, T>> {
    profile.last(|p| f(p.limits.as_ref()?))
}

/// How to turn the requirement down, for every refusal.
pub const BEST_EFFORT_HELP: &str = "or set `[limits] enforce = \"best-effort\"` (e.g. in a .local.toml override) to run with what can be applied";

/// Where the limits were written, for `--explain` and errors.
#[derive(Default)]
struct Sites {
    from: BTreeMap<Key, String>,
    first: Option<Diagnostic>,
}

impl Sites {
    fn add<T>(&mut self, key: Key, a: &At<'_, T>) {
        self.from.insert(key, origin(a));
        if self.first.is_none() {
            self.first = Some(Diagnostic::new("").at(a.file, a.value.span()));
        }
    }
}

/// Plans `[limits]`: validates the values and, when there are any, probes
/// the host for the backends that can apply them. `init` says whether
/// hutch's init will be PID 1 (it counts against `pids`).
pub fn plan(
    profile: &Profile,
    host: &Host,
    init: bool,
) -> Result<Option<LimitsPlan>, ProfileError> {
    let enforce_at = last(profile, |l| l.enforce.as_ref());
    let enforce = enforce_at.as_ref().map_or(Enforce::Required, |e| *e.get());
    if enforce == Enforce::Off {
        return Ok(None);
    }
    let mut sites = Sites::default();

    let mut memory = None;
    if let Some(a) = last(profile, |l| l.memory.as_ref())
        && let Some(v) = a.get().0
    {
        if v < 1 << 20 {
            return Err(a
                .diag(format!(
                    "key `limits.memory`: {v} bytes is too little for any program"
                ))
                .help("give a size of at least \"1M\", e.g. `memory = \"512M\"`, or \"unlimited\"")
                .into());
        }
        sites.add(Key::Memory, &a);
        memory = Some(v);
    }
    let mut swap = None;
    if let Some(a) = last(profile, |l| l.swap.as_ref())
        && let Some(v) = a.get().0
    {
        sites.add(Key::Swap, &a);
        swap = Some(v);
    }
    let mut cpu = None;
    if let Some(a) = last(profile, |l| l.cpu.as_ref()) {
        let v = a.get().0;
        if !(v.is_finite() && (0.01..=4096.0).contains(&v)) {
            return Err(a
                .diag(format!(
                    "key `limits.cpu`: {v} is not a number of CPUs from 0.01 to 4096"
                ))
                .help("write a fraction of one CPU: `cpu = 0.5` is half a CPU, `cpu = 2` two CPUs")
                .into());
        }
        sites.add(Key::Cpu, &a);
        cpu = Some(v);
    }
    let mut weight = |key: Key, a: Option<At<'_, i64>>| -> Result<Option<u64>, ProfileError> {
        let Some(a) = a else { return Ok(None) };
        let v = *a.get();
        if !(1..=10000).contains(&v) {
            return Err(a
                .diag(format!(
                    "key `limits.{}`: {v} is not a weight from 1 to 10000",
                    key.name()
                ))
                .help("100 is the default weight; 200 gets twice the share of a sibling with 100")
                .into());
        }
        sites.add(key, &a);
        Ok(Some(v as u64))
    };
    let cpu_weight = weight(Key::CpuWeight, last(profile, |l| l.cpu_weight.as_ref()))?;
    let io_weight = weight(Key::IoWeight, last(profile, |l| l.io_weight.as_ref()))?;
    let mut pids = None;
    if let Some(a) = last(profile, |l| l.pids.as_ref())
        && let Some(v) = a.get().0
    {
        if v == 0 || (init && v < 2) {
            return Err(a
                .diag(format!(
                    "key `limits.pids`: {v} leaves no room for the payload{}",
                    if init {
                        " (hutch's init is PID 1 and counts too)"
                    } else {
                        ""
                    }
                ))
                .help("allow at least 2 processes, e.g. `pids = 64`, or \"unlimited\"")
                .into());
        }
        sites.add(Key::Pids, &a);
        pids = Some(v);
    }

    let mut plan = LimitsPlan {
        enforce,
        memory,
        swap,
        cpu,
        cpu_weight,
        pids,
        io_weight,
        from: sites.from,
        name: cgroup_name(&profile.name),
        backends: Vec::new(),
        unusable: Vec::new(),
    };
    if plan.keys().is_empty() {
        return Ok(None);
    }
    let (backends, unusable) = select(host.cgroups(), &plan);
    plan.backends = backends;
    plan.unusable = unusable;
    if enforce == Enforce::Required && plan.backends.is_empty() {
        let d = match (&enforce_at, sites.first) {
            (Some(e), _) => e.diag(""),
            (None, Some(d)) => d,
            (None, None) => Diagnostic::new(""),
        };
        return Err(refusal(d, &plan).into());
    }
    Ok(Some(plan))
}

/// The error for required limits that no backend can apply.
fn refusal(d: Diagnostic, plan: &LimitsPlan) -> Diagnostic {
    let keys: Vec<&str> = plan.keys().iter().map(|k| k.name()).collect();
    let mut help = String::from("no cgroup backend can apply them here:");
    for u in &plan.unusable {
        help.push_str("\n    - ");
        help.push_str(u);
    }
    help.push_str("\n  ");
    help.push_str(BEST_EFFORT_HELP);
    Diagnostic {
        message: format!(
            "[limits] cannot be enforced on this host ({} required)",
            keys.join(", ")
        ),
        help: Some(help),
        ..d
    }
}

/// A name for the cgroup from the profile's: `hutch-NAME`, with anything
/// that is not a letter, digit, `_` or `.` as `_`.
pub fn cgroup_name(profile: &str) -> String {
    let base = profile.rsplit('/').next().unwrap_or(profile);
    let base = base.strip_suffix(".toml").unwrap_or(base);
    let clean: String = base
        .chars()
        .take(48)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "hutch-{}",
        if clean.is_empty() { "sandbox" } else { &clean }
    )
}

/// The systemd scope's name: `app-hutch-NAME-PID.scope`, after systemd's
/// `app-<launcher>-<id>-<random>.scope` convention for applications.
pub fn unit_name(base: &str, pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("app-{base}-{p}.scope"),
        None => format!("app-{base}-PID.scope"),
    }
}

/// How to delegate controllers to users with systemd.
fn delegate_help(missing: &[&str]) -> String {
    let mut all = vec!["cpu", "io", "memory", "pids"];
    for m in missing {
        if !all.contains(m) {
            all.push(m);
        }
    }
    format!(
        "to delegate them, as root create /etc/systemd/system/user@.service.d/delegate.conf with `[Service]` and `Delegate={}`, run `systemctl daemon-reload`, then log in again",
        all.join(" ")
    )
}

/// Which backends can apply `plan` on `host`, best first, and why the
/// others cannot.
pub fn select(host: &CgroupHost, plan: &LimitsPlan) -> (Vec<BackendPlan>, Vec<String>) {
    let mut selection = Selection {
        plan,
        keys: plan.keys(),
        candidates: Vec::new(),
        unusable: Vec::new(),
    };
    selection.systemd(host);
    selection.v2(host);
    selection.v1(host);
    // Full coverage first, then the fewest limits left out; otherwise in order.
    let mut candidates = selection.candidates;
    candidates.sort_by_key(|c| c.missing.len());
    (candidates, selection.unusable)
}

/// The backends considered so far.
struct Selection<'a> {
    plan: &'a LimitsPlan,
    keys: Vec<Key>,
    candidates: Vec<BackendPlan>,
    unusable: Vec<String>,
}

impl Selection<'_> {
    /// Takes `backend` as a candidate unless it misses every limit, or
    /// some of required ones.
    fn consider(&mut self, backend: Backend, missing: Vec<(Key, String)>) {
        if missing.len() == self.keys.len() {
            self.unusable
                .push(format!("{}: {}", backend.title(), grouped(&missing)));
        } else if self.plan.enforce == Enforce::Required && !missing.is_empty() {
            let reasons: Vec<String> = missing
                .iter()
                .map(|(k, r)| format!("{}: {r}", k.name()))
                .collect();
            self.unusable.push(format!(
                "{}: cannot apply {}",
                backend.title(),
                reasons.join("; ")
            ));
        } else {
            self.candidates.push(BackendPlan { backend, missing });
        }
    }

    /// The limits whose controller is not among `available`, each with
    /// `why`.
    fn missing_from(
        &self,
        available: &[String],
        why: &dyn Fn(&str) -> String,
    ) -> Vec<(Key, String)> {
        self.keys
            .iter()
            .filter(|k| !available.iter().any(|c| c == k.controller()))
            .map(|k| (*k, why(k.controller())))
            .collect()
    }

    /// 1. A transient scope from the systemd manager (the user's own, the
    ///    system's for root), on a pure cgroup v2 host.
    fn systemd(&mut self, host: &CgroupHost) {
        let manager = if host.uid == 0 {
            "systemd system manager"
        } else {
            "systemd user manager"
        };
        let (bus, v2) = match (&host.bus, &host.v2) {
            (None, _) => {
                let why = host.bus_missing.as_deref().unwrap_or("no D-Bus socket");
                return self.unusable.push(format!("{manager}: {why}"));
            }
            (Some(_), None) => {
                let why = host.v2_missing.as_deref().unwrap_or("no cgroup v2");
                return self.unusable.push(format!("{manager}: {why}"));
            }
            (Some(_), Some(v2)) if !v2.unified => {
                return self.unusable.push(format!(
                    "{manager}: this host mounts cgroup v1 controllers (a hybrid layout); systemd hands out controllers only on a pure cgroup v2 hierarchy (boot with systemd.unified_cgroup_hierarchy=1)"
                ));
            }
            (Some(bus), Some(v2)) => (bus, v2),
        };
        let backend = Backend::Systemd {
            address: bus.address.clone(),
            system: bus.system,
            mount: v2.mount.clone(),
        };
        if bus.system {
            let have = v2.top.controllers.join(" ");
            let missing = self.missing_from(&v2.top.controllers, &|c| {
                format!(
                    "controller `{c}` is not enabled in this cgroup v2 hierarchy (it has: {have})"
                )
            });
            return self.consider(backend, missing);
        }
        let Some(um) = &v2.user_manager else {
            return self.unusable.push(format!(
                "{manager}: there is no user@{uid}.service cgroup, so the session bus is not served by systemd's user manager",
                uid = host.uid
            ));
        };
        let have = um.controllers.join(" ");
        let lacking: Vec<&str> = self
            .plan
            .controllers(&[])
            .into_iter()
            .filter(|c| !um.controllers.iter().any(|u| u == c))
            .collect();
        let help = delegate_help(&lacking);
        let missing = self.missing_from(&um.controllers, &|c| {
            format!(
                "controller `{c}` is not delegated to user@{uid}.service (it gets: {have}); {help}",
                uid = host.uid,
                have = if have.is_empty() { "none" } else { &have }
            )
        });
        self.consider(backend, missing);
    }

    /// 2. A cgroup v2 directory: under the parent of hutch's own cgroup
    ///    when it is delegated to the user, anywhere for root.
    fn v2(&mut self, host: &CgroupHost) {
        let Some(v2) = &host.v2 else {
            let why = host.v2_missing.as_deref().unwrap_or("not mounted");
            return self.unusable.push(format!("cgroup v2: {why}"));
        };
        let target = if host.uid == 0 {
            Ok((&v2.top, false))
        } else {
            match &v2.parent {
                None => Err(format!(
                    "hutch's cgroup {} is the top of the hierarchy it can see",
                    v2.own
                )),
                Some(p) if !p.writable => Err(format!(
                    "{} (the parent of hutch's cgroup {}) is not delegated to you",
                    p.path, v2.own
                )),
                Some(p) if p.path.ends_with(".slice") => Err(format!(
                    "{} (the parent of hutch's cgroup) is a systemd slice: systemd manages its controllers and could turn them off under hutch",
                    p.path
                )),
                Some(p) => Ok((p, true)),
            }
        };
        let (dir, delegated) = match target {
            Err(why) => {
                return self
                    .unusable
                    .push(format!("delegated cgroup v2 subtree: {why}"));
            }
            Ok(t) => t,
        };
        let have = dir.controllers.join(" ");
        let missing = self.missing_from(&dir.controllers, &|c| {
            format!(
                "controller `{c}` is not available in {} (it has: {})",
                dir.path,
                if have.is_empty() { "none" } else { &have }
            )
        });
        self.consider(
            Backend::V2 {
                mount: v2.mount.clone(),
                parent: dir.path.clone(),
                delegated,
            },
            missing,
        );
    }

    /// 3. The cgroup v1 hierarchies, as root.
    fn v1(&mut self, host: &CgroupHost) {
        if host.v1.is_empty() {
            return self.unusable.push(
                "cgroup v1: no v1 hierarchy with memory, cpu, pids or blkio is mounted".into(),
            );
        }
        let mut dirs: Vec<(String, PathBuf)> = Vec::new();
        let mut missing = Vec::new();
        for k in &self.keys {
            let v1_name = if *k == Key::IoWeight {
                "blkio"
            } else {
                k.controller()
            };
            match v1_dir(host, self.plan, *k, v1_name) {
                Err(why) => missing.push((*k, why)),
                Ok(dir) if !dirs.iter().any(|(c, _)| c == v1_name) => {
                    dirs.push((v1_name.to_string(), dir));
                }
                Ok(_) => {}
            }
        }
        self.consider(Backend::V1 { dirs }, missing);
    }
}

/// The v1 directory (hutch's own cgroup in the hierarchy of `v1_name`)
/// where limit `k` can be set, or why it cannot.
fn v1_dir(host: &CgroupHost, plan: &LimitsPlan, k: Key, v1_name: &str) -> Result<PathBuf, String> {
    let Some(h) = host
        .v1
        .iter()
        .find(|h| h.controllers.iter().any(|c| c == v1_name))
    else {
        return Err(format!("no cgroup v1 `{v1_name}` hierarchy is mounted"));
    };
    if !h.writable {
        return Err(if host.uid == 0 {
            format!("{}{} is not writable", h.mount.display(), h.own)
        } else {
            "needs root: cgroup v1 cannot be delegated to users safely (cgroup v2 can: boot with systemd.unified_cgroup_hierarchy=1)".to_string()
        });
    }
    let has = |f: &str| h.files.iter().any(|x| x == f);
    match k {
        Key::Swap if plan.memory.is_none() => {
            Err("cgroup v1 limits memory and swap together: set `memory` as well".to_string())
        }
        Key::Swap if !has("memory.memsw.limit_in_bytes") => Err(
            "this kernel has no swap accounting (memory.memsw.*; boot with swapaccount=1)".to_string(),
        ),
        Key::IoWeight if !has("blkio.weight") && !has("blkio.bfq.weight") => Err(
            "the blkio hierarchy has no weight file (blkio.weight or blkio.bfq.weight: needs the BFQ I/O scheduler)".to_string(),
        ),
        _ => Ok(cgroups::cgroup_path(&h.mount, &h.own)),
    }
}

/// Reasons, each once, with the limits they concern when they differ.
fn grouped(missing: &[(Key, String)]) -> String {
    let mut groups: Vec<(Vec<&str>, &str)> = Vec::new();
    for (k, why) in missing {
        match groups.iter_mut().find(|(_, w)| *w == why.as_str()) {
            Some((keys, _)) => keys.push(k.name()),
            None => groups.push((vec![k.name()], why)),
        }
    }
    if groups.len() == 1 {
        return groups[0].1.to_string();
    }
    groups
        .iter()
        .map(|(keys, why)| format!("{}: {why}", keys.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `--explain`'s lines about the limits.
pub fn explain(plan: &LimitsPlan) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "limits      {}; set before the payload runs, cgroup removed after",
        match plan.enforce {
            Enforce::Required => "required",
            _ => "best-effort",
        }
    );
    for k in plan.keys() {
        let detail = match k {
            Key::Cpu => format!(
                ", cpu.max {} {CPU_PERIOD_US}",
                plan.cpu_quota_per_period().unwrap_or(0)
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "  {}{detail} (from {})",
            plan.describe(k),
            sanitize(plan.from.get(&k).map(String::as_str).unwrap_or("?"))
        );
    }
    for (i, b) in plan.backends.iter().enumerate() {
        let _ = writeln!(
            o,
            "  {} {}: {}",
            if i == 0 { "backend " } else { "fallback" },
            b.backend.title(),
            sanitize(&b.backend.location(&plan.name))
        );
        for (k, why) in &b.missing {
            let _ = writeln!(o, "    would not enforce {}: {}", k.name(), sanitize(why));
        }
    }
    if plan.backends.is_empty() {
        let _ = writeln!(
            o,
            "  NOT ENFORCED: no cgroup backend can apply these limits here"
        );
    }
    for u in &plan.unusable {
        let _ = writeln!(o, "  unusable  {}", sanitize(u));
    }
    o
}

/// `hutch run -v`'s part about the limits: what, and how.
pub fn summary(plan: &LimitsPlan) -> String {
    let keys: Vec<&str> = plan.keys().iter().map(|k| k.name()).collect();
    match plan.backends.first() {
        Some(b) => format!("limits {} via {}", keys.join(","), b.backend.title()),
        None => format!(
            "limits {} NOT ENFORCED (no cgroup backend here)",
            keys.join(",")
        ),
    }
}

/// For `hutch doctor`: whether limits on memory, cpu, pids and io could be
/// applied here, how, and what to do about what cannot.
pub fn doctor(host: &Host) -> (bool, String, Option<String>) {
    let all = LimitsPlan {
        enforce: Enforce::BestEffort,
        memory: Some(1 << 30),
        swap: None,
        cpu: Some(1.0),
        cpu_weight: None,
        pids: Some(1024),
        io_weight: Some(100),
        from: BTreeMap::new(),
        name: cgroup_name("doctor"),
        backends: Vec::new(),
        unusable: Vec::new(),
    };
    let (backends, unusable) = select(host.cgroups(), &all);
    match backends.first() {
        Some(b) if b.missing.is_empty() => (
            true,
            format!("{}: memory, cpu, pids and io limits", b.backend.title()),
            None,
        ),
        Some(b) => {
            let lacking: Vec<&str> = b.missing.iter().map(|(k, _)| k.name()).collect();
            (
                false,
                format!(
                    "{}: limits except {}",
                    b.backend.title(),
                    lacking.join(", ")
                ),
                Some(grouped(&b.missing)),
            )
        }
        None => (
            false,
            format!("no way to apply [limits]: {}", unusable.join("; ")),
            Some("profiles with [limits] refuse to run here unless they say `enforce = \"best-effort\"`".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::cgroups::{Bus, CgroupDir, V1Hierarchy, V2Host};

    fn limits(enforce: Enforce) -> LimitsPlan {
        LimitsPlan {
            enforce,
            memory: Some(50 << 20),
            swap: None,
            cpu: Some(0.25),
            cpu_weight: None,
            pids: Some(20),
            io_weight: None,
            from: BTreeMap::new(),
            name: "hutch-t".into(),
            backends: Vec::new(),
            unusable: Vec::new(),
        }
    }

    fn dir(path: &str, controllers: &str, writable: bool) -> CgroupDir {
        CgroupDir {
            path: path.into(),
            controllers: controllers.split_whitespace().map(str::to_string).collect(),
            subtree: Vec::new(),
            writable,
        }
    }

    /// A systemd user session on a pure cgroup v2 host, as in tests/vm.
    fn session_host() -> CgroupHost {
        CgroupHost {
            uid: 1000,
            v2: Some(V2Host {
                mount: "/sys/fs/cgroup".into(),
                unified: true,
                own: "/user.slice/user-1000.slice/user@1000.service/app.slice/x.service".into(),
                parent: Some(dir(
                    "/user.slice/user-1000.slice/user@1000.service/app.slice",
                    "cpu memory pids",
                    true,
                )),
                top: dir("/", "cpuset cpu io memory hugetlb pids", false),
                user_manager: Some(dir(
                    "/user.slice/user-1000.slice/user@1000.service",
                    "cpu memory pids",
                    true,
                )),
            }),
            v2_missing: None,
            v1: Vec::new(),
            bus: Some(Bus {
                address: "unix:path=/run/user/1000/bus".into(),
                system: false,
            }),
            bus_missing: None,
        }
    }

    /// This CI machine: hybrid, v2 holds only hugetlb, no systemd.
    fn hybrid_host(uid: u32) -> CgroupHost {
        let h = |c: &str, files: &[&str]| V1Hierarchy {
            mount: format!("/sys/fs/cgroup/{c}").into(),
            controllers: vec![c.to_string()],
            own: "/".into(),
            writable: uid == 0,
            files: files.iter().map(|f| f.to_string()).collect(),
        };
        CgroupHost {
            uid,
            v2: Some(V2Host {
                mount: "/sys/fs/cgroup/unified".into(),
                unified: false,
                own: "/".into(),
                parent: None,
                top: dir("/", "hugetlb", uid == 0),
                user_manager: None,
            }),
            v2_missing: None,
            v1: vec![
                h("memory", &["memory.memsw.limit_in_bytes"]),
                h("cpu", &["cpu.cfs_quota_us", "cpu.shares"]),
                h("pids", &[]),
                h("blkio", &[]),
            ],
            bus: None,
            bus_missing: Some("no D-Bus socket at /run/user/1000/bus".into()),
        }
    }

    #[test]
    fn a_systemd_session_uses_the_user_manager_first() {
        let (b, unusable) = select(&session_host(), &limits(Enforce::Required));
        assert_eq!(b.len(), 1, "{b:?}");
        assert!(matches!(
            b[0].backend,
            Backend::Systemd { system: false, .. }
        ));
        assert!(
            unusable.iter().any(|u| u.contains("systemd slice")),
            "{unusable:?}"
        );
    }

    #[test]
    fn an_undelegated_controller_is_named_with_the_fix() {
        let mut l = limits(Enforce::Required);
        l.io_weight = Some(200);
        let (b, unusable) = select(&session_host(), &l);
        assert!(b.is_empty());
        let text = unusable.join("\n");
        assert!(
            text.contains(
                "controller `io` is not delegated to user@1000.service (it gets: cpu memory pids)"
            ),
            "{text}"
        );
        assert!(text.contains("Delegate=cpu io memory pids"), "{text}");
        l.enforce = Enforce::BestEffort;
        let (b, _) = select(&session_host(), &l);
        assert_eq!(b[0].missing_keys(), [Key::IoWeight]);
    }

    #[test]
    fn a_delegated_parent_is_used_without_systemd() {
        let mut h = session_host();
        h.bus = None;
        h.bus_missing = Some("no D-Bus socket".into());
        let v2 = h.v2.as_mut().unwrap();
        v2.own = "/app.slice/d.scope/sub".into();
        v2.parent = Some(dir("/app.slice/d.scope", "cpu memory pids", true));
        let (b, _) = select(&h, &limits(Enforce::Required));
        assert_eq!(
            b[0].backend,
            Backend::V2 {
                mount: "/sys/fs/cgroup".into(),
                parent: "/app.slice/d.scope".into(),
                delegated: true
            }
        );
        v2_not_writable(h);
    }

    fn v2_not_writable(mut h: CgroupHost) {
        h.v2.as_mut().unwrap().parent.as_mut().unwrap().writable = false;
        let (b, unusable) = select(&h, &limits(Enforce::Required));
        assert!(b.is_empty());
        assert!(
            unusable
                .iter()
                .any(|u| u.contains("is not delegated to you")),
            "{unusable:?}"
        );
    }

    #[test]
    fn root_on_a_hybrid_host_uses_v1() {
        let (b, unusable) = select(&hybrid_host(0), &limits(Enforce::Required));
        assert_eq!(b.len(), 1, "{b:?} {unusable:?}");
        let Backend::V1 { dirs } = &b[0].backend else {
            panic!("{b:?}")
        };
        let names: Vec<&str> = dirs.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, ["memory", "cpu", "pids"]);
        assert!(
            unusable
                .iter()
                .any(|u| u.contains("controller `memory` is not available in /"))
        );
        // No blkio weight file here: io_weight cannot be applied.
        let mut l = limits(Enforce::Required);
        l.io_weight = Some(100);
        assert!(select(&hybrid_host(0), &l).0.is_empty());
        // Swap needs memory in v1.
        let mut l = limits(Enforce::BestEffort);
        l.memory = None;
        l.swap = Some(0);
        let (b, _) = select(&hybrid_host(0), &l);
        assert_eq!(b[0].missing_keys(), [Key::Swap]);
    }

    #[test]
    fn an_ordinary_user_on_a_hybrid_host_has_nothing() {
        let (b, unusable) = select(&hybrid_host(1000), &limits(Enforce::Required));
        assert!(b.is_empty());
        let text = unusable.join("\n");
        assert!(
            text.contains("systemd user manager: no D-Bus socket"),
            "{text}"
        );
        assert!(text.contains("cgroup v1 (as root): needs root"), "{text}");
        let (b, _) = select(&hybrid_host(1000), &limits(Enforce::BestEffort));
        assert!(b.is_empty());
    }

    /// Plans `[limits]` of profile layers (lowest first) on `host`.
    fn plan_layers(layers: &[&str], host: CgroupHost) -> Result<Option<LimitsPlan>, String> {
        let profile = Profile {
            name: "p".into(),
            layers: layers
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    let file = crate::diag::SourceFile::new(format!("l{i}.toml"), None, *text);
                    let raw = crate::profile::parse(&file).map_err(|e| e.to_string())?;
                    Ok(crate::profile::Layer {
                        file,
                        raw,
                        is_override: false,
                    })
                })
                .collect::<Result<_, String>>()?,
        };
        let host = Host::fixed(1000, 1000, &[], "/").with_cgroups(host);
        plan(&profile, &host, true).map_err(|e| e.to_string())
    }

    #[test]
    fn planning_reads_every_key_and_where_it_was_set() {
        let p = plan_layers(
            &["version = 1\n[limits]\nmemory = \"512M\"\nswap = 0\ncpu = 1\ncpu_weight = 50\npids = \"1K\"\n"],
            session_host(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.enforce, Enforce::Required);
        assert_eq!(
            (p.memory, p.swap, p.cpu, p.cpu_weight, p.pids, p.io_weight),
            (
                Some(512 << 20),
                Some(0),
                Some(1.0),
                Some(50),
                Some(1024),
                None
            )
        );
        assert_eq!(p.from[&Key::Memory], "l0.toml:3:10");
        assert_eq!(p.from[&Key::Pids], "l0.toml:7:8");
        assert_eq!(p.name, "hutch-p");
        assert!(matches!(p.backends[0].backend, Backend::Systemd { .. }));
        // The plan is data: `--explain --json` prints it and it reads back.
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"type\":\"systemd\""), "{json}");
        assert_eq!(serde_json::from_str::<LimitsPlan>(&json).unwrap(), p);
        let text = explain(&p);
        assert!(
            text.contains("  cpu 1 CPUs, cpu.max 100000 100000 (from l0.toml:5:7)"),
            "{text}"
        );
        assert!(text.contains("  backend  systemd user manager: transient scope app-hutch-p-PID.scope with Delegate=yes, via unix:path=/run/user/1000/bus"), "{text}");
    }

    #[test]
    fn later_layers_lift_or_turn_off_limits() {
        let base = "version = 1\n[limits]\nmemory = \"1G\"\npids = 100\n";
        let p = plan_layers(
            &[base, "version = 1\n[limits]\nmemory = \"unlimited\"\n"],
            session_host(),
        )
        .unwrap()
        .unwrap();
        assert_eq!((p.memory, p.pids), (None, Some(100)));
        assert_eq!(p.keys(), [Key::Pids]);
        let off = plan_layers(
            &[base, "version = 1\n[limits]\nenforce = \"off\"\n"],
            session_host(),
        )
        .unwrap();
        assert_eq!(off, None);
        let none = plan_layers(
            &["version = 1\n[limits]\nmemory = \"unlimited\"\n"],
            session_host(),
        )
        .unwrap();
        assert_eq!(none, None);
    }

    #[test]
    fn required_limits_no_backend_can_apply_are_refused_at_the_enforce_key() {
        let e = plan_layers(
            &["version = 1\n[limits]\nenforce = \"required\"\nio_weight = 200\n"],
            session_host(),
        )
        .unwrap_err();
        assert!(
            e.starts_with(
                "l0.toml:3:11: [limits] cannot be enforced on this host (io_weight required)"
            ),
            "{e}"
        );
        assert!(
            e.contains("controller `io` is not delegated to user@1000.service"),
            "{e}"
        );
        let p = plan_layers(
            &["version = 1\n[limits]\nenforce = \"best-effort\"\nio_weight = 200\n"],
            hybrid_host(1000),
        )
        .unwrap()
        .unwrap();
        assert!(p.backends.is_empty());
        assert!(explain(&p).contains("NOT ENFORCED"));
        assert_eq!(
            summary(&p),
            "limits io_weight NOT ENFORCED (no cgroup backend here)"
        );
    }

    #[test]
    fn names_are_safe_for_cgroups_and_units() {
        assert_eq!(cgroup_name("cli"), "hutch-cli");
        assert_eq!(cgroup_name("base/system"), "hutch-system");
        assert_eq!(cgroup_name("/home/u/my prof.toml"), "hutch-my_prof");
        assert_eq!(cgroup_name(""), "hutch-sandbox");
    }

    #[test]
    fn sizes_and_quotas() {
        assert_eq!(size(50 << 20), "50 MiB");
        assert_eq!(size(1536 << 20), "1.5 GiB");
        assert_eq!(size(100), "100 bytes");
        let mut l = limits(Enforce::Required);
        assert_eq!(l.cpu_quota_per_period(), Some(25_000));
        l.cpu = Some(0.001);
        assert_eq!(l.cpu_quota_per_period(), Some(1000));
        l.cpu = Some(2.0);
        assert_eq!(l.cpu_quota_per_period(), Some(200_000));
        assert_eq!(l.controllers(&[]), ["memory", "cpu", "pids"]);
        assert_eq!(l.controllers(&[Key::Cpu]), ["memory", "pids"]);
    }
}
