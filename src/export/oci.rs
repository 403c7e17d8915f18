//! A plan as an OCI runtime bundle: the `config.json` (runtime-spec
//! v1.1.0), what goes into `rootfs/`, and what the spec cannot express.
//!
//! [`export`] is a pure function of the plan and of one fact about the
//! host the plan was made against: whether each bind's source is a
//! directory or a file (see [`bind`]). Everything the plan does that
//! a `config.json` cannot say is returned as a [`Gap`], which the caller
//! prints and which is also recorded in the bundle's annotations
//! (`org.hutch.lost.KEY`, `org.hutch.differs.KEY`), never dropped silently.
//!
//! Equivalences that need no gap, and why:
//! - capabilities: all five sets empty, as hutch empties them; hutch also
//!   locks the securebits, which adds nothing once the bounding set is
//!   empty and `no_new_privs` is set (no execve can grant a capability);
//! - inherited descriptors: runtimes close every descriptor above 2 (unless
//!   told to preserve some), as hutch does;
//! - the session: runtimes start the process in a new session (crun and
//!   runc call setsid), hutch's `terminal = "none"` (and `"auto"` without a
//!   terminal on stdin, which is how the bundle is planned).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::seccomp_json::{self, Seccomp};
use crate::host::Host;
use crate::plan::mounts::{PROC_MASKED, PROC_READONLY};
use crate::plan::rootfs::{RootSource, Upper};
use crate::plan::{MountOp, Plan, PlannedMount};

/// The runtime-spec release the bundle is written for: v1.1.0, the first
/// with every field used here (the recursive mount options `rro`,
/// `rnosuid` and `rnodev`, seccomp's `errnoRet`, `resources.unified`). Its
/// JSON Schema is vendored in tests/oci-runtime-spec/v1.1.0/.
pub const SPEC_RELEASE: &str = "v1.1.0";

/// What `ociVersion` says: crun before 1.14.2 (Debian 12 ships 1.8.1)
/// refuses any version that does not contain "1.0", though it supports the
/// v1.1.0 fields; "1.0.2-dev", the development version in which those
/// fields were added, is also what Podman 4 writes.
pub const OCI_VERSION: &str = "1.0.2-dev";

/// The bundle's `config.json`: the part of the runtime spec hutch uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub oci_version: String,
    pub process: Process,
    pub root: Root,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub mounts: Vec<Mount>,
    pub linux: Linux,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub terminal: bool,
    pub user: User,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub capabilities: Capabilities,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
}

/// The five capability sets; hutch empties them all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub bounding: Vec<String>,
    pub effective: Vec<String>,
    pub inheritable: Vec<String>,
    pub permitted: Vec<String>,
    pub ambient: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub hard: u64,
    pub soft: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    pub path: String,
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub destination: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    pub namespaces: Vec<Namespace>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<IdMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<IdMapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readonly_paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    #[serde(rename = "containerID")]
    pub container_id: u32,
    #[serde(rename = "hostID")]
    pub host_id: u32,
    pub size: u32,
}

/// `linux.resources`: cgroup limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<PidsLimit>,
    /// cgroup v2 files written as they are, for what the structured fields
    /// would only approximate (weights, swap without a memory limit).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unified: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Memory plus swap, in the spec's (cgroup v1) sense.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuLimits {
    pub quota: i64,
    pub period: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsLimit {
    pub limit: i64,
}

/// What goes into the bundle's `rootfs/` before the runtime starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootContent {
    /// An empty directory: the host paths the profile names are mounts.
    Empty,
    /// The image's unpacked layers, lowest first, flattened into it.
    Layers(Vec<PathBuf>),
    /// No `rootfs/`: the config names this host directory as the root.
    HostDir(PathBuf),
}

/// Something the plan creates on the root itself, made in `rootfs/` by the
/// export since a runtime creates only mount points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootEntry {
    Dir {
        path: PathBuf,
        mode: u32,
    },
    Symlink {
        path: PathBuf,
        target: PathBuf,
    },
    File {
        path: PathBuf,
        content: String,
        mode: u32,
    },
}

/// Whether a gap loses something hutch enforces or does, or only does it
/// differently and never more weakly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GapKind {
    Lost,
    Differs,
}

/// Part of the plan that `config.json` cannot express exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// Short and stable: `landlock`, `init`, `volume.NAME`, `mount./DST`...
    pub key: String,
    pub kind: GapKind,
    pub what: String,
}

impl Gap {
    fn lost(key: impl Into<String>, what: impl Into<String>) -> Gap {
        Gap {
            key: key.into(),
            kind: GapKind::Lost,
            what: what.into(),
        }
    }

    fn differs(key: impl Into<String>, what: impl Into<String>) -> Gap {
        Gap {
            key: key.into(),
            kind: GapKind::Differs,
            what: what.into(),
        }
    }
}

