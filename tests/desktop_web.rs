//! The shipped profiles of networked desktop apps: the browsers
//! (firefox-esr, chromium, dillo), the mail client (thunderbird) and the
//! messengers (hexchat, pidgin), each run through its profile by the
//! unprivileged test user on an Xvfb display: the app's window appears
//! there through its nested X server (titled `hutch.NAME (hutch)`) with
//! known pixels (a red page, a red message, the red colours of the user's
//! own settings kept in the app's volume), what the app keeps in its volume
//! is there for the next start, and what the profile denies is checked
//! beside the same probe succeeding outside the sandbox: ~/.ssh unreadable,
//! the file named on the command line not writable, nothing written to the
//! home outside the volume reaches the real home. The browsers' own sandboxes are checked too:
//! their renderers run in user namespaces of their own, which `[seccomp]
//! nested_userns` allows (without it Firefox keeps them in its own, and
//! Chromium refuses to start). In a Wayland session (a headless weston)
//! the browsers and Thunderbird map their windows on the compositor; a
//! SIGKILL of hutch ends Firefox and its helpers and keeps its profile.
//!
//! Nothing here reaches a network: the pages and the message are local
//! files, and hutch runs in a network namespace the test makes, whose only
//! way out leads nowhere, so that what the apps send by themselves through
//! their network (`[network] mode = "user"`, pasta: first-run pages,
//! update checks, DNS) stays on this machine. Programs that are missing (`.ci/run` installs them)
//! make a test print `SKIP: <reason>`.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::x11::*;
use common::*;

/// What every test here needs besides the app.
const X_TOOLS: [&str; 5] = ["Xvfb", "xauth", "xwd", "xwininfo", "Xephyr"];

/// How long a first start may take: a browser creating its profile on a
/// machine that runs other tests (well under a minute when idle).
const START_SECS: u64 = 180;

/// An HTML page (or the body of an HTML message) whose background is red.
const RED_PAGE: &str = "<!doctype html><html><head><title>red</title></head>\
    <body style=\"background:#ff0000;margin:0\"><div style=\"height:3000px\"></div></body></html>\n";

/// A mail message whose HTML body is [`RED_PAGE`].
fn red_message() -> String {
    format!(
        "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\n\
         Subject: A red message\r\nDate: Sat, 05 Dec 2026 12:00:00 +0000\r\n\
         Message-ID: <red@example.org>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/html; charset=utf-8\r\n\r\n{RED_PAGE}"
    )
}

/// Red covers at least an eighth of the host display: the page or the
/// message, not an icon or a logo.
fn red_area(image: &Image) -> bool {
    image.count(is_red) >= image.pixels() / 8
}

/// A window covers at least an eighth of the host display (the nested
/// server's screen is black until the app maps a window).
fn a_window(image: &Image) -> bool {
    image.count(|p| !is_black(p)) >= image.pixels() / 8
}

/// The host directory of the test user's volume `name`.
fn volume(s: &Scratch, name: &str) -> PathBuf {
    s.home().join(".local/share/hutch/volumes").join(name)
}

/// Sets up the network namespace that [`offline`] runs a command in: its
/// loopback, and a veth pair whose one end has an address and the default
/// route (pasta needs one to start), the other end nothing; every address
/// but that end's subnet is behind a `prohibit` route, so that what the
/// apps send out (a browser's first-run pages and update checks) fails at
/// once. The resolver is [`REFUSER`] on this namespace's loopback (named
/// in a private /etc/resolv.conf, which pasta forwards the sandbox's DNS
/// to): the apps look names up (their own host name among them), and an
/// unanswered query would hold each for 20 s. `$1` is the refuser's code;
/// the rest is the command. Its files are made in the working directory
/// (the test's scratch directory, removed with it).
const OFFLINE_NET: &str = "set -e; ip=/usr/sbin/ip; $ip link set lo up; \
    $ip link add v0 type veth peer name v1; $ip addr add 198.51.100.2/24 dev v0; \
    $ip link set v0 up; $ip link set v1 up; $ip route add default via 198.51.100.1; \
    $ip route add prohibit 0.0.0.0/1; $ip route add prohibit 128.0.0.0/1; \
    d=$(mktemp -d -p \"$PWD\"); echo 'nameserver 127.0.0.1' > $d/resolv.conf; chmod 755 $d; \
    chmod 644 $d/resolv.conf; mount --bind $d/resolv.conf /etc/resolv.conf; \
    mkfifo $d/ready; /usr/bin/python3 -c \"$1\" > $d/ready 2>/dev/null </dev/null & \
    read _ < $d/ready; rm $d/ready; shift; exec \"$@\"";

