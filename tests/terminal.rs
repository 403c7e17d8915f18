//! `terminal = "pty"`: the payload gets a pseudo-terminal of its own in the
//! sandbox's devpts, relayed by hutch, as `docker run -it` does. Every test
//! runs hutch (as the unprivileged test user) on a real pseudo-terminal the
//! test holds the master of, as a terminal emulator would, and types into it.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::pty::Winsize;
use nix::sys::signal::{Signal, kill};
use nix::sys::termios::{LocalFlags, Termios, tcgetattr};
use nix::unistd::Pid;

/// A profile like `cli`, with the payload's own terminal.
const PTY: &str = "version = 1\nextends = [\"cli\"]\nterminal = \"pty\"\n";

fn size(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Which standard stream of [`Term::start_with`] is a pipe.
#[derive(Clone, Copy)]
enum Piped {
    Nothing,
    Stdin,
    Stdout,
}

/// A program running on a new pseudo-terminal (its controlling terminal and
/// standard input, output and error), and what the terminal showed.
struct Term {
    master: File,
    child: Child,
    /// Output not yet consumed by `expect`.
    seen: Vec<u8>,
    _guard: KillOnDrop,
}

impl Term {
    fn start(cmd: Command) -> Term {
        Term::start_with(cmd, Piped::Nothing)
    }

    /// [`Term::start`], with standard output (`hutch run ... | less`) or
    /// input (`... | hutch run ...`) a pipe instead of the terminal.
    fn start_with(mut cmd: Command, piped: Piped) -> Term {
        let pty = nix::pty::openpty(Some(&size(24, 80)), None).unwrap();
        let slave: OwnedFd = pty.slave;
        let on_terminal = || Stdio::from(slave.try_clone().unwrap());
        let (stdin, stdout) = match piped {
            Piped::Nothing => (on_terminal(), on_terminal()),
            Piped::Stdin => (Stdio::piped(), on_terminal()),
            Piped::Stdout => (on_terminal(), Stdio::piped()),
        };
        cmd.stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::from(slave))
            .env("TERM", "dumb");
        #[allow(
            clippy::multiple_unsafe_ops_per_block,
            reason = "pre_exec and the async-signal-safe calls of its closure form one guarantee"
        )]
        // SAFETY: setsid, ioctl and signal are async-signal-safe; they make
        // the pty the child's controlling terminal, as a terminal emulator
        // would (through standard error, the terminal whatever is piped),
        // and give SIGINT and SIGQUIT their default action, as a terminal
        // emulator's shell has them: a test run started in the background
        // of a script inherits them ignored, and an ignored signal stays
        // ignored through exec (and cannot be trapped by a shell).
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(2, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                for sig in [libc::SIGINT, libc::SIGQUIT] {
                    if libc::signal(sig, libc::SIG_DFL) == libc::SIG_ERR {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        let guard = KillOnDrop(child.id());
        // Only the program may hold the slave, or its end is never seen.
        drop(cmd);
        Term {
            master: File::from(pty.master),
            child,
            seen: Vec::new(),
            _guard: guard,
        }
    }

    /// `hutch run --profile P -- COMMAND...` with `profile` written to P.
    fn hutch(s: &Scratch, profile: &str, command: &[&str]) -> Term {
        let p = s.write("term.toml", profile);
        let mut args = vec!["run", "--profile", p.to_str().unwrap(), "--"];
        args.extend_from_slice(command);
        Term::start(s.hutch(&args))
    }

    fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    /// Reads until the output contains `needle`; returns everything up to
    /// and including it (later output stays for the next call).
    #[track_caller]
    fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(at) = find(&self.seen, needle.as_bytes()) {
                let rest = self.seen.split_off(at + needle.len());
                let got = std::mem::replace(&mut self.seen, rest);
                return String::from_utf8_lossy(&got).into_owned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {needle:?} on the terminal; it showed: {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            if !self.read_some(left) {
                panic!(
                    "the terminal closed before {needle:?}; it showed: {:?}",
                    String::from_utf8_lossy(&self.seen)
                );
            }
        }
    }

    /// Waits up to `timeout` for output; false once every slave is closed.
    fn read_some(&mut self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) } <= 0 {
            return true;
        }
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            Ok(0) | Err(_) => false, // EIO: every slave is closed
            Ok(n) => {
                self.seen.extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    /// The terminal's attributes (the master answers for its slave).
    fn mode(&self) -> Termios {
        tcgetattr(self.master.as_fd()).unwrap()
    }

    fn resize(&self, rows: u16, cols: u16) {
        let ws = size(rows, cols);
        // SAFETY: TIOCSWINSZ reads one winsize.
        let r = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(r, 0);
    }

    /// Waits for the program to exit; its status and the rest of the output.
    fn finish(self) -> (ExitStatus, String) {
        let (status, _, out) = self.finish_with_mode();
        (status, out)
    }

    /// [`Term::finish`], and the terminal's mode once the program exited.
    fn finish_with_mode(mut self) -> (ExitStatus, Termios, String) {
        let status = self.wait_exit();
        let mode = self.mode();
        while self.read_some(Duration::from_millis(50)) && !self.drained() {}
        (
            status,
            mode,
            String::from_utf8_lossy(&self.seen).into_owned(),
        )
    }

    /// Waits for the program to exit, reading what it shows meanwhile.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "the program did not exit; the terminal showed: {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            self.read_some(Duration::from_millis(20));
        }
    }

    /// Nothing more to read now.
    fn drained(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        unsafe { libc::poll(&mut pfd, 1, 0) <= 0 }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether the terminal is in raw mode (no line editing, no echo).
fn is_raw(t: &Termios) -> bool {
    !t.local_flags
        .intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG)
}