/// The bundle, as data.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    pub config: Config,
    pub root: RootContent,
    pub entries: Vec<RootEntry>,
    pub gaps: Vec<Gap>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExportError {
    #[error("{what} {path:?} is not valid UTF-8, which config.json cannot hold; rename it")]
    NotUtf8 { what: &'static str, path: PathBuf },
}

fn text(what: &'static str, p: &Path) -> Result<String, ExportError> {
    p.to_str().map(str::to_string).ok_or(ExportError::NotUtf8 {
        what,
        path: p.to_path_buf(),
    })
}

/// The bundle for `plan`, made against `host` (whose filesystem holds the
/// bind sources).
pub fn export(plan: &Plan, host: &Host) -> Result<Export, ExportError> {
    let mut gaps = Vec::new();
    let (root, content) = root(plan, &mut gaps)?;
    let root_is_ours = !matches!(content, RootContent::HostDir(_));
    let mut built = Mounts::default();
    for m in &plan.mounts {
        built.add(plan, host, m, root_is_ours)?;
    }
    if !plan.namespaces.mount {
        gaps.push(Gap::lost(
            "namespaces.mount",
            "`namespaces.mount = false` runs the payload in the host's filesystem; a bundle always has a root of its own, here an empty one",
        ));
    }
    let process = process(plan, &mut gaps)?;
    behaviour_gaps(plan, &mut gaps);
    let resources = resources(plan, &mut gaps);
    let seccomp = seccomp_json::translate(&plan.security.seccomp);
    for (key, what) in seccomp_json::differences(&plan.security.seccomp) {
        gaps.push(Gap::differs(key, what));
    }
    let linux = Linux {
        namespaces: namespaces(plan),
        uid_mappings: plan
            .id_map
            .map(|m| IdMapping {
                container_id: m.uid_inside,
                host_id: m.uid_outside,
                size: 1,
            })
            .into_iter()
            .collect(),
        gid_mappings: plan
            .id_map
            .map(|m| IdMapping {
                container_id: m.gid_inside,
                host_id: m.gid_outside,
                size: 1,
            })
            .into_iter()
            .collect(),
        resources,
        seccomp,
        masked_paths: built.masked,
        readonly_paths: built.readonly,
    };
    gaps.extend(built.gaps);
    let config = Config {
        oci_version: OCI_VERSION.to_string(),
        process,
        root,
        hostname: plan.hostname.clone(),
        mounts: built.mounts,
        linux,
        annotations: annotations(plan, &gaps),
    };
    Ok(Export {
        config,
        root: content,
        entries: built.entries,
        gaps,
    })
}

fn root(plan: &Plan, gaps: &mut Vec<Gap>) -> Result<(Root, RootContent), ExportError> {
    gaps.push(Gap::differs(
        "root.flags",
        "the root is mounted without nosuid and nodev (the runtime-spec's `root` has only `readonly`), hutch's with both; with no_new_privs, in a user namespace, setuid files and device nodes confer nothing either way",
    ));
    let Some(r) = &plan.root else {
        // hutch's root is an empty tmpfs made read-only once the mounts are in.
        return Ok((rootfs_dir(true), RootContent::Empty));
    };
    match &r.source {
        RootSource::Image { layers, name, .. } => {
            match &r.writable {
                Upper::ReadOnly => {}
                Upper::Tmpfs => gaps.push(Gap::lost(
                    "root.writable",
                    format!("image {name}: the payload's writes to the root go to the bundle's rootfs/ and are kept from run to run; hutch's tmpfs layer (`writable = \"tmpfs\"`, {}) discards them at exit", r.from),
                )),
                Upper::Dir { path } | Upper::Volume { path, .. } => gaps.push(Gap::differs(
                    "root.writable",
                    format!("image {name}: the payload's writes to the root are kept in the bundle's rootfs/ instead of {}/upper", path.display()),
                )),
            }
            let lowest_first = layers.iter().rev().cloned().collect();
            Ok((
                rootfs_dir(r.writable == Upper::ReadOnly),
                RootContent::Layers(lowest_first),
            ))
        }
        RootSource::Dir { path } => {
            if r.writable != Upper::ReadOnly {
                gaps.push(Gap::lost(
                    "root.writable",
                    format!("the root directory {} is used in place and read-only: OCI cannot lay a writable layer over a directory (`writable`, {}); copy the directory into the bundle's rootfs/ and set root.readonly to false for a writable root", path.display(), r.from),
                ));
            }
            let root = Root {
                path: text("root directory", path)?,
                readonly: true,
            };
            Ok((root, RootContent::HostDir(path.clone())))
        }
    }
}

fn rootfs_dir(readonly: bool) -> Root {
    Root {
        path: "rootfs".to_string(),
        readonly,
    }
}

/// The mounts, masked and read-only paths, and the entries made on the root.
#[derive(Default)]
struct Mounts {
    mounts: Vec<Mount>,
    masked: Vec<String>,
    readonly: Vec<String>,
    entries: Vec<RootEntry>,
    gaps: Vec<Gap>,
    /// Destinations of mounts so far: what lies below them is not on the root.
    mounted: Vec<PathBuf>,
}

fn options(list: &[&str]) -> Vec<String> {
    list.iter().map(|o| o.to_string()).collect()
}

/// What a bind's source is on the host.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Dir,
    /// A file (or anything but a directory): it has no submounts.
    File,
}

