//! Planning `[desktop]`: the display server, the sound server and the app
//! id of a graphical app, as mount operations, environment variables and
//! the files and sockets the launcher makes for the launch.
//!
//! - **A private runtime directory.** `XDG_RUNTIME_DIR` inside is a fresh
//!   tmpfs at `/run/user/UID` (mode 0700); the sockets the profile grants
//!   are bound into it one by one, never the host's runtime directory.
//! - **The launch directory.** What hutch writes or creates for one launch
//!   (the private Xauthority, a copy of the PulseAudio cookie, the Wayland
//!   security-context socket; the D-Bus proxy's sockets, see `plan::dbus`)
//!   lives in `<hutch's runtime dir>/desktop/<pid>` on the host, made by
//!   `helpers::desktop` before clone and removed when the sandbox is gone;
//!   the plan names the paths, so a cookie never appears in the plan,
//!   `--explain`, a registry record or an exported bundle.
//! - **Wayland.** The compositor's socket (`$WAYLAND_DISPLAY`, a name in
//!   `$XDG_RUNTIME_DIR` or an absolute path) at `wayland-0` inside. The
//!   planner connects once and lists the compositor's globals: where it
//!   offers `wp_security_context_manager_v1`, the app gets a socket of its
//!   own that the launcher registers as a security context instead (see
//!   `crate::wayland`), and a launch whose registration fails stops.
//! - **X11 on the host display.** Only that display's socket, and a private
//!   Xauthority with its cookie under the wildcard family, which matches
//!   whatever hostname the sandbox has. libxcb 1.15 (Debian 12) connects to
//!   the abstract socket `@/tmp/.X11-unix/XN` first and gives up on any
//!   error but ENOENT/ECONNREFUSED (the path form of `DISPLAY` that skips
//!   it exists only from libxcb 1.16). In the sandbox's own network
//!   namespace no abstract socket of the host exists (ECONNREFUSED: libxcb
//!   goes on to the bound path), so the display keeps its number; with the
//!   host's network namespace, Landlock's scoping answers EPERM for the
//!   host's abstract socket, so the sandbox gets a display number for
//!   which the host has none. Without either (a shared network namespace
//!   on a kernel without Landlock ABI 6) the host's abstract sockets would
//!   be open to the app, and a display grant is refused.
//! - **Audio.** PulseAudio's `pulse/native` and PipeWire's `pipewire-0`,
//!   whichever the host has, with a copy of the PulseAudio cookie. Not a
//!   security boundary: a client of either can do what the user's session
//!   can with sound (load modules, record).
//!
//! The variables of these (`DISPLAY`, `WAYLAND_DISPLAY`, `XAUTHORITY`,
//! `PULSE_SERVER`, `DBUS_SESSION_BUS_ADDRESS`, ...) are set to the
//! sandbox's paths or removed, whatever the profile keeps of the caller's
//! environment; only an explicit `[env] set` overrides them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::host_sockets::{bind, find_program, hutch_state, socket_at};
use super::mounts::{MountOp, PlannedMount};
use crate::diag::{Diagnostic, sanitize};
use crate::host::Host;
use crate::profile::schema::{Display, Need, X11Mode};
use crate::profile::{At, Profile, ProfileError};
use crate::{wayland, xauth};

/// Names in the launch directory (part of the helper's contract).
pub const XAUTHORITY_FILE: &str = "Xauthority";
pub const PULSE_COOKIE_FILE: &str = "pulse-cookie";
pub const WAYLAND_LISTENER: &str = "wayland-0";
/// With `x11 = "nested"`: in [`NestedPlan::dir`], the directory that is
/// Xephyr's /tmp/.X11-unix and the cookie file it reads (`-auth`); in the
/// launch directory, its sandbox's profile.
pub const NESTED_SOCKET_DIR: &str = "x11";
pub const NESTED_AUTH_FILE: &str = "xephyr-auth";
pub const NESTED_PROFILE_FILE: &str = "xephyr.toml";
/// The D-Bus proxy's sandbox's profile, in the launch directory.
pub const PROXY_PROFILE_FILE: &str = "dbus-proxy.toml";

/// The sandbox engine hutch names itself to the compositor.
pub const ENGINE: &str = "hutch";
/// Every app id starts with this: a profile cannot take another
/// application's identity (KWin grants privileged protocols by app id).
pub const APP_ID_PREFIX: &str = "hutch.";

/// Variables the desktop section owns: set to the sandbox's values, or
/// removed when it provides none.
pub const OWNED_VARS: &[&str] = &[
    "DISPLAY",
    "XAUTHORITY",
    "WAYLAND_DISPLAY",
    "WAYLAND_SOCKET",
    "XDG_RUNTIME_DIR",
    "XDG_SESSION_TYPE",
    "PULSE_SERVER",
    "PULSE_COOKIE",
    "PIPEWIRE_REMOTE",
    "PIPEWIRE_RUNTIME_DIR",
    "DBUS_SESSION_BUS_ADDRESS",
    "DBUS_SYSTEM_BUS_ADDRESS",
];

/// How long the planner waits for the compositor's list of globals.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What `[desktop]` gives the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesktopPlan {
    /// `XDG_RUNTIME_DIR` inside: a private tmpfs.
    pub runtime_dir: PathBuf,
    /// The host directory the launcher makes for this launch and removes.
    pub launch_dir: PathBuf,
    /// The app id (security context; portals).
    pub app_id: String,
    /// This launch among the app's (hutch's pid).
    pub instance_id: String,
    pub wayland: Option<WaylandPlan>,
    pub x11: Option<X11Plan>,
    pub audio: Option<AudioPlan>,
    /// `[dbus]`: the buses, through xdg-dbus-proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbus: Option<super::dbus::DbusPlan>,
    /// What a best-effort section left out, and why.
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaylandPlan {
    /// The compositor's socket on the host.
    pub compositor: PathBuf,
    /// Where the launcher creates the security-context socket, when the
    /// compositor offers the protocol; `None`: the compositor's own socket
    /// is bound.
    pub security_context: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct X11Plan {
    pub mode: X11Mode,
    /// `DISPLAY` outside.
    pub host_display: String,
    /// The display's socket on the host.
    pub socket: PathBuf,
    /// The display number inside.
    pub display: u32,
    pub screen: u32,
    /// Where the cookie comes from; `None`: the app connects without one.
    pub cookie: Option<CookieSource>,
    /// Why there is no cookie, for `--explain`.
    pub no_cookie: Option<String>,
    /// With `x11 = "nested"`: the nested server (the fields above are the
    /// host display it shows its window on; `display` is its number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nested: Option<NestedPlan>,
}

impl DesktopPlan {
    /// Whether the host path `src` is one the launch makes (and removes):
    /// in the launch directory, or the nested X server's.
    pub fn made_at_launch(&self, src: &Path) -> bool {
        src.starts_with(&self.launch_dir)
            || self
                .x11
                .as_ref()
                .and_then(|x| x.nested.as_ref())
                .is_some_and(|n| src.starts_with(&n.dir))
            || self.dbus.as_ref().is_some_and(|b| src.starts_with(&b.dir))
    }
}

/// The nested X server of `x11 = "nested"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NestedPlan {
    /// Xephyr on the host.
    pub xephyr: PathBuf,
    /// What Xephyr's sandbox gets of the host (besides the display):
    /// `<hutch's runtime dir>-x11/<pid>`, outside hutch's runtime
    /// directory, which no profile may bind.
    pub dir: PathBuf,
    /// Its screen, `WIDTHxHEIGHT` (its window can be resized).
    pub size: String,
}