/// A DNS server that answers every query "no such name" (NXDOMAIN) at
/// once, on 127.0.0.1:53 of [`offline`]'s namespace, until its parent (the
/// launcher, once the shell has exec'd it) is gone.
const REFUSER: &str = "import os, socket
parent = os.getppid()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', 53))
s.settimeout(0.2)
print('ready', flush=True)
os.close(1)
while os.getppid() == parent:
    try:
        q, peer = s.recvfrom(4096)
    except socket.timeout:
        continue
    i = 12
    while i < len(q) and q[i]:
        i += q[i] + 1
    if len(q) < 12 or i + 5 > len(q):
        continue
    head = q[:2] + bytes([0x80 | (q[2] & 0x79), 0x83]) + q[4:6] + bytes(6)
    s.sendto(head + q[12:i + 5], peer)
";

/// `cmd` (hutch as the test user) in network and mount namespaces of its
/// own that reach nothing ([`OFFLINE_NET`]), so that the apps' network
/// (pasta, mode "user") has no way out of this machine's test: the same
/// program, arguments, environment and directory; its pid is the
/// launcher's (every step execs the next).
fn offline(cmd: &Command) -> Command {
    let mut c = Command::new("/usr/bin/unshare");
    c.args([
        "-n",
        "-m",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
    ])
    .args([OFFLINE_NET, "sh", REFUSER])
    .arg(cmd.get_program())
    .args(cmd.get_args())
    .env_clear()
    .stdin(Stdio::null());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c
}

/// Whether the test can make [`offline`]'s namespace (root only); prints a
/// SKIP notice if not.
fn can_go_offline() -> bool {
    if !is_root() {
        skip("the networked apps run in a network namespace the test makes, which needs root");
    }
    is_root()
}

/// `hutch run NAME ARGS...` as the test user on display `d`, running until
/// dropped; waits until a screenshot of the host display satisfies `shown`
/// and checks that the window there is the nested server's, titled with
/// the app id.
fn start(
    s: &Scratch,
    d: &XDisplay,
    name: &str,
    args: &[&Path],
    shown: fn(&Image) -> bool,
) -> Server {
    let mut run: Vec<OsString> = vec!["run".into(), name.into()];
    run.extend(args.iter().map(|a| a.as_os_str().to_owned()));
    start_with(s, d, name, &run, shown)
}

