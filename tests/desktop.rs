//! `[desktop]` and `[devices]` with real servers: an X client in the
//! sandbox draws on an Xvfb display (checked in a screenshot's pixels),
//! a Wayland client talks to a headless weston, `pactl` to a PulseAudio
//! daemon, and a granted /dev/fuse opens; each with the same probe failing
//! where the grant is missing, so that none can pass by accident. The
//! Wayland security context is checked against a small fake compositor in
//! this file, because no compositor that offers it can be installed on
//! Debian 12 (weston 10 and sway 1.7 predate wp_security_context_v1): that
//! test shows what hutch sends and that the app connects through the
//! registered socket, not that a compositor then withholds anything.
//!
//! Every server runs as the unprivileged test user, on unix sockets only.
//! Tools that are missing (`.ci/run` installs them) make a test print
//! `SKIP: <reason>`.

mod common;

use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::x11::*;
use common::*;

// ---- Tools and servers -------------------------------------------------------

/// `hutch run --profile PROFILE -- sh -c SCRIPT` with extra environment.
fn run_sh(s: &Scratch, profile: &str, env: &[(&str, &str)], script: &str) -> Output {
    let mut c = s.hutch(&["run", "--profile", profile, "--", "sh", "-c", script]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

// ---- X11 on the host display -------------------------------------------------

const X11_HOST: &str = "[desktop]\ndisplay = \"x11\"\nx11 = \"host\"\n";

#[test]
fn an_x11_app_in_the_sandbox_draws_on_the_host_display() {
    if !installed(&["Xvfb", "xauth", "xwd", "xlogo", "xdpyinfo"]) {
        return;
    }
    let s = Scratch::new();
    let d = xvfb(&s);
    let p = profile(&s, "x11", X11_HOST);
    let display = format!(":{}", d.number);
    let env = [
        ("DISPLAY", display.as_str()),
        ("XAUTHORITY", d.xauthority.to_str().unwrap()),
    ];
    assert!(
        is_black(Image::take(&s, &d).rgb(90, 90)),
        "the root starts black"
    );

    let mut app = s.hutch(&["run", "--profile", &p, "--"]);
    app.args([
        "xlogo",
        "-geometry",
        "100x100+40+40",
        "-bg",
        "red",
        "-fg",
        "red",
    ]);
    for (k, v) in env {
        app.env(k, v);
    }
    let _app = Server(app.stdout(Stdio::null()).spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let shot = loop {
        let shot = Image::take(&s, &d);
        if is_red(shot.rgb(90, 90)) {
            break shot;
        }
        assert!(
            Instant::now() < deadline,
            "the sandboxed xlogo's red window never appeared on the display"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // The window, and only it: its corners are red, outside is black.
    assert!(is_red(shot.rgb(41, 41)) && is_red(shot.rgb(138, 138)));
    assert!(is_black(shot.rgb(20, 20)) && is_black(shot.rgb(300, 220)));

    // Inside: the hostname is hutch's, the cookie a private file matching it.
    let out = run_sh(
        &s,
        &p,
        &env,
        "hostname; echo \"$DISPLAY $XAUTHORITY\"; xdpyinfo >/dev/null && echo connected",
    );
    let inside = ok(&out);
    let uid = test_uid();
    assert_eq!(
        inside,
        format!(
            "hutch\n:{}.0 /run/user/{uid}/Xauthority\nconnected\n",
            d.number
        )
    );
}

#[test]
fn without_the_grant_or_with_the_hosts_cookie_the_display_refuses() {
    if !installed(&["Xvfb", "xauth", "xdpyinfo"]) {
        return;
    }
    let s = Scratch::new();
    let d = xvfb(&s);
    let display = format!(":{}", d.number);
    let env = [
        ("DISPLAY", display.as_str()),
        ("XAUTHORITY", d.xauthority.to_str().unwrap()),
    ];
    let probe = "xdpyinfo >/dev/null 2>&1 && echo connected || echo refused";
    // The probe works outside.
    let out = x_client(&s, &d, "xdpyinfo").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // No [desktop]: no socket inside, whatever the environment says.
    let p = profile(&s, "plain", "[env]\nkeep = [\"DISPLAY\", \"XAUTHORITY\"]\n");
    assert_eq!(ok(&run_sh(&s, &p, &env, probe)), "refused\n");
    // The socket and the user's own Xauthority bound by hand: its cookie
    // is filed under the host's name, which the sandbox's hostname `hutch`
    // does not match (what the private wildcard file solves)...
    let manual = format!(
        "[env]\nkeep = [\"DISPLAY\"]\nset = {{ XAUTHORITY = \"/tmp/xauth\" }}\n\
         [[mount]]\ntype = \"ro-bind\"\nsrc = \"/tmp/.X11-unix/X{n}\"\ndst = \"/tmp/.X11-unix/X{n}\"\n\
         [[mount]]\ntype = \"ro-bind\"\nsrc = \"{xa}\"\ndst = \"/tmp/xauth\"\n",
        n = d.number,
        xa = d.xauthority.display()
    );
    let p = profile(&s, "manual", &manual);
    assert_eq!(ok(&run_sh(&s, &p, &env, probe)), "refused\n");
    // ...and with the host's hostname, the same binds connect.
    let p = profile(
        &s,
        "manual-host",
        &format!("hostname = \"{}\"\n{manual}", hostname()),
    );
    assert_eq!(ok(&run_sh(&s, &p, &env, probe)), "connected\n");
}

#[test]
fn x11_with_the_hosts_network_namespace_avoids_the_hosts_abstract_socket() {
    if !installed(&["Xvfb", "xauth", "xdpyinfo"]) {
        return;
    }
    if hutch::landlock::probe().abi() < 6 {
        // tests/desktop_vm.rs checks the refusal on such a kernel.
        skip(
            "Landlock ABI 6 (abstract socket scoping) is missing: a display with the host's network namespace is refused here",
        );
        return;
    }
    let s = Scratch::new();
    let d = xvfb(&s);
    let display = format!(":{}", d.number);
    let env = [
        ("DISPLAY", display.as_str()),
        ("XAUTHORITY", d.xauthority.to_str().unwrap()),
    ];
    let probe = "echo $DISPLAY; xdpyinfo >/dev/null 2>&1 && echo connected || echo refused";
    let p = profile(
        &s,
        "x11-net",
        &format!("[namespaces]\nnet = false\n{X11_HOST}"),
    );
    let out = ok(&run_sh(&s, &p, &env, probe));
    let (inside, result) = out.trim().split_once('\n').unwrap();
    assert_eq!(result, "connected");
    assert_ne!(
        inside,
        format!("{display}.0"),
        "another display number inside"
    );
    // The negative control: the socket bound at its own number. libxcb
    // tries the abstract socket @/tmp/.X11-unix/XN first, which the host
    // has in this network namespace; Landlock's scope answers EPERM and
    // libxcb gives up without trying the bound path...
    let manual = format!(
        "[env]\nkeep = [\"DISPLAY\", \"XAUTHORITY\"]\n\
         [[mount]]\ntype = \"ro-bind\"\nsrc = \"/tmp/.X11-unix/X{n}\"\ndst = \"/tmp/.X11-unix/X{n}\"\n\
         [[mount]]\ntype = \"ro-bind\"\nsrc = \"{xa}\"\ndst = \"{xa}\"\n",
        n = d.number,
        xa = d.xauthority.display()
    );
    let host = format!("hostname = \"{}\"\n", hostname());
    let p = profile(
        &s,
        "manual-net",
        &format!("{host}[namespaces]\nnet = false\n{manual}"),
    );
    assert_eq!(
        ok(&run_sh(&s, &p, &env, probe)),
        format!("{display}\nrefused\n")
    );
    // ...which it does in the sandbox's own network namespace.
    let p = profile(&s, "manual-own-net", &format!("{host}{manual}"));
    assert_eq!(
        ok(&run_sh(&s, &p, &env, probe)),
        format!("{display}\nconnected\n")
    );
}

#[test]
fn a_tcp_display_or_a_missing_socket_is_a_one_line_error() {
    let s = Scratch::new();
    let p = profile(&s, "x11", X11_HOST);
    let out = run_sh(&s, &p, &[("DISPLAY", "localhost:10.0")], "true");
    fails_with(&out, 125, "names an X server over TCP");
    let out = run_sh(&s, &p, &[("DISPLAY", ":4711")], "true");
    fails_with(&out, 125, "/tmp/.X11-unix/X4711");
    fails_with(&out, 125, "does not exist");
    assert_eq!(
        stderr(&out)
            .lines()
            .filter(|l| l.starts_with("error"))
            .count(),
        1
    );
    // Best-effort: it runs without a display, and says so.
    let p = profile(
        &s,
        "x11-maybe",
        &format!("{X11_HOST}enforce = \"best-effort\"\n"),
    );
    let out = run_sh(
        &s,
        &p,
        &[("DISPLAY", ":4711")],
        "echo ran; echo ${DISPLAY:-none}",
    );
    assert_eq!(ok(&out), "ran\nnone\n");
    assert!(
        stderr(&out)
            .contains("warning: skipped (best-effort): the X11 socket /tmp/.X11-unix/X4711"),
        "{}",
        stderr(&out)
    );
    let explain = s
        .hutch(&["run", "--explain", "--profile", &p, "--", "true"])
        .env("DISPLAY", ":4711")
        .output()
        .unwrap();
    assert!(ok(&explain).contains("  skipped   the X11 socket /tmp/.X11-unix/X4711"));
}

// ---- Nested X11 (Xephyr) -----------------------------------------------------

const X11_NESTED: &str = "[desktop]\ndisplay = \"x11\"\nx11 = \"nested\"\n";
const HOST_WINDOW: &str = "hutch-host-window";

/// A red window of the host's own, titled [`HOST_WINDOW`], at 250,170.
fn host_window(s: &Scratch, d: &XDisplay) -> Server {
    let w = Server(
        x_client(s, d, "xlogo")
            .args(["-geometry", "60x60+250+170", "-bg", "red", "-fg", "red"])
            .args(["-title", HOST_WINDOW])
            .spawn()
            .unwrap(),
    );
    wait_until(
        || is_red(Image::take(s, d).rgb(280, 200)),
        "the host window",
    );
    w
}

#[test]
fn a_nested_display_shows_the_app_on_the_host_and_nothing_of_the_host_to_it() {
    if !installed(&[
        "Xvfb", "xauth", "xwd", "xlogo", "xwininfo", "xdotool", "Xephyr",
    ]) {
        return;
    }
    let s = Scratch::new();
    let d = xvfb(&s);
    let _host = host_window(&s, &d);
    let display = format!(":{}", d.number);
    let env = [
        ("DISPLAY", display.as_str()),
        ("XAUTHORITY", d.xauthority.to_str().unwrap()),
    ];
    let nested = profile(&s, "nested", X11_NESTED);

    // The app's blue window, in the nested server's window on the host.
    let mut app = s.hutch(&["run", "--profile", &nested, "--"]);
    app.args([
        "xlogo",
        "-geometry",
        "100x100+40+40",
        "-bg",
        "blue",
        "-fg",
        "blue",
    ]);
    for (k, v) in env {
        app.env(k, v);
    }
    let app = Server(app.stdout(Stdio::null()).spawn().unwrap());
    wait_until(
        || is_blue(Image::take(&s, &d).rgb(90, 90)),
        "the sandboxed xlogo's window on the host display",
    );
    // A new top-level window on the host: the nested server's, titled
    // with the app id.
    let tree = stdout(
        &x_client(&s, &d, "xwininfo")
            .args(["-root", "-tree"])
            .output()
            .unwrap(),
    );
    assert!(tree.contains("\"hutch.nested (hutch)\""), "{tree}");

    // Inside: the nested display, with none of the host's windows to
    // list, find, send input to or capture.
    let probe = format!(
        "echo $DISPLAY; xwininfo -root -tree | grep -c {HOST_WINDOW}; \
         id=$(xdotool search --name {HOST_WINDOW} 2>/dev/null | head -1); \
         [ -n \"$id\" ] && xdotool key --window \"$id\" a 2>/dev/null && echo injected || echo no-window"
    );
    let inside = ok(&run_sh(&s, &nested, &env, &probe));
    let mut lines = inside.lines();
    assert_ne!(lines.next(), Some(format!("{display}.0").as_str()));
    assert_eq!(lines.collect::<Vec<_>>(), ["0", "no-window"], "{inside}");
    let shot = run_sh(&s, &nested, &env, "xwd -root -silent");
    assert!(shot.status.success(), "{}", stderr(&shot));
    assert!(
        !any_red(&Image::parse(shot.stdout)),
        "the host window's pixels inside"
    );

    // The control: on the host display itself, the same probes reach the
    // host's window (once the nested server's window no longer covers it).
    drop(app);
    wait_until(
        || is_red(Image::take(&s, &d).rgb(280, 200)),
        "the host window again",
    );
    let host = profile(&s, "host", X11_HOST);
    assert_eq!(
        ok(&run_sh(&s, &host, &env, &probe)),
        format!("{display}.0\n1\ninjected\n")
    );
    let shot = run_sh(&s, &host, &env, "xwd -root -silent");
    assert!(shot.status.success(), "{}", stderr(&shot));
    assert!(is_red(Image::parse(shot.stdout).rgb(280, 200)));
}

#[test]
fn the_nested_server_ends_with_the_sandbox_and_with_a_killed_launcher() {
    if !installed(&["Xvfb", "xauth", "Xephyr"]) {
        return;
    }
    let s = Scratch::new();
    let d = xvfb(&s);
    let display = format!(":{}", d.number);
    for killed in [false, true] {
        let name = if killed { "killed" } else { "ended" };
        let p = profile(
            &s,
            name,
            &format!("{X11_NESTED}app_id = \"hutch.nested-{name}\"\n"),
        );
        let title = format!("hutch.nested-{name} (hutch)");
        let mut child = s
            .hutch(&[
                "run",
                "--profile",
                &p,
                "--",
                "sh",
                "-c",
                "echo ready; read x",
            ])
            .env("DISPLAY", &display)
            .env("XAUTHORITY", &d.xauthority)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let guard = KillOnDrop(child.id());
        let mut ready = [0u8; 6];
        child.stdout.take().unwrap().read_exact(&mut ready).unwrap();
        let servers = xephyrs_titled(&title);
        assert_eq!(servers.len(), 1, "one Xephyr while the sandbox runs");
        // `hutch ps` lists Xephyr's sandbox as the app's helper.
        let listed: Vec<serde_json::Value> =
            serde_json::from_str(&ok(&s.hutch(&["ps", "--json"]).output().unwrap())).unwrap();
        let helper = listed
            .iter()
            .find(|e| e.get("helper").is_some())
            .unwrap_or_else(|| panic!("no helper in {listed:?}"));
        let app = listed
            .iter()
            .find(|e| e.get("helper").is_none())
            .unwrap_or_else(|| panic!("no app in {listed:?}"));
        assert_eq!(helper["helper"]["kind"], "nested-x11");
        assert_eq!(helper["helper"]["of"], app["name"]);
        assert_eq!(app["helpers"], serde_json::json!([helper["name"]]));
        if !killed {
            drop(child.stdin.take());
        }
        drop(guard);
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !xephyrs_titled(&title).is_empty() {
            assert!(
                Instant::now() < deadline,
                "Xephyr outlived the launcher ({name})"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The D-Bus proxy and the nested server start at once: when the proxy
/// fails, the launch stops and takes the nested server (already showing
/// its window, since the fake proxy takes a second to fail) with it.
#[test]
fn a_failing_proxy_ends_the_nested_server_started_beside_it() {
    if !installed(&["Xvfb", "xauth", "Xephyr", "xdg-dbus-proxy", "dbus-daemon"]) {
        return;
    }
    let s = Scratch::new();
    let d = xvfb(&s);
    let display = format!(":{}", d.number);
    // It fails when the launch starts it (arguments on stdin); before,
    // the probe of its security fixes (helpers::dbus_probe) gets the real
    // proxy, which passes.
    let fake = s.write(
        "fakebin/xdg-dbus-proxy",
        "#!/bin/sh\nif [ \"$2\" != --args=0 ]; then exec /usr/bin/xdg-dbus-proxy \"$@\"; fi\nsleep 1\necho 'Failed to start proxy' >&2\nexit 3\n",
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let p = profile(
        &s,
        "both",
        &format!(
            "{X11_NESTED}app_id = \"hutch.both\"\n[dbus.session]\ntalk = [\"org.example.A\"]\n"
        ),
    );
    let out = s
        .hutch(&["run", "--profile", &p, "--", "echo", "payload ran"])
        .env("DISPLAY", &display)
        .env("XAUTHORITY", &d.xauthority)
        // Any socket will do for a proxy that never connects.
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path=/tmp/.X11-unix/X{}", d.number),
        )
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", fake.parent().unwrap().display()),
        )
        .output()
        .unwrap();
    fails_with(&out, 125, "the D-Bus proxy did not start");
    assert!(!stdout(&out).contains("payload ran"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !xephyrs_titled("hutch.both (hutch)").is_empty() {
        assert!(
            Instant::now() < deadline,
            "Xephyr outlived a launch whose proxy failed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- The shipped xterm profile -----------------------------------------------

#[test]
fn the_shipped_xterm_profile_maps_its_window_with_sound_and_a_filtered_bus() {
    if !installed(&[
        "Xvfb",
        "xauth",
        "xwd",
        "Xephyr",
        "xterm",
        "pulseaudio",
        "pactl",
        "dbus-daemon",
        "dbus-send",
        "xdg-dbus-proxy",
    ]) {
        return;
    }
    let s = Scratch::new();
    let d = xvfb(&s);
    let _pulse = Server(
        s.as_user(&bin("pulseaudio"))
            .args(["-n", "--daemonize=no", "--exit-idle-time=-1"])
            .args([
                "--load=module-native-protocol-unix",
                "--load=module-null-sink",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&s.runtime().join("pulse/native"));
    // The session bus at $XDG_RUNTIME_DIR/bus, where hutch looks without
    // DBUS_SESSION_BUS_ADDRESS.
    let bus = s.runtime().join("bus");
    let _bus = Server(
        s.as_user(&bin("dbus-daemon"))
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address=unix:path={}", bus.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&bus);
    let display = format!(":{}", d.number);
    let env = [
        ("DISPLAY", display.as_str()),
        ("XAUTHORITY", d.xauthority.to_str().unwrap()),
    ];
    assert!(
        is_black(Image::take(&s, &d).rgb(60, 40)),
        "the root starts black"
    );

    // Its grants, all there (none skipped), and working inside.
    let mut c = s.hutch(&[
        "run",
        "-v",
        "--profile",
        "xterm",
        "--",
        "sh",
        "-c",
        "pactl info >/dev/null && echo sound; dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.ListNames >/dev/null && echo bus",
    ]);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert_eq!(ok(&out), "sound\nbus\n");
    let said = stderr(&out);
    assert!(
        said.contains(&format!(
            "desktop: x11 nested (Xephyr) on the host display {display} as :100, audio, filtered session bus (1 rules) (app id hutch.xterm)"
        )) && !said.contains("skipped (best-effort)"),
        "{said}"
    );

    // Its own command, in a window on the host display: a green terminal.
    let mut app = s.hutch(&["run", "--profile", "xterm", "--"]);
    app.args([
        "/usr/bin/xterm",
        "-geometry",
        "20x5+20+20",
        "-bg",
        "green",
        "-fg",
        "green",
    ]);
    for (k, v) in env {
        app.env(k, v);
    }
    let _app = Server(app.stdout(Stdio::null()).spawn().unwrap());
    wait_until(
        || {
            let (r, g, b) = Image::take(&s, &d).rgb(60, 40);
            r < 60 && g > 120 && b < 60
        },
        "the sandboxed xterm's window on the host display",
    );
}

// ---- Wayland -----------------------------------------------------------------

/// Waits until `path` is a socket that accepts connections.
fn wait_for_socket(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
            && UnixStream::connect(path).is_ok();
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never came up",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_wayland_client_connects_and_sees_nothing_else_of_the_runtime_dir() {
    if !installed(&["weston", "wayland-info"]) {
        return;
    }
    let s = Scratch::new();
    let _weston = Server(
        s.as_user(&bin("weston"))
            .args([
                "--backend=headless-backend.so",
                "--socket=hutch-wl",
                "--idle-time=0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&s.runtime().join("hutch-wl"));
    let env = [("WAYLAND_DISPLAY", "hutch-wl")];
    let host_runtime = s.runtime().display().to_string();
    let p = profile(&s, "wl", "[desktop]\ndisplay = \"wayland\"\n");
    let script = format!(
        "wayland-info | grep -c \"'wl_compositor'\"; ls -A \"$XDG_RUNTIME_DIR\"; \
         test -e {host_runtime} && echo visible || echo hidden; echo $WAYLAND_DISPLAY $XDG_SESSION_TYPE"
    );
    let out = ok(&run_sh(&s, &p, &env, &script));
    assert_eq!(out, "1\nwayland-0\nhidden\nwayland-0 wayland\n");
    // weston 10 has no security context: --explain and -v say so.
    let explain = s
        .hutch(&["run", "--explain", "--profile", &p, "--", "true"])
        .env("WAYLAND_DISPLAY", "hutch-wl")
        .output()
        .unwrap();
    assert!(ok(&explain).contains("it offers no security context (wp_security_context_v1)"));
    let verbose = s
        .hutch(&["run", "-v", "--profile", &p, "--", "true"])
        .env("WAYLAND_DISPLAY", "hutch-wl")
        .output()
        .unwrap();
    ok(&verbose);
    assert!(stderr(&verbose).contains("wayland without a security context"));

    // The negative control: the variables kept, no [desktop].
    let p = profile(
        &s,
        "wl-plain",
        "[env]\nkeep = [\"WAYLAND_DISPLAY\", \"XDG_RUNTIME_DIR\"]\n",
    );
    let out = ok(&run_sh(
        &s,
        &p,
        &env,
        "wayland-info >/dev/null 2>&1 && echo connected || echo refused",
    ));
    assert_eq!(out, "refused\n");
    let out = s
        .as_user(&bin("wayland-info"))
        .env("WAYLAND_DISPLAY", "hutch-wl")
        .output()
        .unwrap();
    assert!(out.status.success(), "the probe works outside");
}

#[test]
fn a_missing_compositor_is_a_one_line_error() {
    let s = Scratch::new();
    let p = profile(&s, "wl", "[desktop]\ndisplay = \"wayland\"\n");
    let out = run_sh(&s, &p, &[], "true");
    fails_with(&out, 125, "WAYLAND_DISPLAY is not set");
    let out = run_sh(&s, &p, &[("WAYLAND_DISPLAY", "gone-0")], "true");
    fails_with(&out, 125, "the Wayland socket");
    fails_with(&out, 125, "gone-0 (WAYLAND_DISPLAY) does not exist");
    // `auto` falls back to X11 only when the profile says how.
    let p = profile(&s, "auto", "[desktop]\ndisplay = \"auto\"\n");
    let out = run_sh(&s, &p, &[], "true");
    fails_with(&out, 125, "there is no X11 fallback: `x11` is not set");
}

// ---- The Wayland security context, against a fake compositor -----------------

/// What the fake compositor saw.
#[derive(Default, Debug)]
struct Seen {
    /// set_sandbox_engine, set_app_id, set_instance_id, in order.
    metadata: Vec<String>,
    committed: bool,
    /// The read end of the close pipe hutch sent.
    close_fd: Option<OwnedFd>,
    /// Clients accepted on the security-context socket.
    context_clients: u32,
}

fn word(b: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes(b[i..i + 4].try_into().unwrap())
}

fn message(object: u32, opcode: u32, body: &[u8]) -> Vec<u8> {
    let mut m = object.to_ne_bytes().to_vec();
    m.extend_from_slice(&((((8 + body.len()) as u32) << 16) | opcode).to_ne_bytes());
    m.extend_from_slice(body);
    m
}

fn wl_string(s: &str) -> Vec<u8> {
    let mut b = ((s.len() + 1) as u32).to_ne_bytes().to_vec();
    b.extend_from_slice(s.as_bytes());
    b.push(0);
    while !b.len().is_multiple_of(4) {
        b.push(0);
    }
    b
}

fn read_string(b: &[u8], at: usize) -> String {
    let len = word(b, at) as usize;
    String::from_utf8(b[at + 4..at + 3 + len].to_vec()).unwrap()
}

/// Serves one client: the registry (`globals`), sync, and on the main
/// socket the security-context manager's requests. `refuse` answers the
/// commit with a protocol error.
fn serve(
    mut conn: UnixStream,
    globals: &'static [&'static str],
    seen: Arc<Mutex<Seen>>,
    refuse: bool,
) {
    let mut pending = Vec::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    let (mut registry, mut manager, mut context) = (0, 0, 0);
    loop {
        while pending.len() >= 8 && pending.len() >= (word(&pending, 4) >> 16) as usize {
            let size = (word(&pending, 4) >> 16) as usize;
            let (object, opcode) = (word(&pending, 0), word(&pending, 4) & 0xffff);
            let body = pending[8..size].to_vec();
            pending.drain(..size);
            let mut reply = Vec::new();
            match (object, opcode) {
                (1, 1) => {
                    registry = word(&body, 0);
                    for (i, g) in globals.iter().enumerate() {
                        let mut b = ((i + 1) as u32).to_ne_bytes().to_vec();
                        b.extend(wl_string(g));
                        b.extend_from_slice(&1u32.to_ne_bytes());
                        reply.extend(message(registry, 0, &b));
                    }
                }
                (1, 0) => {
                    let cb = word(&body, 0);
                    reply.extend(message(cb, 0, &0u32.to_ne_bytes()));
                    reply.extend(message(1, 1, &cb.to_ne_bytes()));
                }
                (o, 0) if o == registry && registry != 0 => {
                    let name_len = word(&body, 4) as usize;
                    manager = word(&body, 8 + name_len.div_ceil(4) * 4 + 4);
                }
                (o, 1) if o == manager && manager != 0 => {
                    context = word(&body, 0);
                    assert_eq!(
                        fds.len(),
                        2,
                        "create_listener carries listen_fd and close_fd"
                    );
                    let listen = fds.remove(0);
                    seen.lock().unwrap().close_fd = Some(fds.remove(0));
                    let listener = UnixListener::from(listen);
                    let seen = seen.clone();
                    std::thread::spawn(move || {
                        for c in listener.incoming().flatten() {
                            seen.lock().unwrap().context_clients += 1;
                            let seen = seen.clone();
                            std::thread::spawn(move || {
                                serve(c, &["hutch_test_security_context"], seen, false)
                            });
                        }
                    });
                }
                (o, 1..=3) if o == context && context != 0 => {
                    seen.lock().unwrap().metadata.push(read_string(&body, 0));
                }
                (o, 4) if o == context && context != 0 => {
                    if refuse {
                        let mut b = context.to_ne_bytes().to_vec();
                        b.extend_from_slice(&3u32.to_ne_bytes());
                        b.extend(wl_string("the test refuses this context"));
                        reply.extend(message(1, 0, &b));
                    } else {
                        seen.lock().unwrap().committed = true;
                    }
                }
                _ => {}
            }
            if !reply.is_empty() && conn.write_all(&reply).is_err() {
                return;
            }
        }
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 4]);
        let Ok(msg) = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::empty(),
        ) else {
            return;
        };
        for c in msg.cmsgs().unwrap() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(got) = c {
                // SAFETY: the kernel just handed these descriptors over.
                fds.extend(
                    got.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        let n = msg.bytes;
        if n == 0 {
            return;
        }
        pending.extend_from_slice(&buf[..n]);
        let _ = &mut conn;
    }
}

/// A fake compositor on `path` offering the security-context manager.
fn fake_compositor(path: &Path, refuse: bool) -> Arc<Mutex<Seen>> {
    let listener = UnixListener::bind(path).unwrap();
    // The test runs as root, hutch as the test user: let it connect.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = seen.clone();
    std::thread::spawn(move || {
        for c in listener.incoming().flatten() {
            let seen = shared.clone();
            std::thread::spawn(move || {
                serve(
                    c,
                    &["wp_security_context_manager_v1", "hutch_test_raw_socket"],
                    seen,
                    refuse,
                )
            });
        }
    });
    seen
}

fn hung_up(fd: &OwnedFd) -> bool {
    use std::os::fd::AsFd;
    let mut p = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    nix::poll::poll(&mut p, nix::poll::PollTimeout::from(5000u16)).unwrap();
    p[0].revents()
        .is_some_and(|r| r.contains(nix::poll::PollFlags::POLLHUP))
}

#[test]
fn the_app_connects_through_a_registered_security_context() {
    if !installed(&["wayland-info"]) {
        return;
    }
    let s = Scratch::new();
    let seen = fake_compositor(&s.runtime().join("fake-wl"), false);
    let p = profile(&s, "editor", "[desktop]\ndisplay = \"wayland\"\n");
    let env = [("WAYLAND_DISPLAY", "fake-wl")];
    let explain = s
        .hutch(&["run", "--explain", "--profile", &p, "--", "true"])
        .env("WAYLAND_DISPLAY", "fake-wl")
        .output()
        .unwrap();
    assert!(ok(&explain).contains("registered with the compositor at"));

    let out = ok(&run_sh(
        &s,
        &p,
        &env,
        "wayland-info | grep -o \"'hutch_test_[a-z_]*'\"",
    ));
    // The app reached the socket hutch registered, not the compositor's own.
    assert_eq!(out, "'hutch_test_security_context'\n");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.context_clients, 1);
    assert!(seen.committed);
    assert_eq!(seen.metadata[..2], ["hutch", "hutch.editor"]);
    assert!(
        seen.metadata[2].parse::<u32>().is_ok(),
        "instance: hutch's pid"
    );
    // hutch has exited: the close pipe hangs up, the compositor stops
    // accepting on the socket.
    assert!(hung_up(seen.close_fd.as_ref().unwrap()));
    // The launch directory is gone too.
    let dirs = std::fs::read_dir(s.runtime().join("hutch/desktop"))
        .unwrap()
        .count();
    assert_eq!(dirs, 0);
}

#[test]
fn a_killed_launcher_closes_the_security_context() {
    let s = Scratch::new();
    let seen = fake_compositor(&s.runtime().join("fake-wl"), false);
    let p = profile(&s, "editor", "[desktop]\ndisplay = \"wayland\"\n");
    let mut child = s
        .hutch(&[
            "run",
            "--profile",
            &p,
            "--",
            "sh",
            "-c",
            "echo ready; sleep 60",
        ])
        .env("WAYLAND_DISPLAY", "fake-wl")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(child.id());
    let mut line = [0u8; 6];
    child.stdout.take().unwrap().read_exact(&mut line).unwrap();
    assert_eq!(&line, b"ready\n");
    let close = seen.lock().unwrap().close_fd.take().unwrap();
    assert!(!hung_up_now(&close), "open while the sandbox runs");
    drop(guard);
    let _ = child.wait();
    assert!(
        hung_up(&close),
        "closed by the kernel when hutch is SIGKILLed"
    );
    // The killed launcher's directory is left; the next desktop launch
    // removes it.
    let left = s.runtime().join(format!("hutch/desktop/{}", child.id()));
    assert!(left.exists());
    ok(&run_sh(&s, &p, &[("WAYLAND_DISPLAY", "fake-wl")], "true"));
    assert!(!left.exists());
}

fn hung_up_now(fd: &OwnedFd) -> bool {
    use std::os::fd::AsFd;
    let mut p = [nix::poll::PollFd::new(
        fd.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    nix::poll::poll(&mut p, nix::poll::PollTimeout::ZERO).unwrap();
    p[0].revents()
        .is_some_and(|r| r.contains(nix::poll::PollFlags::POLLHUP))
}

#[test]
fn a_refused_security_context_stops_the_launch() {
    let s = Scratch::new();
    let _seen = fake_compositor(&s.runtime().join("fake-wl"), true);
    let p = profile(&s, "editor", "[desktop]\ndisplay = \"wayland\"\n");
    let out = run_sh(&s, &p, &[("WAYLAND_DISPLAY", "fake-wl")], "echo started");
    fails_with(&out, 125, "registering the sandbox's socket failed");
    fails_with(&out, 125, "the test refuses this context");
    assert!(stdout(&out).is_empty(), "the payload never ran");
}

// ---- Audio -------------------------------------------------------------------

#[test]
fn pactl_reaches_the_sound_server_only_with_audio() {
    if !installed(&["pulseaudio", "pactl"]) {
        return;
    }
    let s = Scratch::new();
    let _pulse = Server(
        s.as_user(&bin("pulseaudio"))
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--load=module-native-protocol-unix",
                "--load=module-null-sink",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_socket(&s.runtime().join("pulse/native"));
    let uid = test_uid();
    let p = profile(&s, "audio", "[desktop]\naudio = true\n");
    let out = ok(&run_sh(
        &s,
        &p,
        &[],
        "pactl info | grep '^Server String'; echo $PULSE_COOKIE",
    ));
    assert_eq!(
        out,
        format!("Server String: unix:/run/user/{uid}/pulse/native\n/run/user/{uid}/pulse/cookie\n")
    );
    // Without audio: nothing to connect to, whatever is kept.
    let p = profile(
        &s,
        "silent",
        "[env]\nkeep = [\"XDG_RUNTIME_DIR\", \"PULSE_SERVER\"]\n",
    );
    let out = ok(&run_sh(
        &s,
        &p,
        &[],
        "pactl info >/dev/null 2>&1 && echo connected || echo refused",
    ));
    assert_eq!(out, "refused\n");
    let out = s.as_user(&bin("pactl")).arg("info").output().unwrap();
    assert!(
        out.status.success(),
        "the probe works outside: {}",
        stderr(&out)
    );
}

// ---- Devices -----------------------------------------------------------------

#[test]
fn a_granted_device_opens_and_the_others_do_not_exist() {
    let fuse_usable = std::fs::metadata("/dev/fuse")
        .is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o006 == 0o006);
    if !fuse_usable {
        skip(
            "/dev/fuse is missing or not 0666 (udev's mode; .ci/run sets it where there is no udev)",
        );
        return;
    }
    let s = Scratch::new();
    let probe = "exec 3<>/dev/fuse && echo opened; test -e /dev/kvm && echo kvm || echo no-kvm; \
                 touch /dev/new 2>/dev/null && echo writable || echo read-only";
    let p = profile(&s, "fuse", "[devices]\nallow = [\"fuse\"]\n");
    assert_eq!(
        ok(&run_sh(&s, &p, &[], probe)),
        "opened\nno-kvm\nread-only\n"
    );
    // Not granted: not there.
    let out = ok(&run_sh(
        &s,
        "default",
        &[],
        "test -e /dev/fuse && echo present || echo absent",
    ));
    assert_eq!(out, "absent\n");
    // A dev-bind entry under /dev works as well now.
    let p = profile(
        &s,
        "dev-bind",
        "[[mount]]\ntype = \"dev-bind\"\nsrc = \"/dev/fuse\"\ndst = \"/dev/fuse\"\n",
    );
    assert_eq!(
        ok(&run_sh(&s, &p, &[], "exec 3<>/dev/fuse && echo opened")),
        "opened\n"
    );
    // `!fuse` takes back an inherited grant.
    s.write(
        "config/hutch/profiles/with-fuse.toml",
        "version = 1\nextends = [\"default\"]\n[devices]\nallow = [\"fuse\"]\n",
    );
    let p = s.write(
        "without.toml",
        "version = 1\nextends = [\"with-fuse\"]\n[devices]\nallow = [\"!fuse\"]\n",
    );
    let out = ok(&run_sh(
        &s,
        p.to_str().unwrap(),
        &[],
        "test -e /dev/fuse && echo present || echo absent",
    ));
    assert_eq!(out, "absent\n");
}

// ---- The shipped viewer profiles (mupdf, feh) --------------------------------

#[test]
fn the_shipped_mupdf_profile_shows_a_pdf_and_cannot_change_it() {
    if !installed(&["Xvfb", "xauth", "xwd", "xwininfo", "Xephyr", "mupdf"]) {
        return;
    }
    let pdf = red_pdf();
    a_viewer_shows_its_file_and_cannot_change_it(
        "mupdf",
        &[],
        "Downloads/paper.pdf",
        &pdf,
        any_red,
    );
}

#[test]
fn the_shipped_feh_profile_shows_an_image_and_cannot_change_it() {
    if !installed(&["Xvfb", "xauth", "xwd", "xwininfo", "Xephyr", "feh"]) {
        return;
    }
    a_viewer_shows_its_file_and_cannot_change_it(
        "feh",
        &[],
        "Pictures/photo.ppm",
        &blue_ppm(),
        any_blue,
    );
}

#[test]
fn the_shipped_mpv_profile_plays_a_clip_and_cannot_change_it() {
    if !installed(&["Xvfb", "xauth", "xwd", "xwininfo", "Xephyr", "mpv"]) {
        return;
    }
    a_viewer_shows_its_file_and_cannot_change_it(
        "mpv",
        // The last frame stays on screen however late the screenshot.
        &["--keep-open=always"],
        "Videos/clip.y4m",
        &blue_y4m(),
        any_blue,
    );
}
