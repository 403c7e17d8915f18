//! The profile format as written: plain serde structs, `deny_unknown_fields`
//! everywhere, spans kept on every value a later stage may complain about.
//!
//! Plain structs and a `type` field (no internally tagged or untagged enums, no
//! `flatten`) keep toml's error positions exact: an unknown key or a wrong type
//! is reported at the key or value itself, not at the table header.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// The profile format version this hutch understands.
pub const FORMAT_VERSION: i64 = 1;

/// One profile file, exactly as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProfile {
    pub version: Option<Spanned<i64>>,
    pub description: Option<Spanned<String>>,
    pub extends: Option<Vec<Spanned<String>>>,
    pub command: Option<Spanned<Vec<String>>>,
    pub cwd: Option<Spanned<String>>,
    /// Bind the caller's working directory at its own path and start there,
    /// unless it holds the user's whole world (see `crate::plan::protect`).
    pub workdir: Option<Spanned<Workdir>>,
    /// Bind the existing paths named by the command's arguments (see
    /// `crate::plan::arguments`).
    pub file_arguments: Option<Spanned<FileArguments>>,
    pub hostname: Option<Spanned<String>>,
    pub identity: Option<Spanned<Identity>>,
    pub init: Option<Spanned<bool>>,
    /// Destinations of inherited `[[mount]]` entries to drop.
    pub remove: Option<Vec<Spanned<String>>>,
    /// Whether the payload keeps the caller's terminal (and job control),
    /// or gets a pseudo-terminal of its own.
    pub terminal: Option<Spanned<Terminal>>,
    /// A host directory to use as the sandbox's root instead of an empty tmpfs.
    pub root: Option<Spanned<String>>,
    /// An image from the store (`hutch image list`) to use as the root.
    pub image: Option<Spanned<String>>,
    /// The writable layer over `root` or `image`.
    pub writable: Option<Spanned<Writable>>,
    pub namespaces: Option<Namespaces>,
    pub env: Option<Env>,
    /// Host paths kept out of reach wherever a bind would show them.
    pub protect: Option<Protect>,
    pub seccomp: Option<Seccomp>,
    pub landlock: Option<Landlock>,
    pub rlimits: Option<Rlimits>,
    /// cgroup limits for the whole sandbox (see `crate::plan::limits`).
    pub limits: Option<Limits>,
    /// How the sandbox reaches the network (see `crate::plan::network`).
    pub network: Option<Network>,
    #[serde(default)]
    pub mount: Vec<MountEntry>,
    /// `[volumes.NAME]`: directories kept by hutch that outlive the sandbox
    /// (or, with `tmp = true`, last exactly as long as it).
    pub volumes: Option<BTreeMap<Spanned<String>, VolumeEntry>>,
    /// The display server, sound server and app identity of a desktop app
    /// (see `crate::plan::desktop`).
    pub desktop: Option<Desktop>,
    /// Host devices granted inside the minimal `/dev` (see `crate::plan::devices`).
    pub devices: Option<Devices>,
    /// The D-Bus buses the app reaches through a filtering proxy (see
    /// `crate::plan::dbus`).
    pub dbus: Option<Dbus>,
}

/// `[dbus]`: a bus the profile names is given through xdg-dbus-proxy with
/// its rules; a bus it does not name is not given at all.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dbus {
    /// The user's session bus.
    pub session: Option<Spanned<BusPolicy>>,
    /// The system bus.
    pub system: Option<Spanned<BusPolicy>>,
    /// Portal interfaces (`FileChooser`, ...) the app may call on
    /// xdg-desktop-portal, through the session bus's proxy.
    pub portals: Option<Vec<Spanned<String>>>,
}

/// `[dbus.session]`, `[dbus.system]`: Flatpak's policy vocabulary. Lists
/// of all layers add up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusPolicy {
    /// Names the app may call and hear from.
    pub talk: Option<Vec<Spanned<String>>>,
    /// Names the app may own (and talk to).
    pub own: Option<Vec<Spanned<String>>>,
    /// Names the app may see on the bus, and no more.
    pub see: Option<Vec<Spanned<String>>>,
    /// `NAME=RULE`: calls allowed on a name it cannot otherwise talk to.
    pub call: Option<Vec<Spanned<String>>>,
    /// `NAME=RULE`: broadcast signals it hears from a name.
    pub broadcast: Option<Vec<Spanned<String>>>,
}

