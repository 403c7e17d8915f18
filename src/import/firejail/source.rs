//! Reading a firejail profile as firejail 0.9.72 does (`profile.c`,
//! `profile_read` and `profile_check_line`): `#` starts a comment anywhere
//! on a line, blanks are collapsed, `include` is followed depth first
//! (a name without `/` is looked up in `~/.config/firejail`, then
//! `/etc/firejail`; a missing `.local` file is skipped), `ignore PREFIX`
//! drops every later line that starts with PREFIX followed by a space or
//! the end of the line, `?CONDITION: LINE` keeps LINE only when the
//! condition holds at that point, `whitelist-ro X` is `whitelist X` plus
//! `read-only X`, and `--allow-debuggers` skips `disable-devel.inc`.
//!
//! Every line read is kept with its fate, so that the report can say what
//! became of each one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::env::Env;
use super::macros;
use super::paths::Fs;

/// firejail's limits (`firejail.h`).
const MAX_INCLUDE_LEVEL: usize = 16;
const MAX_PROFILE_IGNORE: usize = 32;

/// Where a line was written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The file, as a path.
    pub file: Arc<Path>,
    pub line: usize,
}

impl Origin {
    /// `name.profile:12` (the file's name only: profiles live in one
    /// directory).
    pub fn short(&self) -> String {
        let name = self
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.file.display().to_string());
        format!("{name}:{}", self.line)
    }
}

/// What became of a line while reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// A directive in force; its index in [`Profile::directives`] (two for
    /// `whitelist-ro`).
    Active(Vec<usize>),
    /// `include`: the file read, or `None` for a missing `.local` file.
    Include(Option<PathBuf>),
    /// An `include` of `disable-devel.inc` after `allow-debuggers`.
    SkippedByAllowDebuggers,
    /// `ignore PREFIX`.
    Ignore,
    /// Dropped by an earlier `ignore` line.
    Ignored(Origin),
    /// `?CONDITION:` that does not hold.
    ConditionFalse(String),
    /// `quiet`.
    Quiet,
}

/// A line of a profile file, with its fate.
#[derive(Debug, Clone)]
pub struct Line {
    pub origin: Origin,
    /// The line as firejail sees it: comment removed, blanks collapsed.
    pub text: String,
    pub fate: Fate,
}

/// A directive in force, in the order firejail reads them.
#[derive(Debug, Clone)]
pub struct Directive {
    /// The index of its line in [`Profile::lines`].
    pub line: usize,
    /// The directive (for `?COND: X` and `whitelist-ro`, what it stands for).
    pub text: String,
}

impl Directive {
    /// The keyword (`blacklist`) and the argument (`${HOME}/.ssh`).
    pub fn split(&self) -> (&str, &str) {
        match self.text.split_once(' ') {
            Some((k, a)) => (k, a),
            None => (&self.text, ""),
        }
    }
}

/// A profile with its includes resolved.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// The file named on the command line (or found by name).
    pub file: PathBuf,
    pub lines: Vec<Line>,
    pub directives: Vec<Directive>,
}

/// Why a profile cannot be read, as firejail would refuse it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("no firejail profile `{name}` in {dirs}")]
    NotFound { name: String, dirs: String },
    #[error(
        "{at}: cannot read {path}: {why} (firejail refuses a profile whose includes are missing)"
    )]
    Include {
        at: String,
        path: String,
        why: String,
    },
    #[error("cannot read {path}: {why}")]
    Top { path: String, why: String },
    #[error("{at}: includes nest deeper than {MAX_INCLUDE_LEVEL} levels (an include loop?)")]
    TooDeep { at: String },
    #[error("{at}: more than {MAX_PROFILE_IGNORE} `ignore` lines (firejail's limit)")]
    TooManyIgnores { at: String },
    #[error("{at}: `$HOME` is not allowed in profiles (firejail wants `${{HOME}}`)")]
    DollarHome { at: String },
    #[error("{at}: {why}")]
    Conditional { at: String, why: String },
}

/// The conditions of `?NAME:` lines (`profile.c`, `conditionals[]`).
pub const CONDITIONS: &[&str] = &[
    "HAS_APPIMAGE",
    "HAS_NET",
    "HAS_NODBUS",
    "HAS_NOSOUND",
    "HAS_PRIVATE",
    "HAS_X11",
    "BROWSER_DISABLE_U2F",
    "BROWSER_ALLOW_DRM",
    "ALLOW_TRAY",
];

/// What the conditions depend on, as read so far.
#[derive(Debug, Default)]
struct State {
    ignores: Vec<(String, Origin)>,
    net_none: bool,
    dbus_user_restricted: bool,
    dbus_system_restricted: bool,
    nosound: bool,
    private: bool,
    x11: bool,
    allow_debuggers: bool,
}

