//! What the command line and the file system hand hutch is bytes, and what
//! hutch says about it goes to a terminal: a payload's arguments pass as
//! bytes, a working directory is never converted lossily, every subcommand
//! follows one exit-status table, and names from outside reach stderr
//! escaped and bounded (security review, finding 10).

mod common;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::process::Output;

use common::*;

fn bytes(b: &[u8]) -> OsString {
    OsString::from_vec(b.to_vec())
}

/// `hutch ARGS...` with arguments that need not be UTF-8.
fn hutch_os(s: &Scratch, args: &[&OsStr]) -> Output {
    s.hutch(&[]).args(args).output().unwrap()
}

/// The bytes of `$1` inside the sandbox, as `od` prints them.
const SHOW_ARG: [&str; 3] = ["sh", "-c", "printf %s \"$1\" | od -An -tx1 | tr -d ' \\n'"];

#[test]
fn a_payload_gets_an_argument_that_is_not_utf8_byte_for_byte() {
    let s = Scratch::new();
    let name = bytes(b"x\xff\xfe");
    std::fs::write(
        s.path().join(OsStr::from_bytes(name.as_bytes())),
        "ff-file\n",
    )
    .unwrap();
    s.chown_all();
    // Two spellings of the command line (clap's parser, which `exec`
    // uses, is tested with bytes in cli.rs and below).
    for pre in [
        &["run", "--profile", "cli", "--"][..],
        &["run", "-v", "--profile=cli"][..],
    ] {
        let mut args: Vec<&OsStr> = pre.iter().map(OsStr::new).collect();
        args.extend(["cat".as_ref(), name.as_os_str()]);
        let out = hutch_os(&s, &args);
        assert_eq!(ok(&out), "ff-file\n", "{pre:?}");
        let mut args: Vec<&OsStr> = pre.iter().map(OsStr::new).collect();
        args.extend(SHOW_ARG.iter().map(OsStr::new));
        args.extend(["sh".as_ref(), name.as_os_str()]);
        assert_eq!(ok(&hutch_os(&s, &args)), "78fffe", "{pre:?}");
    }
    // Control: a UTF-8 argument takes the same way.
    let out = s.run(
        &["--profile", "cli"],
        &["sh", "-c", SHOW_ARG[2], "sh", "xé"],
    );
    assert_eq!(ok(&out), "78c3a9");
}

#[test]
fn explain_shows_such_an_argument_losslessly() {
    let s = Scratch::new();
    let explain = |json: &[&str]| {
        let args: Vec<OsString> = ["run", "--profile", "cli", "--explain"]
            .iter()
            .chain(json)
            .chain(&["--", "cat"])
            .map(OsString::from)
            .chain([bytes(b"a\xff"), bytes(b"b\nc")])
            .collect();
        let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
        ok(&hutch_os(&s, &refs))
    };
    let plan: serde_json::Value = serde_json::from_str(&explain(&["--json"])).unwrap();
    assert_eq!(
        plan["argv"],
        serde_json::json!(["cat", {"hex": "61ff", "text": "a\u{fffd}"}, "b\nc"])
    );
    let text = explain(&[]);
    assert!(
        text.contains("command     cat $'a\\xff' $'b\\x0ac'\n"),
        "{text}"
    );
}

