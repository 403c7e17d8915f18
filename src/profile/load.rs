//! Finding profiles, reading them, and composing `extends` and `.local` layers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::schema::{FORMAT_VERSION, RawProfile};
use super::{Layer, Profile, ProfileError};
use crate::diag::{Diagnostic, SourceFile};
use crate::host::Host;
use crate::safe_fs::{self, TrustError};

/// Profiles compiled into the binary: the last entry of the search path.
pub static BUILTIN: &[(&str, &str)] = &[
    ("default", include_str!("../../profiles/default.toml")),
    ("cli", include_str!("../../profiles/cli.toml")),
    ("container", include_str!("../../profiles/container.toml")),
    ("xterm", include_str!("../../profiles/xterm.toml")),
    ("mupdf", include_str!("../../profiles/mupdf.toml")),
    ("feh", include_str!("../../profiles/feh.toml")),
    ("mpv", include_str!("../../profiles/mpv.toml")),
    (
        "base/system",
        include_str!("../../profiles/base/system.toml"),
    ),
    (
        "base/wayland",
        include_str!("../../profiles/base/wayland.toml"),
    ),
    ("base/x11", include_str!("../../profiles/base/x11.toml")),
    ("base/audio", include_str!("../../profiles/base/audio.toml")),
    ("base/gpu", include_str!("../../profiles/base/gpu.toml")),
    (
        "base/fonts-themes",
        include_str!("../../profiles/base/fonts-themes.toml"),
    ),
    (
        "base/sensitive",
        include_str!("../../profiles/base/sensitive.toml"),
    ),
    (
        "base/reads-cwd",
        include_str!("../../profiles/base/reads-cwd.toml"),
    ),
    (
        "base/edits-cwd",
        include_str!("../../profiles/base/edits-cwd.toml"),
    ),
    ("7z", include_str!("../../profiles/7z.toml")),
    ("bsdtar", include_str!("../../profiles/bsdtar.toml")),
    ("bzip2", include_str!("../../profiles/bzip2.toml")),
    ("convert", include_str!("../../profiles/convert.toml")),
    ("cpio", include_str!("../../profiles/cpio.toml")),
    ("chromium", include_str!("../../profiles/chromium.toml")),
    ("curl", include_str!("../../profiles/curl.toml")),
    ("dillo", include_str!("../../profiles/dillo.toml")),
    ("hexchat", include_str!("../../profiles/hexchat.toml")),
    ("pidgin", include_str!("../../profiles/pidgin.toml")),
    (
        "thunderbird",
        include_str!("../../profiles/thunderbird.toml"),
    ),
    (
        "firefox-esr",
        include_str!("../../profiles/firefox-esr.toml"),
    ),
    ("exiftool", include_str!("../../profiles/exiftool.toml")),
    ("ffmpeg", include_str!("../../profiles/ffmpeg.toml")),
    ("ffprobe", include_str!("../../profiles/ffprobe.toml")),
    ("file", include_str!("../../profiles/file.toml")),
    ("gcc", include_str!("../../profiles/gcc.toml")),
    ("git", include_str!("../../profiles/git.toml")),
    ("gzip", include_str!("../../profiles/gzip.toml")),
    ("identify", include_str!("../../profiles/identify.toml")),
    ("jpegoptim", include_str!("../../profiles/jpegoptim.toml")),
    ("jq", include_str!("../../profiles/jq.toml")),
    ("lz4", include_str!("../../profiles/lz4.toml")),
    ("lzip", include_str!("../../profiles/lzip.toml")),
    ("make", include_str!("../../profiles/make.toml")),
    ("mediainfo", include_str!("../../profiles/mediainfo.toml")),
    ("node", include_str!("../../profiles/node.toml")),
    ("npm", include_str!("../../profiles/npm.toml")),
    ("optipng", include_str!("../../profiles/optipng.toml")),
    ("pandoc", include_str!("../../profiles/pandoc.toml")),
    ("pdfinfo", include_str!("../../profiles/pdfinfo.toml")),
    ("pdftotext", include_str!("../../profiles/pdftotext.toml")),
    ("pip", include_str!("../../profiles/pip.toml")),
    ("python3", include_str!("../../profiles/python3.toml")),
    ("qpdf", include_str!("../../profiles/qpdf.toml")),
    ("rg", include_str!("../../profiles/rg.toml")),
    ("shellcheck", include_str!("../../profiles/shellcheck.toml")),
    ("sox", include_str!("../../profiles/sox.toml")),
    ("sqlite3", include_str!("../../profiles/sqlite3.toml")),
    ("tar", include_str!("../../profiles/tar.toml")),
    ("unzip", include_str!("../../profiles/unzip.toml")),
    ("wget", include_str!("../../profiles/wget.toml")),
    ("xmllint", include_str!("../../profiles/xmllint.toml")),
    ("xsltproc", include_str!("../../profiles/xsltproc.toml")),
    ("xz", include_str!("../../profiles/xz.toml")),
    ("yq", include_str!("../../profiles/yq.toml")),
    ("yt-dlp", include_str!("../../profiles/yt-dlp.toml")),
    ("zip", include_str!("../../profiles/zip.toml")),
    ("zstd", include_str!("../../profiles/zstd.toml")),
    ("evince", include_str!("../../profiles/evince.toml")),
    ("zathura", include_str!("../../profiles/zathura.toml")),
    (
        "libreoffice",
        include_str!("../../profiles/libreoffice.toml"),
    ),
    ("gimp", include_str!("../../profiles/gimp.toml")),
    ("inkscape", include_str!("../../profiles/inkscape.toml")),
    ("mousepad", include_str!("../../profiles/mousepad.toml")),
    ("xarchiver", include_str!("../../profiles/xarchiver.toml")),
    ("eog", include_str!("../../profiles/eog.toml")),
];

