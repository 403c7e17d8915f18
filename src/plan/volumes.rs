//! Planning `[volumes.NAME]`: each volume becomes a [`MountOp::Volume`],
//! appended after the `[[mount]]` entries. (The guard that keeps the volume
//! store out of reach of `[[mount]]` binds is [`super::exposure`].)

use std::collections::BTreeMap;
use std::path::Path;
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
            lands: None,
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
