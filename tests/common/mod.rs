//! Shared helpers for integration tests: run the real `hutch` binary as an
//! unprivileged user, in a scratch directory that user owns.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Lines, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Output, Stdio};
use std::sync::OnceLock;

pub mod x11;

/// The uid/gid tests drop to when they run as root.
pub const NOBODY: u32 = 65534;

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The uid hutch runs as in these tests.
pub fn test_uid() -> u32 {
    if is_root() {
        NOBODY
    } else {
        nix::unistd::getuid().as_raw()
    }
}

/// A copy of the hutch binary that the unprivileged user can execute even
/// when the build directory is private to root.
pub fn hutch_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let built = PathBuf::from(env!("CARGO_BIN_EXE_hutch"));
        if !is_root() {
            return built;
        }
        // One copy per build, shared by every test process of it (named by
        // the binary's size and modification time), so that a test run
        // leaves one copy behind, not one per test binary.
        let meta = std::fs::metadata(&built).unwrap();
        let stamp = meta.modified().unwrap();
        let since = stamp.duration_since(std::time::UNIX_EPOCH).unwrap();
        let name = format!("hutch-test-bin-{}-{}", meta.len(), since.as_nanos());
        let dir = std::env::temp_dir().join(name);
        let copy = dir.join("hutch");
        if let Ok(m) = std::fs::symlink_metadata(&copy) {
            // Only a copy in a directory of root's that no one else can
            // write to (the name in /tmp is predictable). The file's owner
            // may have changed: tests/shim hard-links it into a scratch
            // directory that is then given to the test user.
            use std::os::unix::fs::MetadataExt;
            let parent = std::fs::symlink_metadata(&dir).unwrap();
            assert!(
                m.is_file() && parent.is_dir() && parent.uid() == 0 && parent.mode() & 0o022 == 0,
                "{} is not root's copy of hutch",
                copy.display()
            );
            return copy;
        }
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Copied by another process: a descriptor this (threaded) process
        // held open for writing would be inherited by whatever another test
        // thread forks meanwhile, and executing the copy would fail with
        // ETXTBSY ("Text file busy") until that child has exec'd. Copied
        // under a name of this process's and renamed into place, so that a
        // test process never runs a copy another one is still writing.
        let partial = dir.join(format!("hutch.{}", std::process::id()));
        let st = Command::new("cp")
            .arg("--")
            .arg(&built)
            .arg(&partial)
            .status()
            .unwrap();
        assert!(st.success(), "copying {} failed", built.display());
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&partial, &copy).unwrap();
        copy
    })
}