/// `[desktop]`: what a graphical app gets of the user's session. Every
/// socket is bound into a private runtime directory (a tmpfs at
/// `/run/user/UID` inside), never the host's runtime directory itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Desktop {
    /// Which display server the app talks to.
    pub display: Option<Spanned<Display>>,
    /// How the app gets X11 when `display` chooses it.
    pub x11: Option<Spanned<X11Mode>>,
    /// The sound server's sockets (PulseAudio, PipeWire).
    pub audio: Option<Spanned<bool>>,
    /// The app id the compositor (and later the portals) know the app by;
    /// always under `hutch.`.
    pub app_id: Option<Spanned<String>>,
    /// Whether a missing socket stops the launch or is skipped.
    pub enforce: Option<Spanned<Need>>,
}

/// `[desktop] display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Display {
    /// Wayland when the host has a compositor, else X11.
    Auto,
    /// The Wayland compositor only.
    Wayland,
    /// X11 only, as `x11` says.
    X11,
}

/// `[desktop] x11`: how the app reaches an X server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum X11Mode {
    /// The host display's socket and a private cookie: the app sees and
    /// can capture every window on that display.
    Host,
    /// A nested X server (Xephyr) of its own, in a window on the host
    /// display: the app sees only its own windows.
    Nested,
}

/// Whether something the profile grants must exist on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// A missing socket or device stops the launch.
    Required,
    /// What is missing is left out; `--explain` and `-v` say what.
    BestEffort,
}

/// `[devices]`: host device nodes granted inside the sandbox's `/dev`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    /// Device classes (`dri`, `snd`, ...), or `!NAME` to drop one granted
    /// by a lower layer.
    pub allow: Option<Vec<Spanned<String>>>,
    /// Whether a missing device stops the launch or is skipped.
    pub enforce: Option<Spanned<Need>>,
}

/// One `[volumes.NAME]` table. Every key may come from a different layer
/// (a `.local.toml` can set `shared` on an inherited volume); `dst` must be
/// set by one of them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeEntry {
    /// Where the volume appears inside the sandbox.
    pub dst: Option<Spanned<String>>,
    /// `"rw"` (default) or `"ro"`.
    pub mode: Option<Spanned<VolumeMode>>,
    /// Several sandboxes may use the volume at once (default: one at a time).
    pub shared: Option<Spanned<bool>>,
    /// A fresh, empty directory for this sandbox only, removed when it exits.
    pub tmp: Option<Spanned<bool>>,
}

/// How a volume is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeMode {
    Rw,
    Ro,
}

/// Whether and how the caller's working directory is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workdir {
    /// Not bound (the default).
    None,
    /// Bound read-only; left out (and said so) where it holds the user's
    /// whole world.
    ReadOnly,
    /// Bound writable; refused where it holds the user's whole world.
    ReadWrite,
}

/// Whether and how paths named by the command's arguments are bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileArguments {
    /// Not bound (the default).
    None,
    ReadOnly,
    ReadWrite,
}

/// `[protect]`: what binds must not show, or must show read-only. Lists are
/// unioned over the layers; `!PATH` drops an inherited entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protect {
    /// Host paths hidden wherever a bind would show them.
    pub hide: Option<Vec<Spanned<String>>>,
    /// Host paths made read-only wherever a writable bind would show them.
    pub read_only: Option<Vec<Spanned<String>>>,
    /// Paths relative to the top of every writable bind, made read-only
    /// where they exist (a repository's `.git/hooks`).
    pub read_only_in_binds: Option<Vec<Spanned<String>>>,
}

/// How the payload relates to the caller's terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Terminal {
    /// Keep it when stdin is a terminal (interactive use), else `none`.
    Auto,
    /// Same session and job control; TIOCSTI/TIOCLINUX are filtered.
    Inherit,
    /// A new session without a controlling terminal.
    None,
    /// A pseudo-terminal of its own in the sandbox's devpts, relayed by
    /// hutch, when standard input and output are terminals; else `auto`.
    Pty,
}