/// Finds a profile by name (`firefox`, `firefox.profile`) in the search
/// directories, or takes a path (anything with a `/`).
pub fn locate(name: &str, env: &Env) -> Result<PathBuf, ReadError> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let file = if name.ends_with(".profile") {
        name.to_string()
    } else {
        format!("{name}.profile")
    };
    env.search_dirs
        .iter()
        .map(|d| d.join(&file))
        .find(|p| p.is_file())
        .ok_or_else(|| ReadError::NotFound {
            name: name.to_string(),
            dirs: env
                .search_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(" or "),
        })
}

/// Reads `file` and everything it includes.
pub fn read(file: &Path, env: &Env, fs: &Fs) -> Result<Profile, ReadError> {
    let lines = fs
        .profile_lines(file, normalize)
        .map_err(|(_, why)| ReadError::Top {
            path: file.display().to_string(),
            why,
        })?;
    let mut reader = Reader {
        env,
        fs,
        state: State::default(),
        profile: Profile {
            file: file.to_path_buf(),
            ..Profile::default()
        },
    };
    reader.read_lines(file, &lines, 0)?;
    Ok(reader.profile)
}

/// Whether `line` is dropped by one of `ignores` (prefix, then a space or
/// the end of the line).
fn ignored_by<'a>(line: &str, ignores: &'a [(String, Origin)]) -> Option<&'a Origin> {
    ignores
        .iter()
        .find(|(prefix, _)| {
            line.strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
        })
        .map(|(_, o)| o)
}

/// A line as firejail's `line_remove_spaces` leaves it.
pub fn normalize(raw: &str) -> String {
    let without_comment = raw.split('#').next().unwrap_or("");
    let without_eol = without_comment.split(['\n', '\r']).next().unwrap_or("");
    without_eol
        .split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

struct Reader<'e> {
    env: &'e Env,
    fs: &'e Fs,
    state: State,
    profile: Profile,
}

