//! `[network]` planned: the mode (`none`, `host`, `user`), and for `user`
//! mode the program that connects the sandbox (pasta, else slirp4netns),
//! the port forwards in both directions, DNS, and the egress rules, each
//! with where it came from. `--explain` prints it ([`render`]); the launch
//! starts the program with the helper of `crate::helpers::pasta` and the
//! child installs the rules (`crate::child::netfilter`).
//!
//! `[namespaces] net` keeps working: `net = false` is `mode = "host"`,
//! `net = true` (the default) is `none`. A profile that sets both in ways
//! that disagree is an error at the later of the two.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::diag::Diagnostic;
use crate::host::Host;
use crate::profile::schema::{
    EgressFilter, HostPort, Network, NetworkBackend, NetworkEnforce, NetworkMode,
};
use crate::profile::{At, Profile, ProfileError};

/// Where pasta answers DNS inside the sandbox (`--dns-forward`): a
/// link-local address no network uses, as Podman does.
pub const PASTA_DNS: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// slirp4netns's built-in DNS forwarder (its default network 10.0.2.0/24).
pub const SLIRP4NETNS_DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);

/// The ranges a `user`-mode sandbox may not reach unless allowed: private,
/// shared (CGNAT), link-local (cloud metadata at 169.254.169.254 among
/// them) and unique-local IPv6.
pub const DENIED_BY_DEFAULT: &[(&str, &str)] = &[
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("169.254.0.0/16", "link-local, cloud metadata"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
];

/// The package to install for each program, in the words of an error.
pub const PASTA_PACKAGE: &str =
    "install pasta (the package `passt` on Debian, Ubuntu, Fedora and Arch)";
const SLIRP4NETNS_PACKAGE: &str = "install slirp4netns (the package `slirp4netns`)";

/// The network of a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkPlan {
    pub mode: Mode,
    /// Where the mode was chosen, as `file:line:col`; `None`: the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `user` mode: how the sandbox is connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserNetwork>,
    /// Best-effort `user` mode that cannot be set up here runs with `none`:
    /// why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

impl NetworkPlan {
    /// The plan of a profile without `[network]` nor `[namespaces] net`.
    pub fn is_default(&self) -> bool {
        *self == NetworkPlan::default()
    }

    /// The warning `-v` and `--explain` give for `host` mode.
    pub fn host_warning(&self) -> Option<&'static str> {
        (self.mode == Mode::Host).then_some(
            "the host's network is shared: services on the host's localhost, its abstract unix sockets (X11's @/tmp/.X11-unix/X0, D-Bus) and its resolver are reachable",
        )
    }
}

/// How the sandbox reaches the network, as planned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    None,
    Host,
    User,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Host => "host",
            Mode::User => "user",
        }
    }
}

/// The program that connects a `user`-mode sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    Pasta,
    Slirp4netns,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Pasta => "pasta",
            Backend::Slirp4netns => "slirp4netns",
        }
    }
}

/// A private network connected to the outside by `program`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserNetwork {
    pub backend: Backend,
    /// The program, as found in the caller's `PATH`.
    pub program: PathBuf,
    /// The host's whole loopback is reachable at the gateway's address.
    pub host_loopback: bool,
    /// Host loopback ports the sandbox reaches on its own loopback.
    pub host_ports: Vec<HostForward>,
    /// Host ports forwarded into the sandbox.
    pub publish: Vec<Publish>,
    /// The DNS forwarder the generated /etc/resolv.conf names; `None`:
    /// `dns = false` (an empty resolv.conf).
    pub dns: Option<IpAddr>,
    /// The egress rules, first match first; empty with `filter = "off"`.
    pub egress: Vec<EgressRule>,
}

/// A transport protocol of a forward or a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    fn parse(s: &str) -> Option<Proto> {
        match s {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// Sandbox → host: `port` on the sandbox's loopback reaches `port` on
/// the host's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostForward {
    pub proto: Proto,
    pub port: u16,
    pub from: String,
}

