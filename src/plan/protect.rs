//! Safe defaults for profiles that show parts of the host's home:
//!
//! - `workdir`: the caller's working directory bound at its own path, unless
//!   it holds the user's whole world (the home directory or one above it,
//!   `/tmp` where tmux, ssh-agent and X11 keep their sockets, ...): reaching
//!   that is reaching the keys and code execution on the host;
//! - `[protect]`: credential stores hidden and escalation paths (shell
//!   startup files, autostart, a repository's hooks) made read-only wherever
//!   a bind would show them, whatever the bind (a profile's, `workdir`, one
//!   given on the command line).
//!
//! Masks are planned only for paths that exist on the host: nothing is ever
//! created on the host for them.

use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use super::mounts::{MountOp, PlannedMount, absolute_path};
use crate::diag::Diagnostic;
use crate::host::Host;
use crate::profile::schema::{Protect, Workdir};
use crate::profile::{Layer, Profile, ProfileError};

/// What `workdir` gives: a bind and the directory to start in, or a note
/// saying why the directory was left out.
pub enum WorkdirPlan {
    Bound(PlannedMount),
    LeftOut(String),
}

/// Plans `workdir`: `None` when the profile does not ask for it.
pub fn plan_workdir(profile: &Profile, host: &Host) -> Result<Option<WorkdirPlan>, ProfileError> {
    let Some(at) = profile.last(|p| p.workdir.as_ref()) else {
        return Ok(None);
    };
    let readonly = match at.get() {
        Workdir::None => return Ok(None),
        Workdir::ReadOnly => true,
        Workdir::ReadWrite => false,
    };
    let Some(cwd) = host.cwd() else {
        return Ok(Some(WorkdirPlan::LeftOut(
            "the working directory: it has no path (deleted?)".into(),
        )));
    };
    let (line, col) = at.file.line_col(at.value.span().start);
    let from = format!("{}:{line}:{col}", at.file.name);
    if let Some(why) = whole_world(cwd, host) {
        if readonly {
            return Ok(Some(WorkdirPlan::LeftOut(format!(
                "the working directory {} (workdir = \"read-only\"): {why}",
                cwd.display()
            ))));
        }
        return Err(at
            .diag(format!(
                "profile `{}` binds the working directory read-write, and {} {why}",
                profile.name,
                cwd.display()
            ))
            .help("run it from a project directory, or use `--profile default` to read this one read-only")
            .into());
    }
    if let Err((msg, help)) = super::exposure::check_exposure(cwd, host) {
        return Err(at.diag(msg).help(help).into());
    }
    Ok(Some(WorkdirPlan::Bound(PlannedMount {
        op: MountOp::Bind {
            src: cwd.to_path_buf(),
            dst: cwd.to_path_buf(),
            readonly,
            devices: false,
        },
        from,
        lands: None,
    })))
}

/// Directories whose sockets give code execution on the host.
const SOCKET_DIRS: &[&str] = &["/tmp", "/var/tmp", "/dev/shm", "/run"];
/// X11's and its friends' socket directories in /tmp.
const X_SOCKET_DIRS: &[&str] = &[".X11-unix", ".ICE-unix", ".XIM-unix", ".font-unix"];
/// Trees that are the kernel's or the system's, never a user's working data.
const SYSTEM_TREES: &[&str] = &["/proc", "/sys", "/dev", "/run"];

/// Why `dir` holds the user's whole world (and must not be bound as a
/// working directory), or `None` if it is an ordinary directory.
pub fn whole_world(dir: &Path, host: &Host) -> Option<String> {
    if dir == Path::new("/") {
        return Some("is `/`, the whole system and every home directory".into());
    }
    let dirs = forms(dir, host);
    if let Some(home) = host.home() {
        for h in forms(home, host) {
            if dirs.contains(&h) {
                return Some(
                    "is your home directory (ssh keys, shell startup files, every project)".into(),
                );
            }
        }
    }
    let runtime = host.runtime_dir();
    let sockets = SOCKET_DIRS
        .iter()
        .map(PathBuf::from)
        .chain(std::iter::once(runtime));
    for s in sockets {
        if dirs.iter().any(|d| s.starts_with(d)) {
            return Some(format!(
                "holds {}, where tmux, ssh-agent, X11 and the session bus keep their sockets",
                s.display()
            ));
        }
    }
    if let Some(home) = host.home()
        && forms(home, host)
            .iter()
            .any(|h| dirs.iter().any(|d| h.starts_with(d)))
    {
        return Some(format!("holds your home directory {}", home.display()));
    }
    for t in SYSTEM_TREES {
        if dirs.iter().any(|d| d.starts_with(t)) {
            return Some(format!("is in {t}, the system's own tree"));
        }
    }
    // Per-user socket directories in /tmp: X11's, ICE's, tmux's, ssh-agent's.
    for d in &dirs {
        if let Ok(rest) = d.strip_prefix("/tmp")
            && let Some(Component::Normal(first)) = rest.components().next()
        {
            let first = first.to_string_lossy();
            if X_SOCKET_DIRS.contains(&first.as_ref())
                || first.starts_with("tmux-")
                || first.starts_with("ssh-")
            {
                return Some(format!(
                    "is in /tmp/{first}, a directory of sockets that control host programs"
                ));
            }
        }
    }
    None
}