/// The control characters the kernel keeps (its NCCS): a C library's
/// termios may be longer (musl's has 32), and what lies past them is not
/// the terminal's.
const KERNEL_NCCS: usize = 19;

/// The parts of a terminal mode a program changes.
fn flags(t: &Termios) -> String {
    format!(
        "iflag={:?} oflag={:?} lflag={:?} cc={:?}",
        t.input_flags,
        t.output_flags,
        t.local_flags,
        &t.control_chars[..KERNEL_NCCS]
    )
}

#[test]
fn tty_names_a_pseudo_terminal_that_exists_inside() {
    let s = Scratch::new();
    let probe = "t=$(tty) && test -c \"$t\" && echo \"ok $t\"; ls -1 /dev/pts";
    let t = Term::hutch(&s, PTY, &["sh", "-c", probe]);
    let (status, out) = t.finish();
    assert!(status.success(), "{status:?}: {out:?}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines, ["ok /dev/pts/0", "0", "ptmx"], "{out:?}");
    // The negative control: the caller's terminal kept, whose /dev/pts
    // entry the sandbox's own devpts does not have.
    let inherit = "version = 1\nextends = [\"cli\"]\nterminal = \"inherit\"\n";
    let (status, out) = Term::hutch(&s, inherit, &["sh", "-c", "tty"]).finish();
    assert_eq!(status.code(), Some(1), "{out:?}");
    assert_eq!(out.trim(), "not a tty");
}

/// Everything the payload writes reaches the caller's terminal, in order,
/// before hutch exits with the payload's status.
#[test]
fn the_relay_keeps_every_byte_and_the_exit_status() {
    let s = Scratch::new();
    let t = Term::hutch(&s, PTY, &["sh", "-c", "seq 1 30000; exit 9"]);
    let (status, out) = t.finish();
    assert_eq!(status.code(), Some(9));
    let lines: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).collect();
    let want: Vec<String> = (1..=30000).map(|n| n.to_string()).collect();
    assert!(
        lines == want,
        "{} lines, last {:?}",
        lines.len(),
        lines.last()
    );
}

