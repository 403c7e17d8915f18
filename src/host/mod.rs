//! Facts about the machine and the caller, probed lazily: a launch only pays
//! for what its profile actually uses.

pub mod cgroups;
pub mod command_line;

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The caller and their directories.
#[derive(Debug, Clone)]
pub struct Host {
    pub uid: u32,
    pub gid: u32,
    passwd: OnceCell<Option<PasswdEntry>>,
    home: OnceCell<Option<PathBuf>>,
    cwd: OnceCell<Option<PathBuf>>,
    user_dirs: OnceCell<BTreeMap<String, String>>,
    env_override: Option<BTreeMap<String, String>>,
    landlock: OnceCell<crate::landlock::Support>,
    landlock_errata: OnceCell<u32>,
    stdin_tty: OnceCell<bool>,
    /// Whether standard output and error are terminals.
    output_ttys: OnceCell<[bool; 2]>,
    cgroups: OnceCell<cgroups::CgroupHost>,
    state_dir: OnceCell<Option<RuntimeDir>>,
    /// The addresses of the caller's network namespace (`[network]`
    /// denies them to a sandbox by default).
    addresses: OnceCell<Vec<HostAddress>>,
    /// The launcher's pid as plans name it; `None`: this process's.
    launcher_pid: Option<u32>,
    /// Where the planner looks up host paths (bind sources); `None`: `/`.
    fs_root: Option<PathBuf>,
}

/// An address of the host, and the interface that has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddress {
    pub address: std::net::IpAddr,
    pub interface: String,
}

/// Where hutch keeps its runtime state (see [`Host::hutch_runtime_dir`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDir {
    /// The directory itself.
    pub path: PathBuf,
    /// The directory above it that is taken as the caller's configuration
    /// says (`$XDG_RUNTIME_DIR`, `/run/user/UID`, `$XDG_STATE_HOME`); each
    /// one below it, up to `path`, is opened as a private directory of the
    /// caller's.
    pub base: PathBuf,
    /// Under the home directory (no runtime directory of the caller's
    /// exists): `base` is made if missing.
    pub in_home: bool,
}

/// The name of the home-based runtime directory: one per machine, since a
/// home directory may be shared between machines (NFS) while the processes
/// a record names are one machine's.
fn runtime_leaf() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| crate::names::valid_name(h));
    match host {
        Some(h) => format!("runtime-{h}"),
        None => "runtime".to_string(),
    }
}

#[derive(Debug, Clone)]
struct PasswdEntry {
    name: String,
    home: PathBuf,
}

impl Host {
    /// The real caller of this process.
    pub fn current() -> Host {
        Host {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            passwd: OnceCell::new(),
            home: OnceCell::new(),
            cwd: OnceCell::new(),
            user_dirs: OnceCell::new(),
            env_override: None,
            landlock: OnceCell::new(),
            landlock_errata: OnceCell::new(),
            stdin_tty: OnceCell::new(),
            output_ttys: OnceCell::new(),
            cgroups: OnceCell::new(),
            state_dir: OnceCell::new(),
            addresses: OnceCell::new(),
            launcher_pid: None,
            fs_root: None,
        }
    }