/// Host → sandbox: `address:host_port` on the host reaches
/// `sandbox_port` in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    pub address: IpAddr,
    pub host_port: u16,
    pub sandbox_port: u16,
    pub proto: Proto,
    pub from: String,
}

/// A network: an address and a prefix length, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr {
    pub address: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn new(address: IpAddr, prefix: u8) -> Cidr {
        Cidr { address, prefix }
    }

    fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let address: IpAddr = a.parse().ok()?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok()?,
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Cidr { address, prefix })
    }

    /// The address's bits, as a number (an IPv4 address in the low 32).
    fn value(self) -> u128 {
        match self.address {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    /// The bits beyond the prefix.
    fn host_mask(self) -> u128 {
        let width = if self.address.is_ipv4() { 32 } else { 128 };
        match width - u32::from(self.prefix) {
            0 => 0,
            128 => u128::MAX,
            free => (1u128 << free) - 1,
        }
    }

    /// Whether bits beyond the prefix are set (`10.1.2.3/8`).
    fn has_host_bits(self) -> bool {
        self.value() & self.host_mask() != 0
    }

    /// Whether `other` lies within this network (same family).
    pub fn contains(self, other: Cidr) -> bool {
        self.address.is_ipv4() == other.address.is_ipv4()
            && other.prefix >= self.prefix
            && other.value() & !self.host_mask() == self.value() & !self.host_mask()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// What a rule does with a packet it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Accept,
    /// Refused at once: ICMP unreachable, which a TCP connect reports as
    /// "connection refused".
    Reject,
}

/// What a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "match", rename_all = "kebab-case")]
pub enum Target {
    /// Everything leaving through the sandbox's own loopback.
    Loopback,
    /// Packets to `net`, on `ports` (inclusive) of `proto` (both tcp and
    /// udp when a port range is given without one), any protocol without
    /// ports.
    Destination {
        net: Cidr,
        ports: Option<(u16, u16)>,
        proto: Option<Proto>,
    },
    /// Everything (the last rule of an allow list).
    Everything,
}

/// One egress rule, in the order they are evaluated (first match wins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRule {
    pub verdict: Verdict,
    #[serde(flatten)]
    pub target: Target,
    /// Why it is there: the profile entry, or hutch's default.
    pub why: String,
}

impl EgressRule {
    fn new(verdict: Verdict, target: Target, why: impl Into<String>) -> EgressRule {
        EgressRule {
            verdict,
            target,
            why: why.into(),
        }
    }

    /// `reject 10.0.0.0/8 tcp 443-445`, in words.
    pub fn describe(&self) -> String {
        let verdict = match self.verdict {
            Verdict::Accept => "accept",
            Verdict::Reject => "reject",
        };
        let what = match self.target {
            Target::Loopback => "the sandbox's own loopback".to_string(),
            Target::Everything => "everything else".to_string(),
            Target::Destination { net, ports, proto } => {
                let mut s = net.to_string();
                if let Some((lo, hi)) = ports {
                    let p = if lo == hi {
                        lo.to_string()
                    } else {
                        format!("{lo}-{hi}")
                    };
                    let protos = proto.map_or("tcp, udp", Proto::name);
                    s.push_str(&format!(" port {p} ({protos})"));
                } else if let Some(p) = proto {
                    s.push_str(&format!(" ({})", p.name()));
                }
                s
            }
        };
        format!("{verdict} {what}")
    }
}

fn origin<T>(a: &At<'_, T>) -> String {
    let (line, col) = a.file.line_col(a.value.span().start);
    format!("{}:{line}:{col}", a.file.name)
}

fn last<'a, T>(
    profile: &'a Profile,
    f: impl Fn(&Network) -> Option<&Spanned<T>>,
) -> Option<At<'a, T>> {
    profile.last(|p| f(p.network.as_ref()?))
}

/// Every entry of a list key, over all layers in order.
fn all<'a, T>(
    profile: &'a Profile,
    f: impl Fn(&Network) -> Option<&Vec<Spanned<T>>>,
) -> Vec<At<'a, T>> {
    profile
        .layers
        .iter()
        .flat_map(|l| {
            l.raw
                .network
                .as_ref()
                .and_then(&f)
                .into_iter()
                .flatten()
                .map(move |value| At {
                    value,
                    file: &l.file,
                })
        })
        .collect()
}

