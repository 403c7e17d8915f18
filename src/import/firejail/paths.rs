//! Path handling the way firejail does it: `fnmatch(3)` with
//! `FNM_PATHNAME` (the matcher behind `noblacklist`), `glob(3)` with
//! `GLOB_NOCHECK | GLOB_PERIOD` (how `blacklist` and `whitelist` expand
//! wildcards: a wildcard matches a leading dot, and a pattern that matches
//! nothing stands for itself), and `realpath(3)`. Directory listings are
//! cached: the corpus names the same directories (`/usr/bin` for every
//! `${PATH}/...` line) thousands of times.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// Whether `name` matches the shell pattern `pattern` as `fnmatch(3)` with
/// `FNM_PATHNAME` decides in the C locale firejail runs in (bytes, not
/// characters): `*`, `?` and `[...]` never match `/`, a leading dot is
/// matched by wildcards (no `FNM_PERIOD`), `\` quotes the next byte.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    // The part before the first wildcard must match as it is.
    let Some(lit) = first_special(pattern) else {
        return pattern == name;
    };
    if !name.starts_with(&pattern[..lit]) {
        return false;
    }
    match_from(&pattern[lit..], &name[lit..])
}

fn match_from(p: &str, n: &str) -> bool {
    let (pb, nb) = (p.as_bytes(), n.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // The last `*` seen and where the name was then, for backtracking
    // within one path component.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < pb.len() {
            match pb[pi] {
                b'*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    if ni < nb.len() && nb[ni] != b'/' {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                b'[' => match bracket(pb, pi, nb.get(ni).copied()) {
                    Some((true, next)) => {
                        pi = next;
                        ni += 1;
                        continue;
                    }
                    Some((false, _)) => {}
                    // An unterminated `[` is an ordinary character.
                    None if ni < nb.len() && nb[ni] == b'[' => {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                    None => {}
                },
                b'\\' if pi + 1 < pb.len() => {
                    if ni < nb.len() && nb[ni] == pb[pi + 1] {
                        pi += 2;
                        ni += 1;
                        continue;
                    }
                }
                c => {
                    if ni < nb.len() && nb[ni] == c {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
            }
        } else if ni == nb.len() {
            return true;
        }
        // Mismatch: let the last `*` eat one more character, never a `/`.
        match star {
            Some((spi, sni)) if sni < nb.len() && nb[sni] != b'/' => {
                let next = sni + 1;
                star = Some((spi, next));
                pi = spi + 1;
                ni = next;
            }
            _ => return false,
        }
    }
}

/// Matches the bracket expression starting at `p[start]` (a `[`) against
/// the byte `c`: `Some((matched, index after the expression))`, or `None`
/// if the expression is not terminated.
fn bracket(p: &[u8], start: usize, c: Option<u8>) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == b']' && !first {
            return Some(match c {
                Some(c) if c != b'/' => (matched != negate, i + 1),
                _ => (false, i + 1),
            });
        }
        first = false;
        let (lo, next) = if ch == b'\\' {
            (*p.get(i + 1)?, i + 2)
        } else {
            (ch, i + 1)
        };
        if p.get(next) == Some(&b'-') && p.get(next + 1).is_some_and(|&h| h != b']') {
            let hi = p[next + 1];
            if c.is_some_and(|c| lo <= c && c <= hi) {
                matched = true;
            }
            i = next + 2;
        } else {
            if c == Some(lo) {
                matched = true;
            }
            i = next;
        }
    }
}

/// Patterns to match many names against (the `noblacklist` list): literal
/// ones are looked up, only the others are matched.
#[derive(Debug, Default, Clone)]
pub struct PatternSet {
    literal: std::collections::HashSet<String>,
    /// (pattern, the length of its literal prefix), in insertion order.
    wild: Vec<(String, usize)>,
}

impl PatternSet {
    pub fn insert(&mut self, pattern: String) {
        match first_special(&pattern) {
            None => {
                self.literal.insert(pattern);
            }
            Some(lit) => self.wild.push((pattern, lit)),
        }
    }

    /// A pattern that matches `name`, if any.
    pub fn find(&self, name: &str) -> Option<&str> {
        if let Some(p) = self.literal.get(name) {
            return Some(p);
        }
        self.wild
            .iter()
            .find(|(p, lit)| {
                name.as_bytes().starts_with(&p.as_bytes()[..*lit])
                    && match_from(&p[*lit..], &name[*lit..])
            })
            .map(|(p, _)| p.as_str())
    }
}

