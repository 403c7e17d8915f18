//! The translation table: what each firejail directive becomes in hutch.
//!
//! Most directives restrict something hutch never grants in the first place
//! (its sandbox starts from nothing: no network, no devices but a minimal
//! /dev, no capabilities, no D-Bus, no display), so they translate as they
//! are. Those that need code (paths, the system call filter, ...) name a
//! [`Handler`]. Grants that belong to hutch sections that do not exist yet
//! (`[network]`, the desktop section) are [`Rule::Pending`]: the imported
//! profile withholds them and the report says so; when a section lands,
//! its entries here become handlers that fill it.

/// A hutch profile section a firejail grant needs, not available yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    /// `[network]`: host or user-mode (pasta) networking, port forwards,
    /// an egress policy.
    Network,
    /// The desktop section: X11, Wayland, audio, GPU and devices, D-Bus
    /// through xdg-dbus-proxy.
    Desktop,
}

impl Section {
    pub fn describe(self) -> &'static str {
        match self {
            Section::Network => "needs hutch's [network] section, which is not available yet",
            Section::Desktop => {
                "needs hutch's desktop section (display, audio, GPU, D-Bus), which is not available yet"
            }
        }
    }
}

/// Directives that need more than a fixed verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// Paths: blacklist, whitelist, read-only, private-*, ... (see
    /// `mounts.rs`).
    Filesystem,
    Seccomp,
    SeccompDrop,
    SeccompKeep,
    Seccomp32,
    ErrorAction,
    AllowDebuggers,
    RestrictNamespaces,
    MachineId,
    Env,
    Rmenv,
    Hostname,
    Rlimit,
    PrivateDev,
    /// A directive firejail.config can switch off (then it has no effect).
    Configurable(Switch),
    Nice,
    PrivateCwd,
}

