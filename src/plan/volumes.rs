//! Planning `[volumes.NAME]`: each volume becomes a [`MountOp::Volume`],
//! appended after the `[[mount]]` entries. Also the guard that keeps hutch's
//! own state (the registry of running sandboxes, the volume store) out of
//! reach of `[[mount]]` binds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::mounts::{MountOp, PlannedMount, absolute_path};
use crate::diag::{Diagnostic, SourceFile};
use crate::host::Host;
use crate::paths;
use crate::profile::schema::VolumeMode;
use crate::profile::{Layer, Profile, ProfileError};

/// A key of a volume and the layer that set it last.
struct Keyed<'a, T> {
    value: &'a Spanned<T>,
    layer: &'a Layer,
}

impl<T> Keyed<'_, T> {
    fn diag(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(message).at(&self.layer.file, self.value.span())
    }
}

/// One volume after layering: every key from the last layer that sets it.
struct Merged<'a> {
    /// The table key (`[volumes.NAME]`) in the last layer that has it.
    name: Keyed<'a, String>,
    dst: Option<Keyed<'a, String>>,
    mode: Option<Keyed<'a, VolumeMode>>,
    shared: Option<Keyed<'a, bool>>,
    tmp: Option<Keyed<'a, bool>>,
}

fn origin(file: &Arc<SourceFile>, span: std::ops::Range<usize>) -> String {
    let (line, col) = file.line_col(span.start);
    format!("{}:{line}:{col}", file.name)
}

pub fn plan_volumes(profile: &Profile, host: &Host) -> Result<Vec<PlannedMount>, ProfileError> {
    let mut merged: BTreeMap<&str, Merged<'_>> = BTreeMap::new();
    for layer in &profile.layers {
        for (name, entry) in layer.raw.volumes.iter().flatten() {
            if !paths::valid_name(name.get_ref()) {
                return Err(
                    Diagnostic::new(format!("invalid volume name {:?}", name.get_ref()))
                        .at(&layer.file, name.span())
                        .help(paths::VOLUME_NAME_RULE)
                        .into(),
                );
            }
            let m = merged.entry(name.get_ref()).or_insert_with(|| Merged {
                name: Keyed { value: name, layer },
                dst: None,
                mode: None,
                shared: None,
                tmp: None,
            });
            m.name = Keyed { value: name, layer };
            if let Some(v) = &entry.dst {
                m.dst = Some(Keyed { value: v, layer });
            }
            if let Some(v) = &entry.mode {
                m.mode = Some(Keyed { value: v, layer });
            }
            if let Some(v) = &entry.shared {
                m.shared = Some(Keyed { value: v, layer });
            }
            if let Some(v) = &entry.tmp {
                m.tmp = Some(Keyed { value: v, layer });
            }
        }
    }
    if merged.is_empty() {
        return Ok(Vec::new());
    }
    let Some(store) = paths::volume_store(host) else {
        let first = merged.values().next().expect("not empty");
        return Err(first
            .name
            .diag("cannot locate the volume store: neither XDG_DATA_HOME nor HOME is set to an absolute path")
            .help("set HOME (volumes live in $XDG_DATA_HOME/hutch/volumes, by default ~/.local/share/hutch/volumes)")
            .into());
    };

    let mut out: Vec<PlannedMount> = Vec::new();
    for (name, m) in &merged {
        let Some(dst_at) = &m.dst else {
            return Err(m
                .name
                .diag(format!("volume `{name}` has no `dst`"))
                .help("add `dst = \"/path/inside/the/sandbox\"` to this table")
                .into());
        };
        let dst = absolute_path(dst_at.value, host, dst_at.layer, "dst")?;
        if dst == Path::new("/") {
            return Err(dst_at
                .diag("a volume destination cannot be `/`")
                .help("mount the volume at a directory below the root, e.g. `dst = \"/data\"`")
                .into());
        }
        let readonly = m
            .mode
            .as_ref()
            .is_some_and(|k| *k.value.get_ref() == VolumeMode::Ro);
        let shared = m.shared.as_ref().is_some_and(|k| *k.value.get_ref());
        let tmp = m.tmp.as_ref().is_some_and(|k| *k.value.get_ref());
        if tmp && shared {
            let at = m.shared.as_ref().expect("shared is set");
            return Err(at
                .diag(format!("volume `{name}`: a `tmp` volume cannot be `shared`"))
                .help("a tmp volume is a fresh directory for one sandbox; drop `shared`, or `tmp` to keep the data")
                .into());
        }
        if tmp && readonly {
            let at = m.mode.as_ref().expect("mode is set");
            return Err(at
                .diag(format!("volume `{name}`: a `tmp` volume cannot be read-only"))
                .help("a tmp volume starts empty: a read-only one could never hold anything; use `mode = \"rw\"`")
                .into());
        }
        let src = if tmp {
            store.join(paths::VOLUME_TMP_DIR)
        } else {
            store.join(name)
        };
        out.push(PlannedMount {
            op: MountOp::Volume {
                name: name.to_string(),
                src,
                dst,
                readonly,
                shared,
                tmp,
            },
            from: origin(&dst_at.layer.file, dst_at.value.span()),
        });
    }
    // Shallowest first, so a volume inside another one's destination is
    // mounted on top of it, not hidden under it.
    out.sort_by(|a, b| a.op.dst().cmp(b.op.dst()));
    for pair in out.windows(2) {
        if pair[0].op.dst() == pair[1].op.dst() {
            let (MountOp::Volume { name: a, .. }, MountOp::Volume { name: b, .. }) =
                (&pair[0].op, &pair[1].op)
            else {
                unreachable!("only volumes here");
            };
            let dst_of = |n: &str| merged[n].dst.as_ref().expect("checked above");
            return Err(dst_of(b)
                .diag(format!(
                    "volumes `{a}` and `{b}` have the same destination {}",
                    pair[0].op.dst().display()
                ))
                .label(format!("`{a}` is mounted there too ({})", pair[0].from))
                .help("give each volume its own `dst`")
                .into());
        }
    }
    Ok(out)
}

