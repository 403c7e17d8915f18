//! Planning `[dbus]`: the D-Bus buses an app reaches, each only through
//! xdg-dbus-proxy with a filter made of the profile's rules.
//!
//! - **No table, no bus.** `DBUS_SESSION_BUS_ADDRESS` and
//!   `DBUS_SYSTEM_BUS_ADDRESS` are owned by the desktop section: a bus the
//!   profile does not name is removed from the environment, and no socket
//!   of it is bound. A named bus with no rules still exists: the app may
//!   talk to the bus driver and to nobody else.
//! - **Flatpak's vocabulary.** `see`, `talk`, `own` (each implies the ones
//!   before it) for well-known names or prefixes ending in `.*`; `call` and
//!   `broadcast` (`NAME=RULE`, RULE `[METHOD][@PATH]`) narrow what may be
//!   called on or heard from a name the app cannot otherwise talk to. They
//!   become the proxy's `--see`, `--talk`, ... arguments verbatim, so every
//!   value is checked here against the proxy's grammar (no `-`-leading or
//!   unique names, no separators the argument file would split on).
//! - **One proxy.** The launcher starts one xdg-dbus-proxy for every bus
//!   (`helpers::desktop`), listening on sockets in the launch directory,
//!   bound at `$XDG_RUNTIME_DIR/bus` (session) and
//!   `/run/dbus/system_bus_socket` (system) inside.
//! - **Abstract sockets.** A session bus is often an abstract socket
//!   (`unix:abstract=` or dbus-daemon's `unix:tmpdir=`): an app in the
//!   host's network namespace could connect to it directly, around the
//!   proxy. A bus grant in the host's network namespace therefore needs
//!   Landlock's scoping of abstract sockets, like a display.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::host_sockets::{bind, find_program, hutch_state, socket_at};
use super::mounts::PlannedMount;
use std::ops::Range;
use std::sync::Arc;

use crate::diag::{Diagnostic, SourceFile};
use crate::host::Host;
use crate::profile::schema::{BusPolicy, Need};
use crate::profile::{Profile, ProfileError};

/// The proxy's sockets in the launch directory (the helper's contract).
pub const SESSION_SOCKET: &str = "bus";
pub const SYSTEM_SOCKET: &str = "system-bus";
/// Where the system bus is, inside and by default on the host.
pub const SYSTEM_BUS_PATH: &str = "/run/dbus/system_bus_socket";
/// The program, looked up in the caller's `PATH`.
const PROXY: &str = "xdg-dbus-proxy";

/// xdg-desktop-portal's bus name and object.
pub const PORTAL_NAME: &str = "org.freedesktop.portal.Desktop";
pub const PORTAL_PATH: &str = "/org/freedesktop/portal/desktop";

/// The interfaces of `org.freedesktop.portal.Desktop` at
/// [`PORTAL_PATH`] a profile may grant (xdg-desktop-portal 1.16's, and
/// Clipboard, InputCapture and Usb of later releases), and what each gives
/// the app. The document portal (`org.freedesktop.portal.Documents`) is a
/// bus name of its own and not among them: it serves files to Flatpak
/// apps, and a host app (which a hutch app is to the portal) gets host
/// paths instead. `Device` is left out: it lets its caller ask for
/// devices on behalf of another process.
pub const PORTALS: &[(&str, &str)] = &[
    (
        "Account",
        "the user's name, real name and picture, after a dialog",
    ),
    (
        "Background",
        "running in the background and autostart, as the portal's policy allows a host app (it does not ask)",
    ),
    (
        "Camera",
        "a PipeWire remote for the cameras, after a dialog",
    ),
    ("Clipboard", "the clipboard during a remote-desktop session"),
    (
        "DynamicLauncher",
        "installing .desktop launchers, after a dialog",
    ),
    (
        "Email",
        "a composer window of the mail client, with attachments",
    ),
    (
        "FileChooser",
        "host paths the user picks in a dialog (not bound into the sandbox: only readable there if already visible)",
    ),
    (
        "GameMode",
        "GameMode's scheduling boost for its own processes",
    ),
    (
        "GlobalShortcuts",
        "key bindings that work when it is not focused, after a dialog",
    ),
    (
        "Inhibit",
        "blocking logout, suspend or idle, and the session's state",
    ),
    (
        "InputCapture",
        "capturing input at screen edges, after a dialog",
    ),
    (
        "Location",
        "the location (GeoClue), as the portal's policy allows a host app",
    ),
    ("MemoryMonitor", "low-memory warnings"),
    (
        "NetworkMonitor",
        "whether and how the host is online, and whether a host name is reachable",
    ),
    ("Notification", "desktop notifications"),
    (
        "OpenURI",
        "opening URIs and host files in the user's other applications (a browser outside the sandbox)",
    ),
    ("PowerProfileMonitor", "whether power saving is on"),
    ("Print", "printing through the host's print dialog"),
    (
        "ProxyResolver",
        "the proxy for a URI, from the host's settings",
    ),
    (
        "Realtime",
        "real-time or higher priority for its threads (RealtimeKit)",
    ),
    (
        "RemoteDesktop",
        "input injection into the whole session, after a dialog",
    ),
    (
        "ScreenCast",
        "screen and window capture streams, after a dialog",
    ),
    (
        "Screenshot",
        "screenshots of the whole screen, after a dialog (or none, as the portal's policy allows a host app)",
    ),
    (
        "Secret",
        "a key for its own secrets, from the host's keyring",
    ),
    (
        "Settings",
        "the desktop's appearance settings (color scheme, fonts, accent)",
    ),
    (
        "Trash",
        "moving host files it can pass as descriptors to the trash",
    ),
    ("Usb", "USB devices, after a dialog"),
    (
        "Wallpaper",
        "setting the desktop background, after a dialog",
    ),
];

