//! Running sandboxes: `hutch ps`, `exec` and `stop`, from an unprivileged
//! user's point of view.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;

use common::*;

fn profile(s: &Scratch, name: &str, extra: &str) -> String {
    let p = s.write(
        &format!("{name}.toml"),
        &format!("version = 1\nextends = [\"cli\"]\n{extra}"),
    );
    p.display().to_string()
}

fn exec(s: &Scratch, name: &str, command: &[&str]) -> std::process::Output {
    let mut args = vec!["exec", name, "--"];
    args.extend_from_slice(command);
    s.hutch(&args).output().unwrap()
}

fn record_path(s: &Scratch, name: &str) -> std::path::PathBuf {
    s.runtime().join(format!("hutch/sandboxes/{name}.json"))
}

#[test]
fn ps_lists_running_sandboxes_and_forgets_ended_ones() {
    let s = Scratch::new();
    let (_child, _guard) = spawn_named(&s, "web", "cli", &["sleep", "100"]);
    let e = wait_running(&s, "web");
    assert_eq!(e["profile"], "cli");
    assert_eq!(e["command"], serde_json::json!(["sleep", "100"]));
    let pid = e["pid"].as_i64().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm, "hutch-init\n");
    assert!(e["uptime_seconds"].as_u64().unwrap() < 60);

    let text = ok(&s.hutch(&["ps"]).output().unwrap());
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "PID", "PROFILE", "UPTIME", "COMMAND"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[0], "web");
    assert_eq!(row[1], pid.to_string());
    assert_eq!(row[2], "cli");
    assert_eq!(&row[4..], ["sleep", "100"]);

    // The directory is private to the user.
    let dir = s.runtime().join("hutch/sandboxes");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    ok(&s.hutch(&["stop", "web"]).output().unwrap());
    assert!(ps_json(&s).is_empty());
    assert!(!record_path(&s, "web").exists());
}

#[test]
fn stale_records_are_cleaned_up() {
    let s = Scratch::new();
    let (mut child, _guard) = spawn_named(&s, "doomed", "cli", &["sleep", "100"]);
    wait_running(&s, "doomed");
    child.kill().unwrap();
    child.wait().unwrap();
    // hutch could not remove its record...
    assert!(record_path(&s, "doomed").exists());
    // ...so the next reader does, and the name is free again.
    assert!(ps_json(&s).is_empty());
    assert!(!record_path(&s, "doomed").exists());
    let (mut child, _guard) = spawn_named(&s, "doomed", "cli", &["sleep", "100"]);
    wait_running(&s, "doomed");
    child.kill().unwrap();
    child.wait().unwrap();
    ok(&s.run(&["--profile", "cli", "--name", "doomed"], &["true"]));
}

