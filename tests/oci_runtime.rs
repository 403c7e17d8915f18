//! Exported bundles under a real OCI runtime: for every shipped profile
//! (`cli`, `default`, `base/system`, `container` with an imported busybox
//! image, each with checks of its own, and every other one, the library's
//! programs among them), `hutch export oci` writes a bundle, crun runs it rootless as the unprivileged test user,
//! and the same probe list (tests/probes/oci-compare.sh with the static
//! escape probe) runs under `hutch run` and under crun. The two outputs
//! are compared line by line: each line must be equal, or its difference
//! must be one of [`KNOWN`], each of which the bundle itself lists as not
//! expressible in OCI (an `org.hutch.*` annotation) or which is the
//! runtime's own doing. The outcomes that matter (capabilities, seccomp
//! denials, read-only mounts, ...) are also checked outright on both
//! sides, and once without any sandbox, where they differ.
//!
//! **The cgroup view.** crun 1.8 (Debian 12) refuses this machine's hybrid
//! cgroup layout ("cgroups in hybrid mode not supported"), and runc 1.1
//! fails on an empty tmpfs there. On a host whose /sys/fs/cgroup is cgroup
//! v2 the runtimes run directly; elsewhere the test, as root, gives them a
//! private mount namespace in which the kernel's cgroup v2 hierarchy is
//! mounted on /sys/fs/cgroup, and drops to the test user inside it. Both
//! runtimes then see a pure cgroup v2 host, find no cgroup delegated to the
//! user and, rootless, go on without one (none of these profiles has
//! `[limits]`). That mount namespace gives them nothing else: they run
//! unprivileged and build their own user namespace. (The qemu guest of
//! tests/vm would do too, at ~10 s per boot and without this machine's
//! kernel for hutch to be compared on.)

mod common;
mod common_oci;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::*;
use common_oci::{Comp, ImageOpts, Layer, Layout, Tar};
use serde_json::{Value, json};

const PROBE_SCRIPT: &str = include_str!("probes/oci-compare.sh");

/// Differences between `hutch run` and the runtime that the test accepts:
/// (probe, what the difference is, the bundle's annotation that lists it,
/// or `None` for the runtime's own doing).
const KNOWN: &[(&str, &str, Option<&str>)] = &[
    (
        "pid",
        "hutch's init is PID 1 and the payload PID 2; under the runtime the payload is PID 1",
        Some("org.hutch.lost.init"),
    ),
    (
        "x32",
        "hutch fails x32 calls with EPERM, libseccomp kills the thread (SIGSYS)",
        Some("org.hutch.differs.seccomp.x32"),
    ),
    (
        "dev",
        "crun adds /dev/core, a symlink to /proc/kcore (which is masked)",
        None,
    ),
    (
        "interfaces",
        "`[network] mode = \"user\"`: pasta's interface beside the loopback under hutch; the bundle's network namespace has the loopback only",
        Some("org.hutch.lost.network"),
    ),
    (
        "mount /",
        "the bundle's root is a bind of rootfs/ (no nosuid/nodev: runtime-spec's root has only `readonly`)",
        Some("org.hutch.differs.root.flags"),
    ),
];

/// The escape probe, linked statically so that it runs in a busybox image.
fn probe_binary() -> Result<&'static [u8], String> {
    static BIN: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = dir.path().join("escape");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probes/escape.c");
        let status = Command::new("cc")
            .args(["-static", "-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .map_err(|e| format!("cannot run cc: {e} (install gcc and libc6-dev)"))?;
        if !status.success() {
            return Err(
                "cc -static failed to build tests/probes/escape.c (install libc6-dev)".into(),
            );
        }
        std::fs::read(&out).map_err(|e| e.to_string())
    })
    .as_deref()
    .map_err(Clone::clone)
}

/// How the runtimes are started (see the module comment).
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    Direct,
    PrivateCgroup2,
}