/// The proxy rules that let the app use `portals` (short names from
/// [`PORTALS`]) and nothing else of the portal: each interface on the
/// portal object, calls and signals; the Request and Session objects every
/// asynchronous portal call creates (closing them, hearing Response and
/// Closed); and `Properties.Get` on the portal object for the interfaces'
/// versions (the proxy cannot filter its argument, so any portal
/// interface's properties can be read).
pub fn portal_rules(portals: &[String]) -> Vec<(Policy, String)> {
    if portals.is_empty() {
        return Vec::new();
    }
    let mut rules = Vec::new();
    let mut both = |method: String, path: &str| {
        rules.push((Policy::Call, format!("{PORTAL_NAME}={method}@{path}")));
        rules.push((Policy::Broadcast, format!("{PORTAL_NAME}={method}@{path}")));
    };
    for p in portals {
        both(format!("org.freedesktop.portal.{p}.*"), PORTAL_PATH);
    }
    both(
        "org.freedesktop.portal.Request.*".into(),
        &format!("{PORTAL_PATH}/request/*"),
    );
    both(
        "org.freedesktop.portal.Session.*".into(),
        &format!("{PORTAL_PATH}/session/*"),
    );
    rules.push((
        Policy::Call,
        format!("{PORTAL_NAME}=org.freedesktop.DBus.Properties.Get@{PORTAL_PATH}"),
    ));
    rules
}

/// Which bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bus {
    Session,
    System,
}

impl Bus {
    pub fn name(self) -> &'static str {
        match self {
            Bus::Session => "session",
            Bus::System => "system",
        }
    }
}

/// A policy keyword, as the proxy's option names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    See,
    Talk,
    Own,
    Call,
    Broadcast,
}

impl Policy {
    const ALL: [Policy; 5] = [
        Policy::See,
        Policy::Talk,
        Policy::Own,
        Policy::Call,
        Policy::Broadcast,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Policy::See => "see",
            Policy::Talk => "talk",
            Policy::Own => "own",
            Policy::Call => "call",
            Policy::Broadcast => "broadcast",
        }
    }

    fn values(self, p: &BusPolicy) -> Option<&Vec<toml::Spanned<String>>> {
        match self {
            Policy::See => p.see.as_ref(),
            Policy::Talk => p.talk.as_ref(),
            Policy::Own => p.own.as_ref(),
            Policy::Call => p.call.as_ref(),
            Policy::Broadcast => p.broadcast.as_ref(),
        }
    }
}

/// What `[dbus]` gives the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbusPlan {
    /// xdg-dbus-proxy on the host.
    pub proxy: PathBuf,
    /// Where it listens: `<hutch's runtime dir>-dbus/<pid>`, outside
    /// hutch's runtime directory, which no profile may bind (the proxy
    /// runs in a hutch sandbox of its own, whose profile binds this).
    pub dir: PathBuf,
    pub buses: Vec<BusPlan>,
    /// A dbus-daemon for the probe of the proxy's fixes
    /// (`helpers::dbus_probe`), when one is installed.
    pub probe_daemon: Option<PathBuf>,
    /// Where the probe's result is kept, per proxy binary.
    pub probe_cache: PathBuf,
    /// Whether a proxy with a known hole (or one that cannot be probed)
    /// stops the launch (`[desktop] enforce`).
    pub need: Need,
    /// The systemd user unit the proxy is placed in, so that portals know
    /// the app by its id; `None` without portals or without a systemd
    /// user manager.
    pub portal_scope: Option<PortalScope>,
    /// Who xdg-desktop-portal takes the app for, when portals are granted
    /// ([`portal_identity`], [`scope_identity`]).
    pub portal_identity: Option<String>,
}

