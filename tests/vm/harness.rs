//! What the qemu guest tests (cgroup_vm, desktop_vm, package_vm) share:
//! a share directory the guest's tester can read, one boot of the guest
//! of tests/vm running a script from it, and the reading of the script's
//! `PASS NAME: ...` / `DONE ... failures=0` report.
// Each test binary uses its own part of it.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Writes to stderr past libtest's capture (which covers only the print
/// macros), so a skip or the guest's report shows in a passing run.
pub fn visible(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Whether the VM tests can run here; prints why not. They run only as
/// root: qemu's passthrough share and the image build need it.
pub fn runs_here() -> bool {
    if !nix::unistd::geteuid().is_root() {
        visible(
            "SKIP: the VM tests run only as root (qemu's passthrough share and the image build need it)",
        );
        return false;
    }
    true
}

/// A directory for the guest (mode 0755: its tester reads it).
pub struct Share(tempfile::TempDir);

impl Share {
    pub fn new(prefix: &str) -> Share {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Share(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Copies `from` in as `name` with `mode`.
    pub fn copy(&self, from: &Path, name: &str, mode: u32) {
        let to = self.path().join(name);
        std::fs::copy(from, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// The hutch under test, the guest script `tests/NAME/guest.sh` and
    /// every file of `tests/NAME/profiles` (if there is one).
    pub fn with_test_files(self, name: &str) -> Share {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        self.copy(Path::new(env!("CARGO_BIN_EXE_hutch")), "hutch", 0o755);
        self.copy(
            &root.join(format!("tests/{name}/guest.sh")),
            "guest.sh",
            0o755,
        );
        if let Ok(entries) = std::fs::read_dir(root.join(format!("tests/{name}/profiles"))) {
            for e in entries {
                let e = e.unwrap();
                self.copy(&e.path(), e.file_name().to_str().unwrap(), 0o644);
            }
        }
        self
    }
}

/// What the guest script printed.
pub struct Guest {
    pub stdout: String,
    pub stderr: String,
}

/// Boots the guest with `share` and runs its guest.sh (as root with
/// `as_root`, else as the tester) within `timeout_secs`. `None` when no
/// VM can run here (run-guest.sh's exit 77, whose `SKIP:` line is
/// printed); otherwise the script must have succeeded.
pub fn run_guest(share: &Share, as_root: bool, timeout_secs: u32) -> Option<Guest> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(root.join("tests/vm/run-guest.sh"));
    if as_root {
        cmd.arg("--as-root");
    }
    let out = cmd
        .args(["--timeout", &timeout_secs.to_string(), "--share"])
        .arg(share.path())
        .args(["--", "guest.sh"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let guest = Guest {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if out.status.code() == Some(77) {
        let reason = guest
            .stdout
            .lines()
            .find(|l| l.starts_with("SKIP: "))
            .unwrap_or_else(|| {
                panic!(
                    "run-guest.sh exited 77 without a SKIP line:\n{}\n{}",
                    guest.stdout, guest.stderr
                )
            });
        visible(reason);
        return None;
    }
    visible(&format!("guest output:\n{}", guest.stdout));
    assert!(
        out.status.success(),
        "the guest reported failures (exit {:?}):\n{}\n{}",
        out.status.code(),
        guest.stdout,
        guest.stderr
    );
    Some(guest)
}

impl Guest {
    /// Every check printed a `PASS CHECK: ` line, none a `FAIL `, and
    /// every part of the script its `DONE ... failures=0` line.
    #[track_caller]
    pub fn assert_passed(&self, checks: &[&str], done: &[&str]) {
        let out = &self.stdout;
        assert!(!out.lines().any(|l| l.starts_with("FAIL ")), "{out}");
        for check in checks {
            assert!(
                out.lines()
                    .any(|l| l.starts_with(&format!("PASS {check}: "))),
                "no PASS line for `{check}`:\n{out}\n{}",
                self.stderr
            );
        }
        for line in done {
            assert!(out.lines().any(|l| l == *line), "no `{line}`:\n{out}");
        }
    }
}
