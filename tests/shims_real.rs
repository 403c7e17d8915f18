//! Issue 15's "done when": after `hutch shim install --all` on a machine
//! with the programs installed, `jq`, `python3`, `curl` and `git` typed by
//! their names, and a desktop app started from its menu entry, run in
//! their shipped profiles. Each is shown sandboxed by a probe that fails
//! through the shim and succeeds with the program itself (the control):
//! reading `~/.ssh`, reaching a server on the host's loopback, and for
//! the menu entry the window belonging to a nested X server named after
//! the profile.
//!
//! Programs that are missing (`.ci/run` installs them) make a test print
//! `SKIP: <reason>`.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::x11::{home_file, red_pdf, wait_until, x_client, xvfb};
use common::*;

/// A scratch user with a key in `~/.ssh` and the shipped profiles' shims
/// installed (`hutch shim install --all`), checked to hold `names`.
fn shimmed(names: &[&str]) -> Scratch {
    let s = Scratch::new();
    let ssh = s.home().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("id_test"), "[4, 5, 6]").unwrap();
    s.chown_all();
    let said = ok(&s.hutch(&["shim", "install", "--all"]).output().unwrap());
    for name in names {
        assert!(said.contains(&format!("{name}: installed")), "{said}");
    }
    s
}

/// `script` in the test user's shell with the shim directory first in
/// PATH, as a user's shell has it after `shim install`.
fn by_name(s: &Scratch, script: &str) -> Output {
    s.as_user(Path::new("/bin/sh"))
        .args(["-c", &format!("PATH=\"$HOME/.local/bin:$PATH\"; {script}")])
        .output()
        .unwrap()
}

fn secret(s: &Scratch) -> String {
    s.home().join(".ssh/id_test").display().to_string()
}

/// `jq` and `python3` typed as such read the working directory and not
/// `~/.ssh`; shells stay out; `remove --all` leaves the home as it was.
#[test]
fn shims_run_jq_and_python3_in_their_profiles_by_name() {
    if !installed(&["jq", "python3"]) {
        return;
    }
    let s = shimmed(&["jq", "python3", "tar"]);
    std::fs::write(s.path().join("in.json"), "[1, 2, 3]").unwrap();
    s.chown_all();
    let shims = s.home().join(".local/bin");
    assert!(shims.join("jq").exists() && !shims.join("sh").exists());
    let read = "import sys; print(sum(__import__('json').load(open(sys.argv[1]))))";
    assert_eq!(ok(&by_name(&s, "jq add in.json")).trim(), "6");
    let out = by_name(&s, &format!("python3 -c \"{read}\" in.json"));
    assert_eq!(ok(&out).trim(), "6");
    let out = by_name(&s, &format!("jq add {}", secret(&s)));
    assert!(!out.status.success(), "jq read ~/.ssh: {}", stdout(&out));
    let out = by_name(&s, &format!("python3 -c \"{read}\" {}", secret(&s)));
    assert!(
        !out.status.success(),
        "python3 read ~/.ssh: {}",
        stdout(&out)
    );
    // The control: the program itself reads it.
    let out = by_name(&s, &format!("/usr/bin/jq add {}", secret(&s)));
    assert_eq!(ok(&out).trim(), "15");
    ok(&s.hutch(&["shim", "remove", "--all"]).output().unwrap());
    assert!(!s.home().join(".local").exists());
}

/// `git` typed as such works on a repository in the working directory
/// and cannot read `~/.ssh`; `git` by its path can.
#[test]
fn the_git_shim_works_in_a_repository_and_cannot_read_the_keys() {
    if !installed(&["git"]) {
        return;
    }
    let s = shimmed(&["git"]);
    let script = "git init -q repo && cd repo && echo hi > f && git add f && \
                  git -c user.name=t -c user.email=t@t commit -qm first && git log --format=%s";
    assert_eq!(ok(&by_name(&s, script)).trim(), "first");
    let out = by_name(&s, &format!("git hash-object {}", secret(&s)));
    assert!(!out.status.success(), "git read ~/.ssh: {}", stdout(&out));
    let out = by_name(&s, &format!("/usr/bin/git hash-object {}", secret(&s)));
    assert_eq!(ok(&out).trim().len(), 40, "the control hashes the key");
}