/// Both spellings of a path: as written and with symlinks resolved (when it
/// exists), so that neither a symlinked `$HOME` nor a symlinked bind source
/// slips past a comparison.
fn forms(p: &Path) -> Vec<PathBuf> {
    let mut v = vec![p.to_path_buf()];
    if let Ok(c) = std::fs::canonicalize(p)
        && c != p
    {
        v.push(c);
    }
    v
}

/// Refuses a `[[mount]]` bind of `src` that would put hutch's own state
/// within the sandbox's reach:
///
/// - the runtime directory holding the registry of running sandboxes, from
///   which `hutch exec` takes the confinement to apply (a sandbox that could
///   rewrite a record, or plant a fake one, could make `exec` join it less
///   confined): never bound;
/// - the volume store: never bound (that would bypass the locks and expose
///   every volume).
///
/// A bind of a directory *above* either is fine: [`state_masks`] hides them
/// inside the sandbox.
///
/// Returns the message and the help text.
pub fn check_exposure(src: &Path, host: &Host) -> Result<(), (String, String)> {
    let srcs = forms(src);
    let runtime = paths::runtime_dir(host);
    let store = paths::volume_store(host);
    let (runtime_forms, store_forms) = protected_forms(&runtime, store.as_deref());
    for r in &runtime_forms {
        for s in &srcs {
            if s.starts_with(r) {
                return Err((
                    format!(
                        "binding {} would expose hutch's registry of running sandboxes ({}) to the sandbox",
                        src.display(),
                        runtime.display()
                    ),
                    "`hutch exec` trusts that registry to confine what it starts; bind only the files the program needs from there".into(),
                ));
            }
        }
    }
    if let Some(store) = &store
        && store_forms
            .iter()
            .any(|v| srcs.iter().any(|s| s.starts_with(v)))
    {
        return Err((
            format!(
                "binding {} would expose hutch's volume store ({}) to the sandbox",
                src.display(),
                store.display()
            ),
            "declare the volume instead: `[volumes.NAME]` with `dst = ...` (it is then locked and opened safely)".into(),
        ));
    }
    Ok(())
}