/// Which layer comes later: its index in the profile.
fn layer_of<T>(profile: &Profile, a: &At<'_, T>) -> usize {
    profile
        .layers
        .iter()
        .position(|l| std::sync::Arc::ptr_eq(&l.file, a.file))
        .unwrap_or(0)
}

/// The network mode the profile asks for, from `[network] mode` and
/// `[namespaces] net`, with where it was set.
fn requested_mode(
    profile: &Profile,
    net_ns: Option<&At<'_, bool>>,
) -> Result<(NetworkMode, Option<String>), ProfileError> {
    let mode = last(profile, |n| n.mode.as_ref());
    let from_ns = net_ns.map(|a| {
        if *a.get() {
            NetworkMode::None
        } else {
            NetworkMode::Host
        }
    });
    match (&mode, net_ns, from_ns) {
        (Some(m), Some(ns), Some(ns_mode)) => {
            let agree = match m.get() {
                NetworkMode::Host => ns_mode == NetworkMode::Host,
                NetworkMode::None | NetworkMode::User => ns_mode == NetworkMode::None,
            };
            if !agree {
                let (later, other) = if layer_of(profile, ns) > layer_of(profile, m) {
                    (ns.diag(""), origin(m))
                } else {
                    (m.diag(""), origin(ns))
                };
                return Err(Diagnostic {
                    message: format!(
                        "`[network] mode = \"{}\"` and `[namespaces] net = {}` disagree",
                        mode_name(*m.get()),
                        ns.get()
                    ),
                    help: Some(format!(
                        "the other is at {other}; `net = false` means mode \"host\", `net = true` a network namespace of its own (mode \"none\" or \"user\"): keep one of the two"
                    )),
                    ..later
                }
                .into());
            }
            Ok((*m.get(), Some(origin(m))))
        }
        (Some(m), _, _) => Ok((*m.get(), Some(origin(m)))),
        (None, Some(ns), Some(ns_mode)) => Ok((ns_mode, Some(origin(ns)))),
        _ => Ok((NetworkMode::None, None)),
    }
}

fn mode_name(m: NetworkMode) -> &'static str {
    match m {
        NetworkMode::None => "none",
        NetworkMode::Host => "host",
        NetworkMode::User => "user",
    }
}

/// Keys that mean something only in `user` mode, refused elsewhere.
fn refuse_user_keys(profile: &Profile, mode: NetworkMode) -> Result<(), ProfileError> {
    let refuse = |key: &str, d: Diagnostic| -> ProfileError {
        // A flag of this run (`--publish`) is mended on the command line.
        let from_flag = d
            .file
            .as_ref()
            .is_some_and(|f| f.name == crate::profile::adhoc::SOURCE_NAME);
        let help = if from_flag {
            "add `--network user`, or leave the flag out"
        } else {
            "set `[network] mode = \"user\"` or remove the key"
        };
        Diagnostic {
            message: format!(
                "key `network.{key}` applies only to `mode = \"user\"`, and this profile's network is \"{}\"",
                mode_name(mode)
            ),
            help: Some(help.into()),
            ..d
        }
        .into()
    };
    macro_rules! single {
        ($key:ident) => {
            if let Some(a) = last(profile, |n| n.$key.as_ref()) {
                return Err(refuse(stringify!($key), a.diag("")));
            }
        };
    }
    single!(enforce);
    single!(backend);
    single!(dns);
    single!(host_loopback);
    single!(filter);
    if let Some(a) = all(profile, |n| n.host_ports.as_ref()).first() {
        return Err(refuse("host_ports", a.diag("")));
    }
    for (key, list) in [
        ("publish", all(profile, |n| n.publish.as_ref())),
        ("allow", all(profile, |n| n.allow.as_ref())),
        ("deny", all(profile, |n| n.deny.as_ref())),
    ] {
        if let Some(a) = list.first() {
            return Err(refuse(key, a.diag("")));
        }
    }
    Ok(())
}

