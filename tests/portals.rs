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

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
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
        // Its debug messages say which app id it gives each caller.
        .env("G_MESSAGES_DEBUG", "all")
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
    // Without a systemd user manager (this machine's PID 1 is not
    // systemd) the portal sees an unnamed host app; the identification
    // test below may make the cgroup layout of one meanwhile.
    assert!(
        text.contains("portals see this app as an unnamed host app")
            || text.contains("portals see this app as the host app \"hutch.explained\": the proxy runs in the systemd user unit \"app-hutch-hutch.explained-"),
        "{text}"
    );
}

/// The cgroup layout a systemd user manager makes, on the cgroup v2
/// hierarchy: `user.slice/user-UID.slice/user@UID.service/app.slice`,
/// delegated to the user, with a scope for the launcher in it (as a
/// terminal started from the desktop has). Made by root for this test,
/// as systemd would; removed when dropped.
struct UserManagerLayout {
    dirs: Vec<PathBuf>,
    launcher_scope: PathBuf,
}

impl UserManagerLayout {
    fn make() -> Option<UserManagerLayout> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = mountinfo.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| PathBuf::from(left.split(' ').nth(4).unwrap()))
        })?;
        let uid = test_uid();
        let manager = format!("user.slice/user-{uid}.slice/user@{uid}.service");
        let mut dirs = Vec::new();
        let mut path = mount.clone();
        for part in format!(
            "{manager}/app.slice/hutch-test-{}.scope",
            std::process::id()
        )
        .split('/')
        {
            path.push(part);
            if !path.exists() {
                std::fs::create_dir(&path).ok()?;
                dirs.push(path.clone());
            }
        }
        let st = std::process::Command::new("chown")
            .args(["-R", &format!("{uid}:{uid}")])
            .arg(mount.join(&manager))
            .status()
            .unwrap();
        assert!(st.success());
        Some(UserManagerLayout {
            dirs,
            launcher_scope: path,
        })
    }

    /// `cmd`, started inside the launcher's scope.
    fn inside(&self, cmd: &std::process::Command) -> std::process::Command {
        let mut c = std::process::Command::new("/bin/sh");
        c.arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec \"$@\"",
                self.launcher_scope.display()
            ))
            .arg("sh")
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .env_clear();
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        if let Some(d) = cmd.get_current_dir() {
            c.current_dir(d);
        }
        c
    }
}

impl Drop for UserManagerLayout {
    fn drop(&mut self) {
        // Empty by now: every process started in them has ended. The
        // proxy's scope, if hutch left it, first.
        if let Ok(entries) = std::fs::read_dir(self.launcher_scope.parent().unwrap()) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("app-hutch-") {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// The portal's lines that name the app id it gave a caller.
fn assigned(bus: &Bus) -> Vec<String> {
    std::fs::read_to_string(&bus.log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Assigning app ID"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_portal_knows_the_app_by_its_id_from_the_proxys_app_scope() {
    if !installed() {
        return;
    }
    if !is_root() {
        skip("making the cgroup layout of a systemd user manager needs root");
        return;
    }
    let Some(layout) = UserManagerLayout::make() else {
        skip("no writable cgroup v2 hierarchy");
        return;
    };
    let s = Scratch::new();
    let bus = portal_bus(&s);
    let p = profile(
        &s,
        "identified",
        "[desktop]\napp_id = \"hutch.portal.test\"\n[dbus]\nportals = [\"NetworkMonitor\"]\n",
    );
    let call = portal_call("org.freedesktop.portal.NetworkMonitor.GetAvailable", "");
    let run = |in_scope: bool, extra: &[&str]| {
        let mut args = vec!["run", "--profile", &p];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "sh", "-c", &call]);
        let mut cmd = s.hutch(&args);
        cmd.env("DBUS_SESSION_BUS_ADDRESS", bus.address());
        if in_scope {
            layout.inside(&cmd).output().unwrap()
        } else {
            cmd.output().unwrap()
        }
    };
    let explained = ok(&run(true, &["--explain"]));
    assert!(
        explained.contains("portals see this app as the host app \"hutch.portal.test\": the proxy runs in the systemd user unit \"app-hutch-hutch.portal.test-"),
        "{explained}"
    );
    // The launcher in the user manager's tree: the proxy gets the app's
    // scope, and the portal (its own log) names the app after it.
    let out = run(true, &[]);
    assert_eq!(ok(&out), "answered\n");
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let lines = assigned(&bus);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Assigning app ID \"hutch.portal.test\"")
                && l.contains("which has unit \"app-hutch-hutch.portal.test-")),
        "{lines:?}"
    );
    // The control: a launcher outside the tree cannot move the proxy
    // there (the kernel's delegation rules), says so, and the portal
    // names nobody.
    let before = assigned(&bus).len();
    let out = run(false, &[]);
    assert_eq!(ok(&out), "answered\n");
    assert!(
        stderr(&out)
            .contains("could not be placed in the systemd unit app-hutch-hutch.portal.test-"),
        "{}",
        stderr(&out)
    );
    assert_eq!(assigned(&bus).len(), before, "{:?}", assigned(&bus));
    drop(bus);
    drop(layout);
}

