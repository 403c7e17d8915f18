//! The filesystem of the imported profile: hutch's sandbox starts from an
//! empty root, so the translation binds what firejail shows and nothing
//! it hides ([`View::visible`] decides), in this order:
//!
//! 1. the system directories, read-only (`/usr`, the `/bin` and `/lib*`
//!    links, `/etc` or its `private-etc` list, `/opt` or `private-opt`,
//!    `private-srv`, `/var`), `/proc`, a minimal `/dev`, an empty `/tmp`;
//! 2. each whitelist top-level directory outside the home directory as an
//!    empty tmpfs (inside the system directories) with the whitelisted
//!    paths bound into it;
//! 3. `private-bin`: the bin directories emptied, the listed programs bound;
//! 4. the home directory as an empty tmpfs, with the whitelisted paths
//!    (whitelist mode) or, for a profile that only blacklists, the paths it
//!    names (noblacklist, mkdir, mkfile) and the XDG user directories;
//! 5. `read-only`/`read-write` on paths inside those binds;
//! 6. covers: what firejail hides inside a read-only system bind becomes
//!    an empty tmpfs (a directory) or a bind of /dev/null (a file).
//!
//! Inside the user's own files (home, /run/user, /tmp, /mnt) nothing is
//! covered: a cover whose path disappears would be created on the host at
//! the next launch. A bind there that contains something firejail hides is
//! split instead: its entries are bound one by one, leaving the hidden ones
//! out.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::draft::Mount;
use super::env::Env;
use super::macros;
use super::paths::{self, Fs};
use super::report::{Outcome, Verdict, Withheld};
use super::source::Profile;
use super::table::{self, Section};
use super::view::{self, View, WhitelistSkip};
use crate::profile::schema::MountKind;

/// Where covers are made: trees bound read-only from the system.
const SYSTEM_TREES: &[&str] = &[
    "/usr", "/etc", "/opt", "/srv", "/var", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    "/proc",
];

/// Directories firejail replaces with an empty tmpfs that must stay usable.
const COVER_MODES: &[(&str, &str)] = &[("/var/tmp", "1777"), ("/var/log", "0755")];

/// Entries of /proc that hutch masks or hides by itself.
const PROC_HUTCH_HIDES: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
];

pub struct FsResult {
    pub mounts: Vec<Mount>,
    /// Verdicts on the filesystem directives, by directive index.
    pub outcomes: BTreeMap<usize, Outcome>,
    pub withheld: Vec<Withheld>,
}

struct Builder<'a> {
    profile: &'a Profile,
    view: &'a View,
    env: &'a Env,
    fs: &'a Fs,
    mounts: Vec<Mount>,
    notes: BTreeMap<usize, Vec<(Verdict, String)>>,
    withheld: Vec<Withheld>,
    /// The destinations in `mounts`.
    dsts: HashSet<PathBuf>,
    /// Files firejail rewrites for the sandbox (`machine-id`: a random
    /// machine id; `hostname`: /etc/hostname), which hutch hides instead,
    /// and the directive of each.
    replaced: Vec<(&'static str, usize)>,
    pending: table::PendingSet,
}

/// `blacklist ${HOME}/.ssh (disable-common.inc:12)`.
pub fn cite(profile: &Profile, id: usize) -> String {
    let d = &profile.directives[id];
    let origin = &profile.lines[d.line].origin;
    format!("{} ({})", d.text, origin.short())
}

fn is_system(path: &Path) -> bool {
    SYSTEM_TREES.iter().any(|t| path.starts_with(t))
}

pub fn build(profile: &Profile, view: &View, env: &Env, fs: &Fs) -> FsResult {
    let position = |k: &str| profile.directives.iter().position(|d| d.split().0 == k);
    let mut replaced = Vec::new();
    if let Some(id) = position("machine-id") {
        replaced.push(("/etc/machine-id", id));
        replaced.push(("/var/lib/dbus/machine-id", id));
    }
    if let Some(id) = position("hostname") {
        replaced.push(("/etc/hostname", id));
    }
    let mut b = Builder {
        profile,
        view,
        env,
        fs,
        mounts: Vec::new(),
        notes: BTreeMap::new(),
        withheld: Vec::new(),
        dsts: HashSet::new(),
        replaced,
        pending: table::PendingSet::new(
            &env.home.to_string_lossy(),
            &env.runuser().to_string_lossy(),
        ),
    };
    b.system();
    b.whitelist_tops();
    b.private_bin();
    b.home();
    b.tmpfs_lines();
    b.access();
    b.covers();
    b.explain_lines();
    let outcomes = b.outcomes();
    FsResult {
        mounts: b.mounts,
        outcomes,
        withheld: b.withheld,
    }
}