impl Source {
    fn of(host: &Host, src: &Path) -> Source {
        if std::fs::metadata(host.fs_path(src)).is_ok_and(|m| !m.is_dir()) {
            Source::File
        } else {
            Source::Dir
        }
    }
}

/// A recursive bind: nosuid (and nodev, read-only) on every submount too,
/// as hutch sets them with `mount_setattr(AT_RECURSIVE)`. A file has no
/// submounts, so for a file the plain options say the same, and only they
/// work with crun 1.8.1 (Debian 12) and every crun before the fix of
/// containers/crun#1421 (February 2024), which opens the target of a bind
/// with recursive options as a directory and fails ("open mount target
/// `...`: Not a directory").
fn bind(
    src: &Path,
    dst: &str,
    readonly: bool,
    devices: bool,
    kind: Source,
) -> Result<Mount, ExportError> {
    let r = if kind == Source::File { "" } else { "r" };
    let mut o = vec!["rbind".to_string(), format!("{r}nosuid")];
    if !devices {
        o.push(format!("{r}nodev"));
    }
    if readonly {
        o.push(format!("{r}ro"));
    }
    Ok(Mount {
        destination: dst.to_string(),
        kind: "bind".into(),
        source: text("bind source", src)?,
        options: o,
    })
}

fn tmpfs(dst: &str, mode: u32, size: Option<u64>, extra: &[&str]) -> Mount {
    let mut o = options(&["nosuid", "nodev"]);
    o.extend(options(extra));
    o.push(format!("mode={mode:o}"));
    if let Some(s) = size {
        o.push(format!("size={s}"));
    }
    Mount {
        destination: dst.to_string(),
        kind: "tmpfs".into(),
        source: "tmpfs".into(),
        options: o,
    }
}

impl Mounts {
    fn on_root(&self, dst: &Path) -> bool {
        !self.mounted.iter().any(|m| dst.starts_with(m))
    }

    fn add(
        &mut self,
        plan: &Plan,
        host: &Host,
        m: &PlannedMount,
        root_is_ours: bool,
    ) -> Result<(), ExportError> {
        let dst_path = m.op.dst();
        let dst = text("mount destination", dst_path)?;
        let path = dst_path.to_path_buf();
        let entry = match &m.op {
            // What `[desktop]` makes for one launch (a private Xauthority,
            // a cookie's copy, a Wayland security-context socket, the
            // D-Bus proxy's and the nested X server's sockets) exists only
            // while that launch's hutch runs.
            MountOp::Bind { src, .. }
                if plan.desktop.as_ref().is_some_and(|d| d.made_at_launch(src)) =>
            {
                let name = src
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                self.gaps.push(Gap::lost(
                    format!("desktop.{name}"),
                    format!("{dst} ({}): hutch makes it at launch ({name}), for that launch only; a bundle cannot carry it", m.from),
                ));
                return Ok(());
            }
            MountOp::Bind {
                src,
                readonly,
                devices,
                ..
            } => {
                let kind = Source::of(host, src);
                self.mounts
                    .push(bind(src, &dst, *readonly, *devices, kind)?);
                None
            }
            MountOp::Tmpfs { size, mode, .. } => {
                self.mounts.push(tmpfs(&dst, *mode, *size, &[]));
                None
            }
            MountOp::Proc { .. } => {
                self.proc(plan, dst_path, &dst)?;
                None
            }
            MountOp::Dev { .. } if dst_path == Path::new("/dev") => {
                self.dev();
                None
            }
            MountOp::Dev { .. } => {
                self.gaps.push(Gap::lost(
                    format!("mount.{dst}"),
                    format!("a minimal /dev at {dst} ({}): OCI runtimes make their device nodes only in /dev", m.from),
                ));
                return Ok(());
            }
            MountOp::Volume {
                name,
                src,
                readonly,
                tmp,
                ..
            } => {
                self.volume(name, src, &dst, *readonly, *tmp, &m.from)?;
                None
            }
            MountOp::Dir { mode, .. } => Some(RootEntry::Dir { path, mode: *mode }),
            MountOp::Symlink { target, .. } => {
                text("symlink target", target)?;
                Some(RootEntry::Symlink {
                    path,
                    target: target.clone(),
                })
            }
            MountOp::File { content, mode, .. } => Some(RootEntry::File {
                path,
                content: content.clone(),
                mode: *mode,
            }),
        };
        match entry {
            Some(e) => self.entry(e, root_is_ours, &dst, &m.from),
            None => self.mounted.push(dst_path.to_path_buf()),
        }
        Ok(())
    }