    /// A host with a fixed environment, for tests of pure stages.
    pub fn fixed(uid: u32, gid: u32, env: &[(&str, &str)], cwd: &str) -> Host {
        let host = Host {
            uid,
            gid,
            passwd: OnceCell::from(None),
            home: OnceCell::new(),
            cwd: OnceCell::from(Some(PathBuf::from(cwd))),
            user_dirs: OnceCell::new(),
            env_override: Some(
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            // A kernel with Landlock ABI 7 and every known erratum fixed.
            landlock: OnceCell::from(crate::landlock::Support::Abi(7)),
            landlock_errata: OnceCell::from(crate::landlock::all_errata()),
            stdin_tty: OnceCell::from(false),
            output_ttys: OnceCell::from([false; 2]),
            cgroups: OnceCell::new(),
            state_dir: OnceCell::new(),
            addresses: OnceCell::from(Vec::new()),
            launcher_pid: None,
            fs_root: None,
        };
        let _ = host.user_dirs.set(BTreeMap::new());
        host
    }

    /// A fixed host whose kernel reports this Landlock ABI (0: none, as
    /// on a kernel built without it).
    pub fn with_landlock_abi(self, abi: u32) -> Host {
        let support = match abi {
            0 => crate::landlock::Support::NotBuilt,
            v => crate::landlock::Support::Abi(v),
        };
        self.with_landlock(support, crate::landlock::all_errata())
    }

    /// A fixed host whose kernel answers the Landlock probes this way
    /// (`fixed_errata`: bit N-1 for erratum N).
    pub fn with_landlock(self, support: crate::landlock::Support, fixed_errata: u32) -> Host {
        Host {
            landlock: OnceCell::from(support),
            landlock_errata: OnceCell::from(fixed_errata),
            ..self
        }
    }

    /// A fixed host with this cgroup layout.
    pub fn with_cgroups(self, cgroups: cgroups::CgroupHost) -> Host {
        Host {
            cgroups: OnceCell::from(cgroups),
            ..self
        }
    }

    /// A host whose standard input is (`true`) or is not a terminal,
    /// whatever this process's is.
    pub fn with_stdin_tty(self, tty: bool) -> Host {
        Host {
            stdin_tty: OnceCell::from(tty),
            ..self
        }
    }

    /// A host whose standard input, output and error are (`true`) or are
    /// not terminals, whatever this process's are.
    pub fn with_std_terminals(self, ttys: [bool; 3]) -> Host {
        Host {
            stdin_tty: OnceCell::from(ttys[0]),
            output_ttys: OnceCell::from([ttys[1], ttys[2]]),
            ..self
        }
    }

    /// A fixed host whose filesystem is the tree under `dir`: the planner
    /// looks bind sources (and whether they are directories or symlinks) up
    /// there, so a plan can be taken against a synthetic machine. hutch's
    /// own state directories (registry, volume store) are still looked up
    /// at their real paths.
    pub fn with_fs_root(self, dir: &Path) -> Host {
        Host {
            fs_root: Some(dir.to_path_buf()),
            ..self
        }
    }

    /// A fixed host whose network interfaces have these addresses.
    pub fn with_addresses(self, addresses: Vec<HostAddress>) -> Host {
        Host {
            addresses: OnceCell::from(addresses),
            ..self
        }
    }

    /// A fixed host whose launcher is `pid` and keeps its runtime state in
    /// `state_dir`, whatever this process and the machine are: the names a
    /// plan derives from them (`[desktop]`'s launch directory, its
    /// instance id) are then the same wherever it is taken.
    pub fn with_launcher(self, pid: u32, state_dir: &Path) -> Host {
        Host {
            launcher_pid: Some(pid),
            state_dir: OnceCell::from(Some(RuntimeDir {
                path: state_dir.to_path_buf(),
                base: state_dir.parent().unwrap_or(state_dir).to_path_buf(),
                in_home: false,
            })),
            ..self
        }
    }

    /// The addresses of the caller's network namespace, loopback left out
    /// (probed on first use: only `[network]` user mode asks).
    pub fn addresses(&self) -> &[HostAddress] {
        self.addresses.get_or_init(probe_addresses)
    }

    /// Where the program `name` is found in the caller's `PATH` (absolute
    /// entries only; `/usr/local/bin:/usr/bin:/bin` when it is unset), as
    /// a shell would find it: the first executable regular file. The path
    /// is kept as found (not resolved): a program may look at its name.
    pub fn find_program(&self, name: &str) -> Option<PathBuf> {
        let path = self
            .env("PATH")
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        self.find_program_in(name, &path)
    }

    /// The first executable regular file `name` in the colon-separated
    /// directories of `path` (relative entries are skipped).
    pub fn find_program_in(&self, name: &str, path: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        path.split(':')
            .map(Path::new)
            .filter(|d| d.is_absolute())
            .map(|d| d.join(name))
            .find(|p| {
                std::fs::metadata(self.fs_path(p))
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    }

    /// The pid of the launcher that runs the plan (this process, unless
    /// [`Host::with_launcher`] was used).
    pub fn launcher_pid(&self) -> u32 {
        self.launcher_pid.unwrap_or_else(std::process::id)
    }

    /// Where the absolute host path `path` is found on this host's
    /// filesystem (itself, unless [`Host::with_fs_root`] was used).
    pub fn fs_path<'a>(&self, path: &'a Path) -> std::borrow::Cow<'a, Path> {
        match &self.fs_root {
            Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)).into(),
            None => path.into(),
        }
    }

    /// The host path of `fs`, a path on this host's filesystem (the
    /// inverse of [`Host::fs_path`]); `None` if it lies outside the tree.
    pub fn host_path(&self, fs: &Path) -> Option<PathBuf> {
        match &self.fs_root {
            Some(root) => fs.strip_prefix(root).ok().map(|r| Path::new("/").join(r)),
            None => Some(fs.to_path_buf()),
        }
    }

    /// The cgroup layout, D-Bus socket and delegation (probed on first use:
    /// only profiles with `[limits]` pay for it).
    pub fn cgroups(&self) -> &cgroups::CgroupHost {
        self.cgroups
            .get_or_init(|| cgroups::CgroupHost::probe(self.uid, &|n| self.env(n)))
    }

    /// Whether the kernel enforces Landlock: its ABI version, or why not.
    pub fn landlock(&self) -> crate::landlock::Support {
        *self.landlock.get_or_init(crate::landlock::probe)
    }

    /// The Landlock ABI version the kernel offers; 0 if Landlock is not
    /// built in or not enabled.
    pub fn landlock_abi(&self) -> u32 {
        self.landlock().abi()
    }

    /// The Landlock errata the kernel fixed (bit N-1 for erratum N; probed
    /// only when a plan enforces something an erratum touches).
    pub fn landlock_errata(&self) -> u32 {
        *self
            .landlock_errata
            .get_or_init(crate::landlock::fixed_errata)
    }

    pub fn stdin_is_tty(&self) -> bool {
        *self
            .stdin_tty
            .get_or_init(|| nix::unistd::isatty(std::io::stdin()).unwrap_or(false))
    }

    /// Which of standard input, output and error are terminals.
    pub fn std_terminals(&self) -> [bool; 3] {
        let [out, err] = *self.output_ttys.get_or_init(|| {
            [
                nix::unistd::isatty(std::io::stdout()).unwrap_or(false),
                nix::unistd::isatty(std::io::stderr()).unwrap_or(false),
            ]
        });
        [self.stdin_is_tty(), out, err]
    }

    pub fn env(&self, name: &str) -> Option<String> {
        match &self.env_override {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
    }

    /// All caller environment variables (for `env.keep`).
    pub fn env_vars(&self) -> Vec<(String, String)> {
        match &self.env_override {
            Some(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            None => std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    fn passwd(&self) -> Option<&PasswdEntry> {
        self.passwd.get_or_init(|| lookup_passwd(self.uid)).as_ref()
    }

    pub fn home(&self) -> Option<&Path> {
        self.home
            .get_or_init(|| {
                self.env("HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                    .or_else(|| self.passwd().map(|p| p.home.clone()))
            })
            .as_deref()
    }

    pub fn user_name(&self) -> Option<String> {
        self.env("USER")
            .filter(|u| !u.is_empty())
            .or_else(|| self.passwd().map(|p| p.name.clone()))
    }

    /// This host as seen from no working directory: what a profile would do
    /// wherever it is started (`hutch doctor`), without `workdir`'s verdict
    /// on the directory the question happens to be asked from.
    pub fn without_cwd(self) -> Host {
        let cwd = OnceCell::new();
        let _ = cwd.set(None);
        Host { cwd, ..self }
    }

    pub fn cwd(&self) -> Option<&Path> {
        self.cwd
            .get_or_init(|| std::env::current_dir().ok())
            .as_deref()
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.env("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| PathBuf::from(format!("/run/user/{}", self.uid)))
    }

    /// The directory for hutch's runtime state (the registry lives in its
    /// `sandboxes/`): `$XDG_RUNTIME_DIR/hutch` when that is a directory of
    /// the caller's, else `/run/user/UID/hutch` likewise, else
    /// `$XDG_STATE_HOME/hutch/runtime-HOST` (default under `~/.local/state`):
    /// never a name in a directory others may write to (`/tmp`), where
    /// another user could take it first. `None`: no home directory either.
    /// Only looks (one or two stat calls, once per process: the registry
    /// and the planner both ask); creates nothing.
    pub fn hutch_runtime_dir(&self) -> Option<&RuntimeDir> {
        self.state_dir
            .get_or_init(|| {
                use std::os::unix::fs::MetadataExt;
                let owned_dir = |p: &Path| {
                    std::fs::metadata(p).is_ok_and(|m| m.is_dir() && m.uid() == self.uid)
                };
                let in_runtime = |base: PathBuf| RuntimeDir {
                    path: base.join("hutch"),
                    base,
                    in_home: false,
                };
                if let Some(x) = self.env("XDG_RUNTIME_DIR").map(PathBuf::from)
                    && x.is_absolute()
                    && owned_dir(&x)
                {
                    return Some(in_runtime(x));
                }
                let run = PathBuf::from(format!("/run/user/{}", self.uid));
                if owned_dir(&run) {
                    return Some(in_runtime(run));
                }
                let base = self.xdg_base("XDG_STATE_HOME")?;
                Some(RuntimeDir {
                    path: base.join("hutch").join(runtime_leaf()),
                    base,
                    in_home: true,
                })
            })
            .as_ref()
    }

    /// An XDG base directory (`XDG_CONFIG_HOME`, ...), with its default under $HOME.
    pub fn xdg_base(&self, var: &str) -> Option<PathBuf> {
        if let Some(v) = self.env(var).map(PathBuf::from).filter(|p| p.is_absolute()) {
            return Some(v);
        }
        let rel = match var {
            "XDG_CONFIG_HOME" => ".config",
            "XDG_DATA_HOME" => ".local/share",
            "XDG_CACHE_HOME" => ".cache",
            "XDG_STATE_HOME" => ".local/state",
            _ => return None,
        };
        self.home().map(|h| h.join(rel))
    }

    /// An XDG user directory (`XDG_DOWNLOAD_DIR`, ...) from `user-dirs.dirs`,
    /// with the conventional default when it is not configured.
    pub fn xdg_user_dir(&self, var: &str) -> Option<PathBuf> {
        let default = match var {
            "XDG_DESKTOP_DIR" => "Desktop",
            "XDG_DOWNLOAD_DIR" => "Downloads",
            "XDG_DOCUMENTS_DIR" => "Documents",
            "XDG_MUSIC_DIR" => "Music",
            "XDG_PICTURES_DIR" => "Pictures",
            "XDG_VIDEOS_DIR" => "Videos",
            "XDG_TEMPLATES_DIR" => "Templates",
            "XDG_PUBLICSHARE_DIR" => "Public",
            _ => return None,
        };
        let home = self.home()?;
        let dirs = self.user_dirs.get_or_init(|| {
            self.xdg_base("XDG_CONFIG_HOME")
                .and_then(|c| std::fs::read_to_string(c.join("user-dirs.dirs")).ok())
                .map(|text| parse_user_dirs(&text, home))
                .unwrap_or_default()
        });
        Some(
            dirs.get(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(default)),
        )
    }
}

/// Parses `XDG_X_DIR="$HOME/x"` lines as xdg-user-dirs writes them.
fn parse_user_dirs(text: &str, home: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        let value = if let Some(rest) = value.strip_prefix("$HOME") {
            format!("{}{}", home.display(), rest)
        } else if value.starts_with('/') {
            value.to_string()
        } else {
            continue;
        };
        out.insert(key.trim().to_string(), value);
    }
    out
}

/// The addresses of this network namespace but loopback's.
fn probe_addresses() -> Vec<HostAddress> {
    let Ok(ifaddrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<HostAddress> = Vec::new();
    for ifa in ifaddrs {
        let Some(storage) = ifa.address else { continue };
        let address = if let Some(v4) = storage.as_sockaddr_in() {
            std::net::IpAddr::V4(v4.ip())
        } else if let Some(v6) = storage.as_sockaddr_in6() {
            std::net::IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        let entry = HostAddress {
            address,
            interface: ifa.interface_name,
        };
        if !address.is_loopback() && !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

fn lookup_passwd(uid: u32) -> Option<PasswdEntry> {
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok()??;
    Some(PasswdEntry {
        name: user.name,
        home: user.dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_dirs_are_parsed() {
        let dirs = parse_user_dirs(
            "# comment\nXDG_DOWNLOAD_DIR=\"$HOME/Fetched\"\nXDG_MUSIC_DIR=\"/srv/music\"\nbad\n",
            Path::new("/home/a"),
        );
        assert_eq!(dirs["XDG_DOWNLOAD_DIR"], "/home/a/Fetched");
        assert_eq!(dirs["XDG_MUSIC_DIR"], "/srv/music");
    }

    #[test]
    fn xdg_defaults_follow_home() {
        let h = Host::fixed(1000, 1000, &[("HOME", "/home/a")], "/");
        assert_eq!(
            h.xdg_base("XDG_CONFIG_HOME").unwrap(),
            PathBuf::from("/home/a/.config")
        );
        assert_eq!(
            h.xdg_user_dir("XDG_DOWNLOAD_DIR").unwrap(),
            PathBuf::from("/home/a/Downloads")
        );
        assert_eq!(h.runtime_dir(), PathBuf::from("/run/user/1000"));
    }

    #[test]
    fn without_a_runtime_directory_the_state_home_is_used_never_tmp() {
        // No XDG_RUNTIME_DIR and a uid with no /run/user/UID.
        let uid = 3_999_999;
        let h = Host::fixed(uid, uid, &[("HOME", "/home/a")], "/");
        let r = h.hutch_runtime_dir().unwrap();
        assert!(r.in_home);
        assert_eq!(r.base, PathBuf::from("/home/a/.local/state"));
        assert_eq!(
            r.path.parent(),
            Some(Path::new("/home/a/.local/state/hutch"))
        );
        let leaf = r.path.file_name().unwrap().to_str().unwrap();
        assert!(leaf.starts_with("runtime"), "{r:?}");
        let h = Host::fixed(
            uid,
            uid,
            &[("XDG_RUNTIME_DIR", "/tmp"), ("XDG_STATE_HOME", "/s")],
            "/",
        );
        let r = h.hutch_runtime_dir().unwrap();
        assert_eq!(
            r.path.parent(),
            Some(Path::new("/s/hutch")),
            "not root's /tmp: {r:?}"
        );
        assert_eq!(Host::fixed(uid, uid, &[], "/").hutch_runtime_dir(), None);
    }
}
