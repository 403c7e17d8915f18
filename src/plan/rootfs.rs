//! Planning the sandbox's root: an empty tmpfs (the default), a host
//! directory (`root = "DIR"`) or an image's layers (`image = "NAME"` or
//! `hutch run --image NAME`), with the writable layer `writable` decides.
//!
//! | root       | `writable = false`             | `"tmpfs"` / `"/DIR"`            |
//! |------------|--------------------------------|---------------------------------|
//! | a directory| read-only recursive bind       | overlayfs: dir below, changes up |
//! | an image   | overlayfs, mounted read-only   | overlayfs: layers below, changes up |
//!
//! An image also supplies defaults (command, environment, working
//! directory, user): see [`ImageRun`].

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::mounts::{MountOp, PlannedMount};
use super::security::{LandlockPlan, LandlockRule, access};
use crate::diag::SourceFile;
use crate::diag::{Diagnostic, sanitize};
use crate::host::Host;
use crate::image::ImageInfo;
use crate::image::run::{ImageDefaults, home_of};
use crate::profile::schema::Writable;
use crate::profile::{At, Layer, Profile, ProfileError};

/// How the root is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootPlan {
    pub source: RootSource,
    pub writable: Upper,
    /// Where the root was chosen: `file:line:col`, or `--image`.
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RootSource {
    /// A host directory.
    Dir { path: PathBuf },
    /// An image from the store.
    Image {
        name: String,
        /// The image config's digest.
        id: String,
        /// Its unpacked layers, **highest first** (the order overlayfs
        /// stacks them in), each directory once.
        layers: Vec<PathBuf>,
    },
}

/// The writable layer over the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Upper {
    /// None: the root is read-only.
    ReadOnly,
    /// A tmpfs: changes vanish when the sandbox exits.
    Tmpfs,
    /// A host directory: changes go to `path/upper` (overlayfs needs the
    /// work directory `path/work` beside it) and persist.
    Dir { path: PathBuf },
    /// The same in a named volume (`path` is its directory in the store),
    /// opened and locked through the volume store.
    Volume { name: String, path: PathBuf },
}

impl Upper {
    /// The directory holding `upper` and `work`, for the persistent kinds.
    pub fn persistent_dir(&self) -> Option<&Path> {
        match self {
            Upper::Dir { path } | Upper::Volume { path, .. } => Some(path),
            Upper::ReadOnly | Upper::Tmpfs => None,
        }
    }
}

impl RootPlan {
    /// Whether the root is an overlay (else a read-only bind of a directory).
    pub fn is_overlay(&self) -> bool {
        !matches!(
            (&self.source, &self.writable),
            (RootSource::Dir { .. }, Upper::ReadOnly)
        )
    }

    /// The host directories the sandbox sees at `/`: a root directory, and
    /// the `upper` directory a writable layer kept on the host shows there
    /// (an image's layers and a volume's directory are hutch's own).
    pub fn host_dirs_at_root(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let RootSource::Dir { path } = &self.source {
            dirs.push(path.clone());
        }
        if let Upper::Dir { path } = &self.writable {
            dirs.push(path.join("upper"));
        }
        dirs
    }

    /// The read-only layers, highest first.
    pub fn lowers(&self) -> Vec<&Path> {
        match &self.source {
            RootSource::Dir { path } => vec![path],
            RootSource::Image { layers, .. } => layers.iter().map(PathBuf::as_path).collect(),
        }
    }
}

/// An image asked for on the command line or in the profile, leased and
/// inspected by the caller of [`super::build`].
#[derive(Debug, Clone)]
pub struct ImageRequest {
    pub info: ImageInfo,
    /// `--image` on the command line (which overrides `root`/`image` in the
    /// profile).
    pub from_cli: bool,
}

/// What a profile says the root is.
pub enum Choice<'a> {
    Dir(At<'a, String>),
    Image(At<'a, String>),
}

/// The highest layer that sets `root` or `image` decides; setting both in
/// one file is an error.
pub fn choice(profile: &Profile) -> Result<Option<Choice<'_>>, ProfileError> {
    for layer in profile.layers.iter().rev() {
        let file = &layer.file;
        match (&layer.raw.root, &layer.raw.image) {
            (Some(_), Some(image)) => {
                return Err(Diagnostic::new("`root` and `image` are both set")
                    .at(file, image.span())
                    .label("the root is either a directory or an image")
                    .help("keep one of them: `root = \"/path/to/dir\"` or `image = \"NAME\"`")
                    .into());
            }
            (Some(value), None) => return Ok(Some(Choice::Dir(At { value, file }))),
            (None, Some(value)) => return Ok(Some(Choice::Image(At { value, file }))),
            (None, None) => {}
        }
    }
    Ok(None)
}