    /// A directory, symlink or file: made in `rootfs/` when it is on the
    /// bundle's own root; anywhere else (inside a tmpfs or a bind, or on a
    /// host directory used as the root) a runtime cannot make it.
    fn entry(&mut self, entry: RootEntry, root_is_ours: bool, dst: &str, from: &str) {
        let path = match &entry {
            RootEntry::Dir { path, .. }
            | RootEntry::Symlink { path, .. }
            | RootEntry::File { path, .. } => path.clone(),
        };
        if root_is_ours && self.on_root(&path) {
            self.entries.push(entry);
        } else {
            let kind = match entry {
                RootEntry::Dir { .. } => "directory",
                RootEntry::Symlink { .. } => "symlink",
                RootEntry::File { .. } => "file",
            };
            let place = if root_is_ours {
                "inside a mount"
            } else {
                "on a host directory used as the root"
            };
            self.gaps.push(Gap::lost(
                format!("mount.{dst}"),
                format!("the {kind} {dst} ({from}) is {place}: an OCI runtime makes only mount points there"),
            ));
        }
    }

    /// procfs, or without a pid namespace the host's bound (as hutch does);
    /// its sensitive entries read-only or masked.
    fn proc(&mut self, plan: &Plan, dst_path: &Path, dst: &str) -> Result<(), ExportError> {
        if plan.namespaces.pid {
            self.mounts.push(Mount {
                destination: dst.to_string(),
                kind: "proc".into(),
                source: "proc".into(),
                options: options(&["nosuid", "nodev", "noexec"]),
            });
        } else {
            let mut b = bind(Path::new("/proc"), dst, false, false, Source::Dir)?;
            b.options.push("rnoexec".into());
            self.mounts.push(b);
        }
        for (names, list) in [
            (PROC_READONLY, &mut self.readonly),
            (PROC_MASKED, &mut self.masked),
        ] {
            for n in names {
                list.push(text("proc entry", &dst_path.join(n))?);
            }
        }
        Ok(())
    }

    /// hutch's minimal /dev in OCI terms: a read-only tmpfs (crun makes the
    /// devices before it applies `ro`), where the runtime makes the same six
    /// device nodes hutch binds (null zero full random urandom tty) and the
    /// fd/stdin/stdout/stderr/ptmx links; a private devpts; a writable shm.
    fn dev(&mut self) {
        let mut dev = tmpfs("/dev", 0o755, Some(1 << 20), &["noexec", "ro"]);
        // The device nodes are bound onto it: no nodev, as hutch's.
        dev.options.retain(|o| o != "nodev");
        self.mounts.push(dev);
        let pts = &mut self.mounts;
        pts.push(Mount {
            destination: "/dev/pts".into(),
            kind: "devpts".into(),
            source: "devpts".into(),
            options: options(&[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
            ]),
        });
        // Unlike tmpfs mounts elsewhere, hutch's shm is noexec-free and has
        // no size: the same here.
        pts.push(tmpfs("/dev/shm", 0o1777, None, &[]));
    }

    fn volume(
        &mut self,
        name: &str,
        src: &Path,
        dst: &str,
        readonly: bool,
        tmp: bool,
        from: &str,
    ) -> Result<(), ExportError> {
        if tmp {
            // The store's .tmp directory holds every sandbox's tmp volumes:
            // never bind it.
            self.mounts.push(tmpfs(dst, 0o700, None, &[]));
            self.gaps.push(Gap::lost(
                format!("volume.{name}"),
                format!("tmp volume {name} ({from}): an empty directory on disk, deleted at exit, becomes a tmpfs (in memory) at {dst}"),
            ));
            return Ok(());
        }
        self.mounts
            .push(bind(src, dst, readonly, false, Source::Dir)?);
        self.gaps.push(Gap::lost(
            format!("volume.{name}"),
            format!("volume {name} ({from}) is bound from {}: hutch's lock (one sandbox at a time unless shared), its creation on first use and its checks against symlinks are not in the bundle; the directory must exist where the bundle runs", src.display()),
        ));
        Ok(())
    }
}

fn namespaces(plan: &Plan) -> Vec<Namespace> {
    let ns = &plan.namespaces;
    [
        (ns.pid, "pid"),
        (ns.net, "network"),
        (ns.ipc, "ipc"),
        (ns.uts, "uts"),
        (ns.mount, "mount"),
        (ns.cgroup, "cgroup"),
        (ns.user, "user"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, kind)| Namespace { kind: kind.into() })
    .collect()
}

