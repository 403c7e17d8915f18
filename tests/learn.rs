//! `hutch learn`: a profile written by watching a run, as an unprivileged
//! user. The learnt profile holds what the run touched, generalised, and
//! nothing it did not; the run succeeds again under it, and the same
//! program doing one thing more fails under it (and succeeds without
//! hutch: the control). The home cannot be changed while learning.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use common::*;

/// The scripted program: reads its config in the home, execs a helper
/// writing into the output directory of the working directory, connects to
/// the unix socket given as `$1`, and with `$2 = extra` reads one more file
/// of the home.
const APP: &str = r#"#!/bin/sh
set -e
cat "$HOME/.apprc"
"$HOME/bin/helper" > out/result.txt
python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
print(s.recv(16).decode())' "$1"
if [ "$2" = extra ]; then cat "$HOME/.secret"; fi
"#;

const HELPER: &str = "#!/bin/sh\necho helped\n";

/// The scratch directories with the program, its files and a socket that
/// answers `pong` to every connection.
struct Setup {
    s: Scratch,
    app: PathBuf,
    sock: PathBuf,
}

fn setup() -> Setup {
    let s = Scratch::new();
    let home = s.home();
    std::fs::create_dir_all(home.join("bin")).unwrap();
    let app = home.join("bin/app");
    for (p, text) in [(&app, APP), (&home.join("bin/helper"), HELPER)] {
        std::fs::write(p, text).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(home.join(".apprc"), "colour=blue\n").unwrap();
    // Untouched siblings: never in the profile.
    std::fs::write(home.join(".apprc.bak"), "colour=red\n").unwrap();
    std::fs::write(home.join(".secret"), "the secret\n").unwrap();
    std::fs::create_dir_all(s.path().join("out")).unwrap();
    let sock = s.runtime().join("app.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let _ = c.write_all(b"pong");
        }
    });
    s.chown_all();
    Setup { s, app, sock }
}

fn learn(s: &Scratch, extra: &[&str], command: &[&str]) -> std::process::Output {
    let mut args = vec!["learn"];
    args.extend_from_slice(extra);
    args.push("--");
    args.extend_from_slice(command);
    s.hutch(&args).output().unwrap()
}

fn text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_scripted_program_is_learnt_run_again_and_held_to_what_it_did() {
    let Setup { s, app, sock } = setup();
    let app = app.to_str().unwrap();
    let sock = sock.to_str().unwrap();
    let out = learn(&s, &["-o", "learnt.toml"], &[app, sock]);
    let stdout = ok(&out);
    assert!(
        stdout.contains("colour=blue") && stdout.contains("pong"),
        "{stdout}"
    );
    assert_eq!(text(&s.path().join("out/result.txt")), "helped\n");
    let profile = text(&s.path().join("learnt.toml"));
    // What it touched, generalised.
    for want in [
        "extends = [\"default\"]",
        "src = \"${HOME}/.apprc\"",
        "# executed and read\n[[mount]]\ntype = \"ro-bind\"\nsrc = \"${HOME}/bin/app\"",
        "src = \"${HOME}/bin/helper\"",
        "type = \"bind\"\nsrc = \"${CWD}/out\"",
        "src = \"${XDG_RUNTIME_DIR}/app.sock\"",
    ] {
        assert!(profile.contains(want), "{want:?} missing from:\n{profile}");
    }
    // Not what it did not touch, nor what the base shows already.
    for absent in [".apprc.bak", ".secret", "src = \"/usr", "workdir"] {
        assert!(
            !profile.contains(absent),
            "{absent:?} in the profile:\n{profile}"
        );
    }
    let check = s.hutch(&["check", "./learnt.toml"]).output().unwrap();
    ok(&check);

    // Run again under it, from a clean output directory.
    std::fs::remove_file(s.path().join("out/result.txt")).unwrap();
    let again = s.run(&["--profile", "./learnt.toml"], &[app, sock]);
    let stdout = ok(&again);
    assert!(
        stdout.contains("colour=blue") && stdout.contains("pong"),
        "{stdout}"
    );
    assert_eq!(text(&s.path().join("out/result.txt")), "helped\n");

    // One file more: refused under the learnt profile...
    let more = s.run(&["--profile", "./learnt.toml"], &[app, sock, "extra"]);
    assert!(
        !more.status.success(),
        "read the secret: {}",
        stdout_of(&more)
    );
    assert!(!stdout_of(&more).contains("the secret"));
    // --report-denied says which file and the entry that allows it.
    let why = s.run(
        &["--profile", "./learnt.toml", "--report-denied"],
        &[app, sock, "extra"],
    );
    assert_eq!(why.status.code(), more.status.code());
    let want = "hutch: denied: read ".to_string()
        + s.home().join(".secret").to_str().unwrap()
        + ": not in the sandbox; add: a [[mount]] with type = \"ro-bind\", src = \"${HOME}/.secret\", dst = \"${HOME}/.secret\"";
    assert!(stderr(&why).contains(&want), "{}", stderr(&why));
    assert!(
        !stderr(&more).contains("hutch: denied"),
        "{}",
        stderr(&more)
    );
    // ...and read without hutch (the control).
    let control = s
        .as_user(Path::new(app))
        .args([sock, "extra"])
        .output()
        .unwrap();
    assert!(
        stdout_of(&control).contains("the secret"),
        "control failed: {}",
        stderr(&control)
    );
}