fn which(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The runtime and how to start it, or why the test cannot run here.
fn runtime(name: &str) -> Result<(PathBuf, View), String> {
    let bin = which(name).ok_or(format!("{name} is not installed (.ci/run installs it)"))?;
    let cgroup2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    let view = if cgroup2 {
        View::Direct
    } else if is_root() {
        View::PrivateCgroup2
    } else {
        return Err(format!(
            "/sys/fs/cgroup is not cgroup v2, which {name} needs rootless; as root the test would give it a private view"
        ));
    };
    Ok((bin, view))
}

/// `RUNTIME --root STATE run --bundle BUNDLE ID` as the test user.
fn runtime_run(s: &Scratch, (bin, view): &(PathBuf, View), bundle: &Path, id: &str) -> Command {
    let mut cmd = match view {
        View::Direct => s.as_user(bin),
        View::PrivateCgroup2 => {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                .arg("mount -t cgroup2 none /sys/fs/cgroup && exec \"$@\"")
                .args(["sh", "setpriv"])
                .args([format!("--reuid={NOBODY}"), format!("--regid={NOBODY}")])
                .args(["--clear-groups", "--"])
                .arg(bin);
            // The clean environment Scratch::as_user gives.
            c.current_dir(s.path())
                .env_clear()
                .env("HOME", s.home())
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .env("XDG_RUNTIME_DIR", s.runtime())
                .env("LANG", "C.UTF-8")
                .stdin(Stdio::null());
            c
        }
    };
    cmd.arg("--root")
        .arg(s.path().join(format!("state-{id}")))
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id);
    cmd
}

