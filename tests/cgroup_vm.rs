//! `[limits]` with a real systemd: one boot of the Debian guest of tests/vm
//! (systemd as PID 1, pure cgroup v2, a user session with cpu, memory and
//! pids delegated) runs tests/cgroup_vm/guest.sh, which checks as root the
//! systemd system manager and cgroup v2 written directly, and as user
//! `tester` the systemd user manager (OOM kill, fork limit, CPU quota,
//! cleanup, cgroup namespace, the "not delegated" error, best-effort, `hutch
//! doctor`) and a delegated cgroup v2 subtree; then, with the `Delegate=`
//! drop-in that error recommends, that `io_weight` is applied.
//!
//! Runs only as root (qemu's passthrough share and the image build need it;
//! CI is root). Where no VM can run, run-guest.sh exits 77 with a `SKIP:`
//! line, which this test prints and passes on; any other outcome must be a
//! full pass of every check.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Every check the guest must pass.
const CHECKS: &[&str] = &[
    "root-systemd-oom",
    "root-systemd-oom-cleanup",
    "root-v2-oom",
    "root-v2-oom-cleanup",
    "root-v2-pids",
    "explain",
    "doctor",
    "oom",
    "oom-cleanup",
    "units",
    "pids",
    "cpu",
    "cgroupns",
    "not-delegated",
    "best-effort",
    "delegated",
    "delegated-cleanup",
    "io-delegated",
];

#[test]
fn limits_in_a_systemd_guest() {
    if !nix::unistd::geteuid().is_root() {
        visible(
            "SKIP: the VM tests run only as root (qemu's passthrough share and the image build need it)",
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let share = tempfile::Builder::new()
        .prefix("hutch-cgroup-vm-")
        .tempdir()
        .unwrap();
    // The guest's tester (uid 1000) reads the share and runs the script.
    std::fs::set_permissions(share.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = |from: &Path, name: &str, mode: u32| {
        let to = share.path().join(name);
        std::fs::copy(from, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    copy(Path::new(env!("CARGO_BIN_EXE_hutch")), "hutch", 0o755);
    copy(&root.join("tests/cgroup_vm/guest.sh"), "guest.sh", 0o755);
    for e in std::fs::read_dir(root.join("tests/cgroup_vm/profiles")).unwrap() {
        let e = e.unwrap();
        copy(&e.path(), e.file_name().to_str().unwrap(), 0o644);
    }

    let started = Instant::now();
    let out = Command::new(root.join("tests/vm/run-guest.sh"))
        .args(["--as-root", "--timeout", "300", "--share"])
        .arg(share.path())
        .args(["--", "guest.sh"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(77) {
        let reason = stdout
            .lines()
            .find(|l| l.starts_with("SKIP: "))
            .unwrap_or_else(|| {
                panic!("run-guest.sh exited 77 without a SKIP line:\n{stdout}\n{stderr}")
            });
        visible(reason);
        return;
    }
    // The numbers (time to the OOM kill, forks, CPU share) go to CI's log.
    visible(&format!(
        "guest output ({:.1} s in all):\n{stdout}",
        started.elapsed().as_secs_f64()
    ));
    assert!(
        out.status.success(),
        "the guest reported failures (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    assert!(
        !stdout.contains("\nFAIL ") && !stdout.starts_with("FAIL "),
        "{stdout}"
    );
    for check in CHECKS {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("PASS {check}: "))),
            "no PASS line for `{check}`:\n{stdout}\n{stderr}"
        );
    }
    for done in [
        "DONE root failures=0",
        "DONE user failures=0",
        "DONE user-io failures=0",
    ] {
        assert!(stdout.lines().any(|l| l == done), "no `{done}`:\n{stdout}");
    }
}

/// Writes to stderr past libtest's capture (which covers only the print
/// macros), so a skip or the guest's measurements show in a passing run.
fn visible(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}
