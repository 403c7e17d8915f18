//! The world a firejail profile is read in: the user's home, uid and
//! `PATH`, the XDG user directories as firejail resolves its macros, the
//! directories profiles are searched in, and the switches of
//! `firejail.config` (with the defaults firejail 0.9.72 has when a key is
//! absent, which are what Debian ships: every key is commented out but
//! `restricted-network yes`).

use std::path::{Path, PathBuf};

/// Where firejail keeps its profiles and `firejail.config`.
pub const SYSCONFDIR: &str = "/etc/firejail";

/// The switches of `firejail.config` that change what a profile means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub private_bin: bool,
    pub private_bin_no_local: bool,
    pub private_cache: bool,
    pub private_etc: bool,
    pub private_home: bool,
    pub private_lib: bool,
    pub private_opt: bool,
    pub private_srv: bool,
    pub seccomp: bool,
    pub userns: bool,
    pub tracelog: bool,
    pub network: bool,
    pub restricted_network: bool,
    pub x11: bool,
    pub bind: bool,
    pub join: bool,
    pub disable_mnt: bool,
    pub browser_allow_drm: bool,
    pub browser_disable_u2f: bool,
    pub allow_tray: bool,
    pub force_nonewprivs: bool,
    /// `whitelist-disable-topdir`: top-level directories whitelisting may
    /// not replace.
    pub whitelist_disabled_topdirs: Vec<PathBuf>,
}

impl Default for Config {
    /// firejail's built-in defaults (`checkcfg.c`): most switches on.
    fn default() -> Config {
        Config {
            private_bin: true,
            private_bin_no_local: false,
            private_cache: true,
            private_etc: true,
            private_home: true,
            private_lib: false,
            private_opt: true,
            private_srv: true,
            seccomp: true,
            userns: true,
            tracelog: false,
            network: true,
            restricted_network: false,
            x11: true,
            bind: true,
            join: true,
            disable_mnt: false,
            browser_allow_drm: false,
            browser_disable_u2f: true,
            allow_tray: false,
            force_nonewprivs: false,
            whitelist_disabled_topdirs: Vec::new(),
        }
    }
}

impl Config {
    /// Reads `firejail.config` text over the defaults. Unknown keys are
    /// left alone (they do not change a profile's meaning).
    pub fn parse(text: &str) -> Config {
        let mut c = Config::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(char::is_whitespace) else {
                continue;
            };
            let value = value.trim();
            if key == "whitelist-disable-topdir" {
                c.whitelist_disabled_topdirs = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect();
                continue;
            }
            let yes = match value {
                "yes" => true,
                "no" => false,
                _ => continue,
            };
            let slot = match key {
                "private-bin" => &mut c.private_bin,
                "private-bin-no-local" => &mut c.private_bin_no_local,
                "private-cache" => &mut c.private_cache,
                "private-etc" => &mut c.private_etc,
                "private-home" => &mut c.private_home,
                "private-lib" => &mut c.private_lib,
                "private-opt" => &mut c.private_opt,
                "private-srv" => &mut c.private_srv,
                "seccomp" => &mut c.seccomp,
                "userns" => &mut c.userns,
                "tracelog" => &mut c.tracelog,
                "network" => &mut c.network,
                "restricted-network" => &mut c.restricted_network,
                "x11" => &mut c.x11,
                "bind" => &mut c.bind,
                "join" => &mut c.join,
                "disable-mnt" => &mut c.disable_mnt,
                "browser-allow-drm" => &mut c.browser_allow_drm,
                "browser-disable-u2f" => &mut c.browser_disable_u2f,
                "allow-tray" => &mut c.allow_tray,
                "force-nonewprivs" => &mut c.force_nonewprivs,
                _ => continue,
            };
            *slot = yes;
        }
        c
    }

    /// Whether network features work for `uid` (`restricted-network`
    /// keeps them for root).
    pub fn network_for(&self, uid: u32) -> bool {
        self.network && !(self.restricted_network && uid != 0)
    }
}

/// The user and machine a profile is imported for.
#[derive(Debug, Clone)]
pub struct Env {
    pub home: PathBuf,
    pub uid: u32,
    /// `${PATH}`: the directories of the user's `PATH`, as firejail splits
    /// it (absolute entries, trailing slashes removed, duplicates dropped).
    pub path_dirs: Vec<PathBuf>,
    /// Searched for profiles and includes, first match wins:
    /// `~/.config/firejail`, then `/etc/firejail`.
    pub search_dirs: Vec<PathBuf>,
    pub sysconfdir: PathBuf,
    pub config: Config,
}

/// The `PATH` firejail uses when the variable is unset.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

impl Env {
    /// The calling user, with `/etc/firejail` and its `firejail.config`.
    pub fn current(host: &crate::host::Host) -> Result<Env, String> {
        let home = host
            .home()
            .ok_or("cannot tell your home directory (HOME is unset and /etc/passwd has no entry)")?
            .to_path_buf();
        let path = host.env("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
        Ok(Env::new(home, host.uid, &path, Path::new(SYSCONFDIR)))
    }

    /// A user with this home, uid and `PATH`, reading profiles from
    /// `~/.config/firejail` and `sysconfdir`.
    pub fn new(home: PathBuf, uid: u32, path: &str, sysconfdir: &Path) -> Env {
        let config = std::fs::read_to_string(sysconfdir.join("firejail.config"))
            .map(|t| Config::parse(&t))
            .unwrap_or_default();
        Env {
            search_dirs: vec![home.join(".config/firejail"), sysconfdir.to_path_buf()],
            home,
            uid,
            path_dirs: split_path(path),
            sysconfdir: sysconfdir.to_path_buf(),
            config,
        }
    }

    /// `/run/user/UID`, firejail's `${RUNUSER}`.
    pub fn runuser(&self) -> PathBuf {
        PathBuf::from(format!("/run/user/{}", self.uid))
    }

    /// Whether network features of firejail apply for this user.
    pub fn network(&self) -> bool {
        self.config.network_for(self.uid)
    }
}

fn split_path(path: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for entry in path.split(':') {
        if !entry.starts_with('/') {
            continue;
        }
        let trimmed = entry.trim_end_matches('/');
        if trimmed.is_empty() {
            continue;
        }
        let p = PathBuf::from(trimmed);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_debian() {
        let c = Config::parse("# comment\nrestricted-network yes\nbrowser-allow-drm yes\n");
        assert!(c.restricted_network && c.browser_allow_drm);
        assert!(c.browser_disable_u2f && !c.allow_tray && !c.private_lib && !c.tracelog);
        assert!(!c.network_for(1000) && c.network_for(0));
        let c = Config::parse("whitelist-disable-topdir /etc,/usr/etc\nprivate-lib yes\n");
        assert!(c.private_lib);
        assert_eq!(
            c.whitelist_disabled_topdirs,
            [PathBuf::from("/etc"), PathBuf::from("/usr/etc")]
        );
    }

    #[test]
    fn path_is_split_as_firejail_does() {
        assert_eq!(
            split_path("/usr/bin:relative:/bin/:/usr/bin::/"),
            [PathBuf::from("/usr/bin"), PathBuf::from("/bin")]
        );
    }
}