#[test]
fn names_are_unique_and_checked() {
    let s = Scratch::new();
    let (_child, _guard) = spawn_named(&s, "dup", "cli", &["sleep", "100"]);
    let e = wait_running(&s, "dup");
    let out = s.run(&["--profile", "cli", "--name", "dup"], &["true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains("a sandbox named `dup` is already running")
            && err.contains(&e["pid"].to_string())
            && err.contains("--name"),
        "{err}"
    );
    for bad in ["../x", "a/b", ".hidden", ""] {
        let out = s.run(&["--profile", "cli", "--name", bad], &["true"]);
        assert_eq!(out.status.code(), Some(125), "{bad}");
        assert!(
            stderr(&out).contains("invalid sandbox name"),
            "{}",
            stderr(&out)
        );
    }
    // Default names: the profile and a short id, all different.
    let unnamed = || {
        let child = s
            .hutch(&["run", "--profile", "cli", "--", "sleep", "100"])
            .spawn()
            .unwrap();
        let guard = KillOnDrop(child.id());
        (child, guard)
    };
    let (_a, _ga) = unnamed();
    let (_b, _gb) = unnamed();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let names = loop {
        let names: Vec<String> = ps_json(&s)
            .iter()
            .filter(|e| e["name"] != "dup" && e["state"] == "running")
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect();
        if names.len() == 2 || std::time::Instant::now() > deadline {
            break names;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(names.len(), 2, "{names:?}");
    assert_ne!(names[0], names[1]);
    for n in &names {
        assert!(n.starts_with("cli-") && n.len() == "cli-".len() + 6, "{n}");
    }
}

#[test]
fn exec_joins_the_sandbox() {
    let s = Scratch::new();
    let p = profile(&s, "p", "hostname = \"box-host\"\n");
    let script = "echo $$ > /tmp/payload-pid; cat /proc/self/mountinfo > /tmp/mountinfo; \
                  for n in user mnt pid uts ipc net cgroup; do readlink /proc/self/ns/$n; done \
                  > /tmp/ns; touch ready; exec sleep 100";
    let (_child, _guard) = spawn_named(&s, "box", &p, &["sh", "-c", script]);
    wait_running(&s, "box");
    wait_for_file(&s.path().join("ready"));
    // /tmp is the sandbox's private tmpfs: reading the payload's files there
    // shows the same mount namespace; its mount table is the same too.
    let out = ok(&exec(
        &s,
        "box",
        &[
            "sh",
            "-c",
            "hostname; cat /proc/1/comm; p=$(cat /tmp/payload-pid); cat /proc/$p/comm; \
             cat /proc/self/mountinfo | cmp -s - /tmp/mountinfo && echo same-mounts; id -u",
        ],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "box-host",
            "hutch-init",
            "sleep",
            "same-mounts",
            &test_uid().to_string()
        ]
    );
    // Every namespace is the payload's, the network one included (it is
    // made after clone, by a helper), and none is the host's.
    let ns_script = "for n in user mnt pid uts ipc net cgroup; do readlink /proc/self/ns/$n; done";
    let mine = ok(&exec(&s, "box", &["sh", "-c", ns_script]));
    let payload = ok(&exec(&s, "box", &["cat", "/tmp/ns"]));
    assert_eq!(mine, payload);
    for (line, n) in mine
        .lines()
        .zip(["user", "mnt", "pid", "uts", "ipc", "net", "cgroup"])
    {
        let host = std::fs::read_link(format!("/proc/self/ns/{n}")).unwrap();
        assert_ne!(line, host.to_str().unwrap(), "{n} is the host's");
    }
    // The command's pid is one of the sandbox's.
    let out = ok(&exec(&s, "box", &["sh", "-c", "echo $$"]));
    let pid: u32 = out.trim().parse().unwrap();
    assert!(pid > 2 && pid < 1000, "{pid}");
}

#[test]
fn exec_is_confined_exactly_like_the_payload() {
    let s = Scratch::new();
    let p = profile(&s, "p", "[rlimits]\nnofile = 123\n");
    let fields = "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status; ulimit -n";
    let (_child, _guard) = spawn_named(
        &s,
        "conf",
        &p,
        &[
            "sh",
            "-c",
            &format!("({fields}) > /tmp/payload-status; touch ready; exec sleep 100"),
        ],
    );
    wait_running(&s, "conf");
    wait_for_file(&s.path().join("ready"));
    let mine = ok(&exec(&s, "conf", &["sh", "-c", fields]));
    let payload = ok(&exec(&s, "conf", &["cat", "/tmp/payload-status"]));
    assert_eq!(mine, payload);
    for want in [
        "CapInh:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "CapAmb:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
        "Seccomp_filters:\t1",
        "123",
    ] {
        assert!(
            mine.lines().any(|l| l == want),
            "{want} missing in:\n{mine}"
        );
    }
    // The seccomp filter is the sandbox's: no new user namespace.
    let out = exec(&s, "conf", &["unshare", "-U", "true"]);
    assert_ne!(out.status.code(), Some(0), "unshare succeeded inside");
    let probe = s
        .as_user(std::path::Path::new("/usr/bin/unshare"))
        .args(["-U", "true"])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "probe: unshare -U must work outside"
    );
}

#[test]
fn exec_is_under_the_sandboxes_landlock_rules() {
    if hutch::landlock::probe().abi() == 0 {
        skip("Landlock is not available on this kernel");
        return;
    }
    let s = Scratch::new();
    let out_dir = s.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    s.chown_all();
    // The working directory is bound writable, but Landlock only lets
    // the sandbox write to `out`.
    let p = profile(
        &s,
        "p",
        "[landlock]\nfrom_mounts = false\nread = [\"/\"]\nwrite = [\"${CWD}/out\"]\n",
    );
    let (_child, _guard) = spawn_named(
        &s,
        "ll",
        &p,
        &["sh", "-c", "touch out/ready; exec sleep 100"],
    );
    wait_running(&s, "ll");
    wait_for_file(&out_dir.join("ready"));
    let out = ok(&exec(
        &s,
        "ll",
        &[
            "sh",
            "-c",
            "touch denied 2>/dev/null && echo wrote-denied; touch out/allowed && echo wrote-allowed",
        ],
    ));
    assert_eq!(out, "wrote-allowed\n");
    assert!(!s.path().join("denied").exists());
    // Probe: outside Landlock the same write works.
    ok(&s
        .as_user(std::path::Path::new("/usr/bin/touch"))
        .arg("denied")
        .output()
        .unwrap());
}

#[test]
fn exec_exit_status_follows_the_command() {
    let s = Scratch::new();
    let (_child, _guard) = spawn_named(&s, "st", "cli", &["sleep", "100"]);
    wait_running(&s, "st");
    assert_eq!(
        exec(&s, "st", &["sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    assert_eq!(
        exec(&s, "st", &["sh", "-c", "kill -TERM $$"]).status.code(),
        Some(143)
    );
    let out = exec(&s, "st", &["no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("no-such-command"));
    let out = exec(&s, "nonexistent", &["true"]);
    fails_with(&out, 125, "no running sandbox named `nonexistent`");
}

#[test]
fn exec_and_stop_refuse_a_record_that_does_not_match() {
    let s = Scratch::new();
    let (_child, _guard) = spawn_named(&s, "real", "cli", &["sleep", "100"]);
    wait_running(&s, "real");
    let path = record_path(&s, "real");
    let original = std::fs::read_to_string(&path).unwrap();
    let record: serde_json::Value = serde_json::from_str(&original).unwrap();

    let tamper = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut r = record.clone();
        f(&mut r);
        std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
        s.chown_all();
    };
    // Another inode for a namespace: refused before anything is joined.
    tamper(&|r| {
        let ino = r["namespaces"][1]["ino"].as_u64().unwrap();
        r["namespaces"][1]["ino"] = (ino + 1).into();
    });
    let out = exec(&s, "real", &["true"]);
    fails_with(&out, 125, "refusing to touch sandbox `real`");
    // A descriptor of the launcher that is no namespace at all.
    tamper(&|r| r["namespaces"][0]["fd"] = 0.into());
    let out = exec(&s, "real", &["true"]);
    fails_with(&out, 125, "refusing to touch");
    // Another executable for the launcher (as if the pid were reused).
    tamper(&|r| r["exe"][1] = 1.into());
    for out in [
        exec(&s, "real", &["true"]),
        s.hutch(&["stop", "real"]).output().unwrap(),
    ] {
        assert_ne!(out.status.code(), Some(0));
        assert!(
            stderr(&out).contains("does not run the executable recorded"),
            "{}",
            stderr(&out)
        );
    }
    // Its first process replaced by another one of ours.
    tamper(&|r| r["init"]["pid"] = (std::process::id() as i64).into());
    let out = exec(&s, "real", &["true"]);
    fails_with(&out, 125, "refusing to touch");

    std::fs::write(&path, original).unwrap();
    s.chown_all();
    ok(&exec(&s, "real", &["true"]));
}

#[test]
fn stop_lets_the_payload_handle_sigterm() {
    let s = Scratch::new();
    let script =
        "trap 'echo handled > stopped; exit 3' TERM; touch ready; while :; do sleep 0.05; done";
    let (mut child, _guard) = spawn_named(&s, "graceful", "cli", &["sh", "-c", script]);
    wait_running(&s, "graceful");
    wait_for_file(&s.path().join("ready"));
    let out = ok(&s.hutch(&["stop", "graceful"]).output().unwrap());
    assert!(out.starts_with("stopped graceful: it ended"), "{out}");
    assert!(out.contains("after SIGTERM"), "{out}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(
        std::fs::read_to_string(s.path().join("stopped")).unwrap(),
        "handled\n"
    );
    assert!(ps_json(&s).is_empty());
    let out = s.hutch(&["stop", "graceful"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("no running sandbox named `graceful`"));
}

#[test]
fn stop_kills_what_ignores_sigterm() {
    let s = Scratch::new();
    let script = "trap '' TERM; echo ready; while :; do sleep 0.05; done";
    let (mut child, _guard) = spawn_named(&s, "stubborn", "cli", &["sh", "-c", script]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    wait_running(&s, "stubborn");
    let started = std::time::Instant::now();
    let out = ok(&s
        .hutch(&["stop", "--timeout", "0.5", "stubborn"])
        .output()
        .unwrap());
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
    assert!(out.contains("killed (SIGKILL)"), "{out}");
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9));
    assert!(ps_json(&s).is_empty());
    assert!(!record_path(&s, "stubborn").exists());
}

#[test]
fn the_registry_is_out_of_the_sandboxes_reach() {
    let s = Scratch::new();
    let (_child, _guard) = spawn_named(&s, "outside", "cli", &["sleep", "100"]);
    wait_running(&s, "outside");
    let reg = s.runtime().join("hutch");
    assert!(reg.exists());
    let out = ok(&s.sh(&format!(
        "test -e {} && echo visible; echo done",
        reg.display()
    )));
    assert_eq!(out, "done\n");
    // And a runtime directory that is not safe is refused, not used. (The
    // canary is outside the sandbox's working directory, which `cli` binds
    // writable: binding a directory the registry resolves into would be
    // refused by the planner first.)
    let s2 = Scratch::new();
    let elsewhere = Scratch::new();
    let canary = elsewhere.path().join("canary");
    std::fs::create_dir_all(&canary).unwrap();
    elsewhere.chown_all();
    std::os::unix::fs::symlink(&canary, s2.runtime().join("hutch")).unwrap();
    s2.chown_all();
    let out = s2.sh("true");
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("is a symlink"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&canary).unwrap().count(), 0);
}

#[test]
fn exec_runs_in_the_sandboxes_cgroup() {
    // The only backend this machine offers without a VM: cgroup v1, as root.
    if !is_root() {
        skip("the cgroup v1 backend of [limits] needs root");
        return;
    }
    // Root's own directories: the scratch ones belong to the test user.
    let work = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir().unwrap();
    let p = work.path().join("limits.toml");
    std::fs::write(
        &p,
        "version = 1\nextends = [\"cli\"]\n[limits]\npids = 64\n",
    )
    .unwrap();
    let root_hutch = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hutch"));
        c.args(args)
            .current_dir(work.path())
            .env_clear()
            .env("HOME", work.path())
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("XDG_RUNTIME_DIR", runtime.path())
            .stdin(std::process::Stdio::null());
        c
    };
    let p = p.to_str().unwrap();
    let explained = stdout(
        &root_hutch(&["run", "--explain", "--profile", p, "--", "true"])
            .output()
            .unwrap(),
    );
    if !explained.contains("  backend  cgroup v1 (as root): ") {
        skip(&format!("root does not get cgroup v1 here:\n{explained}"));
        return;
    }
    let mut child = root_hutch(&[
        "run",
        "--name",
        "limited",
        "--profile",
        p,
        "--",
        "sh",
        "-c",
        "cat /proc/self/cgroup > /tmp/cgroup; touch ready; exec sleep 100",
    ])
    .spawn()
    .unwrap();
    let _guard = KillOnDrop(child.id());
    wait_for_file(&work.path().join("ready"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let out = loop {
        let out = root_hutch(&[
            "exec",
            "limited",
            "--",
            "sh",
            "-c",
            "cat /proc/self/cgroup; echo ---; cat /tmp/cgroup",
        ])
        .output()
        .unwrap();
        if out.status.success() || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let text = ok(&out);
    let (mine, payload) = text.split_once("---\n").unwrap();
    assert_eq!(mine, payload);
    // In the sandbox's cgroup namespace, its own cgroup is the root.
    assert!(
        mine.lines()
            .any(|l| l.contains(":pids:") && l.ends_with(":/")),
        "{mine}"
    );
    ok(&root_hutch(&["stop", "limited"]).output().unwrap());
    child.wait().unwrap();
}

/// Issue 12 #6: without `XDG_RUNTIME_DIR` and `/run/user/UID` (cron, `su`,
/// ssh without pam_systemd), another user who makes `/tmp/hutch-UID` first
/// (a file, a directory of theirs, a symlink to one of theirs) would stop
/// every launch of the victim, who cannot remove it. hutch keeps its
/// registry in the home directory then: the victim still launches, and
/// writes nothing into what the attacker planted.
#[test]
fn another_user_cannot_take_the_runtime_directory_first() {
    if !is_root() {
        skip("cross-user tests need root to act as a second user");
        return;
    }
    if std::path::Path::new(&format!("/run/user/{NOBODY}")).exists() {
        skip("/run/user/65534 exists here: hutch would use it");
        return;
    }
    let planted = format!("/tmp/hutch-{NOBODY}");
    let s = Scratch::new();
    let theirs = shared_dir();
    let no_runtime = |args: &[&str]| {
        let mut c = s.hutch(args);
        c.env_remove("XDG_RUNTIME_DIR");
        c.output().unwrap()
    };
    // What the attacker planted, but for the parents' link counts (other
    // tests make directories in /tmp).
    let listing = || {
        let out = std::process::Command::new("ls")
            .args(["-laR", "--time-style=+", &planted])
            .arg(theirs.path())
            .output()
            .unwrap();
        stdout(&out)
            .lines()
            .filter(|l| !l.ends_with(" ..") && !l.starts_with("total "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for plant in [
        format!("mkdir -m 0777 {planted} && mkdir -m 0777 {planted}/sandboxes"),
        format!("echo x > {planted}"),
        format!("mkdir -m 0777 mine && ln -s $PWD/mine {planted}"),
    ] {
        let _ = std::fs::remove_dir_all(&planted);
        let _ = std::fs::remove_file(&planted);
        let _ = std::fs::remove_dir_all(theirs.path().join("mine"));
        as_attacker(theirs.path(), &plant);
        // Control: the victim cannot remove it (sticky /tmp), so a fallback
        // to that name would fail for as long as the attacker likes.
        let rm = s
            .as_user(std::path::Path::new("/bin/rm"))
            .args(["-rf", &planted])
            .output()
            .unwrap();
        assert!(!rm.status.success(), "{plant}: the victim removed it");
        assert!(std::fs::symlink_metadata(&planted).is_ok(), "{plant}");
        let before = listing();

        let out = no_runtime(&[
            "run",
            "--name",
            "t",
            "--profile",
            "cli",
            "--",
            "echo",
            "ran",
        ]);
        assert_eq!(ok(&out), "ran\n", "{plant}");
        ok(&no_runtime(&["ps"]));
        let after = listing();
        assert_eq!(
            after, before,
            "{plant}: the victim wrote into what the attacker planted"
        );
    }
    let _ = std::fs::remove_dir_all(&planted);
    let _ = std::fs::remove_file(&planted);
    // The registry went to the victim's home, private.
    let state = s.home().join(".local/state/hutch");
    let runtime = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("runtime"))
        .expect("a runtime directory in the state home");
    let meta = std::fs::metadata(runtime.path().join("sandboxes")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.mode() & 0o777), (NOBODY, 0o700));
}

/// Issue 12 #11: `hutch exec` opens the Landlock rules' paths again, long
/// after the payload started. A payload that may write where a rule's
/// path lies puts a symlink to a wider directory in its place; the
/// exec'd command must not get the rule's rights there.
#[test]
fn exec_does_not_follow_a_symlink_the_payload_put_in_place_of_a_rule_path() {
    if hutch::landlock::probe().abi() == 0 {
        skip("Landlock is not available on this kernel");
        return;
    }
    let s = Scratch::new();
    let work = s.path().join("work");
    std::fs::create_dir_all(work.join("out")).unwrap();
    s.chown_all();
    // The working directory is bound writable; Landlock lets the sandbox
    // write to `work` only (and names `work/out` too, as a profile that
    // lists an output directory would). `/bin/sh` passes through the
    // symlink `/bin` on merged-/usr systems: on the read-only root, so
    // followed (the sandbox could not have put it there).
    let p = profile(
        &s,
        "p",
        "[landlock]\nfrom_mounts = false\nread = [\"/\", \"/bin/sh\"]\nwrite = [\"${CWD}/work\", \"${CWD}/work/out\"]\n",
    );
    let (_child, _guard) = spawn_named(
        &s,
        "swap",
        &p,
        &[
            "sh",
            "-c",
            "touch denied 2>/dev/null && echo wrote-denied > work/said; \
             rmdir work/out && ln -s \"$PWD\" work/out && touch work/ready; exec sleep 100",
        ],
    );
    wait_running(&s, "swap");
    wait_for_file(&work.join("ready"));
    // The payload itself could not write outside `work` ...
    assert!(!s.path().join("denied").exists());
    assert!(!work.join("said").exists());
    // ... but did put the symlink in place of the rule's path.
    assert_eq!(std::fs::read_link(work.join("out")).unwrap(), s.path());
    let out = exec(
        &s,
        "swap",
        &["sh", "-c", "touch denied && echo wrote-denied"],
    );
    fails_with(&out, 125, "work/out");
    fails_with(&out, 125, "symlink");
    assert!(!stdout(&out).contains("wrote-denied"));
    assert!(
        !s.path().join("denied").exists(),
        "exec wrote outside `work`"
    );
    // Control: outside Landlock the same write works.
    ok(&s
        .as_user(std::path::Path::new("/usr/bin/touch"))
        .arg("denied")
        .output()
        .unwrap());
    // While the rule's path is the directory again, exec works.
    std::fs::remove_file(work.join("out")).unwrap();
    std::fs::create_dir(work.join("out")).unwrap();
    s.chown_all();
    assert_eq!(ok(&exec(&s, "swap", &["echo", "joined"])), "joined\n");
}

/// Issue 12 #6, the last resort: no runtime directory and a home that
/// cannot hold one (nobody's `/nonexistent`) give a one-line refusal that
/// names XDG_RUNTIME_DIR; listing still works (nothing runs).
#[test]
fn without_a_runtime_directory_or_a_home_the_refusal_names_xdg_runtime_dir() {
    if std::path::Path::new(&format!("/run/user/{}", test_uid())).exists() {
        skip("/run/user/UID exists here: hutch would use it");
        return;
    }
    let s = Scratch::new();
    let without = |args: &[&str]| {
        let mut c = s.hutch(args);
        c.env_remove("XDG_RUNTIME_DIR")
            .env("HOME", "/nonexistent")
            .env("XDG_STATE_HOME", "/nonexistent/state");
        c.output().unwrap()
    };
    let out = without(&["run", "--profile", "cli", "--", "true"]);
    fails_with(&out, 125, "set XDG_RUNTIME_DIR to a directory of yours");
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    ok(&without(&["ps"]));
    // The control: with a runtime directory the same launch works.
    ok(&s.run(&["--profile", "cli"], &["true"]));
}

/// Issue 12 #6 puts the registry in the home directory when there is no
/// runtime directory. A sandbox that binds the home writable (here `cli`
/// with `--bind HOME`, from a project below it) must not reach it, as under
/// /tmp: a sandbox that could change a record could make `exec` join it with
/// a weaker confinement.
#[test]
fn a_registry_in_the_home_is_out_of_reach_of_a_sandbox_started_there() {
    use std::os::unix::fs::PermissionsExt;
    if std::path::Path::new(&format!("/run/user/{}", test_uid())).exists() {
        skip("/run/user/UID exists here: hutch would use it");
        return;
    }
    let s = Scratch::new();
    let project = s.home().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let home = s.home().to_str().unwrap().to_owned();
    let in_home = |args: &[&str]| {
        let mut c = s.hutch(args);
        c.env_remove("XDG_RUNTIME_DIR").current_dir(&project);
        c.output().unwrap()
    };
    // A first launch makes the registry in the state home.
    ok(&in_home(&["run", "--profile", "cli", "--", "true"]));
    let state = s.home().join(".local/state/hutch");
    let registry = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("runtime"))
        .expect("a runtime directory in the state home")
        .path();
    // The control: a directory beside it, private like it.
    let beside = state.join("beside");
    std::fs::create_dir(&beside).unwrap();
    std::fs::set_permissions(&beside, std::fs::Permissions::from_mode(0o700)).unwrap();
    s.chown_all();
    let probe = |dir: &std::path::Path| {
        format!(
            "(ls {d} && touch {d}/planted && echo wrote {d}) 2>&1; true",
            d = dir.display()
        )
    };
    let script = format!("{}; {}", probe(&beside), probe(&registry));
    let text = ok(&in_home(&[
        "run",
        "--profile",
        "cli",
        "--bind",
        &home,
        "--",
        "sh",
        "-c",
        &script,
    ]));
    // The payload writes beside the registry (the home is bound writable) ...
    assert!(
        text.contains(&format!("wrote {}", beside.display())),
        "{text}"
    );
    // ... but can neither list nor change the registry.
    assert!(
        !text.contains(&format!("wrote {}", registry.display())),
        "{text}"
    );
    assert!(!text.contains("sandboxes"), "{text}");
    assert!(text.contains("Permission denied"), "{text}");
    assert!(!registry.join("planted").exists(), "the registry changed");
    // Outside a sandbox the same user could change it.
    let host = s
        .as_user(std::path::Path::new("/bin/sh"))
        .args(["-c", &probe(&registry)])
        .output()
        .unwrap();
    assert!(
        stdout(&host).contains(&format!("wrote {}", registry.display())),
        "{}",
        stdout(&host)
    );
    std::fs::remove_file(registry.join("planted")).unwrap();
    let explained = ok(&in_home(&[
        "run",
        "--explain",
        "--profile",
        "cli",
        "--bind",
        &home,
        "--",
        "true",
    ]));
    assert!(
        explained.contains("hutch: hides its registry"),
        "{explained}"
    );
}

/// `hutch doctor` says where the registry goes (issue 12 #6): a runtime
/// directory, the home when there is none (a warning), nowhere when there
/// is no home either (a failure, as every launch is then refused).
#[test]
fn doctor_says_where_the_registry_goes() {
    if std::path::Path::new(&format!("/run/user/{}", test_uid())).exists() {
        skip("/run/user/UID exists here: hutch would use it");
        return;
    }
    let s = Scratch::new();
    let registry = |c: &mut std::process::Command| -> serde_json::Value {
        let out = c.args(["doctor", "--json"]).output().unwrap();
        let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        all.into_iter()
            .find(|c| c["name"] == "registry")
            .expect("a registry check")
    };
    let with = registry(&mut s.hutch(&[]));
    assert_eq!(with["status"], "ok", "{with}");
    let detail = with["detail"].as_str().unwrap();
    assert!(
        detail.ends_with(&format!("{}/hutch", s.runtime().display())),
        "{detail}"
    );
    let home = registry(s.hutch(&[]).env_remove("XDG_RUNTIME_DIR"));
    assert_eq!(home["status"], "warn", "{home}");
    let state = s.home().join(".local/state/hutch/runtime");
    assert!(
        home["detail"]
            .as_str()
            .unwrap()
            .contains(&state.display().to_string()),
        "{home}"
    );
    assert!(home["fix"].as_str().unwrap().contains("XDG_RUNTIME_DIR"));
    // A home that cannot hold it (nobody's `/nonexistent`).
    let nowhere = |c: &mut std::process::Command| {
        c.env_remove("XDG_RUNTIME_DIR")
            .env("HOME", "/nonexistent")
            .env("XDG_STATE_HOME", "/nonexistent/state");
    };
    let mut doctor = s.hutch(&[]);
    nowhere(&mut doctor);
    let none = registry(&mut doctor);
    assert_eq!(none["status"], "fail", "{none}");
    // The launch it predicts: refused.
    let mut launch = s.hutch(&["run", "--profile", "cli", "--", "true"]);
    nowhere(&mut launch);
    let out = launch.output().unwrap();
    fails_with(&out, 125, "set XDG_RUNTIME_DIR");
}
