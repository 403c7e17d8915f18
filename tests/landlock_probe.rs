//! What hutch says about a kernel without Landlock: "not built in"
//! (`ENOSYS`) and "built in but not enabled at boot" (`EOPNOTSUPP`) are told
//! apart, by `hutch doctor`, by the warning of a best-effort launch and by
//! the refusal of a required one, each with what to do.
//!
//! This kernel has Landlock, so the test gives hutch the answers such
//! kernels give: hutch runs under a seccomp filter (loaded by libseccomp's
//! Python binding, which then executes hutch) that fails
//! `landlock_create_ruleset` with `ENOSYS` or `EOPNOTSUPP`. The control runs
//! the same commands without the filter and sees an ABI version.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Scratch, hutch_bin, skip, stderr, stdout};

const PYTHON: &str = "/usr/bin/python3";
/// Loads the filter, then executes argv[1:] (no_new_privs is set by
/// libseccomp, as an unprivileged filter needs).
const UNDER_FILTER: &str = "
import os, seccomp, sys
errno = int(sys.argv[1])
if errno:
    f = seccomp.SyscallFilter(seccomp.ALLOW)
    f.add_rule(seccomp.ERRNO(errno), 'landlock_create_ruleset')
    f.load()
os.execv(sys.argv[2], sys.argv[2:])
";
const ENOSYS: i32 = 38;
const EOPNOTSUPP: i32 = 95;

fn setup() -> Option<Scratch> {
    let usable = std::process::Command::new(PYTHON)
        .args(["-c", "import seccomp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !usable {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install python3-seccomp (see .ci/run)"
        );
        skip("no python3-seccomp to fake a kernel without Landlock");
        return None;
    }
    if hutch::landlock::probe().abi() == 0 {
        skip("this kernel has no Landlock: the control cannot run");
        return None;
    }
    Some(Scratch::new())
}

/// `hutch ARGS` as the test user, with `landlock_create_ruleset` failing
/// with `errno` (0: no filter).
fn hutch_seeing(s: &Scratch, errno: i32, args: &[&str]) -> Output {
    let mut cmd = s.as_user(Path::new(PYTHON));
    cmd.args(["-c", UNDER_FILTER, &errno.to_string()])
        .arg(hutch_bin())
        .args(args);
    cmd.output().unwrap()
}

fn doctor_line(s: &Scratch, errno: i32) -> String {
    let out = stdout(&hutch_seeing(s, errno, &["doctor"]));
    let mut lines = out.lines().skip_while(|l| !l.contains("landlock"));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no landlock line in:\n{out}"));
    // The fix follows on indented lines.
    let rest: Vec<&str> = lines.take_while(|l| l.starts_with(' ')).collect();
    format!("{first}\n{}", rest.join("\n"))
}

#[test]
fn doctor_tells_not_built_from_not_enabled() {
    let Some(s) = setup() else { return };
    let not_built = doctor_line(&s, ENOSYS);
    assert!(
        not_built.contains("not available: this kernel has no Landlock")
            && not_built.contains("CONFIG_SECURITY_LANDLOCK"),
        "{not_built}"
    );
    let disabled = doctor_line(&s, EOPNOTSUPP);
    assert!(
        disabled.contains("built into this kernel but was not enabled at boot")
            && disabled.contains("add `landlock` to the `lsm=` boot parameter"),
        "{disabled}"
    );
    let control = doctor_line(&s, 0);
    assert!(control.contains("ABI "), "{control}");
}

#[test]
fn launches_say_why_landlock_is_not_enforced() {
    let Some(s) = setup() else { return };
    let best_effort = s.write(
        "best-effort.toml",
        "version = 1\nextends = [\"cli\"]\n[landlock]\nfs = \"best-effort\"\n",
    );
    let run = |errno, profile: &Path| {
        hutch_seeing(
            &s,
            errno,
            &["run", "--profile", profile.to_str().unwrap(), "--", "true"],
        )
    };
    let out = run(EOPNOTSUPP, &best_effort);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "not enforced: filesystem rules (needs Linux 5.13+ with Landlock enabled): Landlock is built into this kernel but was not enabled at boot"
        ),
        "{}",
        stderr(&out)
    );
    // Required (cli's default): refused, naming the cause.
    let required = s.write("required.toml", "version = 1\nextends = [\"cli\"]\n");
    let out = run(ENOSYS, &required);
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("this kernel has no Landlock: it was built without CONFIG_SECURITY_LANDLOCK"),
        "{}",
        stderr(&out)
    );
    // Control: with Landlock answering, both run and nothing is reported.
    for profile in [&best_effort, &required] {
        let out = run(0, profile);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!stderr(&out).contains("not enforced"), "{}", stderr(&out));
    }
}