/// An app scope of the user's systemd manager for the proxy:
/// `app-hutch-<APP ID>-<launcher pid>.scope`, the form xdg-desktop-portal
/// reads a host app's id from (systemd.io/DESKTOP_ENVIRONMENTS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalScope {
    pub app_id: String,
    pub unit: String,
    /// The user manager's bus (`StartTransientUnit`), when there is one.
    pub manager_bus: Option<String>,
    /// The unit's cgroup below the user manager's `app.slice`, made by
    /// hutch itself where the manager cannot be asked but the user's
    /// cgroup tree is delegated to the user (writable).
    pub delegated_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusPlan {
    pub bus: Bus,
    /// The bus's address on the host, as the proxy connects to it.
    pub address: String,
    /// Its socket, when the address is a path (`unix:path=`): bound into
    /// the proxy's sandbox. Otherwise (an abstract socket, TCP) the proxy's
    /// sandbox shares the host's network namespace to reach it.
    pub host_socket: Option<PathBuf>,
    /// Where the proxy listens (in the launch directory).
    pub socket: PathBuf,
    /// Where the app finds it.
    pub inside: PathBuf,
    /// The rules, in the order the layers give them.
    pub rules: Vec<(Policy, String)>,
    /// Portal interfaces granted (session bus only), each becoming the
    /// rules of [`portal_rules`] after `rules`.
    pub portals: Vec<String>,
}

impl DbusPlan {
    /// The proxy's arguments after its own options: `ADDRESS PATH
    /// --filter RULES...` for each bus.
    pub fn proxy_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for b in &self.buses {
            args.push(b.address.clone());
            args.push(b.socket.display().to_string());
            args.push("--filter".into());
            args.extend(
                b.rules
                    .iter()
                    .chain(&portal_rules(&b.portals))
                    .map(|(p, v)| format!("--{}={v}", p.name())),
            );
        }
        args
    }
}

/// Whether the profile names a bus (and so needs the desktop's runtime
/// directory).
pub fn wanted(profile: &Profile) -> bool {
    profile.layers.iter().any(|l| l.raw.dbus.is_some())
}

/// What `[desktop]` tells `[dbus]`: `need` (a missing bus is skipped with
/// best-effort), whether the app shares the host's network namespace and
/// Landlock keeps abstract sockets out (`shared_net && !scoped`: the
/// host's abstract sockets are open to the app), and the private runtime
/// directory inside, where the session bus goes.
pub struct Session<'a> {
    pub need: Need,
    pub shared_net: bool,
    pub scoped: bool,
    pub runtime_dir: &'a Path,
    /// The app id (`[desktop] app_id`), which portals are to know the
    /// app by.
    pub app_id: &'a str,
}

