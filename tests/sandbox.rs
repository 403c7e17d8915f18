//! The core launcher, checked from inside real sandboxes, launched by an
//! unprivileged user (uid 65534 when the tests run as root).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn runs_as_the_unprivileged_caller() {
    let s = Scratch::new();
    let out = ok(&s.sh("id -u; id -g; cat /proc/self/uid_map"));
    let lines: Vec<&str> = out.lines().collect();
    let uid = test_uid().to_string();
    assert_eq!(lines[0], uid);
    let map: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(map, [uid.as_str(), uid.as_str(), "1"]);
}

#[test]
fn identity_root_maps_zero_to_the_caller() {
    let s = Scratch::new();
    let p = s.write(
        "root.toml",
        "version = 1\nextends = [\"cli\"]\nidentity = \"root\"\n",
    );
    let out = ok(&s.run(
        &["--profile", p.to_str().unwrap()],
        &[
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; cat /proc/self/gid_map",
        ],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    let uid = test_uid().to_string();
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", uid.as_str(), "1"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["0", uid.as_str(), "1"]
    );
}

#[test]
fn init_is_pid_1_and_only_sandbox_processes_are_visible() {
    let s = Scratch::new();
    let out = ok(&s.sh("echo $$; ps -e -o pid=,comm="));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("2"), "the payload is PID 2:\n{out}");
    let procs: Vec<(u32, String)> = lines
        .map(|l| {
            let mut it = l.split_whitespace();
            (
                it.next().unwrap().parse().unwrap(),
                it.next().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(procs[0], (1, "hutch-init".to_string()), "{out}");
    assert_eq!(procs[1], (2, "sh".to_string()), "{out}");
    let comms: Vec<&str> = procs.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(
        comms,
        ["hutch-init", "sh", "ps"],
        "nothing from the host: {out}"
    );
}

#[test]
fn hostname_is_the_sandboxes() {
    let s = Scratch::new();
    assert_eq!(ok(&s.sh("hostname")).trim(), "hutch");
    let p = s.write(
        "named.toml",
        "version = 1\nextends = [\"cli\"]\nhostname = \"box-1.test\"\n",
    );
    let out = ok(&s.run(&["--profile", p.to_str().unwrap()], &["hostname"]));
    assert_eq!(out.trim(), "box-1.test");
}

#[test]
fn only_what_the_profile_mounts_is_visible() {
    let s = Scratch::new();
    // A file of the caller's, outside every bind: /var is not in the profile,
    // and the scratch dir's siblings in /tmp are hidden by the private /tmp.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "x").unwrap();
    let secret = outside.path().join("secret");
    let script = format!(
        "ls /; test -e {} && echo SEEN-SECRET; test -e /var && echo SEEN-VAR; test -e /root && echo SEEN-ROOT; echo done",
        secret.display()
    );
    let out = ok(&s.sh(&script));
    assert!(out.ends_with("done\n"), "{out}");
    assert!(!out.contains("SEEN-"), "{out}");
    let top: Vec<&str> = out.lines().filter(|l| *l != "done").collect();
    for entry in &top {
        assert!(
            [
                "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp",
                "usr"
            ]
            .contains(entry),
            "unexpected top-level entry {entry:?} in {top:?}"
        );
    }
    assert!(
        std::path::Path::new(&secret).exists(),
        "probe: the file exists on the host"
    );
}

#[test]
fn read_only_binds_stay_read_only_with_their_submounts() {
    let s = Scratch::new();
    let data = s.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    s.chown_all();
    let profile = s.write(
        "ro.toml",
        &format!(
            "version = 1\nextends = [\"base/system\"]\n[[mount]]\ntype = \"ro-bind\"\nsrc = \"{d}\"\ndst = \"/data\"\n",
            d = data.display()
        ),
    );
    // A submount under the bound directory, made in a private mount namespace
    // so the host's mount table is untouched.
    let script = format!(
        "mount -t tmpfs -o mode=0777 none {sub} && touch {sub}/probe && exec \"$@\"",
        sub = data.join("sub").display()
    );
    let inner = "touch /data/x 2>&1; touch /data/sub/y 2>&1; ls /data/sub; echo end";
    let mut args: Vec<String> = vec!["-c".into(), script, "sh".into()];
    let out = if is_root() {
        args.extend([
            "setpriv".into(),
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
        ]);
        args.extend([
            hutch_bin().display().to_string(),
            "run".into(),
            "--profile".into(),
            profile.display().to_string(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            inner.into(),
        ]);
        std::process::Command::new("unshare")
            .arg("-m")
            .arg("sh")
            .args(&args)
            .current_dir(s.path())
            .env("HOME", s.home())
            .output()
            .unwrap()
    } else {
        skip("creating a submount for this test needs root (CI runs as root)");
        return;
    };
    let text = ok(&out);
    assert!(
        text.contains("touch: cannot touch '/data/x': Read-only file system"),
        "{text}"
    );
    assert!(
        text.contains("touch: cannot touch '/data/sub/y': Read-only file system"),
        "the submount must be read-only too:\n{text}"
    );
    assert!(text.contains("probe"), "the submount is visible: {text}");
}

#[test]
fn tmpfs_is_writable_and_gone_after_exit() {
    let s = Scratch::new();
    // The default profile: private /tmp and an empty tmpfs home, nothing bound
    // from the caller's directories.
    let run = |script: &str| s.run(&[], &["sh", "-c", script]);
    ok(&run(
        "echo hello > /tmp/left-behind && cat /tmp/left-behind && mkdir ~/d",
    ));
    // (The path down to HOME exists in /tmp when HOME is below /tmp, as here.)
    let out = ok(&run(
        "test -e /tmp/left-behind && echo LEFT; ls -A ~; echo end",
    ));
    assert_eq!(
        out, "end\n",
        "a new sandbox starts with an empty /tmp and home"
    );
    assert!(!std::path::Path::new("/tmp/left-behind").exists());
    assert!(std::fs::read_dir(s.home()).unwrap().next().is_none());
}

#[test]
fn dev_is_minimal() {
    let s = Scratch::new();
    let out = ok(&s.sh("ls -A /dev | tr '\\n' ' '; echo; ls /dev/pts; echo x > /dev/null && echo null-ok; head -c 4 /dev/urandom | wc -c; touch /dev/new 2>&1; touch /dev/shm/ok && echo shm-ok"));
    let mut lines = out.lines();
    let mut entries: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    entries.sort_unstable();
    assert_eq!(
        entries,
        [
            "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
            "tty", "urandom", "zero"
        ]
    );
    assert!(out.contains("ptmx"), "{out}");
    assert!(out.contains("null-ok"), "{out}");
    assert!(out.contains("\n4\n"), "{out}");
    assert!(
        out.contains("Read-only file system"),
        "/dev itself is read-only: {out}"
    );
    assert!(out.contains("shm-ok"), "{out}");
}

#[test]
fn environment_is_cleared_except_the_keep_list() {
    let s = Scratch::new();
    let out = s
        .hutch(&["run", "--profile", "cli", "--", "env"])
        .env("TERM", "xterm-test")
        .env("LC_TIME", "C")
        .env("SECRET_TOKEN", "hunter2")
        .env("SSH_AUTH_SOCK", "/tmp/agent")
        .output()
        .unwrap();
    let env = ok(&out);
    assert!(env.contains("TERM=xterm-test\n"), "{env}");
    assert!(env.contains("LC_TIME=C\n"), "{env}");
    assert!(
        env.contains(&format!("HOME={}\n", s.home().display())),
        "{env}"
    );
    assert!(env.contains("PATH="), "{env}");
    assert!(!env.contains("SECRET_TOKEN"), "{env}");
    assert!(!env.contains("SSH_AUTH_SOCK"), "{env}");
    assert!(!env.contains("XDG_CONFIG_HOME"), "{env}");
    let p = s.write(
        "env.toml",
        "version = 1\nextends = [\"cli\"]\n[env]\nkeep = [\"SECRET_*\", \"!TERM\"]\nset = { GREETING = \"hi from ${USER:-x}\" }\n",
    );
    // An unknown variable is an error, not an empty string.
    let bad = s.run(&["--profile", p.to_str().unwrap()], &["env"]);
    fails_with(&bad, 125, "unknown variable `${USER:-x}`");
    let p = s.write(
        "env.toml",
        "version = 1\nextends = [\"cli\"]\n[env]\nkeep = [\"SECRET_*\", \"!TERM\"]\nset = { GREETING = \"home is ${HOME}\" }\n",
    );
    let out = s
        .hutch(&["run", "--profile", p.to_str().unwrap(), "--", "env"])
        .env("TERM", "xterm-test")
        .env("SECRET_TOKEN", "hunter2")
        .output()
        .unwrap();
    let env = ok(&out);
    assert!(env.contains("SECRET_TOKEN=hunter2\n"), "{env}");
    assert!(!env.contains("TERM="), "{env}");
    assert!(
        env.contains(&format!("GREETING=home is {}\n", s.home().display())),
        "{env}"
    );
}

#[test]
fn inherited_descriptors_are_closed() {
    let s = Scratch::new();
    // The caller holds fds 5 and 7 open (not close-on-exec) when starting hutch.
    let mut sh = s.as_user(std::path::Path::new("/bin/sh"));
    sh.arg("-c")
        .arg("exec 5</etc/hostname 7<>/dev/null; exec \"$0\" run --profile cli -- ls /proc/self/fd")
        .arg(hutch_bin());
    let out = ok(&sh.output().unwrap());
    let fds: Vec<&str> = out.split_whitespace().collect();
    // 0 1 2 and the descriptor ls itself opened for /proc/self/fd.
    assert_eq!(fds, ["0", "1", "2", "3"], "{out}");
    // Probe: the shell really had fds 5 and 7 open for hutch to inherit.
    let probe = std::process::Command::new("sh")
        .args([
            "-c",
            "exec 5</etc/hostname 7<>/dev/null; ls /proc/self/fd | tr '\\n' ' '",
        ])
        .output()
        .unwrap();
    let probe = stdout(&probe);
    assert!(probe.contains('5') && probe.contains('7'), "{probe}");
}

#[test]
fn exit_codes_follow_the_payload() {
    let s = Scratch::new();
    assert_eq!(s.sh("exit 0").status.code(), Some(0));
    assert_eq!(s.sh("exit 42").status.code(), Some(42));
    assert_eq!(s.sh("kill -TERM $$").status.code(), Some(143));
    assert_eq!(s.sh("kill -KILL $$").status.code(), Some(137));
    let missing = s.run(&["--profile", "cli"], &["no-such-program-xyz"]);
    fails_with(&missing, 127, "cannot execute no-such-program-xyz");
    let not_exec = s.run(&["--profile", "cli"], &["/etc/hostname"]);
    assert_eq!(not_exec.status.code(), Some(126), "{}", stderr(&not_exec));
}

#[test]
fn failures_of_hutch_itself_exit_125_with_one_line() {
    let s = Scratch::new();
    let p = s.write(
        "bad.toml",
        "version = 1\nextends = [\"base/system\"]\n[[mount]]\ntype = \"ro-bind\"\nsrc = \"/nonexistent-hutch-src\"\ndst = \"/x\"\n",
    );
    let out = s.run(&["--profile", p.to_str().unwrap()], &["true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains("bind source /nonexistent-hutch-src does not exist"),
        "{err}"
    );
    assert!(err.contains(&format!("{}:5:7", p.display())), "{err}");
}

#[test]
fn sigterm_to_hutch_reaches_the_payload() {
    let s = Scratch::new();
    let mut sandbox = s.start(
        &["--profile", "cli"],
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
        ],
    );
    let hutch_pid = launcher_pid(sandbox.child.id());
    nix::sys::signal::kill(hutch_pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(sandbox.lines.next().unwrap().unwrap(), "got-term");
    let status = sandbox.child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(7),
        "the payload's handler ran and its status came back"
    );
}

#[test]
fn sigkill_to_hutch_ends_every_sandboxed_process() {
    let s = Scratch::new();
    let marker = format!("1000.{}", std::process::id());
    let mut sandbox = s.start(
        &["--profile", "cli"],
        &[
            "sh",
            "-c",
            &format!("sleep {marker} & sleep {marker} & echo ready; sleep {marker}"),
        ],
    );
    // "ready" can be printed before the background sleepers have exec'd.
    let t = Instant::now();
    while processes_with_arg(&marker).len() < 3 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "probe: three sleepers should run: {:?}",
            processes_with_arg(&marker)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let hutch_pid = launcher_pid(sandbox.child.id());
    nix::sys::signal::kill(hutch_pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let t = Instant::now();
    while !processes_with_arg(&marker).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "sandboxed processes outlived hutch by 1 s: {:?}",
            processes_with_arg(&marker)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = sandbox.child.wait().unwrap();
    assert_eq!(status.signal(), Some(9));
}

#[test]
fn orphaned_zombies_are_reaped() {
    let s = Scratch::new();
    // The subshell exits at once, so its background sleep is re-parented to
    // PID 1; when the sleep ends, only init can reap it.
    let out = ok(&s.sh("(sleep 0.1 &); sleep 0.6; ps -e -o stat=,comm="));
    assert!(
        !out.lines().any(|l| l.starts_with('Z')),
        "a zombie is left:\n{out}"
    );
}

#[test]
fn no_capabilities_and_no_new_privs() {
    let s = Scratch::new();
    let out = ok(&s.sh("grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status"));
    let fields: Vec<(String, String)> = out
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_string(), v.trim().to_string())
        })
        .collect();
    assert_eq!(fields.len(), 6, "{out}");
    for (k, v) in &fields {
        if k == "NoNewPrivs" {
            assert_eq!(v, "1");
        } else {
            assert_eq!(v, "0000000000000000", "{k}");
        }
    }
    // With root inside the user namespace, exec still grants nothing.
    let p = s.write(
        "r.toml",
        "version = 1\nextends = [\"cli\"]\nidentity = \"root\"\n",
    );
    let out = ok(&s.run(
        &["--profile", p.to_str().unwrap()],
        &["grep", "-E", "^Cap(Prm|Eff|Bnd)", "/proc/self/status"],
    ));
    assert!(
        out.lines().all(|l| l.ends_with("0000000000000000")),
        "{out}"
    );
}

#[test]
fn cwd_is_shared_read_write_in_the_cli_profile() {
    let s = Scratch::new();
    let out = ok(&s.sh("pwd; echo made > ./from-inside"));
    assert_eq!(out.trim(), s.path().display().to_string());
    assert_eq!(
        std::fs::read_to_string(s.path().join("from-inside")).unwrap(),
        "made\n"
    );
}

#[test]
fn default_profile_hides_home_and_reads_cwd() {
    let s = Scratch::new();
    std::fs::write(s.home().join(".secret"), "x").unwrap();
    let visible_on_host = s.write("cwd-file", "x");
    let out = ok(&s.run(
        &[],
        &[
            "sh",
            "-c",
            &format!(
                "pwd; ls -A ~; test -e {} && echo SEEN-CWD; true",
                visible_on_host.display()
            ),
        ],
    ));
    // It starts in the working directory, which it reads; the home is empty.
    assert_eq!(out, format!("{}\nSEEN-CWD\n", s.path().display()));
}

#[test]
fn a_symlink_in_a_bind_cannot_lead_a_destination_out_of_the_root() {
    let s = Scratch::new();
    let tree = s.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc", tree.join("escape")).unwrap();
    s.chown_all();
    let p = s.write(
        "esc.toml",
        &format!(
            "version = 1\nextends = [\"base/system\"]\n[[mount]]\ntype = \"ro-bind\"\nsrc = \"{t}\"\ndst = \"/tree\"\n[[mount]]\ntype = \"tmpfs\"\ndst = \"/tree/escape/x\"\n",
            t = tree.display()
        ),
    );
    let out = s.run(&["--profile", p.to_str().unwrap()], &["true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains("cannot resolve mount destination /tree/escape/x"),
        "{err}"
    );
    assert!(err.contains("leads out of the sandbox root"), "{err}");
}

/// `setpriv` execs hutch, so the spawned pid is hutch's when we drop privileges.
fn launcher_pid(spawned: u32) -> nix::unistd::Pid {
    nix::unistd::Pid::from_raw(spawned as i32)
}

/// Host pids of processes whose command line contains `arg`.
fn processes_with_arg(arg: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.split('\0').any(|a| a == arg) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn the_payload_gets_the_default_sigpipe_disposition() {
    let s = Scratch::new();
    // With SIGPIPE ignored, `yes` would see EPIPE and complain on stderr
    // instead of dying quietly as it does in a normal shell.
    let out = s.sh("yes | head -n 1");
    assert_eq!(ok(&out), "y\n");
    assert_eq!(
        stderr(&out),
        "",
        "yes must die of SIGPIPE, not report a write error"
    );
}

#[test]
fn rlimits_apply_inside_and_impossible_ones_stop_the_launch() {
    let s = Scratch::new();
    let p = s.write(
        "limits.toml",
        "version = 1\nextends = [\"cli\"]\n[rlimits]\nnofile = 64\ncore = 0\nfsize = \"1M\"\nnproc = 4096\n",
    );
    let out = ok(&s.run(
        &["--profile", p.to_str().unwrap()],
        &[
            "sh",
            "-c",
            "ulimit -n; ulimit -c; ulimit -f; head -c 2M /dev/zero > big 2>/dev/null; echo $?",
        ],
    ));
    // ulimit -f counts 512-byte blocks; a 2 MiB write past 1 MiB is killed
    // by SIGXFSZ (exit 128+25) or fails.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["64", "0", "2048"], "{out}");
    assert_ne!(lines[3], "0", "writing past fsize must fail: {out}");
    assert_eq!(
        std::fs::metadata(s.path().join("big")).unwrap().len(),
        1 << 20
    );
    // Raising the hard limit above the caller's needs privileges hutch does
    // not have: the launch stops with one line naming the limit.
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1;
    let too_many = hard.saturating_add(1);
    let p = s.write(
        "raise.toml",
        &format!("version = 1\nextends = [\"cli\"]\n[rlimits]\nnofile = {too_many}\n"),
    );
    let out = s.run(&["--profile", p.to_str().unwrap()], &["true"]);
    fails_with(&out, 125, "cannot set resource limit nofile");
}

/// Issue 12 #12: a destination that resolves through a symlink inside the
/// sandbox is mounted where the symlink leads, and `--explain` says where
/// before anything runs (the planner and the child agree).
#[test]
fn explain_shows_where_a_destination_through_a_symlink_lands() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path().join("conf")).unwrap();
    std::os::unix::fs::symlink("/srv/real", s.path().join("conf/link")).unwrap();
    s.write("data/file", "through the link\n");
    let p = s.write(
        "landing.toml",
        "version = 1\nextends = [\"cli\"]\n\
         [[mount]]\ntype = \"ro-bind\"\nsrc = \"${CWD}/conf\"\ndst = \"/conf\"\n\
         [[mount]]\ntype = \"tmpfs\"\ndst = \"/srv\"\n\
         [[mount]]\ntype = \"ro-bind\"\nsrc = \"${CWD}/data\"\ndst = \"/conf/link\"\n",
    );
    let p = p.to_str().unwrap();
    let explained = ok(&s.run(&["--explain", "--profile", p], &["true"]));
    assert!(
        explained.contains("lands at /srv/real (/conf/link is a symlink inside the sandbox)"),
        "{explained}"
    );
    // The control: the symlink is followed by the mount itself.
    let out = ok(&s.run(&["--profile", p], &["cat", "/srv/real/file"]));
    assert_eq!(out, "through the link\n");
}
