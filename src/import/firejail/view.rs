//! What a firejail profile lets the program see, computed the way
//! firejail 0.9.72 builds its sandbox (`sandbox.c`: the private-*
//! directories, then `fs_whitelist`, then `fs_blacklist` in profile order),
//! on this machine's filesystem at import time:
//!
//! - `blacklist` (and `blacklist-nolog`) hides each path its glob matches,
//!   resolved with `realpath`, unless a `noblacklist` pattern read *before*
//!   it matches the unresolved path (`fnmatch` with `FNM_PATHNAME`);
//! - `whitelist` turns the top-level directory of each path (the home
//!   directory, `/run/user/UID`, `/usr/NAME`, or `/NAME`) into an empty
//!   tmpfs holding only the whitelisted paths (resolved with `realpath`,
//!   skipped when they resolve outside that top directory); `nowhitelist`
//!   read before a `whitelist` of the same resolved path cancels it;
//! - `private-etc`, `private-bin`, `private-opt`, `private-srv`,
//!   `private-tmp`, `private-cache`, `private`, `private-home`,
//!   `private-dev` and `disable-mnt` replace whole trees;
//! - firejail always hides a fixed list of paths (`/boot`, most of
//!   `/proc/sys`'s dangerous entries, `~/.config/firejail`, ...).
//!
//! [`View::visible`] is the oracle: the translator binds nothing it says
//! firejail hides, and the corpus test checks the plans of the imported
//! profiles against it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::env::Env;
use super::macros;
use super::paths::{self, Fs};
use super::source::Profile;

/// The directories `private-bin` replaces, in firejail's search order.
pub const BIN_DIRS: &[&str] = &[
    "/usr/local/bin",
    "/usr/bin",
    "/bin",
    "/usr/games",
    "/usr/local/games",
    "/usr/local/sbin",
    "/usr/sbin",
    "/sbin",
];

/// Paths firejail hides in every sandbox of an ordinary user
/// (`fs_proc_sys_dev_boot`, `disable_config`, `fs_var_*`).
const ALWAYS_HIDDEN: &[&str] = &[
    "/sys/firmware",
    "/sys/hypervisor",
    "/sys/power",
    "/sys/kernel/debug",
    "/sys/kernel/vmcoreinfo",
    "/sys/kernel/uevent_helper",
    "/proc/sys/security",
    "/proc/sys/efi/vars",
    "/proc/sys/fs/binfmt_misc",
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/modprobe",
    "/proc/sysrq-trigger",
    "/proc/sys/kernel/hotplug",
    "/proc/sys/vm/panic_on_oom",
    "/proc/irq",
    "/proc/bus",
    "/proc/sched_debug",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/kcore",
    "/proc/kallsyms",
    "/proc/mem",
    "/proc/kmem",
    "/proc/kmsg",
    "/usr/src/linux",
    "/lib/modules",
    "/usr/lib/debug",
    "/boot",
    "/selinux",
    "/dev/port",
    "/dev/kmsg",
    "/run/firejail",
    // fs_var_log, fs_var_lib, fs_var_cache, fs_var_tmp: empty tmpfs.
    "/var/log",
    "/var/lib/dhcp",
    "/var/lib/nginx",
    "/var/lib/snmp",
    "/var/lib/sudo",
    "/var/cache/apache2",
    "/var/cache/lighttpd",
    "/var/tmp",
];

/// Device nodes kept by `private-dev`, and the class that removes each
/// (`fs_dev.c`).
pub const DEVICE_CLASSES: &[(&str, &str)] = &[
    ("/dev/snd", "nosound"),
    ("/dev/dri", "no3d"),
    ("/dev/nvidia*", "no3d"),
    ("/dev/video*", "novideo"),
    ("/dev/dvb", "notv"),
    ("/dev/sr0", "nodvd"),
    ("/dev/hidraw*", "nou2f"),
    ("/dev/usb", "nou2f"),
    ("/dev/input", "noinput"),
];

/// What `private-dev` keeps besides the device classes.
const PRIVATE_DEV_KEEPS: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/pts",
    "/dev/ptmx",
    "/dev/shm",
    "/dev/log",
    "/dev/fd",
    "/dev/stdin",
    "/dev/stdout",
    "/dev/stderr",
];