/// An Xauthority file and the display number to look its cookie up by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CookieSource {
    pub file: PathBuf,
    pub hostname: String,
    pub number: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioPlan {
    /// PulseAudio's socket (also pipewire-pulse's).
    pub pulse: Option<PathBuf>,
    /// The PulseAudio cookie hutch copies, when the user has one.
    pub pulse_cookie: Option<PathBuf>,
    /// PipeWire's socket.
    pub pipewire: Option<PathBuf>,
}

/// What the desktop section adds to the plan besides its mounts.
pub struct Planned {
    pub desktop: DesktopPlan,
    /// Values for [`OWNED_VARS`] (the others are removed).
    pub env: Vec<(String, String)>,
}

/// The `[desktop]` keys of the last layer that sets each.
struct Keys<'a> {
    display: Option<At<'a, Display>>,
    x11: Option<At<'a, X11Mode>>,
    audio: Option<At<'a, bool>>,
    app_id: Option<At<'a, String>>,
    need: Need,
    /// Where the section is written, for the runtime directory's origin.
    origin: String,
}

fn keys(profile: &Profile) -> Option<Keys<'_>> {
    let layer = profile
        .layers
        .iter()
        .rev()
        .find(|l| l.raw.desktop.is_some() || l.raw.dbus.is_some())?;
    let display = profile.last(|p| p.desktop.as_ref()?.display.as_ref());
    let x11 = profile.last(|p| p.desktop.as_ref()?.x11.as_ref());
    let audio = profile.last(|p| p.desktop.as_ref()?.audio.as_ref());
    let app_id = profile.last(|p| p.desktop.as_ref()?.app_id.as_ref());
    let need = profile
        .last(|p| p.desktop.as_ref()?.enforce.as_ref())
        .map_or(Need::Required, |a| *a.get());
    let origin = display
        .as_ref()
        .map(at_origin)
        .or_else(|| audio.as_ref().map(at_origin))
        .unwrap_or_else(|| {
            let table = if layer.raw.desktop.is_some() {
                "[desktop]"
            } else {
                "[dbus]"
            };
            format!("{} {table}", layer.file.name)
        });
    Some(Keys {
        display,
        x11,
        audio,
        app_id,
        need,
        origin,
    })
}

/// `file:line:col` of a value, as mount entries give theirs.
pub fn at_origin<T>(at: &At<'_, T>) -> String {
    let (line, col) = at.file.line_col(at.value.span().start);
    format!("{}:{line}:{col}", at.file.name)
}

/// Plans `[desktop]`, adding its mounts to `ops` (the profile's own): its
/// runtime directory's tmpfs, then the profile's entries inside that
/// directory (moved there so that the tmpfs does not hide them), then the
/// sockets and files. `uid_inside` names the runtime directory;
/// `shared_net` and `scoped` say whether the host's abstract sockets are in
/// the sandbox's network namespace and whether Landlock keeps them out.
pub fn plan(
    profile: &Profile,
    host: &Host,
    uid_inside: u32,
    shared_net: bool,
    scoped: bool,
    ops: &mut Vec<PlannedMount>,
) -> Result<Option<Planned>, ProfileError> {
    let Some(k) = keys(profile) else {
        return Ok(None);
    };
    let runtime_dir = PathBuf::from(format!("/run/user/{uid_inside}"));
    if let Some(m) = ops.iter().find(|m| m.op.dst() == runtime_dir) {
        let mut diag = Diagnostic::new(format!(
            "the [[mount]] entry at {} ({}) would hide the private runtime directory [desktop] makes there",
            runtime_dir.display(),
            m.from
        ));
        if let Some((file, span)) = mount_entry(profile, &m.from) {
            diag = diag.at(file, span);
        }
        return Err(diag
        .help("bind the sockets or files the app needs inside it instead (e.g. `dst = \"${XDG_RUNTIME_DIR}/NAME\"`), or remove [desktop]")
        .into());
    }
    let app_id = app_id(profile, k.app_id.as_ref())?;
    let launch_dir = hutch_state(host)?
        .join("desktop")
        .join(host.launcher_pid().to_string());
    let mut d = DesktopPlan {
        runtime_dir: runtime_dir.clone(),
        launch_dir,
        app_id,
        instance_id: host.launcher_pid().to_string(),
        wayland: None,
        x11: None,
        audio: None,
        dbus: None,
        skipped: Vec::new(),
    };
    let mut env = vec![(
        "XDG_RUNTIME_DIR".to_string(),
        runtime_dir.display().to_string(),
    )];
    let mut sockets = Vec::new();
    if let Some(display) = &k.display {
        if shared_net && !scoped {
            return Err(display
                .diag("a display for an app that shares the host's network namespace needs Landlock's scoping of abstract unix sockets (Landlock ABI 6, Linux 6.12+), which this kernel lacks: without it the app reaches the host's abstract X11 sockets and bypasses what [desktop] grants")
                .help("remove `[namespaces] net = false` (the sandbox's own network namespace has none of the host's abstract sockets), or use a kernel with Landlock ABI 6 and keep `[landlock] scope` on")
                .into());
        }
        plan_display(
            display,
            &k,
            host,
            shared_net,
            &mut d,
            &mut sockets,
            &mut env,
        )?;
    }
    if let Some(audio) = k.audio.as_ref().filter(|a| *a.get()) {
        plan_audio(audio, k.need, host, &mut d, &mut sockets, &mut env)?;
    }
    if super::dbus::wanted(profile) {
        let session = super::dbus::Session {
            need: k.need,
            shared_net,
            scoped,
            runtime_dir: &d.runtime_dir,
            app_id: &d.app_id,
        };
        d.dbus = super::dbus::plan(
            profile,
            host,
            &session,
            &mut d.skipped,
            &mut sockets,
            &mut env,
        )?;
    }
    let (inside, outside): (Vec<PlannedMount>, Vec<PlannedMount>) = ops
        .drain(..)
        .partition(|m| m.op.dst().starts_with(&runtime_dir));
    ops.extend(outside);
    ops.push(PlannedMount {
        op: MountOp::Tmpfs {
            dst: runtime_dir,
            size: None,
            mode: 0o700,
        },
        from: k.origin.clone(),
        lands: None,
    });
    ops.extend(inside);
    ops.extend(sockets);
    Ok(Some(Planned { desktop: d, env }))
}