#[test]
fn exec_and_ps_take_and_show_such_arguments() {
    let s = Scratch::new();
    let odd = bytes(b"\xff\x1b[2Jz");
    let mut args: Vec<&OsStr> = ["run", "--name", "bytes", "--profile", "cli", "--"]
        .iter()
        .chain(&["sh", "-c", "sleep 100", "sh"])
        .map(OsStr::new)
        .collect();
    args.push(&odd);
    let mut child = s
        .hutch(&[])
        .args(&args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(child.id());
    let entry = wait_running(&s, "bytes");
    assert_eq!(
        entry["command"],
        serde_json::json!(["sh", "-c", "sleep 100", "sh", {"hex": "ff1b5b324a7a", "text": "\u{fffd}\u{1b}[2Jz"}])
    );
    let table = ok(&s.hutch(&["ps"]).output().unwrap());
    assert!(
        table.contains("sh -c 'sleep 100' sh $'\\xff\\x1b[2Jz'"),
        "{table}"
    );
    assert!(!table.contains('\x1b'), "{table}");
    let mut exec: Vec<&OsStr> = ["exec", "bytes", "--"].map(OsStr::new).to_vec();
    exec.extend(SHOW_ARG.map(OsStr::new));
    exec.extend([OsStr::new("sh"), &odd]);
    assert_eq!(ok(&hutch_os(&s, &exec)), "ff1b5b324a7a");
    drop(guard);
    let _ = child.wait();
}

/// A directory of the scratch dir whose name is not UTF-8.
fn odd_dir(s: &Scratch) -> PathBuf {
    let dir = s.path().join(OsStr::from_bytes(b"dir\xff"));
    std::fs::create_dir(&dir).unwrap();
    s.chown_all();
    dir
}

#[test]
fn a_working_directory_that_is_not_utf8_works_or_gets_a_true_error() {
    let s = Scratch::new();
    let dir = odd_dir(&s);
    // A profile that binds `${CWD}`, which a profile (text) cannot name: a
    // true error, not a lossy path that "does not exist".
    let cwd_var = s.write(
        "cwd-var.toml",
        "version = 1\nextends = [\"base/system\"]\n[[mount]]\ntype = \"bind\"\nsrc = \"${CWD}\"\ndst = \"${CWD}\"\n",
    );
    let out = s
        .hutch(&["run", "--profile", cwd_var.to_str().unwrap(), "--", "pwd"])
        .current_dir(&dir)
        .output()
        .unwrap();
    fails_with(&out, 125, "variable `${CWD}` is $'");
    let err = stderr(&out);
    assert!(err.contains("dir\\xff', which is not UTF-8"), "{err}");
    assert!(
        !err.contains("does not exist") && !err.contains('\u{fffd}'),
        "{err}"
    );
    // A profile that shows the directory at its own path through a bind
    // of a parent: the payload starts in it, bytes intact, and the plan
    // says so losslessly.
    let parent = s.path().to_str().unwrap();
    let profile = s.write(
        "parent.toml",
        &format!(
            "version = 1\nextends = [\"base/system\"]\n[[mount]]\ntype = \"bind\"\nsrc = \"{parent}\"\ndst = \"{parent}\"\n"
        ),
    );
    let profile = profile.to_str().unwrap();
    let run = |extra: &[&str], cmd: &[&str]| {
        let mut args = vec!["run", "--profile", profile];
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(cmd);
        s.hutch(&args).current_dir(&dir).output().unwrap()
    };
    let out = run(&[], &["sh", "-c", "pwd | od -An -tx1 | tr -d ' \\n'"]);
    let want: String = dir
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .chain(["0a".into()])
        .collect();
    assert_eq!(ok(&out), want);
    let plan: serde_json::Value =
        serde_json::from_str(&ok(&run(&["--explain", "--json"], &["true"]))).unwrap();
    let hex: String = dir
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(plan["cwd"]["hex"], hex.as_str(), "{}", plan["cwd"]);
    // `cli` binds the working directory as a path (`workdir`), never as
    // text: it starts in it, bytes intact.
    let out = s
        .hutch(&[
            "run",
            "--profile",
            "cli",
            "--",
            "sh",
            "-c",
            "pwd | od -An -tx1 | tr -d ' \\n'",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(ok(&out), want);
    // Control: from a UTF-8 directory, `cli` runs there.
    let out = s
        .hutch(&["run", "--profile", "cli", "--", "pwd"])
        .output()
        .unwrap();
    assert_eq!(ok(&out).trim_end(), s.path().to_str().unwrap());
}

/// Exit status of `hutch ARGS...`, and its stderr.
fn status(s: &Scratch, args: &[&str]) -> (Option<i32>, String) {
    let out = s.hutch(args).output().unwrap();
    (out.status.code(), stderr(&out))
}

/// The table of README's "Exit status", one subcommand at a time: 0 for
/// success, 1 where the answer is no (`check`, `doctor`), 125 whenever
/// hutch fails or cannot parse its command line — never 1 or 2, which a
/// payload could have returned.
#[test]
fn every_subcommand_follows_one_exit_status_table() {
    let s = Scratch::new();
    let bad = s.write("bad.toml", "version = 1\nhostnme = \"x\"\n");
    let bad = bad.to_str().unwrap();
    let missing = s.path().join("missing.tar");
    let missing = missing.to_str().unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["run", "--profile", bad, "--", "true"], 125, "hostnme"),
        (&["run", "--profile"], 125, "--profile"),
        (&["run", "--profile", "cli", "--", "true"], 0, ""),
        (&["check", bad], 1, "hostnme"),
        (&["check", "cli"], 0, ""),
        (&["check"], 125, "required"),
        (&["profiles", "--bogus"], 125, "--bogus"),
        (&["profiles"], 0, ""),
        (&["doctor", "--bogus"], 125, "--bogus"),
        (&["ps", "--bogus"], 125, "--bogus"),
        (&["ps"], 0, ""),
        (
            &["exec", "nosuch", "--", "true"],
            125,
            "no running sandbox named `nosuch`",
        ),
        (
            &["stop", "nosuch"],
            125,
            "no running sandbox named `nosuch`",
        ),
        (
            &["stop", "nosuch", "--timeout=-1"],
            125,
            "--timeout must be",
        ),
        (&["volume", "inspect", "nosuch"], 125, "nosuch"),
        (&["volume", "rm", "nosuch"], 125, "nosuch"),
        (&["volume", "list"], 0, ""),
        (&["image", "inspect", "nosuch"], 125, "nosuch"),
        (&["image", "import", missing], 125, "missing.tar"),
        (&["image", "list"], 0, ""),
        (
            &["export", "oci", "--profile", bad, "--", "true"],
            125,
            "hostnme",
        ),
        (&["schema", "extra"], 125, "extra"),
        (&["schema"], 0, ""),
        (&["completions", "tcsh"], 125, "tcsh"),
        (&["completions", "bash"], 0, ""),
        (&["man", "nosuch"], 125, "no manual page `nosuch`"),
        (&["man"], 0, ""),
        (&["learn", "-o", "l.toml"], 125, "no command to learn"),
        (&["learn", "--", "true"], 125, "no output file"),
        (&["learn", "-o", bad, "--", "true"], 125, "exists"),
        (&[], 125, "Usage"),
        (&["--help"], 0, ""),
        (&["--version"], 0, ""),
    ];
    for (args, code, needle) in cases {
        let (got, err) = status(&s, args);
        assert_eq!(got, Some(*code), "hutch {args:?}: {err}");
        assert!(
            err.contains(needle),
            "hutch {args:?}: expected {needle:?} in: {err}"
        );
    }
    // `doctor` answers 0 or 1 (what this machine allows), never 125.
    let (got, err) = status(&s, &["doctor"]);
    assert!(matches!(got, Some(0 | 1)), "{got:?}: {err}");
    // `run` and `exec` pass the payload's own 1 and 2 on: hutch never
    // uses them.
    for code in [1, 2] {
        let out = s.run(
            &["--profile", "cli"],
            &["sh", "-c", &format!("exit {code}")],
        );
        assert_eq!(out.status.code(), Some(code));
    }
}

/// Stderr of a failed command, with the assertions every error line
/// meets: no raw control character, no line longer than hutch's bound.
#[track_caller]
fn clean_stderr(out: &Output) -> String {
    assert!(!out.status.success());
    let err = stderr(out);
    assert!(
        !err.chars().any(|c| c.is_control() && c != '\n'),
        "a raw control character reached stderr: {err:?}"
    );
    assert!(
        err.lines().all(|l| l.chars().count() <= 2100),
        "{} bytes: {}",
        err.len(),
        &err[..200.min(err.len())]
    );
    err
}

#[test]
fn names_from_outside_reach_stderr_escaped_and_bounded() {
    let s = Scratch::new();
    // Another user's file names in a shared place: a newline that would
    // forge a line of hutch's own, and a terminal escape.
    let shared = shared_dir();
    let evil = "x\nhutch: image imported fine\x1b[2J";
    let dir = shared.path().join(evil);
    if is_root() {
        as_attacker(shared.path(), &format!("mkdir '{evil}'"));
    } else {
        std::fs::create_dir(&dir).unwrap();
    }
    assert!(dir.is_dir(), "the name really holds the characters");
    for args in [
        vec!["image", "import", dir.to_str().unwrap()],
        vec![
            "run",
            "--profile",
            &format!("{}/p.toml", dir.display()),
            "--",
            "true",
        ],
        vec!["check", &format!("{}/p.toml", dir.display())],
        vec![
            "export",
            "oci",
            "--profile",
            "cli",
            "-o",
            dir.to_str().unwrap(),
            "--",
            "true",
        ],
    ] {
        let out = s.hutch(&args).output().unwrap();
        let err = clean_stderr(&out);
        assert!(
            err.contains("x\\u{a}hutch: image imported fine\\u{1b}[2J"),
            "{args:?}: {err}"
        );
        assert!(
            !err.lines().any(|l| l.starts_with("hutch: image imported")),
            "{err}"
        );
    }
    // A name of 100,000 characters is cut, its end and the advice kept.
    let long = format!("/{}", "n".repeat(100_000));
    for args in [
        vec!["image", "import", long.as_str()],
        vec!["run", "--profile", &format!("{long}.toml"), "--", "true"],
    ] {
        let out = s.hutch(&args).output().unwrap();
        let err = clean_stderr(&out);
        assert!(
            err.contains("characters left out"),
            "{args:?}: {}",
            &err[..300.min(err.len())]
        );
        assert!(err.len() < 10_000, "{args:?}: {} bytes", err.len());
    }
    // Control: a short, plain name is shown whole.
    let out = s
        .hutch(&["image", "import", "/no/such/plain-name"])
        .output()
        .unwrap();
    assert!(clean_stderr(&out).contains("/no/such/plain-name"));
}
