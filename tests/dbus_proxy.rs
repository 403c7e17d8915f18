//! `[dbus]` against a real session bus: a `dbus-daemon` of the test user,
//! two services on it (`dbus-test-tool echo`, which answers every call),
//! and `dbus-send` in the sandbox, whose only way to the bus is the
//! xdg-dbus-proxy hutch starts. Each probe runs twice: through the proxy,
//! where the profile's rules hold, and with the bus's socket bound
//! directly (the negative control), where the same probe gets through, so
//! that no test passes because the probe itself is broken.
//!
//! Tools that are missing (`.ci/run` installs them) make a test print
//! `SKIP: <reason>`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A session bus of the test user, listening on a socket file only, with
/// `org.example.Allowed`, `org.example.Secret` and `org.example.Narrow`
/// owned by services that answer every call.
struct Bus {
    socket: PathBuf,
    _daemon: Process,
    _services: Vec<Process>,
}

impl Bus {
    fn address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }
}

fn session_bus(s: &Scratch) -> Bus {
    // Not in the scratch directory: that is the launcher's working
    // directory, which `default` binds into the sandbox (workdir), and a
    // socket there would be reachable around the proxy.
    let socket = s.runtime().join("test-bus");
    let mut daemon = s
        .as_user(Path::new("/usr/bin/dbus-daemon"))
        .args(["--session", "--nofork", "--nopidfile", "--print-address=1"])
        .arg(format!("--address=unix:path={}", socket.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // It prints its address once it accepts connections.
    let mut line = String::new();
    BufReader::new(daemon.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("unix:path="), "dbus-daemon said {line:?}");
    let daemon = Process(daemon);
    let mut bus = Bus {
        socket,
        _daemon: daemon,
        _services: Vec::new(),
    };
    for name in [
        "org.example.Allowed",
        "org.example.Secret",
        "org.example.Narrow",
    ] {
        let service = s
            .as_user(Path::new("/usr/bin/dbus-test-tool"))
            .args(["echo", &format!("--name={name}")])
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        bus._services.push(Process(service));
        wait_owned(s, &bus, name);
    }
    bus
}

/// Waits until `name` has an owner on the bus.
fn wait_owned(s: &Scratch, bus: &Bus, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = s
            .as_user(Path::new("/usr/bin/dbus-send"))
            .args([
                &format!("--bus={}", bus.address()),
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                &format!("string:{name}"),
            ])
            .output()
            .unwrap();
        if stdout(&out).contains("boolean true") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never appeared on the bus"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The bus's socket bound straight into the sandbox: the control.
fn direct(s: &Scratch, bus: &Bus) -> String {
    profile(
        s,
        "direct",
        &format!(
            "[[mount]]\ntype = \"bind\"\nsrc = \"{0}\"\ndst = \"{0}\"\n[env.set]\nDBUS_SESSION_BUS_ADDRESS = \"{1}\"\n",
            bus.socket.display(),
            bus.address()
        ),
    )
}

fn run_sh(s: &Scratch, bus: &Bus, profile: &str, script: &str) -> Output {
    s.hutch(&["run", "--profile", profile, "--", "sh", "-c", script])
        .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
        .output()
        .unwrap()
}

/// A call to NAME's `Ping`, then the outcome: `answered` or the error's name.
fn call(name: &str) -> String {
    call_at(name, "/x")
}

/// [`call`] on the object at `path`.
fn call_at(name: &str, path: &str) -> String {
    format!(
        "r=$(dbus-send --session --print-reply --dest={name} {path} {name}.Ping 2>&1) && echo answered || echo \"$r\" | grep -o 'org.freedesktop.DBus.Error.[A-Za-z]*' | head -1"
    )
}

/// `RequestName(NAME)`, then `owned` or the error's name.
fn request(name: &str) -> String {
    format!(
        "r=$(dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.RequestName string:{name} uint32:0 2>&1) && echo \"$r\" | grep -q 'uint32 1' && echo owned || echo \"$r\" | grep -o 'org.freedesktop.DBus.Error.[A-Za-z]*' | head -1"
    )
}

/// An `AddMatch` with `eavesdrop` written as GHSA-vjp5-hjfm-7677 writes
/// it (a space before `=`), which xdg-dbus-proxy before 0.1.7 let
/// through: dbus-daemon takes it and copies the app every message on the
/// bus. `accepted`, or the error's name.
const EAVESDROP: &str = "r=$(dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.AddMatch \"string:eavesdrop ='true',type='method_call'\" 2>&1) && echo accepted || echo \"$r\" | grep -o 'org.freedesktop.DBus.Error.[A-Za-z]*' | head -1";

const RULES: &str = "[dbus.session]\ntalk = [\"org.example.Allowed\"]\nown = [\"org.example.Mine.*\"]\ncall = [\"org.example.Narrow=org.example.Narrow.Ping@/allowed\"]\n";

#[test]
fn the_proxy_lets_through_exactly_what_the_rules_grant() {
    if !installed(&[
        "dbus-daemon",
        "dbus-send",
        "dbus-test-tool",
        "xdg-dbus-proxy",
    ]) {
        return;
    }
    let s = Scratch::new();
    let bus = session_bus(&s);
    let script = [
        "echo \"$DBUS_SESSION_BUS_ADDRESS\"".to_string(),
        call("org.example.Allowed"),
        call("org.example.Secret"),
        call_at("org.example.Narrow", "/allowed"),
        call_at("org.example.Narrow", "/x"),
        request("org.example.Mine.Window"),
        request("org.example.Other"),
        EAVESDROP.to_string(),
    ]
    .join("; ");

    let filtered = profile(&s, "filtered", RULES);
    let uid = test_uid();
    assert_eq!(
        ok(&run_sh(&s, &bus, &filtered, &script)),
        format!(
            "unix:path=/run/user/{uid}/bus\nanswered\norg.freedesktop.DBus.Error.ServiceUnknown\nanswered\norg.freedesktop.DBus.Error.AccessDenied\nowned\norg.freedesktop.DBus.Error.ServiceUnknown\norg.freedesktop.DBus.Error.AccessDenied\n"
        ),
        "through the proxy"
    );

    // The control: the same probes on the bus itself all get through.
    let direct = direct(&s, &bus);
    assert_eq!(
        ok(&run_sh(&s, &bus, &direct, &script)),
        format!(
            "{}\nanswered\nanswered\nanswered\nanswered\nowned\nowned\naccepted\n",
            bus.address()
        ),
        "directly on the bus"
    );
}

#[test]
fn without_a_dbus_table_there_is_no_bus() {
    if !installed(&["dbus-daemon", "dbus-send", "dbus-test-tool"]) {
        return;
    }
    let s = Scratch::new();
    let bus = session_bus(&s);
    let p = profile(&s, "nobus", "[desktop]\n");
    let out = ok(&run_sh(
        &s,
        &bus,
        &p,
        &format!(
            "echo \"[$DBUS_SESSION_BUS_ADDRESS]\"; ls \"$XDG_RUNTIME_DIR\"; {}",
            call("org.example.Allowed").replace("--session", &format!("--bus={}", bus.address()))
        ),
    ));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("[]"), "the variable is removed");
    // The host's socket is not in the sandbox at all.
    assert_ne!(out.lines().last(), Some("answered"), "{out}");
    // The control: with the grant, the same call is answered.
    let p = profile(
        &s,
        "bus",
        "[dbus.session]\ntalk = [\"org.example.Allowed\"]\n",
    );
    assert!(ok(&run_sh(&s, &bus, &p, &call("org.example.Allowed"))).ends_with("answered\n"));
}

/// The proxy's pid, from `-v`'s line on the launcher's stderr.
fn proxy_pid(stderr: &mut impl BufRead) -> i32 {
    let mut line = String::new();
    let mut said = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no proxy line in {said}"
        );
        said.push_str(&line);
        if let Some(rest) = line.split("D-Bus proxy running (pid ").nth(1) {
            return rest.split(')').next().unwrap().parse().unwrap();
        }
    }
}

