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
];

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

    /// Where a named profile comes from, without reading it.
    pub fn find(&self, name: &str) -> Option<Found> {
        if !valid_name(name) {
            return None;
        }
        for dir in &self.dirs {
            let path = dir.join(format!("{name}.toml"));
            if path.is_file() {
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
}

type Origin<'b> = Option<(&'b Arc<SourceFile>, &'b Spanned<String>)>;

impl Loader<'_> {
    fn load(&mut self, r: &ProfileRef, from: Origin<'_>) -> Result<(), ProfileError> {
        let (identity, display, file, name) = self.open(r, from)?;
        if let Some(pos) = self.stack.iter().position(|(id, _)| *id == identity) {
            let mut chain: Vec<&str> = self.stack[pos..].iter().map(|(_, d)| d.as_str()).collect();
            chain.push(&display);
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
            return Err(d.into());
        }
        if self.done.contains(&identity) {
            return Ok(());
        }
        let raw = parse(&file)?;
        self.stack.push((identity.clone(), display.clone()));
        for entry in raw.extends.iter().flatten() {
            let target = ProfileRef::from_extends(entry.get_ref(), &file);
            self.load(&target, Some((&file, entry)))?;
        }
        self.stack.pop();
        let local_candidates = self.local_candidates(name.as_deref(), &file);
        self.layers.push(Layer {
            file: Arc::clone(&file),
            raw,
            is_override: false,
        });
        for path in local_candidates {
            let Some(text) = read_override(&path, self.search.uid)? else {
                continue;
            };
            let local = SourceFile::new(path.display().to_string(), Some(&path), text);
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
        }
        self.done.insert(identity);
        Ok(())
    }

    /// Resolves a reference to (identity, display name, contents, profile name).
    #[allow(clippy::type_complexity)]
    fn open(
        &self,
        r: &ProfileRef,
        from: Origin<'_>,
    ) -> Result<(String, String, Arc<SourceFile>, Option<String>), ProfileError> {
        match r {
            ProfileRef::Name(name) => {
                if !valid_name(name) {
                    let mut d = Diagnostic::new(format!("invalid profile name `{name}`"))
                        .help("profile names are `/`-separated words of letters, digits, `.`, `_`, `-`; write a path ending in `.toml` to use a file");
                    if let Some((f, s)) = from {
                        d = d.at(f, s.span());
                    }
                    return Err(d.into());
                }
                match self.search.find(name) {
                    Some(Found::File(path)) => {
                        let text = read(&path, from)?;
                        let file = SourceFile::new(path.display().to_string(), Some(&path), text);
                        Ok((
                            format!("name:{name}"),
                            name.clone(),
                            file,
                            Some(name.clone()),
                        ))
                    }
                    Some(Found::Builtin(n, text)) => {
                        let file = SourceFile::new(format!("builtin:{n}"), None, text);
                        Ok((
                            format!("name:{name}"),
                            name.clone(),
                            file,
                            Some(name.clone()),
                        ))
                    }
                    None => {
                        let mut d =
                            Diagnostic::new(format!("unknown profile `{name}`")).help(format!(
                                "searched {}; `hutch profiles` lists the profiles that exist",
                                self.search.describe()
                            ));
                        if let Some((f, s)) = from {
                            d = d.at(f, s.span()).label("no profile by this name");
                        }
                        Err(d.into())
                    }
                }
            }
            ProfileRef::Path(path) => {
                let text = read(path, from)?;
                let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
                let file = SourceFile::new(path.display().to_string(), Some(path), text);
                Ok((
                    format!("path:{}", canonical.display()),
                    path.display().to_string(),
                    file,
                    None,
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

fn read(path: &Path, from: Origin<'_>) -> Result<String, ProfileError> {
    std::fs::read_to_string(path).map_err(|e| {
        let what = match e.kind() {
            std::io::ErrorKind::NotFound => "profile file not found".to_string(),
            std::io::ErrorKind::InvalidData => "profile file is not valid UTF-8".to_string(),
            _ => format!("cannot read profile file: {e}"),
        };
        let mut d = Diagnostic::new(format!("{}: {what}", path.display()));
        if let Some((f, s)) = from {
            d = d.at(f, s.span());
        }
        d.help("check the path, or give a profile name listed by `hutch profiles`")
            .into()
    })
}

/// The text of the override `path`, if there is one. An override changes
/// what the profile beside it confines, so it is read only when nobody but
/// the caller and root can have written it or replaced it (see
/// [`safe_fs::open_trusted_file`]); one that exists but fails that check
/// stops the launch: never skipped silently.
fn read_override(path: &Path, uid: u32) -> Result<Option<String>, ProfileError> {
    let refuse = |why: String, help: &str| -> ProfileError {
        Diagnostic::new(format!(
            "refusing profile override {}: {why}",
            path.display()
        ))
        .help(help.to_string())
        .into()
    };
    let file = match safe_fs::open_trusted_file(path, uid) {
        Ok(None) => return Ok(None),
        Ok(Some(file)) => file,
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
            return Err(refuse(
                format!(
                    "{} {why}, and whoever can write it can loosen the sandbox",
                    what.display()
                ),
                "an override must be yours or root's, like its directory, and neither may be writable by group or others: fix that with `chown` and `chmod go-w`, or move the profile out of a shared directory (such as /tmp)",
            ));
        }
        Err(TrustError::Symlink(_)) => {
            return Err(refuse(
                "it is a symlink".into(),
                "hutch does not follow symlinked overrides: put the file itself there, or remove the link",
            ));
        }
        Err(e) => {
            return Err(refuse(
                e.to_string(),
                "an override that exists is never skipped: make it a readable file, or remove it",
            ));
        }
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::BufReader::new(file), &mut text).map_err(|e| {
        refuse(
            e.to_string(),
            "an override that exists is never skipped: make it a readable UTF-8 file, or remove it",
        )
    })?;
    Ok(Some(text))
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

    #[test]
    fn suggestions() {
        let opts = vec!["hostname".to_string(), "version".to_string()];
        assert_eq!(suggest("hostnme", &opts).as_deref(), Some("hostname"));
        assert_eq!(suggest("zzz", &opts), None);
    }
}
