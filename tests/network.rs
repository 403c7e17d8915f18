//! `[network]` end to end, as the unprivileged test user, with real pasta:
//! hutch runs inside an outer user+network+mount namespace the test makes
//! (tests/net/outer.sh), which plays the host; a second namespace behind a
//! veth pair plays "the internet" (TEST-NET addresses) and a "LAN" (a
//! private address). No packet leaves these namespaces.

mod common;

use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStdout, Output, Stdio};

use common::*;

/// The outer namespace, its servers started (see tests/net/outer.sh).
struct Outer {
    scratch: Scratch,
    child: Child,
    /// Its standard output: "done NAME STATUS" after each job.
    done: RefCell<BufReader<ChildStdout>>,
    jobs: Cell<u32>,
}

impl Outer {
    /// `None` (and a SKIP line) where pasta cannot run; CI has it.
    fn new() -> Option<Outer> {
        if let Some(why) = cannot_run_pasta() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI installs passt and opens /dev/net/tun: {why}"
            );
            skip(&why);
            return None;
        }
        let scratch = Scratch::new();
        for f in ["probe.py", "outer.sh"] {
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
    fn profile(&self, name: &str, network: &str) -> String {
        self.scratch.write(
            name,
            &format!("version = 1\nextends = [\"cli\"]\n[network]\n{network}\n"),
        );
        format!("./{name}")
    }

    /// A script for the sandbox, in the scratch directory (which the
    /// `cli` profile binds at the same path): `$PROBE` is set for it.
    fn file(&self, name: &str, script: &str) {
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
    /// outer namespace.
    fn sh(&self, script: &str) -> Output {
        let n = self.jobs.get() + 1;
        self.jobs.set(n);
        let job = format!("job{n}");
        self.scratch.write(
            &format!("{job}.sh"),
            &format!(
                "cd {dir}\nexport XDG_RUNTIME_DIR={run}\nHUTCH={hutch}\nPROBE='/usr/bin/python3 {dir}/probe.py'\n\
                 our_pastas() {{ me=$(readlink /proc/self/ns/net); for p in /proc/[0-9]*; do \
                   [ \"$(cat $p/comm 2>/dev/null)\" = pasta ] && [ \"$(readlink $p/ns/net 2>/dev/null)\" = \"$me\" ] && echo ${{p#/proc/}}; \
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
fn cannot_run_pasta() -> Option<String> {
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
fn field(out: &str, key: &str) -> String {
    let prefix = format!("{key}: ");
    out.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{key}:` in:\n{out}"))
        .to_string()
}

#[test]
fn user_mode_reaches_the_internet_over_tcp_udp_ipv6_and_dns() {
    let Some(outer) = Outer::new() else { return };
    let user = outer.profile("user.toml", "mode = \"user\"");
    let none = outer.profile("none.toml", "mode = \"none\"");
    outer.file(
        "inside.sh",
        "echo \"addr: $(ip -o -4 addr show scope global)\"\n\
         echo \"route: $(ip route show default)\"\n\
         echo \"tcp: $($PROBE tcp 203.0.113.10 8080)\"\n\
         echo \"udp: $($PROBE udp 203.0.113.10 8081)\"\n\
         echo \"tcp6: $($PROBE tcp 2001:db8:2::10 8080)\"\n\
         echo \"dns: $(getent hosts 203-0-113-10.hutch.test)\"\n\
         echo \"resolv: $(grep -v '^#' /etc/resolv.conf)\"\n",
    );
    let run = |profile: &str| outer.sh(&format!("$HUTCH run --profile {profile} -- sh inside.sh"));
    let o = run(&user);
    let out = ok(&o);
    assert!(field(&out, "addr").contains("198.51.100.2/24"), "{out}");
    assert!(
        field(&out, "route").contains("default via 198.51.100.1"),
        "{out}"
    );
    assert_eq!(field(&out, "tcp"), "hello-internet", "{out}");
    assert_eq!(field(&out, "udp"), "udp-internet", "{out}");
    assert_eq!(field(&out, "tcp6"), "hello-internet-v6", "{out}");
    assert!(field(&out, "dns").starts_with("203.0.113.10"), "{out}");
    // The generated resolv.conf names pasta's forwarder, not the host's resolver.
    assert_eq!(field(&out, "resolv"), "nameserver 169.254.1.1", "{out}");
    assert!(!stderr(&o).contains("syslog"), "{}", stderr(&o));

    // The negative control: without user mode, the same requests fail.
    let out = ok(&run(&none));
    assert_eq!(field(&out, "addr"), "", "{out}");
    assert_eq!(field(&out, "tcp"), "ENETUNREACH", "{out}");
    assert_eq!(field(&out, "dns"), "", "{out}");
}