/// Standard input not a terminal (`... | hutch run`): no relay and no
/// terminal of its own; the payload reads the pipe.
#[test]
fn piped_input_gets_no_relay() {
    let s = Scratch::new();
    let p = s.write("term.toml", PTY);
    let probe = "tty; echo status=$?; ls /dev/pts; cat";
    let cmd = s.hutch(&[
        "run",
        "--profile",
        p.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        probe,
    ]);
    let mut t = Term::start_with(cmd, Piped::Stdin);
    let mut input = t.child.stdin.take().unwrap();
    input.write_all(b"from-the-pipe\n").unwrap();
    drop(input);
    let (status, out) = t.finish();
    assert!(status.success(), "{status:?}: {out:?}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        ["not a tty", "status=1", "ptmx", "from-the-pipe"],
        "{out:?}"
    );
}

#[test]
fn the_window_size_follows_the_callers_terminal() {
    let s = Scratch::new();
    let script = "trap 'echo winch; stty size' WINCH; stty size; echo ready; \
                  while :; do sleep 0.05; done";
    let mut t = Term::hutch(&s, PTY, &["sh", "-c", script]);
    assert!(t.expect("ready").contains("24 80"));
    t.resize(50, 132);
    let after = t.expect("50 132");
    assert!(after.contains("winch"), "{after:?}");
    t.send(b"\x03");
    let (status, _) = t.finish();
    assert_eq!(status.code(), Some(130));
}

#[test]
fn ctrl_c_and_ctrl_d_reach_the_payload_and_its_status_comes_back() {
    let s = Scratch::new();
    // Ctrl-C: the payload's terminal sends SIGINT, its handler runs.
    let script = "trap 'echo got-int; exit 7' INT; echo ready; while :; do sleep 0.05; done";
    let mut t = Term::hutch(&s, PTY, &["sh", "-c", script]);
    t.expect("ready");
    t.send(b"\x03");
    t.expect("got-int");
    let (status, _) = t.finish();
    assert_eq!(status.code(), Some(7));
    // Ctrl-D: end of file for the reader of the payload's terminal.
    let mut t = Term::hutch(
        &s,
        PTY,
        &["sh", "-c", "echo ready; cat; echo cat-done; exit 3"],
    );
    t.expect("ready");
    t.send(b"typed\r");
    t.expect("typed\r\ntyped");
    t.send(b"\x04");
    t.expect("cat-done");
    let (status, _) = t.finish();
    assert_eq!(status.code(), Some(3));
}

/// A signal sent to hutch (`kill`, `hutch stop`) reaches the payload,
/// which handles it; its exit status is hutch's.
#[test]
fn a_signal_to_hutch_reaches_the_payload() {
    let s = Scratch::new();
    let script = "trap 'echo got-term; exit 6' TERM; echo ready; while :; do sleep 0.05; done";
    let mut t = Term::hutch(&s, PTY, &["sh", "-c", script]);
    t.expect("ready");
    kill(Pid::from_raw(t.child.id() as i32), Signal::SIGTERM).unwrap();
    t.expect("got-term");
    let (status, _) = t.finish();
    assert_eq!(status.code(), Some(6));
}

/// The mode a new terminal starts in (cooked, echo), as the tests' do.
fn fresh_mode() -> Termios {
    let pty = nix::pty::openpty(None, None).unwrap();
    tcgetattr(pty.master.as_fd()).unwrap()
}

#[test]
fn the_callers_terminal_mode_comes_back_on_every_exit() {
    let s = Scratch::new();
    let start = flags(&fresh_mode());
    // The payload exits.
    let mut t = Term::hutch(
        &s,
        PTY,
        &["sh", "-c", "echo ready; read l; echo \"got $l\""],
    );
    t.expect("ready");
    assert!(
        is_raw(&t.mode()),
        "hutch relays in raw mode: {}",
        flags(&t.mode())
    );
    t.send(b"x\r");
    t.expect("got x");
    let (status, mode, _) = t.finish_with_mode();
    assert_eq!(status.code(), Some(0));
    assert_eq!(flags(&mode), start);
    // The payload is killed.
    let mut t = Term::hutch(&s, PTY, &["sh", "-c", "echo ready; read l; kill -9 $$"]);
    t.expect("ready");
    t.send(b"\r");
    let (status, mode, _) = t.finish_with_mode();
    assert_eq!(status.code(), Some(137));
    assert_eq!(flags(&mode), start);
    // hutch is told to end (SIGTERM, relayed to the payload).
    let (status, mode) = signalled(&s, Signal::SIGTERM);
    assert_eq!(status.code(), Some(143));
    assert_eq!(flags(&mode), start);
    // hutch dies of a signal it does not relay: its handler puts the mode
    // back first.
    let (status, mode) = signalled(&s, Signal::SIGALRM);
    assert_eq!(status.signal(), Some(libc::SIGALRM), "{status:?}");
    assert_eq!(flags(&mode), start);
    // SIGKILL cannot be caught: hutch's keeper process puts the mode back.
    let (status, mode) = killed(&s, false);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert_eq!(flags(&mode), start);
    // The negative control: without the keeper, the terminal stays raw.
    let (status, mode) = killed(&s, true);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(is_raw(&mode), "{}", flags(&mode));
}