fn process(plan: &Plan, gaps: &mut Vec<Gap>) -> Result<Process, ExportError> {
    // Without a user namespace the planner insists on root.
    let user = plan.id_map.map_or(User { uid: 0, gid: 0 }, |m| User {
        uid: m.uid_inside,
        gid: m.gid_inside,
    });
    if !plan.security.new_session {
        gaps.push(Gap::lost(
            "terminal",
            "`terminal = \"inherit\"`: the payload keeps the caller's terminal under hutch; OCI runtimes start it in a new session without one (or, with process.terminal, on a new pseudo-terminal)",
        ));
    }
    let rlimits = plan
        .security
        .rlimits
        .iter()
        .map(|r| {
            let v = r.value.unwrap_or(u64::MAX);
            Rlimit {
                kind: format!("RLIMIT_{}", r.name.to_uppercase()),
                hard: v,
                soft: v,
            }
        })
        .collect();
    Ok(Process {
        terminal: false,
        user,
        args: plan
            .argv
            .iter()
            .map(|a| {
                a.to_str().map(str::to_string).ok_or(ExportError::NotUtf8 {
                    what: "command argument",
                    path: a.into(),
                })
            })
            .collect::<Result<_, _>>()?,
        env: plan.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd: text("working directory", &plan.cwd)?,
        capabilities: Capabilities::default(),
        rlimits,
        no_new_privileges: plan.security.no_new_privs,
    })
}

/// What hutch does around the payload that a runtime does not.
fn behaviour_gaps(plan: &Plan, gaps: &mut Vec<Gap>) {
    let ll = &plan.security.landlock;
    if ll.active() || !ll.not_enforced.is_empty() {
        let mut parts = Vec::new();
        if ll.handled_fs != 0 {
            parts.push(format!("{} filesystem rules", ll.fs_rules.len()));
        }
        if ll.handled_net != 0 {
            parts.push(format!("{} TCP port rules", ll.net_rules.len()));
        }
        if ll.scoped != 0 {
            parts.push("scoping of abstract unix sockets and signals".to_string());
        }
        gaps.push(Gap::lost(
            "landlock",
            format!("Landlock ({}): the runtime-spec has no Landlock field (none up to v1.3.0: a proposal to add one was not merged); the rules are in the annotation org.hutch.landlock", parts.join(", ")),
        ));
    }
    if let Some(user) = &plan.network.user {
        gaps.push(Gap::lost("network", network_lost(user)));
    }
    if plan.init {
        gaps.push(Gap::lost(
            "init",
            "hutch's init as PID 1 (reaps orphans, forwards signals, exits with the payload's status): under an OCI runtime the payload itself is PID 1 (`podman run --init` adds an init)",
        ));
    }
    if let Some(note) = &plan.home_note {
        // A courtesy, not confinement: never a reason for --strict to refuse.
        gaps.push(Gap::differs(
            "home_note",
            format!(
                "the home {} is a tmpfs whose content is gone at exit: hutch's init names what was written there; a container discards it without a word",
                note.home.display()
            ),
        ));
    }
    if plan.security.die_with_parent {
        // Not the payload's confinement, and no profile can turn it off:
        // listed, but never a reason for --strict to refuse.
        gaps.push(Gap::differs(
            "lifetime",
            "the sandbox dies with its launcher, even when that is killed with SIGKILL; a container's lifetime is the runtime's and the engine's (a SIGKILLed `crun run` leaves it running)",
        ));
    }
    use crate::profile::schema::Enforce;
    if plan.security.seccomp.active && plan.security.seccomp.enforce == Enforce::BestEffort {
        gaps.push(Gap::differs(
            "seccomp.enforce",
            "`[seccomp] enforce = \"best-effort\"`: hutch runs without the filter where the kernel has no seccomp; an OCI runtime refuses to start",
        ));
    }
}

/// What `[network] mode = "user"` gives that a bundle does not: the
/// runtime-spec has no user-mode network, so the bundle keeps the network
/// namespace with its loopback only (the payload gets less, never the
/// host's network); an engine adds one of its own.
fn network_lost(user: &crate::plan::network::UserNetwork) -> String {
    let mut what = vec![format!(
        "{}'s connection to the outside",
        user.backend.name()
    )];
    if user.host_loopback {
        what.push("the host's loopback".into());
    }
    for (n, kind) in [
        (user.host_ports.len(), "host port forward(s)"),
        (user.publish.len(), "published port(s)"),
        (user.egress.len(), "egress rule(s)"),
    ] {
        if n > 0 {
            what.push(format!("{n} {kind}"));
        }
    }
    format!(
        "`[network] mode = \"user\"` ({}): the runtime-spec has no user-mode network; the bundle's network namespace has only its loopback (with Podman: `--network pasta`, without the egress rules)",
        what.join(", ")
    )
}

