//! Escape attempts, as an attacker inside the sandbox would make them. Each
//! test also runs the same probe without the protection (outside the sandbox,
//! or with the protection turned off in the profile) and checks it succeeds
//! there, so that removing the protection makes the test fail.
//!
//! The probes are a small C program (tests/probes/escape.c) compiled once per
//! test run; sandboxes run as the unprivileged test user.

mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::*;

/// The compiled probe, or why it could not be built.
fn probe_binary() -> Result<&'static Path, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hutch-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = dir.join("escape");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probes/escape.c");
        let status = Command::new("cc")
            .args(["-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .map_err(|e| format!("cannot run cc: {e} (install gcc)"))?;
        if !status.success() {
            return Err("cc failed to build tests/probes/escape.c".into());
        }
        Ok(out)
    })
    .as_deref()
    .map_err(Clone::clone)
}

/// A scratch dir (the cli profile's working directory) holding the probe.
fn setup() -> Option<Scratch> {
    let bin = match probe_binary() {
        Ok(b) => b,
        Err(e) => {
            skip(&e);
            return None;
        }
    };
    let s = Scratch::new();
    let dst = s.path().join("escape");
    std::fs::copy(bin, &dst).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.chown_all();
    Some(s)
}

/// The probe's answer inside a sandbox with `profile` (a TOML body that
/// extends `cli`, or "" for `cli` itself).
fn inside(s: &Scratch, profile: &str, args: &[&str]) -> String {
    let mut cmd_args: Vec<&str> = vec!["./escape"];
    cmd_args.extend_from_slice(args);
    let out = if profile.is_empty() {
        s.run(&["--profile", "cli"], &cmd_args)
    } else {
        let p = s.write(
            "probe-profile.toml",
            &format!("version = 1\nextends = [\"cli\"]\n{profile}"),
        );
        s.run(&["--profile", p.to_str().unwrap()], &cmd_args)
    };
    ok(&out).trim().to_string()
}

/// The probe's answer run directly by the test user, without hutch.
fn outside(s: &Scratch, wrapper: &[&str], args: &[&str]) -> String {
    let mut cmd = if wrapper.is_empty() {
        s.as_user(&s.path().join("escape"))
    } else {
        let mut c = s.as_user(Path::new(wrapper[0]));
        c.args(&wrapper[1..]).arg(s.path().join("escape"));
        c
    };
    let out = cmd.args(args).output().unwrap();
    ok(&out).trim().to_string()
}

#[test]
fn dangerous_system_calls_are_denied() {
    let Some(s) = setup() else { return };
    for call in ["keyctl", "bpf", "perf", "userfaultfd", "open_by_handle_at"] {
        let without = outside(&s, &[], &[call]);
        assert_ne!(
            without, "errno EPERM",
            "probe {call}: the kernel itself must answer differently"
        );
        assert_eq!(inside(&s, "", &[call]), "errno EPERM", "{call}");
        // Logging instead of denying shows the filter is what answers EPERM.
        assert_eq!(
            inside(&s, "[seccomp]\naction = \"log\"\n", &[call]),
            without,
            "{call} with the filter in log mode"
        );
    }
}

#[test]
fn x32_system_calls_are_denied() {
    let Some(s) = setup() else { return };
    let without = outside(&s, &[], &["x32"]);
    assert!(
        without == "errno ENOSYS" || without == "ok",
        "probe: without the filter the kernel runs or rejects it itself: {without}"
    );
    assert_eq!(inside(&s, "", &["x32"]), "errno EPERM");
}

#[test]
fn nested_user_namespaces_are_denied_unless_allowed() {
    let Some(s) = setup() else { return };
    assert_eq!(
        outside(&s, &[], &["userns"]),
        "ok",
        "probe: the user may create one"
    );
    assert_eq!(inside(&s, "", &["userns"]), "errno EPERM");
    assert_eq!(
        inside(&s, "", &["clone3"]),
        "errno ENOSYS",
        "clone3 falls back to a checked clone"
    );
    assert_eq!(
        inside(&s, "[seccomp]\nnested_userns = true\n", &["userns"]),
        "ok",
        "a profile may allow nested sandboxes"
    );
}