/// The `[[mount]]` entry whose origin (`file:line:col` of its `dst`) is
/// `from`: where an error about it points.
fn mount_entry<'a>(
    profile: &'a Profile,
    from: &str,
) -> Option<(
    &'a std::sync::Arc<crate::diag::SourceFile>,
    std::ops::Range<usize>,
)> {
    profile.layers.iter().find_map(|layer| {
        layer.raw.mount.iter().find_map(|entry| {
            let (line, col) = layer.file.line_col(entry.dst.span().start);
            (format!("{}:{line}:{col}", layer.file.name) == from)
                .then(|| (&layer.file, entry.dst.span()))
        })
    })
}

/// The app id: the profile's (under `hutch.`), or `hutch.` and the
/// profile's name (a path's file stem), with `/` as `.`.
fn app_id(profile: &Profile, set: Option<&At<'_, String>>) -> Result<String, ProfileError> {
    if let Some(at) = set {
        let id = at.get();
        let rest = id.strip_prefix(APP_ID_PREFIX).unwrap_or("");
        if rest.is_empty() || !valid_id(rest) || id.len() > 255 {
            return Err(at
                .diag(format!("key `desktop.app_id`: {id:?} is not an app id under `hutch.`"))
                .help("write `hutch.` and then letters, digits, `.`, `_` or `-` (e.g. \"hutch.editor\"): an id outside `hutch.` could claim another application's identity, and compositors such as KWin grant privileged protocols by app id")
                .into());
        }
        return Ok(id.clone());
    }
    let name = &profile.name;
    let base = if name.ends_with(".toml") || name.starts_with('/') || name.starts_with('.') {
        Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        name.replace('/', ".")
    };
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_matches('.');
    Ok(format!(
        "{APP_ID_PREFIX}{}",
        if clean.is_empty() { "app" } else { clean }
    ))
}

fn valid_id(s: &str) -> bool {
    s.split('.').all(|part| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    })
}

/// A missing resource: an error naming it, or with best-effort a note.
pub(super) fn missing(
    at: &At<'_, impl Sized>,
    need: Need,
    why: String,
    help: &str,
    skipped: &mut Vec<String>,
) -> Result<(), ProfileError> {
    match need {
        Need::Required => Err(at
            .diag(why)
            .help(format!(
                "{help}; or set `[desktop] enforce = \"best-effort\"` to run without it"
            ))
            .into()),
        Need::BestEffort => {
            skipped.push(why);
            Ok(())
        }
    }
}

fn plan_display(
    display: &At<'_, Display>,
    k: &Keys<'_>,
    host: &Host,
    shared_net: bool,
    d: &mut DesktopPlan,
    sockets: &mut Vec<PlannedMount>,
    env: &mut Vec<(String, String)>,
) -> Result<(), ProfileError> {
    let from = at_origin(display);
    let wayland = match display.get() {
        Display::X11 => None,
        Display::Wayland | Display::Auto => Some(wayland_socket(host)),
    };
    let wayland_missing = match wayland {
        Some(Ok(socket)) => {
            return plan_wayland(display, socket, k.need, host, d, sockets, env, &from);
        }
        Some(Err(why)) => Some(why),
        None => None,
    };
    let Some(x11) = &k.x11 else {
        return match wayland_missing {
            Some(why) => {
                let why = if *display.get() == Display::Auto {
                    format!("{why} (and there is no X11 fallback: `x11` is not set)")
                } else {
                    why
                };
                missing(display, k.need, why, "run hutch in your Wayland session", &mut d.skipped)
            }
            None => Err(display
                .diag("`display = \"x11\"` gives the app X11, but the profile does not say how")
                .help("add `x11 = \"host\"` to [desktop] (the app then sees, and can capture, every window on your display), or use `display = \"wayland\"`")
                .into()),
        };
    };
    match x11_display(host, shared_net) {
        Ok(plan) => add_x11(plan, x11, host, d, sockets, env),
        Err(why) => {
            let why = match wayland_missing {
                Some(w) => format!("{w}, and {why}"),
                None => why,
            };
            missing(
                display,
                k.need,
                why,
                "run hutch in your graphical session",
                &mut d.skipped,
            )
        }
    }
}

/// The compositor's socket from `WAYLAND_DISPLAY`, or why there is none.
fn wayland_socket(host: &Host) -> Result<PathBuf, String> {
    let Some(name) = host.env("WAYLAND_DISPLAY").filter(|n| !n.is_empty()) else {
        return Err(
            "WAYLAND_DISPLAY is not set, so there is no Wayland compositor to connect the app to"
                .into(),
        );
    };
    let path = if name.starts_with('/') {
        PathBuf::from(&name)
    } else {
        host.runtime_dir().join(&name)
    };
    socket_at(host, &path, "the Wayland socket", "WAYLAND_DISPLAY")
}