impl Builder<'_> {
    fn note(&mut self, id: usize, v: Verdict, why: impl Into<String>) {
        let list = self.notes.entry(id).or_default();
        let why = why.into();
        if !list.iter().any(|(_, w)| *w == why) {
            list.push((v, why));
        }
    }

    fn cite(&self, id: usize) -> String {
        cite(self.profile, id)
    }

    fn cite_all(&self, ids: &[usize]) -> String {
        ids.iter()
            .map(|i| self.cite(*i))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn has_dst(&self, dst: &Path) -> bool {
        self.dsts.contains(dst)
    }

    fn push(&mut self, m: Mount) -> bool {
        if !self.dsts.insert(m.dst.clone()) {
            return false;
        }
        self.mounts.push(m);
        true
    }

    /// Whether firejail rewrites `path` (hutch hides it instead).
    fn rewritten(&self, path: &Path) -> bool {
        self.replaced.iter().any(|(p, _)| path == Path::new(p))
    }

    fn pending(&self, path: &Path) -> Option<(Section, &'static str)> {
        self.pending.get(path)
    }

    fn system(&mut self) {
        let sys = "the host's system directories, read-only (as firejail shows them)";
        self.push(Mount::bind(true, "/usr".into(), sys));
        for d in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            let mut m = Mount::bind(true, d.into(), sys).optional();
            m.keep_symlink = true;
            self.push(m);
        }
        match self.view.privates.etc.clone() {
            Some((names, ids)) => self.private_dir("/etc", &names, &ids),
            None => {
                self.push(Mount::bind(true, "/etc".into(), sys));
            }
        }
        match self.view.privates.opt.clone() {
            Some((names, ids)) => self.private_dir("/opt", &names, &ids),
            None => {
                self.push(Mount::bind(true, "/opt".into(), sys).optional());
            }
        }
        if let Some((names, ids)) = self.view.privates.srv.clone() {
            self.private_dir("/srv", &names, &ids);
        }
        self.push(
            Mount::bind(
                true,
                "/var".into(),
                "/var, read-only; firejail empties /var/tmp, /var/log and a few daemons' directories (covered below)",
            )
            .optional(),
        );
        self.push(Mount::new(
            MountKind::Proc,
            "/proc".into(),
            "a /proc of the sandbox's own processes",
        ));
        self.push(Mount::new(
            MountKind::Dev,
            "/dev".into(),
            "a minimal /dev: null zero full random urandom tty, a private pts and shm",
        ));
        let tmp = match self.view.privates.tmp {
            Some(id) => format!("{}\nan empty /tmp", self.cite(id)),
            None => {
                "an empty, private /tmp (firejail shares the host's without private-tmp)".into()
            }
        };
        self.push(Mount::new(MountKind::Tmpfs, "/tmp".into(), tmp).mode("1777"));
    }

    /// `private-etc` and the like: an empty directory with the listed
    /// entries (firejail copies them, following symlinks).
    fn private_dir(&mut self, root: &str, names: &[String], ids: &[usize]) {
        let what = format!(
            "{}\nan empty {root} holding only the listed entries",
            self.cite_all(ids)
        );
        for id in ids {
            self.note(
                *id,
                Verdict::Translated,
                format!("an empty {root} holding only the listed entries"),
            );
        }
        self.push(Mount::new(MountKind::Tmpfs, root.into(), what.clone()).mode("0755"));
        let mut seen = BTreeSet::new();
        for name in names {
            if !seen.insert(name.clone()) {
                continue;
            }
            if name.starts_with('/') || name.starts_with('@') || name.contains("..") {
                for id in ids {
                    self.note(
                        *id,
                        Verdict::Stricter,
                        format!("`{name}` is not an entry firejail 0.9.72 copies; left out"),
                    );
                }
                continue;
            }
            let path = Path::new(root).join(name);
            let Some(real) = self.fs.realpath(&path) else {
                continue;
            };
            if self.rewritten(&path) || !self.view.visible(&path) || self.hidden(&real) {
                continue;
            }
            let mut m = Mount::bind(true, real, what.clone()).optional();
            m.dst = path;
            self.push(m);
        }
    }

    /// Whether a blacklist (or firejail itself) hides `path` or a directory
    /// above it.
    fn hidden(&self, path: &Path) -> bool {
        self.view.hidden_at(path)
    }

    /// Whether something firejail hides lies strictly below `path`.
    fn hides_below(&self, path: &Path) -> bool {
        self.view.hides_below(path)
    }

    fn whitelist_tops(&mut self) {
        let tops: Vec<(PathBuf, usize)> = self
            .view
            .tops
            .iter()
            .map(|(t, i)| (t.clone(), *i))
            .collect();
        for (top, id) in tops {
            if top == self.env.home {
                continue;
            }
            let system = is_system(&top);
            if system {
                let why = format!(
                    "{}\n{} becomes an empty directory holding only the whitelisted paths",
                    self.cite(id),
                    top.display()
                );
                let tmpfs = Mount::new(MountKind::Tmpfs, top.clone(), why).mode("0755");
                match self.mounts.iter().position(|m| m.dst == top) {
                    // /etc, /opt, /var bound whole: emptied instead.
                    Some(i) if self.mounts[i].kind.is_bind() => self.mounts[i] = tmpfs,
                    // Already emptied (private-etc): firejail whitelists
                    // in the private copy, which `visible` accounts for.
                    Some(_) => {}
                    None => {
                        self.push(tmpfs);
                    }
                }
            }
            self.whitelisted_in(&top, system);
        }
    }

    /// Binds the whitelisted paths of `top`.
    fn whitelisted_in(&mut self, top: &Path, readonly: bool) {
        let items: Vec<view::WhitelistItem> = self
            .view
            .whitelist
            .iter()
            .filter(|w| w.top == top)
            .cloned()
            .collect();
        for w in items {
            self.grant(w.directive, &w.file, w.link.as_deref(), readonly);
        }
        // A whitelisted path missing now is bound when it appears.
        let skips: Vec<(usize, PathBuf)> = self
            .view
            .whitelist_skips
            .iter()
            .flat_map(|(id, s)| {
                s.iter().filter_map(move |s| match s {
                    WhitelistSkip::Missing(p) => Some((*id, p.clone())),
                    _ => None,
                })
            })
            .filter(|(_, p)| {
                !paths::has_wildcard(&p.to_string_lossy())
                    && self.view.topdir(p).as_deref() == Some(top)
            })
            .collect();
        for (id, p) in skips {
            if self.fs.exists(&p) {
                continue; // a dangling symlink: firejail skips it too
            }
            self.grant(id, &p, None, readonly);
        }
    }

    /// Binds the host path `path` (resolved; `link` is where it was named
    /// when that is a symlink) for directive `id`, unless firejail hides it
    /// or it belongs to a pending section.
    fn grant(&mut self, id: usize, path: &Path, link: Option<&Path>, readonly: bool) {
        if let Some((section, what)) = self.pending(path) {
            self.note(
                id,
                Verdict::Stricter,
                format!(
                    "withheld: {} ({what}) {}",
                    path.display(),
                    section.describe()
                ),
            );
            return;
        }
        if !self.view.visible(path) || self.rewritten(path) {
            self.note(
                id,
                Verdict::Translated,
                format!("{}: firejail hides it too", path.display()),
            );
            return;
        }
        let ro = readonly || self.view.readonly(path).is_some_and(|(ro, _)| ro);
        let comment = self.cite(id);
        let exists = self.fs.exists(path);
        if exists && !is_system(path) && self.hides_below(path) {
            self.split(path, ro, &comment, 0);
            self.note(
                id,
                Verdict::Translated,
                format!(
                    "{}: bound entry by entry, leaving out what firejail hides inside",
                    path.display()
                ),
            );
        } else {
            self.push(Mount::bind(ro, path.to_path_buf(), comment.clone()).optional());
            self.note(
                id,
                Verdict::Translated,
                if exists {
                    format!("bound {}", path.display())
                } else {
                    format!("{}: not there now; bound when it exists", path.display())
                },
            );
        }
        // A symlink is made only where nothing of the host is bound: in a
        // bound directory it would be made on the host.
        if let Some(link) = link
            && link != path
            && !self.has_dst(link)
            && link.parent().is_some_and(|p| self.bind_at(p).is_none())
        {
            let mut m = Mount::new(MountKind::Symlink, link.to_path_buf(), comment);
            m.target = Some(path.to_path_buf());
            self.push(m);
        }
    }

    /// Binds the entries of `dir` one by one, leaving out what firejail
    /// hides (a symlink is recreated, never followed).
    fn split(&mut self, dir: &Path, ro: bool, comment: &str, depth: usize) {
        if depth > 6 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            if self.hidden(&p) || !self.view.visible(&p) || self.pending(&p).is_some() {
                continue;
            }
            if self.fs.is_symlink(&p) {
                if let Ok(target) = std::fs::read_link(&p) {
                    let mut m = Mount::new(MountKind::Symlink, p.clone(), comment.to_string());
                    m.target = Some(target);
                    self.push(m);
                }
                continue;
            }
            if self.hides_below(&p) && self.fs.is_dir(&p) {
                self.split(&p, ro, comment, depth + 1);
            } else {
                self.push(Mount::bind(ro, p, comment.to_string()).optional());
            }
        }
    }

    fn private_bin(&mut self) {
        let Some((_, ids)) = self.view.privates.bin.clone() else {
            return;
        };
        let why = format!(
            "{}\nthe bin directories hold only the listed programs",
            self.cite_all(&ids)
        );
        let mut dirs = BTreeSet::new();
        for d in view::BIN_DIRS {
            if let Some(real) = self.fs.realpath(Path::new(d))
                && self.fs.is_dir(&real)
                && is_system(&real)
            {
                dirs.insert(real);
            }
        }
        for d in dirs {
            self.push(Mount::new(MountKind::Tmpfs, d, why.clone()).mode("0755"));
        }
        for (found, target) in view::private_bin_programs(self.view, self.env, self.fs) {
            if !self.view.visible(&found) {
                continue;
            }
            let real_found = self.fs.realpath(&found).unwrap_or_else(|| found.clone());
            // Where the program is seen: its directory, resolved (/bin is
            // /usr/bin on merged systems).
            let dir = found
                .parent()
                .and_then(|p| self.fs.realpath(p))
                .unwrap_or_else(|| found.clone());
            let at = dir.join(found.file_name().unwrap_or_default());
            if self.fs.is_symlink(&found) {
                if let Ok(t) = std::fs::read_link(&found) {
                    let mut m = Mount::new(MountKind::Symlink, at.clone(), why.clone());
                    m.target = Some(t);
                    self.push(m);
                }
                if let Some(t) = target
                    && self.view.visible(&t)
                {
                    self.push(Mount::bind(true, t, why.clone()).optional());
                }
            } else {
                let mut m = Mount::bind(true, real_found, why.clone()).optional();
                m.dst = at;
                self.push(m);
            }
        }
        for id in ids {
            self.note(
                id,
                Verdict::Translated,
                "the listed programs are bound into empty bin directories",
            );
        }
    }

    fn home(&mut self) {
        let home = self.env.home.clone();
        let p = &self.view.privates;
        if let Some(id) = p.home {
            let home_list = p.home_list.clone();
            self.push(
                Mount::new(
                    MountKind::Tmpfs,
                    home.clone(),
                    format!("{}\nan empty home directory", self.cite(id)),
                )
                .mode("0700"),
            );
            if let Some((names, ids)) = home_list {
                for name in names {
                    let path = home.join(&name);
                    if let Some(real) = self.fs.realpath(&path)
                        && self.view.visible(&real)
                        && !self.hides_below(&real)
                    {
                        self.push(Mount::bind(true, real, self.cite_all(&ids)).optional());
                    }
                }
                for id in ids {
                    self.note(id, Verdict::Stricter, "the listed files are bound read-only (firejail copies them, writable, and drops the changes)");
                }
            }
            return;
        }
        if self.view.tops.contains_key(&home) {
            let id = self.view.tops[&home];
            self.push(
                Mount::new(
                    MountKind::Tmpfs,
                    home.clone(),
                    format!(
                        "{}\nthe home directory holds only the whitelisted paths",
                        self.cite(id)
                    ),
                )
                .mode("0700"),
            );
            self.whitelisted_in(&home, false);
            return;
        }
        self.push(
            Mount::new(
                MountKind::Tmpfs,
                home.clone(),
                "the home directory holds only the paths the profile names (below)",
            )
            .mode("0700"),
        );
        self.withheld.push(Withheld {
            what: "the rest of your home directory".into(),
            why: "firejail shows all of it but what the profile blacklists; hutch shows the paths the profile names (noblacklist, mkdir, mkfile) and the XDG user directories, because it cannot hide a path that appears after the import without creating it in your home; bind more in a .local.toml if you trust the program with it".into(),
        });
        for (id, path) in self.denylist_roots() {
            self.grant_root(id, &path);
        }
    }

    /// For a profile that only blacklists in the home directory: the paths
    /// it names there, by directive (`usize::MAX` for the XDG directories).
    fn denylist_roots(&self) -> Vec<(usize, PathBuf)> {
        let mut roots: Vec<(usize, PathBuf)> = Vec::new();
        for (id, d) in self.profile.directives.iter().enumerate() {
            let (k, arg) = d.split();
            if !matches!(k, "noblacklist" | "mkdir" | "mkfile") {
                continue;
            }
            for pattern in macros::expand_with_path(arg, self.env).unwrap_or_default() {
                let p = paths::clean(&pattern);
                if !p.starts_with(&self.env.home) || p == self.env.home {
                    continue;
                }
                if paths::has_wildcard(&pattern) {
                    for m in self.fs.glob(&pattern) {
                        if m != pattern {
                            roots.push((id, PathBuf::from(m)));
                        }
                    }
                } else {
                    roots.push((id, p));
                }
            }
        }
        for (name, _, _) in macros::XDG_MACROS {
            if let Some(dir) = macros::resolve_xdg(name, self.env) {
                roots.push((usize::MAX, dir));
            }
        }
        roots
    }

    fn grant_root(&mut self, id: usize, path: &Path) {
        let real = self.fs.realpath(path).unwrap_or_else(|| path.to_path_buf());
        // Already bound whole by a directory above it.
        if self
            .mounts
            .iter()
            .any(|m| m.kind.is_bind() && m.src.as_ref().is_some_and(|s| real.starts_with(s)))
        {
            if id != usize::MAX {
                self.note(
                    id,
                    Verdict::Translated,
                    format!("{} is bound", path.display()),
                );
            }
            return;
        }
        if id == usize::MAX {
            if self.pending(&real).is_none() && self.view.visible(&real) {
                let comment = "an XDG user directory (firejail shows it too)";
                if self.hides_below(&real) {
                    self.split(&real, false, comment, 0);
                } else {
                    let ro = self.view.readonly(&real).is_some_and(|(ro, _)| ro);
                    self.push(Mount::bind(ro, real.clone(), comment).optional());
                }
            }
            return;
        }
        let link = (real != path).then_some(path);
        self.grant(id, &real, link, false);
    }

    fn tmpfs_lines(&mut self) {
        for (id, d) in self.profile.directives.iter().enumerate() {
            let ("tmpfs", arg) = d.split() else {
                continue;
            };
            let Ok(e) = macros::expand(arg, self.env) else {
                continue;
            };
            let p = paths::clean(&e);
            let under_home = p.starts_with(&self.env.home) && p != self.env.home;
            let bound = self.bind_at(&p).is_some();
            if under_home && bound && self.fs.is_dir(&p) && self.push_tmpfs_over(&p, id) {
                self.note(
                    id,
                    Verdict::Translated,
                    format!("an empty tmpfs over {}", p.display()),
                );
            } else if !under_home {
                self.note(
                    id,
                    Verdict::Translated,
                    "no effect: firejail allows it only in your home directory",
                );
            } else {
                self.note(
                    id,
                    Verdict::Translated,
                    format!("{} is not visible in hutch", p.display()),
                );
            }
        }
    }

    fn push_tmpfs_over(&mut self, p: &Path, id: usize) -> bool {
        let c = self.cite(id);
        self.push(Mount::new(MountKind::Tmpfs, p.to_path_buf(), c))
    }

    /// The bind that shows the location `loc` (the last mount at or above
    /// it), if that is a bind; with the host path shown there.
    fn bind_at(&self, loc: &Path) -> Option<(usize, PathBuf)> {
        let (i, m) = self
            .mounts
            .iter()
            .enumerate()
            .rev()
            .find(|(_, m)| loc.starts_with(&m.dst))?;
        let src = match m.kind {
            MountKind::RoBind | MountKind::Bind | MountKind::DevBind => m.src.clone()?,
            MountKind::Proc => PathBuf::from("/proc"),
            _ => return None,
        };
        let rel = loc.strip_prefix(&m.dst).ok()?;
        Some((
            i,
            if rel.as_os_str().is_empty() {
                src
            } else {
                src.join(rel)
            },
        ))
    }

    /// `read-only` and `read-write` inside what is bound: the binds get the
    /// state firejail leaves on them, and paths inside a bind whose state
    /// differs are bound again over themselves.
    fn access(&mut self) {
        for a in self.view.access.clone() {
            let (id, path) = (a.directive, a.path.clone());
            let final_ro = self.view.readonly(&path).map(|(ro, _)| ro);
            if !a.readonly && !path.starts_with(&self.env.home) {
                self.note(
                    id,
                    Verdict::Translated,
                    "no effect: firejail makes only paths in your home directory writable",
                );
                continue;
            }
            let Some((i, shown)) = self.bind_at(&path) else {
                let v = if a.readonly {
                    Verdict::Translated
                } else {
                    Verdict::Stricter
                };
                self.note(id, v, format!("{} is not visible in hutch", path.display()));
                continue;
            };
            let bound_ro = self.mounts[i].kind == MountKind::RoBind;
            let want_ro = final_ro.unwrap_or(bound_ro);
            if want_ro == bound_ro {
                self.note(
                    id,
                    Verdict::Translated,
                    format!(
                        "{} is {} in hutch",
                        path.display(),
                        if bound_ro { "read-only" } else { "writable" }
                    ),
                );
                continue;
            }
            if self.mounts[i].dst == path && shown == path {
                self.mounts[i].kind = if want_ro {
                    MountKind::RoBind
                } else {
                    MountKind::Bind
                };
            } else if !self.hides_below(&path) && self.view.visible(&path) && shown == path {
                let c = self.cite(id);
                self.push(Mount::bind(want_ro, path.clone(), c).optional());
            } else {
                self.note(
                    id,
                    Verdict::Stricter,
                    format!("{}: left as it is bound", path.display()),
                );
                continue;
            }
            self.note(
                id,
                Verdict::Translated,
                format!(
                    "{} is {} in hutch",
                    path.display(),
                    if want_ro { "read-only" } else { "writable" }
                ),
            );
        }
    }

    /// Hides what firejail hides inside the read-only system binds.
    fn covers(&mut self) {
        let mut hidden: Vec<(PathBuf, Option<usize>)> = self
            .view
            .hidden
            .iter()
            .map(|(p, id)| (p.clone(), Some(*id)))
            .chain(self.view.always_hidden.iter().map(|p| (p.clone(), None)))
            .collect();
        for (p, id) in &self.replaced {
            if let Some(real) = self.fs.realpath(Path::new(p)) {
                hidden.push((real, Some(*id)));
            }
        }
        hidden.sort();
        hidden.dedup_by(|a, b| a.0 == b.0);
        let mut index = Index::new(&self.mounts);
        let mut covered: HashSet<PathBuf> = HashSet::new();
        for (h, id) in hidden {
            if h.ancestors().any(|a| covered.contains(a)) || is_process_entry(&h) {
                continue;
            }
            if PROC_HUTCH_HIDES.iter().any(|p| h.starts_with(p)) {
                continue;
            }
            for loc in index.exposed_at(&self.mounts, &h) {
                let comment = match id {
                    Some(id) => self.cite(id),
                    None => "firejail always hides these".to_string(),
                };
                let m = if self.fs.is_dir(&h) {
                    let mode = COVER_MODES
                        .iter()
                        .find(|(p, _)| Path::new(p) == loc)
                        .map_or("0755", |(_, m)| m);
                    Mount::new(MountKind::Tmpfs, loc.clone(), comment).mode(mode)
                } else {
                    let mut m = Mount::bind(true, "/dev/null".into(), comment);
                    m.dst = loc.clone();
                    m
                };
                match index.by_dst.get(&loc).copied() {
                    Some(pos) if self.mounts[pos].kind == MountKind::Tmpfs => continue,
                    Some(pos) => {
                        self.mounts[pos] = m;
                        index = Index::new(&self.mounts);
                    }
                    None => {
                        // A cover shows no host path: only its destination
                        // is new to the index.
                        index.by_dst.insert(loc.clone(), self.mounts.len());
                        self.push(m);
                    }
                }
                // machine-id's and hostname's verdicts are their handlers'.
                if let Some(id) = id.filter(|id| !self.replaced.iter().any(|(_, r)| r == id)) {
                    self.note(
                        id,
                        Verdict::Translated,
                        format!("{} is covered", loc.display()),
                    );
                }
            }
            covered.insert(h);
        }
    }

    /// Verdicts for the lines that produced no mount of their own.
    fn explain_lines(&mut self) {
        let v = self.view;
        // The covers: /dev/null binds, and tmpfs over what firejail hides.
        let covers: HashSet<PathBuf> = self
            .mounts
            .iter()
            .filter(|m| {
                m.src.as_deref() == Some(Path::new("/dev/null"))
                    || (m.kind == MountKind::Tmpfs && v.hidden_at(&m.dst))
            })
            .map(|m| m.dst.clone())
            .collect();
        for (id, hits) in &v.blacklist_hits {
            if self.notes.contains_key(id) {
                continue;
            }
            // Hidden by an earlier line's cover (the same file matched).
            let covered = hits.iter().find_map(|h| match h {
                view::BlacklistHit::Hidden(real) => real
                    .ancestors()
                    .find(|a| covers.contains(*a))
                    .map(Path::to_path_buf),
                _ => None,
            });
            let why = if hits.is_empty() {
                "nothing matches on this machine".to_string()
            } else if hits
                .iter()
                .all(|h| matches!(h, view::BlacklistHit::Excepted(_)))
            {
                "every match is excepted by an earlier noblacklist".to_string()
            } else if hits
                .iter()
                .all(|h| !matches!(h, view::BlacklistHit::Hidden(_)))
            {
                "nothing matches on this machine".to_string()
            } else if let Some(dst) = covered {
                format!("{} is covered", dst.display())
            } else {
                "not visible in hutch (nothing binds it)".to_string()
            };
            self.notes
                .entry(*id)
                .or_default()
                .push((Verdict::Translated, why));
        }
        for (id, skips) in &v.whitelist_skips {
            for s in skips {
                let why = match s {
                    WhitelistSkip::Missing(p) => format!("{}: nothing there now", p.display()),
                    WhitelistSkip::OutsideTop(p) => format!(
                        "resolves to {}, outside its top directory: firejail skips it too",
                        p.display()
                    ),
                    WhitelistSkip::Nowhitelisted(p) => {
                        format!("{}: cancelled by nowhitelist", p.display())
                    }
                    WhitelistSkip::TopUnavailable(t) => format!(
                        "{} cannot be whitelisted here (missing, a symlink, or a private home): firejail skips it too",
                        t.display()
                    ),
                    WhitelistSkip::Invalid(s) => format!("firejail refuses this path ({s})"),
                    WhitelistSkip::UnresolvedMacro(m) => format!(
                        "{m} does not resolve to a directory here: firejail empties the home directory, and so does hutch"
                    ),
                };
                let verdict = if matches!(s, WhitelistSkip::Invalid(_)) {
                    Verdict::NotTranslatable
                } else {
                    Verdict::Translated
                };
                self.notes.entry(*id).or_default().push((verdict, why));
            }
        }
        for (id, d) in self.profile.directives.iter().enumerate() {
            if self.notes.contains_key(&id) {
                continue;
            }
            let (k, arg) = d.split();
            let o = self.fixed_outcome(k, arg);
            if let Some((verdict, why)) = o {
                self.notes.entry(id).or_default().push((verdict, why));
            }
        }
    }

    /// Verdicts of filesystem directives decided by what they are.
    fn fixed_outcome(&self, k: &str, arg: &str) -> Option<(Verdict, String)> {
        let t = Verdict::Translated;
        Some(match k {
            "noblacklist" => (t, "an exception to the blacklists: what it names stays visible where hutch binds it".into()),
            "nowhitelist" => (t, "cancels later whitelists of the same path".into()),
            "whitelist" => (t, "nothing to bind".into()),
            "mkdir" | "mkfile" => {
                let p = macros::expand(arg, self.env).ok().map(|e| paths::clean(&e));
                match p {
                    Some(p) if self.fs.exists(&p) => (t, format!("{} exists and is bound", p.display())),
                    Some(p) if self.bind_at(&p).is_none() && !self.has_dst(&p) => {
                        (t, format!("{} is not visible in hutch", p.display()))
                    }
                    Some(p) => (Verdict::Stricter, format!("hutch does not create {} on your disk; it is bound once it exists (create it yourself once)", p.display())),
                    None => (t, "no effect".into()),
                }
            }
            "noexec" => {
                let p = macros::expand(arg, self.env).ok().map(|e| paths::clean(&e))?;
                let shown = p.ancestors().any(|a| self.dsts.contains(a))
                    || self.dsts.iter().any(|d| d.starts_with(&p));
                if shown {
                    (Verdict::NotTranslatable, format!("hutch cannot forbid running programs from {}: it has no noexec mounts, and its Landlock rules allow executing what they allow writing", p.display()))
                } else {
                    (Verdict::Stricter, format!("{} is not visible in hutch at all", p.display()))
                }
            }
            "private" if arg.is_empty() => (t, "an empty home directory".into()),
            "private" => (Verdict::Stricter, format!("an empty home directory (not {arg}): hutch does not replace the home directory with another")),
            "private-tmp" => (t, "an empty /tmp".into()),
            "private-cache" => (t, "~/.cache is not bound: hutch's home directory is private but for what the profile names".into()),
            "disable-mnt" => (t, "hutch binds none of /mnt, /media, /run/mount, /run/media".into()),
            "private-etc" | "private-opt" | "private-srv" | "private-home" => (t, "no effect: switched off in firejail.config".into()),
            "private-bin" => (t, "no effect: switched off in firejail.config".into()),
            _ => return None,
        })
    }

    fn outcomes(&self) -> BTreeMap<usize, Outcome> {
        self.notes
            .iter()
            .filter(|(id, _)| **id != usize::MAX)
            .map(|(id, notes)| {
                let verdict = notes
                    .iter()
                    .map(|(v, _)| *v)
                    .max()
                    .unwrap_or(Verdict::Translated);
                let mut whys: Vec<&str> = notes
                    .iter()
                    .filter(|(v, _)| *v == verdict)
                    .map(|(_, w)| w.as_str())
                    .collect();
                let more = whys.len().saturating_sub(3);
                whys.truncate(3);
                let mut why = whys.join("; ");
                if more > 0 {
                    why.push_str(&format!("; and {more} more"));
                }
                (*id, Outcome::new(verdict, why))
            })
            .collect()
    }
}

