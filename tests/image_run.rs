//! `hutch run --image` and `root = "DIR"`, end to end: OCI images are
//! built here from Debian's static busybox (`busybox-static`), imported
//! with `hutch image import` and run by an unprivileged user (uid 65534
//! when the tests run as root), like the classic `docker run -it busybox
//! sh` demo, without a daemon or root.

mod common;
mod common_oci;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use common_oci::{Comp, ImageOpts, Layer, Layout, Tar, sha256_hex};
use serde_json::{Value, json};

const BUSYBOX: &str = "/bin/busybox";

/// busybox's applet names, or `None` (with a SKIP notice) when Debian's
/// busybox-static is not installed: these tests need real programs.
fn applets() -> Option<Vec<String>> {
    let out = match std::process::Command::new(BUSYBOX).arg("--list").output() {
        Ok(o) if o.status.success() => o,
        _ => {
            skip("/bin/busybox not found: install busybox-static");
            return None;
        }
    };
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|n| !n.is_empty() && *n != "busybox" && !n.contains('/'))
        .map(str::to_string)
        .collect();
    Some(names)
}

/// A root filesystem layer: busybox with every applet linked in /bin, the
/// mount points the `container` profile uses, and account files.
fn busybox_layer(applets: &[String]) -> Vec<u8> {
    busybox_layer_with(applets, |_| {})
}

fn busybox_layer_with(applets: &[String], extra: impl FnOnce(&mut Tar)) -> Vec<u8> {
    let bb = fs::read(BUSYBOX).unwrap();
    let mut t = Tar::new();
    t.dir("bin", 0o755).file("bin/busybox", 0o755, &bb);
    for a in applets {
        t.symlink(&format!("bin/{a}"), "busybox");
    }
    t.dir("etc", 0o755)
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:5678:app:/home/app:/bin/sh\n",
        )
        .file("etc/group", 0o644, b"root:x:0:\napp:x:5678:\nstaff:x:50:\n")
        .file("etc/motd", 0o644, b"from the image\n")
        .dir("root", 0o700)
        .dir("home/app", 0o755)
        .dir("proc", 0o555)
        .dir("dev", 0o755)
        .dir("tmp", 0o1777);
    extra(&mut t);
    t.finish()
}

/// The second layer of the whiteout image: deletes /etc/motd and replaces
/// /data (opaque) and adds /data/new.
fn whiteout_layer() -> Vec<u8> {
    let mut t = Tar::new();
    t.file("etc/.wh.motd", 0o644, b"")
        .dir("data", 0o755)
        .file("data/.wh..wh..opq", 0o644, b"")
        .file("data/new", 0o644, b"new\n");
    t.finish()
}

struct Images {
    s: Scratch,
    applets: Vec<String>,
}

impl Images {
    /// A scratch dir with `busybox` (one layer) imported, or `None` to skip.
    fn new() -> Option<Images> {
        let applets = applets()?;
        let images = Images {
            s: Scratch::new(),
            applets,
        };
        images.import(
            "busybox",
            &[busybox_layer(&images.applets)],
            json!({"Cmd": ["sh"], "Env": ["PATH=/bin"]}),
        );
        Some(images)
    }

    /// Writes an OCI layout of `layers` with config `run` and imports it
    /// with `hutch image import DIR --tag NAME`.
    fn import(&self, name: &str, layers: &[Vec<u8>], run: Value) {
        let dir = self
            .s
            .path()
            .join(format!("layout-{}", name.replace(':', "-")));
        let mut layout = Layout::new(&dir);
        let layers: Vec<Layer> = layers
            .iter()
            .map(|l| Layer::new(l.clone(), Comp::Gzip))
            .collect();
        layout.add(
            &layers,
            &ImageOpts {
                run,
                ..ImageOpts::default()
            },
        );
        self.s.chown_all();
        let out = self
            .s
            .hutch(&["image", "import", dir.to_str().unwrap(), "--tag", name])
            .output()
            .unwrap();
        let text = ok(&out);
        assert!(text.starts_with(&format!("imported {name} (")), "{text}");
    }

    /// A profile file in the scratch dir; returns its path.
    fn profile(&self, name: &str, text: &str) -> String {
        self.s
            .write(&format!("{name}.toml"), text)
            .display()
            .to_string()
    }

    fn run(&self, pre: &[&str], command: &[&str]) -> Output {
        self.s.run(pre, command)
    }

    /// `sh -c SCRIPT` in image `busybox` (and an extra profile if given).
    fn sh(&self, profile: Option<&str>, script: &str) -> Output {
        let mut pre = vec!["--image", "busybox"];
        if let Some(p) = profile {
            pre.extend(["--profile", p]);
        }
        self.run(&pre, &["/bin/sh", "-c", script])
    }

    fn inspect(&self, name: &str) -> Value {
        let out = self.s.hutch(&["image", "inspect", name]).output().unwrap();
        serde_json::from_str(&ok(&out)).unwrap()
    }

