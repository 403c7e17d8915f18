//! Planning the filesystem: `[[mount]]` entries from all layers → an ordered
//! list of resolved, validated mount operations.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::diag::Diagnostic;
use crate::host::Host;
use crate::profile::schema::{MountEntry, MountKind};
use crate::profile::{Layer, Profile, ProfileError, vars};

/// Device nodes a minimal `/dev` gets, bound from the host.
pub const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Entries of /proc a sandbox may read but never change.
pub const PROC_READONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus"];
/// Entries of /proc that reveal the host's memory, keys or timers: hidden.
pub const PROC_MASKED: &[&str] = &["kcore", "keys", "timer_list", "sched_debug"];

/// One step of building the sandbox's filesystem, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum MountOp {
    /// A recursive bind of a host path. Always nosuid; nodev unless `devices`;
    /// `readonly` applies to every submount.
    Bind {
        src: PathBuf,
        dst: PathBuf,
        readonly: bool,
        devices: bool,
    },
    Tmpfs {
        dst: PathBuf,
        size: Option<u64>,
        mode: u32,
    },
    /// A procfs for the sandbox's pid namespace.
    Proc {
        dst: PathBuf,
    },
    /// A read-only tmpfs with the nodes of [`DEV_NODES`] bound from the host,
    /// a private devpts (`pts`, `ptmx`), a writable `shm` and the usual symlinks.
    Dev {
        dst: PathBuf,
    },
    Dir {
        dst: PathBuf,
        mode: u32,
    },
    Symlink {
        target: PathBuf,
        dst: PathBuf,
    },
    File {
        dst: PathBuf,
        content: String,
        mode: u32,
        /// Mounted read-only over whatever is at `dst` (a file of a
        /// read-only bind, or a symlink), instead of created there: the
        /// generated /etc/resolv.conf of `[network]`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        cover: bool,
    },
    /// A `[volumes.NAME]` directory from hutch's volume store (planned in
    /// `plan::volumes`), bound nosuid,nodev; mounted after every `[[mount]]`
    /// entry, shallowest destination first.
    Volume {
        name: String,
        /// The host directory: `<store>/NAME`; for a `tmp` volume the store's
        /// `.tmp` directory, below which the launch makes one for the sandbox.
        src: PathBuf,
        dst: PathBuf,
        readonly: bool,
        /// Several sandboxes may use it at once (shared lock).
        shared: bool,
        /// Created empty for this sandbox and removed when it exits.
        tmp: bool,
    },
}

impl MountOp {
    pub fn dst(&self) -> &Path {
        match self {
            MountOp::Bind { dst, .. }
            | MountOp::Tmpfs { dst, .. }
            | MountOp::Proc { dst }
            | MountOp::Dev { dst }
            | MountOp::Dir { dst, .. }
            | MountOp::Symlink { dst, .. }
            | MountOp::File { dst, .. }
            | MountOp::Volume { dst, .. } => dst,
        }
    }
}

/// An entry after layering, with the layer it came from.
struct Placed<'a> {
    entry: &'a MountEntry,
    layer: &'a Layer,
    dst: PathBuf,
}

/// Where a destination lands when a symlink inside the sandbox leads it
/// elsewhere (set by the landing pass, after every entry is planned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Landing {
    /// The path inside the sandbox the entry is mounted (or made) at.
    pub at: PathBuf,
    /// The first symlink on the way, as a path inside the sandbox.
    pub through: PathBuf,
}

/// A mount operation and where in the profile it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedMount {
    #[serde(flatten)]
    pub op: MountOp,
    /// `file:line:col` of the entry's `dst`.
    pub from: String,
    /// Where `dst` lands when a symlink inside the sandbox leads it
    /// elsewhere (see [`super::landing`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lands: Option<Landing>,
}

pub struct MountPlan {
    pub ops: Vec<PlannedMount>,
    /// Human-readable notes on entries left out (optional and missing).
    pub skipped: Vec<String>,
}

/// Plans the profile's `[[mount]]` entries, layered, in order.
pub fn plan_mounts(profile: &Profile, host: &Host) -> Result<MountPlan, ProfileError> {
    let placed = layer_entries(profile, host)?;
    let mut ops = Vec::with_capacity(placed.len());
    let mut skipped = Vec::new();
    for p in &placed {
        check_keys(p.entry, p.layer)?;
        match plan_entry(p, host)? {
            Planned::Op(op) => ops.push(PlannedMount {
                op,
                from: origin(p),
                lands: None,
            }),
            Planned::Skipped(note) => skipped.push(note),
        }
    }
    Ok(MountPlan { ops, skipped })
}

/// What one entry becomes.
enum Planned {
    Op(MountOp),
    /// Left out (optional, its source missing), with a note for `--explain`.
    Skipped(String),
}