/// The profiles in the search directory `dir`, as (name, path): names
/// with a `/` for those in subdirectories, three levels deep at most;
/// overrides (`.local.toml`) left out.
pub fn profiles_in(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    collect_profiles(dir, dir, 0, &mut out);
    out
}

fn collect_profiles(base: &Path, dir: &Path, depth: usize, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() && depth < 3 {
            collect_profiles(base, &path, depth + 1, out);
            continue;
        }
        let Some(rel) = path.strip_prefix(base).ok().and_then(|r| r.to_str()) else {
            continue;
        };
        let Some(name) = rel.strip_suffix(".toml") else {
            continue;
        };
        if name.ends_with(".local") || !valid_name(name) {
            continue;
        }
        out.push((name.to_string(), path.clone()));
    }
}
/// The most profiles one chain of `extends` may hold, the profile given
/// included. Real chains are short (the shipped `cli` is two deep, `cli` →
/// `base/system`; firejail, whose 1,350 shipped profiles include one another
/// freely, stops at 16 levels); 32 leaves room for layered setups, and keeps
/// the loader, which recurses once a level, far from the end of its stack
/// (about 6 KiB a level in a release build: 1,600 levels overflowed the
/// 8 MiB main stack).
pub const MAX_EXTENDS_DEPTH: usize = 32;

/// The most files one profile may be read from: profiles and `.local.toml`
/// overrides together. A full chain with both overrides of each link is 96;
/// the rest is room for profiles that extend several others.
pub const MAX_PROFILE_FILES: usize = 256;

/// The largest profile file hutch reads. The shipped profiles are about
/// 1 KiB, and firejail's largest (153 directive lines) would be a few KiB
/// in hutch's format: 1 MiB is hundreds of times any real profile, read and
/// parsed in milliseconds, and small enough that a wrong path (a log, an
/// image, `/dev/zero`) fails at once with a clear message instead of
/// filling memory.
pub const MAX_PROFILE_BYTES: u64 = 1 << 20;

/// Where named profiles are looked up, first match wins.
#[derive(Debug, Clone)]
pub struct SearchPath {
    /// Directories searched, in order (only those that exist).
    pub dirs: Vec<PathBuf>,
    /// Every directory of the search path, for messages.
    pub all_dirs: Vec<PathBuf>,
    /// Directories whose `NAME.local.toml` files override named profiles.
    pub local_dirs: Vec<PathBuf>,
    pub builtin: bool,
    /// The caller: overrides are read only from files and directories that
    /// nobody but this uid and root can write.
    pub uid: u32,
}

impl SearchPath {
    /// `$HUTCH_PROFILE_PATH` (colon-separated) if set, else
    /// `$XDG_CONFIG_HOME/hutch/profiles`, `/etc/hutch/profiles`,
    /// `/usr/local/share/hutch/profiles`, `/usr/share/hutch/profiles`; then built-ins.
    pub fn standard(host: &Host) -> SearchPath {
        if let Some(list) = host.env("HUTCH_PROFILE_PATH") {
            let dirs: Vec<PathBuf> = list
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect();
            return SearchPath {
                local_dirs: dirs.iter().rev().cloned().collect(),
                all_dirs: Vec::new(),
                dirs,
                builtin: true,
                uid: host.uid,
            }
            .existing_only();
        }
        let user = host
            .xdg_base("XDG_CONFIG_HOME")
            .map(|c| c.join("hutch/profiles"));
        let etc = PathBuf::from("/etc/hutch/profiles");
        let mut dirs = Vec::new();
        dirs.extend(user.clone());
        dirs.push(etc.clone());
        dirs.push(PathBuf::from("/usr/local/share/hutch/profiles"));
        dirs.push(PathBuf::from("/usr/share/hutch/profiles"));
        // Lowest precedence first: the admin's override, then the user's.
        let mut local_dirs = vec![etc];
        local_dirs.extend(user);
        SearchPath {
            dirs,
            all_dirs: Vec::new(),
            local_dirs,
            builtin: true,
            uid: host.uid,
        }
        .existing_only()
    }