/// Plans `[dbus]`: a bind and a variable for each bus, and the proxy that
/// serves them (`None`: no bus is planned).
pub fn plan(
    profile: &Profile,
    host: &Host,
    session: &Session<'_>,
    skipped: &mut Vec<String>,
    sockets: &mut Vec<PlannedMount>,
    env: &mut Vec<(String, String)>,
) -> Result<Option<DbusPlan>, ProfileError> {
    let Session {
        need,
        shared_net,
        scoped,
        runtime_dir,
        app_id,
    } = *session;
    let mut buses = Vec::new();
    // Where the first bus is named, for an error about the proxy.
    let mut at = None;
    for bus in [Bus::Session, Bus::System] {
        let Some(Named {
            file,
            span,
            rules,
            portals,
        }) = rules(profile, bus)?
        else {
            continue;
        };
        let (line, col) = file.line_col(span.start);
        let from = format!("{}:{line}:{col}", file.name);
        if shared_net && !scoped {
            return Err(Diagnostic::new(format!(
                "[dbus.{}]: a D-Bus bus for an app that shares the host's network namespace needs Landlock's scoping of abstract unix sockets (Landlock ABI 6, Linux 6.12+), which this kernel lacks: without it the app can connect to an abstract-socket bus directly, around the proxy", bus.name()
            ))
            .at(file, span)
            .help("remove `[namespaces] net = false` (the sandbox's own network namespace has none of the host's abstract sockets), or use a kernel with Landlock ABI 6 and keep `[landlock] scope` on")
            .into());
        }
        let (address, host_socket) = match host_address(host, bus) {
            Ok(a) => a,
            Err(why) => {
                missing_bus((file, span.clone()), bus, need, why, skipped)?;
                continue;
            }
        };
        let (socket_name, inside) = match bus {
            Bus::Session => (SESSION_SOCKET, runtime_dir.join("bus")),
            Bus::System => (SYSTEM_SOCKET, PathBuf::from(SYSTEM_BUS_PATH)),
        };
        let socket = proxy_dir(host)?.join(socket_name);
        sockets.push(bind(socket.clone(), inside.clone(), &from));
        let var = match bus {
            Bus::Session => "DBUS_SESSION_BUS_ADDRESS",
            Bus::System => "DBUS_SYSTEM_BUS_ADDRESS",
        };
        env.push((var.into(), format!("unix:path={}", inside.display())));
        buses.push(BusPlan {
            bus,
            address,
            host_socket,
            socket,
            inside,
            rules,
            portals,
        });
        at.get_or_insert((file, span));
    }
    let Some((file, span)) = at else {
        return Ok(None);
    };
    let proxy = find_program(host, PROXY).ok_or_else(|| {
        Diagnostic::new(format!(
            "[dbus] needs {PROXY}, which is not in PATH ({})",
            host.env("PATH").unwrap_or_default()
        ))
        .at(file, span)
        .help("install it (Debian and Ubuntu: `apt install xdg-dbus-proxy`), or remove the [dbus] tables")
    })?;
    let portals = buses.iter().any(|b| !b.portals.is_empty());
    let portal_scope = portals.then(|| portal_scope(host, app_id)).flatten();
    let portal_identity = portals.then(|| match &portal_scope {
        Some(scope) => scope_identity(scope),
        None => {
            let v2 = host.cgroups().v2.as_ref();
            portal_identity(v2.map(|v| v.own.as_str()), host.uid)
        }
    });
    let dir = proxy_dir(host)?;
    let probe_cache = dir.with_file_name(PROBE_CACHE);
    Ok(Some(DbusPlan {
        proxy,
        dir,
        buses,
        probe_daemon: find_program(host, "dbus-daemon"),
        probe_cache,
        need,
        portal_scope,
        portal_identity,
    }))
}

/// The probe's cache, beside the launchers' proxy directories.
const PROBE_CACHE: &str = "proxy-probe";

/// `<hutch's runtime dir>-dbus/<launcher pid>`.
fn proxy_dir(host: &Host) -> Result<PathBuf, ProfileError> {
    let mut dir = hutch_state(host)?.into_os_string();
    dir.push("-dbus");
    Ok(PathBuf::from(dir).join(host.launcher_pid().to_string()))
}

/// A missing bus: an error, or with best-effort a note.
fn missing_bus(
    (file, span): (&Arc<SourceFile>, Range<usize>),
    bus: Bus,
    need: Need,
    why: String,
    skipped: &mut Vec<String>,
) -> Result<(), ProfileError> {
    match need {
        Need::Required => Err(Diagnostic::new(format!("[dbus.{}]: {why}", bus.name()))
            .at(file, span)
            .help("run hutch in your session (or set the bus's address variable); or set `[desktop] enforce = \"best-effort\"` to run without it")
            .into()),
        Need::BestEffort => {
            skipped.push(why);
            Ok(())
        }
    }
}

/// A bus the profile names: where its last table is, and the rules of all.
struct Named<'a> {
    file: &'a Arc<SourceFile>,
    span: Range<usize>,
    rules: Vec<(Policy, String)>,
    portals: Vec<String>,
}