fn plan_entry(p: &Placed<'_>, host: &Host) -> Result<Planned, ProfileError> {
    let e = p.entry;
    let mode = |default| e.mode.as_ref().map_or(default, |m| m.get_ref().0);
    Ok(Planned::Op(match *e.kind.get_ref() {
        kind @ (MountKind::RoBind | MountKind::Bind | MountKind::DevBind) => {
            return plan_bind(p, kind, host);
        }
        MountKind::Tmpfs => MountOp::Tmpfs {
            dst: p.dst.clone(),
            size: e.size.as_ref().map(|s| s.get_ref().0),
            mode: mode(0o755),
        },
        MountKind::Proc => MountOp::Proc { dst: p.dst.clone() },
        MountKind::Dev => MountOp::Dev { dst: p.dst.clone() },
        MountKind::Dir => MountOp::Dir {
            dst: p.dst.clone(),
            mode: mode(0o755),
        },
        MountKind::Symlink => plan_symlink(p, host)?,
        MountKind::File => {
            let Some(content) = &e.content else {
                return Err(Diagnostic::new("a `file` entry needs `content`")
                    .at(&p.layer.file, e.kind.span())
                    .help("add `content = \"...\"` (it may be empty)")
                    .into());
            };
            MountOp::File {
                dst: p.dst.clone(),
                content: content.get_ref().clone(),
                mode: mode(0o644),
                cover: false,
            }
        }
    }))
}

/// A `ro-bind`, `bind` or `dev-bind` entry: the host path checked (it
/// exists, it exposes none of hutch's state, `/sys` and `/` only
/// read-only), or a symlink kept as one, or left out when optional.
fn plan_bind(p: &Placed<'_>, kind: MountKind, host: &Host) -> Result<Planned, ProfileError> {
    let e = p.entry;
    let file = &p.layer.file;
    let Some(src) = &e.src else {
        return Err(Diagnostic::new(format!(
            "a `{}` entry needs `src`, the host path to bind",
            kind.name()
        ))
        .at(file, e.kind.span())
        .help("add `src = \"/host/path\"` to this entry")
        .into());
    };
    let src_path = absolute_path(src, host, p.layer, "src")?;
    let keep_symlink = e.keep_symlink.as_ref().is_some_and(|k| *k.get_ref());
    let on_host = host.fs_path(&src_path);
    if keep_symlink
        && let Ok(m) = std::fs::symlink_metadata(&on_host)
        && m.file_type().is_symlink()
    {
        let target = std::fs::read_link(&on_host).map_err(|err| {
            ProfileError::from(
                Diagnostic::new(format!(
                    "cannot read the symlink {}: {err}",
                    src_path.display()
                ))
                .at(file, src.span()),
            )
        })?;
        check_link_target(&p.dst, &target, file, src)?;
        return Ok(Planned::Op(MountOp::Symlink {
            target,
            dst: p.dst.clone(),
        }));
    }
    if std::fs::metadata(&on_host).is_err() {
        let optional = e.optional.as_ref().is_some_and(|o| *o.get_ref());
        if optional {
            return Ok(Planned::Skipped(format!(
                "{} {} → {} (optional; source missing)",
                kind.name(),
                src_path.display(),
                p.dst.display()
            )));
        }
        return Err(
            Diagnostic::new(format!("bind source {} does not exist", src_path.display()))
                .at(file, src.span())
                .label("missing on this machine")
                .help("create it, fix the path, or mark the entry `optional = true`")
                .into(),
        );
    }
    if kind != MountKind::RoBind && p.dst.starts_with("/sys") {
        return Err(Diagnostic::new(format!(
            "{} must be bound read-only: the kernel's settings live there",
            p.dst.display()
        ))
        .at(file, e.kind.span())
        .help("use `type = \"ro-bind\"`")
        .into());
    }
    if kind != MountKind::RoBind && src_path == Path::new("/") {
        return Err(Diagnostic::new(
            "refusing to bind the host's root directory writable into the sandbox",
        )
        .at(file, src.span())
        .help("bind it with `type = \"ro-bind\"`, or bind only the directories the program needs (with ${CWD}: start it from a project directory, not from /)")
        .into());
    }
    super::exposure::check_exposure(&src_path, host).map_err(|(what, help)| {
        ProfileError::from(Diagnostic::new(what).at(file, src.span()).help(help))
    })?;
    Ok(Planned::Op(MountOp::Bind {
        src: src_path,
        dst: p.dst.clone(),
        readonly: kind == MountKind::RoBind,
        devices: kind == MountKind::DevBind,
    }))
}

