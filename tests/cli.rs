//! The command line: profile lookup, overrides, checking, listing, explaining.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

#[test]
fn explain_prints_the_plan_without_running() {
    let s = Scratch::new();
    let out = ok(&s
        .hutch(&[
            "run",
            "--profile",
            "cli",
            "--explain",
            "--",
            "touch",
            "/tmp/x",
        ])
        .output()
        .unwrap());
    assert!(out.contains("profile     cli"), "{out}");
    assert!(
        out.contains("builtin:base/system ← builtin:base/sensitive ← builtin:cli"),
        "{out}"
    );
    assert!(
        out.contains("namespaces  user mount pid uts ipc net cgroup"),
        "{out}"
    );
    assert!(
        out.contains("bind     /usr ← /usr (ro,nosuid,nodev,recursive)"),
        "{out}"
    );
    assert!(
        out.contains(&format!("bind     {p} ← {p} (rw", p = s.path().display())),
        "{out}"
    );
    assert!(
        out.contains("from builtin:cli:"),
        "each mount says where it was written: {out}"
    );
    let json = ok(&s
        .hutch(&[
            "run",
            "--profile",
            "cli",
            "--explain",
            "--json",
            "--",
            "true",
        ])
        .output()
        .unwrap());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["argv"], serde_json::json!(["true"]));
    assert_eq!(v["namespaces"]["net"], true);
    assert_eq!(v["id_map"]["uid_outside"], test_uid());
    let mounts = v["mounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["op"] == "proc" && m["dst"] == "/proc"),
        "{json}"
    );
    assert!(
        mounts
            .iter()
            .all(|m| m["from"].as_str().unwrap().starts_with("builtin:"))
    );
}

#[test]
fn the_profile_named_after_the_command_is_chosen() {
    let s = Scratch::new();
    s.write(
        "config/hutch/profiles/printenv.toml",
        "version = 1\nextends = [\"cli\"]\nhostname = \"printenv-box\"\n[env]\nset = { CHOSEN = \"printenv\" }\n",
    );
    let out = ok(&s
        .hutch(&["run", "--explain", "--", "/usr/bin/printenv", "CHOSEN"])
        .output()
        .unwrap());
    assert!(out.contains("printenv-box"), "{out}");
    let out = ok(&s
        .hutch(&["run", "--", "printenv", "CHOSEN"])
        .output()
        .unwrap());
    assert_eq!(out, "printenv\n");
    // No profile by that name: `default`.
    let out = ok(&s
        .hutch(&["run", "--explain", "--", "env"])
        .output()
        .unwrap());
    assert!(out.starts_with("profile     default\n"), "{out}");
}

#[test]
fn user_profiles_shadow_builtins_and_local_overrides_come_last() {
    let s = Scratch::new();
    s.write(
        "config/hutch/profiles/cli.local.toml",
        "version = 1\nhostname = \"local-override\"\n",
    );
    let out = ok(&s
        .hutch(&["run", "--profile", "cli", "--", "hostname"])
        .output()
        .unwrap());
    assert_eq!(out, "local-override\n");
    s.write(
        "config/hutch/profiles/default.toml",
        "version = 1\nextends = [\"base/system\"]\nhostname = \"mine\"\n",
    );
    let out = ok(&s.hutch(&["run", "--", "hostname"]).output().unwrap());
    assert_eq!(out, "mine\n");
    let out = ok(&s.hutch(&["profiles"]).output().unwrap());
    assert!(
        out.contains("default") && out.contains("(shadowed)"),
        "{out}"
    );
    assert!(out.contains("cli.local.toml"), "{out}");
    let json = ok(&s.hutch(&["profiles", "--json"]).output().unwrap());
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let list = v.as_array().unwrap();
    let user_default = list
        .iter()
        .find(|p| p["name"] == "default" && !p["shadowed"].as_bool().unwrap())
        .unwrap();
    assert!(
        user_default["source"]
            .as_str()
            .unwrap()
            .ends_with("config/hutch/profiles/default.toml")
    );
    assert!(list.iter().any(|p| p["name"] == "base/system"));
}