    /// Drops directories that do not exist: usually all of them, and then a
    /// lookup costs no system call per directory and name.
    fn existing_only(mut self) -> SearchPath {
        self.all_dirs = self.dirs.clone();
        self.dirs.retain(|d| d.is_dir());
        // Every local directory is also a search directory: no second stat.
        let existing = &self.dirs;
        self.local_dirs.retain(|d| existing.contains(d));
        self
    }

    /// The profile named after `command`'s program, if there is one, else
    /// `default`.
    pub fn for_command(&self, command: &[std::ffi::OsString]) -> ProfileRef {
        let base = command
            .first()
            .and_then(|c| Path::new(c).file_name())
            .and_then(|n| n.to_str());
        match base {
            Some(name) if valid_name(name) && self.find(name).is_some() => {
                ProfileRef::Name(name.to_string())
            }
            _ => ProfileRef::Name("default".to_string()),
        }
    }

    /// Where a named profile comes from, without reading it.
    pub fn find(&self, name: &str) -> Option<Found> {
        if !valid_name(name) {
            return None;
        }
        for dir in &self.dirs {
            let path = dir.join(format!("{name}.toml"));
            // Whatever is there (following a symlink) is the profile: one
            // that is not a regular file is refused when it is read, never
            // skipped in favour of a profile of the same name further on.
            if path.metadata().is_ok() {
                return Some(Found::File(path));
            }
        }
        if self.builtin {
            return BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(n, text)| Found::Builtin(n, text));
        }
        None
    }

    fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .all_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        if self.builtin {
            parts.push("the built-in profiles".into());
        }
        parts.join(", ")
    }
}

#[derive(Debug, Clone)]
pub enum Found {
    File(PathBuf),
    Builtin(&'static str, &'static str),
}

/// Names `run --profile` accepts as names (without `/`: a `/` makes a path).
pub fn names(host: &Host) -> Vec<String> {
    let search = SearchPath::standard(host);
    let mut names: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
    for dir in &search.dirs {
        let found = profiles_in(dir);
        names.extend(found.into_iter().map(|(n, _)| n));
    }
    names.retain(|n| !n.contains('/'));
    names.sort();
    names.dedup();
    names
}

/// A profile name: `/`-separated segments of `[A-Za-z0-9._-]`, no `..`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
}

/// How a profile is referred to on the command line or in `extends`.
#[derive(Debug, Clone)]
pub enum ProfileRef {
    Name(String),
    Path(PathBuf),
}

impl ProfileRef {
    /// On the command line, anything with a `/` or ending in `.toml` is a path.
    pub fn from_cli(s: &str) -> ProfileRef {
        if s.contains('/') || s.ends_with(".toml") {
            ProfileRef::Path(PathBuf::from(s))
        } else {
            ProfileRef::Name(s.to_string())
        }
    }

    /// In `extends`, a `.toml` suffix means a path relative to the including
    /// file; everything else is a name (which may contain `/`, e.g. `base/system`).
    fn from_extends(s: &str, including: &SourceFile) -> ProfileRef {
        if s.ends_with(".toml") {
            let base = including
                .path
                .as_deref()
                .and_then(Path::parent)
                .unwrap_or(Path::new("."));
            ProfileRef::Path(base.join(s))
        } else {
            ProfileRef::Name(s.to_string())
        }
    }
}

/// Loads a profile and everything it extends, in precedence order.
pub fn load(r: &ProfileRef, search: &SearchPath) -> Result<Profile, ProfileError> {
    let mut loader = Loader {
        search,
        stack: Vec::new(),
        done: HashSet::new(),
        layers: Vec::new(),
        files_read: 0,
    };
    loader.load(r, None)?;
    let name = match r {
        ProfileRef::Name(n) => n.clone(),
        ProfileRef::Path(p) => p.display().to_string(),
    };
    Ok(Profile {
        name,
        layers: loader.layers,
    })
}

/// Parses one file on its own (no extends), as `hutch check` and tests need.
pub fn parse(file: &Arc<SourceFile>) -> Result<RawProfile, ProfileError> {
    let raw: RawProfile = toml::from_str(&file.text).map_err(|e| {
        super::version::explain_rejection(file).unwrap_or_else(|| toml_error(file, &e))
    })?;
    match &raw.version {
        None => Err(Diagnostic::new("missing key `version`")
            .at(file, first_statement(&file.text))
            .help(format!(
                "start the profile with `version = {FORMAT_VERSION}`"
            ))
            .into()),
        Some(v) if *v.get_ref() != FORMAT_VERSION => {
            Err(super::version::unsupported(file, v).into())
        }
        Some(_) => Ok(raw),
    }
}