/// Whether `s` has a wildcard `glob(3)` would expand.
pub fn has_wildcard(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// Where the first wildcard or `\\` of a pattern is, if anywhere.
fn first_special(s: &str) -> Option<usize> {
    s.bytes()
        .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
}

/// `/a//b/./c/` → `/a/b/c`, lexically (no `..` handling: firejail refuses
/// paths with `..`).
pub fn clean(path: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(path).components() {
        if let Component::Normal(n) = c {
            out.push(n);
        }
    }
    out
}

/// Whether `ancestor` is `path` or one of its parent directories.
pub fn is_within(path: &Path, ancestor: &Path) -> bool {
    path.starts_with(ancestor)
}

/// The host's filesystem as firejail reads it, with directory listings
/// cached for the life of this value.
#[derive(Default)]
pub struct Fs {
    listings: RefCell<HashMap<PathBuf, Option<Vec<String>>>>,
    realpaths: RefCell<HashMap<PathBuf, Option<PathBuf>>>,
    /// What is at a path, symlinks not followed: `None` if nothing.
    kinds: RefCell<HashMap<PathBuf, Option<Kind>>>,
    globs: RefCell<HashMap<String, Vec<String>>>,
    /// Profile files, as firejail reads their lines.
    profiles: RefCell<HashMap<PathBuf, ProfileLines>>,
}

/// The non-empty lines of a profile file (number, text as firejail sees
/// it), or why the file cannot be read.
pub type ProfileLines = Result<std::rc::Rc<Vec<(usize, String)>>, (std::io::ErrorKind, String)>;

/// What kind of file a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    Symlink,
    Other,
}

impl Fs {
    pub fn new() -> Fs {
        Fs::default()
    }

    /// The lines of the profile file `path`, comments removed and blanks
    /// collapsed (`normalize`), empty ones left out.
    pub fn profile_lines(&self, path: &Path, normalize: fn(&str) -> String) -> ProfileLines {
        if let Some(cached) = self.profiles.borrow().get(path) {
            return cached.clone();
        }
        let r = std::fs::read_to_string(path)
            .map(|text| {
                std::rc::Rc::new(
                    text.lines()
                        .enumerate()
                        .map(|(i, l)| (i + 1, normalize(l)))
                        .filter(|(_, l)| !l.is_empty())
                        .collect(),
                )
            })
            .map_err(|e| (e.kind(), e.to_string()));
        self.profiles
            .borrow_mut()
            .insert(path.to_path_buf(), r.clone());
        r
    }

    /// The names in `dir`, sorted (`None` if it cannot be read).
    fn list(&self, dir: &Path) -> Option<Vec<String>> {
        if let Some(cached) = self.listings.borrow().get(dir) {
            return cached.clone();
        }
        let names = std::fs::read_dir(dir).ok().map(|rd| {
            let mut v: Vec<String> = rd
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect();
            v.sort();
            v
        });
        self.listings
            .borrow_mut()
            .insert(dir.to_path_buf(), names.clone());
        names
    }

    /// `realpath(3)`: `None` if the path (or a link on the way) is missing.
    pub fn realpath(&self, path: &Path) -> Option<PathBuf> {
        if let Some(cached) = self.realpaths.borrow().get(path) {
            return cached.clone();
        }
        let r = std::fs::canonicalize(path).ok();
        self.realpaths
            .borrow_mut()
            .insert(path.to_path_buf(), r.clone());
        r
    }

    fn kind(&self, path: &Path) -> Option<Kind> {
        if let Some(k) = self.kinds.borrow().get(path) {
            return *k;
        }
        let k = std::fs::symlink_metadata(path).ok().map(|m| {
            if m.file_type().is_symlink() {
                Kind::Symlink
            } else if m.is_dir() {
                Kind::Dir
            } else {
                Kind::Other
            }
        });
        self.kinds.borrow_mut().insert(path.to_path_buf(), k);
        k
    }

    /// Whether something (a dangling symlink included) is at `path`.
    pub fn exists(&self, path: &Path) -> bool {
        self.kind(path).is_some()
    }

    pub fn is_symlink(&self, path: &Path) -> bool {
        self.kind(path) == Some(Kind::Symlink)
    }

    /// Whether `path` (following symlinks) is a directory.
    pub fn is_dir(&self, path: &Path) -> bool {
        match self.kind(path) {
            Some(Kind::Dir) => true,
            Some(Kind::Symlink) => self
                .realpath(path)
                .is_some_and(|r| self.kind(&r) == Some(Kind::Dir)),
            _ => false,
        }
    }

    /// `glob(3)` with `GLOB_NOCHECK | GLOB_PERIOD`: the existing paths the
    /// absolute `pattern` matches, sorted; the pattern itself when it has
    /// no wildcard or matches nothing. `.` and `..` are never produced.
    pub fn glob(&self, pattern: &str) -> Vec<String> {
        if !has_wildcard(pattern) {
            return vec![pattern.to_string()];
        }
        if let Some(found) = self.globs.borrow().get(pattern) {
            return found.clone();
        }
        let mut found = Vec::new();
        let parts: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
        self.glob_from(PathBuf::from("/"), &parts, &mut found);
        if found.is_empty() {
            found.push(pattern.to_string());
        }
        found.sort();
        self.globs
            .borrow_mut()
            .insert(pattern.to_string(), found.clone());
        found
    }