impl Reader<'_> {
    fn read_lines(
        &mut self,
        file: &Path,
        lines: &[(usize, String)],
        level: usize,
    ) -> Result<(), ReadError> {
        let file: Arc<Path> = Arc::from(file);
        for (n, text) in lines {
            let origin = Origin {
                file: file.clone(),
                line: *n,
            };
            self.read_line(origin, text.clone(), level)?;
        }
        Ok(())
    }

    fn push(&mut self, origin: Origin, text: String, fate: Fate) -> usize {
        self.profile.lines.push(Line { origin, text, fate });
        self.profile.lines.len() - 1
    }

    fn activate(&mut self, line: usize, texts: Vec<String>) {
        let mut ids = Vec::new();
        for text in texts {
            self.note_state(&text);
            self.profile.directives.push(Directive { line, text });
            ids.push(self.profile.directives.len() - 1);
        }
        self.profile.lines[line].fate = Fate::Active(ids);
    }

    fn read_line(&mut self, origin: Origin, text: String, level: usize) -> Result<(), ReadError> {
        if let Some(arg) = text.strip_prefix("whitelist-ro ") {
            // Added without looking at the ignore list, as firejail does.
            let texts = vec![format!("whitelist {arg}"), format!("read-only {arg}")];
            let idx = self.push(origin, text, Fate::Quiet);
            self.activate(idx, texts);
            return Ok(());
        }
        if text == "quiet" {
            let fate = match ignored_by(&text, &self.state.ignores) {
                Some(o) => Fate::Ignored(o.clone()),
                None => Fate::Quiet,
            };
            self.push(origin, text, fate);
            return Ok(());
        }
        if let Some(arg) = text.strip_prefix("include ") {
            if let Some(o) = ignored_by(&text, &self.state.ignores) {
                let o = o.clone();
                self.push(origin, text, Fate::Ignored(o));
                return Ok(());
            }
            let arg = arg.to_string();
            return self.include(origin, text, &arg, level);
        }
        self.check_line(origin, text)
    }

    fn include(
        &mut self,
        origin: Origin,
        text: String,
        arg: &str,
        level: usize,
    ) -> Result<(), ReadError> {
        if level + 1 > MAX_INCLUDE_LEVEL {
            return Err(ReadError::TooDeep { at: origin.short() });
        }
        let name = macros::expand(arg, self.env)
            .map_err(|_| ReadError::DollarHome { at: origin.short() })?;
        let path = if name.contains('/') {
            PathBuf::from(&name)
        } else {
            self.env
                .search_dirs
                .iter()
                .map(|d| d.join(&name))
                .find(|p| p.is_file())
                .unwrap_or_else(|| PathBuf::from(&name))
        };
        let base = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if self.state.allow_debuggers && base == "disable-devel.inc" {
            self.push(origin, text, Fate::SkippedByAllowDebuggers);
            return Ok(());
        }
        let lines = match self.fs.profile_lines(&path, normalize) {
            Ok(l) => l,
            Err((kind, why)) => {
                let is_local = base.find(".local").is_some_and(|i| base.len() - i == 6);
                if is_local && kind != std::io::ErrorKind::PermissionDenied {
                    self.push(origin, text, Fate::Include(None));
                    return Ok(());
                }
                return Err(ReadError::Include {
                    at: origin.short(),
                    path: path.display().to_string(),
                    why,
                });
            }
        };
        self.push(origin, text, Fate::Include(Some(path.clone())));
        self.read_lines(&path, &lines, level + 1)
    }

    /// `profile_check_line`: conditionals, the ignore list, `ignore`.
    fn check_line(&mut self, origin: Origin, text: String) -> Result<(), ReadError> {
        if let Some(rest) = text.strip_prefix('?') {
            return self.conditional(origin, &text, rest);
        }
        if let Some(o) = ignored_by(&text, &self.state.ignores) {
            let o = o.clone();
            self.push(origin, text, Fate::Ignored(o));
            return Ok(());
        }
        if let Some(prefix) = text.strip_prefix("ignore ") {
            if self.state.ignores.len() >= MAX_PROFILE_IGNORE {
                return Err(ReadError::TooManyIgnores { at: origin.short() });
            }
            self.state
                .ignores
                .push((prefix.to_string(), origin.clone()));
            self.push(origin, text, Fate::Ignore);
            return Ok(());
        }
        let idx = self.push(origin, text.clone(), Fate::Quiet);
        self.activate(idx, vec![text]);
        Ok(())
    }

    fn conditional(&mut self, origin: Origin, text: &str, rest: &str) -> Result<(), ReadError> {
        let err = |why: &str| ReadError::Conditional {
            at: origin.short(),
            why: why.to_string(),
        };
        let Some(name) = CONDITIONS.iter().find(|c| rest.starts_with(**c)) else {
            return Err(err("invalid/unsupported conditional"));
        };
        let after = rest[name.len()..]
            .strip_prefix(' ')
            .unwrap_or(&rest[name.len()..]);
        let Some(inner) = after.strip_prefix(':') else {
            return Err(err("colon must come after conditional"));
        };
        let inner = inner.strip_prefix(' ').unwrap_or(inner).to_string();
        if inner.is_empty() {
            return Err(err("no profile line after conditional"));
        }
        if !self.condition(name) {
            self.push(
                origin,
                text.to_string(),
                Fate::ConditionFalse(name.to_string()),
            );
            return Ok(());
        }
        if inner.starts_with("quiet") || inner.starts_with("include") {
            return Err(err("quiet and include not allowed in conditionals"));
        }
        if let Some(o) = ignored_by(&inner, &self.state.ignores) {
            let o = o.clone();
            self.push(origin, text.to_string(), Fate::Ignored(o));
            return Ok(());
        }
        if let Some(prefix) = inner.strip_prefix("ignore ") {
            self.state
                .ignores
                .push((prefix.to_string(), origin.clone()));
            self.push(origin, text.to_string(), Fate::Ignore);
            return Ok(());
        }
        let idx = self.push(origin, text.to_string(), Fate::Quiet);
        self.activate(idx, vec![inner]);
        Ok(())
    }

    fn condition(&self, name: &str) -> bool {
        let s = &self.state;
        let c = &self.env.config;
        match name {
            "HAS_APPIMAGE" => false,
            "HAS_NET" => s.net_none,
            "HAS_NODBUS" => s.dbus_user_restricted || s.dbus_system_restricted,
            "HAS_NOSOUND" => s.nosound,
            "HAS_PRIVATE" => s.private,
            "HAS_X11" => s.x11,
            "BROWSER_DISABLE_U2F" => c.browser_disable_u2f,
            "BROWSER_ALLOW_DRM" => c.browser_allow_drm,
            "ALLOW_TRAY" => c.allow_tray,
            _ => false,
        }
    }

    /// What later conditions and includes depend on.
    fn note_state(&mut self, text: &str) {
        let s = &mut self.state;
        match text {
            "net none" => s.net_none = true,
            "nosound" => s.nosound = true,
            "private" => s.private = true,
            "x11 none" => s.x11 = true,
            "allow-debuggers" => s.allow_debuggers = true,
            "nodbus" => {
                s.dbus_user_restricted = true;
                s.dbus_system_restricted = true;
            }
            "dbus-user none" | "dbus-user filter" => s.dbus_user_restricted = true,
            "dbus-system none" | "dbus-system filter" => s.dbus_system_restricted = true,
            t if t.starts_with("private ") || t.starts_with("private-home ") => s.private = true,
            t if t.starts_with("x11 ") && t != "x11 none" => s.x11 = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(files: &[(&str, &str)]) -> (tempfile::TempDir, Env) {
        let d = tempfile::tempdir().unwrap();
        let etc = d.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(d.path().join("home/.config/firejail")).unwrap();
        for (name, text) in files {
            std::fs::write(etc.join(name), text).unwrap();
        }
        let env = Env::new(d.path().join("home"), 1000, "/usr/bin", &etc);
        (d, env)
    }

    fn active(p: &Profile) -> Vec<&str> {
        p.directives.iter().map(|d| d.text.as_str()).collect()
    }

    #[test]
    fn includes_comments_blanks_and_locals() {
        let (_d, env) = setup(&[
            (
                "a.profile",
                "# comment\ninclude a.local\ninclude b.inc\n  blacklist   /x   # why\nquiet\n",
            ),
            ("b.inc", "include b.local\nnoblacklist\t/y\n"),
        ]);
        let p = read(&locate("a", &env).unwrap(), &env, &Fs::new()).unwrap();
        assert_eq!(active(&p), ["noblacklist /y", "blacklist /x"]);
        assert_eq!(p.lines[0].fate, Fate::Include(None));
        assert_eq!(p.lines.len(), 6);
        let missing = read(&env.search_dirs[1].join("a.profile"), &env, &Fs::new());
        assert!(missing.is_ok());
    }

    #[test]
    fn a_missing_include_that_is_not_local_is_an_error() {
        let (_d, env) = setup(&[("a.profile", "include nothere.inc\n")]);
        let e = read(&locate("a", &env).unwrap(), &env, &Fs::new()).unwrap_err();
        assert!(matches!(e, ReadError::Include { .. }), "{e}");
    }

    #[test]
    fn the_user_directory_comes_first() {
        let (_d, env) = setup(&[("a.profile", "include x.inc\n"), ("x.inc", "nosound\n")]);
        std::fs::write(env.search_dirs[0].join("x.inc"), "no3d\n").unwrap();
        let p = read(&locate("a", &env).unwrap(), &env, &Fs::new()).unwrap();
        assert_eq!(active(&p), ["no3d"]);
    }

    #[test]
    fn ignore_is_a_prefix_with_a_word_boundary_and_applies_to_later_lines() {
        let (_d, env) = setup(&[(
            "a.profile",
            "nosound\nignore nosound\nnosound\nignore private\nprivate-dev\nprivate\nprivate /x\nignore include c.inc\ninclude c.inc\n",
        )]);
        let p = read(&locate("a", &env).unwrap(), &env, &Fs::new()).unwrap();
        assert_eq!(active(&p), ["nosound", "private-dev"]);
        assert!(matches!(p.lines[2].fate, Fate::Ignored(_)));
        assert!(matches!(p.lines[8].fate, Fate::Ignored(_)));
    }

    #[test]
    fn conditionals_follow_config_and_earlier_lines() {
        let (_d, env) = setup(&[(
            "a.profile",
            "?HAS_NET: nosound\nnet none\n?HAS_NET: no3d\n?ALLOW_TRAY: x\n?BROWSER_DISABLE_U2F: nou2f\n",
        )]);
        let p = read(&locate("a", &env).unwrap(), &env, &Fs::new()).unwrap();
        assert_eq!(active(&p), ["net none", "no3d", "nou2f"]);
        assert_eq!(p.lines[0].fate, Fate::ConditionFalse("HAS_NET".into()));
        let (_d, env) = setup(&[("a.profile", "?NOPE: x\n")]);
        assert!(read(&locate("a", &env).unwrap(), &env, &Fs::new()).is_err());
    }

    #[test]
    fn whitelist_ro_and_allow_debuggers() {
        let (_d, env) = setup(&[
            (
                "a.profile",
                "ignore whitelist\nwhitelist-ro /x\nallow-debuggers\ninclude disable-devel.inc\n",
            ),
            ("disable-devel.inc", "blacklist /gcc\n"),
        ]);
        let p = read(&locate("a", &env).unwrap(), &env, &Fs::new()).unwrap();
        assert_eq!(
            active(&p),
            ["whitelist /x", "read-only /x", "allow-debuggers"]
        );
        assert_eq!(p.lines[3].fate, Fate::SkippedByAllowDebuggers);
    }

    #[test]
    fn normalizing() {
        assert_eq!(normalize("  a \t b  # c"), "a b");
        assert_eq!(normalize("#x"), "");
    }
}