/// Runs `cmd` with the escape probe on its standard input.
fn with_probe(mut cmd: Command) -> Output {
    let probe = probe_binary().unwrap();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The payload may fail before reading it all: a broken pipe is its error to report.
    let _ = stdin.write_all(probe);
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// `NAME: RESULT` lines, by name.
fn parse(out: &Output, who: &str) -> BTreeMap<String, String> {
    assert!(
        out.status.success(),
        "{who} failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
    stdout(out)
        .lines()
        .filter_map(|l| {
            l.split_once(": ")
                .or_else(|| l.strip_suffix(':').map(|n| (n, "")))
        })
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// A profile's sandbox under hutch and under a runtime, probed alike.
struct Compared {
    hutch: BTreeMap<String, String>,
    runtime: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn compare(s: &Scratch, rt: &(PathBuf, View), pre: &[&str], tag: &str) -> Compared {
    compare_home(s, rt, pre, tag, None)
}

/// [`compare`], with `HOME` set to `home` for the export and the run.
fn compare_home(
    s: &Scratch,
    rt: &(PathBuf, View),
    pre: &[&str],
    tag: &str,
    home: Option<&Path>,
) -> Compared {
    compare_with(s, rt, pre, tag, home, &[])
}

/// [`compare_home`], with `args` as the probe script's arguments (`$1`...).
fn compare_with(
    s: &Scratch,
    rt: &(PathBuf, View),
    pre: &[&str],
    tag: &str,
    home: Option<&Path>,
    args: &[&str],
) -> Compared {
    let mut command = vec!["sh", "-c", PROBE_SCRIPT, "sh"];
    command.extend_from_slice(args);
    let bundle = s.path().join(format!("bundle-{tag}"));
    let mut export = vec!["export", "oci"];
    export.extend_from_slice(pre);
    let bundle_arg = bundle.display().to_string();
    export.extend(["-o", &bundle_arg, "--"]);
    export.extend(&command);
    // The volume store below the working directory, where `cli` and
    // `default` bind it (their working directory cannot hold the home).
    // (Not with an image: the image store is there too.)
    let data = s.path().join("data");
    let with_data = |mut c: std::process::Command| {
        if !pre.contains(&"--image") {
            c.env("XDG_DATA_HOME", &data);
        }
        if let Some(home) = home {
            c.env("HOME", home);
        }
        c
    };
    let out = with_data(s.hutch(&export)).output().unwrap();
    assert_eq!(ok(&out).trim(), bundle_arg);
    let config: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let annotations = serde_json::from_value(config["annotations"].clone()).unwrap();

    let mut run = vec!["run"];
    run.extend_from_slice(pre);
    run.push("--");
    run.extend(&command);
    let hutch = parse(&with_probe(with_data(s.hutch(&run))), "hutch run");
    let out = with_probe(runtime_run(s, rt, &bundle, tag));
    assert!(
        !stderr(&out).contains("unknown seccomp syscall"),
        "the runtime dropped a rule: {}",
        stderr(&out)
    );
    let runtime = parse(&out, "the runtime");
    Compared {
        hutch,
        runtime,
        annotations,
    }
}

impl Compared {
    /// Every probe answers alike, or differs in a known way the bundle lists.
    fn check_line_by_line(&self) {
        let names: std::collections::BTreeSet<&String> =
            self.hutch.keys().chain(self.runtime.keys()).collect();
        let mut unexplained = Vec::new();
        for name in names {
            let (h, r) = (self.hutch.get(name), self.runtime.get(name));
            if h == r {
                continue;
            }
            match KNOWN.iter().find(|(probe, ..)| probe == name) {
                Some((_, _, Some(key))) => assert!(
                    self.annotations.contains_key(*key),
                    "{name} differs ({h:?} vs {r:?}) but the bundle has no annotation {key}"
                ),
                Some((_, _, None)) => {}
                None => unexplained.push(format!("{name}: hutch {h:?}, runtime {r:?}")),
            }
        }
        assert!(
            unexplained.is_empty(),
            "differences not listed as inexpressible in OCI:\n{}",
            unexplained.join("\n")
        );
    }

    /// What both must enforce, whatever the other says.
    fn check_confinement(&self, uid: &str, read_only: &[&str]) {
        for (who, m) in [("hutch", &self.hutch), ("runtime", &self.runtime)] {
            let get = |k: &str| m.get(k).map(String::as_str).unwrap_or("(missing)");
            assert_eq!(get("hostname"), "hutch", "{who}");
            assert_eq!(get("ids"), uid, "{who}");
            for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
                assert_eq!(get(cap), "0000000000000000", "{who} {cap}");
            }
            assert_eq!(get("NoNewPrivs"), "1", "{who}");
            assert_eq!(get("Seccomp"), "2", "{who}");
            for denied in [
                "keyctl",
                "bpf",
                "perf",
                "userfaultfd",
                "open_by_handle_at",
                "mount",
                "userns",
                "tiocsti",
                "tioclinux",
                "tiocsti with high bits",
            ] {
                assert_eq!(get(denied), "errno EPERM", "{who} {denied}");
            }
            assert_eq!(get("clone3"), "errno ENOSYS", "{who}");
            assert!(
                ["errno EPERM", "killed by signal 31"].contains(&get("x32")),
                "{who} x32: {}",
                get("x32")
            );
            for dir in read_only {
                assert_eq!(get(&format!("write {dir}")), "errno EROFS", "{who} {dir}");
            }
            assert_eq!(
                get("write /proc/sys/kernel/hostname"),
                "errno EROFS",
                "{who}"
            );
            assert_eq!(get("write /tmp"), "ok", "{who}");
            for masked in ["kcore", "keys"] {
                assert!(
                    ["0", "absent"].contains(&get(masked)),
                    "{who} {masked}: {}",
                    get(masked)
                );
            }
            // A user-mode network (curl) adds an interface under hutch;
            // the bundle keeps the loopback only.
            let user_net =
                who == "hutch" && self.annotations.contains_key("org.hutch.lost.network");
            if user_net {
                assert!(
                    get("interfaces").starts_with("lo "),
                    "{who}: {}",
                    get("interfaces")
                );
            } else {
                assert_eq!(get("interfaces"), "lo", "{who}");
            }
            assert_eq!(get("loopback"), "ok", "{who}");
            assert_eq!(get("session leader"), "yes", "{who}");
        }
    }
}

fn setup(name: &str) -> Option<((PathBuf, View), Scratch)> {
    if let Err(e) = probe_binary() {
        skip(&e);
        return None;
    }
    match runtime(name) {
        Ok(rt) => Some((rt, Scratch::new())),
        Err(e) => {
            skip(&e);
            None
        }
    }
}

fn uid() -> String {
    format!("{0}:{0}", test_uid())
}

#[test]
fn cli_under_crun_answers_the_probes_as_under_hutch() {
    let Some((rt, s)) = setup("crun") else { return };
    // A volume's file below the bound working directory must stay hidden.
    s.write("data/hutch/volumes/secret/file", "x");
    let c = compare(&s, &rt, &["--profile", "cli"], "cli");
    for m in [&c.hutch, &c.runtime] {
        assert!(
            m["volume store"].contains("Permission denied"),
            "{}",
            m["volume store"]
        );
    }
    c.check_confinement(&uid(), &["/", "/usr", "/etc", "/dev"]);
    assert_eq!(c.runtime["cwd"], s.path().display().to_string());
    assert_eq!(c.runtime["pid"], "1");
    c.check_line_by_line();
}

/// A home outside /tmp, as a user's is, owned by the test user (the
/// scratch home lies in /tmp, the sandbox's own tmpfs, where a runtime
/// cannot make the directory a profile puts on the root for the home).
fn home_outside_tmp() -> tempfile::TempDir {
    let home = tempfile::Builder::new()
        .prefix("hutch-test-home-")
        .tempdir_in("/var/tmp")
        .unwrap();
    if is_root() {
        let st = Command::new("chown")
            .arg(uid())
            .arg(home.path())
            .status()
            .unwrap();
        assert!(st.success());
    }
    home
}

#[test]
fn default_under_crun_answers_the_probes_as_under_hutch() {
    let Some((rt, s)) = setup("crun") else { return };
    let home = home_outside_tmp();
    let c = compare_home(
        &s,
        &rt,
        &["--profile", "default"],
        "default",
        Some(home.path()),
    );
    let home = home.path().display().to_string();
    c.check_confinement(&uid(), &["/", "/usr", "/etc", "/dev", &home]);
    // The working directory is bound read-only; the home is an empty
    // directory on the read-only root.
    assert_eq!(c.runtime["cwd"], s.path().display().to_string());
    c.check_line_by_line();
}

#[test]
fn base_system_under_crun_answers_the_probes_as_under_hutch() {
    let Some((rt, s)) = setup("crun") else { return };
    // `--profile base/system` would name a file: the building block as is.
    let p = s.write("system.toml", "version = 1\nextends = [\"base/system\"]\n");
    let c = compare(&s, &rt, &["--profile", p.to_str().unwrap()], "base-system");
    c.check_confinement(&uid(), &["/", "/usr", "/etc", "/dev"]);
    assert_eq!(c.runtime["cwd"], "/");
    c.check_line_by_line();
}

/// The shipped profiles the tests above run with checks of their own.
const COVERED_ELSEWHERE: &[&str] = &["cli", "default", "container", "base/system"];

/// Every other shipped profile (the library's programs and the building
/// blocks they extend, each of those on top of `base/system` so that there
/// is a shell to probe with), exported and run under crun from a working
/// directory that holds a repository, with the home outside /tmp: the
/// probes answer as under `hutch run`, line by line, and both enforce the
/// same confinement, `.git/config` and `.git/hooks` read-only included.
/// Profiles for the desktop are left out: what they bind is made by hutch
/// at launch, for that launch only.
#[test]
fn every_other_shipped_profile_under_crun_answers_the_probes_as_under_hutch() {
    let Some((rt, s)) = setup("crun") else { return };
    let home = home_outside_tmp();
    s.write(".git/config", "[core]\n\tbare = false\n");
    s.write(".git/hooks/pre-commit", "#!/bin/sh\n");
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, text) in hutch::profile::load::BUILTIN {
        if COVERED_ELSEWHERE.contains(name) || is_desktop(&s, name, text) {
            continue;
        }
        // `--profile base/NAME` would name a file: the building block on
        // the read-only system.
        let arg = if name.contains('/') {
            let file = format!("{}.toml", name.replace('/', "-"));
            let extends = format!("version = 1\nextends = [\"base/system\", \"{name}\"]\n");
            s.write(&file, &extends).display().to_string()
        } else {
            name.to_string()
        };
        let tag = name.replace('/', "-");
        ran += 1;
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let c = compare_home(&s, &rt, &["--profile", &arg], &tag, Some(home.path()));
            c.check_confinement(&uid(), &["/", "/usr", "/etc", "/dev"]);
            // Where hutch binds the working directory (every program
            // profile; of the building blocks, those that read or edit it),
            // the runtime does too, and the repository in it is read-only.
            let bound = c.hutch["cwd"] == s.path().display().to_string();
            assert!(
                bound || name.contains('/'),
                "{name} does not bind the working directory"
            );
            for (who, m) in [("hutch", &c.hutch), ("runtime", &c.runtime)] {
                assert_eq!(m["cwd"] == s.path().display().to_string(), bound, "{who}");
                for probe in ["write .git/config", "write .git/hooks"] {
                    let got = m.get(probe).map_or("(not probed)", String::as_str);
                    let want = if bound { "errno EROFS" } else { "(not probed)" };
                    assert_eq!(got, want, "{who} {probe}");
                }
            }
            c.check_line_by_line();
        }));
        if checked.is_err() {
            failed.push(*name);
        }
    }
    eprintln!("{ran} profiles exported and run under crun");
    assert!(ran > 0, "no profile was run");
    assert!(
        failed.is_empty(),
        "under crun, these profiles' bundles answer otherwise than hutch (see above): {failed:?}"
    );
}