/// `[limits]` as `linux.resources`. cgroup v1 semantics of the structured
/// fields are kept only where they convert exactly to hutch's v2 values:
/// memory and pids, swap given as memory + swap, the CPU quota. Weights go
/// to `unified` (v2 files as they are): runtimes map the v1 fields onto v2
/// weights by formulas that do not round-trip.
fn resources(plan: &Plan, gaps: &mut Vec<Gap>) -> Option<Resources> {
    let l = plan.limits.as_ref()?;
    let mut r = Resources::default();
    let mut memory = MemoryLimits::default();
    if let Some(m) = l.memory {
        memory.limit = i64::try_from(m).ok();
        if let Some(s) = l.swap {
            memory.swap = i64::try_from(m.saturating_add(s)).ok();
        }
    } else if let Some(s) = l.swap {
        r.unified.insert("memory.swap.max".into(), s.to_string());
    }
    if memory != MemoryLimits::default() {
        r.memory = Some(memory);
    }
    if let Some(q) = l.cpu_quota_per_period() {
        r.cpu = Some(CpuLimits {
            quota: i64::try_from(q).unwrap_or(i64::MAX),
            period: crate::plan::limits::CPU_PERIOD_US,
        });
    }
    if let Some(w) = l.cpu_weight {
        r.unified.insert("cpu.weight".into(), w.to_string());
    }
    if let Some(w) = l.io_weight {
        r.unified.insert("io.weight".into(), format!("default {w}"));
    }
    if let Some(p) = l.pids {
        r.pids = Some(PidsLimit {
            limit: i64::try_from(p).unwrap_or(i64::MAX),
        });
    }
    if !r.unified.is_empty() {
        gaps.push(Gap::differs(
            "limits.unified",
            format!("{} written as cgroup v2 files (linux.resources.unified): a runtime on a cgroup v1 host refuses them", r.unified.keys().cloned().collect::<Vec<_>>().join(", ")),
        ));
    }
    if l.enforce == crate::profile::schema::Enforce::BestEffort {
        gaps.push(Gap::differs(
            "limits.enforce",
            "`[limits] enforce = \"best-effort\"`: hutch runs without the limits it cannot apply; an OCI runtime refuses to start (or, rootless without a delegated cgroup, may skip them all)",
        ));
    }
    Some(r)
}