/// A session bus with xdg-desktop-portal and its GTK backend on display
/// `d`: the bus's socket and the processes (dropped in order: portal,
/// backend, bus).
fn gtk_portal_bus(s: &Scratch, d: &common::x11::XDisplay) -> (PathBuf, Vec<Process>) {
    use common::x11;
    let display = format!(":{}", d.number);
    // The bus, then the backend on it, then the portal (which finds it).
    let bus_socket = s.runtime().join("fc-bus");
    let config = s.write(
        "fc-bus.conf",
        &format!(
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig><type>session</type><listen>unix:path={}</listen><auth>EXTERNAL</auth><policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/><allow own=\"*\"/></policy></busconfig>\n",
            bus_socket.display()
        ),
    );
    let address = format!("unix:path={}", bus_socket.display());
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
    let daemon = Process(daemon);
    let desktop_env = |c: &mut std::process::Command| {
        c.env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("DISPLAY", &display)
            .env("XAUTHORITY", &d.xauthority)
            .env("XDG_CURRENT_DESKTOP", "GNOME")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    };
    let mut gtk = s.as_user(Path::new("/usr/libexec/xdg-desktop-portal-gtk"));
    desktop_env(&mut gtk);
    let gtk = Process(gtk.spawn().unwrap());
    let has_owner = |name: &str| {
        let out = s
            .as_user(Path::new("/usr/bin/dbus-send"))
            .args([
                &format!("--bus={address}"),
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                &format!("string:{name}"),
            ])
            .output()
            .unwrap();
        stdout(&out).contains("boolean true")
    };
    x11::wait_until(
        || has_owner("org.freedesktop.impl.portal.desktop.gtk"),
        "xdg-desktop-portal-gtk on the bus",
    );
    let mut portal = s.as_user(Path::new(PORTAL));
    desktop_env(&mut portal);
    let portal = Process(portal.spawn().unwrap());
    x11::wait_until(
        || has_owner("org.freedesktop.portal.Desktop"),
        "xdg-desktop-portal on the bus",
    );
    (bus_socket, vec![portal, gtk, daemon])
}

/// A FileChooser request from the sandbox, through the proxy, to the real
/// portal and its GTK backend (xdg-desktop-portal-gtk on an Xvfb display):
/// the call makes a Request object, the user (xdotool) dismisses the
/// dialog, and the portal's Response signal, sent to the caller alone,
/// reaches it through the proxy. The client is tests/portals/ask.py (no
/// D-Bus library: Python's socket module).
#[test]
fn a_file_chooser_request_gets_its_response_through_the_proxy() {
    use common::x11;
    if !installed()
        || !common::installed(&["Xvfb", "xauth", "xdotool", "python3"])
        || !Path::new("/usr/libexec/xdg-desktop-portal-gtk").exists()
    {
        skip("xdg-desktop-portal-gtk, Xvfb, xdotool or python3 is missing (.ci/run installs them)");
        return;
    }
    let s = Scratch::new();
    let d = x11::xvfb(&s);
    let (bus_socket, _processes) = gtk_portal_bus(&s, &d);
    let address = format!("unix:path={}", bus_socket.display());
    let script = s.write("ask.py", include_str!("portals/ask.py"));

    // Runs the client in a sandbox of `profile`; dismisses the dialog once
    // it asked; returns its output.
    let ask = |profile: &str, title: &str| -> String {
        let mut child = s
            .hutch(&["run", "--profile", profile, "--", "python3"])
            .arg(&script)
            .arg(title)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _guard = KillOnDrop(child.id());
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        if first == "asked\n" {
            // GTK may replace the dialog's window while it maps it (a
            // BadWindow for the one just found): found again, until the
            // key reaches one or 20 s have passed.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let dismissed = x11::x_client(&s, &d, "timeout")
                    .args(["10", "xdotool", "search", "--sync", "--onlyvisible"])
                    .args(["--name", title])
                    .args(["windowfocus", "--sync", "%1", "key", "Escape"])
                    .output()
                    .unwrap();
                if dismissed.status.success() {
                    break;
                }
                assert!(Instant::now() < deadline, "{dismissed:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "{first}{rest}\n{err}");
        first + &rest
    };

    let granted = profile(&s, "chooser", "[dbus]\nportals = [\"FileChooser\"]\n");
    let said = ask(&granted, "hutch-granted-pick");
    assert!(said.starts_with("asked\nresponse "), "{said}");
    // Not granted: the proxy answers the call itself.
    let other = profile(&s, "other", "[dbus]\nportals = [\"NetworkMonitor\"]\n");
    assert_eq!(
        ask(&other, "hutch-denied-pick"),
        "org.freedesktop.DBus.Error.AccessDenied\n"
    );
    // The control: the bus itself, where the request goes through.
    let direct = profile(
        &s,
        "fc-direct",
        &format!(
            "[[mount]]\ntype = \"bind\"\nsrc = \"{0}\"\ndst = \"{0}\"\n[env.set]\nDBUS_SESSION_BUS_ADDRESS = \"{1}\"\n",
            bus_socket.display(),
            address
        ),
    );
    assert!(
        ask(&direct, "hutch-direct-pick").starts_with("asked\nresponse "),
        "directly on the bus"
    );
}