/// SIGKILL of hutch while its payload waits, after killing its keeper
/// process first if `keeper_too`; hutch's status and the terminal's mode
/// once the keeper is done (or gone).
fn killed(s: &Scratch, keeper_too: bool) -> (ExitStatus, Termios) {
    let mut t = Term::hutch(s, PTY, &["sh", "-c", "echo ready; sleep 30"]);
    t.expect("ready");
    assert!(is_raw(&t.mode()));
    let hutch = t.child.id() as i32;
    // Forked (and told the mode) before the terminal went raw; it names
    // itself a moment later.
    let mut keeper = None;
    wait_until("hutch runs a hutch-tty keeper", || {
        keeper = keeper_of(hutch);
        keeper.is_some()
    });
    let keeper = keeper.unwrap();
    if keeper_too {
        kill(Pid::from_raw(keeper), Signal::SIGKILL).unwrap();
        wait_until("the keeper is dead", || !alive(keeper));
    }
    kill(Pid::from_raw(hutch), Signal::SIGKILL).unwrap();
    let status = t.wait_exit();
    // The keeper acts once hutch is gone, and then ends.
    wait_until("the keeper ends", || !alive(keeper));
    (status, t.mode())
}

/// The pid of hutch's `hutch-tty` child.
fn keeper_of(hutch: i32) -> Option<i32> {
    let children = std::fs::read_to_string(format!("/proc/{hutch}/task/{hutch}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .find(|p: &i32| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "hutch-tty")
        })
}

/// Whether `pid` is a process that has not exited (a zombie has).
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name's closing parenthesis.
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    !state.is_some_and(|r| r.starts_with('Z') || r.starts_with('X'))
}

#[track_caller]
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `sig` to hutch while its payload waits; hutch's status and the
/// terminal's mode afterwards.
fn signalled(s: &Scratch, sig: Signal) -> (ExitStatus, Termios) {
    let mut t = Term::hutch(s, PTY, &["sh", "-c", "echo ready; sleep 30"]);
    t.expect("ready");
    assert!(is_raw(&t.mode()));
    kill(Pid::from_raw(t.child.id() as i32), sig).unwrap();
    let (status, mode, _) = t.finish_with_mode();
    (status, mode)
}

