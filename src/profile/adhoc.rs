//! Additions to a profile for one run, from the command line
//! (`hutch run --bind SRC[:DST] --ro-bind SRC[:DST] --env NAME=VALUE
//! --network MODE --publish SPEC`): a
//! layer on top of the profile's, so that the planner checks them exactly
//! like profile entries, `[protect]` applies to them, and `--explain` shows
//! them. The layer's "file" is the command line itself: an error points at
//! the flag's value there.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use toml::Spanned;

use super::schema::{Env, MountEntry, MountKind, Namespaces, Network, NetworkMode, RawProfile};
use super::{Layer, ProfileError};
use crate::diag::{Diagnostic, SourceFile};

/// The name the layer is listed under (`--explain`, errors).
pub const SOURCE_NAME: &str = "command line";

/// What `hutch run` was given, flag by flag.
#[derive(Debug, Default, Clone)]
pub struct Additions {
    /// `--bind` values, in order.
    pub bind: Vec<String>,
    /// `--ro-bind` values, in order.
    pub ro_bind: Vec<String>,
    /// `--env` values, in order.
    pub env: Vec<String>,
    /// `--network`: `none`, `host` or `user`.
    pub network: Option<String>,
    /// `--publish` values (`[network] publish` entries), in order.
    pub publish: Vec<String>,
}

impl Additions {
    pub fn is_empty(&self) -> bool {
        self.bind.is_empty()
            && self.ro_bind.is_empty()
            && self.env.is_empty()
            && self.network.is_none()
            && self.publish.is_empty()
    }
}

/// The layer the additions make, `None` if there are none. `cwd` makes a
/// relative source absolute, as a shell user expects of `--bind .`.
pub fn layer(add: &Additions, cwd: Option<&Path>) -> Result<Option<Layer>, ProfileError> {
    if add.is_empty() {
        return Ok(None);
    }
    // The text the spans point into: every flag and its value, in order.
    let mut text = String::new();
    let mut flag = |name: &str, value: &str| -> (Range<usize>, Range<usize>) {
        if !text.is_empty() {
            text.push(' ');
        }
        let name_at = text.len()..text.len() + name.len();
        text.push_str(name);
        text.push(' ');
        let value_at = text.len()..text.len() + value.len();
        text.push_str(value);
        (name_at, value_at)
    };
    let mut binds = Vec::new();
    for (kind, name, values) in [
        (MountKind::Bind, "--bind", &add.bind),
        (MountKind::RoBind, "--ro-bind", &add.ro_bind),
    ] {
        for v in values {
            let (name_at, value_at) = flag(name, v);
            binds.push((kind, name_at, value_at, v.clone()));
        }
    }
    let env_spans: Vec<(Range<usize>, String)> = add
        .env
        .iter()
        .map(|v| (flag("--env", v).1, v.clone()))
        .collect();
    let network_at = add
        .network
        .as_ref()
        .map(|v| (flag("--network", v).1, v.clone()));
    let publish: Vec<Spanned<String>> = add
        .publish
        .iter()
        .map(|v| Spanned::new(flag("--publish", v).1, v.clone()))
        .collect();
    let file = SourceFile::new(SOURCE_NAME, None, text);
    let mut mount: Vec<MountEntry> = binds
        .into_iter()
        .map(|(kind, name_at, value_at, v)| bind_entry(kind, name_at, value_at, &v, cwd))
        .collect();
    // Shallowest destination first, so a bind inside another one given on
    // the same command line is mounted over it, not under it.
    mount.sort_by_key(|m| Path::new(m.dst.get_ref()).components().count());
    let env = env_entries(&env_spans, &file)?;
    let mode = match network_at {
        Some((at, v)) => Some(Spanned::new(at.clone(), network_mode(&v, at, &file)?)),
        None => None,
    };
    // `[namespaces] net` agreeing with the mode, from this layer too: a
    // lower layer's `net` is overridden by the flag, not in conflict
    // with it (`plan::network` compares the last of each).
    let namespaces = mode.as_ref().map(|m| Namespaces {
        net: Some(Spanned::new(m.span(), *m.get_ref() != NetworkMode::Host)),
        ..Namespaces::default()
    });
    let network = (mode.is_some() || !publish.is_empty()).then(|| Network {
        mode,
        publish: (!publish.is_empty()).then_some(publish),
        ..Network::default()
    });
    Ok(Some(Layer {
        file,
        raw: RawProfile {
            mount,
            env,
            namespaces,
            network,
            ..RawProfile::default()
        },
        is_override: false,
    }))
}

/// `--network`'s value: `none`, `host` or `user`.
fn network_mode(
    value: &str,
    at: Range<usize>,
    file: &Arc<SourceFile>,
) -> Result<NetworkMode, ProfileError> {
    match value {
        "none" => Ok(NetworkMode::None),
        "host" => Ok(NetworkMode::Host),
        "user" => Ok(NetworkMode::User),
        _ => Err(
            Diagnostic::new(format!("`--network` takes none, host or user, not {value:?}"))
                .at(file, at)
                .help("`none`: loopback only; `user`: a private network connected by pasta; `host`: the host's own network")
                .into(),
        ),
    }
}