/// Plans `[network]`. `net_ns` is `[namespaces] net` where set; `user_ns`
/// whether the sandbox has a user namespace (pasta joins it).
pub fn plan(
    profile: &Profile,
    host: &Host,
    net_ns: Option<&At<'_, bool>>,
    user_ns: bool,
) -> Result<NetworkPlan, ProfileError> {
    let (requested, from) = requested_mode(profile, net_ns)?;
    if requested != NetworkMode::User {
        refuse_user_keys(profile, requested)?;
        let mode = if requested == NetworkMode::Host {
            Mode::Host
        } else {
            Mode::None
        };
        return Ok(NetworkPlan {
            mode,
            from,
            user: None,
            fallback: None,
        });
    }
    let mode_at = last(profile, |n| n.mode.as_ref()).expect("user mode is set by `mode`");
    if !user_ns {
        return Err(mode_at
            .diag("`[network] mode = \"user\"` needs the user namespace, which this profile turns off")
            .help("pasta and slirp4netns join the sandbox's user namespace to configure its network; remove `namespaces.user = false`")
            .into());
    }
    let host_ports = host_forwards(profile)?;
    let publish = publishes(profile)?;
    let enforce =
        last(profile, |n| n.enforce.as_ref()).map_or(NetworkEnforce::Required, |e| *e.get());
    let choice = last(profile, |n| n.backend.as_ref());
    let (backend, program) = match select_backend(
        host,
        choice.as_ref().map_or(NetworkBackend::Auto, |c| *c.get()),
        !host_ports.is_empty() || !publish.is_empty(),
    ) {
        Ok(found) => found,
        Err(reasons) if enforce == NetworkEnforce::BestEffort => {
            return Ok(NetworkPlan {
                mode: Mode::None,
                from,
                user: None,
                fallback: Some(reasons.join("; ")),
            });
        }
        Err(reasons) => {
            let at = choice
                .as_ref()
                .map_or_else(|| mode_at.diag(""), |c| c.diag(""));
            return Err(Diagnostic {
                message: format!(
                    "`[network] mode = \"user\"` cannot be set up here: {}",
                    reasons.join("; ")
                ),
                help: Some(
                    "or set `[network] enforce = \"best-effort\"` (e.g. in a .local.toml override) to run without network when it cannot"
                        .into(),
                ),
                ..at
            }
            .into());
        }
    };
    let dns_on = last(profile, |n| n.dns.as_ref()).is_none_or(|d| *d.get());
    let dns = dns_on.then_some(IpAddr::V4(match backend {
        Backend::Pasta => PASTA_DNS,
        Backend::Slirp4netns => SLIRP4NETNS_DNS,
    }));
    let filter = last(profile, |n| n.filter.as_ref()).map_or(EgressFilter::Required, |f| *f.get());
    let egress = match filter {
        EgressFilter::Required => egress_rules(profile, host, dns)?,
        EgressFilter::Off => {
            for (key, list) in [
                ("allow", all(profile, |n| n.allow.as_ref())),
                ("deny", all(profile, |n| n.deny.as_ref())),
            ] {
                if let Some(a) = list.first() {
                    return Err(a
                        .diag(format!(
                            "key `network.{key}` needs the egress filter, which `filter = \"off\"` turns off"
                        ))
                        .help("remove the `filter` line or the rules")
                        .into());
                }
            }
            Vec::new()
        }
    };
    Ok(NetworkPlan {
        mode: Mode::User,
        from,
        user: Some(UserNetwork {
            backend,
            program,
            host_loopback: last(profile, |n| n.host_loopback.as_ref()).is_some_and(|h| *h.get()),
            host_ports,
            publish,
            dns,
            egress,
        }),
        fallback: None,
    })
}