/// The span of the first line that is not blank or a comment.
fn first_statement(text: &str) -> std::ops::Range<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if !t.is_empty() && !t.starts_with('#') {
            let start = offset + (line.len() - line.trim_start().len());
            return start..start + line.trim_end().len() - (line.len() - line.trim_start().len());
        }
        offset += line.len();
    }
    0..0
}

struct Loader<'a> {
    search: &'a SearchPath,
    /// Identities of the profiles being loaded, to detect cycles.
    stack: Vec<(String, String)>,
    done: HashSet<String>,
    layers: Vec<Layer>,
    /// Files read so far (profiles and overrides), against [`MAX_PROFILE_FILES`].
    files_read: usize,
}

type Origin<'b> = Option<(&'b Arc<SourceFile>, &'b Spanned<String>)>;

/// Where a referenced profile is, before anything is read.
struct Target {
    /// Two references with one identity are one profile.
    identity: String,
    /// How messages name it.
    display: String,
    source: Source,
    /// The profile's name, when it was referred to by one.
    name: Option<String>,
}

enum Source {
    File(PathBuf),
    Builtin(&'static str, &'static str),
}

impl Loader<'_> {
    fn load(&mut self, r: &ProfileRef, from: Origin<'_>) -> Result<(), ProfileError> {
        let target = self.resolve(r, from)?;
        if let Some(pos) = self.stack.iter().position(|(id, _)| *id == target.identity) {
            return Err(self.cycle(pos, &target.display, from));
        }
        if self.done.contains(&target.identity) {
            return Ok(());
        }
        if self.stack.len() >= MAX_EXTENDS_DEPTH {
            return Err(self.too_deep(&target.display, from));
        }
        let file = self.read_source(&target, from)?;
        let raw = parse(&file)?;
        self.stack
            .push((target.identity.clone(), target.display.clone()));
        for entry in raw.extends.iter().flatten() {
            let next = ProfileRef::from_extends(entry.get_ref(), &file);
            self.load(&next, Some((&file, entry)))?;
        }
        self.stack.pop();
        let local_candidates = self.local_candidates(target.name.as_deref(), &file);
        self.layers.push(Layer {
            file: Arc::clone(&file),
            raw,
            is_override: false,
        });
        for path in local_candidates {
            self.load_override(&path)?;
        }
        self.done.insert(target.identity);
        Ok(())
    }

    fn load_override(&mut self, path: &Path) -> Result<(), ProfileError> {
        let Some(file) = safe_open_override(path, self.search.uid)? else {
            return Ok(());
        };
        self.count_file(&path.display().to_string(), None)?;
        let text = read_bounded(file).map_err(|e| override_unreadable(path, &e))?;
        let local = SourceFile::new(path.display().to_string(), Some(path), text);
        let raw = parse(&local)?;
        if let Some(first) = raw.extends.as_ref().and_then(|e| e.first()) {
            return Err(Diagnostic::new("key `extends` is not allowed in a .local.toml override")
                .at(&local, first.span())
                .help("a .local.toml file adjusts the profile it sits beside; move `extends` into a profile of its own")
                .into());
        }
        self.layers.push(Layer {
            file: local,
            raw,
            is_override: true,
        });
        Ok(())
    }

    fn cycle(&self, pos: usize, display: &str, from: Origin<'_>) -> ProfileError {
        let mut chain: Vec<&str> = self.stack[pos..].iter().map(|(_, d)| d.as_str()).collect();
        chain.push(display);
        let mut d = Diagnostic::new(format!("extends cycle: {}", chain.join(" → ")));
        if let Some((f, s)) = from {
            d = d
                .at(f, s.span())
                .label("this leads back to a profile being loaded");
        }
        if chain.len() == 2 {
            d = d.help(format!(
                "a profile cannot extend itself; to adjust a shipped profile, write `{display}.local.toml` in ~/.config/hutch/profiles or /etc/hutch/profiles instead"
            ));
        } else {
            d = d.help("remove one of the `extends` entries in the cycle");
        }
        d.into()
    }

    /// The chain being loaded, with `display` at its end, would hold more
    /// than [`MAX_EXTENDS_DEPTH`] profiles.
    fn too_deep(&self, display: &str, from: Origin<'_>) -> ProfileError {
        let first = self.stack.first().map_or("", |(_, d)| d.as_str());
        let last = self.stack.last().map_or("", |(_, d)| d.as_str());
        let mut d = Diagnostic::new(format!(
            "extends chain too long: {first} → … → {last} → {display} would be {} profiles, more than the {MAX_EXTENDS_DEPTH} hutch loads",
            self.stack.len() + 1
        ));
        if let Some((f, s)) = from {
            d = d.at(f, s.span()).label("this entry crosses the limit");
        }
        d.help(format!(
            "a chain of `extends` may hold {MAX_EXTENDS_DEPTH} profiles, the one given included: merge some of the profiles in it into one (an accidental or generated chain is usually the cause)"
        ))
        .into()
    }

    /// Counts one more file read, refusing it past [`MAX_PROFILE_FILES`].
    fn count_file(&mut self, what: &str, from: Origin<'_>) -> Result<(), ProfileError> {
        if self.files_read >= MAX_PROFILE_FILES {
            let mut d = Diagnostic::new(format!(
                "too many profile files: reading {what} would make more than the {MAX_PROFILE_FILES} (profiles and .local.toml overrides together) hutch reads for one profile"
            ));
            if let Some((f, s)) = from {
                d = d.at(f, s.span()).label("this entry crosses the limit");
            }
            return Err(d
                .help("extend fewer profiles: merge some of them into one")
                .into());
        }
        self.files_read += 1;
        Ok(())
    }

    /// Resolves a reference to the profile it names, without reading it.
    fn resolve(&self, r: &ProfileRef, from: Origin<'_>) -> Result<Target, ProfileError> {
        let at = |mut d: Diagnostic, label: &str| {
            if let Some((f, s)) = from {
                d = d.at(f, s.span());
                if !label.is_empty() {
                    d = d.label(label);
                }
            }
            ProfileError::from(d)
        };
        match r {
            ProfileRef::Name(name) => {
                if !valid_name(name) {
                    let d = Diagnostic::new(format!("invalid profile name `{name}`"))
                        .help("profile names are `/`-separated words of letters, digits, `.`, `_`, `-`; write a path ending in `.toml` to use a file");
                    return Err(at(d, ""));
                }
                let source = match self.search.find(name) {
                    Some(Found::File(path)) => Source::File(path),
                    Some(Found::Builtin(n, text)) => Source::Builtin(n, text),
                    None => {
                        let d = Diagnostic::new(format!("unknown profile `{name}`")).help(format!(
                            "searched {}; `hutch profiles` lists the profiles that exist",
                            self.search.describe()
                        ));
                        return Err(at(d, "no profile by this name"));
                    }
                };
                Ok(Target {
                    identity: format!("name:{name}"),
                    display: name.clone(),
                    source,
                    name: Some(name.clone()),
                })
            }
            ProfileRef::Path(path) => {
                let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                Ok(Target {
                    identity: format!("path:{}", canonical.display()),
                    display: path.display().to_string(),
                    source: Source::File(path.clone()),
                    name: None,
                })
            }
        }
    }

    /// The text of a resolved profile; a file counts against
    /// [`MAX_PROFILE_FILES`].
    fn read_source(
        &mut self,
        target: &Target,
        from: Origin<'_>,
    ) -> Result<Arc<SourceFile>, ProfileError> {
        match &target.source {
            Source::Builtin(n, text) => Ok(SourceFile::new(format!("builtin:{n}"), None, *text)),
            Source::File(path) => {
                self.count_file(&path.display().to_string(), from)?;
                let text = read(path, from)?;
                Ok(SourceFile::new(
                    path.display().to_string(),
                    Some(path),
                    text,
                ))
            }
        }
    }

    fn local_candidates(&self, name: Option<&str>, file: &SourceFile) -> Vec<PathBuf> {
        match name {
            Some(name) => self
                .search
                .local_dirs
                .iter()
                .map(|d| d.join(format!("{name}.local.toml")))
                .collect(),
            None => {
                let Some(path) = &file.path else {
                    return Vec::new();
                };
                let Some(stem) = path.file_name().and_then(|n| n.to_str()) else {
                    return Vec::new();
                };
                let stem = stem.strip_suffix(".toml").unwrap_or(stem);
                if stem.ends_with(".local") {
                    return Vec::new();
                }
                vec![path.with_file_name(format!("{stem}.local.toml"))]
            }
        }
    }
}