fn stdout_of(o: &std::process::Output) -> String {
    stdout(o)
}

#[test]
fn jq_is_learnt_and_runs_again() {
    if which("jq").is_none() {
        return skip("jq is not installed (apt-get install jq)");
    }
    let s = Scratch::new();
    s.write("file.json", "{\"a\": [1, 2]}\n");
    let out = learn(&s, &["-o", "jq.toml"], &["jq", "-c", ".", "file.json"]);
    assert_eq!(ok(&out), "{\"a\":[1,2]}\n");
    let profile = text(&s.path().join("jq.toml"));
    // jq, its libraries and the file are all shown by `default` already.
    assert!(!profile.contains("[[mount]]"), "{profile}");
    ok(&s.hutch(&["check", "./jq.toml"]).output().unwrap());
    let again = s.run(&["--profile", "./jq.toml"], &["jq", "-c", ".", "file.json"]);
    assert_eq!(ok(&again), "{\"a\":[1,2]}\n");
}

#[test]
fn the_home_cannot_be_changed_while_learning() {
    let s = Scratch::new();
    let rc = s.home().join(".profile-data");
    std::fs::write(&rc, "original\n").unwrap();
    s.chown_all();
    // The same write succeeds without hutch (the control is the file's
    // owner writing it below, after the learning run).
    let out = learn(
        &s,
        &["-o", "w.toml"],
        &[
            "sh",
            "-c",
            "echo changed > \"$HOME/.profile-data\"; rm -f \"$HOME/.profile-data\"; echo done",
        ],
    );
    assert_eq!(stdout(&out), "done\n", "{}", stderr(&out));
    assert_eq!(text(&rc), "original\n");
    let profile = text(&s.path().join("w.toml"));
    // Recorded, said, not granted.
    assert!(profile.contains("#   ${HOME}/.profile-data"), "{profile}");
    assert!(!profile.contains("type = \"bind\""), "{profile}");
    let control = s
        .as_user(Path::new("/bin/sh"))
        .args(["-c", "echo changed > \"$HOME/.profile-data\""])
        .output()
        .unwrap();
    assert!(control.status.success(), "{}", stderr(&control));
    assert_eq!(text(&rc), "changed\n");
}