#[test]
fn mounting_is_refused() {
    let Some(s) = setup() else { return };
    assert_eq!(
        outside(&s, &["unshare", "-Urm", "--"], &["mount", "/tmp"]),
        "ok",
        "probe: an unprivileged user can mount inside a user namespace of its own"
    );
    assert_eq!(inside(&s, "", &["mount", "/tmp"]), "errno EPERM");
    assert_eq!(inside(&s, "", &["umount", "/proc"]), "errno EPERM");
    // Root inside the sandbox does not change that.
    assert_eq!(
        inside(&s, "identity = \"root\"\n", &["mount", "/tmp"]),
        "errno EPERM"
    );
}

#[test]
fn ptrace_of_a_process_outside_is_refused() {
    let Some(s) = setup() else { return };
    // A process of the same user outside the sandbox; the sandbox shares the
    // host's pid namespace so that it can see it at all.
    let (mut target, _guard) = host_sleeper(&s);
    let pid = target.id().to_string();
    assert_eq!(
        outside(&s, &[], &["ptrace", &pid]),
        "ok",
        "probe: same-user ptrace works bare"
    );
    let shared = "[namespaces]\npid = false\n";
    assert_eq!(inside(&s, shared, &["ptrace", &pid]), "errno EPERM");
    // Layer by layer: the seccomp filter refuses ptrace altogether (even of a
    // sibling inside the sandbox); without it and Landlock, a sibling can be
    // traced (the probe works), but a process outside still cannot: it
    // lives in another user namespace.
    let sibling = |profile: &str| {
        let p = s.write(
            "sib.toml",
            &format!("version = 1\nextends = [\"cli\"]\n{profile}"),
        );
        ok(&s.run(
            &["--profile", p.to_str().unwrap()],
            &["sh", "-c", "sleep 5 & ./escape ptrace $!; kill $!"],
        ))
        .trim()
        .to_string()
    };
    assert_eq!(sibling(""), "errno EPERM");
    let open = "[seccomp]\nallow = [\"ptrace\"]\n[landlock]\nfs = \"off\"\nscope = \"off\"\n";
    assert_eq!(
        sibling(open),
        "ok",
        "probe: ptrace works inside without the filter"
    );
    assert_eq!(
        inside(&s, &format!("{shared}{open}"), &["ptrace", &pid]),
        "errno EPERM"
    );
    target.kill().unwrap();
    let _ = target.wait();
}

#[test]
fn a_setuid_root_binary_does_not_raise_privileges() {
    let Some(s) = setup() else { return };
    if !is_root() {
        skip("making a setuid-root binary for this test needs root");
        return;
    }
    let suid = s.path().join("escape-suid");
    std::fs::copy(s.path().join("escape"), &suid).unwrap();
    nix::unistd::chown(&suid, Some(0.into()), Some(0.into())).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let out = ok(&s.as_user(&suid).arg("euid").output().unwrap());
    assert_eq!(
        out.trim(),
        "0",
        "probe: setuid root works outside the sandbox"
    );
    let out = ok(&s.run(&["--profile", "cli"], &["./escape-suid", "euid"]));
    assert_eq!(out.trim(), test_uid().to_string());
}

#[test]
fn proc_sys_is_read_only_and_sensitive_entries_are_masked() {
    let Some(s) = setup() else { return };
    let file = "/proc/sys/net/ipv4/ping_group_range";
    // Root of a user namespace owns its network namespace's sysctls.
    assert_eq!(
        outside(&s, &["unshare", "-Urn", "--"], &["write", file, "0 0"]),
        "ok",
        "probe: writable in a bare user+net namespace"
    );
    assert_eq!(
        inside(&s, "identity = \"root\"\n", &["write", file, "0 0"]),
        "errno EROFS"
    );
    let out = ok(&s.sh("cat /proc/self/mountinfo"));
    for entry in ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"] {
        if !Path::new(entry).exists() {
            continue;
        }
        let line = out
            .lines()
            .find(|l| l.contains(&format!(" {entry} ")))
            .unwrap_or_else(|| panic!("{entry} is not a mount point:\n{out}"));
        assert!(
            line.split_whitespace().nth(5).unwrap().starts_with("ro"),
            "{line}"
        );
    }
    for entry in ["/proc/keys", "/proc/timer_list"] {
        if Path::new(entry).exists() {
            assert!(
                out.contains(&format!(" {entry} ")),
                "{entry} is not masked:\n{out}"
            );
        }
    }
    assert_eq!(ok(&s.sh("wc -c < /proc/keys")).trim(), "0");
}