/// Why a profile file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("profile file not found")]
    NotFound,
    #[error("is {0}, not a regular file")]
    NotAFile(&'static str),
    #[error(
        "is {size} bytes, more than the {} MiB a profile file may have",
        MAX_PROFILE_BYTES >> 20
    )]
    TooLarge { size: u64 },
    #[error("profile file is not valid UTF-8")]
    NotUtf8,
    #[error("cannot read profile file: {0}")]
    Io(std::io::Error),
}

impl ReadError {
    fn help(&self) -> &'static str {
        match self {
            ReadError::NotAFile(_) => {
                "a profile is a regular file (a FIFO, device or directory is never read): give the path of one, or a profile name listed by `hutch profiles`"
            }
            ReadError::TooLarge { .. } => {
                "profiles are short TOML files: check that this is the file you meant"
            }
            _ => "check the path, or give a profile name listed by `hutch profiles`",
        }
    }
}

/// What kind of file `t` is, for messages.
fn kind_of(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The text of an open profile file: only a regular file (checked on the
/// open descriptor, so nothing swapped in since it was opened is read), of
/// at most [`MAX_PROFILE_BYTES`] (checked on its size and while reading, for
/// a file that grows or whose size says nothing).
fn read_bounded(file: std::fs::File) -> Result<String, ReadError> {
    use std::io::Read;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotAFile(kind_of(meta.file_type())));
    }
    if meta.len() > MAX_PROFILE_BYTES {
        return Err(ReadError::TooLarge { size: meta.len() });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_PROFILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_PROFILE_BYTES {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
        });
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)
}

