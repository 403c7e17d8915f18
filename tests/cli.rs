//! The command line: profile lookup, overrides, checking, listing, explaining.

mod common;

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
    assert!(out.contains("builtin:base/system ← builtin:cli"), "{out}");
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
                "test -e marker && echo SEEN; true",
            ])
            .output()
            .unwrap())
    };
    assert_eq!(
        probe(&s),
        "SEEN\n",
        "probe: the cli profile binds the working directory"
    );
    s.write(
        "config/hutch/profiles/cli.local.toml",
        "version = 1\nremove = [\"${CWD}\"]\n",
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
        stdout(&out).contains("good.toml: ok (builtin:base/system ← builtin:cli ← "),
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