    fn glob_from(&self, base: PathBuf, parts: &[&str], out: &mut Vec<String>) {
        let Some((first, rest)) = parts.split_first() else {
            out.push(base.to_string_lossy().into_owned());
            return;
        };
        if !has_wildcard(first) {
            let next = base.join(unescape(first));
            if rest.is_empty() {
                if self.exists(&next) {
                    out.push(next.to_string_lossy().into_owned());
                }
            } else if self.is_dir(&next) {
                self.glob_from(next, rest, out);
            }
            return;
        }
        for name in self.list(&base).unwrap_or_default() {
            if fnmatch(first, &name) {
                let next = base.join(&name);
                if rest.is_empty() {
                    out.push(next.to_string_lossy().into_owned());
                } else if self.is_dir(&next) {
                    self.glob_from(next, rest, out);
                }
            }
        }
    }
}

/// A pattern component without wildcards, its `\` quoting removed.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_as_libc_with_pathname() {
        assert!(fnmatch("/a/*", "/a/b"));
        assert!(fnmatch("/a/*", "/a/.hidden"), "no FNM_PERIOD");
        assert!(!fnmatch("/a/*", "/a/b/c"), "* does not cross /");
        assert!(fnmatch("/a/*/c", "/a/b/c"));
        assert!(fnmatch("/usr/bin/python3*", "/usr/bin/python3.11"));
        assert!(!fnmatch("/usr/bin/python3*", "/usr/bin/python2"));
        assert!(fnmatch("/x/?", "/x/y"));
        assert!(!fnmatch("/x/?", "/x/"));
        assert!(fnmatch("/x/[ab]c", "/x/bc"));
        assert!(!fnmatch("/x/[!ab]c", "/x/bc"));
        assert!(fnmatch("/x/[a-c]", "/x/b"));
        assert!(fnmatch("/x/\\*", "/x/*"));
        assert!(!fnmatch("/x/\\*", "/x/y"));
        assert!(fnmatch("/x/*.so*", "/x/libfoo.so.1"));
        assert!(fnmatch("/a/b", "/a/b"));
        assert!(!fnmatch("/a/b", "/a/bc"));
        assert!(fnmatch("*", ""));
        assert!(fnmatch("/h/.mozilla*", "/h/.mozilla"));
        assert!(fnmatch("/x/[", "/x/["), "unterminated bracket is literal");
    }

    /// The C library's fnmatch with FNM_PATHNAME, which firejail calls.
    #[allow(
        unsafe_code,
        reason = "the test's reference is the C library's fnmatch"
    )]
    fn libc_fnmatch(pattern: &str, name: &str) -> bool {
        let p = std::ffi::CString::new(pattern).unwrap();
        let n = std::ffi::CString::new(name).unwrap();
        // SAFETY: both strings are NUL-terminated and outlive the call.
        unsafe { libc::fnmatch(p.as_ptr(), n.as_ptr(), libc::FNM_PATHNAME) == 0 }
    }

    #[test]
    fn fnmatch_agrees_with_the_c_library() {
        let patterns = [
            "/a/*",
            "/a/*/c",
            "/a/b*",
            "*",
            "/a/?",
            "/a/[bc]*",
            "/a/[!b]*",
            "/a/[a-c]x",
            "/a/*.so*",
            "/a/\\*",
            "/h/.*",
            "/a/*b*c",
            "/a/[",
            "/a/[]x]",
            "/é/*",
            "/a/?b",
            "/a/**",
            "/a/*/",
            "/a/[^b]",
        ];
        let names = [
            "/a/b",
            "/a/.b",
            "/a/b/c",
            "/a/bc",
            "/a/cx",
            "/a/libx.so.1",
            "/a/*",
            "/h/.x",
            "/a/xbyc",
            "/a/[",
            "/a/]",
            "/a/x",
            "/é/ü",
            "/a/éb",
            "/a/",
            "/a/bb/",
            "/a",
            "/a/ab",
        ];
        for p in patterns {
            for n in names {
                assert_eq!(
                    fnmatch(p, n),
                    libc_fnmatch(p, n),
                    "pattern {p:?} name {n:?}"
                );
            }
        }
    }

    #[test]
    fn glob_expands_like_glob_nocheck_period() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for f in ["a/.hidden", "a/one", "a/two/x", "b/one"] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "").unwrap();
        }
        let fs = Fs::new();
        let r = root.display().to_string();
        assert_eq!(
            fs.glob(&format!("{r}/a/*")),
            [".hidden", "one", "two"].map(|n| format!("{r}/a/{n}"))
        );
        assert_eq!(
            fs.glob(&format!("{r}/*/one")),
            ["a", "b"].map(|n| format!("{r}/{n}/one"))
        );
        // No match: the pattern itself (GLOB_NOCHECK).
        assert_eq!(fs.glob(&format!("{r}/c*")), [format!("{r}/c*")]);
        assert_eq!(fs.glob(&format!("{r}/a/t?o/x")), [format!("{r}/a/two/x")]);
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean("/a//b/./c/"), PathBuf::from("/a/b/c"));
        assert_eq!(clean("/"), PathBuf::from("/"));
    }
}