/// Reads the profile file `path` (following symlinks: a profile may be a
/// link into a dotfiles repository). Anything but a regular file is refused
/// before it is opened (opening a device can have effects of its own), and
/// again on the opened descriptor; the open itself cannot block
/// (`O_NONBLOCK`: a FIFO swapped in meanwhile) nor take a terminal as the
/// controlling one.
pub fn read_profile_file(path: &Path) -> Result<String, ReadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::NotFound,
        _ => ReadError::Io(e),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotAFile(kind_of(meta.file_type())));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io)?;
    read_bounded(file)
}

fn read(path: &Path, from: Origin<'_>) -> Result<String, ProfileError> {
    read_profile_file(path).map_err(|e| {
        let mut d = Diagnostic::new(format!("{}: {e}", path.display()));
        if let Some((f, s)) = from {
            d = d.at(f, s.span());
        }
        d.help(e.help()).into()
    })
}

fn refuse_override(path: &Path, why: String, help: &str) -> ProfileError {
    Diagnostic::new(format!(
        "refusing profile override {}: {why}",
        path.display()
    ))
    .help(help.to_string())
    .into()
}

fn override_unreadable(path: &Path, e: &ReadError) -> ProfileError {
    refuse_override(
        path,
        e.to_string(),
        "an override that exists is never skipped: make it a readable UTF-8 file, or remove it",
    )
}

/// The override `path`, opened, if there is one. An override changes what
/// the profile beside it confines, so it is read only when nobody but the
/// caller and root can have written it or replaced it (see
/// [`safe_fs::open_trusted_file`], which also refuses anything but a
/// regular file and opens without blocking); one that exists but fails
/// that check stops the launch: never skipped silently.
fn safe_open_override(path: &Path, uid: u32) -> Result<Option<std::fs::File>, ProfileError> {
    let refuse = |why: String, help: &str| refuse_override(path, why, help);
    match safe_fs::open_trusted_file(path, uid) {
        Ok(file) => Ok(file),
        Err(TrustError::Untrusted {
            path: what,
            owner,
            mode,
        }) => {
            let why = if owner != uid && owner != 0 {
                format!("belongs to uid {owner} (mode {mode:04o}), not to you or root")
            } else {
                format!("(owner uid {owner}) has mode {mode:04o}: group or others may write to it")
            };
            Err(refuse(
                format!(
                    "{} {why}, and whoever can write it can loosen the sandbox",
                    what.display()
                ),
                "an override must be yours or root's, like its directory, and neither may be writable by group or others: fix that with `chown` and `chmod go-w`, or move the profile out of a shared directory (such as /tmp)",
            ))
        }
        Err(TrustError::Symlink(_)) => Err(refuse(
            "it is a symlink".into(),
            "hutch does not follow symlinked overrides: put the file itself there, or remove the link",
        )),
        Err(e) => Err(refuse(
            e.to_string(),
            "an override that exists is never skipped: make it a readable file, or remove it",
        )),
    }
}