    fn layer_dirs(&self, name: &str) -> Vec<PathBuf> {
        self.inspect(name)["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| PathBuf::from(l.as_str().unwrap()))
            .collect()
    }
}

/// (pid, command) rows of busybox `ps`.
fn ps_rows(out: &str) -> Vec<(u32, String)> {
    out.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let pid = it.next()?.parse().ok()?;
            let _user = it.next()?;
            Some((pid, it.collect::<Vec<_>>().join(" ")))
        })
        .collect()
}

#[test]
fn ps_shows_the_shell_as_pid_2_under_hutch_init() {
    let Some(im) = Images::new() else { return };
    // (`ps` is not last, or the shell would exec it and be it.)
    let out = ok(&im.sh(None, "echo $$; ps; true"));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("2"), "{out}");
    let rows = ps_rows(&out);
    assert_eq!(rows[0], (1, "hutch-init".to_string()), "{out}");
    assert_eq!(rows[1].0, 2, "{out}");
    assert!(rows[1].1.starts_with("/bin/sh -c"), "{out}");
    // busybox's ps runs in a fork of the shell (`{ps}`).
    assert!(rows[2].1.starts_with("{ps}"), "{out}");
    assert_eq!(rows.len(), 3, "only init, the shell and ps: {out}");
}

#[test]
fn with_init_false_the_shell_is_pid_1() {
    let Some(im) = Images::new() else { return };
    let p = im.profile(
        "noinit",
        "version = 1\nextends = [\"container\"]\ninit = false\n",
    );
    let out = ok(&im.sh(Some(&p), "echo $$; ps; true"));
    assert_eq!(out.lines().next(), Some("1"), "{out}");
    let rows = ps_rows(&out);
    assert_eq!(rows[0].0, 1, "{out}");
    assert!(rows[0].1.starts_with("/bin/sh -c"), "{out}");
    assert!(rows[1].1.starts_with("{ps}"), "{out}");
    assert_eq!(rows.len(), 2, "only the shell and ps: {out}");
}

#[test]
fn nothing_of_the_host_is_visible() {
    let Some(im) = Images::new() else { return };
    // The probes work on the host.
    assert!(Path::new("/usr/bin").is_dir());
    let scratch = im.s.path().display().to_string();
    let out = ok(&im.sh(
        None,
        &format!(
            "ls -A /; echo ---; for p in /usr /usr/bin/cargo /etc/os-release /home/app/.cargo {scratch}; do \
             test -e $p && echo \"visible: $p\"; done; \
             grep -c -e hutch-test -e /home/ -e .local/share /proc/self/mountinfo; cat /proc/1/cmdline | tr '\\0' ' '"
        ),
    ));
    let (ls, rest) = out.split_once("---\n").unwrap();
    let mut top: Vec<&str> = ls.lines().collect();
    top.sort();
    assert_eq!(
        top,
        ["bin", "dev", "etc", "home", "proc", "root", "tmp"],
        "the image's files and the profile's mounts only"
    );
    let mut rest = rest.lines();
    assert_eq!(
        rest.next(),
        Some("0"),
        "no host path in the mount table: {out}"
    );
    assert_eq!(rest.next().map(str::trim), Some("hutch-init"), "{out}");
    assert!(!out.contains("visible:"), "{out}");
}