/// `/proc/1234/...`, `/proc/self/...`: entries of one process, meaningless
/// in another pid namespace.
fn is_process_entry(path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix("/proc") else {
        return false;
    };
    rel.components().next().is_some_and(|c| {
        let s = c.as_os_str().to_string_lossy();
        s == "self" || s == "thread-self" || s.chars().all(|ch| ch.is_ascii_digit())
    })
}

/// The mounts by destination and by bind source, to find quickly what a
/// location shows and where a host path shows.
pub struct Index {
    /// Destination → the last mount there.
    by_dst: HashMap<PathBuf, usize>,
    /// Bind source (or /proc) → the mounts showing it.
    by_src: HashMap<PathBuf, Vec<usize>>,
}

/// The host path a bind (or the /proc mount) shows at its destination.
fn source_of(m: &Mount) -> Option<PathBuf> {
    match m.kind {
        MountKind::RoBind | MountKind::Bind | MountKind::DevBind => m.src.clone(),
        MountKind::Proc => Some(PathBuf::from("/proc")),
        _ => None,
    }
}

impl Index {
    pub fn new(mounts: &[Mount]) -> Index {
        let mut by_dst = HashMap::new();
        let mut by_src: HashMap<PathBuf, Vec<usize>> = HashMap::new();
        for (i, m) in mounts.iter().enumerate() {
            by_dst.insert(m.dst.clone(), i);
            if let Some(src) = source_of(m) {
                by_src.entry(src).or_default().push(i);
            }
        }
        Index { by_dst, by_src }
    }

    /// The host path shown at `loc` (by the last mount at or above it, if
    /// that is a bind).
    pub fn shown_at(&self, mounts: &[Mount], loc: &Path) -> Option<PathBuf> {
        let i = loc.ancestors().filter_map(|a| self.by_dst.get(a)).max()?;
        let m = &mounts[*i];
        let src = source_of(m)?;
        let rel = loc.strip_prefix(&m.dst).ok()?;
        Some(if rel.as_os_str().is_empty() {
            src
        } else {
            src.join(rel)
        })
    }

    /// The locations where the host path `h` is shown.
    pub fn exposed_at(&self, mounts: &[Mount], h: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for a in h.ancestors() {
            for i in self.by_src.get(a).into_iter().flatten() {
                let m = &mounts[*i];
                let rel = h.strip_prefix(a).unwrap_or(Path::new(""));
                let loc = if rel.as_os_str().is_empty() {
                    m.dst.clone()
                } else {
                    m.dst.join(rel)
                };
                if self.shown_at(mounts, &loc).as_deref() == Some(h) && !out.contains(&loc) {
                    out.push(loc);
                }
            }
        }
        out
    }
}