/// Empty, inaccessible tmpfs mounts over hutch's registry and volume store
/// wherever a bind of a directory above them would show them inside the
/// sandbox (`cli` started in /tmp or in the home directory, say), and
/// likewise the host directories shown at `/` (`at_root`: a root directory
/// above them, `root = "~"`, say; see `RootPlan::host_dirs_at_root`):
/// mounted after everything else, so no entry uncovers them. Only paths
/// that exist are masked (the launcher creates the registry before
/// planning).
pub fn state_masks(mounts: &[PlannedMount], at_root: &[PathBuf], host: &Host) -> Vec<PlannedMount> {
    let runtime = paths::runtime_dir(host);
    let store = paths::volume_store(host);
    let (runtime_forms, store_forms) = protected_forms(&runtime, store.as_deref());
    let shown = shown_host_dirs(mounts, at_root);
    let mut out: Vec<PlannedMount> = Vec::new();
    for (protected, what) in [(&runtime_forms, "registry"), (&store_forms, "volume store")] {
        let Some(real) = protected.first() else {
            continue;
        };
        if !real.exists() {
            continue;
        }
        for (src, dst) in &shown {
            let inside = forms(src).iter().find_map(|s| {
                protected
                    .iter()
                    .find_map(|p| {
                        p.strip_prefix(s)
                            .ok()
                            .filter(|rest| !rest.as_os_str().is_empty())
                    })
                    .map(|rest| dst.join(rest))
            });
            if let Some(path) = inside
                && !out.iter().any(|o| o.op.dst() == path)
            {
                out.push(PlannedMount {
                    op: MountOp::Tmpfs {
                        dst: path,
                        size: Some(4096),
                        mode: 0,
                    },
                    from: format!("hutch: hides its {what} (under {})", src.display()),
                });
            }
        }
    }
    out
}

/// The host directories the sandbox sees, and where: each bind's source
/// at its destination, and `at_root` at `/`.
fn shown_host_dirs<'a>(
    mounts: &'a [PlannedMount],
    at_root: &'a [PathBuf],
) -> Vec<(&'a Path, &'a Path)> {
    let binds = mounts.iter().filter_map(|m| match &m.op {
        MountOp::Bind { src, dst, .. } => Some((src.as_path(), dst.as_path())),
        _ => None,
    });
    let root = at_root.iter().map(|dir| (dir.as_path(), Path::new("/")));
    binds.chain(root).collect()
}

type Forms = (Vec<PathBuf>, Vec<PathBuf>);

thread_local! {
    /// The spellings of the protected directories, resolved once per
    /// planning rather than once per bind.
    static PROTECTED: std::cell::RefCell<Option<(PathBuf, Option<PathBuf>, Forms)>> =
        const { std::cell::RefCell::new(None) };
}

fn protected_forms(runtime: &Path, store: Option<&Path>) -> Forms {
    PROTECTED.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some((r, s, forms)) = cell.as_ref()
            && r == runtime
            && s.as_deref() == store
        {
            return forms.clone();
        }
        let forms = (forms(runtime), store.map(forms).unwrap_or_default());
        *cell = Some((
            runtime.to_path_buf(),
            store.map(Path::to_path_buf),
            forms.clone(),
        ));
        forms
    })
}