/// One `whitelist` in force.
#[derive(Debug, Clone)]
pub struct WhitelistItem {
    pub directive: usize,
    pub top: PathBuf,
    /// The resolved path that is bound.
    pub file: PathBuf,
    /// The path as written, when it is a symlink (firejail recreates it).
    pub link: Option<PathBuf>,
}

/// Why a `whitelist` line whitelists nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhitelistSkip {
    /// Nothing matches on this machine (firejail skips it too).
    Missing(PathBuf),
    /// It resolves outside its top-level directory.
    OutsideTop(PathBuf),
    /// A `nowhitelist` read before it names the same path.
    Nowhitelisted(PathBuf),
    /// Its top-level directory is missing, a symlink, or disabled in
    /// firejail.config; or the home directory is private.
    TopUnavailable(PathBuf),
    /// firejail refuses it (`/`, `/proc`, `/sys`, a top-level directory
    /// itself, `..`, a relative path).
    Invalid(String),
    /// An XDG macro that does not resolve: firejail empties the home
    /// directory and whitelists nothing.
    UnresolvedMacro(String),
}

/// A `read-only` or `read-write` in force, on one expanded path.
#[derive(Debug, Clone)]
pub struct Access {
    pub directive: usize,
    pub path: PathBuf,
    pub readonly: bool,
}

/// The `private-*` settings in force.
#[derive(Debug, Clone, Default)]
pub struct Privates {
    /// `private-etc`: the names kept (concatenated over all lines).
    pub etc: Option<(Vec<String>, Vec<usize>)>,
    pub bin: Option<(Vec<String>, Vec<usize>)>,
    pub opt: Option<(Vec<String>, Vec<usize>)>,
    pub srv: Option<(Vec<String>, Vec<usize>)>,
    /// `private-home`: names in the home directory kept (as copies).
    pub home_list: Option<(Vec<String>, Vec<usize>)>,
    /// `private` (or `private DIR`): an empty home directory.
    pub home: Option<usize>,
    pub tmp: Option<usize>,
    pub cache: Option<usize>,
    pub dev: Option<usize>,
    pub disable_mnt: Option<usize>,
    /// `nosound`, `no3d`, ... in force.
    pub device_classes_off: BTreeSet<String>,
}

/// A `blacklist` path, with what firejail does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlacklistHit {
    /// Hidden (the resolved path).
    Hidden(PathBuf),
    /// A `noblacklist` read before it matches.
    Excepted(String),
    /// Nothing there on this machine.
    Missing(String),
    /// `/bin` or `/usr/bin` reached through a symlink: firejail leaves it.
    BinLink(String),
}

#[derive(Debug, Default)]
pub struct View {
    /// Resolved paths hidden by `blacklist` lines, and the first line that
    /// hid each.
    pub hidden: BTreeMap<PathBuf, usize>,
    /// What each `blacklist` directive matched.
    pub blacklist_hits: BTreeMap<usize, Vec<BlacklistHit>>,
    /// Paths firejail always hides that exist here.
    pub always_hidden: BTreeSet<PathBuf>,
    /// Whitelist top-level directories, and the first line that made each.
    pub tops: BTreeMap<PathBuf, usize>,
    pub whitelist: Vec<WhitelistItem>,
    /// Whitelisted paths (no wildcard) missing now, which firejail would
    /// whitelist once they exist.
    pub whitelist_missing: Vec<PathBuf>,
    pub whitelist_skips: BTreeMap<usize, Vec<WhitelistSkip>>,
    pub access: Vec<Access>,
    pub privates: Privates,
    /// The names `private-bin` makes visible in every bin directory.
    pub bin_names: BTreeSet<String>,
    pub home: PathBuf,
    pub runuser: PathBuf,
}