/// The program for `user` mode: pasta, or slirp4netns where it can honour
/// the profile (it cannot forward single ports); or why neither can.
fn select_backend(
    host: &Host,
    choice: NetworkBackend,
    forwards_ports: bool,
) -> Result<(Backend, PathBuf), Vec<String>> {
    let mut reasons = Vec::new();
    if matches!(choice, NetworkBackend::Auto | NetworkBackend::Pasta) {
        match host.find_program("pasta") {
            Some(p) => return Ok((Backend::Pasta, p)),
            None => reasons.push(format!("pasta is not installed: {PASTA_PACKAGE}")),
        }
    }
    if matches!(choice, NetworkBackend::Auto | NetworkBackend::Slirp4netns) {
        match host.find_program("slirp4netns") {
            Some(_) if forwards_ports => reasons.push(
                "slirp4netns cannot forward single ports (`host_ports`, `publish`): use pasta"
                    .into(),
            ),
            Some(p) => return Ok((Backend::Slirp4netns, p)),
            None if choice == NetworkBackend::Slirp4netns => {
                reasons.push(format!(
                    "slirp4netns is not installed: {SLIRP4NETNS_PACKAGE}"
                ));
            }
            None => {}
        }
    }
    Err(reasons)
}

/// A port number from 1 to 65535, or what is wrong with `s`.
fn port(s: &str) -> Result<u16, String> {
    if s.is_empty() {
        return Err("a port is missing".into());
    }
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) && s.bytes().all(|b| b.is_ascii_digit()) => Ok(p as u16),
        Ok(_) => Err(format!("{s} is not a port (1 to 65535)")),
        Err(_) => Err(format!("`{s}` is not a port number")),
    }
}

/// `s` without a trailing `/tcp` or `/udp`, and the protocol; an error
/// for another protocol after the last `/` (when `proto_only` says a
/// `/` can only introduce one).
fn split_proto(s: &str, proto_only: bool) -> Result<(&str, Option<Proto>), String> {
    match s.rsplit_once('/') {
        Some((rest, p)) => match Proto::parse(p) {
            Some(proto) => Ok((rest, Some(proto))),
            None if proto_only || p.chars().any(|c| c.is_ascii_alphabetic()) => {
                Err(format!("protocol `{p}` is not `tcp` or `udp`"))
            }
            None => Ok((s, None)),
        },
        None => Ok((s, None)),
    }
}

/// `host_ports`: numbers (TCP) or `"PORT/tcp"`, `"PORT/udp"`.
fn host_forwards(profile: &Profile) -> Result<Vec<HostForward>, ProfileError> {
    let mut out: Vec<HostForward> = Vec::new();
    for a in all(profile, |n| n.host_ports.as_ref()) {
        let parsed = match a.get() {
            HostPort::Number(n) => u16::try_from(*n)
                .ok()
                .filter(|p| *p != 0)
                .map(|p| (Proto::Tcp, p))
                .ok_or_else(|| format!("{n} is not a port (1 to 65535)")),
            HostPort::Text(t) => split_proto(t, true)
                .and_then(|(p, proto)| Ok((proto.unwrap_or(Proto::Tcp), port(p)?))),
        };
        let (proto, p) = parsed.map_err(|why| {
            a.diag(format!("key `network.host_ports`: {why}"))
                .help("write a port number (TCP), or \"PORT/udp\", e.g. `host_ports = [5432, \"53/udp\"]`")
        })?;
        if let Some(first) = out.iter().find(|f| f.proto == proto && f.port == p) {
            return Err(a
                .diag(format!(
                    "key `network.host_ports`: {p}/{} is listed twice (first at {})",
                    proto.name(),
                    first.from
                ))
                .help("remove one of them")
                .into());
        }
        out.push(HostForward {
            proto,
            port: p,
            from: origin(&a),
        });
    }
    Ok(out)
}