/// An image's contribution to the plan.
#[derive(Debug, Clone)]
pub struct ImageRun {
    pub name: String,
    pub defaults: ImageDefaults,
    /// Lowest first, as in [`ImageInfo::layers`].
    layers: Vec<PathBuf>,
}

impl ImageRun {
    /// The ids inside when the profile sets no `identity`: the image's
    /// `User`, else root (like docker).
    pub fn ids(&self) -> (u32, u32) {
        self.defaults.user.map_or((0, 0), |u| (u.uid, u.gid))
    }

    /// `Env`, and `HOME` for the user `uid` unless `Env` sets it: from the
    /// image's `/etc/passwd`, else `/`.
    pub fn env(&self, uid: u32) -> Vec<(String, String)> {
        let mut env = self.defaults.env.clone();
        if !env.iter().any(|(k, _)| k == "HOME") {
            let home = home_of(&self.layers, uid).unwrap_or_else(|| "/".to_string());
            env.push(("HOME".to_string(), home));
        }
        env
    }

    /// `Entrypoint` + `Cmd`; like docker, a command given on the command
    /// line replaces `Cmd`, not `Entrypoint`.
    pub fn argv(&self, command: &[OsString]) -> Result<Vec<OsString>, ProfileError> {
        let mut argv = crate::argv::from_strs(&self.defaults.entrypoint);
        if command.is_empty() {
            argv.extend(crate::argv::from_strs(&self.defaults.cmd));
        } else {
            argv.extend(command.iter().cloned());
        }
        if argv.is_empty() {
            return Err(Diagnostic::new(format!(
                "no command to run: none given after `--` and image {} has no Entrypoint or Cmd",
                self.name
            ))
            .help("run `hutch run --image NAME -- COMMAND [ARGS...]`")
            .into());
        }
        Ok(argv)
    }

    /// `WorkingDir` as an absolute path inside, and the entry that creates
    /// it if it is missing (docker does too).
    pub fn working_dir(&self) -> Result<Option<(PathBuf, Option<PlannedMount>)>, ProfileError> {
        let Some(w) = &self.defaults.working_dir else {
            return Ok(None);
        };
        // Spelled by its components: `/srv//app/.` is /srv/app, as mount
        // destinations always are.
        let dir: PathBuf = Path::new(w).components().collect();
        if !dir.is_absolute() || dir.components().any(|c| c == Component::ParentDir) {
            return Err(Diagnostic::new(format!(
                "image {}: WorkingDir {w:?} is not an absolute path without `..`",
                self.name
            ))
            .help("set `cwd` in the profile to override it")
            .into());
        }
        let create = (dir != Path::new("/")).then(|| PlannedMount {
            op: MountOp::Dir {
                dst: dir.clone(),
                mode: 0o755,
            },
            from: format!("image {} (WorkingDir)", self.name),
            lands: None,
        });
        Ok(Some((dir, create)))
    }
}

pub struct Rooted {
    pub root: Option<RootPlan>,
    pub image: Option<ImageRun>,
}