/// A `symlink` entry: its target expanded and checked.
fn plan_symlink(p: &Placed<'_>, host: &Host) -> Result<MountOp, ProfileError> {
    let file = &p.layer.file;
    let Some(target) = &p.entry.target else {
        return Err(Diagnostic::new("a `symlink` entry needs `target`")
            .at(file, p.entry.kind.span())
            .help("add `target = \"...\"`: what the link points to")
            .into());
    };
    let expanded = expand(target, host, p.layer)?;
    if expanded.is_empty() {
        return Err(Diagnostic::new("symlink target is empty")
            .at(file, target.span())
            .into());
    }
    let t = PathBuf::from(expanded);
    check_link_target(&p.dst, &t, file, target)?;
    Ok(MountOp::Symlink {
        target: t,
        dst: p.dst.clone(),
    })
}

fn origin(p: &Placed<'_>) -> String {
    let (line, col) = p.layer.file.line_col(p.entry.dst.span().start);
    format!("{}:{line}:{col}", p.layer.file.name)
}

/// Applies layering: entries are concatenated lowest layer first; an entry with
/// the destination of an inherited one replaces it in place; `remove` drops
/// inherited ones; two entries with one destination in a single file are an error.
fn layer_entries<'a>(profile: &'a Profile, host: &Host) -> Result<Vec<Placed<'a>>, ProfileError> {
    let mut out: Vec<Placed<'a>> = Vec::new();
    for layer in &profile.layers {
        for r in layer.raw.remove.iter().flatten() {
            let dst = absolute_path(r, host, layer, "remove")?;
            let before = out.len();
            out.retain(|p| p.dst != dst);
            if out.len() == before {
                return Err(Diagnostic::new(format!(
                    "`remove` names {}, but no inherited mount entry has that destination",
                    dst.display()
                ))
                .at(&layer.file, r.span())
                .help("`remove` lists destinations of [[mount]] entries from the profiles this one extends; `hutch run --explain` shows them")
                .into());
            }
        }
        // Duplicates are judged on the text as written: two different
        // expressions that happen to expand to one path (`${HOME}` and
        // `${CWD}` when started from home) simply stack, later over earlier.
        let inherited = out.len();
        let mut seen_here: Vec<(&str, usize)> = Vec::new();
        for entry in &layer.raw.mount {
            let dst = absolute_path(&entry.dst, host, layer, "dst")?;
            if dst == Path::new("/") {
                return Err(Diagnostic::new("a mount destination cannot be `/`")
                    .at(&layer.file, entry.dst.span())
                    .help("the sandbox root is built by hutch; mount things below it")
                    .into());
            }
            let written = entry.dst.get_ref().trim_end_matches('/');
            if let Some((_, first)) = seen_here.iter().find(|(d, _)| *d == written) {
                let (line, _) = layer.file.line_col(*first);
                return Err(Diagnostic::new(format!(
                    "duplicate destination {}",
                    dst.display()
                ))
                .at(&layer.file, entry.dst.span())
                .label(format!("already a destination on line {line}"))
                .help("keep one entry per destination in a file; a profile that extends this one may reuse a destination to replace the entry")
                .into());
            }
            seen_here.push((written, entry.dst.span().start));
            // An inherited entry with the same destination is replaced in place.
            if let Some(pos) = out[..inherited].iter().rposition(|p| p.dst == dst) {
                out[pos] = Placed { entry, layer, dst };
            } else {
                out.push(Placed { entry, layer, dst });
            }
        }
    }
    Ok(out)
}

fn check_keys(e: &MountEntry, layer: &Layer) -> Result<(), ProfileError> {
    let kind = *e.kind.get_ref();
    let allowed = kind.allowed_keys();
    let present: [(&str, Option<std::ops::Range<usize>>); 6] = [
        ("src", e.src.as_ref().map(Spanned::span)),
        ("mode", e.mode.as_ref().map(Spanned::span)),
        ("size", e.size.as_ref().map(Spanned::span)),
        ("target", e.target.as_ref().map(Spanned::span)),
        ("content", e.content.as_ref().map(Spanned::span)),
        ("keep_symlink", e.keep_symlink.as_ref().map(Spanned::span)),
    ];
    for (key, span) in present {
        let Some(span) = span else { continue };
        if !allowed.contains(&key) {
            let mut takes: Vec<&str> = vec!["type", "dst", "optional"];
            takes.extend_from_slice(allowed);
            return Err(Diagnostic::new(format!(
                "key `{key}` does not apply to a `{}` entry",
                kind.name()
            ))
            .at(&layer.file, span)
            .help(format!(
                "a `{}` entry takes: {}",
                kind.name(),
                takes.join(", ")
            ))
            .into());
        }
    }
    Ok(())
}