fn annotations(plan: &Plan, gaps: &[Gap]) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert("org.hutch.profile".into(), plan.profile.clone());
    a.insert("org.hutch.sources".into(), plan.sources.join(" "));
    for g in gaps {
        let kind = match g.kind {
            GapKind::Lost => "lost",
            GapKind::Differs => "differs",
        };
        a.insert(format!("org.hutch.{kind}.{}", g.key), g.what.clone());
    }
    let ll = &plan.security.landlock;
    if ll.active() {
        a.insert(
            "org.hutch.landlock".into(),
            serde_json::to_string(ll).unwrap_or_default(),
        );
    }
    if !plan.skipped.is_empty() {
        a.insert("org.hutch.skipped".into(), plan.skipped.join("; "));
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Host;
    use crate::plan::Request;
    use crate::profile::{ProfileRef, SearchPath, load};

    /// The export of profile `text` (`version = 1` is prepended), planned
    /// for user 1000 with home /home/u, as `hutch export oci` plans.
    fn export_of(text: &str) -> Export {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), format!("version = 1\n{text}")).unwrap();
        let host = super::super::target_host(Host::fixed(
            1000,
            1000,
            &[
                ("HOME", "/home/u"),
                ("HUTCH_PROFILE_PATH", dir.path().to_str().unwrap()),
            ],
            "/",
        ));
        let profile = load(&ProfileRef::Name("p".into()), &SearchPath::standard(&host))
            .map_err(|e| e.0.render())
            .unwrap();
        let request = Request {
            command: vec!["prog".into()],
            ..Request::default()
        };
        let plan = crate::plan::build(&profile, &host, &request)
            .map_err(|e| e.0.render())
            .unwrap();
        export(&plan, &host).unwrap()
    }

    fn gap<'a>(e: &'a Export, key: &str) -> Option<&'a Gap> {
        e.gaps.iter().find(|g| g.key == key)
    }

    fn mount<'a>(e: &'a Export, dst: &str) -> &'a Mount {
        e.config
            .mounts
            .iter()
            .find(|m| m.destination == dst)
            .unwrap_or_else(|| panic!("no mount at {dst}: {:?}", e.config.mounts))
    }

    /// A file has no submounts: its bind carries the plain options (which
    /// crun 1.8 needs), a directory's the recursive ones.
    #[test]
    fn a_file_is_bound_with_plain_options_a_directory_with_recursive_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (file, sub) = (dir.path().join("config"), dir.path().join("hooks"));
        std::fs::write(&file, "x").unwrap();
        std::fs::create_dir(&sub).unwrap();
        let mut text = String::new();
        for (p, kind) in [(&file, "ro-bind"), (&sub, "ro-bind"), (&file, "bind")] {
            let dst = if kind == "bind" { "/rw-file" } else { "" };
            let dst = if dst.is_empty() {
                p.to_str().unwrap()
            } else {
                dst
            };
            text.push_str(&format!(
                "[[mount]]\ntype = \"{kind}\"\nsrc = \"{}\"\ndst = \"{dst}\"\n",
                p.display()
            ));
        }
        let e = export_of(&text);
        let opts = |dst: &Path| mount(&e, dst.to_str().unwrap()).options.clone();
        assert_eq!(opts(&file), ["rbind", "nosuid", "nodev", "ro"]);
        assert_eq!(opts(&sub), ["rbind", "rnosuid", "rnodev", "rro"]);
        assert_eq!(opts(Path::new("/rw-file")), ["rbind", "nosuid", "nodev"]);
    }

    /// User-mode networking is listed as lost; the network namespace stays.
    #[test]
    fn a_user_mode_network_is_listed_and_the_namespace_kept() {
        let e = export_of("[network]\nmode = \"user\"\ndeny = [\"10.0.0.0/8\"]\n");
        let g = gap(&e, "network").expect("the network is listed");
        assert_eq!(g.kind, GapKind::Lost);
        assert!(g.what.contains(" egress rule(s)"), "{}", g.what);
        assert!(
            e.config
                .linux
                .namespaces
                .iter()
                .any(|n| n.kind == "network")
        );
        assert!(e.config.annotations.contains_key("org.hutch.lost.network"));
        for text in ["", "[network]\nmode = \"host\"\n"] {
            assert!(gap(&export_of(text), "network").is_none(), "{text}");
        }
    }

    #[test]
    fn volumes_are_bound_from_the_store_and_listed() {
        let e = export_of(
            "[volumes.cache]\ndst = \"/cache\"\nmode = \"ro\"\n[volumes.scratch]\ndst = \"/scratch\"\ntmp = true\n",
        );
        let cache = mount(&e, "/cache");
        assert_eq!(cache.source, "/home/u/.local/share/hutch/volumes/cache");
        assert_eq!(cache.options, ["rbind", "rnosuid", "rnodev", "rro"]);
        // A tmp volume never binds the store's .tmp directory.
        let scratch = mount(&e, "/scratch");
        assert_eq!(
            (scratch.kind.as_str(), scratch.source.as_str()),
            ("tmpfs", "tmpfs")
        );
        for key in ["volume.cache", "volume.scratch"] {
            assert_eq!(gap(&e, key).map(|g| g.kind), Some(GapKind::Lost), "{key}");
        }
    }

    #[test]
    fn entries_on_the_root_are_made_and_those_inside_mounts_are_listed() {
        let e = export_of(
            "[[mount]]\ntype = \"tmpfs\"\ndst = \"/data\"\n\
             [[mount]]\ntype = \"dir\"\ndst = \"/data/sub\"\n\
             [[mount]]\ntype = \"dir\"\ndst = \"/srv/x\"\nmode = \"0700\"\n\
             [[mount]]\ntype = \"file\"\ndst = \"/motd\"\ncontent = \"hi\"\n\
             [[mount]]\ntype = \"symlink\"\ndst = \"/link\"\ntarget = \"srv/x\"\n",
        );
        assert_eq!(
            e.entries,
            [
                RootEntry::Dir {
                    path: "/srv/x".into(),
                    mode: 0o700
                },
                RootEntry::File {
                    path: "/motd".into(),
                    content: "hi".into(),
                    mode: 0o644
                },
                RootEntry::Symlink {
                    path: "/link".into(),
                    target: "srv/x".into()
                },
            ]
        );
        let g = gap(&e, "mount./data/sub").unwrap();
        assert_eq!(g.kind, GapKind::Lost);
        assert!(g.what.contains("inside a mount"), "{}", g.what);
        assert_eq!(e.root, RootContent::Empty);
    }

    #[test]
    fn a_dev_elsewhere_and_proc_without_a_pid_namespace() {
        let e = export_of(
            "[namespaces]\npid = false\n[[mount]]\ntype = \"dev\"\ndst = \"/dev2\"\n[[mount]]\ntype = \"proc\"\ndst = \"/proc\"\n",
        );
        assert!(gap(&e, "mount./dev2").is_some());
        assert!(e.config.mounts.iter().all(|m| m.destination != "/dev2"));
        let proc = mount(&e, "/proc");
        assert_eq!(
            (proc.kind.as_str(), proc.source.as_str()),
            ("bind", "/proc")
        );
        assert!(proc.options.contains(&"rnoexec".to_string()));
        assert!(
            e.config
                .linux
                .readonly_paths
                .contains(&"/proc/sys".to_string())
        );
        assert!(
            e.config
                .linux
                .masked_paths
                .contains(&"/proc/kcore".to_string())
        );
        assert!(!e.config.linux.namespaces.iter().any(|n| n.kind == "pid"));
    }

    #[test]
    fn limits_become_resources_exactly() {
        let e = export_of(
            "[limits]\nmemory = \"512M\"\nswap = \"64M\"\ncpu = 0.5\ncpu_weight = 200\npids = 64\nio_weight = 50\n",
        );
        let r = e.config.linux.resources.as_ref().unwrap();
        let m = r.memory.as_ref().unwrap();
        assert_eq!(m.limit, Some(512 << 20));
        // The spec's swap counts memory too.
        assert_eq!(m.swap, Some((512 << 20) + (64 << 20)));
        let cpu = r.cpu.as_ref().unwrap();
        assert_eq!((cpu.quota, cpu.period), (50_000, 100_000));
        assert_eq!(r.pids.as_ref().unwrap().limit, 64);
        assert_eq!(r.unified["cpu.weight"], "200");
        assert_eq!(r.unified["io.weight"], "default 50");
        assert_eq!(
            gap(&e, "limits.unified").map(|g| g.kind),
            Some(GapKind::Differs)
        );

        let e = export_of("[limits]\nswap = 0\nenforce = \"best-effort\"\n");
        let r = e.config.linux.resources.as_ref().unwrap();
        assert_eq!(r.memory, None);
        assert_eq!(r.unified["memory.swap.max"], "0");
        assert!(gap(&e, "limits.enforce").is_some());
        assert_eq!(export_of("").config.linux.resources, None);
    }

    #[test]
    fn rlimits_user_and_namespaces() {
        let e = export_of(
            "identity = \"42:7\"\n[rlimits]\nnofile = 1024\nstack = \"unlimited\"\n[namespaces]\nnet = false\n",
        );
        let p = &e.config.process;
        assert_eq!(
            p.rlimits,
            [
                Rlimit {
                    kind: "RLIMIT_NOFILE".into(),
                    hard: 1024,
                    soft: 1024
                },
                Rlimit {
                    kind: "RLIMIT_STACK".into(),
                    hard: u64::MAX,
                    soft: u64::MAX
                },
            ]
        );
        assert_eq!(p.user, User { uid: 42, gid: 7 });
        let l = &e.config.linux;
        assert_eq!(
            (l.uid_mappings[0], l.gid_mappings[0]),
            (
                IdMapping {
                    container_id: 42,
                    host_id: 1000,
                    size: 1
                },
                IdMapping {
                    container_id: 7,
                    host_id: 1000,
                    size: 1
                }
            )
        );
        // No network namespace: the host's network, as `net = false` says.
        let kinds: Vec<&str> = l.namespaces.iter().map(|n| n.kind.as_str()).collect();
        assert_eq!(kinds, ["pid", "ipc", "uts", "mount", "cgroup", "user"]);
        assert!(p.no_new_privileges && p.capabilities == Capabilities::default());
    }

    #[test]
    fn what_is_lost_follows_the_profile() {
        let lost = |e: &Export| -> Vec<String> {
            e.gaps
                .iter()
                .filter(|g| g.kind == GapKind::Lost)
                .map(|g| g.key.clone())
                .collect()
        };
        assert_eq!(lost(&export_of("")), ["landlock", "init"]);
        assert_eq!(
            lost(&export_of("terminal = \"inherit\"\n")),
            ["terminal", "landlock", "init"]
        );
        // A profile meant for export loses nothing.
        let e = export_of("init = false\n[landlock]\nfs = \"off\"\nscope = \"off\"\n");
        assert!(lost(&e).is_empty(), "{:?}", e.gaps);
        assert!(!e.config.annotations.contains_key("org.hutch.landlock"));
        // And without a seccomp filter there is none to differ.
        let e = export_of("[seccomp]\nenforce = \"off\"\n");
        assert!(e.config.linux.seccomp.is_none());
        assert!(gap(&e, "seccomp.x32").is_none());
    }

    #[test]
    fn a_directory_root_is_used_in_place_read_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("proc")).unwrap();
        let root = dir.path().display();
        let e = export_of(&format!(
            "root = \"{root}\"\n[[mount]]\ntype = \"proc\"\ndst = \"/proc\"\n[[mount]]\ntype = \"dir\"\ndst = \"/made\"\n"
        ));
        assert_eq!(e.root, RootContent::HostDir(dir.path().to_path_buf()));
        assert_eq!(e.config.root.path, root.to_string());
        assert!(e.config.root.readonly);
        assert!(e.entries.is_empty());
        assert!(
            gap(&e, "mount./made")
                .unwrap()
                .what
                .contains("host directory")
        );
        assert!(gap(&e, "root.writable").is_none());
        let e = export_of(&format!("root = \"{root}\"\nwritable = \"tmpfs\"\n"));
        assert!(e.config.root.readonly, "never written in place");
        assert_eq!(
            gap(&e, "root.writable").map(|g| g.kind),
            Some(GapKind::Lost)
        );
    }
}