#[test]
fn bad_input_is_one_line_and_status_125() {
    let s = Scratch::new();
    let no_command = s.hutch(&["learn", "-o", "x.toml"]).output().unwrap();
    fails_with(&no_command, 125, "no command to learn");
    assert_eq!(
        stderr(&no_command).lines().count(),
        1,
        "{}",
        stderr(&no_command)
    );
    let no_output = s.hutch(&["learn", "--", "true"]).output().unwrap();
    fails_with(&no_output, 125, "no output file");
    assert_eq!(stderr(&no_output).lines().count(), 1);
    s.write("taken.toml", "# mine\n");
    let exists = s
        .hutch(&["learn", "-o", "taken.toml", "--", "true"])
        .output()
        .unwrap();
    fails_with(&exists, 125, "exists; give another -o, or --force");
    assert_eq!(stderr(&exists).lines().count(), 1);
    assert_eq!(text(&s.path().join("taken.toml")), "# mine\n");
    // --force replaces it.
    let forced = s
        .hutch(&["learn", "-o", "taken.toml", "--force", "--", "true"])
        .output()
        .unwrap();
    ok(&forced);
    assert!(text(&s.path().join("taken.toml")).contains("extends = [\"default\"]"));
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A call the base's filter denies is seen (and listed in the profile),
/// and still fails with the base's errno: learning never lets it through.
#[test]
fn a_call_the_base_denies_is_recorded_and_still_refused() {
    let keyctl = if cfg!(target_arch = "x86_64") {
        250
    } else {
        219
    };
    let s = Scratch::new();
    let script = format!(
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.syscall({keyctl}, 0, 0, 0, 0, 0)\nprint(r, ctypes.get_errno())\n"
    );
    let out = learn(&s, &["-o", "k.toml"], &["python3", "-c", &script]);
    // KEYCTL_GET_KEYRING_ID (0) of keyring 0: EINVAL or ENOKEY if it ran.
    assert_eq!(ok(&out), "-1 1\n");
    let profile = text(&s.path().join("k.toml"));
    assert!(profile.contains("#   keyctl (1)"), "{profile}");
    // The control: without hutch the call runs (and fails otherwise).
    let control = s
        .as_user(Path::new("/usr/bin/python3"))
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(!stdout(&control).ends_with(" 1\n"), "{}", stdout(&control));
}

/// An X client learnt under Xvfb: the display's socket is in the profile,
/// and the client runs again under it; under the base alone it cannot
/// reach the display (the control).
#[test]
fn an_x11_client_is_learnt_under_xvfb() {
    if which("Xvfb").is_none() || which("xdpyinfo").is_none() {
        return skip("Xvfb or xdpyinfo is not installed (apt-get install xvfb x11-utils)");
    }
    // -displayfd: the server picks a free display and says which.
    let mut xvfb = std::process::Command::new("Xvfb")
        .args(["-displayfd", "1", "-nolisten", "tcp"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(xvfb.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let display = format!(":{}", line.trim());
    let socket = format!("/tmp/.X11-unix/X{}", line.trim());
    let s = Scratch::new();
    s.write(
        "x-base.toml",
        "version = 1\nextends = [\"default\"]\n[env]\nkeep = [\"DISPLAY\"]\n",
    );
    let with_display = |args: &[&str]| {
        let mut c = s.hutch(args);
        c.env("DISPLAY", &display);
        c.output().unwrap()
    };
    let out = with_display(&[
        "learn",
        "-o",
        "x.toml",
        "--profile",
        "./x-base.toml",
        "--",
        "xdpyinfo",
    ]);
    let result = std::panic::catch_unwind(|| {
        assert!(ok(&out).contains("X.Org"), "{}", stdout(&out));
        let profile = text(&s.path().join("x.toml"));
        assert!(
            profile.contains(&format!(
                "# connected\n[[mount]]\ntype = \"ro-bind\"\nsrc = \"{socket}\""
            )),
            "{profile}"
        );
        let again = with_display(&["run", "--profile", "./x.toml", "--", "xdpyinfo"]);
        assert!(ok(&again).contains("X.Org"));
        let base = with_display(&["run", "--profile", "./x-base.toml", "--", "xdpyinfo"]);
        assert!(!base.status.success(), "{}", stdout(&base));
    });
    let _ = xvfb.kill();
    let _ = xvfb.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// `hutch doctor` tries the mechanism for real: a watched call answered.
#[test]
fn doctor_tries_the_watching() {
    let s = Scratch::new();
    let out = s.hutch(&["doctor", "--json"]).output().unwrap();
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let learn = checks
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == "learn"))
        .unwrap_or_else(|| panic!("no learn check: {checks}"));
    assert_eq!(learn["status"], "ok", "{learn}");
    assert!(
        learn["detail"]
            .as_str()
            .unwrap()
            .contains("a watched call answered"),
        "{learn}"
    );
}

/// `hutch exec` into a watched sandbox runs, under the run's own filter.
#[test]
fn exec_into_a_watched_sandbox_runs_confined() {
    let s = Scratch::new();
    let mut child = s
        .hutch(&[
            "run",
            "--name",
            "watched",
            "--report-denied",
            "--profile",
            "cli",
            "--",
            "sleep",
            "30",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(child.id());
    wait_running(&s, "watched");
    let script = "grep -E '^Seccomp:' /proc/self/status";
    let out = s
        .hutch(&["exec", "watched", "--", "sh", "-c", script])
        .output()
        .unwrap();
    // Mode 2: a filter.
    assert_eq!(
        ok(&out).split_whitespace().collect::<Vec<_>>(),
        ["Seccomp:", "2"]
    );
    ok(&s.hutch(&["stop", "watched"]).output().unwrap());
    child.wait().unwrap();
}
