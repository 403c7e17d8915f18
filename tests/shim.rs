//! `hutch shim`: shims installed, listed and removed in a scratch home
//! (and, as root, in a private /usr/local), started by their names with
//! every argument untouched, never finding themselves in PATH, and menu
//! entries started by GLib (`gio launch`) through hutch with hostile file
//! names.
//!
//! The program behind the shims is `argdump`, a script that writes the
//! sandbox's hostname and its arguments, NUL-separated, to `./args.out`:
//! the hostname says whether it ran in a sandbox (hutch's is `hutch`) and
//! in which profile.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const ARGDUMP: &str = "#!/bin/sh\n\
{ printf '%s\\0' \"$(cat /proc/sys/kernel/hostname)\"; for a in \"$@\"; do printf '%s\\0' \"$a\"; done; } > args.tmp\n\
mv args.tmp args.out\n";

/// The scratch user's world: `bin/argdump`, its profile (cli, and the
/// program's directory read-only), a second profile `other` with its own
/// hostname, and menu entries in `data/applications`.
struct World {
    s: Scratch,
}

impl World {
    fn new() -> World {
        let s = Scratch::new();
        let bin = s.path().join("bin");
        s.write("bin/argdump", ARGDUMP);
        std::fs::set_permissions(bin.join("argdump"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let profile = format!(
            "version = 1\nextends = [\"cli\"]\n[[mount]]\ntype = \"ro-bind\"\nsrc = \"{0}\"\ndst = \"{0}\"\n",
            bin.display()
        );
        s.write("config/hutch/profiles/argdump.toml", &profile);
        s.write(
            "config/hutch/profiles/other.toml",
            "version = 1\nextends = [\"argdump\"]\nhostname = \"shimmed-other\"\n",
        );
        s.write(
            "data/applications/org.test.Dump.desktop",
            "[Desktop Entry]\nType=Application\nName=Dump\nName[de]=Abzug\n\
             Exec=argdump --from-entry %F\nDBusActivatable=true\nActions=again;\n\
             [Desktop Action again]\nName=Again\nExec=argdump --action %u\n",
        );
        World { s }
    }

    fn path(&self) -> &Path {
        self.s.path()
    }

    fn bin(&self) -> PathBuf {
        self.path().join("bin")
    }

    fn shims(&self) -> PathBuf {
        self.s.home().join(".local/bin")
    }

    fn applications(&self) -> PathBuf {
        self.s.home().join(".local/share/applications")
    }

    /// PATH: the user's shim directory first, then the program's.
    fn path_var(&self) -> String {
        format!(
            "{}:{}:/usr/local/bin:/usr/bin:/bin",
            self.shims().display(),
            self.bin().display()
        )
    }

    /// `PROGRAM` as the scratch user, with the world's PATH and menus.
    fn cmd(&self, program: &Path) -> Command {
        let mut c = self.s.as_user(program);
        c.env("PATH", self.path_var())
            .env("XDG_DATA_DIRS", self.path().join("data"));
        c
    }

    fn hutch(&self, args: &[&str]) -> Output {
        self.cmd(hutch_bin()).args(args).output().unwrap()
    }

    /// Runs `sh -c SCRIPT` with these arguments.
    fn sh<S: AsRef<OsStr>>(&self, script: &str, args: &[S]) -> Output {
        self.cmd(Path::new("/bin/sh"))
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(args)
            .output()
            .unwrap()
    }

    /// What argdump last wrote: the hostname, then the arguments.
    fn dumped(&self) -> (String, Vec<Vec<u8>>) {
        let bytes = std::fs::read(self.path().join("args.out")).unwrap();
        let mut parts: Vec<Vec<u8>> = bytes.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
        assert_eq!(parts.pop().as_deref(), Some(&b""[..]), "NUL-terminated");
        let host = String::from_utf8(parts.remove(0)).unwrap();
        (host, parts)
    }

    fn clear_dump(&self) {
        let _ = std::fs::remove_file(self.path().join("args.out"));
    }
}

/// Every file below `root`: type, mode, and content or link target.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let md = std::fs::symlink_metadata(&path).unwrap();
            let mode = md.mode() & 0o7777;
            let what = if md.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).unwrap().display())
            } else if md.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o}")
            } else {
                let content = std::fs::read(&path).unwrap();
                format!("file {mode:o} {}", String::from_utf8_lossy(&content))
            };
            out.insert(path.strip_prefix(root).unwrap().to_path_buf(), what);
        }
    }
    out
}