/// `hutch RUN...` as [`start`] does, the window titled `hutch.ID (hutch)`.
fn start_with(
    s: &Scratch,
    d: &XDisplay,
    id: &str,
    run: &[OsString],
    shown: fn(&Image) -> bool,
) -> Server {
    let mut app = s.hutch(&[]);
    app.args(run)
        .env("DISPLAY", format!(":{}", d.number))
        .env("XAUTHORITY", &d.xauthority);
    let app = Server(
        offline(&app)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_within(
        START_SECS,
        || shown(&Image::take(s, d)),
        &format!("{id}'s window on the host display"),
    );
    let tree = stdout(
        &x_client(s, d, "xwininfo")
            .args(["-root", "-tree"])
            .output()
            .unwrap(),
    );
    assert!(tree.contains(&format!("\"hutch.{id} (hutch)\"")), "{tree}");
    app
}

/// What the profile denies, with its control: in `hutch run --profile
/// NAME` (on display `d`, as the app gets it), the host's ~/.ssh key is
/// unreadable, `file` (when given: bound as the app's file argument) cannot
/// be changed, a file written in the volume at `volume_dst` reaches the
/// volume on the host, and one written elsewhere in the home does not
/// reach the real home; outside the sandbox the key is readable and the
/// file writable.
fn denied(s: &Scratch, d: &XDisplay, name: &str, volume_dst: &str, file: Option<&Path>) {
    home_file(s, ".ssh/id_ed25519", b"secret\n");
    let probe = "cat ~/.ssh/id_ed25519 2>/dev/null || echo no-key; \
                 if [ -n \"$1\" ]; then printf x >> \"$1\" 2>/dev/null && echo changed || echo kept; fi; \
                 echo kept > \"$2/hutch-probe\" && echo saved; \
                 echo lost > ~/hutch-lost 2>/dev/null; echo done";
    let dst = volume_dst.replace('~', &s.home().to_string_lossy());
    let file_arg = file.map_or(String::new(), |f| f.to_string_lossy().into_owned());
    let mut inside = s.hutch(&["run", "--profile", name, "--", "sh", "-c", probe, "sh"]);
    inside
        .arg(&file_arg)
        .arg(&dst)
        .env("DISPLAY", format!(":{}", d.number))
        .env("XAUTHORITY", &d.xauthority);
    let said = ok(&offline(&inside).output().unwrap());
    let expected = if file.is_some() {
        "no-key\nkept\nsaved\ndone\n"
    } else {
        "no-key\nsaved\ndone\n"
    };
    assert_eq!(said, expected);
    let vol = volume(s, name);
    assert_eq!(
        std::fs::read_to_string(vol.join("hutch-probe")).unwrap(),
        "kept\n"
    );
    assert!(
        !s.home().join("hutch-lost").exists(),
        "the home write reached the host"
    );
    if let Some(f) = file {
        assert!(
            !std::fs::read(f).unwrap().ends_with(b"x"),
            "the file changed"
        );
    }
    // The control: the same probe outside the sandbox, writing beside it.
    let beside = s.path().join("beside");
    std::fs::create_dir_all(&beside).unwrap();
    s.chown_all();
    let outside = s
        .as_user(Path::new("/bin/sh"))
        .args(["-c", probe, "sh", &file_arg])
        .arg(&beside)
        .output()
        .unwrap();
    let expected = if file.is_some() {
        "secret\nchanged\nsaved\ndone\n"
    } else {
        "secret\nsaved\ndone\n"
    };
    assert_eq!(ok(&outside), expected);
    assert!(s.home().join("hutch-lost").exists());
}

/// The entries of a directory, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The host pids of `pid`'s descendants.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let p: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((p, ppid))
        })
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// A process's command line, its arguments split at NULs and spaces
/// (browsers rewrite their children's into one string, spaces between).
fn cmdline(pid: u32) -> Vec<String> {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .split(['\0', ' '])
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

fn user_ns(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/user")).ok()
}

/// Under the launcher `app`: the user namespace of the browser's main
/// process (the first descendant whose program is `program`, without
/// `marker` among its arguments) and those of its children that have
/// `marker` (its renderers), once there is at least one renderer.
fn namespaces_of(app: &Server, program: &str, marker: &str) -> (PathBuf, Vec<PathBuf>) {
    let mut seen = None;
    wait_until_within(
        60,
        || {
            let procs: Vec<Vec<String>> = descendants(app.0.id())
                .into_iter()
                .map(|p| {
                    let mut c = cmdline(p);
                    c.push(user_ns(p).map_or(String::new(), |n| n.display().to_string()));
                    c
                })
                .filter(|c| c.first().is_some_and(|a| a.ends_with(program)))
                .collect();
            let main = procs.iter().find(|c| !c.contains(&marker.to_string()));
            let renderers: Vec<PathBuf> = procs
                .iter()
                .filter(|c| c.contains(&marker.to_string()))
                .map(|c| PathBuf::from(c.last().unwrap()))
                .collect();
            if let (Some(main), false) = (main, renderers.is_empty()) {
                seen = Some((PathBuf::from(main.last().unwrap()), renderers));
            }
            seen.is_some()
        },
        &format!("{program}'s renderer processes"),
    );
    seen.unwrap()
}

// ---- Browsers ----------------------------------------------------------------

/// A browser profile: the red page named on the command line fills its
/// window; its renderers (`renderers`: the program, and the argument that
/// marks a renderer) run in user namespaces of their own (its own sandbox,
/// which `nested_userns` allows); its profile directory is kept
/// in the volume `name` (`kept` appears there) and a second start uses the
/// same one (the volume's `profiles` directory lists the same entries),
/// with the page shown again; then the denied actions.
fn a_browser_shows_the_page_and_keeps_its_profile(
    name: &str,
    renderers: Option<(&str, &str)>,
    volume_dst: &str,
    kept: &str,
    profiles: &str,
) {
    let s = Scratch::new();
    let page = home_file(&s, "Downloads/page.html", RED_PAGE.as_bytes());
    let d = xvfb(&s);
    assert!(
        !red_area(&Image::take(&s, &d)),
        "the host display starts blank"
    );

    let app = start(&s, &d, name, &[&page], red_area);
    // Its renderers: each in a user namespace other than the browser's
    // (only root reads the namespaces of a browser's undumpable children).
    if let (Some((program, _)), false) = (renderers, is_root()) {
        skip(&format!(
            "{program}'s renderers' namespaces: only root can read them"
        ));
    } else if let Some((program, renderer)) = renderers {
        let (main, renderers) = namespaces_of(&app, program, renderer);
        assert!(
            renderers.iter().all(|ns| *ns != main),
            "a renderer shares the browser's user namespace {main:?}: {renderers:?}"
        );
    }
    drop(app);

    let vol = volume(&s, name);
    assert!(
        vol.join(kept).exists(),
        "{kept} not kept in the volume: {:?}",
        entries(&vol)
    );
    let before = entries(&vol.join(profiles));
    // The second start, with what the first one left in the volume.
    let again = start(&s, &d, name, &[&page], red_area);
    drop(again);
    assert_eq!(
        entries(&vol.join(profiles)),
        before,
        "a new profile was made"
    );

    denied(&s, &d, name, volume_dst, Some(&page));
}

#[test]
fn the_shipped_firefox_profile_shows_a_page_and_keeps_its_profile() {
    if !can_go_offline() || !installed(&X_TOOLS) || !installed(&["firefox-esr"]) {
        return;
    }
    a_browser_shows_the_page_and_keeps_its_profile(
        "firefox-esr",
        Some(("firefox-esr", "-isForBrowser")),
        "~/.config/mozilla",
        "firefox/profiles.ini",
        "firefox",
    );
}

#[test]
fn the_shipped_chromium_profile_shows_a_page_and_keeps_its_profile() {
    if !can_go_offline() || !installed(&X_TOOLS) || !installed(&["chromium"]) {
        return;
    }
    a_browser_shows_the_page_and_keeps_its_profile(
        "chromium",
        Some(("chromium", "--type=renderer")),
        "~/.config/chromium",
        "Default/Preferences",
        ".",
    );
}

/// Dillo has no sandbox of its own: no renderers to check.
#[test]
fn the_shipped_dillo_profile_shows_a_page_and_keeps_its_settings() {
    if !can_go_offline() || !installed(&X_TOOLS) || !installed(&["dillo"]) {
        return;
    }
    a_browser_shows_the_page_and_keeps_its_profile("dillo", None, "~/.dillo", "cookiesrc", ".");
}

/// The control for the browsers' `nested_userns`: without it, Firefox
/// still shows the page, but its renderers stay in the browser's own user
/// namespace (its sandbox without namespaces: seccomp only).
#[test]
fn firefox_without_nested_user_namespaces_keeps_its_renderers_in_its_own() {
    if !can_go_offline() || !installed(&X_TOOLS) || !installed(&["firefox-esr"]) {
        return;
    }
    let s = Scratch::new();
    let d = xvfb(&s);
    let profile = s.write(
        "no-userns.toml",
        "version = 1\nextends = [\"firefox-esr\"]\n\n[seccomp]\nnested_userns = false\n",
    );
    let page = home_file(&s, "page.html", RED_PAGE.as_bytes());
    let run: Vec<OsString> = vec![
        "run".into(),
        "--profile".into(),
        profile.into(),
        "--".into(),
        "/usr/bin/firefox-esr".into(),
        page.into(),
    ];
    if !is_root() {
        skip("the renderers' namespaces: only root can read them");
        return;
    }
    let app = start_with(&s, &d, "no-userns", &run, red_area);
    let (main, renderers) = namespaces_of(&app, "firefox-esr", "-isForBrowser");
    assert!(
        renderers.iter().all(|ns| *ns == main),
        "{main:?}: {renderers:?}"
    );
}

/// The control for the browsers' `nested_userns`: without it, Chromium
/// (whose Debian package has no setuid sandbox helper) refuses to start
/// rather than run its renderers unsandboxed.
#[test]
fn chromium_without_nested_user_namespaces_refuses_to_start() {
    if !can_go_offline() || !installed(&X_TOOLS) || !installed(&["chromium"]) {
        return;
    }
    let s = Scratch::new();
    let d = xvfb(&s);
    let profile = s.write(
        "no-userns.toml",
        "version = 1\nextends = [\"chromium\"]\n\n[seccomp]\nnested_userns = false\n",
    );
    let page = home_file(&s, "page.html", RED_PAGE.as_bytes());
    let mut run = s.hutch(&["run", "--profile"]);
    run.arg(&profile)
        .args(["--", "/usr/bin/chromium"])
        .arg(&page)
        .env("DISPLAY", format!(":{}", d.number))
        .env("XAUTHORITY", &d.xauthority);
    let out = offline(&run).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("No usable sandbox"), "{err}");
    assert!(!red_area(&Image::take(&s, &d)));
}