/// Both spellings of a host path: as written and with symlinks resolved
/// (looked up on the host's filesystem, see [`Host::fs_path`]).
fn forms(p: &Path, host: &Host) -> Vec<PathBuf> {
    let mut v = vec![p.to_path_buf()];
    if let Some(c) = std::fs::canonicalize(host.fs_path(p))
        .ok()
        .and_then(|c| host.host_path(&c))
        && c != p
    {
        v.push(c);
    }
    v
}

/// Whether host path `p` exists on the host, and is a symlink; a
/// directory.
fn lookup(p: &Path, host: &Host) -> Option<(bool, bool)> {
    let m = std::fs::symlink_metadata(host.fs_path(p)).ok()?;
    let is_dir = m.is_dir() || std::fs::metadata(host.fs_path(p)).is_ok_and(|m| m.is_dir());
    Some((m.file_type().is_symlink(), is_dir))
}

/// One `[protect]` entry, expanded, with where it was written.
struct Entry {
    path: PathBuf,
    from: String,
}

/// The entries of one `[protect]` list over all layers: unioned, an entry
/// `!PATH` dropping an inherited one.
fn collect(
    profile: &Profile,
    host: &Host,
    key: &str,
    list: fn(&Protect) -> Option<&Vec<Spanned<String>>>,
    relative: bool,
) -> Result<Vec<Entry>, ProfileError> {
    let mut out: Vec<Entry> = Vec::new();
    for layer in &profile.layers {
        for item in layer
            .raw
            .protect
            .as_ref()
            .and_then(list)
            .into_iter()
            .flatten()
        {
            let (negated, path) = entry_path(item, host, layer, key, relative)?;
            if negated {
                out.retain(|e| e.path != path);
            } else if !out.iter().any(|e| e.path == path) {
                let (line, col) = layer.file.line_col(item.span().start);
                out.push(Entry {
                    path,
                    from: format!("{}:{line}:{col}", layer.file.name),
                });
            }
        }
    }
    Ok(out)
}

/// An entry's path and whether it is negated (`!PATH`).
fn entry_path(
    item: &Spanned<String>,
    host: &Host,
    layer: &Layer,
    key: &str,
    relative: bool,
) -> Result<(bool, PathBuf), ProfileError> {
    let text = item.get_ref();
    let (negated, rest) = match text.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, text.as_str()),
    };
    if !relative {
        let value = Spanned::new(item.span(), rest.to_string());
        return Ok((negated, absolute_path(&value, host, layer, key)?));
    }
    let path = Path::new(rest);
    if rest.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Diagnostic::new(format!(
            "key `{key}`: {rest:?} must be a relative path without `.` or `..`"
        ))
        .at(&layer.file, item.span())
        .help("name a path below the top of a bind, e.g. \".git/hooks\"")
        .into());
    }
    Ok((negated, path.to_path_buf()))
}

/// A bind among the planned mounts, by index.
struct BindRef<'a> {
    index: usize,
    src: &'a Path,
    /// [`forms`] of `src`, resolved once.
    src_forms: Vec<PathBuf>,
    dst: &'a Path,
    readonly: bool,
    from: &'a str,
}

/// The masks and read-only re-binds `[protect]` asks for, over `ops`.
pub fn protect_masks(
    profile: &Profile,
    host: &Host,
    ops: &[PlannedMount],
) -> Result<Vec<PlannedMount>, ProfileError> {
    let hide = collect(profile, host, "protect.hide", |p| p.hide.as_ref(), false)?;
    let read_only = collect(
        profile,
        host,
        "protect.read_only",
        |p| p.read_only.as_ref(),
        false,
    )?;
    let in_binds = collect(
        profile,
        host,
        "protect.read_only_in_binds",
        |p| p.read_only_in_binds.as_ref(),
        true,
    )?;
    // The lists are checked above even without a bind (`hutch check`).
    if hide.is_empty() && read_only.is_empty() && in_binds.is_empty() {
        return Ok(Vec::new());
    }
    let binds: Vec<BindRef<'_>> = ops
        .iter()
        .enumerate()
        .filter_map(|(index, m)| match &m.op {
            MountOp::Bind {
                src, dst, readonly, ..
            } => Some(BindRef {
                index,
                src,
                src_forms: forms(src, host),
                dst,
                readonly: *readonly,
                from: &m.from,
            }),
            _ => None,
        })
        .collect();
    let mut out: Vec<PlannedMount> = Vec::new();
    for entry in &hide {
        hide_entry(host, entry, &binds, ops, &mut out)?;
    }
    for entry in &read_only {
        read_only_entry(host, entry, &binds, ops, &mut out);
    }
    for entry in &in_binds {
        for b in binds.iter().filter(|b| !b.readonly) {
            let on_host = b.src.join(&entry.path);
            // A symlink is left alone: binding it would bind its target.
            if !matches!(lookup(&on_host, host), Some((false, _))) {
                continue;
            }
            push_read_only(&mut out, on_host, b.dst.join(&entry.path), entry, ops, b);
        }
    }
    Ok(out)
}