#[test]
fn sys_is_absent_unless_bound() {
    let Some(s) = setup() else { return };
    let out = ok(&s.sh("test -e /sys && echo PRESENT; true"));
    assert_eq!(out, "");
    let p = s.write(
        "sys.toml",
        "version = 1\nextends = [\"cli\"]\n[[mount]]\ntype = \"ro-bind\"\nsrc = \"/sys\"\ndst = \"/sys\"\n",
    );
    let out = ok(&s.run(
        &["--profile", p.to_str().unwrap()],
        &["sh", "-c", "test -d /sys/kernel && echo present; (echo x > /sys/kernel/test) 2>&1 | grep -o 'Read-only'"],
    ));
    assert_eq!(out, "present\nRead-only\n");
}

#[test]
fn landlock_denies_writes_the_mount_tree_would_allow() {
    let Some(s) = setup() else { return };
    let data = s.path().join("data");
    std::fs::create_dir_all(data.join("allowed")).unwrap();
    s.chown_all();
    let mounts = format!(
        "[[mount]]\ntype = \"bind\"\nsrc = \"{}\"\ndst = \"/data\"\n",
        data.display()
    );
    let confined = format!(
        "[landlock]\nfrom_mounts = false\nread = [\"/\"]\nwrite = [\"/data/allowed\", \"${{CWD}}\"]\n{mounts}"
    );
    assert_eq!(
        inside(&s, &confined, &["write", "/data/other", "x"]),
        "errno EACCES"
    );
    assert_eq!(
        inside(&s, &confined, &["write", "/data/allowed/f", "x"]),
        "ok"
    );
    let unconfined = format!("[landlock]\nfs = \"off\"\n{mounts}");
    assert_eq!(
        inside(&s, &unconfined, &["write", "/data/other", "x"]),
        "ok",
        "probe: the mount tree alone lets the write through"
    );
}

#[test]
fn landlock_limits_tcp_connections_to_allowed_ports() {
    let Some(s) = setup() else { return };
    if nix_landlock_abi() < 4 {
        skip("this kernel's Landlock has no TCP rules (ABI < 4)");
        return;
    }
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = (
        allowed.local_addr().unwrap().port().to_string(),
        other.local_addr().unwrap().port().to_string(),
    );
    assert_eq!(
        outside(&s, &[], &["connect", &b]),
        "ok",
        "probe: the port is reachable"
    );
    let profile = format!("[namespaces]\nnet = false\n[landlock]\ntcp_connect = [{a}]\n");
    assert_eq!(inside(&s, &profile, &["connect", &a]), "ok");
    assert_eq!(inside(&s, &profile, &["connect", &b]), "errno EACCES");
}

#[test]
fn host_abstract_sockets_are_unreachable_with_a_shared_network() {
    let Some(s) = setup() else { return };
    if nix_landlock_abi() < 6 {
        skip("this kernel's Landlock cannot scope abstract sockets (ABI < 6)");
        return;
    }
    use std::os::linux::net::SocketAddrExt;
    let name = format!("hutch-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    assert_eq!(
        outside(&s, &[], &["abstract", &name]),
        "ok",
        "probe: reachable bare"
    );
    let shared = "[namespaces]\nnet = false\n";
    assert_eq!(inside(&s, shared, &["abstract", &name]), "errno EPERM");
    assert_eq!(
        inside(
            &s,
            &format!("{shared}[landlock]\nscope = \"off\"\n"),
            &["abstract", &name]
        ),
        "ok",
        "without scoping the shared network exposes it"
    );
    // The default: a network namespace of its own, where it does not exist.
    assert_eq!(
        inside(&s, "[landlock]\nscope = \"off\"\n", &["abstract", &name]),
        "errno ECONNREFUSED"
    );
}