#[allow(clippy::too_many_arguments)]
fn plan_wayland(
    display: &At<'_, Display>,
    socket: PathBuf,
    need: Need,
    host: &Host,
    d: &mut DesktopPlan,
    sockets: &mut Vec<PlannedMount>,
    env: &mut Vec<(String, String)>,
    from: &str,
) -> Result<(), ProfileError> {
    let offered = wayland::Connection::open(&host.fs_path(&socket), Instant::now() + PROBE_TIMEOUT)
        .and_then(|mut c| c.offers(wayland::SECURITY_CONTEXT_MANAGER));
    let offered = match offered {
        Ok(o) => o,
        Err(e) => {
            return missing(
                display,
                need,
                format!(
                    "cannot list the Wayland compositor's protocols at {}: {e}",
                    socket.display()
                ),
                "check that the compositor is running",
                &mut d.skipped,
            );
        }
    };
    let listener = offered.then(|| d.launch_dir.join(WAYLAND_LISTENER));
    let source = listener.clone().unwrap_or_else(|| socket.clone());
    sockets.push(bind(source, d.runtime_dir.join("wayland-0"), from));
    env.push(("WAYLAND_DISPLAY".into(), "wayland-0".into()));
    env.push(("XDG_SESSION_TYPE".into(), "wayland".into()));
    d.wayland = Some(WaylandPlan {
        compositor: socket,
        security_context: listener,
    });
    Ok(())
}

/// A parsed `DISPLAY`: the socket and the numbers a client would use.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostDisplay {
    socket: PathBuf,
    /// The number libxcb looks the cookie up by.
    number: u32,
    screen: u32,
}

