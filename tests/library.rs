//! The safe defaults of the profile library (issue 15, item 1): the masks of
//! `base/sensitive` over every path it lists, `workdir` refusing or leaving
//! out a working directory that holds the user's whole world, `default`
//! reading the working directory read-only, a bound repository's
//! `.git/config` and `.git/hooks` read-only. Each protection is checked
//! against a negative control: the same probe in a profile without it
//! succeeds. Sandboxes run as the unprivileged test user.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

/// The entries of `[protect] KEY` in the shipped base/sensitive, with
/// `${HOME}/` taken off.
fn sensitive(key: &str) -> Vec<String> {
    let text = hutch::profile::load::BUILTIN
        .iter()
        .find(|(n, _)| *n == "base/sensitive")
        .unwrap()
        .1;
    let v: toml::Value = toml::from_str(text).unwrap();
    v["protect"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = e.as_str().unwrap();
            s.strip_prefix("${HOME}/").unwrap_or(s).to_string()
        })
        .collect()
}

/// Whether the test creates a listed path as a file (else a directory).
fn is_file(rel: &str) -> bool {
    let last = rel.rsplit('/').next().unwrap();
    [
        ".json",
        ".toml",
        "rc",
        "_history",
        "hst",
        "credentials",
        "token",
        ".list",
        ".conf",
        "profile",
        "login",
        "_logout",
        "env",
        ".gitconfig",
        ".xsession",
        ".emacs",
        "_environment",
    ]
    .iter()
    .any(|s| last.ends_with(s))
        && !last.ends_with(".d")
}

/// Creates `rel` in `home` holding the word `secret` (a file, or a file
/// `secret` in a directory).
fn plant(home: &Path, rel: &str) -> PathBuf {
    let p = home.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    if is_file(rel) {
        std::fs::write(&p, "secret\n").unwrap();
        p
    } else {
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("secret"), "secret\n").unwrap();
        p.join("secret")
    }
}

/// A profile that binds the whole home read-write, with or without
/// base/sensitive.
fn home_profile(s: &Scratch, sensitive: bool) -> String {
    let extends = if sensitive {
        r#"["base/system", "base/sensitive"]"#
    } else {
        r#"["base/system"]"#
    };
    let path = s.write(
        if sensitive { "home-sens.toml" } else { "home-bare.toml" },
        &format!(
            "version = 1\nextends = {extends}\n[[mount]]\ntype = \"bind\"\nsrc = \"${{HOME}}\"\ndst = \"${{HOME}}\"\n"
        ),
    );
    path.display().to_string()
}