/// The rules of `bus` from every layer, in order, each checked; `None`
/// when no layer names the bus.
fn rules(profile: &Profile, bus: Bus) -> Result<Option<Named<'_>>, ProfileError> {
    let mut named = None;
    let mut rules: Vec<(Policy, String)> = Vec::new();
    let mut portals: Vec<String> = Vec::new();
    for layer in &profile.layers {
        let Some(dbus) = layer.raw.dbus.as_ref() else {
            continue;
        };
        if bus == Bus::Session {
            for value in dbus.portals.iter().flatten() {
                let name = value.get_ref();
                if !PORTALS.iter().any(|(p, _)| p == name) {
                    let all: Vec<&str> = PORTALS.iter().map(|(p, _)| *p).collect();
                    return Err(Diagnostic::new(format!(
                        "key `dbus.portals`: {name:?} is not a portal interface hutch knows; allowed: {}",
                        all.join(", ")
                    ))
                    .at(&layer.file, value.span())
                    .help("write the interface's last part as xdg-desktop-portal names it (\"FileChooser\" for org.freedesktop.portal.FileChooser)")
                    .into());
                }
                if !portals.contains(name) {
                    portals.push(name.clone());
                }
                // Portals alone name the session bus.
                if named.is_none() {
                    named = Some((&layer.file, value.span()));
                }
            }
        }
        let table = match bus {
            Bus::Session => dbus.session.as_ref(),
            Bus::System => dbus.system.as_ref(),
        };
        let Some(table) = table else { continue };
        named = Some((&layer.file, table.span()));
        let table = table.get_ref();
        for policy in Policy::ALL {
            for value in policy.values(table).into_iter().flatten() {
                check_rule(policy, value.get_ref()).map_err(|(what, help)| {
                    Diagnostic::new(format!(
                        "key `dbus.{}.{}`: {:?} {what}",
                        bus.name(),
                        policy.name(),
                        value.get_ref()
                    ))
                    .at(&layer.file, value.span())
                    .help(help)
                })?;
                let rule = (policy, value.get_ref().clone());
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
    }
    Ok(named.map(|(file, span)| Named {
        file,
        span,
        rules,
        portals,
    }))
}

/// Checks one value against the proxy's grammar; else (what is wrong, help).
fn check_rule(policy: Policy, value: &str) -> Result<(), (&'static str, &'static str)> {
    const NAME_HELP: &str = "write a well-known name such as \"org.freedesktop.Notifications\", or a prefix ending in `.*` (\"org.mpris.MediaPlayer2.*\"); unique names (`:1.42`) change every session and are not accepted";
    const RULE_HELP: &str = "write `NAME=RULE`, RULE being `[METHOD][@PATH]`: METHOD `*`, an interface (optionally ending in `.*`) or an interface's method, PATH an object path (optionally ending in `/*`), e.g. \"org.freedesktop.Notifications=org.freedesktop.Notifications.*@/org/freedesktop/Notifications\"";
    match policy {
        Policy::See | Policy::Talk | Policy::Own => {
            if name_pattern(value) {
                Ok(())
            } else {
                Err(("is not a D-Bus name", NAME_HELP))
            }
        }
        Policy::Call | Policy::Broadcast => {
            let Some((name, rule)) = value.split_once('=') else {
                return Err(("is not `NAME=RULE`", RULE_HELP));
            };
            if !name_pattern(name) {
                return Err(("does not start with a D-Bus name", NAME_HELP));
            }
            if !call_rule(rule) {
                return Err(("has no valid RULE after `=`", RULE_HELP));
            }
            Ok(())
        }
    }
}

/// A well-known bus name, or one followed by `.*`.
fn name_pattern(s: &str) -> bool {
    let base = s.strip_suffix(".*").unwrap_or(s);
    s.len() <= 255 && base.split('.').count() >= 2 && base.split('.').all(name_element)
}

fn name_element(e: &str) -> bool {
    e.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '-')
        && e.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `[METHOD][@PATH]`, not empty.
fn call_rule(rule: &str) -> bool {
    let (method, path) = match rule.split_once('@') {
        Some((m, p)) => (m, Some(p)),
        None => (rule, None),
    };
    let method_ok = method.is_empty() || method == "*" || {
        let base = method.strip_suffix(".*").unwrap_or(method);
        base.split('.').count() >= 2
            && base.split('.').all(|e| {
                e.chars().next().is_some_and(|c| !c.is_ascii_digit())
                    && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    };
    let path_ok = path.is_none_or(|p| {
        let base = p.strip_suffix("/*").unwrap_or(p);
        p == "/"
            || p == "/*"
            || base.strip_prefix('/').is_some_and(|rest| {
                rest.split('/').all(|e| {
                    !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
            })
    });
    !method.is_empty() && method_ok && path_ok || method.is_empty() && path.is_some() && path_ok
}

/// The bus's address on the host and its socket when that is a path, or
/// why there is none. A `unix:path=` socket must exist now (the proxy
/// connects only when the app does).
fn host_address(host: &Host, bus: Bus) -> Result<(String, Option<PathBuf>), String> {
    let (var, fallback) = match bus {
        Bus::Session => ("DBUS_SESSION_BUS_ADDRESS", host.runtime_dir().join("bus")),
        Bus::System => ("DBUS_SYSTEM_BUS_ADDRESS", PathBuf::from(SYSTEM_BUS_PATH)),
    };
    let address = match host.env(var).filter(|v| !v.is_empty()) {
        Some(a) => a,
        None => {
            socket_at(host, &fallback, &format!("the {} bus", bus.name()), var).map_err(|why| {
                format!(
                    "{var} is not set and {why}, so there is no {} bus",
                    bus.name()
                )
            })?;
            return Ok((format!("unix:path={}", fallback.display()), Some(fallback)));
        }
    };
    if address.contains('\0') {
        return Err(format!("{var} contains a NUL byte"));
    }
    // The first address the proxy would try, when it is a path.
    let first = address.split(';').next().unwrap_or_default();
    let path = first
        .strip_prefix("unix:path=")
        .map(|rest| PathBuf::from(rest.split(',').next().unwrap_or_default()));
    if let Some(path) = &path {
        socket_at(host, path, &format!("the {} bus", bus.name()), var)?;
    }
    Ok((address, path))
}

/// The proxy's app scope, when the user has a systemd manager's cgroup
/// (`user@UID.service`) on a cgroup v2 hierarchy.
fn portal_scope(host: &Host, app_id: &str) -> Option<PortalScope> {
    let cgroups = host.cgroups();
    let v2 = cgroups.v2.as_ref()?;
    let manager = v2.user_manager.as_ref()?;
    let unit = format!(
        "app-hutch-{}-{}.scope",
        app_id.replace('-', "\\x2d"),
        host.launcher_pid()
    );
    let delegated_dir = crate::host::cgroups::cgroup_path(&v2.mount, &manager.path)
        .join("app.slice")
        .join(&unit);
    Some(PortalScope {
        app_id: app_id.to_string(),
        unit,
        manager_bus: cgroups
            .bus
            .as_ref()
            .filter(|b| !b.system)
            .map(|b| b.address.clone()),
        delegated_dir,
    })
}

/// Who xdg-desktop-portal takes the app for with the proxy in `scope`.
pub fn scope_identity(scope: &PortalScope) -> String {
    let id = &scope.app_id;
    let three = id.split('.').count() >= 3;
    format!(
        "portals see this app as the host app {id:?}: the proxy runs in the systemd user unit {:?}{}; host trust, as for a program outside any sandbox: the proxy's filter and what the sandbox can see are the protection",
        scope.unit,
        if three {
            format!(" (xdg-desktop-portal 1.17 and later only if {id}.desktop exists)")
        } else {
            format!(
                " (but xdg-desktop-portal 1.16, Debian 12's, reads only ids of three or more elements and sees an unnamed host app; 1.17 and later only if {id}.desktop exists; `[desktop] app_id` sets the id)"
            )
        }
    )
}

/// Who xdg-desktop-portal takes the app for. It asks about the D-Bus peer,
/// which is the proxy (in the launcher's cgroup `own`), and as hutch writes
/// no Flatpak metadata and is no snap, the peer is a host app whose id
/// comes from its systemd user unit: libsystemd's `sd_pid_get_user_unit`
/// (the first unit below `user@UID.service`, slices skipped), accepted when
/// it is `app[-LAUNCHER]-ID-RANDOM.scope` or `app[-LAUNCHER]-ID[@RANDOM].service`
/// (xdg-desktop-portal 1.14+; 1.16 only takes IDs of three or more
/// elements, and from 1.17 on `ID.desktop` must exist).
pub fn portal_identity(own: Option<&str>, uid: u32) -> String {
    const TRUST: &str = "host trust, as for a program outside any sandbox: the proxy's filter and what the sandbox can see are the protection";
    let Some(own) = own else {
        return format!(
            "portals see this app as an unnamed host app (no cgroup v2 here, so no systemd unit names it); {TRUST}"
        );
    };
    match app_unit(own, uid) {
        Some((unit, id)) => format!(
            "portals see this app as the host app {id:?}, after the systemd unit {unit:?} that hutch was started in (your terminal's or launcher's; with no systemd user manager here, hutch cannot give the proxy a unit of its own): {TRUST}, and {id:?}'s stored portal permissions apply"
        ),
        None => format!(
            "portals see this app as an unnamed host app (the D-Bus peer they check is the proxy, in hutch's cgroup {own}, which is no systemd app unit; with no systemd user manager here, hutch cannot give it a unit named after the app); {TRUST}"
        ),
    }
}

/// The systemd user unit of cgroup `path` when it names an app, and the
/// app id xdg-desktop-portal reads from it.
fn app_unit(path: &str, uid: u32) -> Option<(String, String)> {
    let mut parts = path.split('/').filter(|p| !p.is_empty()).peekable();
    while parts.peek().is_some_and(|p| p.ends_with(".slice")) {
        parts.next();
    }
    if parts.next()? != format!("user@{uid}.service") {
        return None;
    }
    while parts.peek().is_some_and(|p| p.ends_with(".slice")) {
        parts.next();
    }
    let unit = parts.next()?.to_string();
    let rest = unit.strip_prefix("app-")?;
    let id = if let Some(base) = rest.strip_suffix(".scope") {
        // `[LAUNCHER-]ID-RANDOM`: RANDOM after the last `-`, alphanumeric.
        let (id, random) = base.rsplit_once('-')?;
        if !random.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        strip_launcher(id)
    } else if let Some(base) = rest.strip_suffix(".service") {
        let base = base.split_once('@').map_or(base, |(id, _)| id);
        strip_launcher(base)
    } else {
        return None;
    };
    let id = unescape_unit(id)?;
    (!id.is_empty()).then_some((unit, id))
}

/// `LAUNCHER-ID` → `ID` when the first part is alphanumeric and something
/// follows it.
fn strip_launcher(s: &str) -> &str {
    match s.split_once('-') {
        Some((launcher, id))
            if !launcher.is_empty()
                && launcher.chars().all(|c| c.is_ascii_alphanumeric())
                && !id.is_empty() =>
        {
            id
        }
        _ => s,
    }
}

/// systemd's `\xNN` escapes in a unit name.
fn unescape_unit(s: &str) -> Option<String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = s.get(i + 2..i + 4)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `--explain`'s line for each bus.
pub fn explain(d: &DbusPlan) -> Vec<String> {
    let mut o = Vec::new();
    for b in &d.buses {
        let rules: Vec<String> = b
            .rules
            .iter()
            .map(|(p, v)| format!("{} {v}", p.name()))
            .collect();
        o.push(format!(
            "the {} bus ({}) through {} at {}: {}",
            b.bus.name(),
            b.address,
            d.proxy.display(),
            b.inside.display(),
            if rules.is_empty() && !b.portals.is_empty() {
                "no rules besides the portals".to_string()
            } else if rules.is_empty() {
                "only the bus itself (no rules)".to_string()
            } else {
                rules.join(", ")
            }
        ));
        if !b.portals.is_empty() {
            let each: Vec<String> = b
                .portals
                .iter()
                .map(|p| {
                    let what = PORTALS.iter().find(|(n, _)| n == p).map_or("", |(_, w)| w);
                    format!("{p} ({what})")
                })
                .collect();
            o.push(format!(
                "portals on {PORTAL_NAME}: {}; with their Request and Session objects and Properties.Get, nothing else of the portal",
                each.join(", ")
            ));
        }
    }
    if let Some(who) = &d.portal_identity {
        o.push(who.clone());
    }
    let refused = match d.need {
        Need::Required => "refused",
        Need::BestEffort => "used with a warning (best-effort)",
    };
    o.push(match &d.probe_daemon {
        Some(_) => format!(
            "before it starts, {} is tried on a private dbus-daemon for the holes its security fixes closed (GHSA-vjp5-hjfm-7677, GHSA-r7hp-698j-2h6c), once per installed binary (`hutch doctor` shows the result): one with a hole is {refused}",
            d.proxy.display()
        ),
        None => format!(
            "{} cannot be tried for the holes its security fixes closed (no dbus-daemon in PATH to try it on), so it is {refused}",
            d.proxy.display()
        ),
    });
    o
}

/// `-v`'s words for the buses.
pub fn summary(d: &DbusPlan) -> String {
    let buses: Vec<String> = d
        .buses
        .iter()
        .map(|b| format!("{} bus ({} rules)", b.bus.name(), b.rules.len()))
        .collect();
    format!("filtered {}", buses.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_bus_grammar() {
        for ok in ["org.example.App", "org.mpris.MediaPlayer2.*", "a-b._c.d"] {
            assert!(name_pattern(ok), "{ok}");
        }
        for bad in [
            "",
            "org",
            ":1.42",
            "org..x",
            "org.1x",
            "--talk=org.x",
            "org.x\0",
            "org.x,y",
            "*",
            "org.*.x",
        ] {
            assert!(!name_pattern(bad), "{bad:?}");
        }
    }

    #[test]
    fn call_rules_follow_the_proxys_grammar() {
        for ok in [
            "*",
            "@/org/x",
            "org.x.Iface",
            "org.x.Iface.Method@/org/x/*",
            "org.x.*@/",
            "*@/*",
        ] {
            assert!(call_rule(ok), "{ok}");
        }
        for bad in [
            "",
            "@",
            "org@/x",
            "org.x@x",
            "org.x@/a//b",
            "*@/a/",
            "org x",
            "*@//*",
            "1a.b",
        ] {
            assert!(!call_rule(bad), "{bad:?}");
        }
        assert!(check_rule(Policy::Call, "org.x.Y=org.x.Y.*@/org/x").is_ok());
        assert!(check_rule(Policy::Broadcast, "org.x.Y").is_err());
        assert!(check_rule(Policy::Call, "bad=*").is_err());
    }

    #[test]
    fn proxy_arguments_list_each_bus_with_its_filter() {
        let plan = DbusPlan {
            proxy: "/usr/bin/xdg-dbus-proxy".into(),
            dir: "/run/user/1000/hutch-dbus/7".into(),
            buses: vec![BusPlan {
                bus: Bus::Session,
                address: "unix:path=/run/user/1000/bus".into(),
                host_socket: Some("/run/user/1000/bus".into()),
                socket: "/run/user/1000/hutch-dbus/7/bus".into(),
                inside: "/run/user/1000/bus".into(),
                rules: vec![
                    (Policy::Talk, "org.example.A".into()),
                    (Policy::Call, "org.example.B=*@/b".into()),
                ],
                portals: Vec::new(),
            }],
            probe_daemon: None,
            probe_cache: "/run/user/1000/hutch-dbus/proxy-probe".into(),
            need: Need::Required,
            portal_scope: None,
            portal_identity: None,
        };
        assert_eq!(
            plan.proxy_args(),
            [
                "unix:path=/run/user/1000/bus",
                "/run/user/1000/hutch-dbus/7/bus",
                "--filter",
                "--talk=org.example.A",
                "--call=org.example.B=*@/b",
            ]
        );
    }

    #[test]
    fn portals_become_rules_on_the_portal_object_only() {
        assert!(portal_rules(&[]).is_empty());
        let rules = portal_rules(&["NetworkMonitor".into()]);
        let text: Vec<String> = rules
            .iter()
            .map(|(p, v)| format!("--{}={v}", p.name()))
            .collect();
        assert_eq!(
            text,
            [
                "--call=org.freedesktop.portal.Desktop=org.freedesktop.portal.NetworkMonitor.*@/org/freedesktop/portal/desktop",
                "--broadcast=org.freedesktop.portal.Desktop=org.freedesktop.portal.NetworkMonitor.*@/org/freedesktop/portal/desktop",
                "--call=org.freedesktop.portal.Desktop=org.freedesktop.portal.Request.*@/org/freedesktop/portal/desktop/request/*",
                "--broadcast=org.freedesktop.portal.Desktop=org.freedesktop.portal.Request.*@/org/freedesktop/portal/desktop/request/*",
                "--call=org.freedesktop.portal.Desktop=org.freedesktop.portal.Session.*@/org/freedesktop/portal/desktop/session/*",
                "--broadcast=org.freedesktop.portal.Desktop=org.freedesktop.portal.Session.*@/org/freedesktop/portal/desktop/session/*",
                "--call=org.freedesktop.portal.Desktop=org.freedesktop.DBus.Properties.Get@/org/freedesktop/portal/desktop",
            ]
        );
        // Every generated rule passes the grammar a profile's rules must.
        for (p, v) in portal_rules(
            &PORTALS
                .iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>(),
        ) {
            assert!(check_rule(p, &v).is_ok(), "{v}");
        }
    }

    #[test]
    fn the_portal_names_the_app_after_its_systemd_app_unit_only() {
        let u = "/user.slice/user-1000.slice/user@1000.service";
        for (path, id) in [
            (
                format!("{u}/app.slice/app-gnome-org.gnome.Terminal-4242.scope"),
                Some("org.gnome.Terminal"),
            ),
            (
                format!("{u}/app.slice/app-org.gnome.Evolution\\x2dalarm\\x2dnotify-2437.scope"),
                Some("org.gnome.Evolution-alarm-notify"),
            ),
            (
                format!("{u}/app.slice/app-hutch-hutch.xterm-1a2b.scope/sub"),
                Some("hutch.xterm"),
            ),
            (
                format!("{u}/app.slice/app-org.kde.konsole@12ab.service"),
                Some("org.kde.konsole"),
            ),
            (
                format!("{u}/app.slice/app-org.gnome.Terminal.slice/vte-spawn-1.scope"),
                None,
            ),
            (format!("{u}/session.slice/dbus.service"), None),
            (
                "/user.slice/user-1000.slice/session-3.scope".to_string(),
                None,
            ),
            (
                "/user.slice/user-1001.slice/user@1001.service/app.slice/app-x.y.z-1.scope"
                    .to_string(),
                None,
            ),
            ("/".to_string(), None),
        ] {
            assert_eq!(
                app_unit(&path, 1000).map(|(_, id)| id).as_deref(),
                id,
                "{path}"
            );
        }
        assert!(
            portal_identity(Some("/"), 1000)
                .starts_with("portals see this app as an unnamed host app")
        );
        assert!(
            portal_identity(None, 1000).starts_with("portals see this app as an unnamed host app")
        );
    }
}