/// `SRC[:DST]`: split at the last `:` that a `/` follows (a DST is
/// absolute); a relative SRC is taken from `cwd`. `$` is escaped: the
/// shell has expanded what it meant to.
fn bind_entry(
    kind: MountKind,
    name_at: Range<usize>,
    value_at: Range<usize>,
    value: &str,
    cwd: Option<&Path>,
) -> MountEntry {
    let split = value.rmatch_indices(":/").next().map(|(i, _)| i);
    let (src, dst, src_at, dst_at) = match split {
        Some(i) if i > 0 => (
            &value[..i],
            &value[i + 1..],
            value_at.start..value_at.start + i,
            value_at.start + i + 1..value_at.end,
        ),
        _ => (value, value, value_at.clone(), value_at.clone()),
    };
    let absolute = |p: &str| match cwd {
        Some(c) if !p.starts_with('/') && !p.starts_with('~') && !p.is_empty() => {
            c.join(p).display().to_string()
        }
        _ => p.to_string(),
    };
    let src = absolute(src);
    // Without a DST, the source's own (absolute) path.
    let dst = if split.is_some_and(|i| i > 0) {
        dst.to_string()
    } else {
        src.clone()
    };
    let literal = |s: &str| s.replace('$', "$$");
    MountEntry {
        kind: Spanned::new(name_at, kind),
        src: Some(Spanned::new(src_at, literal(&src))),
        dst: Spanned::new(dst_at, literal(&dst)),
        optional: None,
        mode: None,
        size: None,
        target: None,
        content: None,
        keep_symlink: None,
    }
}

/// `NAME=VALUE` each; the value literal.
fn env_entries(
    values: &[(Range<usize>, String)],
    file: &Arc<SourceFile>,
) -> Result<Option<Env>, ProfileError> {
    if values.is_empty() {
        return Ok(None);
    }
    let mut set = BTreeMap::new();
    for (at, v) in values {
        let Some((name, value)) = v.split_once('=') else {
            return Err(
                Diagnostic::new(format!("`--env` takes NAME=VALUE, not {v:?}"))
                    .at(file, at.clone())
                    .help("for example `--env LANG=C.UTF-8`")
                    .into(),
            );
        };
        set.insert(
            name.to_string(),
            Spanned::new(at.clone(), value.replace('$', "$$")),
        );
    }
    Ok(Some(Env {
        clear: None,
        keep: None,
        set: Some(set),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(bind: &[&str]) -> Vec<(String, String)> {
        let add = Additions {
            bind: bind.iter().map(|s| s.to_string()).collect(),
            ..Additions::default()
        };
        let l = layer(&add, Some(Path::new("/work"))).unwrap().unwrap();
        l.raw
            .mount
            .iter()
            .map(|m| {
                (
                    m.src.as_ref().unwrap().get_ref().clone(),
                    m.dst.get_ref().clone(),
                )
            })
            .collect()
    }

    #[test]
    fn sources_and_destinations() {
        assert_eq!(entries(&["/a"]), [("/a".into(), "/a".into())]);
        assert_eq!(entries(&["/a:/b"]), [("/a".into(), "/b".into())]);
        assert_eq!(
            entries(&["data"]),
            [("/work/data".into(), "/work/data".into())]
        );
        assert_eq!(entries(&["data:/d"]), [("/work/data".into(), "/d".into())]);
        // A `:` not followed by `/` belongs to the path.
        assert_eq!(entries(&["/a:b"]), [("/a:b".into(), "/a:b".into())]);
        // A `$` is literal.
        assert_eq!(entries(&["/a$x"]), [("/a$$x".into(), "/a$$x".into())]);
        // Shallowest destination first.
        assert_eq!(
            entries(&["/a/b/c", "/a"]),
            [
                ("/a".into(), "/a".into()),
                ("/a/b/c".into(), "/a/b/c".into())
            ]
        );
    }

    #[test]
    fn spans_point_at_the_values() {
        let add = Additions {
            ro_bind: vec!["/x:/y".into()],
            env: vec!["A=1".into()],
            ..Additions::default()
        };
        let l = layer(&add, None).unwrap().unwrap();
        assert_eq!(l.file.text, "--ro-bind /x:/y --env A=1");
        let m = &l.raw.mount[0];
        assert_eq!(&l.file.text[m.src.as_ref().unwrap().span()], "/x");
        assert_eq!(&l.file.text[m.dst.span()], "/y");
        assert_eq!(&l.file.text[m.kind.span()], "--ro-bind");
        let set = l.raw.env.unwrap().set.unwrap();
        assert_eq!(&l.file.text[set["A"].span()], "A=1");
        let bad = Additions {
            env: vec!["NOVALUE".into()],
            ..Additions::default()
        };
        let e = layer(&bad, None).unwrap_err();
        assert!(e.0.render().contains("`--env` takes NAME=VALUE"));
    }
}