/// A scratch directory owned by the test user, the working directory of
/// the launcher; its HOME beside it (not inside: a working directory that
/// holds the home is one `cli` refuses), and a private runtime directory
/// (`XDG_RUNTIME_DIR`, where hutch records running sandboxes).
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub home: tempfile::TempDir,
    pub runtime: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("hutch-test-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let runtime = tempfile::Builder::new()
            .prefix("hutch-test-run-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let home = tempfile::Builder::new()
            .prefix("hutch-test-home-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = Scratch { dir, home, runtime };
        std::fs::create_dir_all(s.path().join("config")).unwrap();
        s.chown_all();
        s
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> PathBuf {
        self.home.path().to_path_buf()
    }

    /// `XDG_RUNTIME_DIR` of the launcher.
    pub fn runtime(&self) -> &Path {
        self.runtime.path()
    }

    /// Gives everything in the scratch dirs to the test user.
    pub fn chown_all(&self) {
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", &format!("{NOBODY}:{NOBODY}")])
                .arg(self.path())
                .arg(self.home.path())
                .arg(self.runtime())
                .status()
                .unwrap();
            assert!(st.success());
        }
    }

    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        self.chown_all();
        p
    }

    /// `PROGRAM` as the test user, in the scratch dir, with a clean,
    /// predictable environment.
    pub fn as_user(&self, program: &Path) -> Command {
        let mut cmd = if is_root() {
            let mut c = Command::new("setpriv");
            c.args([
                &format!("--reuid={NOBODY}"),
                &format!("--regid={NOBODY}"),
                "--clear-groups",
                "--",
            ]);
            c.arg(program);
            c
        } else {
            Command::new(program)
        };
        cmd.current_dir(self.path())
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .env("XDG_RUNTIME_DIR", self.runtime())
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        cmd
    }

    /// `hutch ARGS...` as the test user.
    pub fn hutch(&self, args: &[&str]) -> Command {
        let mut cmd = self.as_user(hutch_bin());
        cmd.args(args);
        cmd
    }

    /// Runs `hutch run [PRE...] -- COMMAND...` and collects its output.
    pub fn run(&self, pre: &[&str], command: &[&str]) -> Output {
        let mut args = vec!["run"];
        args.extend_from_slice(pre);
        args.push("--");
        args.extend_from_slice(command);
        self.hutch(&args).output().unwrap()
    }

    /// Starts `hutch run [PRE...] -- COMMAND...` with its stdin and stdout on
    /// pipes, and waits until the payload prints its first line, `ready`.
    pub fn start(&self, pre: &[&str], command: &[&str]) -> Running {
        let mut args = vec!["run"];
        args.extend_from_slice(pre);
        args.push("--");
        args.extend_from_slice(command);
        let mut child = self
            .hutch(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let guard = KillOnDrop(child.id());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        Running {
            child,
            lines,
            _guard: guard,
        }
    }

    /// `sh -c SCRIPT` in the `cli` profile.
    pub fn sh(&self, script: &str) -> Output {
        self.run(&["--profile", "cli"], &["sh", "-c", script])
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that `o` exited with `code` and said `needle` on stderr.
#[track_caller]
pub fn fails_with(o: &Output, code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} on stderr: {err}");
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "hutch failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

// ---- A second user: the attacker of cross-user tests ------------------------

/// The uid (and gid) of the attacker in cross-user tests: another
/// unprivileged user than the victim (`NOBODY`).
pub const ATTACKER: u32 = 65533;

/// Runs `sh -c SCRIPT` in `dir` as the attacker (needs root, to switch).
#[track_caller]
pub fn as_attacker(dir: &Path, script: &str) {
    let st = Command::new("setpriv")
        .args([
            &format!("--reuid={ATTACKER}"),
            &format!("--regid={ATTACKER}"),
            "--clear-groups",
            "--",
            "sh",
            "-c",
            script,
        ])
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .status()
        .unwrap();
    assert!(st.success(), "the attacker's script failed: {script}");
}

/// A directory every user may write to, with the sticky bit, owned by
/// root: a stand-in for /tmp (outside any `Scratch`, which tests give to
/// the victim).
pub fn shared_dir() -> tempfile::TempDir {
    let shared = tempfile::Builder::new()
        .prefix("hutch-test-shared-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    shared
}

/// Prints a skip notice that shows in a plain `cargo test` run: libtest
/// captures only the print macros, so this writes to the process's stderr
/// directly and a skipped test never looks like a silent pass.
pub fn skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
}

/// Kills a spawned launcher if a test fails half-way, so no sandbox outlives
/// the test run (hutch's init dies with it).
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0 as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// A launcher started by [`Scratch::start`]; killed if the test fails.
pub struct Running {
    pub child: std::process::Child,
    /// The payload's stdout, after `ready`.
    pub lines: Lines<BufReader<ChildStdout>>,
    _guard: KillOnDrop,
}

impl Running {
    /// Writes a line to the payload's stdin and closes it.
    pub fn release(&mut self) {
        writeln!(self.child.stdin.take().unwrap(), "go").unwrap();
    }
}

// ---- Running sandboxes (hutch ps / exec / stop) -----------------------------

/// Starts `hutch run --name NAME --profile PROFILE -- COMMAND...` in the
/// background, stdout piped; killed when the guard drops.
pub fn spawn_named(
    s: &Scratch,
    name: &str,
    profile: &str,
    command: &[&str],
) -> (std::process::Child, KillOnDrop) {
    let mut args = vec!["run", "--name", name, "--profile", profile, "--"];
    args.extend_from_slice(command);
    let child = s
        .hutch(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(child.id());
    (child, guard)
}

/// `hutch ps --json`, parsed.
pub fn ps_json(s: &Scratch) -> Vec<serde_json::Value> {
    let out = s.hutch(&["ps", "--json"]).output().unwrap();
    serde_json::from_str(&ok(&out)).unwrap()
}

/// Waits until `hutch ps` shows sandbox `name` running; returns its entry.
#[track_caller]
pub fn wait_running(s: &Scratch, name: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(e) = ps_json(s)
            .into_iter()
            .find(|e| e["name"] == name && e["state"] == "running")
        {
            return e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sandbox {name} did not show up as running in `hutch ps`"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits until `path` exists (a sandbox signalling it is ready).
#[track_caller]
pub fn wait_for_file(path: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether every program is installed; prints a SKIP notice if not.
pub fn installed(programs: &[&str]) -> bool {
    for p in programs {
        if !["/usr/bin", "/bin", "/usr/sbin"]
            .iter()
            .any(|d| Path::new(d).join(p).exists())
        {
            skip(&format!("{p} is not installed (.ci/run installs it)"));
            return false;
        }
    }
    true
}

/// A process of the test user, killed (and reaped) when dropped.
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A profile file in the scratch dir that extends `default`.
pub fn profile(s: &Scratch, name: &str, body: &str) -> String {
    s.write(
        &format!("{name}.toml"),
        &format!("version = 1\nextends = [\"default\"]\n{body}"),
    )
    .display()
    .to_string()
}
