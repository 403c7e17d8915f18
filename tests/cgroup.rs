//! `[limits]` on this machine: an ordinary user without cgroup delegation
//! (required limits are refused with the reasons, best-effort ones run and
//! say what was not enforced), and root on the cgroup v1 hierarchies (a
//! memory hog is OOM-killed, forks stop at `pids`, `cpu` holds a busy loop).
//! The systemd and cgroup v2 backends are tested in a VM: tests/cgroup_vm.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

const LIMITS: &str = "version = 1\nextends = [\"cli\"]\n[limits]\nmemory = \"64M\"\npids = 32\n";

/// The backend `--explain` picks for `profile`, run the way `cmd` runs hutch.
fn explained(cmd: &mut Command) -> String {
    stdout(&cmd.output().unwrap())
}

/// Ordinary users here have no delegation: skip (visibly) where they do.
fn user_without_delegation(s: &Scratch) -> bool {
    s.write(
        "probe.toml",
        "version = 1\nextends = [\"cli\"]\n[limits]\nenforce = \"best-effort\"\nmemory = \"64M\"\npids = 32\n",
    );
    let text = explained(&mut s.hutch(&[
        "run",
        "--explain",
        "--profile",
        "./probe.toml",
        "--",
        "true",
    ]));
    assert!(text.contains("limits      best-effort"), "{text}");
    if text.contains("  backend ") {
        skip(&format!(
            "uid {} can get cgroup limits on this machine, so the refusal cannot be shown here:\n{text}",
            test_uid()
        ));
        return false;
    }
    true
}