/// For each file, `NAME readable` or `NAME unreadable` (by `cat`), and
/// `NAME writable` or `NAME read-only` (by appending to it, or by creating
/// a file beside it in its directory for a directory entry).
fn probe(s: &Scratch, profile: &str, files: &[PathBuf], write: bool) -> Output {
    let mut script = String::from("for f in \"$@\"; do ");
    script += "if cat \"$f\" >/dev/null 2>&1; then echo \"$f readable\"; else echo \"$f unreadable\"; fi; ";
    if write {
        script += "if (echo x >> \"$f\") 2>/dev/null && touch \"$(dirname \"$f\")/.w\" 2>/dev/null; then echo \"$f writable\"; else echo \"$f read-only\"; fi; ";
    }
    script += "done";
    let mut args = vec!["sh", "-c", &script, "probe"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    s.run(&["--profile", profile], &args)
}

fn verdicts(o: &Output) -> Vec<String> {
    ok(o).lines().map(str::to_string).collect()
}

#[test]
fn every_hidden_path_is_unreadable_through_a_bind_of_the_home() {
    let s = Scratch::new();
    let home = s.home();
    let list = sensitive("hide");
    assert!(list.len() >= 20, "{list:?}");
    let files: Vec<PathBuf> = list.iter().map(|rel| plant(&home, rel)).collect();
    s.chown_all();
    let masked = verdicts(&probe(&s, &home_profile(&s, true), &files, false));
    let bare = verdicts(&probe(&s, &home_profile(&s, false), &files, false));
    for (i, f) in files.iter().enumerate() {
        assert_eq!(
            masked[i],
            format!("{} unreadable", f.display()),
            "{}",
            list[i]
        );
        // Negative control: without base/sensitive the same bind shows it.
        assert_eq!(bare[i], format!("{} readable", f.display()), "{}", list[i]);
    }
}

#[test]
fn every_escalation_path_is_read_only_through_a_writable_bind() {
    let s = Scratch::new();
    let home = s.home();
    let list = sensitive("read_only");
    assert!(list.len() >= 20, "{list:?}");
    let files: Vec<PathBuf> = list.iter().map(|rel| plant(&home, rel)).collect();
    s.chown_all();
    let guarded = verdicts(&probe(&s, &home_profile(&s, true), &files, true));
    let bare = verdicts(&probe(&s, &home_profile(&s, false), &files, true));
    for (i, f) in files.iter().enumerate() {
        let d = f.display();
        assert_eq!(guarded[2 * i], format!("{d} readable"), "{}", list[i]);
        assert_eq!(guarded[2 * i + 1], format!("{d} read-only"), "{}", list[i]);
        assert_eq!(bare[2 * i + 1], format!("{d} writable"), "{}", list[i]);
    }
    assert_eq!(
        std::fs::read_to_string(&files[0]).unwrap(),
        "secret\nx\n",
        "the control wrote, the guarded run did not"
    );
}

#[test]
fn masks_of_missing_paths_create_nothing_on_the_host() {
    let s = Scratch::new();
    let out = s.run(
        &["--profile", &home_profile(&s, true)],
        &["sh", "-c", "ls -A \"$HOME\"; echo done"],
    );
    assert_eq!(ok(&out), "done\n");
    assert_eq!(std::fs::read_dir(s.home()).unwrap().count(), 0);
}

#[test]
fn a_symlinked_credential_store_is_hidden_at_both_names() {
    let s = Scratch::new();
    let home = s.home();
    let real = plant(&home, "dotfiles/ssh");
    std::os::unix::fs::symlink("dotfiles/ssh", home.join(".ssh")).unwrap();
    s.chown_all();
    let through_link = home.join(".ssh/secret");
    let files = [through_link, real];
    let masked = verdicts(&probe(&s, &home_profile(&s, true), &files, false));
    assert!(
        masked.iter().all(|l| l.ends_with(" unreadable")),
        "{masked:?}"
    );
    let bare = verdicts(&probe(&s, &home_profile(&s, false), &files, false));
    assert!(bare.iter().all(|l| l.ends_with(" readable")), "{bare:?}");
}

#[test]
fn a_bind_inside_a_hidden_path_is_refused() {
    let s = Scratch::new();
    plant(&s.home(), ".ssh");
    s.chown_all();
    let p = s.write(
        "inside.toml",
        "version = 1\nextends = [\"base/system\", \"base/sensitive\"]\n[[mount]]\ntype = \"ro-bind\"\nsrc = \"${HOME}/.ssh/secret\"\ndst = \"/key\"\n",
    );
    let out = s.run(&["--profile", p.to_str().unwrap()], &["true"]);
    fails_with(&out, 125, "which `[protect] hide` keeps out of sandboxes");
}

/// `hutch run --profile cli` from `dir`.
fn cli_from(s: &Scratch, dir: &Path) -> Output {
    s.hutch(&["run", "--profile", "cli", "--", "true"])
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn cli_refuses_the_home_directory_and_the_directories_above_it() {
    let s = Scratch::new();
    fails_with(&cli_from(&s, &s.home()), 125, "is your home directory");
    fails_with(&cli_from(&s, Path::new("/")), 125, "is `/`");
    fails_with(
        &cli_from(&s, Path::new("/tmp")),
        125,
        "/tmp holds /tmp, where tmux",
    );
    // Negative control: an ordinary directory (the scratch dir) runs.
    ok(&cli_from(&s, s.path()));
}

#[test]
fn cli_refuses_a_directory_that_holds_the_home() {
    let s = Scratch::new();
    let inner = s.path().join("u");
    std::fs::create_dir(&inner).unwrap();
    s.chown_all();
    let out = s
        .hutch(&["run", "--profile", "cli", "--", "true"])
        .env("HOME", &inner)
        .output()
        .unwrap();
    fails_with(&out, 125, "holds your home directory");
}

#[test]
fn default_reads_the_working_directory_and_cannot_write_it() {
    let s = Scratch::new();
    s.write("data.txt", "hello\n");
    let out = s.run(&[], &["cat", "data.txt"]);
    assert_eq!(ok(&out), "hello\n");
    let out = s.run(&[], &["sh", "-c", "echo x > new.txt"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    assert!(!s.path().join("new.txt").exists());
    // Negative control: `cli` binds it writable and the same write lands.
    ok(&s.run(&["--profile", "cli"], &["sh", "-c", "echo x > new.txt"]));
    assert!(s.path().join("new.txt").exists());
}

/// A write to the home fails with EROFS under `default` (and the programs
/// that only read), rather than landing on a tmpfs that vanishes unseen at
/// exit; /tmp stays the sandbox's own, writable. The control: `cli`'s home
/// (a private tmpfs, for programs that need one) takes the same write.
/// The home is outside /tmp here, as a user's is: the scratch home lies in
/// /tmp, which is the sandbox's own writable tmpfs.
#[test]
fn default_home_is_read_only_and_writes_fail_loudly() {
    let s = Scratch::new();
    let home = tempfile::Builder::new()
        .prefix("hutch-test-home-")
        .tempdir_in("/var/tmp")
        .unwrap();
    give(home.path());
    let run = |profile: &str, script: &str| {
        s.hutch(&["run", "--profile", profile, "--", "sh", "-c", script])
            .env("HOME", home.path())
            .output()
            .unwrap()
    };
    let write = "echo x > \"$HOME/new\"";
    for profile in ["default", "jq"] {
        let out = run(profile, write);
        assert_ne!(out.status.code(), Some(0), "{profile}");
        assert!(
            stderr(&out).contains("Read-only file system"),
            "{profile}: {}",
            stderr(&out)
        );
        ok(&run(profile, "echo x > /tmp/new"));
    }
    ok(&run("cli", write));
    assert!(!home.path().join("new").exists());
}

#[test]
fn default_leaves_out_the_home_directory_and_says_why() {
    let s = Scratch::new();
    std::fs::write(s.home().join("notes"), "private\n").unwrap();
    s.chown_all();
    let out = s
        .hutch(&["run", "-v", "--", "sh", "-c", "pwd; ls -A"])
        .current_dir(s.home())
        .output()
        .unwrap();
    // The payload starts in its empty private home.
    assert_eq!(ok(&out), format!("{}\n", s.home().display()));
    assert!(
        stderr(&out).contains("is your home directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bound_repositorys_config_and_hooks_are_read_only() {
    let s = Scratch::new();
    let repo = s.path().join("repo");
    std::fs::create_dir_all(repo.join(".git/hooks")).unwrap();
    std::fs::write(repo.join(".git/config"), "[core]\n").unwrap();
    std::fs::write(repo.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    s.chown_all();
    let script = "echo '[core] fsmonitor = evil' >> .git/config; \
                  echo evil > .git/hooks/pre-commit; \
                  echo ok > .git/HEAD.new; echo ok > file";
    let run = |profile: &str| {
        s.hutch(&["run", "--profile", profile, "--", "sh", "-c", script])
            .current_dir(&repo)
            .output()
            .unwrap()
    };
    let out = run("cli");
    assert!(
        stderr(&out).matches("Read-only file system").count() == 2,
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_to_string(repo.join(".git/config")).unwrap(),
        "[core]\n"
    );
    assert!(!repo.join(".git/hooks/pre-commit").exists());
    assert!(repo.join("file").exists() && repo.join(".git/HEAD.new").exists());
    // Negative control: the same writes land once the entries are dropped.
    let open = s.write(
        "open.toml",
        "version = 1\nextends = [\"cli\"]\n[protect]\nread_only_in_binds = [\"!.git/config\", \"!.git/hooks\"]\n",
    );
    ok(&run(open.to_str().unwrap()));
    assert!(repo.join(".git/hooks/pre-commit").exists());
}

// ---- Ad-hoc additions on the command line (issue 15, item 6) ----------------

#[test]
fn bind_ro_bind_and_env_add_to_the_profile_for_one_run() {
    let s = Scratch::new();
    let data = s.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(s.home().join("notes.txt"), "noted\n").unwrap();
    s.chown_all();
    let notes = s.home().join("notes.txt").display().to_string();
    let script = "echo w > /data/new && cat /data/new; cat \"$1\"; \
                  (echo x >> \"$1\") 2>&1 | grep -o 'Read-only file system'; echo \"$GREETING\"";
    let out = s.run(
        &[
            "--profile",
            "cli",
            "--bind",
            "data:/data",
            "--ro-bind",
            &notes,
            "--env",
            "GREETING=hi $USER",
        ],
        &["sh", "-c", script, "sh", &notes],
    );
    assert_eq!(ok(&out), "w\nnoted\nRead-only file system\nhi $USER\n");
    assert_eq!(std::fs::read_to_string(data.join("new")).unwrap(), "w\n");
    // Negative control: without the flags neither path is there.
    let out = s.run(
        &["--profile", "cli"],
        &["sh", "-c", "ls /data; cat \"$1\"", "sh", &notes],
    );
    assert!(!out.status.success());
}

#[test]
fn a_bind_into_the_working_directory_is_mounted_over_it() {
    let s = Scratch::new();
    let data = s.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f"), "from data\n").unwrap();
    std::fs::create_dir(s.path().join("sub")).unwrap();
    s.chown_all();
    let dst = format!("{}:{}", data.display(), s.path().join("sub").display());
    let out = s.run(&["--profile", "cli", "--ro-bind", &dst], &["cat", "sub/f"]);
    assert_eq!(ok(&out), "from data\n");
}

#[test]
fn additions_are_shown_by_explain_with_the_flag() {
    let s = Scratch::new();
    let out = ok(&s
        .hutch(&[
            "run",
            "--profile",
            "cli",
            "--ro-bind",
            "/usr/share:/s",
            "--explain",
            "--",
            "true",
        ])
        .output()
        .unwrap());
    assert!(out.contains("bind     /s ← /usr/share (ro,"), "{out}");
    assert!(out.contains("from command line:1:22"), "{out}");
    assert!(
        out.contains("← command line\n"),
        "the layer is listed: {out}"
    );
}

#[test]
fn additions_are_validated_like_profile_entries() {
    let s = Scratch::new();
    let out = s.run(&["--bind", "/no/such/dir:/x"], &["true"]);
    fails_with(&out, 125, "command line:1:8");
    // A `:` that no `/` follows is part of the source.
    let out = s.run(&["--ro-bind", "/usr:relative"], &["true"]);
    fails_with(&out, 125, "bind source /usr:relative does not exist");
    let out = s.run(&["--env", "NOVALUE"], &["true"]);
    fails_with(&out, 125, "`--env` takes NAME=VALUE");
    let out = s.run(&["--ro-bind", "/usr:/"], &["true"]);
    fails_with(&out, 125, "a mount destination cannot be `/`");
}

#[test]
fn an_added_bind_of_the_home_still_hides_the_keys() {
    let s = Scratch::new();
    let key = plant(&s.home(), ".ssh");
    std::fs::write(s.home().join("visible"), "v\n").unwrap();
    s.chown_all();
    let home = s.home().display().to_string();
    let script = "cat \"$1\"; cat \"$2\" 2>/dev/null || echo hidden";
    let key = key.display().to_string();
    let visible = s.home().join("visible").display().to_string();
    let out = s.run(
        &["--profile", "cli", "--ro-bind", &home],
        &["sh", "-c", script, "sh", &visible, &key],
    );
    assert_eq!(ok(&out), "v\nhidden\n");
    // A bind of the key itself is refused, naming the flag.
    let out = s.run(&["--profile", "cli", "--ro-bind", &key], &["true"]);
    fails_with(&out, 125, "command line");
    // Negative control: a profile without base/sensitive shows it.
    let bare = s.write("bare.toml", "version = 1\nextends = [\"base/system\"]\n");
    let out = s.run(
        &["--profile", bare.to_str().unwrap(), "--ro-bind", &home],
        &["sh", "-c", script, "sh", &visible, &key],
    );
    assert_eq!(ok(&out), "v\nsecret\n");
}

// ---- Files named on the command line (issue 15, item 5) ---------------------

/// A profile like `default` that binds its file arguments (`mode`), with or
/// without base/sensitive.
fn args_profile(s: &Scratch, mode: &str, sensitive: bool) -> String {
    let extends = if sensitive {
        r#"["base/system", "base/sensitive"]"#
    } else {
        r#"["base/system"]"#
    };
    s.write(
        &format!("args-{mode}-{sensitive}.toml"),
        &format!("version = 1\nextends = {extends}\nfile_arguments = \"{mode}\"\n"),
    )
    .display()
    .to_string()
}

/// A directory beside the scratch dir (outside the working directory).
fn elsewhere() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hutch-test-args-")
        .tempdir()
        .unwrap()
}

/// Gives `dir` and everything in it to the test user.
fn give(dir: &Path) {
    if is_root() {
        let st = std::process::Command::new("chown")
            .arg("-R")
            .arg(format!("{0}:{0}", test_uid()))
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

#[test]
fn a_named_file_is_bound_read_only_and_nothing_beside_it() {
    let s = Scratch::new();
    let other = elsewhere();
    let name = other.path().join("a b\nc.txt");
    std::fs::write(&name, "named\n").unwrap();
    std::fs::write(other.path().join("beside"), "x").unwrap();
    give(other.path());
    s.chown_all();
    let script = "cat \"$1\"; ls \"$(dirname \"$1\")\"; (echo x >> \"$1\") 2>&1 | grep -o 'Read-only file system'";
    let name_arg = name.display().to_string();
    let out = s.run(
        &["--profile", &args_profile(&s, "read-only", true)],
        &["sh", "-c", script, "sh", &name_arg],
    );
    assert_eq!(ok(&out), "named\na b\nc.txt\nRead-only file system\n");
    // Negative control: without file_arguments the file is not there.
    let out = s.run(
        &["--profile", &args_profile(&s, "none", true)],
        &["sh", "-c", "cat \"$1\"", "sh", &name_arg],
    );
    assert!(!out.status.success());
}

#[test]
fn a_profile_may_bind_named_files_read_write() {
    let s = Scratch::new();
    let other = elsewhere();
    let name = other.path().join("in place.txt");
    std::fs::write(&name, "a\n").unwrap();
    give(other.path());
    s.chown_all();
    let out = s.run(
        &["--profile", &args_profile(&s, "read-write", true)],
        &["sh", "-c", "echo b >> \"$1\"", "sh", name.to_str().unwrap()],
    );
    ok(&out);
    assert_eq!(std::fs::read_to_string(&name).unwrap(), "a\nb\n");
}

#[test]
fn a_symlink_argument_into_a_hidden_path_does_not_widen() {
    let s = Scratch::new();
    let key = plant(&s.home(), ".ssh");
    let other = elsewhere();
    let link = other.path().join("innocent.pdf");
    std::os::unix::fs::symlink(&key, &link).unwrap();
    s.chown_all();
    let link_arg = link.display().to_string();
    let out = s.run(
        &["--profile", &args_profile(&s, "read-only", true)],
        &["cat", &link_arg],
    );
    fails_with(&out, 125, "which `[protect] hide` keeps out of sandboxes");
    // Negative control: without base/sensitive the link's target is bound
    // (so the test above can fail).
    let out = s.run(
        &["--profile", &args_profile(&s, "read-only", false)],
        &["cat", &link_arg],
    );
    assert_eq!(ok(&out), "secret\n");
}

#[test]
fn a_named_directory_holding_the_home_is_left_out() {
    let s = Scratch::new();
    std::fs::write(s.home().join("private"), "p").unwrap();
    s.chown_all();
    let home = s.home().display().to_string();
    let out = s
        .hutch(&[
            "run",
            "--profile",
            &args_profile(&s, "read-only", true),
            "--explain",
            "--",
            "ls",
            &home,
        ])
        .output()
        .unwrap();
    let text = ok(&out);
    assert!(text.contains("skipped: argument 1"), "{text}");
    assert!(text.contains("is your home directory"), "{text}");
    assert!(!text.contains(&format!("bind     {home} ←")), "{text}");
}

#[test]
fn named_files_are_shown_by_explain() {
    let s = Scratch::new();
    let other = elsewhere();
    let f = other.path().join("x.json");
    std::fs::write(&f, "{}").unwrap();
    s.chown_all();
    let arg = f.display().to_string();
    let out = ok(&s
        .hutch(&["run", "--profile", "jq", "--explain", "--", "jq", ".", &arg])
        .output()
        .unwrap());
    assert!(
        out.contains(&format!("bind     {arg} ← {arg} (ro,")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "from argument 2 ({arg}); file_arguments at builtin:base/reads-cwd"
        )),
        "{out}"
    );
}

#[test]
fn doctor_judges_the_profiles_wherever_it_is_run() {
    let s = Scratch::new();
    let out = s.hutch(&["doctor"]).current_dir(s.home()).output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("profile cli"), "{text}");
    assert!(!text.contains("would refuse to run"), "{text}");
}

/// A unix socket server of the host's in the working directory: what a
/// client connects to there. The server answers every connection with
/// `hello-from-host`; killed when the guard drops.
fn socket_server(s: &Scratch, rel: &str) -> (std::process::Child, KillOnDrop) {
    let script = "import socket, sys\n\
                  s = socket.socket(socket.AF_UNIX)\n\
                  s.bind(sys.argv[1])\n\
                  s.listen(16)\n\
                  print('ready', flush=True)\n\
                  while True:\n    c, _ = s.accept()\n    c.sendall(b'hello-from-host')\n    c.close()\n";
    let mut child = s
        .as_user(Path::new("/usr/bin/python3"))
        .args(["-c", script, rel])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(child.id());
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready");
    (child, guard)
}

/// Connects to each socket named and prints what it got or the error.
const CONNECT: &str = "import errno, socket, sys\n\
                       for p in sys.argv[1:]:\n    \
                       s = socket.socket(socket.AF_UNIX)\n    \
                       try:\n        s.connect(p); print(p, s.recv(100).decode())\n    \
                       except OSError as e:\n        print(p, errno.errorcode.get(e.errno, e))\n";

/// connect() checks only write permission on a socket's inode, so a
/// read-only bind of the working directory does not stop a program from
/// talking to a server listening there (a language server, git's fsmonitor
/// daemon in .git): hutch masks every socket it finds under the bound
/// working directory, at any depth, in `default` (read-only) and `cli`
/// (read-write) alike, and `--explain` lists the masks. Controls: the same
/// client outside the sandbox gets the server's answer, and so does one
/// inside when the socket is bound on purpose (`--bind`), so the probe
/// works in a sandbox and the mask is what refuses it.
#[test]
fn sockets_in_the_working_directory_are_masked_whatever_the_bind() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path().join("repo/.git")).unwrap();
    s.chown_all();
    let (_top, _g1) = socket_server(&s, "ls.sock");
    let (_deep, _g2) = socket_server(&s, "repo/.git/fsmonitor--daemon.ipc");
    let top = s.path().join("ls.sock").display().to_string();
    let deep = s
        .path()
        .join("repo/.git/fsmonitor--daemon.ipc")
        .display()
        .to_string();
    let client = ["python3", "-c", CONNECT, &top, &deep];
    for profile in ["default", "cli"] {
        let out = ok(&s.run(&["--profile", profile], &client));
        assert_eq!(
            out,
            format!("{top} ECONNREFUSED\n{deep} ECONNREFUSED\n"),
            "{profile}"
        );
    }
    let explain = ok(&s.run(&["--explain"], &client));
    assert!(
        explain.contains(&format!("{top} ← /dev/null"))
            && explain.contains("a unix socket in the working directory"),
        "{explain}"
    );
    // The controls.
    let outside = s
        .as_user(Path::new("/usr/bin/python3"))
        .args(&client[1..])
        .output()
        .unwrap();
    assert_eq!(
        ok(&outside),
        format!("{top} hello-from-host\n{deep} hello-from-host\n")
    );
    let out = ok(&s.run(&["--bind", &top], &client));
    assert_eq!(out, format!("{top} hello-from-host\n{deep} ECONNREFUSED\n"));
    // Naming a socket on the command line does not grant it either: the
    // python3 profile binds the files its arguments name, not a socket
    // (here one outside the working directory), and -v says so.
    let other = elsewhere();
    give(other.path());
    let agent = other.path().join("agent.sock").display().to_string();
    let (_agent, _g3) = socket_server(&s, &agent);
    let o = s.run(&["-v"], &["python3", "-c", CONNECT, &agent]);
    assert_eq!(ok(&o), format!("{agent} ENOENT\n"));
    assert!(
        stderr(&o).contains("is a unix socket, which file_arguments does not bind"),
        "{}",
        stderr(&o)
    );
    let outside = s
        .as_user(Path::new("/usr/bin/python3"))
        .args(["-c", CONNECT, &agent])
        .output()
        .unwrap();
    assert_eq!(ok(&outside), format!("{agent} hello-from-host\n"));
}

/// The lines of hutch's note about a temporary home in `o`'s stderr.
fn home_notes(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.starts_with("hutch: the home directory"))
        .map(String::from)
        .collect()
}

/// `cli`'s home is a tmpfs: what a program writes there is gone at exit,
/// and hutch says so once, at exit, naming it; a run that wrote nothing
/// there says nothing, even started from a project inside the home (its
/// mount point is the plan's, not a write). The control: the files are
/// indeed gone from the home of the next run.
#[test]
fn a_temporary_home_names_what_was_lost_once_and_only_when_written() {
    let s = Scratch::new();
    let project = s.home().join("project");
    std::fs::create_dir_all(&project).unwrap();
    s.chown_all();
    let run = |pre: &[&str], script: &str| {
        let mut args = vec!["run"];
        args.extend_from_slice(pre);
        args.extend_from_slice(&["--", "sh", "-c", script]);
        s.hutch(&args).current_dir(&project).output().unwrap()
    };
    let quiet = run(
        &["--profile", "cli"],
        "cat /etc/hostname; ls -A ~ > /dev/null",
    );
    ok(&quiet);
    assert_eq!(
        home_notes(&quiet),
        Vec::<String>::new(),
        "{}",
        stderr(&quiet)
    );
    let wrote = run(
        &["--profile", "cli"],
        "echo '[user]' > ~/.gitconfig && mkdir -p ~/.cache/tool && echo x > ~/.cache/tool/state",
    );
    ok(&wrote);
    let notes = home_notes(&wrote);
    assert_eq!(notes.len(), 1, "{}", stderr(&wrote));
    assert!(
        notes[0].contains(&format!("{} was temporary", s.home().display()))
            && notes[0].contains("~/.gitconfig")
            && notes[0].contains("~/.cache")
            && !notes[0].contains("~/project"),
        "{}",
        notes[0]
    );
    let after = run(&["--profile", "cli"], "ls -A ~");
    assert_eq!(ok(&after), "project\n");
    assert_eq!(home_notes(&after), Vec::<String>::new());
}

/// A volume in the home keeps what is written in it, which is not noted;
/// a write beside it is. `home_note = false` silences the note; names are
/// shown without their control bytes, and past 10 the rest is counted.
#[test]
fn a_temporary_home_note_skips_volumes_escapes_names_and_can_be_silenced() {
    let s = Scratch::new();
    let with_volume = s.write(
        "vol.toml",
        "version = 1\nextends = [\"cli\"]\n[volumes.note-cache]\ndst = \"~/.cache/tool\"\n",
    );
    let silenced = s.write(
        "quiet.toml",
        "version = 1\nextends = [\"cli\"]\nhome_note = false\n",
    );
    let run = |profile: &std::path::Path, script: &str| {
        s.run(
            &["--profile", profile.to_str().unwrap()],
            &["sh", "-c", script],
        )
    };
    let o = run(&with_volume, "echo kept > ~/.cache/tool/state");
    ok(&o);
    assert_eq!(home_notes(&o), Vec::<String>::new(), "{}", stderr(&o));
    let o = run(
        &with_volume,
        "cat ~/.cache/tool/state; echo x > ~/.cache/other",
    );
    assert_eq!(ok(&o), "kept\n");
    let notes = home_notes(&o);
    assert_eq!(notes.len(), 1, "{}", stderr(&o));
    assert!(
        notes[0].contains(": ~/.cache/other;") && !notes[0].contains("tool"),
        "{}",
        notes[0]
    );

    let o = run(&silenced, "echo x > ~/.gitconfig");
    ok(&o);
    assert_eq!(home_notes(&o), Vec::<String>::new(), "{}", stderr(&o));

    let cli = std::path::Path::new("cli");
    let o = run(cli, "touch ~/\"$(printf 'a\\033[31mb')\"");
    ok(&o);
    let notes = home_notes(&o);
    assert!(notes[0].contains(": ~/a?[31mb;"), "{notes:?}");
    assert!(!stderr(&o).contains('\u{1b}'));
    let o = run(cli, "for i in $(seq 12); do touch ~/f$i; done");
    ok(&o);
    let notes = home_notes(&o);
    assert_eq!(notes[0].matches("~/f").count(), 10, "{}", notes[0]);
    assert!(notes[0].contains(" and 2 more;"), "{}", notes[0]);
}

/// Past the walk's bound (4,096 entries, shallowest first), a socket deeper
/// in the tree is still masked when a program of the host's network
/// namespace listens on it by absolute path (/proc/net/unix), and `-v`
/// says where the walk stopped. The control: the client outside connects.
#[test]
fn a_socket_beyond_the_walks_bound_is_masked_from_proc_net_unix() {
    let s = Scratch::new();
    for i in 0..5000 {
        std::fs::write(s.path().join(format!("f{i}")), "").unwrap();
    }
    std::fs::create_dir_all(s.path().join("deep/er")).unwrap();
    s.chown_all();
    let sock = s.path().join("deep/er/srv.sock").display().to_string();
    let (_srv, _g) = socket_server(&s, &sock);
    let o = s.run(&["-v"], &["python3", "-c", CONNECT, &sock]);
    assert_eq!(ok(&o), format!("{sock} ECONNREFUSED\n"));
    assert!(
        stderr(&o).contains("the walk for them stopped after 4096 entries"),
        "{}",
        stderr(&o)
    );
    let outside = s
        .as_user(Path::new("/usr/bin/python3"))
        .args(["-c", CONNECT, &sock])
        .output()
        .unwrap();
    assert_eq!(ok(&outside), format!("{sock} hello-from-host\n"));
}