/// Whether profile `name` (its own `text`) has a `[desktop]` or
/// `[devices]` table, or `hutch run --explain --json` plans one for it.
fn is_desktop(s: &Scratch, name: &str, text: &str) -> bool {
    if text
        .lines()
        .any(|l| matches!(l.trim(), "[desktop]" | "[devices]"))
    {
        return true;
    }
    let out = s
        .hutch(&[
            "run",
            "--profile",
            name,
            "--explain",
            "--json",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        // Not a profile that runs from here (a building block named as a
        // file below): the run itself reports it.
        return false;
    }
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    !plan["desktop"].is_null() || !plan["devices"].is_null()
}

/// Puts credential stores and a startup file in the scratch home.
fn fill_home(s: &Scratch) {
    let home = s.home();
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), "key\n").unwrap();
    std::fs::write(home.join(".netrc"), "machine example.org password secret\n").unwrap();
    std::fs::write(home.join(".bashrc"), "# startup\n").unwrap();
    s.chown_all();
}

/// A profile that shows the home (`cli` with the home bound read-write in
/// place of its empty one): under crun as under hutch, its credential
/// stores are hidden (a directory under an inaccessible tmpfs, a file
/// under /dev/null on a nodev mount) and its startup files read-only.
#[test]
fn a_shown_home_keeps_its_credentials_hidden_under_crun() {
    let Some((rt, s)) = setup("crun") else { return };
    fill_home(&s);
    let p = s.write(
        "home.toml",
        "version = 1\nextends = [\"cli\"]\n[[mount]]\ntype = \"bind\"\nsrc = \"${HOME}\"\ndst = \"${HOME}\"\n",
    );
    let c = compare(&s, &rt, &["--profile", p.to_str().unwrap()], "home");
    c.check_confinement(&uid(), &["/", "/usr", "/etc", "/dev"]);
    for (who, m) in [("hutch", &c.hutch), ("runtime", &c.runtime)] {
        assert_eq!(m["write ~/.bashrc"], "errno EROFS", "{who}");
        assert_eq!(m["read ~/.netrc"], "Permission denied", "{who}");
        assert_eq!(m["list ~/.ssh"], "Permission denied", "{who}");
        // The home itself is writable: the masks are not a read-only home.
        assert_eq!(m[&format!("write {}", s.home().display())], "ok", "{who}");
    }
    c.check_line_by_line();
}

