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

#[path = "vm/harness.rs"]
mod harness;

use harness::{Share, run_guest, runs_here};

const CHECKS: &[&str] = &[
    "refused",
    "refused-wayland",
    "refused-dbus",
    "own-netns",
    "no-display",
];

#[test]
fn a_display_with_the_hosts_network_namespace_is_refused_on_linux_6_1() {
    if !runs_here() {
        return;
    }
    let share = Share::new("hutch-desktop-vm-").with_test_files("desktop_vm");
    let Some(guest) = run_guest(&share, false, 240) else {
        return;
    };
    assert!(
        guest.stdout.lines().any(|l| l.starts_with("kernel 6.1.")),
        "the guest runs Linux 6.1:\n{}",
        guest.stdout
    );
    guest.assert_passed(CHECKS, &["DONE failures=0"]);
}