/// The `--explain` line of a volume.
pub fn explain(
    name: &str,
    src: &Path,
    dst: &Path,
    readonly: bool,
    shared: bool,
    tmp: bool,
) -> String {
    let mode = if readonly { "ro" } else { "rw" };
    if tmp {
        format!(
            "volume   {} ← {}/SANDBOX/{name} (tmp volume `{name}`: {mode},nosuid,nodev; created empty for this sandbox, removed when it exits)",
            dst.display(),
            src.display()
        )
    } else {
        let lock = if shared {
            "shared lock: other sandboxes may use it at the same time"
        } else {
            "exclusive lock: one sandbox at a time"
        };
        format!(
            "volume   {} ← {} (volume `{name}`: {mode},nosuid,nodev; {lock}; created 0700 on first use, never deleted implicitly)",
            dst.display(),
            src.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Request, build};
    use crate::profile::{ProfileRef, SearchPath, load};

    /// Plans profile `top` from `files`, for a host whose HOME is `home`.
    fn plan(files: &[(&str, &str)], home: &Path) -> Result<crate::plan::Plan, String> {
        let dir = tempfile::tempdir().unwrap();
        for (n, text) in files {
            std::fs::write(dir.path().join(format!("{n}.toml")), text).unwrap();
        }
        let search_path = dir.path().display().to_string();
        let host = Host::fixed(
            1000,
            1000,
            &[
                ("HOME", home.to_str().unwrap()),
                ("HUTCH_PROFILE_PATH", &search_path),
            ],
            "/",
        );
        let search = SearchPath::standard(&host);
        let profile = load(&ProfileRef::Name("top".into()), &search).map_err(|e| e.to_string())?;
        let request = Request {
            command: vec!["true".into()],
            command_optional: false,
            image: None,
        };
        build(&profile, &host, &request).map_err(|e| e.to_string())
    }

    fn volumes(p: &crate::plan::Plan) -> Vec<&MountOp> {
        p.mounts
            .iter()
            .map(|m| &m.op)
            .filter(|op| matches!(op, MountOp::Volume { .. }))
            .collect()
    }

    #[test]
    fn keys_layer_one_by_one_and_volumes_come_last_shallowest_first() {
        let base = "version = 1\n[[mount]]\ntype = \"tmpfs\"\ndst = \"/home/u\"\n\
                    [volumes.inner]\ndst = \"~/data/inner\"\n[volumes.outer]\ndst = \"~/data\"\n";
        let top =
            "version = 1\nextends = [\"base\"]\n[volumes.outer]\nshared = true\nmode = \"ro\"\n";
        let p = plan(&[("base", base), ("top", top)], Path::new("/home/u")).unwrap();
        assert!(matches!(p.mounts[0].op, MountOp::Tmpfs { .. }));
        let v = volumes(&p);
        assert_eq!(
            v[0],
            &MountOp::Volume {
                name: "outer".into(),
                src: "/home/u/.local/share/hutch/volumes/outer".into(),
                dst: "/home/u/data".into(),
                readonly: true,
                shared: true,
                tmp: false,
            }
        );
        assert_eq!(v[1].dst(), Path::new("/home/u/data/inner"));
        // Landlock lets the payload read a read-only volume, write the other.
        let rules = &p.security.landlock.fs_rules;
        if !rules.is_empty() {
            let rule = |d: &str| {
                rules
                    .iter()
                    .find(|r| r.path == Path::new(d))
                    .unwrap()
                    .access
            };
            assert_eq!(rule("/home/u/data"), crate::plan::security::access::READ);
            assert_ne!(
                rule("/home/u/data/inner") & crate::plan::security::access::WRITE_FILE,
                0
            );
        }
    }

    #[test]
    fn tmp_volumes_live_below_the_stores_tmp_directory() {
        let top = "version = 1\n[volumes.s]\ndst = \"/s\"\ntmp = true\n";
        let p = plan(&[("top", top)], Path::new("/home/u")).unwrap();
        assert!(matches!(
            volumes(&p)[0],
            MountOp::Volume { src, tmp: true, shared: false, .. }
                if src == Path::new("/home/u/.local/share/hutch/volumes/.tmp")
        ));
    }

    #[test]
    fn binds_of_the_store_are_refused_binds_above_it_are_not() {
        let home = tempfile::tempdir().unwrap();
        let store = home.path().join(".local/share/hutch/volumes");
        std::fs::create_dir_all(store.join("v")).unwrap();
        for (src, refused) in [
            ("~/.local/share/hutch/volumes/v", true),
            ("~/.local/share/hutch/volumes", true),
            ("~/.local/share", false),
            ("~", false),
        ] {
            for kind in ["bind", "ro-bind"] {
                let top = format!(
                    "version = 1\n[[mount]]\ntype = \"{kind}\"\nsrc = \"{src}\"\ndst = \"/x\"\n"
                );
                let r = plan(&[("top", &top)], home.path());
                assert_eq!(r.is_err(), refused, "{kind} {src}: {r:?}");
                if let Err(e) = r {
                    assert!(e.contains("would expose hutch's volume store"), "{e}");
                }
            }
        }
        // A symlink does not hide it.
        std::os::unix::fs::symlink(&store, home.path().join("link")).unwrap();
        let top = "version = 1\n[[mount]]\ntype = \"ro-bind\"\nsrc = \"~/link\"\ndst = \"/x\"\n";
        let e = plan(&[("top", top)], home.path()).unwrap_err();
        assert!(e.contains("would expose hutch's volume store"), "{e}");
    }
}