/// The xdg-dbus-proxy process itself (the program, not the `hutch run`
/// that starts it), of this test's launch: the one reading `--args=0`.
fn proxy_process() -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    let args: Vec<&[u8]> = c.split(|&b| b == 0).collect();
                    args.first()
                        .is_some_and(|a| a.ends_with(b"/xdg-dbus-proxy"))
                        && args.contains(&&b"--args=0"[..])
                })
            });
        if let Some(pid) = found {
            return pid;
        }
        assert!(Instant::now() < deadline, "no xdg-dbus-proxy process");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_proxy(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("xdg-dbus-proxy"))
}

fn gone_within(pid: i32, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if !is_proxy(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    !is_proxy(pid)
}

#[test]
fn the_proxy_ends_with_the_sandbox_and_with_a_killed_launcher() {
    if !installed(&["dbus-daemon", "dbus-test-tool", "xdg-dbus-proxy"]) {
        return;
    }
    let s = Scratch::new();
    let bus = session_bus(&s);
    let p = profile(&s, "bus", RULES);
    for killed in [false, true] {
        let mut child = s
            .hutch(&[
                "run",
                "-v",
                "--profile",
                &p,
                "--",
                "sh",
                "-c",
                "echo ready; read x",
            ])
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let guard = KillOnDrop(child.id());
        let pid = proxy_pid(&mut BufReader::new(child.stderr.take().unwrap()));
        let mut ready = [0u8; 6];
        child.stdout.take().unwrap().read_exact(&mut ready).unwrap();
        assert!(is_proxy(pid), "running while the sandbox runs");
        // The proxy itself runs in a sandbox of its own: another mount
        // namespace, where the scratch directory (the caller's home) is
        // not, as it is for this test (the control).
        let proxy = proxy_process();
        let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
        assert_ne!(ns(&proxy.to_string()), ns("self"));
        let home = s.home();
        let rel = home.strip_prefix("/").unwrap();
        assert!(Path::new("/proc/self/root").join(rel).exists());
        assert!(!Path::new(&format!("/proc/{proxy}/root")).join(rel).exists());
        if killed {
            drop(guard);
        } else {
            drop(child.stdin.take());
            drop(guard);
        }
        let _ = child.wait();
        assert!(
            gone_within(pid, Duration::from_secs(10)),
            "the proxy outlived the launcher (killed: {killed})"
        );
    }
}

#[test]
fn a_proxy_that_cannot_start_stops_the_launch() {
    if !installed(&["dbus-daemon", "dbus-test-tool"]) {
        return;
    }
    let s = Scratch::new();
    let bus = session_bus(&s);
    let p = profile(&s, "bus", RULES);
    // A proxy that fails as the real one does when it cannot listen.
    let fake = s.write(
        "fakebin/xdg-dbus-proxy",
        "#!/bin/sh\necho 'Failed to start proxy' >&2\nexit 3\n",
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = s
        .hutch(&["run", "--profile", &p, "--", "echo", "payload ran"])
        .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", fake.parent().unwrap().display()),
        )
        .output()
        .unwrap();
    // The probe of its fixes (helpers::dbus_probe) is the first to start it.
    fails_with(
        &out,
        125,
        "refusing the D-Bus proxy: the check for the holes its security fixes closed failed: xdg-dbus-proxy exited before it was listening",
    );
    assert!(stderr(&out).contains("(status 3)"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("payload ran"));
}

/// A stand-in for xdg-dbus-proxy that runs the real one without its
/// filter (only `--fd`, the bus and the listening path are kept): the
/// control for the probe of the proxy's fixes, which must find both holes
/// open on it.
fn unfiltered_proxy(s: &Scratch) -> PathBuf {
    let fake = s.write(
        "unfiltered/xdg-dbus-proxy",
        // Launched by hutch, the bus and path come in the argument file
        // on stdin (`--args=0`); the probe gives them on the command line.
        "#!/bin/sh\nif [ \"$2\" = --args=0 ]; then set -- \"$1\" $(tr '\\0' '\\n' | head -n 2); fi\nexec /usr/bin/xdg-dbus-proxy \"$1\" \"$2\" \"$3\"\n",
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    fake.parent().unwrap().to_path_buf()
}

fn doctor_line(s: &Scratch, path: &str) -> String {
    let out = s.hutch(&["doctor"]).env("PATH", path).output().unwrap();
    stdout(&out)
        .lines()
        .find(|l| l.contains("xdg-dbus-proxy "))
        .unwrap_or_else(|| panic!("no xdg-dbus-proxy line in {}", stdout(&out)))
        .to_string()
}

#[test]
fn doctor_tries_the_proxy_for_the_holes_its_fixes_closed() {
    if !installed(&["dbus-daemon", "xdg-dbus-proxy"]) {
        return;
    }
    let s = Scratch::new();
    // Debian 12's 0.1.4-3+deb12u2 carries both fixes (its version does
    // not say so).
    let line = doctor_line(&s, "/usr/bin:/bin");
    assert!(line.starts_with("ok "), "{line}");
    assert!(
        line.contains("eavesdrop-match bypass (GHSA-vjp5-hjfm-7677): fixed; method call passed off as a reply (GHSA-r7hp-698j-2h6c): fixed"),
        "{line}"
    );
    // The control: without the filter, both escapes get through.
    let fake = unfiltered_proxy(&s);
    let line = doctor_line(&s, &format!("{}:/usr/bin:/bin", fake.display()));
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(
        line.contains("(GHSA-vjp5-hjfm-7677): VULNERABLE; method call passed off as a reply (GHSA-r7hp-698j-2h6c): VULNERABLE"),
        "{line}"
    );
}

#[test]
fn a_proxy_with_a_known_hole_is_refused_unless_best_effort() {
    if !installed(&[
        "dbus-daemon",
        "dbus-send",
        "dbus-test-tool",
        "xdg-dbus-proxy",
    ]) {
        return;
    }
    let s = Scratch::new();
    let bus = session_bus(&s);
    let fake = unfiltered_proxy(&s);
    let path = format!("{}:/usr/bin:/bin", fake.display());
    let required = profile(&s, "required", RULES);
    let out = s
        .hutch(&["run", "--profile", &required, "--", "echo", "payload ran"])
        .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
        .env("PATH", &path)
        .output()
        .unwrap();
    fails_with(&out, 125, "refusing the D-Bus proxy: ");
    assert!(
        stderr(&out).contains("has a known hole: an app can eavesdrop on the whole bus"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("payload ran"));
    // Best-effort: used, with a warning, and what it lets through shows
    // that the probe was right (the call to a name not granted answers).
    let lax = profile(
        &s,
        "lax",
        &format!("{RULES}[desktop]\nenforce = \"best-effort\"\n"),
    );
    let out = s
        .hutch(&[
            "run",
            "--profile",
            &lax,
            "--",
            "sh",
            "-c",
            &call("org.example.Secret"),
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(ok(&out), "answered\n");
    assert!(
        stderr(&out).contains("hutch: warning: the D-Bus proxy: ")
            && stderr(&out).contains("used anyway"),
        "{}",
        stderr(&out)
    );
    // The real proxy in the same place is used without a word.
    let out = run_sh(&s, &bus, &required, &call("org.example.Secret"));
    assert_eq!(ok(&out), "org.freedesktop.DBus.Error.ServiceUnknown\n");
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

/// `hutch ps --json`, parsed.
fn ps_json(s: &Scratch) -> Vec<serde_json::Value> {
    let out = ok(&s.hutch(&["ps", "--json"]).output().unwrap());
    serde_json::from_str(&out).unwrap()
}

#[test]
fn the_proxys_sandbox_is_listed_as_a_helper_of_the_app_and_not_entered() {
    if !installed(&["dbus-daemon", "dbus-test-tool", "xdg-dbus-proxy"]) {
        return;
    }
    let s = Scratch::new();
    let bus = session_bus(&s);
    let p = profile(&s, "bus", RULES);
    let mut child = s
        .hutch(&[
            "run",
            "--name",
            "app",
            "--profile",
            &p,
            "--",
            "sh",
            "-c",
            "echo ready; read x",
        ])
        .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child.id());
    let mut ready = [0u8; 6];
    child.stdout.take().unwrap().read_exact(&mut ready).unwrap();

    let listed = ps_json(&s);
    assert_eq!(listed.len(), 2, "{listed:?}");
    // The app first, then its helper.
    assert_eq!(listed[0]["name"], "app");
    assert!(listed[0].get("helper").is_none());
    let helper = listed[1]["name"].as_str().unwrap().to_string();
    assert_eq!(listed[0]["helpers"], serde_json::json!([helper]));
    assert_eq!(
        listed[1]["helper"],
        serde_json::json!({"kind": "dbus-proxy", "of": "app"})
    );
    let text = ok(&s.hutch(&["ps"]).output().unwrap());
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert!(rows[0].starts_with("app "), "{text}");
    assert!(
        rows[1].starts_with(&format!("`- {helper} ")) && rows[1].contains("(dbus-proxy of app)"),
        "{text}"
    );

    // exec and stop refuse the helper, naming the app's sandbox; it runs on.
    let out = s.hutch(&["exec", &helper, "--", "true"]).output().unwrap();
    fails_with(
        &out,
        125,
        &format!("`{helper}` is the D-Bus proxy of sandbox `app`"),
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    let out = s.hutch(&["stop", &helper]).output().unwrap();
    fails_with(&out, 125, "`hutch stop app` stops both");
    assert_eq!(ps_json(&s).len(), 2);
    // The app's sandbox is entered as ever (the control).
    assert_eq!(
        ok(&s
            .hutch(&["exec", "app", "--", "echo", "in"])
            .output()
            .unwrap()),
        "in\n"
    );
    ok(&s.hutch(&["stop", "app"]).output().unwrap());
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ps_json(&s).is_empty() {
        assert!(Instant::now() < deadline, "the helper outlived the app");
        std::thread::sleep(Duration::from_millis(20));
    }
}