/// A `firejail.config` switch a directive depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    Tracelog,
    PrivateLib,
    /// `network` and `restricted-network` (network features are root's
    /// alone with `restricted-network yes`, Debian's setting).
    Network,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// hutch does it too; the text says how.
    Same(&'static str),
    Stricter(&'static str),
    NotTranslatable(&'static str),
    RootOnly(&'static str),
    /// A grant that needs a section hutch does not have yet: withheld.
    Pending(Section, &'static str),
    Handle(Handler),
}

/// Which arguments an entry takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    None,
    Any,
    Is(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub keyword: &'static str,
    pub arg: Arg,
    pub rule: Rule,
}

const fn e(keyword: &'static str, arg: Arg, rule: Rule) -> Entry {
    Entry { keyword, arg, rule }
}

use Arg::{Any, Is, None as NoArg};
use Handler as H;
use Rule::{Handle, NotTranslatable, Pending, RootOnly, Same, Stricter};
use Section::{Desktop, Network};

const DEVICES: &str = "hutch's /dev holds only null, zero, full, random, urandom, tty, a private pts and shm: no such device is there";
const NO_BUS: &str = "hutch binds no D-Bus socket: the program reaches no bus";
const CAPS: &str = "hutch drops every capability (all five sets, securebits locked)";
const ROOT_NET: &str = "configures the host's network interfaces, which needs root (firejail's setuid helper); hutch's sandbox has its own network namespace with only loopback";
const APPARMOR: &str = "AppArmor policy is loaded and switched by root; hutch has no AppArmor setting (its Landlock rules, derived from the mounts, are the unprivileged counterpart)";

/// The table, looked up in order; the first entry whose keyword and
/// argument match wins.
pub static TABLE: &[Entry] = &[
    // Filesystem.
    e("blacklist", Any, Handle(H::Filesystem)),
    e("blacklist-nolog", Any, Handle(H::Filesystem)),
    e("noblacklist", Any, Handle(H::Filesystem)),
    e("whitelist", Any, Handle(H::Filesystem)),
    e("nowhitelist", Any, Handle(H::Filesystem)),
    e("read-only", Any, Handle(H::Filesystem)),
    e("read-write", Any, Handle(H::Filesystem)),
    e("noexec", Any, Handle(H::Filesystem)),
    e("tmpfs", Any, Handle(H::Filesystem)),
    e("mkdir", Any, Handle(H::Filesystem)),
    e("mkfile", Any, Handle(H::Filesystem)),
    e("private", NoArg, Handle(H::Filesystem)),
    e("private", Any, Handle(H::Filesystem)),
    e("private-home", Any, Handle(H::Filesystem)),
    e("private-etc", Any, Handle(H::Filesystem)),
    e("private-bin", Any, Handle(H::Filesystem)),
    e("private-opt", Any, Handle(H::Filesystem)),
    e("private-srv", Any, Handle(H::Filesystem)),
    e("private-tmp", NoArg, Handle(H::Filesystem)),
    e("private-cache", NoArg, Handle(H::Filesystem)),
    e("disable-mnt", NoArg, Handle(H::Filesystem)),
    e("private-dev", NoArg, Handle(H::PrivateDev)),
    e("private-cwd", NoArg, Handle(H::PrivateCwd)),
    e("private-cwd", Any, Handle(H::PrivateCwd)),
    e(
        "private-lib",
        NoArg,
        Handle(H::Configurable(Switch::PrivateLib)),
    ),
    e(
        "private-lib",
        Any,
        Handle(H::Configurable(Switch::PrivateLib)),
    ),
    e(
        "bind",
        Any,
        RootOnly("firejail allows `bind` only when run as root"),
    ),
    e(
        "writable-etc",
        NoArg,
        Stricter("/etc stays read-only in hutch"),
    ),
    e(
        "writable-var",
        NoArg,
        Stricter("/var stays read-only in hutch"),
    ),
    e(
        "writable-var-log",
        NoArg,
        Stricter("hutch shows an empty /var/log, as firejail does by default"),
    ),
    e(
        "writable-run-user",
        NoArg,
        Stricter("hutch binds nothing of /run/user but what the profile names"),
    ),
    e(
        "keep-var-tmp",
        NoArg,
        Stricter("hutch gives the program an empty /var/tmp, not the host's"),
    ),
    e(
        "keep-dev-shm",
        NoArg,
        Same("hutch's /dev has a private, writable shm"),
    ),
    e(
        "keep-config-pulse",
        NoArg,
        Same("no effect: hutch does not change PulseAudio's configuration"),
    ),
    e(
        "noautopulse",
        NoArg,
        Same("no effect: hutch does not change PulseAudio's configuration"),
    ),
    e(
        "allusers",
        NoArg,
        Stricter("hutch shows no other user's home directory"),
    ),
    e("machine-id", NoArg, Handle(H::MachineId)),
    e(
        "overlay",
        NoArg,
        NotTranslatable(
            "an overlay over the whole host filesystem; hutch overlays only an image or `root` directory",
        ),
    ),
    e(
        "overlay-tmpfs",
        NoArg,
        NotTranslatable(
            "an overlay over the whole host filesystem; hutch overlays only an image or `root` directory",
        ),
    ),
    e(
        "overlay-named",
        Any,
        NotTranslatable(
            "an overlay over the whole host filesystem; hutch overlays only an image or `root` directory",
        ),
    ),
    // Devices.
    e("nosound", NoArg, Same(DEVICES)),
    e("no3d", NoArg, Same(DEVICES)),
    e("novideo", NoArg, Same(DEVICES)),
    e("noinput", NoArg, Same(DEVICES)),
    e("nou2f", NoArg, Same(DEVICES)),
    e("nodvd", NoArg, Same(DEVICES)),
    e("notv", NoArg, Same(DEVICES)),
    e("notpm", NoArg, Same(DEVICES)),
    e(
        "noprinters",
        NoArg,
        Same("hutch binds no printer device and no CUPS socket"),
    ),
    // Identity and privileges.
    e(
        "noroot",
        NoArg,
        Same("hutch's user namespace maps only your own uid and gid"),
    ),
    e("nonewprivs", NoArg, Same("hutch always sets no_new_privs")),
    e("caps.drop", Is("all"), Same(CAPS)),
    e("caps.drop", Any, Stricter(CAPS)),
    e("caps", NoArg, Stricter(CAPS)),
    e(
        "caps.keep",
        Any,
        RootOnly(
            "capabilities that act on the host need firejail's setuid helper; hutch drops every capability",
        ),
    ),
    e(
        "nogroups",
        NoArg,
        NotTranslatable(
            "only root can drop supplementary groups (setgroups is denied in an unprivileged user namespace): they stay in force on the host's files hutch binds, shown as `nobody`",
        ),
    ),
    e(
        "shell",
        Is("none"),
        Same("hutch runs the command itself, never through a shell"),
    ),
    // Namespaces, processes.
    e(
        "ipc-namespace",
        NoArg,
        Same("hutch gives every sandbox its own IPC namespace"),
    ),
    e(
        "deterministic-shutdown",
        NoArg,
        Same("hutch's init ends every process of the sandbox when the program exits"),
    ),
    e(
        "deterministic-exit-code",
        NoArg,
        Same("hutch exits with the program's exit status"),
    ),
    e(
        "join-or-start",
        Any,
        NotTranslatable(
            "hutch has no join-or-start: name the sandbox with `hutch run --name` and use `hutch exec`",
        ),
    ),
    e(
        "name",
        Any,
        NotTranslatable("a profile cannot name its sandbox in hutch: use `hutch run --name`"),
    ),
    e(
        "keep-fd",
        Any,
        Stricter("hutch closes every inherited descriptor but 0, 1 and 2"),
    ),
    e("tab", NoArg, Same("no effect (firejail ignores it too)")),
    e("quiet", NoArg, Same("only silences firejail's messages")),
    e("nice", Any, Handle(H::Nice)),
    e(
        "cpu",
        Any,
        NotTranslatable(
            "hutch has no CPU affinity setting ([limits] cpu limits CPU time, not which CPUs)",
        ),
    ),
    e(
        "timeout",
        Any,
        NotTranslatable("hutch has no run-time limit ([rlimits] cpu limits CPU seconds)"),
    ),
    e("rlimit-nofile", Any, Handle(H::Rlimit)),
    e("rlimit-nproc", Any, Handle(H::Rlimit)),
    e("rlimit-fsize", Any, Handle(H::Rlimit)),
    e("rlimit-as", Any, Handle(H::Rlimit)),
    e("rlimit-cpu", Any, Handle(H::Rlimit)),
    e(
        "rlimit-sigpending",
        Any,
        NotTranslatable("hutch's [rlimits] has no sigpending"),
    ),
    e("hostname", Any, Handle(H::Hostname)),
    e("env", Any, Handle(H::Env)),
    e("rmenv", Any, Handle(H::Rmenv)),
    e("tracelog", NoArg, Handle(H::Configurable(Switch::Tracelog))),
    // System calls.
    e("seccomp", NoArg, Handle(H::Seccomp)),
    e("seccomp", Any, Handle(H::Seccomp)),
    e("seccomp.drop", Any, Handle(H::SeccompDrop)),
    e("seccomp.keep", Any, Handle(H::SeccompKeep)),
    e("seccomp.32", Any, Handle(H::Seccomp32)),
    e("seccomp.32.drop", Any, Handle(H::Seccomp32)),
    e("seccomp.32.keep", Any, Handle(H::Seccomp32)),
    e(
        "seccomp.block-secondary",
        NoArg,
        Same("hutch's filter kills every other architecture's calls (and refuses x32 on x86_64)"),
    ),
    e("seccomp-error-action", Any, Handle(H::ErrorAction)),
    e("allow-debuggers", NoArg, Handle(H::AllowDebuggers)),
    e("restrict-namespaces", NoArg, Handle(H::RestrictNamespaces)),
    e("restrict-namespaces", Any, Handle(H::RestrictNamespaces)),
    e(
        "memory-deny-write-execute",
        NoArg,
        NotTranslatable(
            "hutch has no W^X memory policy: it needs prctl(PR_SET_MDWE) (Linux 6.3+) or a seccomp rule on mmap/mprotect/pkey_mprotect flags and memfd_create, which a hutch profile cannot express",
        ),
    ),
    e(
        "protocol",
        Any,
        NotTranslatable(
            "hutch has no socket-family filter: in its network namespace inet, inet6 and netlink reach only the sandbox's own loopback, packet needs CAP_NET_RAW and bluetooth the host's network namespace, but other families (AF_ALG, AF_VSOCK, ...) stay open; Landlock restricts TCP ports and abstract unix sockets, not families",
        ),
    ),
    // Network.
    e(
        "net",
        Is("none"),
        Same("hutch's sandbox has its own network namespace with only loopback"),
    ),
    e("net", Any, Handle(H::Configurable(Switch::Network))),
    e("netfilter", NoArg, Handle(H::Configurable(Switch::Network))),
    e("netfilter", Any, Handle(H::Configurable(Switch::Network))),
    e("netfilter6", Any, Handle(H::Configurable(Switch::Network))),
    e("netns", Any, Handle(H::Configurable(Switch::Network))),
    e("netlock", NoArg, Handle(H::Configurable(Switch::Network))),
    e("veth-name", Any, Handle(H::Configurable(Switch::Network))),
    e("iprange", Any, Handle(H::Configurable(Switch::Network))),
    e("mac", Any, Handle(H::Configurable(Switch::Network))),
    e("mtu", Any, Handle(H::Configurable(Switch::Network))),
    e("netmask", Any, Handle(H::Configurable(Switch::Network))),
    e("ip", Any, Handle(H::Configurable(Switch::Network))),
    e("ip6", Any, Handle(H::Configurable(Switch::Network))),
    e("defaultgw", Any, Handle(H::Configurable(Switch::Network))),
    e("dns", Any, Pending(Network, "DNS servers for the sandbox")),
    e(
        "hosts-file",
        Any,
        Pending(Network, "a hosts file for the sandbox"),
    ),
    // Display, audio, D-Bus.
    e(
        "x11",
        Is("none"),
        Same("hutch binds no X11 socket, and its network namespace cuts off X11's abstract socket"),
    ),
    e("x11", NoArg, Pending(Desktop, "a nested X11 server")),
    e("x11", Any, Pending(Desktop, "a nested X11 server")),
    e("xephyr-screen", Any, Same("no effect without `x11 xephyr`")),
    e("nodbus", NoArg, Same(NO_BUS)),
    e("dbus-user", Is("none"), Same(NO_BUS)),
    e("dbus-system", Is("none"), Same(NO_BUS)),
    e(
        "dbus-user",
        Is("filter"),
        Pending(Desktop, "the session bus through a filtering proxy"),
    ),
    e(
        "dbus-system",
        Is("filter"),
        Pending(Desktop, "the system bus through a filtering proxy"),
    ),
    e(
        "dbus-user.talk",
        Any,
        Pending(Desktop, "talking to this name on the session bus"),
    ),
    e(
        "dbus-user.own",
        Any,
        Pending(Desktop, "owning this name on the session bus"),
    ),
    e(
        "dbus-user.see",
        Any,
        Pending(Desktop, "seeing this name on the session bus"),
    ),
    e(
        "dbus-user.call",
        Any,
        Pending(Desktop, "calling this method on the session bus"),
    ),
    e(
        "dbus-user.broadcast",
        Any,
        Pending(Desktop, "receiving these signals on the session bus"),
    ),
    e(
        "dbus-system.talk",
        Any,
        Pending(Desktop, "talking to this name on the system bus"),
    ),
    e(
        "dbus-system.own",
        Any,
        Pending(Desktop, "owning this name on the system bus"),
    ),
    e(
        "dbus-system.see",
        Any,
        Pending(Desktop, "seeing this name on the system bus"),
    ),
    e(
        "dbus-system.call",
        Any,
        Pending(Desktop, "calling this method on the system bus"),
    ),
    e(
        "dbus-system.broadcast",
        Any,
        Pending(Desktop, "receiving these signals on the system bus"),
    ),
    // LSMs.
    e("apparmor", NoArg, RootOnly(APPARMOR)),
    e("apparmor", Any, RootOnly(APPARMOR)),
    e("apparmor-replace", NoArg, RootOnly(APPARMOR)),
    e("apparmor-stack", NoArg, RootOnly(APPARMOR)),
];

/// The entry for a directive, if firejail 0.9.72 knows it.
pub fn lookup(keyword: &str, arg: &str) -> Option<&'static Entry> {
    TABLE.iter().find(|e| {
        e.keyword == keyword
            && match e.arg {
                Arg::None => arg.is_empty(),
                Arg::Any => !arg.is_empty(),
                Arg::Is(s) => arg == s,
            }
    })
}

/// Why a root-only network directive is refused.
pub const ROOT_NET_WHY: &str = ROOT_NET;

/// Something firejail grants unless a profile restricts it, and what
/// restricts it.
pub struct DefaultGrant {
    /// Directives (as written) any of which removes the grant.
    pub unless: &'static [&'static str],
    pub section: Option<Section>,
    pub what: &'static str,
    pub why: &'static str,
}

/// What a firejail sandbox has unless its profile says otherwise, and the
/// imported profile does not (hutch's sandbox starts from nothing).
pub static DEFAULT_GRANTS: &[DefaultGrant] = &[
    DefaultGrant {
        unless: &["net none"],
        section: Some(Network),
        what: "the host's network",
        why: "",
    },
    DefaultGrant {
        unless: &["nosound"],
        section: Some(Desktop),
        what: "sound (PulseAudio, PipeWire, /dev/snd)",
        why: "",
    },
    DefaultGrant {
        unless: &["x11 none"],
        section: Some(Desktop),
        what: "the X11 display",
        why: "",
    },
    DefaultGrant {
        unless: &["no3d"],
        section: Some(Desktop),
        what: "the GPU (/dev/dri)",
        why: "",
    },
    DefaultGrant {
        unless: &["dbus-user none", "dbus-user filter", "nodbus"],
        section: Some(Desktop),
        what: "the D-Bus session bus",
        why: "",
    },
    DefaultGrant {
        unless: &["dbus-system none", "dbus-system filter", "nodbus"],
        section: Some(Desktop),
        what: "the D-Bus system bus",
        why: "",
    },
    DefaultGrant {
        unless: &["novideo"],
        section: Some(Desktop),
        what: "video devices (/dev/video*)",
        why: "",
    },
    DefaultGrant {
        unless: &["noinput"],
        section: Some(Desktop),
        what: "input devices (/dev/input)",
        why: "",
    },
    DefaultGrant {
        unless: &["nou2f"],
        section: Some(Desktop),
        what: "U2F security keys (/dev/hidraw*)",
        why: "",
    },
    DefaultGrant {
        unless: &["private-dev"],
        section: Some(Desktop),
        what: "the rest of the host's /dev",
        why: "",
    },
    DefaultGrant {
        unless: &["private-tmp"],
        section: None,
        what: "the host's /tmp",
        why: "hutch gives the program an empty, private /tmp",
    },
    DefaultGrant {
        unless: &["ipc-namespace"],
        section: None,
        what: "the host's System V IPC and POSIX message queues",
        why: "hutch gives every sandbox its own IPC namespace",
    },
    DefaultGrant {
        unless: &["disable-mnt"],
        section: None,
        what: "/mnt, /media, /run/media",
        why: "hutch binds none of them",
    },
    DefaultGrant {
        unless: &[],
        section: None,
        what: "/run, /srv, /sys and the host's other top-level directories",
        why: "hutch binds /usr, /etc, /opt, /var (read-only) and what the profile names; firejail keeps the rest of the host's tree",
    },
    DefaultGrant {
        unless: &[],
        section: None,
        what: "your environment",
        why: "hutch passes only its keep list (TERM, LANG, LC_*, TZ, USER, ...) and sets PATH and HOME",
    },
    DefaultGrant {
        unless: &["restrict-namespaces"],
        section: None,
        what: "creating user namespaces",
        why: "hutch's default filter denies new user namespaces (`[seccomp] nested_userns = true` allows them)",
    },
    DefaultGrant {
        unless: &["seccomp", "seccomp.drop", "seccomp.keep"],
        section: None,
        what: "every system call",
        why: "hutch always loads its default seccomp filter",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert!(matches!(lookup("net", "none").unwrap().rule, Same(_)));
        assert!(matches!(
            lookup("net", "eth0").unwrap().rule,
            Handle(H::Configurable(Switch::Network))
        ));
        assert!(matches!(lookup("caps.drop", "all").unwrap().rule, Same(_)));
        assert!(matches!(
            lookup("caps.drop", "chown").unwrap().rule,
            Stricter(_)
        ));
        assert!(matches!(
            lookup("seccomp", "").unwrap().rule,
            Handle(H::Seccomp)
        ));
        assert!(lookup("seccomp.block-secondary", "x").is_none());
        assert!(lookup("landlock.fs.read", "/x").is_none());
        assert!(lookup("private", "").is_some() && lookup("private", "/x").is_some());
    }
}

/// Paths that are the endpoints of a grant a pending section will own
/// (sockets, cookies, devices): a `whitelist` or a bound directory never
/// exposes them while the section is missing. `${HOME}` and `${RUNUSER}`
/// are expanded; a pattern names the path and everything below it.
pub static PENDING_PATHS: &[(&str, Section, &str)] = &[
    ("${RUNUSER}/bus", Desktop, "the D-Bus session bus"),
    ("${RUNUSER}/at-spi", Desktop, "the accessibility bus"),
    (
        "${RUNUSER}/dconf",
        Desktop,
        "dconf, the settings database (over D-Bus)",
    ),
    ("/run/dbus", Desktop, "the D-Bus system bus"),
    ("/var/run/dbus", Desktop, "the D-Bus system bus"),
    ("${RUNUSER}/pulse", Desktop, "PulseAudio"),
    ("${RUNUSER}/pipewire-*", Desktop, "PipeWire"),
    ("/tmp/pulse-*", Desktop, "PulseAudio"),
    ("/tmp/sndio", Desktop, "sndio"),
    ("${HOME}/.sndio", Desktop, "sndio's cookie"),
    ("${HOME}/.pulse-cookie", Desktop, "PulseAudio's cookie"),
    (
        "${HOME}/.config/pulse/cookie",
        Desktop,
        "PulseAudio's cookie",
    ),
    ("${RUNUSER}/wayland-*", Desktop, "the Wayland display"),
    ("/tmp/.X11-unix", Desktop, "the X11 display"),
    ("/tmp/.ICE-unix", Desktop, "X11 session management"),
    ("${HOME}/.Xauthority", Desktop, "the X11 cookie"),
    (
        "${HOME}/.ICEauthority",
        Desktop,
        "the X11 session-management cookie",
    ),
    ("${RUNUSER}/gdm", Desktop, "the X11 cookie"),
    (
        "${RUNUSER}/.mutter-Xwaylandauth.*",
        Desktop,
        "the X11 cookie",
    ),
    ("${RUNUSER}/xauth_*", Desktop, "the X11 cookie"),
    ("/dev", Desktop, "devices"),
    ("/sys", Desktop, "device information in /sys"),
    ("/run/udev", Desktop, "device information from udev"),
    ("/run/cups", Desktop, "the printing service"),
    ("/run/systemd/resolve", Network, "the host's DNS resolver"),
    ("/run/NetworkManager", Network, "NetworkManager's files"),
    ("/run/resolvconf", Network, "the host's DNS configuration"),
];

/// [`PENDING_PATHS`] for one user, ready to match.
pub struct PendingSet {
    /// (pattern, its number of components, section, what).
    patterns: Vec<(String, usize, Section, &'static str)>,
}

impl PendingSet {
    pub fn new(home: &str, runuser: &str) -> PendingSet {
        PendingSet {
            patterns: PENDING_PATHS
                .iter()
                .map(|(p, s, w)| {
                    let p = p.replace("${HOME}", home).replace("${RUNUSER}", runuser);
                    let depth = p.matches('/').count();
                    (p, depth, *s, *w)
                })
                .collect(),
        }
    }

    /// The pending grant `path` belongs to, if any.
    pub fn get(&self, path: &std::path::Path) -> Option<(Section, &'static str)> {
        let path = path.to_string_lossy();
        // The ends of the path's first components.
        let mut ends: Vec<usize> = path
            .char_indices()
            .skip(1)
            .filter(|(_, c)| *c == '/')
            .map(|(i, _)| i)
            .collect();
        ends.push(path.len());
        self.patterns
            .iter()
            .find_map(|(pattern, depth, section, what)| {
                let end = *ends.get(depth - 1)?;
                super::paths::fnmatch(pattern, &path[..end]).then_some((*section, *what))
            })
    }
}

/// The pending grant `path` belongs to, if any.
pub fn pending(
    path: &std::path::Path,
    home: &str,
    runuser: &str,
) -> Option<(Section, &'static str)> {
    PendingSet::new(home, runuser).get(path)
}

#[cfg(test)]
mod pending_tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn endpoints() {
        let p = |s: &str| pending(Path::new(s), "/home/u", "/run/user/1000").map(|x| x.0);
        assert_eq!(p("/run/user/1000/bus"), Some(Section::Desktop));
        assert_eq!(p("/run/user/1000/pipewire-0"), Some(Section::Desktop));
        assert_eq!(p("/run/user/1000/pulse/native"), Some(Section::Desktop));
        assert_eq!(p("/home/u/.Xauthority"), Some(Section::Desktop));
        assert_eq!(p("/dev/dri/card0"), Some(Section::Desktop));
        assert_eq!(
            p("/run/systemd/resolve/stub-resolv.conf"),
            Some(Section::Network)
        );
        assert_eq!(p("/run/user/1000/app"), None);
        assert_eq!(p("/home/u/.config/app"), None);
        assert_eq!(p("/run/user/1000/busy"), None);
    }
}
