//! Volumes, checked from real sandboxes launched by an unprivileged user:
//! persistence, SIGKILL, planted symlinks, concurrent use, `hutch volume`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use common::*;

/// Writes `NAME.toml` extending `cli` (the scratch dir is the working
/// directory, read-write) with `extra` appended; returns its path.
fn profile(s: &Scratch, name: &str, extra: &str) -> String {
    let p = s.write(
        &format!("{name}.toml"),
        &format!("version = 1\nextends = [\"cli\"]\n{extra}"),
    );
    p.display().to_string()
}

fn store(s: &Scratch) -> PathBuf {
    s.home().join(".local/share/hutch/volumes")
}

const DATA: &str = "[volumes.data]\ndst = \"/data\"\n";

/// A directory with one file, to check nothing was written through a
/// planted symlink.
fn canary(s: &Scratch, name: &str) -> PathBuf {
    let dir = s.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep"), "canary").unwrap();
    s.chown_all();
    dir
}

#[track_caller]
fn assert_untouched(dir: &Path) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["keep"], "{} was written to", dir.display());
    assert_eq!(std::fs::read_to_string(dir.join("keep")).unwrap(), "canary");
}

/// Replaces `path` (a directory) with a symlink to `target`.
fn plant_symlink(s: &Scratch, path: &Path, target: &Path) {
    std::fs::remove_dir_all(path).unwrap();
    std::os::unix::fs::symlink(target, path).unwrap();
    s.chown_all();
}

#[test]
fn data_persists_across_runs_in_a_private_directory() {
    let s = Scratch::new();
    let p = profile(&s, "p", DATA);
    ok(&s.run(&["--profile", &p], &["sh", "-c", "echo kept > /data/file"]));
    let out = ok(&s.run(&["--profile", &p], &["cat", "/data/file"]));
    assert_eq!(out, "kept\n");

    let dir = store(&s).join("data");
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
    assert_eq!(std::fs::read_to_string(dir.join("file")).unwrap(), "kept\n");
    let path = ok(&s.hutch(&["volume", "path", "data"]).output().unwrap());
    assert_eq!(path.trim_end(), dir.display().to_string());

    // Mounted nosuid,nodev and read-write, at the destination.
    let opts = ok(&s.run(
        &["--profile", &p],
        &["sh", "-c", "grep ' /data ' /proc/self/mountinfo"],
    ));
    assert!(opts.contains("nosuid") && opts.contains("nodev"), "{opts}");
}

#[test]
fn data_survives_sigkill_of_hutch() {
    let s = Scratch::new();
    let p = profile(&s, "p", DATA);
    let ready = s.path().join("ready");
    let (mut child, _guard) = spawn_named(
        &s,
        "killed",
        &p,
        &[
            "sh",
            "-c",
            "echo precious > /data/f && sync /data/f && touch ready && exec sleep 100",
        ],
    );
    wait_for_file(&ready);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9));

    // The lock went with hutch: a second sandbox may use the volume.
    let out = ok(&s.run(&["--profile", &p], &["cat", "/data/f"]));
    assert_eq!(out, "precious\n");
    // And its record is cleaned up.
    assert!(ps_json(&s).iter().all(|e| e["name"] != "killed"));
    assert!(!s.runtime().join("hutch/sandboxes/killed.json").exists());
}

#[test]
fn data_survives_sigkill_of_the_payload() {
    let s = Scratch::new();
    let p = profile(&s, "p", DATA);
    let out = s.run(
        &["--profile", &p],
        &[
            "sh",
            "-c",
            "echo written > /data/g && sync /data/g && kill -KILL $$",
        ],
    );
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    let out = ok(&s.run(&["--profile", &p], &["cat", "/data/g"]));
    assert_eq!(out, "written\n");
}

#[test]
fn read_only_volumes_cannot_be_written() {
    let s = Scratch::new();
    let rw = profile(&s, "rw", DATA);
    ok(&s.run(&["--profile", &rw], &["sh", "-c", "echo old > /data/f"]));
    let ro = profile(&s, "ro", "[volumes.data]\ndst = \"/data\"\nmode = \"ro\"\n");
    let out = ok(&s.run(
        &["--profile", &ro],
        &[
            "sh",
            "-c",
            "cat /data/f; echo new > /data/f && echo WROTE; true",
        ],
    ));
    assert!(out.starts_with("old\n"), "{out}");
    assert!(!out.contains("WROTE"), "{out}");
}

