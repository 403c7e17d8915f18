//! The outer namespace of the `[network]` tests (tests/network.rs,
//! tests/net_profiles.rs): hutch runs inside an outer user+network+mount
//! namespace the test makes (tests/net/outer.sh), which plays the host; a
//! second namespace behind a veth pair plays "the internet" (TEST-NET
//! addresses) and a "LAN" (a private address). No packet leaves these
//! namespaces.
// Each test file uses its own part of it.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStdout, Output, Stdio};

use crate::common::*;

/// The outer namespace, its servers started (see tests/net/outer.sh).
pub struct Outer {
    pub scratch: Scratch,
    child: Child,
    /// Its standard output: "done NAME STATUS" after each job.
    done: RefCell<BufReader<ChildStdout>>,
    jobs: Cell<u32>,
}

impl Outer {
    /// `None` (and a SKIP line) where pasta cannot run; CI has it.
    pub fn new() -> Option<Outer> {
        if let Some(why) = cannot_run_pasta() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs passt and opens /dev/net/tun: {why}"
            );
            skip(&why);
            return None;
        }
        let scratch = Scratch::new();
        for f in ["probe.py", "outer.sh", "packages.py"] {
            let text = std::fs::read_to_string(Path::new("tests/net").join(f)).unwrap();
            scratch.write(f, &text);
        }
        let mut cmd = scratch.as_user(Path::new("/usr/bin/unshare"));
        cmd.args(["-Urnm", "--propagation", "private", "sh", "outer.sh"])
            .arg(scratch.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        let mut done = BufReader::new(child.stdout.take().unwrap());
        done.read_line(&mut line).unwrap();
        if line.trim() != "ready" {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("outer namespace: {}", stderr(&out));
        }
        Some(Outer {
            scratch,
            child,
            done: RefCell::new(done),
            jobs: Cell::new(0),
        })
    }

    /// A profile in the scratch directory: the `cli` profile (the
    /// directory read-write) with `network`, the body of `[network]`.
    pub fn profile(&self, name: &str, network: &str) -> String {
        self.scratch.write(
            name,
            &format!("version = 1\nextends = [\"cli\"]\n[network]\n{network}\n"),
        );
        format!("./{name}")
    }

    /// A script for the sandbox, in the scratch directory (which the
    /// `cli` profile binds at the same path): `$PROBE` is set for it.
    pub fn file(&self, name: &str, script: &str) {
        self.scratch.write(
            name,
            &format!(
                "PROBE='/usr/bin/python3 {}/probe.py'\n{script}",
                self.scratch.path().display()
            ),
        );
    }

    /// `script` run by sh in the outer namespaces, as its root (the test
    /// user), in the scratch directory; `$HUTCH` is hutch, `$PROBE` the
    /// probe program, `our_pastas` lists the pasta processes of this
    /// outer namespace (Debian's runs as `passt.avx2`).
    pub fn sh(&self, script: &str) -> Output {
        let n = self.jobs.get() + 1;
        self.jobs.set(n);
        let job = format!("job{n}");
        self.scratch.write(
            &format!("{job}.sh"),
            &format!(
                "cd {dir}\nexport XDG_RUNTIME_DIR={run}\nHUTCH={hutch}\nPROBE='/usr/bin/python3 {dir}/probe.py'\n\
                 our_pastas() {{ me=$(readlink /proc/self/ns/net); for p in /proc/[0-9]*; do \
                   case \"$(cat $p/comm 2>/dev/null)\" in pasta*|passt*) ;; *) continue;; esac; [ \"$(readlink $p/ns/net 2>/dev/null)\" = \"$me\" ] && echo ${{p#/proc/}}; \
                 done; true; }}\n{script}\n",
                hutch = hutch_bin().display(),
                dir = self.scratch.path().display(),
                run = self.scratch.runtime().display(),
            ),
        );
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.scratch.path().join("jobs"))
            .and_then(|mut f| writeln!(f, "{job}"))
            .unwrap();
        let mut line = String::new();
        self.done.borrow_mut().read_line(&mut line).unwrap();
        let status: i32 = line
            .trim()
            .strip_prefix(&format!("done {job} "))
            .unwrap_or_else(|| panic!("outer namespace: {line:?}"))
            .parse()
            .unwrap();
        let read = |ext: &str| {
            std::fs::read(self.scratch.path().join(format!("{job}.{ext}"))).unwrap_or_default()
        };
        Output {
            status: std::process::ExitStatus::from_raw(status << 8),
            stdout: read("out"),
            stderr: read("err"),
        }
    }
}

impl Drop for Outer {
    fn drop(&mut self) {
        // Its servers and the "internet" holder share its process group.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

/// Why pasta cannot run here, if it cannot.
pub fn cannot_run_pasta() -> Option<String> {
    if !Path::new("/usr/bin/pasta").exists() {
        return Some("pasta is not installed (Debian package passt)".into());
    }
    if std::fs::metadata("/dev/net/tun")
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o006 != 0o006)
        .unwrap_or(true)
    {
        return Some("/dev/net/tun is not open to every user (no udev; .ci/run chmods it)".into());
    }
    None
}

/// The line of `out` that starts with `key: `, without it.
pub fn field(out: &str, key: &str) -> String {
    let prefix = format!("{key}: ");
    out.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{key}:` in:\n{out}"))
        .to_string()
}