/// Turns a toml/serde error into a diagnostic naming the key, what was found
/// and what is allowed.
pub fn toml_error(file: &Arc<SourceFile>, e: &toml::de::Error) -> Diagnostic {
    let raw = e.message().trim().to_string();
    let span = e.span().unwrap_or(0..0);
    let key = key_at(&file.text, span.start);
    let (message, help) = if let Some(rest) = raw.strip_prefix("unknown field ") {
        let (field, expected) = split_expected(rest);
        let allowed = list_of(expected);
        let mut help = format!("allowed keys here: {}", allowed.join(", "));
        if let Some(s) = suggest(field.trim_matches('`'), &allowed) {
            help = format!("did you mean `{s}`? {help}");
        }
        let table = key
            .as_deref()
            .and_then(|k| k.rsplit_once('.').map(|(t, _)| t.to_string()));
        let message = match table {
            Some(t) => format!("unknown key {field} in [{t}]"),
            None => format!("unknown key {field}"),
        };
        (message, Some(help))
    } else if let Some(rest) = raw.strip_prefix("unknown variant ") {
        let (value, expected) = split_expected(rest);
        let allowed = list_of(expected);
        let mut help = format!("allowed values: {}", allowed.join(", "));
        if let Some(s) = suggest(value.trim_matches('`'), &allowed) {
            help = format!("did you mean `{s}`? {help}");
        }
        let k = key.clone().unwrap_or_else(|| "value".into());
        (format!("key `{k}`: unknown value {value}"), Some(help))
    } else if let Some(field) = raw.strip_prefix("missing field ") {
        let table = key
            .clone()
            .map(|k| format!(" in [{k}]"))
            .unwrap_or_default();
        (
            format!("missing key {field}{table}"),
            Some(format!("add {field} to this table")),
        )
    } else if raw.starts_with("invalid type") || raw.starts_with("invalid value") {
        let k = key.clone().unwrap_or_else(|| "value".into());
        let found_expected =
            raw.replacen("invalid type: ", "found ", 1)
                .replacen("invalid value: ", "found ", 1);
        (format!("key `{k}`: {found_expected}"), None)
    } else if raw.starts_with("duplicate key") {
        (
            raw.clone(),
            Some("each key may appear once per table".into()),
        )
    } else {
        (
            format!("TOML syntax error: {raw}"),
            Some("see https://toml.io for the syntax".into()),
        )
    };
    let mut d = Diagnostic::new(message).at(file, span);
    if let Some(h) = help {
        d = d.help(h);
    }
    d
}

fn split_expected(rest: &str) -> (&str, &str) {
    match rest.split_once(", expected ") {
        Some((a, b)) => (a, b),
        None => (rest, ""),
    }
}

/// "one of `a`, `b`" / "`a` or `b`" / "`a`" → ["a", "b"].
fn list_of(expected: &str) -> Vec<String> {
    let s = expected.strip_prefix("one of ").unwrap_or(expected);
    s.replace(" or ", ", ")
        .split(", ")
        .map(|p| p.trim().trim_matches('`').to_string())
        .filter(|p| !p.is_empty() && p != "nothing" && p != "there are no fields")
        .collect()
}