#[test]
fn a_symlink_planted_in_place_of_a_volume_is_refused() {
    let s = Scratch::new();
    let p = profile(&s, "p", DATA);
    ok(&s.run(&["--profile", &p], &["true"]));
    let target = canary(&s, "canary");
    plant_symlink(&s, &store(&s).join("data"), &target);

    let out = s.run(&["--profile", &p], &["sh", "-c", "echo evil > /data/evil"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("is a symlink"), "{err}");
    assert!(err.contains("never follows symlinks"), "{err}");
    assert_untouched(&target);
    // `volume` commands refuse it too.
    let out = s
        .hutch(&["volume", "rm", "--force", "data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("is a symlink"), "{}", stderr(&out));
    assert_untouched(&target);
}

#[test]
fn a_symlink_planted_in_place_of_a_parent_is_refused() {
    for parent in ["hutch/volumes", "hutch"] {
        let s = Scratch::new();
        let p = profile(&s, "p", DATA);
        ok(&s.run(&["--profile", &p], &["true"]));
        let data_home = s.home().join(".local/share");
        // The canary looks like a store: a `data` directory where the
        // volume would be.
        let target = canary(&s, "canary");
        // Where the store's `volumes` directory would be, through the link.
        let mut fake = target.clone();
        for _ in parent.split('/').count()..2 {
            fake = fake.join("volumes");
        }
        std::fs::create_dir_all(fake.join("data")).unwrap();
        std::fs::write(fake.join("data/keep"), "canary").unwrap();
        s.chown_all();
        plant_symlink(&s, &data_home.join(parent), &target);

        let out = s.run(&["--profile", &p], &["sh", "-c", "echo evil > /data/evil"]);
        assert_eq!(out.status.code(), Some(125), "{parent}: {}", stderr(&out));
        assert!(stderr(&out).contains("is a symlink"), "{}", stderr(&out));
        assert_untouched(&fake.join("data"));
        let out = s.run(&["--profile", &p], &["true"]);
        assert_eq!(out.status.code(), Some(125));
        let names: Vec<_> = std::fs::read_dir(&target).unwrap().collect();
        assert_eq!(
            names.len(),
            2,
            "{parent}: something was created in the canary"
        );
    }
}

#[test]
fn what_a_sandbox_leaves_inside_a_volume_is_removed_without_following_it() {
    let s = Scratch::new();
    let p = profile(&s, "p", DATA);
    let target = canary(&s, "canary");
    // Symlinks to outside, a directory nobody may enter, deep nesting.
    let script = format!(
        "ln -s {t} /data/link && ln -s {t}/keep /data/file-link && mkdir -p /data/a/b/c && \
         ln -s {t} /data/a/b/c/up && echo x > /data/a/b/c/f && chmod 0 /data/a/b /data/a",
        t = target.display()
    );
    ok(&s.run(&["--profile", &p], &["sh", "-c", &script]));
    let info = ok(&s
        .hutch(&["volume", "inspect", "--json", "data"])
        .output()
        .unwrap());
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["name"], "data");
    assert!(info["files"].as_u64().unwrap() >= 3, "{info}");

    let out = s.hutch(&["volume", "rm", "data"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    ok(&s
        .hutch(&["volume", "rm", "--force", "data"])
        .output()
        .unwrap());
    assert!(!store(&s).join("data").exists());
    assert_untouched(&target);
    let out = s.hutch(&["volume", "path", "data"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("no volume named `data`"));
}

#[test]
fn concurrent_use_is_refused_unless_shared() {
    let s = Scratch::new();
    let p = profile(&s, "p", DATA);
    let (_child, _guard) = spawn_named(&s, "first", &p, &["sleep", "100"]);
    wait_running(&s, "first");
    let out = s.run(&["--profile", &p], &["true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains("volume `data` is in use by sandbox `first`"),
        "{err}"
    );
    assert!(err.contains("shared = true"), "{err}");
    ok(&s.hutch(&["stop", "first"]).output().unwrap());

    let shared = profile(
        &s,
        "shared",
        "[volumes.data]\ndst = \"/data\"\nshared = true\n",
    );
    let (_one, _g1) = spawn_named(
        &s,
        "one",
        &shared,
        &["sh", "-c", "echo from-one > /data/x && exec sleep 100"],
    );
    wait_running(&s, "one");
    wait_for_file(&store(&s).join("data/x"));
    let out = ok(&s.run(&["--profile", &shared], &["cat", "/data/x"]));
    assert_eq!(out, "from-one\n");
    // An exclusive user still has to wait for the shared ones.
    let out = s.run(&["--profile", &p], &["true"]);
    fails_with(&out, 125, "in use by sandbox `one`");
}

#[test]
fn rm_is_refused_while_in_use_and_needs_force_when_not_empty() {
    let s = Scratch::new();
    let p = profile(&s, "p", DATA);
    let (_child, _guard) = spawn_named(
        &s,
        "holder",
        &p,
        &["sh", "-c", "echo x > /data/f && exec sleep 100"],
    );
    wait_running(&s, "holder");
    let out = s
        .hutch(&["volume", "rm", "--force", "data"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(err.contains("in use by sandbox `holder`"), "{err}");
    let list = ok(&s.hutch(&["volume", "list", "--json"]).output().unwrap());
    let list: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["name"], "data");
    assert_eq!(list[0]["in_use_by"][0], "holder");
    ok(&s.hutch(&["stop", "holder"]).output().unwrap());

    let out = s.hutch(&["volume", "rm", "data"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    assert!(store(&s).join("data/f").exists());
    ok(&s
        .hutch(&["volume", "rm", "--force", "data"])
        .output()
        .unwrap());
    assert!(!store(&s).join("data").exists());

    // Empty volumes go without --force; the volume is recreated on use.
    let e = profile(&s, "e", "[volumes.empty]\ndst = \"/e\"\n");
    ok(&s.run(&["--profile", &e], &["true"]));
    ok(&s.hutch(&["volume", "rm", "empty"]).output().unwrap());
    assert!(!store(&s).join("empty").exists());
    ok(&s.run(&["--profile", &e], &["test", "-d", "/e"]));
}

#[test]
fn tmp_volumes_start_empty_and_vanish_at_exit() {
    let s = Scratch::new();
    let p = profile(
        &s,
        "p",
        "[volumes.scratch]\ndst = \"/scratch\"\ntmp = true\n",
    );
    let (_child, _guard) = spawn_named(
        &s,
        "t1",
        &p,
        &["sh", "-c", "echo data > /scratch/f && exec sleep 100"],
    );
    wait_running(&s, "t1");
    let dir = store(&s).join(".tmp/t1/scratch");
    wait_for_file(&dir.join("f"));
    let list = ok(&s.hutch(&["volume", "list", "--json"]).output().unwrap());
    let list: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    let t = list.iter().find(|v| v["name"] == "t1/scratch").unwrap();
    assert_eq!(t["kind"], "tmp");
    ok(&s.hutch(&["stop", "t1"]).output().unwrap());
    assert!(!store(&s).join(".tmp/t1").exists());

    // Left behind when hutch is killed: emptied before a new sandbox of the
    // same name uses it, and cleaned up by `hutch volume list`.
    let (mut child, _guard) = spawn_named(
        &s,
        "t2",
        &p,
        &["sh", "-c", "echo data > /scratch/f && exec sleep 100"],
    );
    wait_running(&s, "t2");
    wait_for_file(&store(&s).join(".tmp/t2/scratch/f"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(store(&s).join(".tmp/t2/scratch/f").exists());
    let out = ok(&s.run(
        &["--profile", &p, "--name", "t2"],
        &["ls", "-A", "/scratch"],
    ));
    assert_eq!(out, "");
    assert!(!store(&s).join(".tmp/t2").exists());

    let (mut child, _guard) = spawn_named(&s, "t3", &p, &["sleep", "100"]);
    wait_running(&s, "t3");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(store(&s).join(".tmp/t3").exists());
    ok(&s.hutch(&["volume", "list"]).output().unwrap());
    assert!(!store(&s).join(".tmp/t3").exists());
}

#[test]
fn explain_shows_volumes_with_their_paths_and_locks() {
    let s = Scratch::new();
    let p = profile(
        &s,
        "p",
        "[volumes.data]\ndst = \"/data\"\n[volumes.cache]\ndst = \"/data/cache\"\nshared = true\nmode = \"ro\"\n",
    );
    let out = ok(&s.run(&["--profile", &p, "--explain"], &["true"]));
    let data = format!("volume   /data ← {}", store(&s).join("data").display());
    assert!(out.contains(&data), "{out}");
    assert!(out.contains("exclusive lock"), "{out}");
    assert!(
        out.contains("volume `cache`: ro,nosuid,nodev; shared lock"),
        "{out}"
    );
    // Shallowest first: /data before /data/cache.
    assert!(out.find("/data ←").unwrap() < out.find("/data/cache ←").unwrap());
    let json = ok(&s.run(&["--profile", &p, "--explain", "--json"], &["true"]));
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    let vols: Vec<&serde_json::Value> = plan["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["op"] == "volume")
        .collect();
    assert_eq!(vols.len(), 2);
    assert_eq!(vols[1]["shared"], true);
    // Nothing is created by --explain.
    assert!(!store(&s).exists());
}

#[test]
fn binds_may_not_expose_the_volume_store_or_the_registry() {
    let s = Scratch::new();
    let p = profile(&s, "p", DATA);
    ok(&s.run(&["--profile", &p], &["true"]));
    for kind in ["bind", "ro-bind"] {
        let bad = profile(
            &s,
            &format!("store-{kind}"),
            &format!(
                "[[mount]]\ntype = \"{kind}\"\nsrc = \"${{HOME}}/.local/share/hutch/volumes/data\"\ndst = \"/x\"\n"
            ),
        );
        let out = s.run(&["--profile", &bad], &["true"]);
        fails_with(&out, 125, "would expose hutch's volume store");
    }
    let bad = profile(
        &s,
        "registry",
        "[[mount]]\ntype = \"ro-bind\"\nsrc = \"${XDG_RUNTIME_DIR}/hutch/sandboxes\"\ndst = \"/x\"\n",
    );
    let out = s.run(&["--profile", &bad], &["true"]);
    fails_with(
        &out,
        125,
        "would expose hutch's registry of running sandboxes",
    );
    // A bind of a directory above them is fine, even writable: inside, the
    // registry and the store are covered by empty, inaccessible mounts.
    for kind in ["ro-bind", "bind"] {
        let above = profile(
            &s,
            &format!("above-{kind}"),
            &format!(
                "[[mount]]\ntype = \"{kind}\"\nsrc = \"${{XDG_RUNTIME_DIR}}\"\ndst = \"/run/user\"\n[[mount]]\ntype = \"{kind}\"\nsrc = \"${{HOME}}/.local/share\"\ndst = \"/share\"\n"
            ),
        );
        let out = ok(&s.run(
            &["--profile", &above],
            &[
                "sh",
                "-c",
                "ls /run/user/hutch 2>&1; ls /share/hutch/volumes 2>&1; (echo x > /run/user/hutch/planted) 2>&1; true",
            ],
        ));
        assert_eq!(
            out.matches("Permission denied").count(),
            3,
            "registry and store must be hidden ({kind}):\n{out}"
        );
        assert!(
            !s.runtime().join("hutch/planted").exists(),
            "nothing planted in the registry"
        );
    }
}

#[test]
fn a_bind_of_the_directory_holding_the_registry_hides_it() {
    let s = Scratch::new();
    // Where hutch keeps its registry when there is no XDG_RUNTIME_DIR: /tmp,
    // a place people start commands from. Here: the runtime directory itself.
    // `cli` refuses to bind it (it holds the sockets of the session)...
    let refused = s
        .hutch(&["run", "--profile", "cli", "--", "true"])
        .current_dir(s.runtime())
        .output()
        .unwrap();
    fails_with(&refused, 125, "binds the working directory read-write");
    // ...and a profile that binds it anyway gets the registry hidden.
    let bind_cwd = s.write(
        "bind-cwd.toml",
        "version = 1\nextends = [\"base/system\"]\ncwd = \"${CWD}\"\n[[mount]]\ntype = \"bind\"\nsrc = \"${CWD}\"\ndst = \"${CWD}\"\n",
    );
    let out = s
        .hutch(&[
            "run",
            "--profile",
            bind_cwd.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "pwd; ls hutch 2>&1; true",
        ])
        .current_dir(s.runtime())
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(
        text.starts_with(&format!("{}\n", s.runtime().display())),
        "{text}"
    );
    assert!(
        text.contains("Permission denied"),
        "the registry is hidden: {text}"
    );
}

#[test]
fn a_root_directory_above_the_store_does_not_show_it() {
    let s = Scratch::new();
    let Ok(busybox) = std::fs::read("/bin/busybox") else {
        skip("/bin/busybox not found: install busybox-static");
        return;
    };
    // The home directory as the root: busybox in it, a volume in its store,
    // and a file beside the store for the negative control.
    let bin = s.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("busybox"), busybox).unwrap();
    std::fs::set_permissions(bin.join("busybox"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(store(&s).join("data")).unwrap();
    std::fs::write(store(&s).join("data/secret"), "volume data\n").unwrap();
    let beside = s.home().join(".local/share/other");
    std::fs::create_dir_all(&beside).unwrap();
    std::fs::write(beside.join("note"), "readable\n").unwrap();
    s.chown_all();
    let p = s.write("home-root.toml", "version = 1\nroot = \"${HOME}\"\n");
    let out = ok(&s.run(
        &["--profile", p.to_str().unwrap()],
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "/bin/busybox cat /.local/share/other/note; /bin/busybox cat /.local/share/hutch/volumes/data/secret 2>&1; true",
        ],
    ));
    // The probe reads what the root shows (the negative control) ...
    assert!(out.starts_with("readable\n"), "{out}");
    // ... but not the volume store inside it.
    assert!(!out.contains("volume data"), "the store shows: {out}");
    assert!(out.contains("Permission denied"), "{out}");
}

/// A shell loop that nests `n` directories below the current one.
fn nest_script(n: usize) -> String {
    format!("i=0; while [ $i -lt {n} ]; do mkdir d && cd d || exit 1; i=$((i+1)); done")
}

/// As deep as the sandbox went: deeper than the 512 levels the
/// removal used to stop at, and than the 128 descriptors the launcher
/// gets here, had it kept one a level.
const DEEP: usize = 600;

#[test]
fn a_deeply_nested_tmp_volume_goes_when_its_sandbox_exits() {
    use std::os::unix::process::CommandExt;
    let s = Scratch::new();
    let p = profile(
        &s,
        "p",
        "[volumes.scratch]\ndst = \"/scratch\"\ntmp = true\n",
    );
    let script = format!("cd /scratch && {}", nest_script(DEEP));
    let mut cmd = s.hutch(&[
        "run",
        "--name",
        "deep",
        "--profile",
        &p,
        "--",
        "sh",
        "-c",
        &script,
    ]);
    // SAFETY: setrlimit is a system call, safe between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 128, 128)
                .map_err(std::io::Error::from)
        });
    }
    let out = cmd.output().unwrap();
    ok(&out);
    assert_eq!(stderr(&out), "", "no warning");
    assert!(
        !store(&s).join(".tmp/deep").exists(),
        "the tmp volume was left behind"
    );
}

#[test]
fn volume_list_reaps_a_deep_leftover_and_only_that() {
    let s = Scratch::new();
    let p = profile(
        &s,
        "p",
        "[volumes.scratch]\ndst = \"/scratch\"\ntmp = true\n",
    );
    let script = format!(
        "(cd /scratch && {}) && touch /scratch/made && exec sleep 100",
        nest_script(DEEP)
    );
    let (mut child, _guard) = spawn_named(&s, "killed", &p, &["sh", "-c", &script]);
    wait_running(&s, "killed");
    wait_for_file(&store(&s).join(".tmp/killed/scratch/made"));
    // While the sandbox runs, its tmp volume is in use, and stays: the
    // probe below finds it, as it would a leftover if reaping failed.
    let list = ok(&s.hutch(&["volume", "list", "--json"]).output().unwrap());
    let list: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    let t = list.iter().find(|v| v["name"] == "killed/scratch").unwrap();
    assert_eq!(t["kind"], "tmp");
    assert_eq!(t["in_use_by"][0], "killed");
    assert!(store(&s).join(".tmp/killed/scratch/d/d").exists());

    child.kill().unwrap();
    child.wait().unwrap();
    assert!(store(&s).join(".tmp/killed").exists());
    let out = s.hutch(&["volume", "list", "--json"]).output().unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(stderr(&out), "", "no warning");
    assert!(
        !list.iter().any(|v| v["name"] == "killed/scratch"),
        "{list:?}"
    );
    assert!(!store(&s).join(".tmp/killed").exists());
}

#[test]
fn volume_rm_force_removes_a_deeply_nested_volume() {
    let s = Scratch::new();
    let p = profile(&s, "p", DATA);
    let script = format!("cd /data && {}", nest_script(DEEP));
    ok(&s.run(&["--profile", &p], &["sh", "-c", &script]));
    assert!(store(&s).join("data/d/d/d").exists());
    ok(&s
        .hutch(&["volume", "rm", "--force", "data"])
        .output()
        .unwrap());
    assert!(!store(&s).join("data").exists());
}