/// A file named on the command line, outside the working directory: the
/// profiles with `file_arguments` bind it alone, read-only, under crun as
/// under hutch (a file, so with plain options), and not its sibling.
#[test]
fn a_file_argument_is_bound_alone_under_crun() {
    let Some((rt, s)) = setup("crun") else { return };
    let home = home_outside_tmp();
    let elsewhere = home_outside_tmp();
    let data = elsewhere.path().join("data.json");
    std::fs::write(&data, "[1,2]\n").unwrap();
    std::fs::write(elsewhere.path().join("sibling"), "secret\n").unwrap();
    if is_root() {
        let st = Command::new("chown")
            .args(["-R", &uid()])
            .arg(elsewhere.path())
            .status()
            .unwrap();
        assert!(st.success());
    }
    let data = data.display().to_string();
    // jq reads its working directory, tar writes it: both bind arguments.
    for name in ["jq", "tar"] {
        let c = compare_with(
            &s,
            &rt,
            &["--profile", name],
            name,
            Some(home.path()),
            &[&data],
        );
        c.check_confinement(&uid(), &["/", "/usr", "/etc", "/dev"]);
        for (who, m) in [("hutch", &c.hutch), ("runtime", &c.runtime)] {
            assert_eq!(m["read argument"], "[1,2]", "{name} {who}");
            assert_eq!(m["write argument"], "errno EROFS", "{name} {who}");
            assert_eq!(m["sibling"], "No such file or directory", "{name} {who}");
        }
        c.check_line_by_line();
    }
    // Without file_arguments (cli), the file is not there at all.
    let c = compare_with(
        &s,
        &rt,
        &["--profile", "cli"],
        "cli-arg",
        Some(home.path()),
        &[&data],
    );
    for m in [&c.hutch, &c.runtime] {
        assert_eq!(m["read argument"], "No such file or directory");
    }
}

