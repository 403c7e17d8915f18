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

#[path = "vm/harness.rs"]
mod harness;

use std::time::Instant;

use harness::{Share, run_guest, runs_here, visible};

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
    if !runs_here() {
        return;
    }
    let share = Share::new("hutch-cgroup-vm-").with_test_files("cgroup_vm");
    let started = Instant::now();
    let Some(guest) = run_guest(&share, true, 300) else {
        return;
    };
    // The numbers (time to the OOM kill, forks, CPU share) are in the
    // guest's output, which goes to CI's log.
    visible(&format!("{:.1} s in all", started.elapsed().as_secs_f64()));
    guest.assert_passed(
        CHECKS,
        &[
            "DONE root failures=0",
            "DONE user failures=0",
            "DONE user-io failures=0",
        ],
    );
}