fn expand(value: &Spanned<String>, host: &Host, layer: &Layer) -> Result<String, ProfileError> {
    vars::expand(value.get_ref(), host).map_err(|err| {
        let span = value_inner_span(&layer.file.text, value, err.offset());
        Diagnostic::new(err.message())
            .at(&layer.file, span)
            .help(err.help())
            .into()
    })
}

/// Points at the variable inside a string value when the source text allows
/// it (a plain quoted string), else at the whole value.
pub fn value_inner_span(
    text: &str,
    value: &Spanned<String>,
    offset: usize,
) -> std::ops::Range<usize> {
    let span = value.span();
    let raw = text.get(span.clone()).unwrap_or("");
    let quoted = raw.len() == value.get_ref().len() + 2
        && (raw.starts_with('"') || raw.starts_with('\''))
        && raw[1..raw.len() - 1] == *value.get_ref();
    if quoted {
        let start = span.start + 1 + offset;
        let rest = &value.get_ref()[offset..];
        let len = rest.find('}').map_or(rest.len(), |i| i + 1).max(1);
        start..start + len
    } else {
        span
    }
}

/// Expands variables and checks the result is an absolute path without `..`,
/// returning it with `.` components and repeated slashes removed.
pub(crate) fn absolute_path(
    value: &Spanned<String>,
    host: &Host,
    layer: &Layer,
    key: &str,
) -> Result<PathBuf, ProfileError> {
    let expanded = expand(value, host, layer)?;
    let path = Path::new(&expanded);
    if !path.is_absolute() {
        return Err(Diagnostic::new(format!(
            "key `{key}`: {expanded:?} is a relative path; paths in profiles must be absolute"
        ))
        .at(&layer.file, value.span())
        .help("start it with `/`, `~/` or a variable such as ${HOME} or ${CWD}")
        .into());
    }
    let mut clean = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                return Err(Diagnostic::new(format!(
                    "key `{key}`: {expanded:?} contains `..`"
                ))
                .at(&layer.file, value.span())
                .help("write the path without `..` components; hutch does not guess what they should resolve to")
                .into());
            }
            Component::Normal(n) => clean.push(n),
            Component::Prefix(_) => unreachable!("no path prefixes on Unix"),
        }
    }
    Ok(clean)
}

/// Where a symlink at `dst` with `target` points, as an absolute path that may
/// still contain `..` (checked by [`resolve_lexically`]).
fn link_absolute(dst: &Path, target: &Path) -> PathBuf {
    if target.is_absolute() {
        target.to_path_buf()
    } else {
        dst.parent().unwrap_or(Path::new("/")).join(target)
    }
}

/// Resolves `.` and `..` without touching the filesystem; `None` if the path
/// climbs above `/`.
pub fn resolve_lexically(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Some(out)
}

fn check_link_target(
    dst: &Path,
    target: &Path,
    file: &std::sync::Arc<crate::diag::SourceFile>,
    at: &Spanned<String>,
) -> Result<(), ProfileError> {
    if resolve_lexically(&link_absolute(dst, target)).is_none() {
        return Err(Diagnostic::new(format!(
            "the symlink {} → {} leads out of the sandbox root",
            dst.display(),
            target.display()
        ))
        .at(file, at.span())
        .help("use a target that stays inside the sandbox (fewer `..`, or an absolute path)")
        .into());
    }
    Ok(())
}

/// Empty, inaccessible tmpfs mounts over hutch's state directories (the
/// registry, the volume and image stores: `paths::state_dirs`) wherever a
/// bind of a directory above them would show them inside the sandbox, and
/// likewise below the host directories shown at `/` (`at_root`: a root directory above them, `root = "~"`, say; see
/// `RootPlan::host_dirs_at_root`): mounted after everything else, so no
/// entry uncovers them.
pub fn state_masks(mounts: &[PlannedMount], at_root: &[PathBuf], host: &Host) -> Vec<PlannedMount> {
    let binds = mounts.iter().filter_map(|m| match &m.op {
        MountOp::Bind { src, dst, .. } => Some((src.as_path(), dst.as_path())),
        _ => None,
    });
    let root = at_root.iter().map(|dir| (dir.as_path(), Path::new("/")));
    super::exposure::exposed_state(binds.chain(root), host)
        .into_iter()
        .map(|(dst, from)| PlannedMount {
            op: MountOp::Tmpfs {
                dst,
                size: Some(4096),
                mode: 0,
            },
            from,
            lands: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_resolution() {
        assert_eq!(
            resolve_lexically(Path::new("/a/b/../c")),
            Some(PathBuf::from("/a/c"))
        );
        assert_eq!(resolve_lexically(Path::new("/a/../..")), None);
        assert_eq!(
            link_absolute(Path::new("/bin"), Path::new("usr/bin")),
            PathBuf::from("/usr/bin")
        );
    }
}