#[test]
fn a_deleted_file_of_a_lower_layer_stays_deleted() {
    let Some(im) = Images::new() else { return };
    // The base layer has a /data with two files, which the opaque
    // directory of the upper layer must hide.
    let base = busybox_layer_with(&im.applets, |t| {
        t.dir("data", 0o755)
            .file("data/old1", 0o644, b"1")
            .file("data/old2", 0o644, b"2");
    });
    im.import(
        "wh",
        &[base, whiteout_layer()],
        json!({"Cmd": ["sh"], "Env": ["PATH=/bin"]}),
    );
    let layers = im.layer_dirs("wh");
    assert_eq!(layers.len(), 2);
    // The probe: the file is in the lower layer.
    assert_eq!(
        fs::read_to_string(layers[0].join("etc/motd")).unwrap(),
        "from the image\n"
    );
    let out = ok(&im.run(
        &["--image", "wh"],
        &[
            "/bin/sh",
            "-c",
            "test -e /etc/motd && echo motd-present; ls -A /data; ls /etc",
        ],
    ));
    assert!(!out.contains("motd"), "whiteout ignored: {out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "new", "opaque /data shows only the upper layer");
    assert!(lines.contains(&"passwd"), "{out}");
}

/// Everything about a layer directory that a write could change.
fn checksum(dir: &Path) -> String {
    fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = fs::read_dir(p).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let m = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let ft = m.file_type();
            let content = if ft.is_file() {
                sha256_hex(&fs::read(&path).unwrap())
            } else if ft.is_symlink() {
                fs::read_link(&path).unwrap().display().to_string()
            } else if ft.is_char_device() {
                format!("chr {}", m.rdev())
            } else {
                String::new()
            };
            out.insert(
                rel,
                format!(
                    "{:o} {} {} {} {} {content}",
                    m.mode(),
                    m.uid(),
                    m.size(),
                    m.mtime(),
                    m.ctime()
                ),
            );
            if ft.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut all = BTreeMap::new();
    walk(dir, dir, &mut all);
    let m = fs::symlink_metadata(dir).unwrap();
    all.insert(".".into(), format!("{:o} {}", m.mode(), m.mtime()));
    sha256_hex(format!("{all:?}").as_bytes())
}

#[test]
fn writes_go_to_each_sandboxs_own_upper_layer() {
    let Some(im) = Images::new() else { return };
    let layer = im.layer_dirs("busybox")[0].clone();
    let sync = im.s.path().join("sync");
    fs::create_dir(&sync).unwrap();
    im.s.chown_all();
    let p = im.profile(
        "sync",
        "version = 1\nextends = [\"container\"]\n[[mount]]\ntype = \"bind\"\nsrc = \"${CWD}/sync\"\ndst = \"/sync\"\n",
    );
    // (After the test's own chown of the scratch dir, which changes ctimes.)
    let before = checksum(&layer);
    // A writes, then waits while B looks; B looks, writes, and lets A go on.
    let wait = |f: &str| {
        format!(
            "n=0; while [ ! -e /sync/{f} ]; do n=$((n+1)); [ $n -gt 300 ] && exit 9; sleep 0.05; done"
        )
    };
    let a_script = format!(
        "echo a > /written-by-a; echo changed > /etc/motd; rm /bin/ls; mkdir /home/app/a-dir; touch /sync/a-ready; {}; \
         test -e /written-by-b && echo a-sees-b; cat /etc/motd; test -e /bin/ls || echo ls-gone",
        wait("b-done")
    );
    let b_script = format!(
        "{}; test -e /written-by-a && echo b-sees-a; test -d /home/app/a-dir && echo b-sees-dir; cat /etc/motd; ls /bin/ls; echo b > /written-by-b; touch /sync/b-done",
        wait("a-ready")
    );
    let a =
        im.s.hutch(&[
            "run",
            "--image",
            "busybox",
            "--profile",
            &p,
            "--",
            "/bin/sh",
            "-c",
            &a_script,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(a.id());
    let b = ok(&im.run(
        &["--image", "busybox", "--profile", &p],
        &["/bin/sh", "-c", &b_script],
    ));
    let a = ok(&a.wait_with_output().unwrap());
    assert_eq!(
        a.lines().collect::<Vec<_>>(),
        ["changed", "ls-gone"],
        "A: {a}"
    );
    assert_eq!(
        b.lines().collect::<Vec<_>>(),
        ["from the image", "/bin/ls"],
        "B saw none of A's changes: {b}"
    );
    // A third, later sandbox starts from the image again.
    let c = ok(&im.sh(
        None,
        "cat /etc/motd; ls /written-by-a /written-by-b 2>&1 | wc -l; ls /bin/ls",
    ));
    assert_eq!(c, "from the image\n2\n/bin/ls\n");
    assert_eq!(checksum(&layer), before, "the image's layer was modified");
}

#[test]
fn the_image_config_gives_the_defaults_and_the_profile_overrides_them() {
    let Some(im) = Images::new() else { return };
    im.import(
        "cfg",
        &[busybox_layer(&im.applets)],
        json!({
            "Entrypoint": ["/bin/echo", "entry"],
            "Cmd": ["from-cmd"],
            "Env": ["PATH=/bin", "GREETING=hello from the image", "SHARED=image"],
            "WorkingDir": "/srv/work",
            "User": "app",
        }),
    );
    // Entrypoint + Cmd; the command line replaces Cmd.
    assert_eq!(ok(&im.run(&["--image", "cfg"], &[])), "entry from-cmd\n");
    assert_eq!(ok(&im.run(&["--image", "cfg"], &["x", "y"])), "entry x y\n");
    // A profile `command` replaces both; Env, WorkingDir (created) and User apply.
    let report = "version = 1\nextends = [\"container\"]\ncommand = [\"/bin/sh\", \"-c\", \"echo $GREETING; echo $SHARED; pwd; id -u; id -g; echo $HOME; ls -ld /srv/work | cut -d' ' -f1\"]\n";
    let p = im.profile("report", report);
    let out = ok(&im.run(&["--image", "cfg", "--profile", &p], &[]));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "hello from the image",
            "image",
            "/srv/work",
            "1234",
            "5678",
            "/home/app",
            "drwxr-xr-x"
        ],
        "{out}"
    );
    // Profile values win over the image's.
    let over = im.profile(
        "override",
        &format!(
            "{report}cwd = \"/tmp\"\nidentity = \"42:43\"\n[env]\nset = {{ SHARED = \"profile\", HOME = \"/tmp\" }}\n"
        ),
    );
    let out = ok(&im.run(&["--image", "cfg", "--profile", &over], &[]));
    assert_eq!(
        out.lines().take(6).collect::<Vec<_>>(),
        [
            "hello from the image",
            "profile",
            "/tmp",
            "42",
            "43",
            "/tmp"
        ],
        "{out}"
    );
    // A user and group named through the image's /etc/passwd and /etc/group.
    im.import(
        "staff",
        &[busybox_layer(&im.applets)],
        json!({"Cmd": ["/bin/sh", "-c", "id -u; id -g"], "User": "app:staff"}),
    );
    assert_eq!(ok(&im.run(&["--image", "staff"], &[])), "1234\n50\n");
    // An image naming a user it does not have cannot run.
    im.import(
        "nouser",
        &[busybox_layer(&im.applets)],
        json!({"Cmd": ["/bin/true"], "User": "ghost"}),
    );
    let out = im.run(&["--image", "nouser"], &[]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(err.contains("\"ghost\""), "{err}");
    assert!(err.contains("identity"), "says what to do: {err}");
}

#[test]
fn image_rm_is_refused_while_a_sandbox_runs() {
    let Some(im) = Images::new() else { return };
    let mut sandbox = im.s.start(
        &["--image", "busybox"],
        &["/bin/sh", "-c", "echo ready; read line; echo done"],
    );
    let out = im.s.hutch(&["image", "rm", "busybox"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(err.contains("in use by a running sandbox"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    sandbox.release();
    assert_eq!(sandbox.lines.next().unwrap().unwrap(), "done");
    assert!(sandbox.child.wait().unwrap().success());
    let out = ok(&im.s.hutch(&["image", "rm", "busybox"]).output().unwrap());
    assert_eq!(out, "removed busybox\n");
    let out = im.run(&["--image", "busybox"], &["true"]);
    fails_with(&out, 125, "image busybox not found");
}

#[test]
fn image_list_inspect_and_errors() {
    let Some(im) = Images::new() else { return };
    let list = ok(&im.s.hutch(&["image", "list"]).output().unwrap());
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{list}");
    assert!(lines[1].starts_with("busybox "), "{list}");
    let json: Value = serde_json::from_str(&ok(&im
        .s
        .hutch(&["image", "list", "--json"])
        .output()
        .unwrap()))
    .unwrap();
    assert_eq!(json[0]["name"], "busybox");
    let info = im.inspect("busybox");
    assert_eq!(info["config"]["cmd"], json!(["sh"]));
    let out = im.s.hutch(&["image", "inspect", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        stderr(&out),
        "hutch: image nope not found; run `hutch image list` to see imported images\n"
    );
    // A profile naming an image that is not imported points at the line.
    let p = im.profile(
        "missing",
        "version = 1\nextends = [\"container\"]\nimage = \"nope\"\n",
    );
    let out = im.run(&["--profile", &p], &["true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(err.contains("missing.toml:3:9"), "{err}");
    assert!(err.contains("hutch image import"), "{err}");
    // ... and one that is imported runs, with its Cmd.
    let p = im.profile(
        "named",
        "version = 1\nextends = [\"container\"]\nimage = \"busybox\"\n",
    );
    assert_eq!(
        ok(&im.run(&["--profile", &p], &["sh", "-c", "echo from-profile-image"])),
        "from-profile-image\n"
    );
}

/// A host directory holding a busybox root filesystem.
fn rootfs_dir(im: &Images) -> PathBuf {
    let dir = im.s.path().join("rootfs");
    for d in ["bin", "etc", "proc", "dev", "tmp"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    fs::copy(BUSYBOX, dir.join("bin/busybox")).unwrap();
    for a in &im.applets {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    fs::write(dir.join("etc/motd"), "from the directory\n").unwrap();
    im.s.chown_all();
    dir
}

#[test]
fn a_directory_root_is_read_only_or_gets_a_tmpfs_overlay() {
    let Some(im) = Images::new() else { return };
    let dir = rootfs_dir(&im);
    let ro = im.profile(
        "dir-ro",
        "version = 1\nextends = [\"container\"]\nroot = \"${CWD}/rootfs\"\n[env]\nset = { PATH = \"/bin\" }\n",
    );
    let rw = im.profile(
        "dir-rw",
        "version = 1\nextends = [\"container\"]\nroot = \"${CWD}/rootfs\"\nwritable = \"tmpfs\"\n[env]\nset = { PATH = \"/bin\" }\n",
    );
    // (After the test's own chown of the scratch dir, which changes ctimes.)
    let before = checksum(&dir);
    let out = ok(&im.run(
        &["--profile", &ro],
        &[
            "/bin/sh",
            "-c",
            "cat /etc/motd; echo $$; touch /new 2>/dev/null || echo read-only; touch /tmp/ok && echo tmp-writable",
        ],
    ));
    assert_eq!(out, "from the directory\n2\nread-only\ntmp-writable\n");
    let script = "echo changed > /etc/motd; touch /new; rm /bin/ls; cat /etc/motd; ls /new; test -e /bin/ls || echo ls-gone";
    let out = ok(&im.run(&["--profile", &rw], &["/bin/sh", "-c", script]));
    assert_eq!(out, "changed\n/new\nls-gone\n");
    // The changes vanished with the sandbox; the directory is untouched.
    let out = ok(&im.run(
        &["--profile", &rw],
        &["/bin/sh", "-c", "cat /etc/motd; ls /bin/ls"],
    ));
    assert_eq!(out, "from the directory\n/bin/ls\n");
    assert_eq!(checksum(&dir), before, "the root directory was modified");
    assert!(!dir.join("new").exists());
}

#[test]
fn a_writable_directory_keeps_the_changes_and_is_used_by_one_sandbox_at_a_time() {
    let Some(im) = Images::new() else { return };
    let layer = im.layer_dirs("busybox")[0].clone();
    let p = im.profile(
        "keep",
        "version = 1\nextends = [\"container\"]\nwritable = \"${CWD}/changes\"\n",
    );
    // (After the test's own chown of the scratch dir, which changes ctimes.)
    let before = checksum(&layer);
    let out = ok(&im.run(
        &["--image", "busybox", "--profile", &p],
        &[
            "/bin/sh",
            "-c",
            "echo kept > /root/note; rm /etc/motd; echo ok",
        ],
    ));
    assert_eq!(out, "ok\n");
    let out = ok(&im.run(
        &["--image", "busybox", "--profile", &p],
        &[
            "/bin/sh",
            "-c",
            "cat /root/note; test -e /etc/motd || echo motd-deleted",
        ],
    ));
    assert_eq!(out, "kept\nmotd-deleted\n");
    let changes = im.s.path().join("changes");
    assert_eq!(
        fs::read_to_string(changes.join("upper/root/note")).unwrap(),
        "kept\n"
    );
    let wh = fs::symlink_metadata(changes.join("upper/etc/motd")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "a whiteout"
    );
    assert_eq!(checksum(&layer), before, "the image's layer was modified");
    // Without `writable`, the same image shows none of it.
    assert_eq!(ok(&im.sh(None, "cat /etc/motd")), "from the image\n");
    // overlayfs must not use one upper layer twice at a time.
    let mut first = im.s.start(
        &["--image", "busybox", "--profile", &p],
        &["/bin/sh", "-c", "echo ready; read line"],
    );
    let out = im.run(&["--image", "busybox", "--profile", &p], &["true"]);
    fails_with(&out, 125, "in use by another sandbox");
    first.release();
    assert!(first.child.wait().unwrap().success());
}

#[test]
fn a_volume_can_keep_the_changes_of_an_image() {
    let Some(im) = Images::new() else { return };
    let p = im.profile(
        "vol",
        "version = 1\nextends = [\"container\"]\nwritable = \"volume:busybox-state\"\n",
    );
    let explain = ok(&im
        .s
        .hutch(&[
            "run",
            "--image",
            "busybox",
            "--profile",
            &p,
            "--explain",
            "--",
            "true",
        ])
        .output()
        .unwrap());
    assert!(
        explain.contains("upper layer in volume busybox-state"),
        "{explain}"
    );
    let out = ok(&im.run(
        &["--image", "busybox", "--profile", &p],
        &["/bin/sh", "-c", "echo kept > /root/note; echo ok"],
    ));
    assert_eq!(out, "ok\n");
    let out = ok(&im.run(
        &["--image", "busybox", "--profile", &p],
        &["cat", "/root/note"],
    ));
    assert_eq!(out, "kept\n", "the change survives in the volume");
    // It is a volume like any other: listed, with the change on disk.
    let path = ok(&im
        .s
        .hutch(&["volume", "path", "busybox-state"])
        .output()
        .unwrap());
    let note = Path::new(path.trim()).join("upper/root/note");
    assert_eq!(fs::read_to_string(note).unwrap(), "kept\n");
    assert!(ok(&im.s.hutch(&["volume", "list"]).output().unwrap()).contains("busybox-state"));
    // One sandbox at a time, and `volume rm` refuses while it runs.
    let mut first = im.s.start(
        &["--image", "busybox", "--profile", &p],
        &["/bin/sh", "-c", "echo ready; read line"],
    );
    let out = im.run(&["--image", "busybox", "--profile", &p], &["true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("busybox-state"), "{}", stderr(&out));
    let rm =
        im.s.hutch(&["volume", "rm", "--force", "busybox-state"])
            .output()
            .unwrap();
    assert_ne!(rm.status.code(), Some(0), "rm must refuse while in use");
    first.release();
    assert!(first.child.wait().unwrap().success());
    // A symlink planted for `upper` is refused, never followed.
    let upper = Path::new(path.trim()).join("upper");
    fs::remove_dir_all(&upper).unwrap();
    std::os::unix::fs::symlink("/tmp", &upper).unwrap();
    let out = im.run(&["--image", "busybox", "--profile", &p], &["true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("symlink"), "{}", stderr(&out));
}

#[test]
fn more_layers_than_one_lowerdir_value_holds_are_stacked() {
    let Some(im) = Images::new() else { return };
    // 100 layers: more than the 88 short names one `lowerdir=` value holds,
    // so each goes in its own `lowerdir+` (Linux 6.8+).
    let release = nix::sys::utsname::uname().unwrap();
    let release = release.release().to_string_lossy();
    let mut v = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|x| x.parse::<u32>().unwrap_or(0));
    let kernel = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    let mut layers = vec![busybox_layer(&im.applets)];
    for i in 1..100 {
        let mut t = Tar::new();
        t.dir("layers", 0o755)
            .file(&format!("layers/{i}"), 0o644, i.to_string().as_bytes())
            .file("top", 0o644, format!("layer {i}\n").as_bytes());
        layers.push(t.finish());
    }
    im.import(
        "tall",
        &layers,
        json!({"Cmd": ["sh"], "Env": ["PATH=/bin"]}),
    );
    let out = im.run(
        &["--image", "tall"],
        &[
            "/bin/sh",
            "-c",
            "ls /layers | wc -l; cat /top /layers/1 /layers/50",
        ],
    );
    if kernel < (6, 8) {
        assert_eq!(out.status.code(), Some(125));
        assert!(stderr(&out).contains("needs Linux 6.8"), "{}", stderr(&out));
        return;
    }
    assert_eq!(ok(&out), "99\nlayer 99\n150");
}

/// Runs `hutch run ARGS` on a new pseudo-terminal (its controlling
/// terminal), types `input`, and returns everything the terminal showed.
fn on_a_terminal(s: &Scratch, args: &[&str], input: &str) -> String {
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = pty.slave;
    let mut cmd = s.hutch(args);
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .env("TERM", "dumb");
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "pre_exec and the async-signal-safe calls of its closure form one guarantee"
    )]
    // SAFETY: setsid and ioctl are async-signal-safe; the closure touches
    // no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let _guard = KillOnDrop(child.id());
    // Only the sandbox may hold the terminal, or its end is never seen.
    drop(cmd);
    drop(slave);
    let mut master = fs::File::from(pty.master);
    master.write_all(input.as_bytes()).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no end of output; so far: {:?}",
            String::from_utf8_lossy(&seen)
        );
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
        if n <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO: every slave is closed
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let status = child.wait().unwrap();
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(status.success(), "{status:?}: {text:?}");
    text
}

#[test]
fn an_interactive_shell_on_a_terminal() {
    let Some(im) = Images::new() else { return };
    let text = on_a_terminal(
        &im.s,
        &["run", "--image", "busybox", "--", "sh"],
        "echo pid=$$; exit\n",
    );
    let lines: Vec<&str> = text.split("\r\n").map(str::trim).collect();
    assert!(lines.contains(&"pid=2"), "{text:?}");
    let p = im.profile(
        "noinit",
        "version = 1\nextends = [\"container\"]\ninit = false\n",
    );
    let text = on_a_terminal(
        &im.s,
        &["run", "--image", "busybox", "--profile", &p, "--", "sh"],
        "echo pid=$$; exit\n",
    );
    assert!(text.split("\r\n").any(|l| l.trim() == "pid=1"), "{text:?}");
}

#[test]
fn an_image_can_be_read_only() {
    let Some(im) = Images::new() else { return };
    let p = im.profile(
        "ro",
        "version = 1\nextends = [\"container\"]\nwritable = false\n",
    );
    let out = ok(&im.sh(
        Some(&p),
        "touch /new 2>/dev/null || echo root-read-only; rm /etc/motd 2>/dev/null || echo motd-kept; touch /tmp/x && echo tmp-writable",
    ));
    assert_eq!(out, "root-read-only\nmotd-kept\ntmp-writable\n");
}

#[test]
fn doctor_reports_what_image_runs_need() {
    let Some(im) = Images::new() else { return };
    // The overlay mount works here (every other test in this file runs one).
    ok(&im.sh(None, "true"));
    let out = ok(&im.s.hutch(&["doctor", "--json"]).output().unwrap());
    let checks: Value = serde_json::from_str(&out).unwrap();
    let overlay = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "overlayfs")
        .unwrap_or_else(|| panic!("no overlayfs check: {out}"));
    assert_ne!(overlay["status"], "fail", "{overlay}");
}

// ---- A persistent writable directory nobody else can redirect ---------------

/// A profile over image `busybox` keeping its changes in `dir`.
fn writable_profile(im: &Images, name: &str, dir: &Path) -> String {
    im.profile(
        name,
        &format!(
            "version = 1\nextends = [\"container\"]\nwritable = \"{}\"\n",
            dir.display()
        ),
    )
}

/// Same user, sandbox → host: a tool confined by `cli` in the project
/// replaces `.state/upper` with a symlink to a directory of the user's
/// (standing in for ~/.config). The next `--image` run must not make that
/// directory the container's writable root.
#[test]
fn a_writable_directory_swapped_for_a_symlink_is_refused() {
    let Some(im) = Images::new() else { return };
    let state = im.s.path().join(".state");
    let p = writable_profile(&im, "keep", &state);
    // Control: a plain directory works, and the container's writes land in
    // its `upper`.
    ok(&im.run(
        &["--image", "busybox", "--profile", &p],
        &["/bin/sh", "-c", "echo kept > /root/note"],
    ));
    assert_eq!(
        fs::read_to_string(state.join("upper/root/note")).unwrap(),
        "kept\n"
    );
    let config = im.s.path().join("dotconfig");
    fs::create_dir_all(config.join("autostart")).unwrap();
    fs::write(config.join("autostart/keep.desktop"), "mine\n").unwrap();
    im.s.chown_all();
    let before = checksum(&config);
    // The attack, from inside a `cli` sandbox (the project is writable).
    ok(&im
        .s
        .sh("rm -rf .state/upper && ln -s ../dotconfig .state/upper"));
    assert!(
        fs::symlink_metadata(state.join("upper"))
            .unwrap()
            .is_symlink()
    );
    let out = im.run(
        &["--image", "busybox", "--profile", &p],
        &[
            "/bin/sh",
            "-c",
            "echo evil > /autostart/evil.desktop; echo ran",
        ],
    );
    fails_with(
        &out,
        125,
        &format!("{}/upper is a symlink", state.display()),
    );
    fails_with(&out, 125, "writable = \"volume:NAME\"");
    assert!(!stdout(&out).contains("ran"));
    assert_eq!(
        checksum(&config),
        before,
        "the user's directory was written"
    );

    // DIR itself a symlink (to a directory of the user's): refused too,
    // nothing created through it.
    fs::remove_file(state.join("upper")).unwrap();
    fs::remove_dir_all(&state).unwrap();
    std::os::unix::fs::symlink(&config, &state).unwrap();
    let out = im.run(&["--image", "busybox", "--profile", &p], &["true"]);
    fails_with(&out, 125, &format!("{} is a symlink", state.display()));
    assert_eq!(
        checksum(&config),
        before,
        "the user's directory was written"
    );
}

/// Cross-user: another user pre-creates the victim's `writable` directory
/// in a shared sticky directory, with an upper layer of their own holding a
/// trojan `/bin/sh`, or with `upper` a symlink into a directory of the
/// victim's. The victim's launch is refused, naming the owner.
#[test]
fn a_writable_directory_another_user_planted_is_refused() {
    if !is_root() {
        skip("cross-user tests need root to act as a second user");
        return;
    }
    let Some(im) = Images::new() else { return };
    let shared_tmp = shared_dir();
    let shared = shared_tmp.path();
    // Profiles first: writing one gives the scratch dir to the victim.
    let p_mine = writable_profile(&im, "mine", &shared.join("mine"));
    let p_box = writable_profile(&im, "box", &shared.join("box"));
    let p_link = writable_profile(&im, "link", &shared.join("link"));
    let victims = im.s.path().join("victims");
    fs::create_dir(&victims).unwrap();
    fs::write(victims.join("data"), "victim's\n").unwrap();
    im.s.chown_all();
    // Control: the victim's own directory in the shared sticky directory
    // works (the sticky bit keeps others from renaming it away).
    let mine = shared.join("mine");
    assert_eq!(
        ok(&im.run(
            &["--image", "busybox", "--profile", &p_mine],
            &["/bin/sh", "-c", "echo safe"],
        )),
        "safe\n"
    );
    assert_eq!(fs::metadata(mine.join("upper")).unwrap().uid(), NOBODY);

    // The attacker's own upper layer: what the victim's container writes
    // lands there, for the attacker to read (demonstrated without the
    // check: /root/secret appeared in box/upper), and the files they
    // planted replace the image's (a trojan `/bin/sh` would run as the
    // victim; a planted /etc/motd stands for it here).
    as_attacker(
        shared,
        "mkdir -m 0777 box box/upper box/work && mkdir -m 0755 box/upper/etc \
         && echo trojan > box/upper/etc/motd && chmod 0644 box/upper/etc/motd",
    );
    let out = im.run(
        &["--image", "busybox", "--profile", &p_box],
        &["/bin/sh", "-c", "echo secret > /root/secret; cat /etc/motd"],
    );
    fails_with(&out, 125, "belongs to uid 65533");
    assert!(!stdout(&out).contains("trojan"), "{}", stdout(&out));
    assert!(
        !shared.join("box/upper/root").exists(),
        "the victim wrote there"
    );
    assert!(!shared.join("box/lock").exists(), "the victim wrote there");

    // `upper` a symlink into a directory of the victim's.
    let before = checksum(&victims);
    as_attacker(
        shared,
        &format!(
            "mkdir -m 0777 link link/work && ln -s {} link/upper",
            victims.display()
        ),
    );
    let out = im.run(
        &["--image", "busybox", "--profile", &p_link],
        &["/bin/sh", "-c", "echo evil > /evil; rm /data; echo ran"],
    );
    fails_with(&out, 125, "belongs to uid 65533");
    assert!(!stdout(&out).contains("ran"));
    assert_eq!(checksum(&victims), before, "the victim's directory changed");
}

/// A directory above the writable one that other users may write to
/// without the sticky bit: any of them could rename the victim's directory
/// away and put their own in its place. Refused; with the sticky bit, the
/// same place works.
#[test]
fn a_writable_directory_below_one_others_may_write_to_is_refused() {
    let Some(im) = Images::new() else { return };
    let open = im.s.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    im.s.chown_all();
    let p = writable_profile(&im, "open", &open.join("state"));
    let out = im.run(&["--image", "busybox", "--profile", &p], &["true"]);
    fails_with(&out, 125, &format!("{} has mode 0777", open.display()));
    assert!(!open.join("state").exists());
    // Control: with the sticky bit, nobody but its owner can rename it.
    fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
    ok(&im.run(&["--image", "busybox", "--profile", &p], &["true"]));
    assert!(open.join("state/upper").is_dir());
}

/// Issue 12 #8: a sandbox that binds the home writable (`cli` with `--bind
/// HOME`, from a project below it) shows the image store below it; every later `--image` sandbox stacks its
/// layers unchanged, so a payload that could edit one would run in all of
/// them. The store is hidden like the volume store and the registry.
#[test]
fn a_payload_started_above_the_image_store_cannot_change_a_layer() {
    let Some(im) = Images::new() else { return };
    let layer = im.layer_dirs("busybox")[0].clone();
    let store = im.s.home().join(".local/share/hutch");
    assert!(layer.starts_with(&store), "{}", layer.display());
    // A directory beside the store, with the layer's own mode: the control.
    let beside = store.join("beside");
    fs::create_dir(&beside).unwrap();
    let mode = fs::metadata(&layer).unwrap().mode() & 0o7777;
    fs::set_permissions(&beside, fs::Permissions::from_mode(mode)).unwrap();
    // The payload's working directory: a project below the home (cli
    // refuses the home itself). Made before the checksum: chown changes
    // ctime, which the checksum covers.
    let project = im.s.home().join("project");
    fs::create_dir_all(&project).unwrap();
    im.s.chown_all();
    let before = checksum(&layer);
    let probe = |dir: &Path| {
        format!(
            "(chmod u+w {d} && touch {d}/planted && echo wrote {d}) 2>&1; true",
            d = dir.display()
        )
    };
    let script = format!("{}; {}", probe(&beside), probe(&layer));
    let home = im.s.home().to_str().unwrap().to_owned();
    let out =
        im.s.hutch(&[
            "run",
            "--profile",
            "cli",
            "--bind",
            &home,
            "--",
            "sh",
            "-c",
            &script,
        ])
        .current_dir(&project)
        .output()
        .unwrap();
    let text = ok(&out);
    // The payload writes beside the store (the bind is writable there) ...
    assert!(
        text.contains(&format!("wrote {}", beside.display())),
        "{text}"
    );
    // ... but reaches no layer.
    assert!(
        !text.contains(&format!("wrote {}", layer.display())),
        "{text}"
    );
    assert!(text.contains("Permission denied"), "{text}");
    assert_eq!(checksum(&layer), before, "a layer changed");
    // Control: outside a sandbox the same user could change the layer.
    let host =
        im.s.as_user(Path::new("/bin/sh"))
            .args(["-c", &probe(&layer)])
            .output()
            .unwrap();
    assert!(
        stdout(&host).contains(&format!("wrote {}", layer.display())),
        "{}",
        stdout(&host)
    );
    fs::remove_file(layer.join("planted")).unwrap();
    // And --explain says so.
    let explained = ok(&im
        .s
        .hutch(&[
            "run",
            "--explain",
            "--profile",
            "cli",
            "--bind",
            &home,
            "--",
            "true",
        ])
        .current_dir(&project)
        .output()
        .unwrap());
    assert!(
        explained.contains("hutch: hides its image store"),
        "{explained}"
    );
    // A bind of the store itself is refused.
    let bad = im.profile(
        "bind-store",
        "version = 1\nextends = [\"cli\"]\n[[mount]]\ntype = \"ro-bind\"\nsrc = \"${HOME}/.local/share/hutch/images\"\ndst = \"/x\"\n",
    );
    fails_with(
        &im.s.run(&["--profile", &bad], &["true"]),
        125,
        "would expose hutch's image store",
    );
}