/// Job control, with an interactive bash as the caller's shell: Ctrl-Z
/// stops the payload, and hutch with it, the shell takes its terminal back
/// (its own mode); `fg` gives it to the payload again, which goes on.
#[test]
fn ctrl_z_stops_hutch_and_fg_resumes_it() {
    let s = Scratch::new();
    let p = s.write("term.toml", PTY);
    let mut bash = s.as_user(std::path::Path::new("/bin/bash"));
    bash.args(["--norc", "--noprofile", "-i"])
        .env("PS1", "outer$ ")
        .env("HUTCH", hutch_bin());
    let mut t = Term::start(bash);
    t.expect("outer$ ");
    let shell_mode = flags(&t.mode());
    let cmd = format!(
        "\"$HUTCH\" run --profile {} -- sh -c 'echo rea''dy; read l; echo \"got $l\"; exit 4'\r",
        p.display()
    );
    t.send(cmd.as_bytes());
    t.expect("ready");
    assert!(is_raw(&t.mode()));
    // Ctrl-Z reaches the payload's terminal, which stops the payload.
    t.send(b"\x1a");
    let stopped = t.expect("outer$ ");
    assert!(stopped.contains("Stopped"), "{stopped:?}");
    assert_eq!(flags(&t.mode()), shell_mode, "the shell has its mode back");
    t.send(b"jobs -l\r");
    let jobs = t.expect("outer$ ");
    assert!(jobs.contains("Stopped"), "{jobs:?}");
    // `fg`: the payload goes on where it was, reading its terminal.
    t.send(b"fg\r");
    t.expect("exit 4'");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_raw(&t.mode()) {
        assert!(
            Instant::now() < deadline,
            "hutch did not take the terminal back"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    t.send(b"more\r");
    t.expect("got more");
    t.expect("outer$ ");
    t.send(b"echo status=$?\r");
    assert!(t.expect("outer$ ").contains("status=4"));
    assert_eq!(flags(&t.mode()), shell_mode);
    // Started in the background, hutch leaves the terminal to the shell
    // and only relays the output.
    let cmd = format!(
        "\"$HUTCH\" run --profile {} -- sh -c 'sleep 0.5; echo bg-''done' &\r",
        p.display()
    );
    t.send(cmd.as_bytes());
    t.expect("outer$ ");
    assert_eq!(flags(&t.mode()), shell_mode);
    t.expect("bg-done");
    t.send(b"wait; echo waited=$?\r");
    t.expect("waited=0");
    t.send(b"exit\r");
    let (status, _) = t.finish();
    assert!(status.success());
}

/// A shell as payload does job control in its own terminal, as over ssh:
/// Ctrl-Z stops its job, not hutch, and `fg` continues it.
#[test]
fn a_shell_inside_does_its_own_job_control() {
    let s = Scratch::new();
    let profile = format!("{PTY}[env]\nset = {{ PS1 = \"inner$$ \" }}\n");
    let mut t = Term::hutch(&s, &profile, &["bash", "--norc", "--noprofile", "-i"]);
    t.expect("inner$ ");
    // The job says when it runs: bash has made it the terminal's
    // foreground by then (in the child too), so Ctrl-Z reaches it, not
    // bash (which ignores it). The quotes keep the echo from matching.
    t.send(b"sh -c 'echo sta\"\"rted; read x; echo got-$x'\r");
    t.expect("started");
    t.send(b"\x1a");
    let stopped = t.expect("inner$ ");
    assert!(stopped.contains("Stopped"), "{stopped:?}");
    // `fg` continues it in the foreground: it reads the next line.
    t.send(b"fg\r");
    t.expect("read x");
    t.send(b"line\r");
    t.expect("got-line");
    t.expect("inner$ ");
    t.send(b"exit 5\r");
    let (status, out) = t.finish();
    assert_eq!(status.code(), Some(5), "{out:?}");
}

/// `container` (the profile of `hutch run --image`) gives an interactive
/// run a terminal of its own, as `docker run -it` does; piped, it keeps
/// the `auto` behaviour (no terminal, or the caller's).
#[test]
fn the_container_profile_gives_an_interactive_run_its_own_terminal() {
    let s = Scratch::new();
    let container = "version = 1\nextends = [\"container\"]\nroot = \"/\"\n";
    let t = Term::hutch(
        &s,
        container,
        &["sh", "-c", "tty; readlink /proc/self/fd/0"],
    );
    let (status, out) = t.finish();
    assert!(status.success(), "{status:?}: {out:?}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines, ["/dev/pts/0", "/dev/pts/0"], "{out:?}");
    // Standard output a pipe: no relay; the caller's terminal is standard
    // input, which the sandbox's devpts does not know.
    let p = s.write("container.toml", container);
    let cmd = s.hutch(&[
        "run",
        "--profile",
        p.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "tty; echo status=$?",
    ]);
    let mut t = Term::start_with(cmd, Piped::Stdout);
    let mut piped = t.child.stdout.take().unwrap();
    let (status, shown) = t.finish();
    assert!(status.success(), "{status:?}: {shown:?}");
    let mut out = String::new();
    piped.read_to_string(&mut out).unwrap();
    assert_eq!(out, "not a tty\nstatus=1\n", "{shown:?}");
}