fn split_list(arg: &str) -> Vec<String> {
    arg.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn append(slot: &mut Option<(Vec<String>, Vec<usize>)>, arg: &str, id: usize) {
    let (items, ids) = slot.get_or_insert_with(Default::default);
    items.extend(split_list(arg));
    ids.push(id);
}

impl View {
    pub fn compute(profile: &Profile, env: &Env, fs: &Fs) -> View {
        let mut v = View {
            home: env.home.clone(),
            runuser: env.runuser(),
            ..View::default()
        };
        v.read_privates(profile, env);
        v.whitelist(profile, env, fs);
        v.blacklist(profile, env, fs);
        v.always_hidden = ALWAYS_HIDDEN
            .iter()
            .map(PathBuf::from)
            .chain([
                env.home.join(".config/firejail"),
                env.runuser().join("gnupg"),
                env.runuser().join("systemd"),
            ])
            .filter_map(|p| fs.realpath(&p))
            .collect();
        if v.privates.bin.is_some() {
            v.bin_names = private_bin_names(&v, env, fs);
        }
        v
    }

    fn read_privates(&mut self, profile: &Profile, env: &Env) {
        let c = &env.config;
        for (id, d) in profile.directives.iter().enumerate() {
            let (k, arg) = d.split();
            let p = &mut self.privates;
            match (k, arg) {
                ("private-etc", a) if !a.is_empty() && c.private_etc => append(&mut p.etc, a, id),
                ("private-bin", a) if !a.is_empty() && c.private_bin => append(&mut p.bin, a, id),
                ("private-opt", a) if !a.is_empty() && c.private_opt => append(&mut p.opt, a, id),
                ("private-srv", a) if !a.is_empty() && c.private_srv => append(&mut p.srv, a, id),
                ("private-home", a) if !a.is_empty() && c.private_home => {
                    append(&mut p.home_list, a, id);
                    p.home.get_or_insert(id);
                }
                ("private", _) => {
                    p.home.get_or_insert(id);
                }
                ("private-tmp", "") => {
                    p.tmp.get_or_insert(id);
                }
                ("private-cache", "") if c.private_cache => {
                    p.cache.get_or_insert(id);
                }
                ("private-dev", "") => {
                    p.dev.get_or_insert(id);
                }
                ("disable-mnt", "") => {
                    p.disable_mnt.get_or_insert(id);
                }
                ("nosound" | "no3d" | "novideo" | "notv" | "nodvd" | "nou2f" | "noinput", "") => {
                    p.device_classes_off.insert(k.to_string());
                }
                _ => {}
            }
        }
        if c.disable_mnt && self.privates.disable_mnt.is_none() {
            self.privates.disable_mnt = Some(usize::MAX);
        }
    }

    /// The top-level directory a whitelisted path belongs to
    /// (`extract_topdir`).
    pub fn topdir(&self, path: &Path) -> Option<PathBuf> {
        if path != self.home && path.starts_with(&self.home) {
            return Some(self.home.clone());
        }
        if path != self.runuser && path.starts_with(&self.runuser) {
            return Some(self.runuser.clone());
        }
        let mut parts = path.components().skip(1);
        let first = parts.next()?;
        if first.as_os_str() == "sys" {
            let second = parts.next()?;
            if second.as_os_str() == "module" {
                parts.next()?;
                return Some(PathBuf::from("/sys/module"));
            }
            return Some(PathBuf::from("/sys"));
        }
        if first.as_os_str() == "usr" {
            let second = parts.next()?;
            parts.next()?;
            return Some(Path::new("/usr").join(second));
        }
        parts.next()?;
        Some(Path::new("/").join(first))
    }

    fn whitelist(&mut self, profile: &Profile, env: &Env, fs: &Fs) {
        let mut nowhitelist: Vec<PathBuf> = Vec::new();
        // Whitelists added by globbing go at the end of the list, as in
        // firejail; each keeps the directive it came from.
        let mut queue: Vec<(usize, String, bool)> = Vec::new();
        for (id, d) in profile.directives.iter().enumerate() {
            match d.split() {
                ("whitelist", a) => queue.push((id, a.to_string(), false)),
                ("nowhitelist", a) => queue.push((id, a.to_string(), true)),
                _ => {}
            }
        }
        let mut i = 0;
        while i < queue.len() {
            let (id, arg, no) = queue[i].clone();
            i += 1;
            let skip = |v: &mut View, s: WhitelistSkip| {
                v.whitelist_skips.entry(id).or_default().push(s);
            };
            let Ok(expanded) = macros::expand(&arg, env) else {
                skip(self, WhitelistSkip::Invalid(arg));
                continue;
            };
            if macros::is_xdg_macro(&expanded) {
                if !no && self.privates.home.is_none() {
                    self.tops.entry(self.home.clone()).or_insert(id);
                }
                skip(self, WhitelistSkip::UnresolvedMacro(expanded));
                continue;
            }
            if !expanded.starts_with('/') || expanded.contains("..") {
                skip(self, WhitelistSkip::Invalid(expanded));
                continue;
            }
            let name = paths::clean(&expanded);
            let mut top = None;
            if !no {
                let Some(t) = self.topdir(&name) else {
                    skip(self, WhitelistSkip::Invalid(expanded));
                    continue;
                };
                if t == Path::new("/proc") || t == Path::new("/sys") {
                    skip(self, WhitelistSkip::Invalid(expanded));
                    continue;
                }
                if !self.tops.contains_key(&t) {
                    let usable = (t != self.home || self.privates.home.is_none())
                        && std::fs::symlink_metadata(&t).is_ok_and(|m| m.is_dir())
                        && !env.config.whitelist_disabled_topdirs.contains(&t);
                    if !usable {
                        skip(self, WhitelistSkip::TopUnavailable(t));
                        continue;
                    }
                    self.tops.insert(t.clone(), id);
                }
                top = Some(t);
            }
            let Some(file) = fs.realpath(&name) else {
                if !no && paths::has_wildcard(&expanded) {
                    let matches = fs.glob(&name.to_string_lossy());
                    let before = queue.len();
                    for m in matches {
                        if m != name.to_string_lossy() {
                            queue.push((id, m, false));
                        }
                    }
                    if queue.len() > before {
                        continue;
                    }
                }
                if !no && !paths::has_wildcard(&expanded) && !fs.exists(&name) {
                    self.whitelist_missing.push(name.clone());
                }
                skip(self, WhitelistSkip::Missing(name));
                continue;
            };
            if no {
                nowhitelist.push(file);
                continue;
            }
            if nowhitelist.contains(&file) {
                skip(self, WhitelistSkip::Nowhitelisted(file));
                continue;
            }
            let top = top.expect("set for whitelist");
            if file == top || !file.starts_with(&top) {
                skip(self, WhitelistSkip::OutsideTop(file));
                continue;
            }
            let link = fs.is_symlink(&name).then_some(name);
            self.whitelist.push(WhitelistItem {
                directive: id,
                top,
                file,
                link,
            });
        }
    }

    fn blacklist(&mut self, profile: &Profile, env: &Env, fs: &Fs) {
        let mut noblacklist = paths::PatternSet::default();
        for (id, d) in profile.directives.iter().enumerate() {
            let (k, arg) = d.split();
            match k {
                "noblacklist" => {
                    for p in macros::expand_with_path(arg, env).unwrap_or_default() {
                        noblacklist.insert(p);
                    }
                }
                "blacklist" | "blacklist-nolog" => {
                    let mut hits = Vec::new();
                    for pattern in macros::expand_with_path(arg, env).unwrap_or_default() {
                        for path in fs.glob(&pattern) {
                            let base = path.rsplit('/').next().unwrap_or("");
                            if base == "." || base == ".." {
                                continue;
                            }
                            if let Some(n) = noblacklist.find(&path) {
                                hits.push(BlacklistHit::Excepted(n.to_string()));
                                continue;
                            }
                            let Some(real) = fs.realpath(Path::new(&path)) else {
                                hits.push(BlacklistHit::Missing(path));
                                continue;
                            };
                            if (real == Path::new("/bin") || real == Path::new("/usr/bin"))
                                && fs.is_symlink(Path::new(&path))
                            {
                                hits.push(BlacklistHit::BinLink(path));
                                continue;
                            }
                            self.hidden.entry(real.clone()).or_insert(id);
                            hits.push(BlacklistHit::Hidden(real));
                        }
                    }
                    self.blacklist_hits.insert(id, hits);
                }
                "read-only" | "read-write" => {
                    let Ok(e) = macros::expand(arg, env) else {
                        continue;
                    };
                    for path in fs.glob(&e) {
                        self.access.push(Access {
                            directive: id,
                            path: paths::clean(&path),
                            readonly: k == "read-only",
                        });
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether firejail hides `path` itself or a directory above it.
    pub fn hidden_at(&self, path: &Path) -> bool {
        path.ancestors()
            .any(|a| self.hidden.contains_key(a) || self.always_hidden.contains(a))
    }

    /// Whether firejail hides something strictly below `path`.
    pub fn hides_below(&self, path: &Path) -> bool {
        let below = |set: &mut dyn Iterator<Item = &PathBuf>| {
            set.take_while(|h| h.starts_with(path))
                .any(|h| h.as_path() != path)
        };
        below(&mut self.hidden.range(path.to_path_buf()..).map(|(k, _)| k))
            || below(&mut self.always_hidden.range(path.to_path_buf()..))
    }

    /// Whether firejail lets the program see the location `path` (absolute,
    /// with symlinks resolved) and everything below it.
    pub fn visible(&self, path: &Path) -> bool {
        if self.hidden_at(path) {
            return false;
        }
        if !self.private_keeps(path) {
            return false;
        }
        if let Some(top) = self.topdir(path)
            && self.tops.contains_key(&top)
        {
            let whitelisted = self.whitelist.iter().any(|w| path.starts_with(&w.file))
                || self.whitelist_missing.iter().any(|m| path.starts_with(m));
            // Whitelisting something in /run restores /run/user/UID whole.
            let runuser_restored = top == Path::new("/run")
                && path.starts_with(&self.runuser)
                && !self.tops.contains_key(&self.runuser);
            if !whitelisted && !runuser_restored {
                return false;
            }
        }
        // A path in /run/user/UID under a whitelisted /run: not a top of its
        // own unless whitelisted there.
        true
    }

    /// Whether the private-* settings keep `path`.
    fn private_keeps(&self, path: &Path) -> bool {
        let p = &self.privates;
        let kept_in = |root: &str, list: &Option<(Vec<String>, Vec<usize>)>| match list {
            Some((names, _)) if path.starts_with(root) && path != Path::new(root) => names
                .iter()
                .any(|n| path.starts_with(Path::new(root).join(n))),
            _ => true,
        };
        if !kept_in("/etc", &p.etc) || !kept_in("/opt", &p.opt) || !kept_in("/srv", &p.srv) {
            return false;
        }
        if p.bin.is_some() {
            for dir in BIN_DIRS {
                if path.starts_with(dir) && path != Path::new(dir) {
                    let rel = path.strip_prefix(dir).expect("checked");
                    let first = rel
                        .components()
                        .next()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned());
                    if !first.is_some_and(|f| self.bin_names.contains(&f)) {
                        return false;
                    }
                }
            }
        }
        if p.home.is_some() && path.starts_with(&self.home) && path != self.home {
            let kept = p.home_list.as_ref().is_some_and(|(names, _)| {
                names.iter().any(|n| path.starts_with(self.home.join(n)))
            });
            if !kept {
                return false;
            }
        }
        if p.tmp.is_some() && path.starts_with("/tmp") && path != Path::new("/tmp") {
            // private-tmp whitelists the X11 sockets and PulseAudio's
            // directories; nothing else of the host's /tmp.
            let name = path.components().nth(2);
            let keep = name.is_some_and(|n| {
                let n = n.as_os_str().to_string_lossy();
                n == ".X11-unix" || n == "sndio" || n.starts_with("pulse-")
            });
            if !keep {
                return false;
            }
        }
        if p.cache.is_some() {
            let cache = self.home.join(".cache");
            if path.starts_with(&cache) && path != cache {
                return false;
            }
        }
        if p.disable_mnt.is_some()
            && ["/mnt", "/media", "/run/mount", "/run/media"]
                .iter()
                .any(|m| path.starts_with(m))
        {
            return false;
        }
        if path.starts_with("/dev") {
            for (node, class) in DEVICE_CLASSES {
                if p.device_classes_off.contains(*class)
                    && paths::fnmatch(node, &first_components(path, 2))
                {
                    return false;
                }
            }
            if p.dev.is_some() && path != Path::new("/dev") {
                let two = first_components(path, 2);
                let kept = PRIVATE_DEV_KEEPS.iter().any(|k| *k == two)
                    || DEVICE_CLASSES.iter().any(|(n, _)| paths::fnmatch(n, &two));
                if !kept {
                    return false;
                }
            }
        }
        true
    }

    /// The `read-only`/`read-write` state firejail leaves on `path`: the
    /// last such line naming it or a directory above it (`None`: none
    /// does; the path keeps its default).
    pub fn readonly(&self, path: &Path) -> Option<(bool, usize)> {
        self.access
            .iter()
            .rev()
            .find(|a| path.starts_with(&a.path))
            .map(|a| (a.readonly, a.directive))
    }
}

/// `/a/b/c` → `/a/b` (the first `n` components).
fn first_components(path: &Path, n: usize) -> String {
    let mut out = PathBuf::from("/");
    for c in path.components().skip(1).take(n) {
        out.push(c);
    }
    out.to_string_lossy().into_owned()
}

/// Where `private-bin` finds a program (`check_dir_or_file`), in firejail's
/// order of directories; `None` if nowhere.
pub fn find_bin(name: &str, env: &Env) -> Option<PathBuf> {
    BIN_DIRS
        .iter()
        .filter(|d| !(env.config.private_bin_no_local && d.contains("local/")))
        .map(|d| Path::new(d).join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| !m.is_dir()))
}

/// Whether `path` may be copied by `private-bin` (`valid_full_path_file`).
pub fn valid_bin_path(path: &Path, env: &Env) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_dir())
        && BIN_DIRS
            .iter()
            .filter(|d| !(env.config.private_bin_no_local && d.contains("local/")))
            .any(|d| path.parent() == Some(Path::new(d)))
}

/// The programs `private-bin` copies: (the path it was found at, the
/// resolved program when that is a symlink whose target is in a bin
/// directory too).
pub fn private_bin_programs(view: &View, env: &Env, fs: &Fs) -> Vec<(PathBuf, Option<PathBuf>)> {
    let Some((names, _)) = &view.privates.bin else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = Vec::new();
    for name in names {
        if name.starts_with('~') || name.contains("..") {
            continue;
        }
        if name.starts_with('/') {
            if valid_bin_path(Path::new(name), env) {
                found.push(PathBuf::from(name));
            }
        } else if paths::has_wildcard(name) {
            for dir in BIN_DIRS {
                if env.config.private_bin_no_local && dir.contains("local/") {
                    continue;
                }
                let pattern = format!("{dir}/{name}");
                for m in fs.glob(&pattern) {
                    if m != pattern {
                        found.push(PathBuf::from(m));
                    }
                }
            }
        } else if let Some(p) = find_bin(name, env) {
            found.push(p);
        }
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for p in found {
        if !seen.insert(p.clone()) {
            continue;
        }
        let target = fs
            .is_symlink(&p)
            .then(|| fs.realpath(&p))
            .flatten()
            .filter(|t| valid_bin_path(t, env));
        out.push((p, target));
    }
    out
}

fn private_bin_names(view: &View, env: &Env, fs: &Fs) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (p, target) in private_bin_programs(view, env, fs) {
        for q in std::iter::once(&p).chain(target.as_ref()) {
            if let Some(n) = q.file_name() {
                names.insert(n.to_string_lossy().into_owned());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::firejail::source;

    struct World {
        _d: tempfile::TempDir,
        env: Env,
        home: PathBuf,
    }

    fn world(profile: &str, home_files: &[&str]) -> (World, View) {
        let d = tempfile::tempdir().unwrap();
        let etc = d.path().join("etc");
        let home = d.path().join("home");
        std::fs::create_dir_all(&etc).unwrap();
        for f in home_files {
            let p = home.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            if f.ends_with('/') {
                std::fs::create_dir_all(&p).unwrap();
            } else {
                std::fs::write(&p, "").unwrap();
            }
        }
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(etc.join("p.profile"), profile).unwrap();
        let env = Env::new(home.clone(), 1000, "/usr/bin", &etc);
        let fs = Fs::new();
        let p = source::read(&etc.join("p.profile"), &env, &fs).unwrap();
        let v = View::compute(&p, &env, &fs);
        (World { _d: d, env, home }, v)
    }

    #[test]
    fn noblacklist_only_counts_when_read_before() {
        let (w, v) = world(
            "noblacklist ${HOME}/.a\nblacklist ${HOME}/.a\nblacklist ${HOME}/.b\nnoblacklist ${HOME}/.b\n",
            &[".a", ".b"],
        );
        assert!(v.visible(&w.home.join(".a")));
        assert!(!v.visible(&w.home.join(".b")));
        assert!(v.visible(&w.home.join(".c")));
    }

    #[test]
    fn blacklist_globs_match_dotfiles_and_noblacklist_globs_except() {
        let (w, v) = world(
            "noblacklist ${HOME}/.keep*\nblacklist ${HOME}/.*\n",
            &[".secret", ".keep1", "plain"],
        );
        assert!(!v.visible(&w.home.join(".secret")));
        assert!(!v.visible(&w.home.join(".secret/inside")));
        assert!(v.visible(&w.home.join(".keep1")));
        assert!(v.visible(&w.home.join("plain")));
    }

    #[test]
    fn whitelist_makes_the_top_directory_empty_but_for_it() {
        let (w, v) = world(
            "whitelist ${HOME}/.config/app\nblacklist ${HOME}/.config/app/token\n",
            &[".config/app/token", ".config/app/ok", ".config/other"],
        );
        assert!(v.visible(&w.home.join(".config/app/ok")));
        assert!(!v.visible(&w.home.join(".config/app/token")));
        assert!(!v.visible(&w.home.join(".config/other")));
        assert!(
            !v.visible(&w.home.join(".config")),
            "only the whitelisted part"
        );
        assert_eq!(v.tops.keys().collect::<Vec<_>>(), [&w.home]);
    }

    #[test]
    fn nowhitelist_before_cancels_and_missing_is_skipped() {
        let (w, v) = world(
            "nowhitelist ${HOME}/a\nwhitelist ${HOME}/a\nwhitelist ${HOME}/b\nwhitelist ${HOME}/none\n",
            &["a/", "b/"],
        );
        assert!(!v.visible(&w.home.join("a")));
        assert!(v.visible(&w.home.join("b")));
        assert_eq!(v.whitelist.len(), 1);
        assert_eq!(v.whitelist_skips.len(), 2);
    }

    #[test]
    fn unresolved_xdg_macro_empties_home() {
        let (w, v) = world("whitelist ${DOWNLOADS}\n", &["x"]);
        assert!(!v.visible(&w.home.join("x")));
        let _ = &w.env;
    }

    #[test]
    fn private_lists_and_caches() {
        let (w, v) = world(
            "private-etc passwd,ssl\nprivate-etc hosts\nprivate-cache\nprivate-tmp\n",
            &[".cache/x"],
        );
        assert!(v.visible(Path::new("/etc/passwd")));
        assert!(v.visible(Path::new("/etc/hosts")));
        assert!(v.visible(Path::new("/etc/ssl/certs")));
        assert!(!v.visible(Path::new("/etc/shadow")));
        assert!(!v.visible(&w.home.join(".cache/x")));
        assert!(!v.visible(Path::new("/tmp/foo")));
        assert!(v.visible(Path::new("/tmp/.X11-unix")));
        assert!(v.visible(Path::new("/etc")));
    }

    #[test]
    fn read_only_and_read_write_last_wins() {
        let (w, v) = world(
            "read-only ${HOME}\nread-write ${HOME}/out\n",
            &["out/", "in/"],
        );
        assert_eq!(v.readonly(&w.home.join("in")).map(|r| r.0), Some(true));
        assert_eq!(v.readonly(&w.home.join("out/x")).map(|r| r.0), Some(false));
        assert_eq!(v.readonly(Path::new("/etc")), None);
    }

    #[test]
    fn topdirs() {
        let (w, v) = world("", &[]);
        assert_eq!(v.topdir(&w.home.join("a/b")), Some(w.home.clone()));
        assert_eq!(
            v.topdir(Path::new("/usr/share/x/y")),
            Some(PathBuf::from("/usr/share"))
        );
        assert_eq!(v.topdir(Path::new("/etc/x")), Some(PathBuf::from("/etc")));
        assert_eq!(v.topdir(Path::new("/etc")), None);
        assert_eq!(v.topdir(Path::new("/usr/share")), None);
        assert_eq!(
            v.topdir(Path::new("/run/user/1000/bus")),
            Some(PathBuf::from("/run/user/1000"))
        );
        assert_eq!(
            v.topdir(Path::new("/sys/module/x/y")),
            Some(PathBuf::from("/sys/module"))
        );
    }
}