pub fn plan_root(
    profile: &Profile,
    host: &Host,
    image: Option<&ImageRequest>,
    checking: bool,
) -> Result<Rooted, ProfileError> {
    let writable_at = profile.last(|p| p.writable.as_ref());
    let chosen = choice(profile)?;
    let (source, from, run) = match (image, &chosen) {
        (Some(req), _) if req.from_cli || matches!(chosen, Some(Choice::Image(_))) => {
            let from = match (&chosen, req.from_cli) {
                (Some(Choice::Image(at)), false) => origin(at),
                _ => "--image".to_string(),
            };
            let defaults = ImageDefaults::of(&req.info)
                .map_err(|e| ProfileError::from(Diagnostic::new(e.to_string())))?;
            let mut layers: Vec<PathBuf> = Vec::new();
            // overlayfs refuses a directory twice; the highest occurrence of
            // a repeated layer shows the same files as all of them.
            for l in req.info.layers.iter().rev() {
                if !layers.contains(l) {
                    layers.push(l.clone());
                }
            }
            let source = RootSource::Image {
                name: req.info.name.clone(),
                id: req.info.config_digest.clone(),
                layers,
            };
            let run = ImageRun {
                name: req.info.name.clone(),
                defaults,
                layers: req.info.layers.clone(),
            };
            (source, from, Some(run))
        }
        (_, Some(Choice::Image(at))) => {
            if let Err(e) = crate::image::validate_name(at.get()) {
                return Err(at
                    .diag(format!("key `image`: {e}"))
                    .help("write the name `hutch image list` shows, e.g. `image = \"busybox\"`")
                    .into());
            }
            if checking {
                // `hutch check` does not need the image to be imported.
                plan_writable(profile, host, None)?;
                return Ok(Rooted {
                    root: None,
                    image: None,
                });
            }
            return Err(at
                .diag(format!(
                    "image `{}` was not looked up before planning (this is a bug in hutch; please report it)",
                    at.get()
                ))
                .into());
        }
        (_, Some(Choice::Dir(at))) => {
            let path =
                super::mounts::absolute_path(at.value, host, layer_of(profile, at.file), "root")?;
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(at
                        .diag(format!("key `root`: {} is not a directory", path.display()))
                        .help("`root` is the directory to use as the sandbox's `/`")
                        .into());
                }
                Err(e) => {
                    return Err(at
                        .diag(format!("key `root`: cannot use {}: {e}", path.display()))
                        .label("missing or unreadable on this machine")
                        .help("create the directory (e.g. unpack a root filesystem into it) or fix the path")
                        .into());
                }
            }
            // The root is shown to the sandbox like a read-only bind.
            if let Err((msg, help)) = super::exposure::check_exposure(&path, host) {
                return Err(at.diag(format!("key `root`: {msg}")).help(help).into());
            }
            (RootSource::Dir { path }, origin(at), None)
        }
        (_, None) => {
            if let Some(w) = &writable_at {
                return Err(w
                    .diag("`writable` needs a `root` or an `image` to lay changes over")
                    .help("set `root = \"/path/to/dir\"` or `image = \"NAME\"` (or run with --image), or remove `writable`")
                    .into());
            }
            return Ok(Rooted {
                root: None,
                image: None,
            });
        }
    };

    let root_dir = match &source {
        RootSource::Dir { path } => Some(path.as_path()),
        RootSource::Image { .. } => None,
    };
    let writable = plan_writable(profile, host, root_dir)?;
    Ok(Rooted {
        root: Some(RootPlan {
            source,
            writable,
            from,
        }),
        image: run,
    })
}

/// The writable layer over an image (`root_dir` = None) or a directory.
fn plan_writable(
    profile: &Profile,
    host: &Host,
    root_dir: Option<&Path>,
) -> Result<Upper, ProfileError> {
    let writable_at = profile.last(|p| p.writable.as_ref());
    let writable = match writable_at.as_ref().map(|w| (w, w.get())) {
        None if root_dir.is_none() => Upper::Tmpfs,
        None | Some((_, Writable::ReadOnly)) => Upper::ReadOnly,
        Some((_, Writable::Tmpfs)) => Upper::Tmpfs,
        Some((w, Writable::Volume(name))) => {
            if !crate::paths::valid_name(name) {
                return Err(w
                    .diag(format!(
                        "key `writable`: {name:?} is not a valid volume name"
                    ))
                    .help(
                        "volume names are letters, digits, `.`, `_` and `-`, as in [volumes.NAME]",
                    )
                    .into());
            }
            let store = crate::paths::volume_store(host).ok_or_else(|| {
                ProfileError::from(
                    w.diag("key `writable`: there is no volume store: neither XDG_DATA_HOME nor HOME is set")
                        .help("set HOME, or use `writable = \"/ABSOLUTE/PATH\"`"),
                )
            })?;
            Upper::Volume {
                name: name.clone(),
                path: store.join(name),
            }
        }
        Some((w, Writable::Dir(text))) => {
            let spanned = toml::Spanned::new(w.value.span(), text.clone());
            let path = super::mounts::absolute_path(
                &spanned,
                host,
                layer_of(profile, w.file),
                "writable",
            )?;
            // The sandbox writes into it, like a writable bind.
            if let Err((msg, help)) = super::exposure::check_exposure(&path, host) {
                return Err(w
                    .diag(format!("key `writable`: {msg}"))
                    .help(format!(
                        "{help}; for changes kept by hutch, use `writable = \"volume:NAME\"`"
                    ))
                    .into());
            }
            if let Ok(m) = std::fs::symlink_metadata(&path)
                && !m.is_dir()
            {
                let what = if m.is_symlink() {
                    "is a symlink (hutch never follows one there: whoever changed it could point the sandbox's writes anywhere)"
                } else {
                    "exists and is not a directory"
                };
                return Err(w
                    .diag(format!("key `writable`: {} {what}", path.display()))
                    .help("give a directory to keep the changes in (hutch creates it if missing), or use `writable = \"volume:NAME\"`")
                    .into());
            }
            if let Some(root) = root_dir
                && (path.starts_with(root) || root.starts_with(&path))
            {
                return Err(w
                    .diag(format!(
                        "key `writable`: {} and the root {} contain one another",
                        path.display(),
                        root.display()
                    ))
                    .help("keep the changes in a directory outside the root (overlayfs refuses overlapping layers)")
                    .into());
            }
            Upper::Dir { path }
        }
    };
    Ok(writable)
}