#[test]
fn an_override_in_a_local_file_can_remove_an_inherited_mount() {
    let s = Scratch::new();
    s.write("marker", "x");
    let probe = |s: &Scratch| {
        ok(&s
            .hutch(&[
                "run",
                "--profile",
                "cli",
                "--",
                "sh",
                "-c",
                "test -d \"$HOME\" && echo SEEN; true",
            ])
            .output()
            .unwrap())
    };
    assert_eq!(
        probe(&s),
        "SEEN\n",
        "probe: the cli profile mounts a private home"
    );
    s.write(
        "config/hutch/profiles/cli.local.toml",
        "version = 1\nremove = [\"${HOME}\"]\n",
    );
    assert_eq!(probe(&s), "", "the override removed the bind");
}

#[test]
fn check_accepts_good_profiles_and_reports_all_bad_ones() {
    let s = Scratch::new();
    let good = s.write("good.toml", "version = 1\nextends = [\"cli\"]\n");
    let bad = s.write("bad.toml", "version = 1\nhostnme = \"x\"\n");
    let out = s
        .hutch(&["check", good.to_str().unwrap(), bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(
            "good.toml: ok (builtin:base/system ← builtin:base/sensitive ← builtin:cli ← "
        ),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("bad.toml:2:1"), "{}", stderr(&out));
    for p in [
        "profiles/default.toml",
        "profiles/cli.toml",
        "profiles/base/system.toml",
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p);
        let copy = s.write(
            &format!("shipped-{}", p.replace('/', "-")),
            &std::fs::read_to_string(path).unwrap(),
        );
        ok(&s
            .hutch(&["check", copy.to_str().unwrap()])
            .output()
            .unwrap());
    }
}

#[test]
fn check_takes_profile_names_like_run() {
    let s = Scratch::new();
    s.write(
        "config/hutch/profiles/mine.toml",
        "version = 1\nextends = [\"cli\"]\n",
    );
    s.write(
        "config/hutch/profiles/mine.local.toml",
        "version = 1\nhostname = \"mine\"\n",
    );
    let out = ok(&s.hutch(&["check", "cli", "mine"]).output().unwrap());
    assert!(
        out.contains("cli: ok (builtin:base/system ← builtin:base/sensitive ← builtin:cli)\n"),
        "{out}"
    );
    assert!(
        out.contains("mine: ok (builtin:base/system ← builtin:base/sensitive ← builtin:cli ← ")
            && out.contains("config/hutch/profiles/mine.toml ← ")
            && out.contains("config/hutch/profiles/mine.local.toml (override))\n"),
        "the name is looked up, with its .local.toml: {out}"
    );
    let out = s.hutch(&["check", "no-such-profile"]).output().unwrap();
    fails_with(&out, 1, "unknown profile `no-such-profile`");
}