#[test]
fn required_limits_without_delegation_are_refused_with_the_reasons() {
    let s = Scratch::new();
    if !user_without_delegation(&s) {
        return;
    }
    s.write("p.toml", LIMITS);
    let out = s.run(&["--profile", "./p.toml"], &["echo", "ran"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(!stdout(&out).contains("ran"));
    for want in [
        "error: [limits] cannot be enforced on this host (memory, pids required)",
        "p.toml:4:10",
        "systemd user manager: no D-Bus socket at",
        "no systemd user manager runs for you",
        "delegated cgroup v2 subtree:",
        "cgroup v1 (as root): needs root",
        "enforce = \"best-effort\"",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // `hutch check` refuses it the same way: the profile cannot run here.
    let out = s.hutch(&["check", "./p.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("[limits] cannot be enforced"));
}

#[test]
fn best_effort_limits_run_and_say_what_is_not_enforced() {
    let s = Scratch::new();
    if !user_without_delegation(&s) {
        return;
    }
    s.write(
        "p.toml",
        &LIMITS.replace("[limits]\n", "[limits]\nenforce = \"best-effort\"\n"),
    );
    let out = s.run(&["-v", "--profile", "./p.toml"], &["echo", "ran"]);
    let err = stderr(&out);
    assert_eq!(ok(&out), "ran\n");
    assert!(
        err.contains("limits memory,pids NOT ENFORCED (no cgroup backend here)"),
        "{err}"
    );
    assert!(
        err.contains("hutch: warning: not enforced: [limits] memory, pids: systemd user manager: no D-Bus socket"),
        "{err}"
    );
    let out = s.run(&["--profile", "./p.toml"], &["true"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("warning: not enforced: [limits]"));
    let text =
        explained(&mut s.hutch(&["run", "--explain", "--profile", "./p.toml", "--", "true"]));
    for want in [
        "limits      best-effort",
        "  memory 64 MiB (from ./p.toml:5:10)",
        "  pids 32 (from ./p.toml:6:8)",
        "  NOT ENFORCED: no cgroup backend can apply these limits here",
        "  unusable  systemd user manager: no D-Bus socket",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn profiles_without_limits_do_not_probe_or_warn() {
    let s = Scratch::new();
    let out = s.run(&["-v", "--profile", "cli"], &["true"]);
    assert!(out.status.success());
    assert!(!stderr(&out).contains("limits"), "{}", stderr(&out));
    let text = explained(&mut s.hutch(&["run", "--explain", "--profile", "cli", "--", "true"]));
    assert!(!text.contains("limits "), "{text}");
    // `enforce = "off"` turns inherited limits off entirely.
    s.write(
        "off.toml",
        &LIMITS.replace("[limits]\n", "[limits]\nenforce = \"off\"\n"),
    );
    let out = s.run(&["--profile", "./off.toml"], &["echo", "ran"]);
    assert_eq!(ok(&out), "ran\n");
    assert!(!stderr(&out).contains("limits"), "{}", stderr(&out));
}

// ---- root, cgroup v1 ----

/// `hutch ARGS` as root (these tests are about root's v1 backend).
fn root_hutch(s: &Scratch, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hutch"))
        .args(args)
        .current_dir(s.path())
        .env_clear()
        .env("HOME", s.home())
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("XDG_CONFIG_HOME", s.path().join("config"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `hutch run -v --profile PROFILE -- COMMAND...` as root.
fn run_verbose(s: &Scratch, profile: &Path, command: &[&str]) -> Output {
    let mut args = vec!["run", "-v", "--profile", profile.to_str().unwrap(), "--"];
    args.extend_from_slice(command);
    root_hutch(s, &args)
}

/// Writes `limits` as a profile and says whether root gets cgroup v1 for it.
fn root_v1(s: &Scratch, name: &str, limits: &str) -> Option<PathBuf> {
    if !is_root() {
        skip("the cgroup v1 backend needs root");
        return None;
    }
    let p = s.write(
        &format!("{name}.toml"),
        &format!("version = 1\nextends = [\"cli\"]\n[limits]\n{limits}"),
    );
    let text = stdout(&root_hutch(
        s,
        &[
            "run",
            "--explain",
            "--profile",
            p.to_str().unwrap(),
            "--",
            "true",
        ],
    ));
    if !text.contains("  backend  cgroup v1 (as root): ") {
        skip(&format!(
            "root does not get the cgroup v1 backend on this machine:\n{text}"
        ));
        return None;
    }
    Some(p)
}

/// The directories `hutch -v` says the limits are in.
fn cgroup_dirs(err: &str) -> Vec<PathBuf> {
    let line = err
        .lines()
        .find(|l| l.starts_with("hutch: limits ") && l.contains(" via cgroup v1 (as root): "))
        .unwrap_or_else(|| panic!("no `hutch: limits` line in:\n{err}"));
    let dirs = line.rsplit(" via cgroup v1 (as root): ").next().unwrap();
    dirs.split(", ").map(PathBuf::from).collect()
}

fn assert_removed(dirs: &[PathBuf]) {
    assert!(!dirs.is_empty());
    for d in dirs {
        assert!(d.starts_with("/sys/fs/cgroup/"), "{}", d.display());
        assert!(!d.exists(), "{} is left behind", d.display());
    }
}

#[test]
fn root_v1_memory_hog_is_oom_killed_and_reported() {
    let s = Scratch::new();
    // The address-space limit is a backstop: should the cgroup limit not
    // apply, the hog fails at 1G instead of exhausting the machine.
    let Some(p) = root_v1(&s, "oom", "memory = \"32M\"\n[rlimits]\nas = \"1G\"\n") else {
        return;
    };
    let out = run_verbose(&s, &p, &["tail", "/dev/zero"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(137), "{err}");
    assert!(
        err.contains("hutch: out of memory: the sandbox reached its memory limit of 32 MiB and the kernel's OOM killer killed the payload (exit status 137)"),
        "{err}"
    );
    let dirs = cgroup_dirs(&err);
    assert!(
        dirs.iter().any(|d| d.starts_with("/sys/fs/cgroup/memory/")),
        "{dirs:?}"
    );
    assert_removed(&dirs);
}

#[test]
fn root_v1_forks_stop_at_pids() {
    let s = Scratch::new();
    if !Path::new("/usr/bin/perl").exists() {
        skip("no /usr/bin/perl for the fork loop");
        return;
    }
    let Some(p) = root_v1(&s, "pids", "pids = 16\n") else {
        return;
    };
    let forks = "my ($ok, $failed) = (0, 0); for (1..60) { my $p = fork(); if (!defined $p) { $failed++ } elsif ($p == 0) { sleep 30; exit 0 } else { $ok++ } } print \"$ok $failed\\n\";";
    let out = run_verbose(&s, &p, &["perl", "-e", forks]);
    let err = stderr(&out);
    let text = ok(&out);
    let counts: Vec<u32> = text
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    // 16 tasks: hutch's init, perl, and at most 14 children.
    assert!(counts[0] <= 14 && counts[1] >= 46, "{text} {err}");
    assert!(
        err.contains(&format!(
            "hutch: the sandbox reached its process limit (pids 16): {} fork(s) failed",
            counts[1]
        )),
        "{err}"
    );
    assert_removed(&cgroup_dirs(&err));
}

#[test]
fn root_v1_cpu_quota_holds_a_busy_loop() {
    let s = Scratch::new();
    if !Path::new("/usr/bin/perl").exists() {
        skip("no /usr/bin/perl for the busy loop");
        return;
    }
    let Some(p) = root_v1(&s, "cpu", "cpu = 0.25\n") else {
        return;
    };
    let busy = "sub up { open(my $f, '<', '/proc/uptime') or die; (split ' ', scalar <$f>)[0] } my $t0 = up(); while (up() - $t0 < 2) { for (1..20000) {} } my $wall = up() - $t0; my @t = times; printf \"%.1f\\n\", 100 * ($t[0] + $t[1]) / $wall;";
    let out = run_verbose(&s, &p, &["perl", "-e", busy]);
    let err = stderr(&out);
    let pct: f64 = ok(&out).trim().parse().unwrap();
    eprintln!("cpu = 0.25 on cgroup v1: a busy loop got {pct}% of one CPU");
    assert!((10.0..45.0).contains(&pct), "{pct}% {err}");
    assert_removed(&cgroup_dirs(&err));
}

#[test]
fn root_v1_refuses_what_the_hierarchies_cannot_do() {
    let s = Scratch::new();
    // Swap alone cannot be expressed in v1 (memsw is memory plus swap).
    let Some(p) = root_v1(&s, "swap", "memory = \"64M\"\n") else {
        return;
    };
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("memory = \"64M\"\n", "swap = 0\n");
    std::fs::write(&p, text).unwrap();
    let out = root_hutch(&s, &["run", "--profile", p.to_str().unwrap(), "--", "true"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("(swap required)")
            && err.contains("cgroup v1 (as root): cgroup v1 limits memory and swap together: set `memory` as well"),
        "{err}"
    );
}
