//! hutch's Debian package, installed into a clean Debian 12 system: the
//! guest of tests/vm (user namespaces cannot be created in a chroot). The
//! .deb is built from this checkout by `packaging/check-packages.sh
//! --deb-only` (which also runs lintian); tests/package_vm/guest.sh then,
//! as root, installs it with dpkg, has user `tester` run `hutch doctor` and
//! a sandbox, installs a second package that ships a profile in
//! /usr/share/hutch/profiles and an administrator's
//! /etc/hutch/profiles/NAME.local.toml, and checks that `apt-get remove`
//! keeps only the conffile and `apt-get purge` leaves the file system as it
//! was.
//!
//! Runs only as root (the VM harness and dpkg-buildpackage need it); where
//! no VM can run, run-guest.sh's `SKIP:` line is printed and the test
//! passes; where the packaging tools are missing, it says so and passes.

#[path = "vm/harness.rs"]
mod harness;

use std::path::Path;
use std::process::{Command, Stdio};

use harness::{Share, run_guest, visible};

const CHECKS: &[&str] = &[
    "install",
    "status",
    "files",
    "conffile",
    "doctor",
    "run",
    "shipped",
    "demo-install",
    "demo-listed",
    "demo-run",
    "override-run",
    "override-check",
    "remove",
    "removed-status",
    "remove-keeps-conffiles",
    "purge",
    "purge-leaves-nothing",
    "purged-status",
];

#[test]
fn the_deb_installs_runs_and_purges_cleanly_in_a_debian_guest() {
    if cfg!(target_env = "musl") {
        // The package does not depend on the target the tests were built
        // for; CI's glibc run installs it.
        return visible("SKIP: the package test runs in the glibc test run only");
    }
    if !nix::unistd::geteuid().is_root() {
        return visible(
            "SKIP: the package test runs only as root (dpkg-buildpackage and the VM need it)",
        );
    }
    for tool in ["dpkg-buildpackage", "dh", "lintian"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            return visible(&format!(
                "SKIP: {tool} is not installed (.ci/run installs dpkg-dev, debhelper, dh-apparmor, lintian)"
            ));
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let built = Command::new(root.join("packaging/check-packages.sh"))
        .arg("--deb-only")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&built.stdout);
    assert!(
        built.status.success(),
        "building the .deb failed:\n{log}\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let deb = std::fs::read_dir(root.join("target/packages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("check-packages.sh left no .deb");

    let share = Share::new("hutch-package-vm-");
    share.copy(&deb, deb.file_name().unwrap().to_str().unwrap(), 0o644);
    share.copy(&root.join("tests/package_vm/guest.sh"), "guest.sh", 0o755);
    let Some(guest) = run_guest(&share, true, 300) else {
        return;
    };
    guest.assert_passed(CHECKS, &["DONE failures=0"]);
}