fn suggest(word: &str, options: &[String]) -> Option<String> {
    options
        .iter()
        .map(|o| (edit_distance(word, o), o))
        .filter(|(d, o)| *d <= 2.max(o.len() / 4) && *d > 0)
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The dotted key that the text at `offset` belongs to, found from the line's
/// `key =` prefix and the nearest `[table]` header above it.
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let before = &text[line_start..offset];
    let header = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        });
    let trimmed = line.trim();
    if trimmed.starts_with('[') && before.trim().is_empty() {
        // The span is a table header itself.
        return Some(
            trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
        );
    }
    let key = match before.split_once('=') {
        Some((k, _)) => k.trim().trim_matches('"').to_string(),
        None => before
            .trim()
            .split(|c: char| c.is_whitespace() || c == '=')
            .next()
            .unwrap_or("")
            .to_string(),
    };
    let key = if key.is_empty() {
        line.split('=').next().unwrap_or("").trim().to_string()
    } else {
        key
    };
    match (header, key.is_empty()) {
        (Some(h), false) => Some(format!("{h}.{key}")),
        (Some(h), true) => Some(h),
        (None, false) => Some(key),
        (None, true) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("cli"));
        assert!(valid_name("base/system"));
        assert!(valid_name("firefox-esr"));
        assert!(!valid_name("../x"));
        assert!(!valid_name("/abs"));
        assert!(!valid_name("a//b"));
        assert!(!valid_name(""));
    }

    #[test]
    fn key_at_finds_table_and_key() {
        let t = "version = 1\n[namespaces]\nuser = 3\n";
        assert_eq!(
            key_at(t, t.find('3').unwrap()).as_deref(),
            Some("namespaces.user")
        );
        assert_eq!(key_at(t, 0).as_deref(), Some("version"));
        let t = "[[mount]]\ntype = \"x\"\n";
        assert_eq!(key_at(t, 0).as_deref(), Some("mount"));
    }

    #[test]
    fn builtin_profiles_parse() {
        for (name, text) in BUILTIN {
            let f = SourceFile::new(format!("builtin:{name}"), None, *text);
            parse(&f).unwrap_or_else(|e| panic!("{name}: {}", e.0.render()));
        }
    }

    /// A search path with no directories (built-ins only): profiles are
    /// given by path.
    fn builtins_only() -> SearchPath {
        SearchPath {
            dirs: Vec::new(),
            all_dirs: Vec::new(),
            local_dirs: Vec::new(),
            builtin: true,
            uid: nix::unistd::getuid().as_raw(),
        }
    }

    /// Writes `p0.toml` … `p{n-1}.toml` in `dir`, each extending the next.
    fn chain(dir: &Path, n: usize) {
        for i in 0..n {
            let extends = if i + 1 < n {
                format!("extends = [\"p{}.toml\"]\n", i + 1)
            } else {
                String::new()
            };
            std::fs::write(
                dir.join(format!("p{i}.toml")),
                format!("version = 1\n{extends}"),
            )
            .unwrap();
        }
    }

    fn load_path(path: &Path) -> Result<Profile, String> {
        load(&ProfileRef::Path(path.to_path_buf()), &builtins_only()).map_err(|e| e.0.render())
    }

    #[test]
    fn a_chain_of_extends_stops_at_its_limit_at_the_entry_that_crosses_it() {
        let dir = tempfile::tempdir().unwrap();
        chain(dir.path(), MAX_EXTENDS_DEPTH + 1);
        let err = load_path(&dir.path().join("p0.toml")).unwrap_err();
        let last = MAX_EXTENDS_DEPTH - 1;
        assert!(
            err.contains(&format!(
                "would be {} profiles, more than the {MAX_EXTENDS_DEPTH}",
                MAX_EXTENDS_DEPTH + 1
            )),
            "{err}"
        );
        assert!(err.contains(&format!("p{last}.toml:2:12")), "{err}");
        // The chain without its first link is exactly at the limit.
        let profile = load_path(&dir.path().join("p1.toml")).unwrap();
        assert_eq!(profile.layers.len(), MAX_EXTENDS_DEPTH);
    }

    #[test]
    fn the_reference_states_the_limits() {
        let details = super::super::reference::doc("extends").unwrap().details;
        assert!(
            details.contains(&format!("more than {MAX_EXTENDS_DEPTH} profiles")),
            "{details}"
        );
        assert!(
            details.contains(&format!("more than {MAX_PROFILE_FILES} files")),
            "{details}"
        );
    }

    #[test]
    fn the_files_read_for_one_profile_are_limited() {
        let dir = tempfile::tempdir().unwrap();
        let wide = |n: usize| {
            let list: Vec<String> = (0..n).map(|i| format!("\"w{i}.toml\"")).collect();
            for i in 0..n {
                std::fs::write(dir.path().join(format!("w{i}.toml")), "version = 1\n").unwrap();
            }
            std::fs::write(
                dir.path().join("top.toml"),
                format!("version = 1\nextends = [{}]\n", list.join(", ")),
            )
            .unwrap();
        };
        wide(MAX_PROFILE_FILES - 1);
        let profile = load_path(&dir.path().join("top.toml")).unwrap();
        assert_eq!(profile.layers.len(), MAX_PROFILE_FILES);
        wide(MAX_PROFILE_FILES);
        let err = load_path(&dir.path().join("top.toml")).unwrap_err();
        assert!(err.contains("too many profile files"), "{err}");
        assert!(
            err.contains(&format!("w{}.toml", MAX_PROFILE_FILES - 1)),
            "{err}"
        );
        // One file named many times is read once.
        let list = vec!["\"w0.toml\""; 10 * MAX_PROFILE_FILES].join(", ");
        std::fs::write(
            dir.path().join("same.toml"),
            format!("version = 1\nextends = [{list}]\n"),
        )
        .unwrap();
        assert_eq!(
            load_path(&dir.path().join("same.toml"))
                .unwrap()
                .layers
                .len(),
            2
        );
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let refused = |path: &Path| read_profile_file(path).unwrap_err().to_string();
        assert_eq!(refused(&fifo), "is a FIFO, not a regular file");
        assert_eq!(
            refused(Path::new("/dev/zero")),
            "is a character device, not a regular file"
        );
        assert_eq!(refused(dir.path()), "is a directory, not a regular file");
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; MAX_PROFILE_BYTES as usize + 1]).unwrap();
        assert!(
            refused(&big).contains("more than the 1 MiB"),
            "{}",
            refused(&big)
        );
        std::fs::write(&big, vec![b'#'; MAX_PROFILE_BYTES as usize]).unwrap();
        assert_eq!(
            read_profile_file(&big).unwrap().len(),
            MAX_PROFILE_BYTES as usize
        );
        // A file whose size says nothing (procfs) is still bounded while read.
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert!(read_bounded(file).unwrap().contains("Name:"));
    }

    #[test]
    fn suggestions() {
        let opts = vec!["hostname".to_string(), "version".to_string()];
        assert_eq!(suggest("hostnme", &opts).as_deref(), Some("hostname"));
        assert_eq!(suggest("zzz", &opts), None);
    }
}