/// Parses `[ADDR:]HOST:SANDBOX[/PROTO]` (ADDR an IPv4 address or `[IPv6]`).
fn parse_publish(s: &str) -> Result<(IpAddr, u16, u16, Proto), String> {
    let (rest, proto) = split_proto(s, true)?;
    let (address, ports) = if let Some(v6) = rest.strip_prefix('[') {
        let (a, ports) = v6
            .split_once("]:")
            .ok_or_else(|| "an IPv6 address is written `[ADDR]:HOST:SANDBOX`".to_string())?;
        let a: Ipv6Addr = a
            .parse()
            .map_err(|_| format!("`{a}` is not an IPv6 address"))?;
        (IpAddr::V6(a), ports)
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            3 => {
                let a: Ipv4Addr = parts[0]
                    .parse()
                    .map_err(|_| format!("`{}` is not an IPv4 address", parts[0]))?;
                (IpAddr::V4(a), &rest[parts[0].len() + 1..])
            }
            2 => (IpAddr::V4(Ipv4Addr::LOCALHOST), rest),
            _ => {
                return Err(
                    "give the host port and the sandbox port, `HOST:SANDBOX` (e.g. \"8080:80\")"
                        .into(),
                );
            }
        }
    };
    let (host_port, sandbox_port) = ports
        .split_once(':')
        .ok_or_else(|| "give the host port and the sandbox port, `HOST:SANDBOX`".to_string())?;
    let host_port = port(host_port).map_err(|e| format!("host port: {e}"))?;
    let sandbox_port = port(sandbox_port).map_err(|e| format!("sandbox port: {e}"))?;
    Ok((
        address,
        host_port,
        sandbox_port,
        proto.unwrap_or(Proto::Tcp),
    ))
}

/// `publish`: host → sandbox forwards, on the host's loopback unless an
/// address is given.
fn publishes(profile: &Profile) -> Result<Vec<Publish>, ProfileError> {
    let mut out: Vec<Publish> = Vec::new();
    for a in all(profile, |n| n.publish.as_ref()) {
        let (address, host_port, sandbox_port, proto) = parse_publish(a.get()).map_err(|why| {
            a.diag(format!("key `network.publish`: `{}`: {why}", a.get()))
                .help("write `[ADDR:]HOST:SANDBOX[/tcp|/udp]`, e.g. \"8080:80\", \"127.0.0.1:5353:53/udp\", \"[::1]:8080:80\"")
        })?;
        if let Some(first) = out
            .iter()
            .find(|p| p.address == address && p.host_port == host_port && p.proto == proto)
        {
            return Err(a
                .diag(format!(
                    "key `network.publish`: host port {address}:{host_port}/{} is published twice (first at {})",
                    proto.name(),
                    first.from
                ))
                .help("a host port can reach one sandbox port: remove one of them")
                .into());
        }
        out.push(Publish {
            address,
            host_port,
            sandbox_port,
            proto,
            from: origin(&a),
        });
    }
    Ok(out)
}

/// Parses an egress entry: `ADDR[/PREFIX][:PORTS][/PROTO]`, IPv6 in
/// brackets when ports follow (`[::]/0:443`); PORTS `N` or `N-M`.
pub fn parse_rule(s: &str) -> Result<Target, String> {
    let (rest, proto) = split_proto(s, false)?;
    let (net, ports) = if let Some(v6) = rest.strip_prefix('[') {
        let (a, after) = v6
            .split_once(']')
            .ok_or_else(|| "a `[` without its `]`".to_string())?;
        let (prefix, ports) = match after.split_once(':') {
            Some((p, ports)) => (p, Some(ports)),
            None => (after, None),
        };
        let net = match prefix.strip_prefix('/') {
            Some(p) => format!("{a}/{p}"),
            None if prefix.is_empty() => a.to_string(),
            None => return Err(format!("unexpected `{prefix}` after `]`")),
        };
        (net, ports)
    } else if rest.matches(':').count() == 1 {
        let (net, ports) = rest.split_once(':').expect("one colon");
        (net.to_string(), Some(ports))
    } else {
        (rest.to_string(), None)
    };
    let cidr = Cidr::parse(&net).ok_or_else(|| {
        format!("`{net}` is not an address or network (`10.0.0.0/8`, `2001:db8::/32`)")
    })?;
    if cidr.has_host_bits() {
        return Err(format!(
            "`{net}` has bits set beyond its prefix: write the network's first address"
        ));
    }
    let ports = match ports {
        None => None,
        Some(p) => {
            let (lo, hi) = p.split_once('-').unwrap_or((p, p));
            let (lo, hi) = (port(lo)?, port(hi)?);
            if lo > hi {
                return Err(format!("the port range {p} runs backwards"));
            }
            Some((lo, hi))
        }
    };
    Ok(Target::Destination {
        net: cidr,
        ports,
        proto,
    })
}