#[test]
fn install_list_and_remove_leave_the_home_as_it_was() {
    let w = World::new();
    // What the user had: a program of theirs where a shim would go, a
    // shim they made by hand, and a menu entry of their own.
    let shims = w.shims();
    std::fs::create_dir_all(&shims).unwrap();
    std::fs::write(shims.join("tool"), "#!/bin/sh\necho mine\n").unwrap();
    std::os::unix::fs::symlink(hutch_bin(), shims.join("handmade")).unwrap();
    w.s.write("bin/tool", "#!/bin/sh\n");
    w.s.write("bin/handmade", "#!/bin/sh\n");
    for p in ["bin/tool", "bin/handmade"] {
        std::fs::set_permissions(w.path().join(p), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    w.s.write(
        "config/hutch/profiles/tool.toml",
        "version = 1\nextends = [\"cli\"]\n",
    );
    w.s.write(
        "config/hutch/profiles/handmade.toml",
        "version = 1\nextends = [\"cli\"]\n",
    );
    w.s.chown_all();
    let before = snapshot(w.path());

    let out = w.hutch(&["shim", "install", "argdump", "tool", "handmade", "nosuch"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let (said, err) = (stdout(&out), stderr(&out));
    assert!(
        err.contains("tool: ") && err.contains("exists and is not a shim of hutch"),
        "{err}"
    );
    assert!(err.contains("nosuch: no profile `nosuch`"), "{err}");
    assert!(said.contains("handmade: already a shim of hutch"), "{said}");
    assert!(
        said.contains("argdump: menu entry org.test.Dump.desktop"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_link(shims.join("argdump")).unwrap(),
        hutch_bin(),
        "the shim points to hutch"
    );
    assert_eq!(
        std::fs::read_to_string(shims.join("tool")).unwrap(),
        "#!/bin/sh\necho mine\n",
        "the user's own file is never replaced"
    );
    let override_path = w.applications().join("org.test.Dump.desktop");
    let entry = std::fs::read_to_string(&override_path).unwrap();
    assert!(!entry.contains("DBusActivatable"), "{entry}");
    assert!(entry.contains("Name[de]=Abzug"), "{entry}");

    // Again: nothing changes.
    let installed = snapshot(w.path());
    let out = w.hutch(&["shim", "install", "argdump", "handmade"]);
    assert!(
        stdout(&out).contains("argdump: already installed"),
        "{}",
        stdout(&out)
    );
    assert_eq!(snapshot(w.path()), installed, "install is idempotent");

    let list = ok(&w.hutch(&["shim", "list", "--json"]));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["argdump", "handmade"]);
    assert_eq!(list[0]["state"], "active");
    assert_eq!(list[0]["made_by_install"], true);
    assert_eq!(list[1]["made_by_install"], false);
    assert_eq!(
        list[0]["program"].as_str().unwrap(),
        w.bin().join("argdump").to_str().unwrap()
    );
    let text = ok(&w.hutch(&["shim", "list"]));
    assert!(
        text.contains("argdump") && text.contains("active"),
        "{text}"
    );

    let out = w.hutch(&["shim", "remove", "--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("handmade: the shim was there before"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        snapshot(w.path()),
        before,
        "remove leaves what was there before"
    );
    let out = w.hutch(&["shim", "remove", "argdump"]);
    fails_with(&out, 1, "argdump: no shim of it was installed");
}

#[test]
fn remove_leaves_what_changed_since_install() {
    let w = World::new();
    ok(&w.hutch(&["shim", "install", "argdump"]));
    let shim = w.shims().join("argdump");
    let entry = w.applications().join("org.test.Dump.desktop");
    std::fs::write(&entry, "[Desktop Entry]\nName=edited by the user\n").unwrap();
    std::fs::remove_file(&shim).unwrap();
    std::os::unix::fs::symlink("/usr/bin/true", &shim).unwrap();
    w.s.chown_all();
    let out = w.hutch(&["shim", "remove", "argdump"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("changed since hutch wrote it: left as it is"),
        "{said}"
    );
    assert!(
        said.contains("changed since hutch made it: left as it is"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_link(&shim).unwrap(),
        Path::new("/usr/bin/true")
    );
    assert!(
        std::fs::read_to_string(&entry)
            .unwrap()
            .contains("edited by the user")
    );
}

#[test]
fn a_shim_runs_its_program_with_every_argument_untouched() {
    let w = World::new();
    // Two shim directories before the program: the user's, made by
    // `install`, and a hard link of hutch under the program's name.
    ok(&w.hutch(&["shim", "install", "argdump"]));
    let other = w.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::hard_link(hutch_bin(), other.join("argdump")).unwrap();
    w.s.chown_all();
    let path = format!(
        "{}:{}:{}:/usr/bin:/bin",
        w.shims().display(),
        other.display(),
        w.bin().display()
    );
    // The control: by name, PATH leads to the shim itself (a shim that
    // looked its program up by name would start itself again).
    let found = w.sh("PATH=\"$1\"; command -v argdump", &[&path]);
    assert_eq!(
        stdout(&found).trim(),
        w.shims().join("argdump").to_str().unwrap()
    );

    let args: Vec<&OsStr> = [
        "--profile",
        "cli",
        "--explain",
        "-v",
        "--",
        "",
        "a b",
        "new\nline",
        "quote\"d'",
        "$(id)",
        "%f",
        "--help",
        "ünïcödé",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let out = w.sh(
        "PATH=\"$1\"; shift; argdump \"$@\"",
        &[&[OsStr::new(&path)], &args[..]].concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let (host, got) = w.dumped();
    assert_eq!(host, "hutch", "argdump ran in the sandbox of its profile");
    let want: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    assert_eq!(got, want);

    // A shim given a profile at install uses it.
    ok(&w.hutch(&["shim", "install", "--profile", "other", "argdump"]));
    w.clear_dump();
    ok(&w.sh("PATH=\"$1\"; argdump x", &[&path]));
    assert_eq!(w.dumped(), ("shimmed-other".into(), vec![b"x".to_vec()]));

    // Bytes that are not UTF-8 pass as they are (a file name is bytes).
    w.clear_dump();
    let out = w.sh(
        "PATH=\"$1\"; argdump ok \"$2\"",
        &[OsStr::new(&path), OsStr::from_bytes(b"caf\xe9")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        w.dumped(),
        (
            "shimmed-other".into(),
            vec![b"ok".to_vec(), b"caf\xe9".to_vec()]
        )
    );

    // Only shims of hutch in PATH: no program, and no loop.
    let only = format!("{}:{}", w.shims().display(), other.display());
    let out = w.sh("PATH=\"$1\"; argdump x", &[&only]);
    fails_with(
        &out,
        127,
        "argdump: no program of that name in PATH but hutch's own shims",
    );
}

#[test]
fn profiles_say_whether_the_program_is_installed_and_its_shim_active() {
    let w = World::new();
    let program = |out: &Output| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&ok(out)).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "argdump")
            .unwrap()
            .clone()
    };
    let p = program(&w.hutch(&["profiles", "--json"]));
    assert_eq!(
        p["installed"].as_str().unwrap(),
        w.bin().join("argdump").to_str().unwrap()
    );
    assert!(p["shim"].is_null(), "{p}");
    ok(&w.hutch(&["shim", "install", "argdump"]));
    let p = program(&w.hutch(&["profiles", "--json"]));
    assert_eq!(p["shim"]["state"], "active", "{p}");
    assert_eq!(
        p["installed"].as_str().unwrap(),
        w.bin().join("argdump").to_str().unwrap()
    );
    let text = ok(&w.hutch(&["profiles"]));
    let line = text.lines().find(|l| l.starts_with("argdump ")).unwrap();
    assert!(
        line.contains("installed: ") && line.contains(": active]"),
        "{line}"
    );

    // The program's directory before the shims: shadowed.
    let later = format!(
        "{}:{}:/usr/bin:/bin",
        w.bin().display(),
        w.shims().display()
    );
    let out = w
        .cmd(hutch_bin())
        .args(["profiles", "--json"])
        .env("PATH", &later)
        .output()
        .unwrap();
    let p = program(&out);
    assert_eq!(p["shim"]["state"], "shadowed", "{p}");
    assert_eq!(p["shim"]["shadowed_by"], p["installed"], "{p}");
    // The shim directory not on PATH at all.
    let off = format!("{}:/usr/bin:/bin", w.bin().display());
    let out = w
        .cmd(hutch_bin())
        .args(["profiles", "--json"])
        .env("PATH", &off)
        .output()
        .unwrap();
    assert_eq!(program(&out)["shim"]["state"], "not-on-path");
    // Not installed: the program gone from PATH.
    let out = w
        .cmd(hutch_bin())
        .args(["profiles"])
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let text = ok(&out);
    let line = text.lines().find(|l| l.starts_with("argdump ")).unwrap();
    assert!(line.contains("not installed"), "{line}");
    // hutch's bases are not programs.
    let all = ok(&w.hutch(&["profiles", "--json"]));
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    let cli = all
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "cli")
        .unwrap();
    assert!(cli.get("installed").is_none(), "{cli}");
}

#[test]
fn all_shims_the_installed_programs_with_a_profile_but_not_shells() {
    let w = World::new();
    w.s.write(
        "config/hutch/profiles/sh.toml",
        "version = 1\nextends = [\"cli\"]\n",
    );
    w.s.write(
        "config/hutch/profiles/notinstalled.toml",
        "version = 1\nextends = [\"cli\"]\n",
    );
    // PATH holds only the test's programs (and `sh`): the shipped program
    // profiles (jq, tar, ...) have their programs installed on a CI machine
    // and --all would shim those too.
    std::os::unix::fs::symlink("/bin/sh", w.bin().join("sh")).unwrap();
    let only = format!("{}:{}", w.shims().display(), w.bin().display());
    let all = |verb: &str| {
        w.sh(
            "PATH=\"$1\" exec \"$2\" shim \"$3\" --all",
            &[OsStr::new(&only), hutch_bin().as_os_str(), OsStr::new(verb)],
        )
    };
    let out = all("install");
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains("argdump: installed"), "{said}");
    assert!(
        said.contains("sh: left out") && said.contains("starts other programs"),
        "{said}"
    );
    assert!(!said.contains("notinstalled"), "{said}");
    let mut names: Vec<String> = std::fs::read_dir(w.shims())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["argdump"]);
    ok(&all("remove"));
    assert!(!w.s.home().join(".local").exists());
    // --system is root's, and says so.
    let out = w.hutch(&["shim", "install", "--system", "argdump"]);
    fails_with(&out, 1, "run it as root");
}

/// `gio launch FILE.desktop ARGS...` as the scratch user (GLib expands the
/// entry's field codes as a desktop does), then what argdump got.
fn gio_launch(w: &World, entry: &Path, files: &[&str]) -> (String, Vec<String>) {
    w.clear_dump();
    let out = w
        .cmd(Path::new("gio"))
        .arg("launch")
        .arg(entry)
        .args(files)
        .output()
        .unwrap();
    assert!(out.status.success(), "gio launch: {}", stderr(&out));
    wait_for_file(&w.path().join("args.out"));
    let (host, args) = w.dumped();
    (
        host,
        args.into_iter()
            .map(|a| String::from_utf8(a).unwrap())
            .collect(),
    )
}

#[test]
fn menu_entries_start_through_hutch_and_file_names_stay_arguments() {
    if Command::new("gio").arg("version").output().is_err() {
        return skip("gio is not installed (Debian: libglib2.0-bin): menu entries not launched");
    }
    let w = World::new();
    // An entry whose field code is inside quotes: GLib lets a file name
    // end the quotes there.
    let hostile = w.s.write(
        "data/applications/org.test.Quoted.desktop",
        &format!(
            "[Desktop Entry]\nType=Application\nName=Quoted\nExec={} \"%f\"\n",
            w.bin().join("argdump").display()
        ),
    );
    let out = w.hutch(&["shim", "install", "argdump"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("org.test.Quoted.desktop") && said.contains("inside a quoted argument"),
        "{said}"
    );
    assert!(!w.applications().join("org.test.Quoted.desktop").exists());

    // The control: launched as it is, the hostile entry runs unconfined,
    // and a file name injects an argument.
    let (host, args) = gio_launch(&w, &hostile, &["/tmp/x\" \"--injected"]);
    assert_ne!(host, "hutch");
    assert_eq!(args.len(), 2, "the control injects: {args:?}");

    let names = [
        "/tmp/with space",
        "/tmp/quote\"d'",
        "/tmp/new\nline",
        "/tmp/--profile=cli",
        "/tmp/$(id)`id`",
        "/tmp/100%",
    ];
    let (host, args) = gio_launch(&w, &w.applications().join("org.test.Dump.desktop"), &names);
    assert_eq!(host, "hutch", "the menu entry ran in the sandbox");
    let mut want = vec!["--from-entry".to_string()];
    want.extend(names.iter().map(|n| n.to_string()));
    assert_eq!(args, want);

    // The action runs through hutch too.
    let text = std::fs::read_to_string(w.applications().join("org.test.Dump.desktop")).unwrap();
    let action = text
        .lines()
        .skip_while(|l| *l != "[Desktop Action again]")
        .find(|l| l.starts_with("Exec="))
        .unwrap();
    assert_eq!(
        action,
        format!(
            "Exec={} run --profile argdump -- {} --action %u",
            hutch_bin().display(),
            w.bin().join("argdump").display()
        )
    );
}

#[test]
fn real_menu_entries_are_rewritten_faithfully() {
    use hutch::shim::desktop::{DesktopFile, Override, join_exec, split_exec, unescape_value};
    let dir = Path::new("/usr/share/applications");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return skip("no /usr/share/applications");
    };
    let validate = Command::new("desktop-file-validate")
        .arg("--help")
        .output()
        .is_ok();
    let resolve = |n: &str| {
        let own = hutch::shim::lookup::own_id().ok()?;
        hutch::shim::lookup::find(n.as_ref(), "/usr/local/bin:/usr/bin:/bin".as_ref(), own).program
    };
    let scratch = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for e in entries {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "desktop") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let Ok(file) = DesktopFile::parse(&bytes) else {
            continue;
        };
        let Ok(cmd) = file.command(&resolve) else {
            continue;
        };
        let to = Override {
            hutch: Path::new("/usr/bin/hutch"),
            name: "prog",
            profile: "prog",
            source: &path,
        };
        let out = file
            .rewrite(&to, &resolve)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let again = DesktopFile::parse(out.as_bytes()).unwrap();
        let exec = unescape_value(again.get("Desktop Entry", "Exec").unwrap()).unwrap();
        let tail = join_exec(&cmd.argv);
        assert_eq!(
            exec,
            format!("/usr/bin/hutch run --profile prog -- {tail}"),
            "{}",
            path.display()
        );
        assert_eq!(
            split_exec(&exec).unwrap()[5..],
            cmd.argv[..],
            "{}",
            path.display()
        );
        // Every line of the original is kept but Exec, DBusActivatable
        // and the groups of actions without Exec.
        let original = String::from_utf8(bytes).unwrap();
        let mut group_kept = true;
        for line in original.lines() {
            if let Some(g) = line.strip_prefix('[') {
                group_kept = out
                    .lines()
                    .any(|l| l.strip_prefix('[') == Some(g.trim_end()));
                continue;
            }
            let rewritten = ["Exec", "DBusActivatable", "X-Hutch-Shim", "Actions"]
                .iter()
                .any(|k| line.starts_with(k));
            if group_kept && !rewritten {
                assert!(
                    out.lines().any(|l| l == line),
                    "{}: lost {line:?}",
                    path.display()
                );
            }
        }
        if validate && desktop_file_valid(&path) {
            let copy = scratch.path().join(path.file_name().unwrap());
            std::fs::write(&copy, &out).unwrap();
            assert!(
                desktop_file_valid(&copy),
                "{}: the override does not validate",
                path.display()
            );
        }
        checked += 1;
    }
    if checked == 0 {
        skip("no menu entry of an installed program in /usr/share/applications");
    }
}

fn desktop_file_valid(path: &Path) -> bool {
    let out = Command::new("desktop-file-validate")
        .arg(path)
        .output()
        .unwrap();
    out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("error:")
}

#[test]
fn system_shims_go_to_usr_local_and_come_off_exactly() {
    if !is_root() {
        return skip("--system needs root (and a private mount namespace for /usr/local)");
    }
    let w = World::new();
    // In a mount namespace of its own, /usr/local and /var/lib are empty
    // tmpfs: the machine's own are never touched. A program of the
    // admin's is in /usr/local/bin already.
    let script = format!(
        r#"set -e
mount -t tmpfs -o mode=0755 none /usr/local
mount -t tmpfs -o mode=0755 none /var/lib
mkdir -m 0755 /usr/local/bin
printf '#!/bin/sh\n' > /usr/local/bin/tool; chmod 755 /usr/local/bin/tool
snap() {{ find /usr/local /var/lib -printf '%p %y %m %l\n' | sort; }}
before=$(snap)
export XDG_DATA_DIRS={data} HUTCH_PROFILE_PATH={profiles} PATH=/usr/local/bin:{bin}:/usr/bin:/bin
{hutch} shim install --system argdump
{hutch} shim install --system --profile argdump tool && exit 10
echo "record: $(stat -c %a /var/lib/hutch/shims.json)"
echo "override: $(stat -c %a /usr/local/share/applications/org.test.Dump.desktop)"
cd {cwd}
setpriv --reuid={uid} --regid={uid} --clear-groups -- env HOME={home} XDG_RUNTIME_DIR={run} argdump from-system
{hutch} shim remove --system --all
after=$(snap)
[ "$before" = "$after" ] || {{ echo "before: $before"; echo "after: $after"; exit 11; }}
echo same
"#,
        data = w.path().join("data").display(),
        profiles = w.path().join("config/hutch/profiles").display(),
        bin = w.bin().display(),
        hutch = hutch_bin().display(),
        cwd = w.path().display(),
        uid = NOBODY,
        home = w.s.home().display(),
        run = w.s.runtime().display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let said = stdout(&out);
    assert!(out.status.success(), "{said}\n{}", stderr(&out));
    assert!(
        said.contains("argdump: installed: /usr/local/bin/argdump"),
        "{said}"
    );
    assert!(
        stderr(&out).contains("/usr/local/bin/tool exists and is not a shim of hutch"),
        "{}",
        stderr(&out)
    );
    assert!(
        said.contains("record: 644") && said.contains("override: 644"),
        "{said}"
    );
    assert!(said.ends_with("same\n"), "{said}");
    assert_eq!(w.dumped(), ("hutch".into(), vec![b"from-system".to_vec()]));
}
