//! `[desktop]` on a kernel without Landlock's abstract-socket scoping (the
//! Debian 12 guest of tests/vm, Linux 6.1): a display grant for a sandbox
//! that shares the host's network namespace is refused with one error
//! naming the kernel feature (so is a filtered D-Bus bus, which the app
//! could reach around the proxy), while the same grant in the sandbox's own
//! network namespace runs, and so does the host's network namespace
//! without a display (tests/desktop_vm/guest.sh). This machine's kernel
//! has the scoping; tests/desktop.rs checks what it gives there.
//!
//! Runs only as root (qemu's passthrough share and the image build need
//! it; CI is root). Where no VM can run, run-guest.sh exits 77 with a
//! `SKIP:` line, which this test prints and passes on; any other outcome
//! must be a full pass.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

const CHECKS: &[&str] = &[
    "refused",
    "refused-wayland",
    "refused-dbus",
    "own-netns",
    "no-display",
];

#[test]
fn a_display_with_the_hosts_network_namespace_is_refused_on_linux_6_1() {
    if !nix::unistd::geteuid().is_root() {
        visible(
            "SKIP: the VM tests run only as root (qemu's passthrough share and the image build need it)",
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let share = tempfile::Builder::new()
        .prefix("hutch-desktop-vm-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(share.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = |from: &Path, name: &str, mode: u32| {
        let to = share.path().join(name);
        std::fs::copy(from, &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    copy(Path::new(env!("CARGO_BIN_EXE_hutch")), "hutch", 0o755);
    copy(&root.join("tests/desktop_vm/guest.sh"), "guest.sh", 0o755);
    for e in std::fs::read_dir(root.join("tests/desktop_vm/profiles")).unwrap() {
        let e = e.unwrap();
        copy(&e.path(), e.file_name().to_str().unwrap(), 0o644);
    }
    let out = Command::new(root.join("tests/vm/run-guest.sh"))
        .args(["--timeout", "240", "--share"])
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
    visible(&format!("guest output:\n{stdout}"));
    assert!(
        out.status.success(),
        "the guest reported failures (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("kernel 6.1.")),
        "the guest runs Linux 6.1:\n{stdout}"
    );
    for check in CHECKS {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("PASS {check}: "))),
            "no PASS line for `{check}`:\n{stdout}\n{stderr}"
        );
    }
    assert!(stdout.lines().any(|l| l == "DONE failures=0"), "{stdout}");
}

/// Writes to stderr past libtest's capture, so a skip or the guest's
/// report shows in a passing run.
fn visible(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}