// ---- Mail ----------------------------------------------------------------------

#[test]
fn the_shipped_thunderbird_profile_shows_a_message_and_keeps_its_profile() {
    if !can_go_offline() || !installed(&X_TOOLS) || !installed(&["thunderbird"]) {
        return;
    }
    let s = Scratch::new();
    let message = home_file(&s, "Downloads/red.eml", red_message().as_bytes());
    let d = xvfb(&s);
    assert!(
        !red_area(&Image::take(&s, &d)),
        "the host display starts blank"
    );
    let app = start(&s, &d, "thunderbird", &[&message], red_area);
    drop(app);
    let vol = volume(&s, "thunderbird");
    assert!(vol.join("profiles.ini").exists(), "{:?}", entries(&vol));
    let before = entries(&vol);
    let again = start(&s, &d, "thunderbird", &[&message], red_area);
    drop(again);
    assert_eq!(entries(&vol), before, "a new profile was made");
    denied(&s, &d, "thunderbird", "~/.thunderbird", Some(&message));
}

// ---- Messengers ------------------------------------------------------------------

/// A messenger profile: the first start maps a window that is not red; the
/// user's settings written into the volume (`settings`: file, content)
/// make the next start's window red, so the volume is where the app reads
/// its settings from; then the denied actions.
fn a_messenger_starts_with_the_settings_of_its_volume(
    name: &str,
    volume_dst: &str,
    settings: &[(&str, &str)],
) {
    let s = Scratch::new();
    let d = xvfb(&s);
    assert!(
        !a_window(&Image::take(&s, &d)),
        "the host display starts blank"
    );
    let app = start(&s, &d, name, &[], a_window);
    assert!(!red_area(&Image::take(&s, &d)), "red before the settings");
    drop(app);

    let vol = volume(&s, name);
    assert!(vol.is_dir());
    for (file, content) in settings {
        std::fs::write(vol.join(file), content).unwrap();
    }
    s.chown_all();
    let again = start(&s, &d, name, &[], red_area);
    drop(again);
    denied(&s, &d, name, volume_dst, None);
}

