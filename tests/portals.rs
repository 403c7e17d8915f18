//! `[dbus] portals` against the real xdg-desktop-portal (1.16 on Debian
//! 12) on a session `dbus-daemon` of the test user. The portal's frontend
//! answers NetworkMonitor, ProxyResolver and MemoryMonitor alone (no UI
//! backend), so a call from the sandbox through hutch's xdg-dbus-proxy
//! shows what a grant lets through and what it stops; every probe runs
//! also with the bus's socket bound directly (the control), where it gets
//! through.
//!
//! Tools that are missing (`.ci/run` installs them) make a test print
//! `SKIP: <reason>`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const PORTAL: &str = "/usr/libexec/xdg-desktop-portal";

fn installed() -> bool {
    for p in [
        "/usr/bin/dbus-daemon",
        "/usr/bin/dbus-send",
        "/usr/bin/xdg-dbus-proxy",
        PORTAL,
    ] {
        if !Path::new(p).exists() {
            skip(&format!("{p} is not installed (.ci/run installs it)"));
            return false;
        }
    }
    true
}

/// A process of the test user, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A session bus of the test user with xdg-desktop-portal on it. The bus
/// activates nothing (no service directories), so nothing outlives it.
struct Bus {
    socket: PathBuf,
    log: PathBuf,
    // Dropped in this order: the portal, then the bus.
    _portal: Process,
    _daemon: Process,
}

impl Bus {
    fn address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }
}