/// How strictly a kernel-dependent confinement is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforce {
    /// Refuse to run if the kernel cannot apply it.
    Required,
    /// Apply what the kernel supports; `--explain` says what was left out.
    BestEffort,
    /// Do not apply it.
    Off,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seccomp {
    pub enforce: Option<Spanned<Enforce>>,
    /// Use hutch's default filter (turning it off must be explicit).
    pub default: Option<Spanned<bool>>,
    /// System calls or `@groups` taken out of the filter.
    pub allow: Option<Vec<Spanned<String>>>,
    /// System calls or `@groups` added to it.
    pub deny: Option<Vec<Spanned<String>>>,
    /// What a denied call gets: `errno` (default), `log` (allowed and
    /// logged: for finding out what a program needs), `kill`.
    pub action: Option<Spanned<SeccompAction>>,
    /// The errno for `action = "errno"`: a name (`EPERM`) or a number.
    pub errno: Option<Spanned<ErrnoValue>>,
    /// Allow creating user namespaces (nested sandboxes, e.g. browsers).
    pub nested_userns: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeccompAction {
    Errno,
    Log,
    Kill,
}

/// An errno given by name or number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrnoValue(pub u32);

impl<'de> Deserialize<'de> for ErrnoValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ErrnoValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an errno name such as \"EPERM\" or a number from 1 to 4095")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ErrnoValue, E> {
                if (1..4096).contains(&v) {
                    Ok(ErrnoValue(v as u32))
                } else {
                    Err(E::invalid_value(de::Unexpected::Signed(v), &self))
                }
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ErrnoValue, E> {
                crate::bpf::ERRNOS
                    .iter()
                    .find(|(n, _)| *n == s)
                    .map(|(_, v)| ErrnoValue(*v))
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Landlock {
    /// Filesystem access rules.
    pub fs: Option<Spanned<Enforce>>,
    /// Derive rules from the [[mount]] entries (read-only binds: read and
    /// execute; writable binds and tmpfs: read and write).
    pub from_mounts: Option<Spanned<bool>>,
    /// Extra paths (inside the sandbox) allowed read and execute.
    pub read: Option<Vec<Spanned<String>>>,
    /// Extra paths (inside the sandbox) allowed read and write.
    pub write: Option<Vec<Spanned<String>>>,
    /// TCP port rules (kernel ABI 4+); apply when a port list is given.
    pub net: Option<Spanned<Enforce>>,
    /// TCP ports the payload may bind; an empty list forbids binding.
    pub tcp_bind: Option<Spanned<Vec<u16>>>,
    /// TCP ports the payload may connect to; an empty list forbids connecting.
    pub tcp_connect: Option<Spanned<Vec<u16>>>,
    /// Scoping of abstract unix sockets and signals to the sandbox (ABI 6+).
    pub scope: Option<Spanned<Enforce>>,
}

/// Resource limits; each sets both the soft and the hard limit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rlimits {
    pub nofile: Option<Spanned<Limit>>,
    pub nproc: Option<Spanned<Limit>>,
    #[serde(rename = "as")]
    pub address_space: Option<Spanned<Limit>>,
    pub core: Option<Spanned<Limit>>,
    /// CPU seconds.
    pub cpu: Option<Spanned<Limit>>,
    pub fsize: Option<Spanned<Limit>>,
    pub stack: Option<Spanned<Limit>>,
    pub memlock: Option<Spanned<Limit>>,
}

/// `[limits]`: cgroup limits on everything in the sandbox together.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// `required` (default): refuse to run if no cgroup backend can apply
    /// every limit; `best-effort`: apply what can be; `off`: none.
    pub enforce: Option<Spanned<Enforce>>,
    /// Memory (memory.max): a size.
    pub memory: Option<Spanned<Limit>>,
    /// Swap (memory.swap.max): a size; 0 forbids swapping.
    pub swap: Option<Spanned<Limit>>,
    /// CPU time as a number of CPUs: 0.5 is half of one CPU, 2 two CPUs.
    pub cpu: Option<Spanned<Cpus>>,
    /// Relative CPU weight (cpu.weight), 1 to 10000; 100 is the default.
    pub cpu_weight: Option<Spanned<i64>>,
    /// Processes and threads (pids.max).
    pub pids: Option<Spanned<Limit>>,
    /// Relative I/O weight (io.weight), 1 to 10000; 100 is the default.
    pub io_weight: Option<Spanned<i64>>,
}