#[test]
fn unknown_profiles_and_missing_commands_are_clear_errors() {
    let s = Scratch::new();
    let out = s
        .hutch(&["run", "--profile", "nope", "--", "true"])
        .output()
        .unwrap();
    fails_with(&out, 125, "unknown profile `nope`");
    let out = s.hutch(&["run", "--profile", "cli"]).output().unwrap();
    fails_with(&out, 125, "no command to run");
    let out = s
        .hutch(&["run", "--profile", "./missing.toml", "--", "true"])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("profile file not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_profile_command_is_the_default() {
    let s = Scratch::new();
    let p = s.write(
        "cmd.toml",
        "version = 1\nextends = [\"cli\"]\ncommand = [\"sh\", \"-c\", \"echo from-profile\"]\n",
    );
    let out = ok(&s
        .hutch(&["run", "--profile", p.to_str().unwrap()])
        .output()
        .unwrap());
    assert_eq!(out, "from-profile\n");
}

// ---- Overrides only from files nobody else can have written -------------------

/// An override that loosens everything: no seccomp, no Landlock, the home
/// bound read-write.
const LOOSENING: &str = "version = 1\n[seccomp]\nenforce = \"off\"\n[landlock]\nfs = \"off\"\nscope = \"off\"\n[[mount]]\ntype = \"bind\"\nsrc = \"${HOME}\"\ndst = \"${HOME}\"\n";

fn give_to(path: &std::path::Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

/// Another user drops `app.local.toml` beside a root-owned profile in a
/// shared sticky directory (like /tmp): the victim's launch, `--explain`
/// and `check` of that profile are refused, naming the file and its owner.
#[test]
fn an_override_another_user_dropped_beside_a_profile_is_refused() {
    if !is_root() {
        skip("cross-user tests need root to act as a second user");
        return;
    }
    let s = Scratch::new();
    let shared = shared_dir();
    let app = shared.path().join("app.toml");
    std::fs::write(&app, "version = 1\nextends = [\"cli\"]\n").unwrap();
    let app = app.to_str().unwrap();
    // Control: the profile itself is fine there, and runs.
    assert_eq!(ok(&s.run(&["--profile", app], &["echo", "ran"])), "ran\n");

    as_attacker(
        shared.path(),
        &format!("printf '%s' '{LOOSENING}' > app.local.toml && chmod 0644 app.local.toml"),
    );
    let local = shared.path().join("app.local.toml");
    assert!(std::fs::read_to_string(&local).unwrap().contains("enforce"));
    let reason = format!(
        "refusing profile override {}: {} belongs to uid 65533 (mode 0644), not to you or root",
        local.display(),
        local.display()
    );
    let out = s.run(&["--profile", app, "-v"], &["echo", "ran"]);
    fails_with(&out, 125, &reason);
    assert!(!stdout(&out).contains("ran"));
    let out = s
        .hutch(&["run", "--profile", app, "--explain", "--", "true"])
        .output()
        .unwrap();
    fails_with(&out, 125, &reason);
    let out = s.hutch(&["check", app]).output().unwrap();
    fails_with(&out, 1, &reason);

    // The victim's own override is refused there too: anyone may add
    // files to a sticky directory, so it does not qualify.
    let mine = shared.path().join("mine.toml");
    std::fs::write(&mine, "version = 1\nextends = [\"cli\"]\n").unwrap();
    let mine_local = shared.path().join("mine.local.toml");
    std::fs::write(&mine_local, "version = 1\nhostname = \"mine\"\n").unwrap();
    give_to(&mine, NOBODY);
    give_to(&mine_local, NOBODY);
    let out = s.run(&["--profile", mine.to_str().unwrap()], &["true"]);
    fails_with(
        &out,
        125,
        &format!(
            "{} (owner uid 0) has mode 1777: group or others may write to it",
            shared.path().display()
        ),
    );
}

/// The negative control of the test above: the same loosening override,
/// the victim's own in a directory of theirs (0755), is applied; and
/// `--explain`, `--json` and `-v` name every file merged, in order.
#[test]
fn an_override_of_ones_own_is_applied_and_named() {
    let s = Scratch::new();
    let app = s.write("proj/app.toml", "version = 1\nextends = [\"cli\"]\n");
    let local = s.write("proj/app.local.toml", LOOSENING);
    let app = app.to_str().unwrap();
    let files = format!(
        "builtin:base/system ← builtin:base/sensitive ← builtin:cli ← {app} ← {} (override)",
        local.display()
    );
    let out = ok(&s
        .hutch(&["run", "--profile", app, "--explain", "--", "true"])
        .output()
        .unwrap());
    assert!(out.contains(&format!("  from      {files}\n")), "{out}");
    let home = s.home();
    assert!(
        out.contains(&format!("bind     {h} ← {h} (rw", h = home.display())),
        "the override's bind: {out}"
    );
    let json = ok(&s
        .hutch(&["run", "--profile", app, "--explain", "--json", "--", "true"])
        .output()
        .unwrap());
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        plan["sources"],
        serde_json::json!([
            "builtin:base/system",
            "builtin:base/sensitive",
            "builtin:cli",
            app,
            local
        ])
    );
    assert_eq!(plan["overrides"], serde_json::json!([local]));
    let out = s.run(&["--profile", app, "-v"], &["true"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("hutch: profile {files}\n")), "{err}");
    assert!(
        err.contains("seccomp off") && err.contains("landlock off"),
        "{err}"
    );
    let out = ok(&s.hutch(&["check", app]).output().unwrap());
    assert!(out.contains(&files), "{out}");
}

/// The same rule for the search path's directories: an override in a
/// profile directory others may write to, or a symlinked one, stops the
/// launch; fixed, it is applied.
#[test]
fn overrides_in_the_profile_directories_are_checked_too() {
    let s = Scratch::new();
    let dir = s.path().join("config/hutch/profiles");
    let local = s.write(
        "config/hutch/profiles/cli.local.toml",
        "version = 1\nhostname = \"local-override\"\n",
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
    let out = s.run(&["--profile", "cli"], &["hostname"]);
    fails_with(
        &out,
        125,
        &format!(
            "refusing profile override {}: {} (owner uid {}) has mode 0775",
            local.display(),
            dir.display(),
            test_uid()
        ),
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        ok(&s.run(&["--profile", "cli"], &["hostname"])),
        "local-override\n"
    );
    // A symlink (here to a file of the same directory) is not followed.
    let real = dir.join("real.toml");
    std::fs::rename(&local, &real).unwrap();
    std::os::unix::fs::symlink("real.toml", &local).unwrap();
    let out = s.run(&["--profile", "cli"], &["hostname"]);
    fails_with(
        &out,
        125,
        &format!(
            "refusing profile override {}: it is a symlink",
            local.display()
        ),
    );
}

// ---- Profile input that is too deep, too large, or not a file at all ---------

/// How long a refused profile may take to be refused: a regression that
/// blocks on a FIFO or reads an endless file fails the test at this bound
/// instead of hanging CI.
const REFUSAL_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `cmd` (a hutch invocation) to its end, for at most
/// [`REFUSAL_BOUND`], with 1 GiB of address space: a regression that reads
/// `/dev/zero` fails on its first large allocation instead of filling the
/// machine's memory.
fn bounded(mut cmd: std::process::Command) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    const GIB: u64 = 1 << 30;
    // SAFETY: setrlimit is async-signal-safe and only lowers this child's
    // limit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_AS, GIB, GIB)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > REFUSAL_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hutch still running after {REFUSAL_BOUND:?}: {cmd:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// `check` (exit 1) and `run` (exit 125) of `profile` both fail with
/// `needle` on stderr, quickly, and are not killed by a signal.
#[track_caller]
fn refused(s: &Scratch, profile: &str, needle: &str) {
    let out = bounded(s.hutch(&["check", profile]));
    fails_with(&out, 1, needle);
    assert!(
        stderr(&out).starts_with("error: "),
        "one error: {}",
        stderr(&out)
    );
    let out = bounded(s.hutch(&["run", "--profile", profile, "--", "true"]));
    fails_with(&out, 125, needle);
}

/// A chain of 1,600 profiles, each extending the next, crashed `check` and
/// `run` with SIGSEGV (the loader recursed once a level); past 32 profiles
/// it is a clear error at the entry that crosses the limit. A chain at the
/// limit still loads and runs.
#[test]
fn a_chain_of_1600_extends_is_an_error_not_a_crash() {
    let s = Scratch::new();
    const LINKS: usize = 1600;
    for i in 0..LINKS {
        let extends = if i + 1 < LINKS {
            format!("extends = [\"p{}.toml\"]\n", i + 1)
        } else {
            "extends = [\"cli\"]\n".into()
        };
        std::fs::create_dir_all(s.path().join("chain")).unwrap();
        std::fs::write(
            s.path().join(format!("chain/p{i}.toml")),
            format!("version = 1\n{extends}"),
        )
        .unwrap();
    }
    s.chown_all();
    refused(
        &s,
        "chain/p0.toml",
        "extends chain too long: chain/p0.toml → … → chain/p31.toml → chain/p32.toml would be 33 profiles, more than the 32",
    );
    let out = bounded(s.hutch(&["check", "chain/p0.toml"]));
    assert!(
        stderr(&out).contains("chain/p31.toml:2:12"),
        "{}",
        stderr(&out)
    );
    // The last 31 links and the built-in cli (which extends base/system)
    // make 33 profiles too; one link fewer is exactly at the limit.
    let at_limit = format!("chain/p{}.toml", LINKS - 30);
    let out = ok(&bounded(s.hutch(&["check", &at_limit])));
    assert!(out.contains(": ok ("), "{out}");
    let out = bounded(s.hutch(&["run", "--profile", &at_limit, "--", "echo", "ran"]));
    assert_eq!(ok(&out), "ran\n");
}

/// `--profile /dev/zero` grew to gigabytes, and a FIFO as a profile (given
/// by path, found in the search path, or named in `extends`) blocked
/// forever. Each is refused at once, as is a profile over 1 MiB; the
/// controls show the same files defeat a plain reader, and that regular
/// profiles in the same places work.
#[test]
fn profiles_that_are_not_regular_files_or_too_large_are_refused() {
    let s = Scratch::new();
    let mkfifo = |rel: &str| {
        let path = s.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        s.chown_all();
        path
    };
    let fifo = mkfifo("fifo.toml");
    let control = s
        .as_user(std::path::Path::new("/usr/bin/timeout"))
        .arg("1")
        .arg("cat")
        .arg(&fifo)
        .status()
        .unwrap();
    assert_eq!(
        control.code(),
        Some(124),
        "probe: a plain read of the FIFO blocks"
    );

    let not_a_file = "not a regular file";
    refused(
        &s,
        "/dev/zero",
        "/dev/zero: is a character device, not a regular file",
    );
    refused(
        &s,
        "./fifo.toml",
        "./fifo.toml: is a FIFO, not a regular file",
    );
    s.write("via-fifo.toml", "version = 1\nextends = [\"fifo.toml\"]\n");
    refused(&s, "./via-fifo.toml", "is a FIFO, not a regular file");
    let out = bounded(s.hutch(&["check", "./via-fifo.toml"]));
    assert!(
        stderr(&out).contains("via-fifo.toml:2:12"),
        "{}",
        stderr(&out)
    );
    std::fs::create_dir_all(s.path().join("home")).unwrap();
    refused(&s, "./home", not_a_file);

    let big = s.write("big.toml", &format!("version = 1\n{}", "#".repeat(2 << 20)));
    refused(
        &s,
        big.to_str().unwrap(),
        "more than the 1 MiB a profile file may have",
    );

    // In the search path: a FIFO named like a profile is refused, not
    // skipped for the built-in of the same name; `hutch profiles` lists it
    // without blocking.
    mkfifo("config/hutch/profiles/piped.toml");
    refused(&s, "piped", "piped.toml: is a FIFO");
    let listed = ok(&bounded(s.hutch(&["profiles"])));
    assert!(listed.contains("piped"), "{listed}");
    mkfifo("config/hutch/profiles/cli.local.toml");
    let out = bounded(s.hutch(&["run", "--profile", "cli", "--", "true"]));
    fails_with(&out, 125, "cli.local.toml is not a regular file");
    std::fs::remove_file(s.path().join("config/hutch/profiles/cli.local.toml")).unwrap();
    s.write(
        "config/hutch/profiles/cli.local.toml",
        &format!("version = 1\n{}", "#".repeat(2 << 20)),
    );
    let out = bounded(s.hutch(&["run", "--profile", "cli", "--", "true"]));
    fails_with(&out, 125, "more than the 1 MiB");

    // Controls: regular profiles in the same places.
    std::fs::remove_file(s.path().join("config/hutch/profiles/cli.local.toml")).unwrap();
    s.write(
        "config/hutch/profiles/plain.toml",
        "version = 1\nextends = [\"cli\"]\n",
    );
    let out = bounded(s.hutch(&["run", "--profile", "plain", "--", "echo", "ran"]));
    assert_eq!(ok(&out), "ran\n");
    s.write("via-plain.toml", "version = 1\nextends = [\"cli\"]\n");
    let out = bounded(s.hutch(&["run", "--profile", "./via-plain.toml", "--", "echo", "ran"]));
    assert_eq!(ok(&out), "ran\n");
}