/// Where a bind shows host path `p` inside the sandbox, if it does: every
/// spelling of the bind's source against every spelling of `p`.
fn shown_at(b: &BindRef<'_>, p_forms: &[PathBuf]) -> Option<PathBuf> {
    b.src_forms.iter().find_map(|s| {
        p_forms
            .iter()
            .find_map(|p| p.strip_prefix(s).ok().map(|rest| b.dst.join(rest)))
    })
}

/// Whether `p` (inside the sandbox) is still shown by bind `b` once every
/// mount is in: no later mount covers it.
fn topmost(ops: &[PlannedMount], b: &BindRef<'_>, inside: &Path) -> bool {
    !ops[b.index + 1..]
        .iter()
        .any(|m| inside.starts_with(m.op.dst()))
}

/// The spellings of an entry's path that exist on the host (a symlink's
/// own spelling left out: its target is what a bind shows).
fn existing_forms(path: &Path, host: &Host) -> Vec<PathBuf> {
    // Most entries do not exist: one lstat says so, before any resolving.
    if lookup(path, host).is_none() {
        return Vec::new();
    }
    forms(path, host)
        .into_iter()
        .filter(|f| matches!(lookup(f, host), Some((false, _))))
        .collect()
}

fn hide_entry(
    host: &Host,
    entry: &Entry,
    binds: &[BindRef<'_>],
    ops: &[PlannedMount],
    out: &mut Vec<PlannedMount>,
) -> Result<(), ProfileError> {
    let p_forms = existing_forms(&entry.path, host);
    if p_forms.is_empty() {
        return Ok(());
    }
    for b in binds {
        if let Some(inside) = shown_at(b, &p_forms) {
            if topmost(ops, b, &inside) && !out.iter().any(|m| m.op.dst() == inside) {
                let is_dir = lookup(&p_forms[0], host).is_some_and(|(_, dir)| dir);
                out.push(mask(inside, is_dir, entry));
            }
            continue;
        }
        // A bind of something inside the hidden path shows part of it.
        if b.src_forms
            .iter()
            .any(|s| p_forms.iter().any(|p| s.starts_with(p)))
        {
            return Err(Diagnostic::new(format!(
                "the bind of {} ({}) would show {}, which `[protect] hide` keeps out of sandboxes ({})",
                b.src.display(),
                b.from,
                entry.path.display(),
                entry.from
            ))
            .help(format!(
                "bind something else, or add \"!{}\" to `[protect] hide` in your profile if this program must see it",
                entry.path.display()
            ))
            .into());
        }
    }
    Ok(())
}

fn read_only_entry(
    host: &Host,
    entry: &Entry,
    binds: &[BindRef<'_>],
    ops: &[PlannedMount],
    out: &mut Vec<PlannedMount>,
) {
    let p_forms = existing_forms(&entry.path, host);
    if p_forms.is_empty() {
        return;
    }
    for b in binds.iter().filter(|b| !b.readonly) {
        if let Some(inside) = shown_at(b, &p_forms) {
            push_read_only(out, p_forms[0].clone(), inside, entry, ops, b);
        } else if b
            .src_forms
            .iter()
            .any(|s| p_forms.iter().any(|p| s.starts_with(p)))
        {
            // A writable bind inside a read-only path: the whole of it.
            push_read_only(out, b.src.to_path_buf(), b.dst.to_path_buf(), entry, ops, b);
        }
    }
}

fn push_read_only(
    out: &mut Vec<PlannedMount>,
    src: PathBuf,
    dst: PathBuf,
    entry: &Entry,
    ops: &[PlannedMount],
    b: &BindRef<'_>,
) {
    if !topmost(ops, b, &dst) || out.iter().any(|m| m.op.dst() == dst) {
        return;
    }
    out.push(PlannedMount {
        op: MountOp::Bind {
            src,
            dst,
            readonly: true,
            devices: false,
        },
        from: format!("{} ([protect] read-only)", entry.from),
        lands: None,
    });
}

/// Hides what is at `dst`: a directory under an empty, inaccessible tmpfs;
/// anything else under /dev/null, which cannot be opened (nodev).
fn mask(dst: PathBuf, is_dir: bool, entry: &Entry) -> PlannedMount {
    let op = if is_dir {
        MountOp::Tmpfs {
            dst,
            size: Some(4096),
            mode: 0,
        }
    } else {
        MountOp::Bind {
            src: PathBuf::from("/dev/null"),
            dst,
            readonly: true,
            devices: false,
        }
    };
    PlannedMount {
        op,
        from: format!("{} ([protect] hide)", entry.from),
        lands: None,
    }
}