/// The rules of `allow` or `deny`, each with where it was written.
fn rules<'a>(list: Vec<At<'a, String>>, key: &str) -> Result<Vec<(Target, String)>, ProfileError> {
    list.into_iter()
        .map(|a| {
            parse_rule(a.get())
                .map(|t| (t, format!("{key} {}", origin(&a))))
                .map_err(|why| {
                    a.diag(format!("key `network.{key}`: `{}`: {why}", a.get()))
                        .help("write `ADDR[/PREFIX][:PORTS][/tcp|/udp]`, e.g. \"0.0.0.0/0:443\", \"[::]/0:443\", \"192.168.1.0/24\", \"10.0.0.5:53/udp\"")
                        .into()
                })
        })
        .collect()
}

/// The egress rules, first match first:
///
/// 1. the sandbox's own loopback: accepted;
/// 2. exactly the DNS forwarder, port 53: accepted;
/// 3. `deny` entries: rejected;
/// 4. `allow` entries inside a range denied by default: accepted;
/// 5. the ranges of [`DENIED_BY_DEFAULT`] and the host's own addresses:
///    rejected;
/// 6. the other `allow` entries: accepted;
/// 7. with any `allow` entry outside those ranges, everything else
///    rejected (an allow list); without, accepted.
fn egress_rules(
    profile: &Profile,
    host: &Host,
    dns: Option<IpAddr>,
) -> Result<Vec<EgressRule>, ProfileError> {
    let denies = rules(all(profile, |n| n.deny.as_ref()), "deny")?;
    let allows = rules(all(profile, |n| n.allow.as_ref()), "allow")?;
    let mut defaults: Vec<(Cidr, String)> = DENIED_BY_DEFAULT
        .iter()
        .map(|(net, why)| {
            (
                Cidr::parse(net).expect("a valid network"),
                format!("default: {why}"),
            )
        })
        .collect();
    for a in host.addresses() {
        let own = Cidr::new(a.address, if a.address.is_ipv4() { 32 } else { 128 });
        if !defaults.iter().any(|(d, _)| d.contains(own)) {
            defaults.push((
                own,
                format!("default: this host's address ({})", a.interface),
            ));
        }
    }
    let inside_default = |t: &Target| match t {
        Target::Destination { net, .. } => defaults.iter().any(|(d, _)| d.contains(*net)),
        _ => false,
    };
    let mut out = vec![EgressRule::new(
        Verdict::Accept,
        Target::Loopback,
        "default: the sandbox's own services",
    )];
    if let Some(dns) = dns {
        let net = Cidr::new(dns, if dns.is_ipv4() { 32 } else { 128 });
        out.push(EgressRule::new(
            Verdict::Accept,
            Target::Destination {
                net,
                ports: Some((53, 53)),
                proto: None,
            },
            "default: the DNS forwarder",
        ));
    }
    for (t, why) in &denies {
        out.push(EgressRule::new(Verdict::Reject, *t, why.clone()));
    }
    for (t, why) in allows.iter().filter(|(t, _)| inside_default(t)) {
        out.push(EgressRule::new(Verdict::Accept, *t, why.clone()));
    }
    for (net, why) in &defaults {
        let target = Target::Destination {
            net: *net,
            ports: None,
            proto: None,
        };
        out.push(EgressRule::new(Verdict::Reject, target, why.clone()));
    }
    for (t, why) in allows.iter().filter(|(t, _)| !inside_default(t)) {
        out.push(EgressRule::new(Verdict::Accept, *t, why.clone()));
    }
    // Opening a default-denied range (a LAN) keeps everything else
    // allowed; an entry beyond those ranges makes an allow list.
    out.push(if allows.iter().all(|(t, _)| inside_default(t)) {
        EgressRule::new(Verdict::Accept, Target::Everything, "default")
    } else {
        EgressRule::new(
            Verdict::Reject,
            Target::Everything,
            "not allowed by `allow`",
        )
    });
    Ok(out)
}