/// `:N[.S]`, `unix:N[.S]`, or libxcb 1.16's `/path[.S]` and `unix:/path`.
fn parse_display(value: &str) -> Result<HostDisplay, String> {
    let rest = value.strip_prefix("unix:").unwrap_or(value);
    if rest.starts_with('/') {
        let (path, screen) = match rest.rsplit_once('.') {
            Some((p, s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                (p, s.parse().unwrap_or(0))
            }
            _ => (rest, 0),
        };
        return Ok(HostDisplay {
            socket: PathBuf::from(path),
            number: 0,
            screen,
        });
    }
    let (host, tail) = match value.strip_prefix("unix:") {
        Some(number) => ("", number),
        None => value.rsplit_once(':').ok_or_else(|| {
            format!("DISPLAY={value:?} is not an X display name (`:0`, `unix:0`)")
        })?,
    };
    if !host.is_empty() && host != "unix" {
        return Err(format!(
            "DISPLAY={value:?} names an X server over TCP (host {host:?}, as `ssh -X` sets it); hutch gives a sandbox only a local display's unix socket"
        ));
    }
    let (number, screen) = match tail.split_once('.') {
        Some((n, s)) => (n, s),
        None => (tail, "0"),
    };
    let parse = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    match (parse(number), parse(screen)) {
        (Some(n), Some(s)) => Ok(HostDisplay {
            socket: PathBuf::from(format!("/tmp/.X11-unix/X{n}")),
            number: n,
            screen: s,
        }),
        _ => Err(format!(
            "DISPLAY={value:?} is not an X display name (`:0`, `unix:0`)"
        )),
    }
}

/// The host display's plan (without the mode), or why there is none.
fn x11_display(host: &Host, shared_net: bool) -> Result<X11Plan, String> {
    let Some(value) = host.env("DISPLAY").filter(|v| !v.is_empty()) else {
        return Err("DISPLAY is not set, so there is no X server to connect the app to".into());
    };
    let parsed = parse_display(&value)?;
    socket_at(
        host,
        &parsed.socket,
        "the X11 socket",
        &format!("DISPLAY={value}"),
    )?;
    let display = if shared_net {
        free_abstract_display(host, None)
    } else {
        parsed.number
    };
    let (cookie, no_cookie) = match find_cookie(host, parsed.number) {
        Ok(c) => (Some(c), None),
        Err(why) => (None, Some(why)),
    };
    Ok(X11Plan {
        mode: X11Mode::Host,
        host_display: value,
        socket: parsed.socket,
        display,
        screen: parsed.screen,
        cookie,
        no_cookie,
        nested: None,
    })
}

/// A display number for which the host's network namespace has no
/// abstract socket (libxcb 1.15 would try it first and give up on
/// Landlock's EPERM): from 100 up, clear of the numbers servers take first,
/// and not that of the socket `taken`.
fn free_abstract_display(host: &Host, taken: Option<&Path>) -> u32 {
    let table = std::fs::read(host.fs_path(Path::new("/proc/net/unix"))).unwrap_or_default();
    let table = String::from_utf8_lossy(&table);
    (100..10_000)
        .find(|n| {
            let name = format!("@/tmp/.X11-unix/X{n}");
            let mine = taken.is_some_and(|t| t == Path::new(&name[1..]));
            !mine
                && !table
                    .lines()
                    .any(|l| l.split_whitespace().last() == Some(name.as_str()))
        })
        .unwrap_or(100)
}

/// The Xauthority entry a client of display `number` would use here.
fn find_cookie(host: &Host, number: u32) -> Result<CookieSource, String> {
    let file = match host.env("XAUTHORITY").filter(|v| v.starts_with('/')) {
        Some(f) => PathBuf::from(f),
        None => match host.home() {
            Some(h) => h.join(".Xauthority"),
            None => {
                return Err(
                    "no Xauthority file (XAUTHORITY is unset and there is no home directory)"
                        .into(),
                );
            }
        },
    };
    let bytes = match std::fs::read(host.fs_path(&file)) {
        Ok(b) if b.len() <= xauth::MAX_FILE => b,
        Ok(_) => {
            return Err(format!(
                "{} is too large for an Xauthority file",
                file.display()
            ));
        }
        Err(e) => return Err(format!("no Xauthority file ({}: {e})", file.display())),
    };
    let entries = xauth::parse(&bytes).map_err(|e| format!("{}: {e}", file.display()))?;
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let number = number.to_string();
    match xauth::cookie_for(&entries, hostname.as_bytes(), &number) {
        Some(_) => Ok(CookieSource {
            file,
            hostname,
            number,
        }),
        None => Err(format!(
            "{} has no MIT-MAGIC-COOKIE-1 for display {number} of host {hostname:?}",
            file.display()
        )),
    }
}

fn add_x11(
    mut plan: X11Plan,
    mode: &At<'_, X11Mode>,
    host: &Host,
    d: &mut DesktopPlan,
    sockets: &mut Vec<PlannedMount>,
    env: &mut Vec<(String, String)>,
) -> Result<(), ProfileError> {
    let from = at_origin(mode);
    plan.mode = *mode.get();
    let source = if plan.mode == X11Mode::Nested {
        let xephyr = find_program(host, "Xephyr").ok_or_else(|| {
            mode.diag("`x11 = \"nested\"` needs Xephyr, which is not in PATH")
                .help("install it (Debian and Ubuntu: `apt install xserver-xephyr`), or use `x11 = \"host\"`")
        })?;
        // Its own number: not the host display's (whose socket its sandbox
        // also has), and free of the host's abstract sockets.
        plan.display = free_abstract_display(host, Some(&plan.socket));
        plan.screen = 0;
        let mut dir = hutch_state(host)?.into_os_string();
        dir.push("-x11");
        let dir = PathBuf::from(dir).join(host.launcher_pid().to_string());
        let socket = dir
            .join(NESTED_SOCKET_DIR)
            .join(format!("X{}", plan.display));
        plan.nested = Some(NestedPlan {
            xephyr,
            dir,
            size: NESTED_SIZE.into(),
        });
        socket
    } else {
        plan.socket.clone()
    };
    sockets.push(bind(
        source,
        PathBuf::from(format!("/tmp/.X11-unix/X{}", plan.display)),
        &from,
    ));
    env.push((
        "DISPLAY".into(),
        format!(":{}.{}", plan.display, plan.screen),
    ));
    env.push(("XDG_SESSION_TYPE".into(), "x11".into()));
    if plan.cookie.is_some() || plan.nested.is_some() {
        let inside = d.runtime_dir.join(XAUTHORITY_FILE);
        sockets.push(bind(
            d.launch_dir.join(XAUTHORITY_FILE),
            inside.clone(),
            &from,
        ));
        env.push(("XAUTHORITY".into(), inside.display().to_string()));
    }
    d.x11 = Some(plan);
    Ok(())
}

/// The nested server's first screen size.
const NESTED_SIZE: &str = "1024x768";

fn plan_audio(
    audio: &At<'_, bool>,
    need: Need,
    host: &Host,
    d: &mut DesktopPlan,
    sockets: &mut Vec<PlannedMount>,
    env: &mut Vec<(String, String)>,
) -> Result<(), ProfileError> {
    let from = at_origin(audio);
    let runtime = host.runtime_dir();
    let pulse_path = host
        .env("PULSE_SERVER")
        .and_then(|v| {
            v.split_whitespace()
                .filter_map(|s| s.strip_prefix("unix:").or(Some(s)))
                .find(|s| s.starts_with('/'))
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| runtime.join("pulse/native"));
    let pipewire_path = match host.env("PIPEWIRE_REMOTE").filter(|v| !v.is_empty()) {
        Some(v) if v.starts_with('/') => PathBuf::from(v),
        Some(v) => host
            .env("PIPEWIRE_RUNTIME_DIR")
            .map_or_else(|| runtime.clone(), PathBuf::from)
            .join(v),
        None => host
            .env("PIPEWIRE_RUNTIME_DIR")
            .map_or_else(|| runtime.clone(), PathBuf::from)
            .join("pipewire-0"),
    };
    let pulse = socket_at(host, &pulse_path, "PulseAudio's socket", "PULSE_SERVER").ok();
    let pipewire = socket_at(host, &pipewire_path, "PipeWire's socket", "PIPEWIRE_REMOTE").ok();
    if pulse.is_none() && pipewire.is_none() {
        return missing(
            audio,
            need,
            format!(
                "`audio = true`, but there is no sound server: neither {} nor {} is a socket",
                pulse_path.display(),
                pipewire_path.display()
            ),
            "start PulseAudio or PipeWire in your session",
            &mut d.skipped,
        );
    }
    let mut plan = AudioPlan {
        pulse: pulse.clone(),
        pulse_cookie: None,
        pipewire: pipewire.clone(),
    };
    if let Some(p) = pulse {
        let native = d.runtime_dir.join("pulse/native");
        sockets.push(bind(p, native.clone(), &from));
        env.push(("PULSE_SERVER".into(), format!("unix:{}", native.display())));
        plan.pulse_cookie = pulse_cookie(host);
        if plan.pulse_cookie.is_some() {
            let inside = d.runtime_dir.join("pulse/cookie");
            sockets.push(bind(
                d.launch_dir.join(PULSE_COOKIE_FILE),
                inside.clone(),
                &from,
            ));
            env.push(("PULSE_COOKIE".into(), inside.display().to_string()));
        }
    }
    if let Some(p) = pipewire {
        sockets.push(bind(p, d.runtime_dir.join("pipewire-0"), &from));
    }
    d.audio = Some(plan);
    Ok(())
}

/// The PulseAudio cookie a client would send: `$PULSE_COOKIE`,
/// `$XDG_CONFIG_HOME/pulse/cookie`, or the legacy `~/.pulse-cookie`.
fn pulse_cookie(host: &Host) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    candidates.extend(
        host.env("PULSE_COOKIE")
            .filter(|v| v.starts_with('/'))
            .map(PathBuf::from),
    );
    candidates.extend(
        host.xdg_base("XDG_CONFIG_HOME")
            .map(|c| c.join("pulse/cookie")),
    );
    candidates.extend(host.home().map(|h| h.join(".pulse-cookie")));
    candidates
        .into_iter()
        .find(|c| std::fs::metadata(host.fs_path(c)).is_ok_and(|m| m.is_file()))
}

/// Sets the owned variables: the desktop's values, the rest removed; an
/// explicit `[env] set` of the profile still wins.
pub fn apply_env(
    env: &mut std::collections::BTreeMap<String, String>,
    values: &[(String, String)],
    explicit: &[String],
) {
    for name in OWNED_VARS {
        if explicit.iter().any(|e| e == name) {
            continue;
        }
        env.remove(*name);
    }
    for (name, value) in values {
        if !explicit.contains(name) {
            env.insert(name.clone(), value.clone());
        }
    }
}

/// `--explain`'s lines for the desktop section: what each grant exposes.
pub fn explain(d: &DesktopPlan) -> String {
    let mut o = format!(
        "desktop     runtime dir {} (a private tmpfs, 0700); app id {}, instance {}\n",
        sanitize(&d.runtime_dir.display().to_string()),
        sanitize(&d.app_id),
        d.instance_id
    );
    // One line per grant: what came from outside (paths, names) cannot
    // forge a line of its own.
    let mut line =
        |what: &str, text: String| o.push_str(&format!("  {what:<9} {}\n", sanitize(&text)));
    if let Some(w) = &d.wayland {
        line(
            "wayland",
            match &w.security_context {
                Some(l) => format!(
                    "a socket of its own ({}), registered with the compositor at {} as a security context (engine {ENGINE}, app id {}): the compositor withholds privileged protocols (screen capture, input injection) from it",
                    l.display(),
                    w.compositor.display(),
                    d.app_id
                ),
                None => format!(
                    "the compositor's own socket {}: it offers no security context (wp_security_context_v1), so the app may use every protocol it offers any client (on some compositors: screen capture, input injection)",
                    w.compositor.display()
                ),
            },
        );
    }
    if let Some(x) = &d.x11 {
        let cookie = match (&x.cookie, &x.no_cookie) {
            (Some(c), _) => format!(
                "its cookie from {} in a private Xauthority (any hostname)",
                c.file.display()
            ),
            (None, Some(why)) => format!("no cookie ({why}): the app connects without one"),
            (None, None) => "no cookie".into(),
        };
        line(
            "x11",
            match &x.nested {
                Some(n) => format!(
                    "a nested X server ({}, {}, resizable) as :{} inside, with a fresh cookie; it shows one window on the host display {} ({}{}) and runs in a sandbox of its own with only that display and its socket directory; the app sees only its own windows, and shares no clipboard with the host",
                    n.xephyr.display(),
                    n.size,
                    x.display,
                    x.host_display,
                    x.socket.display(),
                    match &x.cookie {
                        Some(c) => format!(", your cookie from {}", c.file.display()),
                        None => ", without a cookie".into(),
                    },
                ),
                None => format!(
                    "the host display {} ({}) as :{} inside, {cookie}; the app SEES YOUR OTHER WINDOWS on that display, can read their contents, capture the screen and send them input",
                    x.host_display,
                    x.socket.display(),
                    x.display
                ),
            },
        );
    }
    if let Some(a) = &d.audio {
        let mut parts = Vec::new();
        if let Some(p) = &a.pulse {
            parts.push(format!(
                "PulseAudio {}{}",
                p.display(),
                if a.pulse_cookie.is_some() {
                    " with its cookie"
                } else {
                    ""
                }
            ));
        }
        if let Some(p) = &a.pipewire {
            parts.push(format!("PipeWire {}", p.display()));
        }
        line(
            "audio",
            format!(
                "{}: not a security boundary (a client can load modules into the sound server, record what it records, and through PipeWire reach cameras and screen-cast streams)",
                parts.join(", ")
            ),
        );
    }
    for text in d.dbus.iter().flat_map(super::dbus::explain) {
        line("dbus", text);
    }
    for s in &d.skipped {
        line("skipped", s.clone());
    }
    o
}

/// `-v`'s line for the desktop section.
pub fn summary(d: &DesktopPlan) -> String {
    let mut parts = Vec::new();
    if let Some(w) = &d.wayland {
        parts.push(if w.security_context.is_some() {
            "wayland with a security context".to_string()
        } else {
            "wayland without a security context (the compositor offers none)".to_string()
        });
    }
    if let Some(x) = &d.x11 {
        parts.push(format!(
            "x11 {} display {} as :{}",
            if x.nested.is_some() {
                "nested (Xephyr) on the host"
            } else {
                "host"
            },
            x.host_display,
            x.display
        ));
    }
    if d.audio.is_some() {
        parts.push("audio".into());
    }
    if let Some(b) = &d.dbus {
        parts.push(super::dbus::summary(b));
    }
    let mut out = format!(
        "hutch: desktop: {} (app id {})",
        if parts.is_empty() {
            "runtime dir only".to_string()
        } else {
            sanitize(&parts.join(", "))
        },
        sanitize(&d.app_id)
    );
    for s in &d.skipped {
        out.push_str(&format!("\nhutch: skipped (best-effort): {}", sanitize(s)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::plan::{Plan, Request, build};
    use crate::profile::{ProfileRef, SearchPath, load};
    use std::os::unix::net::UnixListener;

    /// A machine (its filesystem under a temp dir) with an X display :3,
    /// whose cookie is filed under the wildcard family, and a PulseAudio
    /// socket; `extra` adds environment.
    struct Machine {
        root: tempfile::TempDir,
        _sockets: Vec<UnixListener>,
    }

    impl Machine {
        fn new() -> Machine {
            let root = tempfile::tempdir().unwrap();
            let r = root.path();
            for d in [
                "tmp/.X11-unix",
                "run/user/1000/pulse",
                "home/u/.config/pulse",
                "profiles",
            ] {
                std::fs::create_dir_all(r.join(d)).unwrap();
            }
            std::fs::write(
                r.join("home/u/.Xauthority"),
                xauth::encode_wild("3", b"secret"),
            )
            .unwrap();
            std::fs::write(r.join("home/u/.config/pulse/cookie"), [1u8; 256]).unwrap();
            let sockets = ["tmp/.X11-unix/X3", "run/user/1000/pulse/native"]
                .iter()
                .map(|p| UnixListener::bind(r.join(p)).unwrap())
                .collect();
            Machine {
                root,
                _sockets: sockets,
            }
        }

        fn plan(&self, profile: &str, abi: u32, extra: &[(&str, &str)]) -> Result<Plan, String> {
            let r = self.root.path();
            std::fs::write(r.join("profiles/p.toml"), profile).unwrap();
            let dirs = r.join("profiles").display().to_string();
            let mut env = vec![
                ("HOME", "/home/u"),
                ("XDG_RUNTIME_DIR", "/run/user/1000"),
                ("HUTCH_PROFILE_PATH", dirs.as_str()),
                ("DISPLAY", ":3"),
                ("XAUTHORITY", "/home/u/.Xauthority"),
            ];
            env.extend_from_slice(extra);
            let host = Host::fixed(1000, 1000, &env, "/")
                .with_fs_root(r)
                .with_landlock_abi(abi);
            let profile = load(&ProfileRef::Name("p".into()), &SearchPath::standard(&host))
                .map_err(|e| e.to_string())?;
            let request = Request {
                command: vec!["app".into()],
                command_optional: false,
                image: None,
            };
            build(&profile, &host, &request).map_err(|e| e.to_string())
        }
    }

    fn dsts(plan: &Plan) -> Vec<String> {
        plan.mounts
            .iter()
            .map(|m| m.op.dst().display().to_string())
            .collect()
    }

    #[test]
    fn x11_and_audio_become_binds_in_a_private_runtime_dir() {
        let m = Machine::new();
        let plan = m
            .plan(
                "version = 1\n[[mount]]\ntype = \"tmpfs\"\ndst = \"/run/user/1000/own\"\n\
                 [desktop]\ndisplay = \"x11\"\nx11 = \"host\"\naudio = true\n",
                7,
                &[],
            )
            .unwrap();
        // The profile's entry inside the runtime dir comes after its tmpfs.
        assert_eq!(
            dsts(&plan),
            [
                "/run/user/1000",
                "/run/user/1000/own",
                "/tmp/.X11-unix/X3",
                "/run/user/1000/Xauthority",
                "/run/user/1000/pulse/native",
                "/run/user/1000/pulse/cookie",
            ]
        );
        let d = plan.desktop.as_ref().unwrap();
        assert_eq!(d.app_id, "hutch.p");
        assert_eq!(
            d.x11.as_ref().unwrap().display,
            3,
            "own network namespace: same number"
        );
        assert!(
            d.launch_dir
                .ends_with(format!("desktop/{}", std::process::id()))
        );
        let env = |k: &str| plan.env.get(k).map(String::as_str);
        assert_eq!(env("DISPLAY"), Some(":3.0"));
        assert_eq!(env("XAUTHORITY"), Some("/run/user/1000/Xauthority"));
        assert_eq!(
            env("PULSE_SERVER"),
            Some("unix:/run/user/1000/pulse/native")
        );
        assert_eq!(env("XDG_RUNTIME_DIR"), Some("/run/user/1000"));
        // The cookie itself is nowhere in the plan.
        let json = serde_json::to_string(&plan).unwrap();
        assert!(!json.contains("secret") && !json.contains("c2VjcmV0"));
        let text = crate::plan::explain::render(&plan);
        assert!(text.contains("SEES YOUR OTHER WINDOWS"), "{text}");
        assert!(text.contains("not a security boundary"), "{text}");
    }

    #[test]
    fn the_hosts_network_namespace_needs_scoping_and_gets_another_number() {
        let m = Machine::new();
        let profile = "version = 1\n[namespaces]\nnet = false\n[desktop]\ndisplay = \"x11\"\nx11 = \"host\"\n";
        let err = m.plan(profile, 5, &[]).unwrap_err();
        assert!(err.contains("Landlock ABI 6, Linux 6.12+"), "{err}");
        let scoped = m.plan(profile, 6, &[]).unwrap();
        assert!(scoped.desktop.unwrap().x11.unwrap().display >= 100);
        // Scoping turned off: refused too.
        let off = format!("{profile}[landlock]\nscope = \"off\"\n");
        assert!(m.plan(&off, 7, &[]).unwrap_err().contains("Landlock ABI 6"));
        // Audio alone is no display: nothing to refuse.
        let audio = "version = 1\n[namespaces]\nnet = false\n[desktop]\naudio = true\n";
        assert!(m.plan(audio, 5, &[]).is_ok());
    }

    #[test]
    fn host_variables_do_not_leak_into_the_sandbox() {
        let m = Machine::new();
        let extra = [
            ("WAYLAND_DISPLAY", "wayland-9"),
            ("DBUS_SESSION_BUS_ADDRESS", "unix:abstract=/tmp/dbus-x"),
            ("MY_VAR", "kept"),
        ];
        let plan = m
            .plan(
                "version = 1\n[env]\nclear = false\n[desktop]\naudio = true\n",
                7,
                &extra,
            )
            .unwrap();
        for gone in [
            "DISPLAY",
            "XAUTHORITY",
            "WAYLAND_DISPLAY",
            "DBUS_SESSION_BUS_ADDRESS",
        ] {
            assert!(!plan.env.contains_key(gone), "{gone} leaked");
        }
        assert_eq!(plan.env.get("MY_VAR").map(String::as_str), Some("kept"));
        // Without [desktop], a profile that keeps them keeps them.
        let plan = m
            .plan("version = 1\n[env]\nclear = false\n", 7, &extra)
            .unwrap();
        assert!(plan.env.contains_key("DISPLAY"));
    }

    #[test]
    fn a_bus_is_given_through_the_proxy_only_where_it_cannot_be_bypassed() {
        let m = Machine::new();
        let bus = "[dbus.session]\ntalk = [\"org.example.A\"]\n";
        let shared = format!("version = 1\n[namespaces]\nnet = false\n{bus}");
        let abstract_bus = [("DBUS_SESSION_BUS_ADDRESS", "unix:abstract=/tmp/dbus-x")];
        let err = m.plan(&shared, 5, &abstract_bus).unwrap_err();
        assert!(
            err.contains("Landlock ABI 6") && err.contains("around the proxy"),
            "{err}"
        );
        let own_net = format!("version = 1\n{bus}");
        let err = m.plan(&own_net, 5, &abstract_bus).unwrap_err();
        assert!(err.contains("needs xdg-dbus-proxy"), "{err}");
        let proxy = m.root.path().join("usr/bin/xdg-dbus-proxy");
        std::fs::create_dir_all(proxy.parent().unwrap()).unwrap();
        std::fs::write(&proxy, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&proxy, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plan = m.plan(&own_net, 5, &abstract_bus).unwrap();
        let dbus = plan.desktop.as_ref().unwrap().dbus.as_ref().unwrap();
        assert_eq!(dbus.buses[0].address, "unix:abstract=/tmp/dbus-x");
        assert_eq!(
            dbus.proxy_args()[2..],
            ["--filter".to_string(), "--talk=org.example.A".to_string()]
        );
        assert_eq!(
            plan.env.get("DBUS_SESSION_BUS_ADDRESS").map(String::as_str),
            Some("unix:path=/run/user/1000/bus")
        );
        assert!(dsts(&plan).contains(&"/run/user/1000/bus".to_string()));
        // Scoped: the shared network namespace is fine too.
        assert!(m.plan(&shared, 6, &abstract_bus).is_ok());
        // The system bus is not named: its variable is removed.
        let plan = m
            .plan(
                &format!("version = 1\n[env]\nclear = false\n{bus}"),
                7,
                &[abstract_bus[0], ("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/x")],
            )
            .unwrap();
        assert!(!plan.env.contains_key("DBUS_SYSTEM_BUS_ADDRESS"));
    }

    #[test]
    fn a_nested_display_needs_xephyr_and_gets_its_own_number_and_socket() {
        let m = Machine::new();
        let profile = "version = 1\n[desktop]\ndisplay = \"x11\"\nx11 = \"nested\"\n";
        let err = m.plan(profile, 7, &[]).unwrap_err();
        assert!(err.contains("needs Xephyr"), "{err}");
        let xephyr = m.root.path().join("usr/bin/Xephyr");
        std::fs::create_dir_all(xephyr.parent().unwrap()).unwrap();
        std::fs::write(&xephyr, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&xephyr, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plan = m.plan(profile, 7, &[]).unwrap();
        let x11 = plan.desktop.as_ref().unwrap().x11.as_ref().unwrap();
        let nested = x11.nested.as_ref().unwrap();
        assert!(x11.display >= 100, "not the host's :3");
        let socket = nested.dir.join(format!("x11/X{}", x11.display));
        assert!(
            plan.mounts.iter().any(|op| matches!(&op.op,
                MountOp::Bind { src, dst, .. } if *src == socket
                    && *dst == Path::new(&format!("/tmp/.X11-unix/X{}", x11.display)))),
            "the nested server's socket is bound"
        );
        // Not the host display's socket, nor under hutch's runtime
        // directory (which Xephyr's own profile could not bind).
        assert!(!dsts(&plan).contains(&"/tmp/.X11-unix/X3".to_string()));
        assert!(
            nested
                .dir
                .parent()
                .unwrap()
                .to_string_lossy()
                .ends_with("-x11")
        );
        assert_eq!(
            plan.env.get("XAUTHORITY").map(String::as_str),
            Some("/run/user/1000/Xauthority")
        );
    }

    #[test]
    fn a_symlinked_socket_is_refused() {
        let m = Machine::new();
        std::os::unix::fs::symlink("X3", m.root.path().join("tmp/.X11-unix/X4")).unwrap();
        let err = m
            .plan(
                "version = 1\n[desktop]\ndisplay = \"x11\"\nx11 = \"host\"\n",
                7,
                &[("DISPLAY", ":4")],
            )
            .unwrap_err();
        assert!(
            err.contains("/tmp/.X11-unix/X4 (DISPLAY=:4) is a symlink"),
            "{err}"
        );
    }

    #[test]
    fn app_ids_stay_under_hutch() {
        let m = Machine::new();
        let with = |id: &str| {
            m.plan(
                &format!("version = 1\n[desktop]\napp_id = \"{id}\"\n"),
                7,
                &[],
            )
        };
        assert_eq!(
            with("hutch.editor").unwrap().desktop.unwrap().app_id,
            "hutch.editor"
        );
        for bad in [
            "org.kde.spectacle",
            "hutch.",
            "hutch..x",
            "hutch.a b",
            "hutchx.y",
        ] {
            assert!(
                with(bad)
                    .unwrap_err()
                    .contains("not an app id under `hutch.`"),
                "{bad}"
            );
        }
    }

    #[test]
    fn best_effort_skips_what_is_missing_and_says_so() {
        let m = Machine::new();
        let plan = m
            .plan(
                "version = 1\n[desktop]\ndisplay = \"wayland\"\nenforce = \"best-effort\"\n",
                7,
                &[],
            )
            .unwrap();
        let d = plan.desktop.unwrap();
        assert!(d.wayland.is_none());
        assert_eq!(d.skipped.len(), 1);
        assert!(d.skipped[0].contains("WAYLAND_DISPLAY is not set"));
        assert!(!plan.env.contains_key("WAYLAND_DISPLAY"));
    }

    #[test]
    fn display_names() {
        let d = parse_display(":0").unwrap();
        assert_eq!(
            (d.socket.to_str().unwrap(), d.number, d.screen),
            ("/tmp/.X11-unix/X0", 0, 0)
        );
        let d = parse_display("unix:12.1").unwrap();
        assert_eq!((d.number, d.screen), (12, 1));
        let d = parse_display(":3.0").unwrap();
        assert_eq!(d.number, 3);
        let d = parse_display("/run/x/sock.2").unwrap();
        assert_eq!((d.socket.to_str().unwrap(), d.screen), ("/run/x/sock", 2));
        let d = parse_display("unix:/run/x/sock").unwrap();
        assert_eq!(d.socket.to_str().unwrap(), "/run/x/sock");
        for tcp in ["localhost:10.0", "example.org:0", "tcp/localhost:1"] {
            let e = parse_display(tcp).unwrap_err();
            assert!(e.contains("over TCP"), "{tcp}: {e}");
        }
        for bad in ["", "0", ":", ":x", ":1.", ":1.a"] {
            assert!(parse_display(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_are_checked() {
        assert!(valid_id("editor"));
        assert!(valid_id("org.example.Editor-2"));
        assert!(!valid_id(""));
        assert!(!valid_id("a..b"));
        assert!(!valid_id("a b"));
    }

    #[test]
    fn owned_variables_are_replaced_or_removed() {
        let mut env: std::collections::BTreeMap<String, String> = [
            ("DISPLAY", ":0"),
            ("DBUS_SESSION_BUS_ADDRESS", "unix:abstract=/tmp/dbus-x"),
            ("PULSE_SERVER", "tcp:example"),
            ("TERM", "xterm"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        apply_env(
            &mut env,
            &[("WAYLAND_DISPLAY".into(), "wayland-0".into())],
            &["PULSE_SERVER".into()],
        );
        assert_eq!(env.get("WAYLAND_DISPLAY").unwrap(), "wayland-0");
        assert!(!env.contains_key("DISPLAY"));
        assert!(!env.contains_key("DBUS_SESSION_BUS_ADDRESS"));
        assert_eq!(
            env.get("PULSE_SERVER").unwrap(),
            "tcp:example",
            "set explicitly"
        );
        assert_eq!(env.get("TERM").unwrap(), "xterm");
    }
}