/// busybox with every applet in /bin (a layer), and a second layer that
/// deletes /etc/motd and replaces /data: the flattened rootfs/ must show
/// what hutch's overlay shows.
fn import_busybox(s: &Scratch) -> Option<()> {
    let list = Command::new("/bin/busybox").arg("--list").output().ok()?;
    if !list.status.success() {
        skip("/bin/busybox not found: install busybox-static");
        return None;
    }
    let mut t = Tar::new();
    t.dir("bin", 0o755).file(
        "bin/busybox",
        0o755,
        &std::fs::read("/bin/busybox").unwrap(),
    );
    for a in String::from_utf8_lossy(&list.stdout).lines() {
        if !a.is_empty() && a != "busybox" && !a.contains('/') {
            t.symlink(&format!("bin/{a}"), "busybox");
        }
    }
    t.dir("etc", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .file("etc/motd", 0o644, b"from the image\n")
        .dir("data", 0o755)
        .file("data/old", 0o644, b"old\n")
        .dir("root", 0o700)
        .dir("tmp", 0o1777);
    let mut top = Tar::new();
    top.file("etc/.wh.motd", 0o644, b"")
        .dir("data", 0o755)
        .file("data/.wh..wh..opq", 0o644, b"")
        .file("data/new", 0o644, b"new\n");
    let dir = s.path().join("layout");
    let mut layout = Layout::new(&dir);
    let layers = [t.finish(), top.finish()].map(|l| Layer::new(l, Comp::Gzip));
    layout.add(
        &layers,
        &ImageOpts {
            run: json!({"Cmd": ["sh"], "Env": ["PATH=/bin"]}),
            ..ImageOpts::default()
        },
    );
    s.chown_all();
    let out = s
        .hutch(&["image", "import", dir.to_str().unwrap(), "--tag", "busybox"])
        .output()
        .unwrap();
    ok(&out);
    Some(())
}

fn container_with(runtime_name: &str) {
    let Some((rt, s)) = setup(runtime_name) else {
        return;
    };
    if import_busybox(&s).is_none() {
        return;
    }
    let c = compare(&s, &rt, &["--image", "busybox"], runtime_name);
    c.check_confinement("0:0", &["/dev"]);
    for m in [&c.hutch, &c.runtime] {
        assert_eq!(m["write /"], "ok", "the image's root is writable");
        assert_eq!(m["motd"], "", "deleted by the second layer");
        assert_eq!(m["data"], "new", "the opaque directory hides data/old");
    }
    c.check_line_by_line();
}

#[test]
fn container_under_crun_answers_the_probes_as_under_hutch() {
    container_with("crun");
}

/// runc maps only bundles whose user namespace maps uid 0 (it needs the
/// container's root), so only the image runs there, as root inside.
#[test]
fn container_under_runc_answers_the_probes_as_under_hutch() {
    container_with("runc");
}

/// The negative control: without a sandbox the same probes answer
/// otherwise, so the checks above cannot pass by accident.
#[test]
fn without_a_sandbox_the_probes_answer_otherwise() {
    if let Err(e) = probe_binary() {
        skip(&e);
        return;
    }
    let s = Scratch::new();
    s.write(".git/config", "[core]\n");
    s.write(".git/hooks/pre-commit", "#!/bin/sh\n");
    fill_home(&s);
    s.write("elsewhere/sibling", "secret\n");
    let data = s.write("elsewhere/data.json", "[1,2]\n");
    let mut cmd = s.as_user(Path::new("/bin/sh"));
    cmd.args(["-c", PROBE_SCRIPT, "sh"]).arg(&data);
    let m = parse(&with_probe(cmd), "the probes without a sandbox");
    for call in [
        "keyctl",
        "bpf",
        "perf",
        "userfaultfd",
        "open_by_handle_at",
        "tiocsti",
        "tioclinux",
        "tiocsti with high bits",
        "clone3",
    ] {
        assert_ne!(m[call], "errno EPERM", "{call}");
        assert_ne!(m[call], "errno ENOSYS", "{call}");
    }
    assert_ne!(m["Seccomp"], "2");
    assert_ne!(m["NoNewPrivs"], "1");
    assert_ne!(m["x32"], "errno EPERM");
    assert!(!m["x32"].starts_with("killed"));
    assert_ne!(m["hostname"], "hutch");
    for probe in ["write .git/config", "write .git/hooks", "write ~/.bashrc"] {
        assert_eq!(m[probe], "ok", "{probe}");
    }
    assert!(m["read ~/.netrc"].contains("secret"));
    assert_eq!(m["list ~/.ssh"], "id_ed25519");
    assert_eq!(m["read argument"], "[1,2]");
    assert_eq!(m["write argument"], "ok");
    assert_eq!(m["sibling"], "secret");
    if is_root() {
        // The host's capability bounding set is full.
        assert_ne!(m["CapBnd"], "0000000000000000");
    }
}