#[test]
fn signals_to_host_processes_are_refused() {
    let Some(s) = setup() else { return };
    if nix_landlock_abi() < 6 {
        skip("this kernel's Landlock cannot scope signals (ABI < 6)");
        return;
    }
    let (mut target, _guard) = host_sleeper(&s);
    let pid = target.id().to_string();
    assert_eq!(
        outside(&s, &[], &["kill", &pid]),
        "ok",
        "probe: same-user signals work bare"
    );
    let shared = "[namespaces]\npid = false\n";
    assert_eq!(inside(&s, shared, &["kill", &pid]), "errno EPERM");
    assert_eq!(
        inside(
            &s,
            &format!("{shared}[landlock]\nscope = \"off\"\n"),
            &["kill", &pid]
        ),
        "ok"
    );
    target.kill().unwrap();
    let _ = target.wait();
}

/// Runs `args` with a new pseudo-terminal as controlling terminal and stdio;
/// returns what was written to it.
fn on_pty(mut cmd: Command) -> String {
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave: OwnedFd = pty.slave;
    let fd = slave.as_raw_fd();
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave));
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "pre_exec and the async-signal-safe calls of its closure form one guarantee"
    )]
    // SAFETY: setsid and ioctl are async-signal-safe; they make the pty the
    // child's controlling terminal, as a terminal emulator would.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let _ = fd;
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let mut master = std::fs::File::from(pty.master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // EIO: every slave descriptor is closed.
            Err(_) => break,
        }
    }
    child.wait().unwrap();
    String::from_utf8_lossy(&out).replace('\r', "")
}

#[test]
fn typing_into_the_terminal_is_refused() {
    let Some(s) = setup() else { return };
    let mut bare = s.as_user(&s.path().join("escape"));
    bare.arg("tiocsti").stdin(Stdio::null());
    let out = on_pty(bare);
    assert!(
        out.trim_end().ends_with("ok"),
        "probe: TIOCSTI works on one's own terminal bare: {out:?}"
    );
    let p = s.write(
        "tty.toml",
        "version = 1\nextends = [\"cli\"]\nterminal = \"inherit\"\n",
    );
    for args in [&["tiocsti"][..], &["tiocsti", "hibits"], &["tioclinux"]] {
        let mut cmd = s.hutch(&["run", "--profile", p.to_str().unwrap(), "--", "./escape"]);
        cmd.args(args);
        let out = on_pty(cmd);
        assert_eq!(out.trim(), "errno EPERM", "{args:?}");
    }
    // The default for an interactive terminal keeps job control: the shell
    // stays in the caller's session (same session id as its terminal's).
    let probe_ctty = "(exec 3</dev/tty) 2>/dev/null && echo has-ctty || echo no-ctty";
    let cmd = s.hutch(&["run", "--profile", "cli", "--", "sh", "-c", probe_ctty]);
    assert_eq!(on_pty(cmd).trim(), "has-ctty");
    let cmd = s.hutch(&[
        "run",
        "--profile",
        p.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        probe_ctty,
    ]);
    assert_eq!(on_pty(cmd).trim(), "has-ctty");
    let none = s.write(
        "none.toml",
        "version = 1\nextends = [\"cli\"]\nterminal = \"none\"\n",
    );
    let cmd = s.hutch(&[
        "run",
        "--profile",
        none.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        probe_ctty,
    ]);
    assert_eq!(on_pty(cmd).trim(), "no-ctty");
}

/// Runs `cmd` on a new pseudo-terminal (its controlling terminal and
/// stdio) to its end; returns what it printed and what it left in the
/// terminal's input queue: what the caller's shell would read next.
fn on_pty_input_left(mut cmd: Command) -> (String, Vec<u8>) {
    use nix::sys::termios::{LocalFlags, SetArg, SpecialCharacterIndices, tcgetattr, tcsetattr};
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave: OwnedFd = pty.slave;
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()));
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "pre_exec and the async-signal-safe calls of its closure form one guarantee"
    )]
    // SAFETY: setsid and ioctl are async-signal-safe; they make the pty the
    // child's controlling terminal, as a terminal emulator would.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let _guard = KillOnDrop(child.id());
    drop(cmd);
    // This process keeps the slave open (to read its queue afterwards), so
    // the end is the program's exit, not end of file on the master.
    let master = std::fs::File::from(pty.master);
    let drain = |out: &mut Vec<u8>| {
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let mut buf = [0u8; 4096];
        // SAFETY: one valid pollfd.
        while unsafe { libc::poll(&mut pfd, 1, 50) } > 0 {
            match (&master).read(&mut buf) {
                Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
    };
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the program did not end"
        );
        drain(&mut out);
    }
    drain(&mut out);
    // Non-canonical and non-blocking: a partial line is readable too.
    let mut mode = tcgetattr(&slave).unwrap();
    mode.local_flags
        .remove(LocalFlags::ICANON | LocalFlags::ECHO);
    mode.control_chars[SpecialCharacterIndices::VMIN as usize] = 0;
    mode.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    tcsetattr(&slave, SetArg::TCSANOW, &mode).unwrap();
    let mut left = Vec::new();
    let _ = std::fs::File::from(slave).read_to_end(&mut left);
    (String::from_utf8_lossy(&out).replace('\r', ""), left)
}