/// `[network]`: none, the host's, or a private network connected to the
/// outside by a user-mode network program (pasta or slirp4netns).
/// Lists are concatenated over the layers; single values come from the
/// last layer that sets them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub mode: Option<Spanned<NetworkMode>>,
    /// Whether `user` mode is required or may fall back to `none`.
    pub enforce: Option<Spanned<NetworkEnforce>>,
    /// Which program connects a `user`-mode sandbox.
    pub backend: Option<Spanned<NetworkBackend>>,
    /// A generated /etc/resolv.conf pointing at the backend's DNS forwarder.
    pub dns: Option<Spanned<bool>>,
    /// The host's whole loopback, through the gateway address.
    pub host_loopback: Option<Spanned<bool>>,
    /// Host loopback ports the sandbox reaches on its own loopback.
    pub host_ports: Option<Vec<Spanned<HostPort>>>,
    /// Host ports forwarded into the sandbox: `[ADDR:]HOST:SANDBOX[/PROTO]`.
    pub publish: Option<Vec<Spanned<String>>>,
    /// The egress filter (nftables rules in the sandbox's namespace).
    pub filter: Option<Spanned<EgressFilter>>,
    /// Destinations allowed: `CIDR[:PORTS][/PROTO]`.
    pub allow: Option<Vec<Spanned<String>>>,
    /// Destinations refused, before anything is allowed.
    pub deny: Option<Vec<Spanned<String>>>,
}

/// How a sandbox reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// Loopback only (a network namespace of its own).
    None,
    /// The host's network namespace, shared.
    Host,
    /// A network namespace of its own, connected by pasta or slirp4netns.
    User,
}

/// Whether `user` mode may fall back to `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkEnforce {
    Required,
    BestEffort,
}

/// The program that connects a `user`-mode sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkBackend {
    /// pasta if installed, else slirp4netns when it can honour the profile.
    Auto,
    Pasta,
    Slirp4netns,
}

/// Whether egress rules are installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EgressFilter {
    /// Refuse to run if the kernel cannot install them.
    Required,
    /// No rules: every address the backend reaches is reachable.
    Off,
}