#[test]
fn the_shipped_hexchat_profile_starts_with_the_settings_of_its_volume() {
    if !can_go_offline() || !installed(&X_TOOLS) || !installed(&["hexchat"]) {
        return;
    }
    a_messenger_starts_with_the_settings_of_its_volume(
        "hexchat",
        "~/.config/hexchat",
        &[
            // Straight to the main window, whose text area is red
            // (colour 259 is the text background).
            ("hexchat.conf", "gui_slist_skip = 1\n"),
            ("colors.conf", "color_259 = ffff 0000 0000\n"),
        ],
    );
}

#[test]
fn the_shipped_pidgin_profile_starts_with_the_settings_of_its_volume() {
    if !can_go_offline() || !installed(&X_TOOLS) || !installed(&["pidgin"]) {
        return;
    }
    a_messenger_starts_with_the_settings_of_its_volume(
        "pidgin",
        "~/.purple",
        &[(
            // Pidgin's own GTK style file, read at start.
            "gtkrc-2.0",
            "style \"hutch-red\" { bg[NORMAL] = \"#ff0000\" base[NORMAL] = \"#ff0000\" }\n\
             widget_class \"*\" style \"hutch-red\"\n",
        )],
    );
}

// ---- Wayland -------------------------------------------------------------------

/// In a Wayland session (a headless weston of the test user), `hutch run
/// NAME FILE` gives the app the compositor (its profile says `display =
/// "auto"`) and the app maps a toplevel window whose title has `title` (the
/// page's or the message's): the app's own protocol log (`WAYLAND_DEBUG`,
/// passed with `--env`) shows it. The X11 path is the other tests'.
fn shows_on_wayland(name: &str, file: &str, content: &[u8], title: &str) {
    if !installed(&["weston"]) || !installed(&[name]) || !can_go_offline() {
        return;
    }
    let s = Scratch::new();
    let file = home_file(&s, file, content);
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
    let socket = s.runtime().join("hutch-wl");
    wait_until_within(
        20,
        || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        "weston's socket",
    );
    let log = s.path().join("wayland.log");
    let mut run = s.hutch(&["run", "--env", "WAYLAND_DEBUG=1", name]);
    run.arg(&file).env("WAYLAND_DISPLAY", "hutch-wl");
    let app = offline(&run)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _app = Server(app);
    wait_until_within(
        START_SECS,
        || {
            let text =
                String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
            text.lines().any(|l| {
                l.contains("xdg_toplevel") && l.contains("set_title(") && l.contains(title)
            })
        },
        &format!("{name}'s toplevel titled {title:?} on the compositor"),
    );
}