/// With a terminal of its own (`terminal = "pty"`), the payload never holds
/// the caller's: even without the seccomp filter, what it pushes into its
/// terminal's input stays in the sandbox.
#[test]
fn a_terminal_of_its_own_cannot_type_into_the_callers() {
    let Some(s) = setup() else { return };
    // The negative control: on the caller's terminal, TIOCSTI queues
    // input that the caller's shell would read and run next.
    let mut bare = s.as_user(&s.path().join("escape"));
    bare.arg("tiocsti");
    let (out, left) = on_pty_input_left(bare);
    assert!(out.trim_end().ends_with("ok"), "{out:?}");
    assert_eq!(left, b"x");
    let unfiltered = s.write(
        "pty-unfiltered.toml",
        "version = 1\nextends = [\"cli\"]\nterminal = \"pty\"\n[seccomp]\ndefault = false\n",
    );
    let cmd = s.hutch(&[
        "run",
        "--profile",
        unfiltered.to_str().unwrap(),
        "--",
        "./escape",
        "tiocsti",
    ]);
    let (out, left) = on_pty_input_left(cmd);
    assert!(
        out.contains("ok"),
        "TIOCSTI works on its own terminal: {out:?}"
    );
    assert_eq!(left, b"", "nothing reached the caller's terminal");
    // The filter stays with a terminal of its own.
    let filtered = s.write(
        "pty.toml",
        "version = 1\nextends = [\"cli\"]\nterminal = \"pty\"\n",
    );
    for args in [&["tiocsti"][..], &["tioclinux"]] {
        let mut cmd = s.hutch(&[
            "run",
            "--profile",
            filtered.to_str().unwrap(),
            "--",
            "./escape",
        ]);
        cmd.args(args);
        let (out, left) = on_pty_input_left(cmd);
        assert_eq!(out.trim(), "errno EPERM", "{args:?}");
        assert_eq!(left, b"");
    }
}

#[test]
fn without_a_terminal_the_payload_gets_a_new_session() {
    let Some(s) = setup() else { return };
    // stdin is not a terminal here, so `auto` means a new session.
    let out = ok(&s.sh("ps -o sid= -p $$; echo $$"));
    let mut it = out.split_whitespace();
    let (sid, pid) = (it.next().unwrap(), it.next().unwrap());
    assert_eq!(sid, pid, "the payload leads its own session");
}