fn layer_of<'a>(profile: &'a Profile, file: &Arc<SourceFile>) -> &'a Layer {
    profile
        .layers
        .iter()
        .find(|l| Arc::ptr_eq(&l.file, file))
        .expect("values come from the profile's own layers")
}

fn origin(at: &At<'_, String>) -> String {
    let (line, col) = at.file.line_col(at.value.span().start);
    format!("{}:{line}:{col}", at.file.name)
}

/// The `root` lines of `--explain`.
pub fn describe(root: &RootPlan) -> String {
    let mut o = String::new();
    let what = match &root.source {
        RootSource::Dir { path } if !root.is_overlay() => format!(
            "directory {} (bound read-only, recursive, nosuid,nodev)",
            path.display()
        ),
        RootSource::Dir { path } => format!("directory {} (overlayfs lower layer)", path.display()),
        RootSource::Image { name, id, layers } => format!(
            "image {name} ({}, {} layer{}, overlayfs)",
            id.strip_prefix("sha256:")
                .map_or(id.as_str(), |h| &h[..h.len().min(12)]),
            layers.len(),
            if layers.len() == 1 { "" } else { "s" }
        ),
    };
    o.push_str(&format!(
        "root        {}
",
        sanitize(&what)
    ));
    o.push_str(&format!(
        "  from      {}
",
        sanitize(&root.from)
    ));
    let writable = match &root.writable {
        Upper::ReadOnly => "no: the root is read-only".to_string(),
        Upper::Tmpfs => "tmpfs upper layer: changes vanish at exit".to_string(),
        Upper::Dir { path } => format!("upper layer {}/upper: changes persist", path.display()),
        Upper::Volume { name, path } => format!(
            "upper layer in volume {name} ({}/upper): changes persist",
            path.display()
        ),
    };
    o.push_str(&format!(
        "  writable  {}
",
        sanitize(&writable)
    ));
    if let RootSource::Image { layers, .. } = &root.source {
        for (i, l) in layers.iter().enumerate() {
            let label = if i == 0 { "  layers" } else { "" };
            o.push_str(&format!(
                "{label:10}  {}
",
                sanitize(&l.display().to_string())
            ));
        }
    }
    o
}

/// Landlock rules derived from the mounts only cover what is mounted; the
/// root's own files need a rule of their own.
/// (Only when the rules are derived from the mounts: with
/// `[landlock] from_mounts = false` the profile lists every path itself.)
pub fn landlock_rule(profile: &Profile, root: &RootPlan, landlock: &mut LandlockPlan) {
    let from_mounts = profile
        .last(|p| p.landlock.as_ref()?.from_mounts.as_ref())
        .is_none_or(|f| *f.get());
    if landlock.handled_fs == 0 || !from_mounts {
        return;
    }
    let rights = match root.writable {
        Upper::ReadOnly => access::READ,
        Upper::Tmpfs | Upper::Dir { .. } | Upper::Volume { .. } => {
            landlock.handled_fs & !access::IOCTL_DEV
        }
    };
    landlock.fs_rules.push(LandlockRule {
        path: PathBuf::from("/"),
        access: rights & landlock.handled_fs,
        derived: true,
        is_dir: Some(true),
    });
}