/// The network in a few words, for `-v`'s summary.
pub fn summary(plan: &NetworkPlan) -> String {
    match &plan.user {
        Some(u) if u.egress.is_empty() => {
            format!("network user ({}, no egress filter)", u.backend.name())
        }
        Some(u) => format!(
            "network user ({}, {} egress rules)",
            u.backend.name(),
            u.egress.len()
        ),
        None => format!("network {}", plan.mode.name()),
    }
}

/// What a run says on stderr about the network, `-v` or not: the
/// fallback of best-effort user mode, the dangers of host mode.
pub fn warnings(plan: &NetworkPlan) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(why) = &plan.fallback {
        out.push(format!(
            "not enforced: [network] mode = \"user\" (best-effort): {}; running with no network (loopback only)",
            crate::diag::sanitize(why)
        ));
    }
    if let Some(w) = plan.host_warning() {
        out.push(format!("warning: {w}"));
    }
    out
}

/// `[network]` in words, for `--explain`.
pub fn render(o: &mut String, plan: &NetworkPlan) {
    use std::fmt::Write;
    let from = plan
        .from
        .as_deref()
        .map(|f| format!(" (from {f})"))
        .unwrap_or_default();
    match (plan.mode, &plan.user) {
        (Mode::Host, _) => {
            let _ = writeln!(o, "network     host (shared with the caller){from}");
            if let Some(w) = plan.host_warning() {
                let _ = writeln!(o, "  warning   {w}");
            }
        }
        (Mode::User, Some(u)) => render_user(o, u, &from),
        _ => {
            let _ = writeln!(o, "network     none (loopback only){from}");
            if let Some(why) = &plan.fallback {
                let _ = writeln!(
                    o,
                    "  not enforced  user mode (best-effort): {}",
                    crate::diag::sanitize(why)
                );
            }
        }
    }
}

fn render_user(o: &mut String, u: &UserNetwork, from: &str) {
    use std::fmt::Write;
    let _ = writeln!(
        o,
        "network     user: a network namespace of its own, connected by {} ({}){from}",
        u.backend.name(),
        crate::diag::sanitize(&u.program.display().to_string())
    );
    let _ = match u.dns {
        Some(dns) => writeln!(
            o,
            "  dns       /etc/resolv.conf: nameserver {dns} ({} forwards it to the host's first resolver)",
            u.backend.name()
        ),
        None => writeln!(o, "  dns       none: /etc/resolv.conf is empty"),
    };
    let _ = writeln!(
        o,
        "  host      {}",
        if u.host_loopback {
            "the host's loopback is reachable at the gateway's address"
        } else {
            "the host's loopback is not reachable"
        }
    );
    for f in &u.host_ports {
        let _ = writeln!(
            o,
            "  to host   sandbox 127.0.0.1:{p}/{proto} → host 127.0.0.1:{p} (from {})",
            f.from,
            p = f.port,
            proto = f.proto.name()
        );
    }
    for p in &u.publish {
        let _ = writeln!(
            o,
            "  publish   host {}:{}/{} → sandbox port {} (from {})",
            p.address,
            p.host_port,
            p.proto.name(),
            p.sandbox_port,
            p.from
        );
    }
    if u.egress.is_empty() {
        let _ = writeln!(
            o,
            "  egress    no filter (`filter = \"off\"`): the LAN, link-local and metadata addresses are reachable"
        );
        return;
    }
    let _ = writeln!(
        o,
        "  egress    nftables in the sandbox's network namespace, first match wins:"
    );
    for (i, r) in u.egress.iter().enumerate() {
        let _ = writeln!(o, "    {:>2}  {:<44} {}", i + 1, r.describe(), r.why);
    }
}