#[test]
fn doctor_really_tries_user_namespaces() {
    let Some(s) = setup() else { return };
    std::fs::copy(hutch_bin(), s.path().join("hutch")).unwrap();
    s.chown_all();
    // Inside a sandbox, creating a user namespace is denied: the doctor must
    // notice by trying, not by reading sysctls (which say it is allowed).
    let out = s.run(&["--profile", "cli"], &["./hutch", "doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l.starts_with("FAIL user namespaces")),
        "{text}"
    );
    let bare = ok(&s.hutch(&["doctor"]).output().unwrap());
    assert!(
        bare.lines().any(|l| l.starts_with("ok   user namespaces")),
        "{bare}"
    );
}

#[test]
fn verbose_runs_say_what_is_enforced() {
    let Some(s) = setup() else { return };
    let out = s.run(&["-v", "--profile", "cli"], &["true"]);
    let err = stderr(&out);
    assert!(
        err.contains("hutch: enforcing namespaces user,mount,pid,uts,ipc,net,cgroup; seccomp"),
        "{err}"
    );
    assert!(err.contains("capabilities none; no_new_privs"), "{err}");
}

/// Waits until `pid` runs `comm` (setpriv has exec'd it): before that it is
/// not dumpable and cannot be traced even bare.
/// A process of the test user outside any sandbox, running `sleep 30`: a
/// target for the ptrace and signal probes. Killed if the test fails.
fn host_sleeper(s: &Scratch) -> (std::process::Child, KillOnDrop) {
    let target = s
        .as_user(Path::new("/bin/sleep"))
        .arg("30")
        .spawn()
        .unwrap();
    let guard = KillOnDrop(target.id());
    wait_for_exec(target.id(), "sleep");
    (target, guard)
}

fn wait_for_exec(pid: u32, comm: &str) {
    let t = std::time::Instant::now();
    while std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim() != comm)
        .unwrap_or(true)
    {
        assert!(t.elapsed().as_secs() < 5, "{pid} never ran {comm}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn nix_landlock_abi() -> u32 {
    hutch::landlock::probe().abi()
}

#[test]
fn the_network_namespace_has_only_a_working_loopback() {
    let Some(s) = setup() else { return };
    assert_eq!(inside(&s, "", &["loopback"]), "ok", "lo is up inside");
    // With one CPU the namespace comes from the clone itself, not a helper.
    let mut one_cpu = s.as_user(Path::new("/usr/bin/taskset"));
    one_cpu.args(["-c", "0"]).arg(hutch_bin()).args([
        "run",
        "--profile",
        "cli",
        "--",
        "./escape",
        "loopback",
    ]);
    assert_eq!(
        ok(&one_cpu.output().unwrap()).trim(),
        "ok",
        "lo is up on one CPU too"
    );
    let out = ok(&s.sh("ls /sys/class/net 2>/dev/null || sed 1,2d /proc/net/dev | cut -d: -f1"));
    let ifaces: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(ifaces, ["lo"], "{out}");
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    let inner = ok(&s.sh("readlink /proc/self/ns/net"));
    assert_ne!(
        inner.trim(),
        host.to_str().unwrap(),
        "a namespace of its own"
    );
    let shared = ok(&s.run(
        &[
            "--profile",
            s.write(
                "shared.toml",
                "version = 1\nextends = [\"cli\"]\n[namespaces]\nnet = false\n",
            )
            .to_str()
            .unwrap(),
        ],
        &["readlink", "/proc/self/ns/net"],
    ));
    assert_eq!(
        shared.trim(),
        host.to_str().unwrap(),
        "probe: `net = false` shares the host's"
    );
}

/// How io_uring is probed on this kernel: a TCP connection that sends a
/// message (IORING_OP_SOCKET, Linux 5.19+), or else opening and reading a
/// file (IORING_OP_OPENAT2); and the deny list it gets around.
struct UringProbe {
    args: Vec<String>,
    deny: &'static str,
    /// The server the connection reaches (the network variant).
    server: Option<std::net::TcpListener>,
}

impl UringProbe {
    /// What the probe sent to the server since the last call: one string
    /// per connection made.
    fn received(&self) -> Vec<String> {
        let Some(server) = &self.server else {
            return Vec::new();
        };
        server.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        while let Ok((mut conn, _)) = server.accept() {
            conn.set_nonblocking(false).unwrap();
            conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut text = String::new();
            conn.read_to_string(&mut text).unwrap();
            got.push(text);
        }
        got
    }
}

/// io_uring performs socket, connect, send, openat... itself, so a filter
/// that denies those system calls never sees them: the finding was a TCP
/// connection made and data sent with `deny = ["socket", "connect"]`, even
/// with `action = "kill"`. The default filter denies io_uring (ENOSYS), a
/// profile's deny of a call io_uring can perform denies it too, also where
/// an earlier file allowed it, and only `allow = ["@io_uring"]` in the same
/// file (or a later one) lets it through, which `--explain` and `-v` then
/// say. Outside the sandbox, and inside with io_uring allowed, the probe
/// works: the controls.
#[test]
fn io_uring_does_not_get_around_the_filter() {
    let Some(s) = setup() else { return };
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port().to_string();
    let net = ["uring-send", &port, "sent-through-io_uring"];
    let bare = outside(&s, &[], &net);
    let mut probe = UringProbe {
        args: net.iter().map(|a| a.to_string()).collect(),
        deny: r#""socket", "connect""#,
        server: Some(server),
    };
    if bare.starts_with("unsupported") {
        // Before Linux 5.19: open and read a file instead.
        s.write("uring-target", "data");
        probe = UringProbe {
            args: vec!["uring-openat2".into(), "uring-target".into()],
            deny: r#""openat2""#,
            server: None,
        };
    } else if bare.starts_with("errno") {
        skip(&format!(
            "io_uring is not available to unprivileged users here ({bare}; see the sysctl kernel.io_uring_disabled)"
        ));
        return;
    }
    let args: Vec<&str> = probe.args.iter().map(String::as_str).collect();
    assert_eq!(outside(&s, &[], &args), "ok", "probe: io_uring works bare");
    let sent = if probe.server.is_some() {
        vec!["sent-through-io_uring".to_string()]
    } else {
        Vec::new()
    };
    assert_eq!(
        probe.received().len(),
        2 * sent.len(),
        "probe: data arrived"
    );
    let shared = "[namespaces]\nnet = false\n";
    let deny = probe.deny;

    // The default filter: io_uring itself is refused, as if the kernel
    // had none.
    assert_eq!(inside(&s, shared, &args), "errno ENOSYS");
    // No default filter, only the deny list: io_uring is denied with it.
    let deny_only = format!("{shared}[seccomp]\ndefault = false\ndeny = [{deny}]\n");
    assert_eq!(inside(&s, &deny_only, &args), "errno ENOSYS");
    assert!(probe.received().is_empty(), "nothing got through");
    // With `action = "kill"`, io_uring kills like the calls it would do.
    let kill = format!("{shared}[seccomp]\ndefault = false\naction = \"kill\"\ndeny = [{deny}]\n");
    let p = s.write(
        "uring-kill.toml",
        &format!("version = 1\nextends = [\"cli\"]\n{kill}"),
    );
    let mut cmd = vec!["./escape"];
    cmd.extend_from_slice(&args);
    let out = s.run(&["--profile", p.to_str().unwrap()], &cmd);
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGSYS),
        "{}",
        stderr(&out)
    );
    // An earlier file's allow does not cover a later file's deny.
    s.write(
        "uring-base.toml",
        &format!("version = 1\nextends = [\"cli\"]\n{shared}[seccomp]\nallow = [\"@io_uring\"]\n"),
    );
    let later = s.write(
        "uring-later.toml",
        &format!("version = 1\nextends = [\"uring-base.toml\"]\n[seccomp]\ndeny = [{deny}]\n"),
    );
    let out = ok(&s.run(&["--profile", later.to_str().unwrap()], &cmd));
    assert_eq!(out.trim(), "errno ENOSYS");
    assert!(probe.received().is_empty(), "nothing got through");

    // Controls: io_uring allowed, on its own and as the explicit opt-in
    // beside the deny list, which then does not bind it.
    let allowed = format!("{shared}[seccomp]\nallow = [\"@io_uring\"]\n");
    assert_eq!(inside(&s, &allowed, &args), "ok");
    assert_eq!(probe.received(), sent);
    let opted_in = format!("{allowed}deny = [{deny}]\n");
    assert_eq!(inside(&s, &opted_in, &args), "ok");
    assert_eq!(probe.received(), sent);
    let p = s.write(
        "uring-opt-in.toml",
        &format!("version = 1\nextends = [\"cli\"]\n{opted_in}"),
    );
    let p = p.to_str().unwrap();
    let said = format!(
        "not enforced: io_uring is allowed (`allow = [\"@io_uring\"]`) and can perform {} without those system calls",
        deny.replace('"', "")
    );
    let explained = ok(&s
        .hutch(&["run", "--profile", p, "--explain", "--", "true"])
        .output()
        .unwrap());
    assert!(explained.contains(&said), "{explained}");
    let out = s.run(&["-v", "--profile", p], &["true"]);
    assert!(
        stderr(&out).contains(&format!("hutch: {said}")),
        "{}",
        stderr(&out)
    );
}