fn portal_bus(s: &Scratch) -> Bus {
    // Outside the scratch directory, which `default` binds (the launcher's
    // working directory): a socket there would be reachable around the proxy.
    let socket = s.runtime().join("portal-bus");
    let config = s.write(
        "portal-bus.conf",
        &format!(
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig><type>session</type><listen>unix:path={}</listen><auth>EXTERNAL</auth><policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/><allow own=\"*\"/></policy></busconfig>\n",
            socket.display()
        ),
    );
    let mut daemon = s
        .as_user(Path::new("/usr/bin/dbus-daemon"))
        .arg(format!("--config-file={}", config.display()))
        .args(["--nofork", "--nopidfile", "--print-address=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(daemon.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("unix:path="), "dbus-daemon said {line:?}");
    let daemon = Process(daemon);
    let address = format!("unix:path={}", socket.display());
    let log = s.path().join("portal.log");
    let log_file = std::fs::File::create(&log).unwrap();
    s.chown_all();
    let portal = s
        .as_user(Path::new(PORTAL))
        .arg("--verbose")
        .env("DBUS_SESSION_BUS_ADDRESS", &address)
        .env("XDG_CURRENT_DESKTOP", "hutch-test")
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let bus = Bus {
        socket,
        log,
        _portal: Process(portal),
        _daemon: daemon,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = s
            .as_user(Path::new("/usr/bin/dbus-send"))
            .args([
                &format!("--bus={address}"),
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                "string:org.freedesktop.portal.Desktop",
            ])
            .output()
            .unwrap();
        if stdout(&out).contains("boolean true") {
            return bus;
        }
        assert!(
            Instant::now() < deadline,
            "xdg-desktop-portal never took its name; its log:\n{}",
            std::fs::read_to_string(&bus.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A profile file in the scratch dir that extends `default`.
fn profile(s: &Scratch, name: &str, body: &str) -> String {
    s.write(
        &format!("{name}.toml"),
        &format!("version = 1\nextends = [\"default\"]\n{body}"),
    )
    .display()
    .to_string()
}

fn run_sh(s: &Scratch, bus: &Bus, profile: &str, script: &str) -> Output {
    s.hutch(&["run", "--profile", profile, "--", "sh", "-c", script])
        .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
        .output()
        .unwrap()
}

/// A call on the portal object, then `answered` or the error's name.
fn portal_call(method: &str, args: &str) -> String {
    format!(
        "r=$(dbus-send --session --print-reply --dest=org.freedesktop.portal.Desktop /org/freedesktop/portal/desktop {method} {args} 2>&1) && echo answered || echo \"$r\" | grep -o 'org.freedesktop.DBus.Error.[A-Za-z]*' | head -1"
    )
}

fn probes() -> String {
    [
        // Granted.
        portal_call("org.freedesktop.portal.NetworkMonitor.GetAvailable", ""),
        // The version through Properties.Get.
        portal_call(
            "org.freedesktop.DBus.Properties.Get",
            "string:org.freedesktop.portal.NetworkMonitor string:version",
        ),
        // Not granted: interfaces of the same portal object.
        portal_call(
            "org.freedesktop.portal.ProxyResolver.Lookup",
            "string:http://example.invalid/",
        ),
        portal_call("org.freedesktop.portal.MemoryMonitor.GetAll", ""),
        portal_call("org.freedesktop.DBus.Introspectable.Introspect", ""),
    ]
    .join("; ")
}

#[test]
fn a_granted_portal_answers_and_the_rest_of_the_portal_is_denied() {
    if !installed() {
        return;
    }
    let s = Scratch::new();
    let bus = portal_bus(&s);
    let granted = profile(&s, "granted", "[dbus]\nportals = [\"NetworkMonitor\"]\n");
    assert_eq!(
        ok(&run_sh(&s, &bus, &granted, &probes())),
        "answered\nanswered\norg.freedesktop.DBus.Error.AccessDenied\norg.freedesktop.DBus.Error.AccessDenied\norg.freedesktop.DBus.Error.AccessDenied\n",
        "through the proxy, NetworkMonitor granted"
    );
    // A bus without portals: the portal's name is not even visible.
    let none = profile(
        &s,
        "none",
        "[dbus.session]\ntalk = [\"org.example.Other\"]\n",
    );
    assert_eq!(
        ok(&run_sh(&s, &bus, &none, &probes())),
        "org.freedesktop.DBus.Error.ServiceUnknown\n".repeat(5),
        "through the proxy, no portals"
    );
    // The control: the bus's socket bound directly, every call answered
    // (MemoryMonitor has no methods: UnknownMethod is the portal's answer).
    let direct = profile(
        &s,
        "direct",
        &format!(
            "[[mount]]\ntype = \"bind\"\nsrc = \"{0}\"\ndst = \"{0}\"\n[env.set]\nDBUS_SESSION_BUS_ADDRESS = \"{1}\"\n",
            bus.socket.display(),
            bus.address()
        ),
    );
    assert_eq!(
        ok(&run_sh(&s, &bus, &direct, &probes())),
        "answered\nanswered\nanswered\norg.freedesktop.DBus.Error.UnknownMethod\nanswered\n",
        "directly on the bus"
    );
}

#[test]
fn an_unknown_portal_is_a_one_line_error_naming_the_allowed_ones() {
    let s = Scratch::new();
    let p = profile(&s, "bad", "[dbus]\nportals = [\"Documents\"]\n");
    let out = s
        .hutch(&["run", "--profile", &p, "--", "true"])
        .output()
        .unwrap();
    fails_with(
        &out,
        125,
        "key `dbus.portals`: \"Documents\" is not a portal interface hutch knows; allowed: Account, Background,",
    );
    assert!(stderr(&out).contains("bad.toml:4:12"), "{}", stderr(&out));
}

#[test]
fn explain_lists_the_portals_and_who_the_portal_takes_the_app_for() {
    if !installed() {
        return;
    }
    let s = Scratch::new();
    let bus = portal_bus(&s);
    let p = profile(
        &s,
        "explained",
        "[dbus]\nportals = [\"FileChooser\", \"Settings\"]\n",
    );
    let out = s
        .hutch(&["run", "--explain", "--profile", &p, "--", "true"])
        .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(
        text.contains("portals on org.freedesktop.portal.Desktop: FileChooser (host paths the user picks in a dialog"),
        "{text}"
    );
    assert!(text.contains(", Settings ("), "{text}");
    // This machine's launcher runs in no systemd app unit (its PID 1 is
    // not systemd), so the portal sees an unnamed host app; a unit is
    // named when there is one (unit-tested in plan::dbus).
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    if !own.contains(".service/app") {
        assert!(
            text.contains("portals see this app as an unnamed host app"),
            "{text}"
        );
    }
}