#[test]
fn firefox_uses_wayland_where_the_session_has_it() {
    shows_on_wayland(
        "firefox-esr",
        "page.html",
        RED_PAGE.as_bytes(),
        "\"red — Mozilla Firefox\"",
    );
}

#[test]
fn chromium_uses_wayland_where_the_session_has_it() {
    shows_on_wayland(
        "chromium",
        "page.html",
        RED_PAGE.as_bytes(),
        "\"red - Chromium\"",
    );
}

#[test]
fn thunderbird_uses_wayland_where_the_session_has_it() {
    shows_on_wayland(
        "thunderbird",
        "red.eml",
        red_message().as_bytes(),
        "Mozilla Thunderbird\"",
    );
}

// ---- A killed launcher ---------------------------------------------------------

/// SIGKILL of hutch while Firefox runs: every process under it (the
/// browser, its renderers in their nested namespaces, the nested X server,
/// pasta) is gone soon after, nothing is left on the host display, the
/// profile in the volume is intact, and the next start uses it.
#[test]
fn a_killed_launcher_takes_firefox_and_its_helpers_down_and_keeps_its_profile() {
    if !can_go_offline() || !installed(&X_TOOLS) || !installed(&["firefox-esr"]) {
        return;
    }
    let s = Scratch::new();
    let page = home_file(&s, "page.html", RED_PAGE.as_bytes());
    let d = xvfb(&s);
    let mut app = start(&s, &d, "firefox-esr", &[&page], red_area);
    let under: Vec<u32> = descendants(app.0.id());
    assert!(under.len() >= 4, "{under:?}");
    app.0.kill().unwrap();
    app.0.wait().unwrap();
    // Reaped: dropping it would signal a pid that may be reused by now.
    std::mem::forget(app);
    wait_until_within(
        30,
        || {
            under
                .iter()
                .all(|p| !Path::new(&format!("/proc/{p}")).exists() || zombie(*p))
        },
        "the end of every process under the killed launcher",
    );
    wait_until_within(
        30,
        || !red_area(&Image::take(&s, &d)),
        "the host display without the browser's window",
    );
    let profiles = volume(&s, "firefox-esr").join("firefox");
    assert!(profiles.join("profiles.ini").exists());
    let before = entries(&profiles);
    drop(start(&s, &d, "firefox-esr", &[&page], red_area));
    assert_eq!(entries(&profiles), before, "a new profile was made");
}

/// Whether `pid` is a zombie (dead, not yet reaped by its parent).
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}