/// `curl` typed as such fetches into the working directory but neither
/// reads `~/.ssh` nor reaches a server on the host's loopback (its
/// profile's user-mode network); `curl` by its path does both.
#[test]
fn the_curl_shim_cannot_read_the_keys_or_reach_the_hosts_loopback() {
    if !installed(&["curl", "pasta"]) {
        return;
    }
    let s = shimmed(&["curl"]);
    // A one-answer HTTP server on the host's loopback, started by the test.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in server.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        }
    });
    let url = format!("http://127.0.0.1:{port}/");
    let out = by_name(&s, &format!("/usr/bin/curl -sS --max-time 5 {url}"));
    assert_eq!(ok(&out), "hello", "the control reaches the host's loopback");
    let out = by_name(&s, &format!("curl -sS --max-time 5 {url}"));
    assert!(
        !out.status.success() && !stdout(&out).contains("hello"),
        "the shim reached the host's loopback: {}",
        stdout(&out)
    );
    // It is the sandbox that refused, not a missing network: the shim
    // saves what it fetches from a file URL in the working directory.
    std::fs::write(s.path().join("page.txt"), "local\n").unwrap();
    s.chown_all();
    let out = by_name(
        &s,
        "curl -sS -o copy.txt file://$PWD/page.txt && cat copy.txt",
    );
    assert_eq!(ok(&out), "local\n");
    let key = format!("file://{}", secret(&s));
    let out = by_name(&s, &format!("curl -sS {key}"));
    assert!(!out.status.success(), "curl read ~/.ssh: {}", stdout(&out));
    let out = by_name(&s, &format!("/usr/bin/curl -sS {key}"));
    assert_eq!(ok(&out), "[4, 5, 6]");
}

/// The menu entry `shim install --all` writes for mupdf, launched as a
/// desktop launches it (`gio launch ENTRY FILE`), starts mupdf through
/// hutch: its window on the display belongs to a nested X server titled
/// `hutch.mupdf (hutch)` and shows the PDF; the original entry starts
/// mupdf itself, whose window is a top-level window of the display.
#[test]
fn a_shimmed_menu_entry_starts_the_desktop_app_sandboxed() {
    if !installed(&["gio", "mupdf", "Xvfb", "xauth", "Xephyr", "xwininfo", "xwd"]) {
        return;
    }
    let s = shimmed(&["mupdf"]);
    let entry = s.home().join(".local/share/applications/mupdf.desktop");
    let text = std::fs::read_to_string(&entry).unwrap();
    assert!(
        text.contains(&format!("Exec={} run", hutch_bin().display())),
        "{text}"
    );
    let pdf = home_file(&s, "Downloads/paper.pdf", &red_pdf());
    let d = xvfb(&s);
    let tree = || {
        stdout(
            &x_client(&s, &d, "xwininfo")
                .args(["-root", "-tree"])
                .output()
                .unwrap(),
        )
    };
    let launch = |entry: &Path| {
        // The app it starts keeps gio's output open: not waited for.
        let status = s
            .as_user(Path::new("/usr/bin/gio"))
            .arg("launch")
            .arg(entry)
            .arg(&pdf)
            .env("DISPLAY", format!(":{}", d.number))
            .env("XAUTHORITY", &d.xauthority)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "gio launch {}", entry.display());
    };
    launch(&entry);
    wait_until(
        || tree().contains("\"hutch.mupdf (hutch)\""),
        "the nested server's window of the sandboxed mupdf",
    );
    let sandboxes = ok(&s.hutch(&["ps", "--json"]).output().unwrap());
    assert!(sandboxes.contains("mupdf"), "{sandboxes}");
    stop_all(&s);
    // hutch returns once the app has ended; the nested server it killed
    // may take a moment more to leave the display.
    wait_until(
        || !tree().contains("(hutch)"),
        "the nested server's window to go",
    );
    // The control: the original entry runs mupdf unsandboxed, its own
    // window a top-level window of the display, named after the file.
    launch(Path::new("/usr/share/applications/mupdf.desktop"));
    wait_until(|| tree().contains("paper.pdf"), "mupdf's own window");
    assert!(!tree().contains("(hutch)"));
    let _ = Command::new("pkill")
        .args(["-f", &format!("mupdf.*{}", pdf.display())])
        .status();
}

/// Stops every sandbox of the test user (`hutch ps`, then `hutch stop`).
fn stop_all(s: &Scratch) {
    let listed = ok(&s.hutch(&["ps", "--json"]).output().unwrap());
    let rows: serde_json::Value = serde_json::from_str(&listed).unwrap();
    for row in rows.as_array().into_iter().flatten() {
        if let Some(name) = row["name"].as_str() {
            let _ = s.hutch(&["stop", "--timeout", "5", name]).output();
        }
    }
}