/// A host port the sandbox may reach: a number (TCP) or `"PORT/udp"`,
/// `"PORT/tcp"`; checked by the planner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPort {
    Number(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HostPort;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number or a string \"PORT/tcp\" or \"PORT/udp\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HostPort, E> {
                Ok(HostPort::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HostPort, E> {
                Ok(HostPort::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<HostPort, E> {
                Ok(HostPort::Text(s.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A number of CPUs, written as a float or an integer (`0.25`, `2`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpus(pub f64);

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Cpus;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of CPUs such as 0.5 or 2")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cpus, E> {
                Ok(Cpus(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cpus, E> {
                Ok(Cpus(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cpus, E> {
                Ok(Cpus(v as f64))
            }
        }
        d.deserialize_any(V)
    }
}

/// A limit: a number, a size (`"4G"`), or `"unlimited"` (`None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<u64>);

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Limit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, a size such as \"64M\", or \"unlimited\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Limit, E> {
                u64::try_from(v)
                    .map(|v| Limit(Some(v)))
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Limit, E> {
                Ok(Limit(Some(v)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Limit, E> {
                if s == "unlimited" {
                    return Ok(Limit(None));
                }
                Size::parse(s)
                    .map(|v| Limit(Some(v)))
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// Who the payload is inside the user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Identity {
    /// The caller's own uid and gid, mapped to themselves.
    #[serde(rename = "self")]
    SelfIds,
    /// uid and gid 0 inside, mapped to the caller outside.
    Root,
    /// These ids inside (`"UID"` or `"UID:GID"`; the gid defaults to the
    /// uid), mapped to the caller outside.
    Ids { uid: u32, gid: Option<u32> },
}

impl Identity {
    /// Parses `self`, `root`, `UID` or `UID:GID`.
    pub fn parse(s: &str) -> Option<Identity> {
        let id = |t: &str| {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse::<u32>().ok())
                .flatten()
        };
        match s {
            "self" => Some(Identity::SelfIds),
            "root" => Some(Identity::Root),
            _ => match s.split_once(':') {
                Some((u, g)) => Some(Identity::Ids {
                    uid: id(u)?,
                    gid: Some(id(g)?),
                }),
                None => Some(Identity::Ids {
                    uid: id(s)?,
                    gid: None,
                }),
            },
        }
    }
}

const IDENTITY_VALUES: &[&str] = &["self", "root", "UID", "UID:GID"];

impl<'de> Deserialize<'de> for Identity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Identity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"self\", \"root\", or numeric ids \"UID\" or \"UID:GID\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Identity, E> {
                u32::try_from(v)
                    .map(|uid| Identity::Ids { uid, gid: None })
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Identity, E> {
                Identity::parse(s).ok_or_else(|| E::unknown_variant(s, IDENTITY_VALUES))
            }
        }
        d.deserialize_any(V)
    }
}

/// The writable layer over a `root` directory or an `image`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Writable {
    /// `false`: the root stays read-only.
    ReadOnly,
    /// `"tmpfs"`: changes are kept in memory and vanish at exit.
    Tmpfs,
    /// An absolute host path (variables allowed): changes are kept in that
    /// directory and persist.
    Dir(String),
    /// `"volume:NAME"`: changes are kept in the named volume and persist.
    Volume(String),
}

const WRITABLE_VALUES: &[&str] = &["false", "tmpfs", "volume:NAME", "/ABSOLUTE/PATH"];

impl<'de> Deserialize<'de> for Writable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Writable;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "false, \"tmpfs\", \"volume:NAME\", or the absolute path of a directory to keep the changes in",
                )
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Writable, E> {
                if v {
                    // `true` does not say where the changes go.
                    Err(E::invalid_value(de::Unexpected::Bool(v), &self))
                } else {
                    Ok(Writable::ReadOnly)
                }
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Writable, E> {
                if s == "tmpfs" {
                    Ok(Writable::Tmpfs)
                } else if let Some(name) = s.strip_prefix("volume:") {
                    Ok(Writable::Volume(name.to_string()))
                } else if s.starts_with('/') || s.starts_with('~') || s.starts_with("${") {
                    Ok(Writable::Dir(s.to_string()))
                } else {
                    Err(E::unknown_variant(s, WRITABLE_VALUES))
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    pub user: Option<Spanned<bool>>,
    pub mount: Option<Spanned<bool>>,
    pub pid: Option<Spanned<bool>>,
    pub uts: Option<Spanned<bool>>,
    pub ipc: Option<Spanned<bool>>,
    pub net: Option<Spanned<bool>>,
    pub cgroup: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Env {
    /// Start from an empty environment (default) or from the caller's.
    pub clear: Option<Spanned<bool>>,
    /// Variables passed through from the caller: names, `PREFIX*` patterns,
    /// or `!NAME` to drop a name kept by a lower layer or by default.
    pub keep: Option<Vec<Spanned<String>>>,
    /// Variables set explicitly (values may use `${VAR}` expansions).
    pub set: Option<BTreeMap<String, Spanned<String>>>,
}

/// One `[[mount]]` entry. Which keys are meaningful depends on `type`; the
/// planner rejects keys that do not apply, pointing at them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountEntry {
    #[serde(rename = "type")]
    pub kind: Spanned<MountKind>,
    pub src: Option<Spanned<String>>,
    pub dst: Spanned<String>,
    pub optional: Option<Spanned<bool>>,
    pub mode: Option<Spanned<Mode>>,
    pub size: Option<Spanned<Size>>,
    pub target: Option<Spanned<String>>,
    pub content: Option<Spanned<String>>,
    pub keep_symlink: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountKind {
    /// Bind a host path, read-only, recursively (submounts included).
    RoBind,
    /// Bind a host path, writable.
    Bind,
    /// Bind a host path with device nodes usable (writable).
    DevBind,
    Tmpfs,
    Proc,
    /// A minimal /dev: null zero full random urandom tty, devpts, shm.
    Dev,
    Dir,
    Symlink,
    /// A file with inline content.
    File,
}

impl MountKind {
    pub fn name(self) -> &'static str {
        match self {
            MountKind::RoBind => "ro-bind",
            MountKind::Bind => "bind",
            MountKind::DevBind => "dev-bind",
            MountKind::Tmpfs => "tmpfs",
            MountKind::Proc => "proc",
            MountKind::Dev => "dev",
            MountKind::Dir => "dir",
            MountKind::Symlink => "symlink",
            MountKind::File => "file",
        }
    }

    pub fn is_bind(self) -> bool {
        matches!(
            self,
            MountKind::RoBind | MountKind::Bind | MountKind::DevBind
        )
    }

    /// The optional keys this kind accepts besides `type`, `dst`, `optional`.
    pub fn allowed_keys(self) -> &'static [&'static str] {
        match self {
            MountKind::RoBind | MountKind::Bind | MountKind::DevBind => &["src", "keep_symlink"],
            MountKind::Tmpfs => &["size", "mode"],
            MountKind::Proc | MountKind::Dev => &[],
            MountKind::Dir => &["mode"],
            MountKind::Symlink => &["target"],
            MountKind::File => &["content", "mode"],
        }
    }
}

/// File mode bits, written as an octal string (`"0755"`, `"1777"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an octal mode string such as \"0755\" or \"1777\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Mode, E> {
                let digits = s.strip_prefix("0o").unwrap_or(s);
                if digits.is_empty() || digits.len() > 5 {
                    return Err(E::invalid_value(de::Unexpected::Str(s), &self));
                }
                match u32::from_str_radix(digits, 8) {
                    Ok(m) if m <= 0o7777 => Ok(Mode(m)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes: an integer, or a string with a binary suffix (`"64M"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl Size {
    pub fn parse(s: &str) -> Option<u64> {
        let s = s.trim();
        let (num, mult) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            None => (s, 1u64),
            Some((i, _)) => {
                let mult = match s[i..].trim().to_ascii_lowercase().as_str() {
                    "k" | "kb" | "kib" => 1 << 10,
                    "m" | "mb" | "mib" => 1 << 20,
                    "g" | "gb" | "gib" => 1 << 30,
                    "t" | "tb" | "tib" => 1 << 40,
                    "b" => 1,
                    _ => return None,
                };
                (&s[..i], mult)
            }
        };
        num.parse::<u64>().ok()?.checked_mul(mult)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as \"64M\", \"1G\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                Size::parse(s)
                    .map(Size)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(s), &self))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(Size::parse("64M"), Some(64 << 20));
        assert_eq!(Size::parse("1g"), Some(1 << 30));
        assert_eq!(Size::parse("512"), Some(512));
        assert_eq!(Size::parse("12X"), None);
        assert_eq!(Size::parse("M"), None);
        assert_eq!(Size::parse("99999999999T"), None);
    }

    #[test]
    fn modes_are_octal_strings() {
        let p: RawProfile =
            toml::from_str("[[mount]]\ntype = \"dir\"\ndst = \"/x\"\nmode = \"1777\"\n").unwrap();
        assert_eq!(*p.mount[0].mode.as_ref().unwrap().get_ref(), Mode(0o1777));
        let e =
            toml::from_str::<RawProfile>("[[mount]]\ntype = \"dir\"\ndst = \"/x\"\nmode = 755\n")
                .unwrap_err();
        assert!(e.message().contains("octal mode string"), "{}", e.message());
        let e = toml::from_str::<RawProfile>(
            "[[mount]]\ntype = \"dir\"\ndst = \"/x\"\nmode = \"0999\"\n",
        )
        .unwrap_err();
        assert!(e.message().contains("octal mode string"), "{}", e.message());
    }
}
