//! terminal mode: what a terminal relay costs, measured from the outside,
//! as a user at a terminal would see it.
//!
//! Every row runs on a pseudo-terminal this program allocates and holds
//! the master of, as a terminal emulator does (the command is a session
//! leader with the terminal as its controlling terminal and standard
//! input, output and error). Two groups, named by `--throughput` and
//! `--latency`:
//!
//! - throughput: the command prints a large file (`cat FILE`); the rate is
//!   the bytes that reach the master divided by the time from the first to
//!   the last of them (the launch itself is not counted). `runs` runs per
//!   row, interleaved across rows.
//! - latency: the command puts its terminal in raw mode without echo,
//!   prints `ready` and copies its input to its output (`cat`); a keystroke
//!   is one byte written to the master, timed until a byte comes back: the
//!   way through the relay to the program and back. The rows' sessions run
//!   side by side and take turns, one keystroke each; `runs` keystrokes
//!   per row are measured after `warmup` unmeasured ones.
//!
//! The ratio column compares each row's median with `--ref`'s.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::json::{self, J};
use crate::proc::{Fd, now_ns};
use crate::spec::{self, Entry};
use crate::stats;

pub struct Opts {
    pub throughput: String,
    pub latency: String,
    pub reference: String,
    pub target: Option<String>,
    /// The least number of bytes a throughput run must deliver.
    pub min_bytes: u64,
}

/// One row's samples: bytes per second (throughput) or seconds per
/// keystroke (latency); or why the row could not be measured.
pub struct Outcome {
    samples: Vec<f64>,
    failed: Option<String>,
}

/// How long a run or a reply may take before the row is failed.
const TIMEOUT: Duration = Duration::from_secs(60);

/// A command running on a new pseudo-terminal.
struct Session {
    master: Fd,
    child: Child,
    /// What the terminal showed, kept for a failure message (the last
    /// few hundred bytes).
    tail: Vec<u8>,
}

impl Session {
    fn start(words: &[String]) -> io::Result<Session> {
        let (master, slave) = open_pty()?;
        let mut cmd = Command::new(&words[0]);
        cmd.args(&words[1..]);
        // The slave's three descriptors are the child's; ours are closed
        // when `cmd` is dropped, so the master sees the end.
        for set in [Command::stdin, Command::stdout, Command::stderr] {
            // SAFETY: dup returns a new descriptor this Stdio then owns.
            let fd = unsafe { libc::dup(slave.0) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fd is a new, owned descriptor.
            set(&mut cmd, unsafe {
                <Stdio as std::os::fd::FromRawFd>::from_raw_fd(fd)
            });
        }
        drop(slave);
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop(cmd);
        Ok(Session {
            master,
            child,
            tail: Vec::new(),
        })
    }

    /// Waits up to `timeout` for output; `Ok(None)` on timeout, `Ok(Some(0))`
    /// once every slave is closed.
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        let mut pfd = libc::pollfd {
            fd: self.master.0,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            0 => return Ok(None),
            r if r < 0 => return Err(io::Error::last_os_error()),
            _ => {}
        }
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(self.master.0, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            // EIO: every slave is closed.
            return if e.raw_os_error() == Some(libc::EIO) {
                Ok(Some(0))
            } else {
                Err(e)
            };
        }
        let n = n as usize;
        self.tail.extend_from_slice(&buf[..n]);
        if self.tail.len() > 400 {
            self.tail.drain(..self.tail.len() - 400);
        }
        Ok(Some(n))
    }

    /// Reads until the output contains `needle`.
    fn expect(&mut self, needle: &[u8]) -> Result<(), String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut buf = [0u8; 4096];
        while !self.tail.windows(needle.len()).any(|w| w == needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read(&mut buf, left) {
                Ok(Some(n)) if n > 0 => {}
                Ok(None) => return Err(self.failure("timed out waiting for the payload")),
                _ => return Err(self.failure("the terminal closed before the payload was ready")),
            }
        }
        self.tail.clear();
        Ok(())
    }

    fn write_byte(&self, b: u8) -> io::Result<()> {
        // SAFETY: one valid byte.
        if unsafe { libc::write(self.master.0, (&b as *const u8).cast(), 1) } != 1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn failure(&self, what: &str) -> String {
        let shown = String::from_utf8_lossy(&self.tail).replace(['\r', '\n'], " ");
        format!("{what}; the terminal showed: {:?}", shown.trim())
    }

    /// Ends the command: a hang-up (the master closed), then SIGKILL if
    /// it is still there after a while.
    fn end(mut self) {
        drop(std::mem::replace(&mut self.master, Fd(-1)));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new pseudo-terminal, 24x80, both ends close-on-exec.
fn open_pty() -> io::Result<(Fd, Fd)> {
    // SAFETY: plain open flags.
    let master = Fd(unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) });
    if master.0 < 0 {
        return Err(io::Error::last_os_error());
    }
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int; TIOCGPTPEER returns a descriptor.
    let slave = unsafe {
        if libc::ioctl(master.0, libc::TIOCSPTLCK, &unlock) < 0 {
            -1
        } else {
            libc::ioctl(
                master.0,
                libc::TIOCGPTPEER,
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        }
    };
    if slave < 0 {
        return Err(io::Error::last_os_error());
    }
    let slave = Fd(slave);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize.
    unsafe { libc::ioctl(slave.0, libc::TIOCSWINSZ, &size) };
    Ok((master, slave))
}

/// One throughput run: bytes per second from the first byte to the last.
fn throughput_once(words: &[String], min_bytes: u64) -> Result<f64, String> {
    let mut s = Session::start(words).map_err(|e| format!("cannot start: {e}"))?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut first, mut last, mut total) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match s.read(&mut buf, left) {
            Ok(Some(0)) => break,
            Ok(Some(n)) => {
                last = now_ns();
                if total == 0 {
                    first = last;
                }
                total += n as u64;
            }
            Ok(None) => {
                let e = s.failure("timed out");
                s.end();
                return Err(e);
            }
            Err(e) => {
                let e = s.failure(&format!("reading the terminal: {e}"));
                s.end();
                return Err(e);
            }
        }
    }
    let status = s.child.wait().map_err(|e| e.to_string())?;
    if !status.success() || total < min_bytes {
        return Err(s.failure(&format!(
            "{status}, {total} bytes shown (expected at least {min_bytes})"
        )));
    }
    Ok(total as f64 / ((last - first) as f64 / 1e9))
}

/// The latency rows' sessions, started and ready; `Err` rows stay failed.
fn start_latency(rows: &[&Entry]) -> Vec<Result<Session, String>> {
    rows.iter()
        .map(|e| {
            let cmd = e.cmd.as_ref().map_err(Clone::clone)?;
            let mut s = Session::start(&cmd.words).map_err(|err| format!("cannot start: {err}"))?;
            match s.expect(b"ready") {
                Ok(()) => Ok(s),
                Err(err) => {
                    s.end();
                    Err(err)
                }
            }
        })
        .collect()
}

/// One keystroke: a byte written, timed until a byte comes back.
fn keystroke(s: &mut Session) -> Result<f64, String> {
    let mut buf = [0u8; 64];
    let start = now_ns();
    s.write_byte(b'x')
        .map_err(|e| format!("writing a keystroke: {e}"))?;
    match s.read(&mut buf, TIMEOUT) {
        Ok(Some(n)) if n > 0 => Ok((now_ns() - start) as f64 / 1e9),
        _ => Err(s.failure("no echo of a keystroke")),
    }
}

fn measure_latency(rows: &[&Entry]) -> Vec<Outcome> {
    let mut sessions = start_latency(rows);
    let mut out: Vec<Outcome> = sessions
        .iter()
        .map(|s| Outcome {
            samples: Vec::new(),
            failed: s.as_ref().err().cloned(),
        })
        .collect();
    let rounds = rows.iter().map(|e| e.warmup + e.runs).max().unwrap_or(0);
    for round in 0..rounds {
        for ((e, s), o) in rows.iter().zip(&mut sessions).zip(&mut out) {
            let Ok(session) = s else { continue };
            if o.failed.is_some() || round >= e.warmup + e.runs {
                continue;
            }
            match keystroke(session) {
                Ok(t) if round >= e.warmup => o.samples.push(t),
                Ok(_) => {}
                Err(err) => o.failed = Some(err),
            }
        }
    }
    for s in sessions.into_iter().flatten() {
        s.end();
    }
    out
}

fn measure_throughput(rows: &[&Entry], min_bytes: u64) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = rows
        .iter()
        .map(|e| Outcome {
            samples: Vec::new(),
            failed: e.cmd.as_ref().err().cloned(),
        })
        .collect();
    let rounds = rows.iter().map(|e| e.warmup + e.runs).max().unwrap_or(0);
    for round in 0..rounds {
        for (e, o) in rows.iter().zip(&mut out) {
            let Ok(cmd) = &e.cmd else { continue };
            if o.failed.is_some() || round >= e.warmup + e.runs {
                continue;
            }
            match throughput_once(&cmd.words, min_bytes) {
                Ok(rate) if round >= e.warmup => o.samples.push(rate),
                Ok(_) => {}
                Err(err) => o.failed = Some(err),
            }
        }
    }
    out
}

/// Measures every row; the outcomes in the entries' order.
pub fn run(entries: &[Entry], o: &Opts) -> Result<Vec<Outcome>, String> {
    let mut out: Vec<Option<Outcome>> = entries.iter().map(|_| None).collect();
    for g in spec::groups(entries) {
        let idx: Vec<usize> = (0..entries.len())
            .filter(|&i| entries[i].group == g)
            .collect();
        let rows: Vec<&Entry> = idx.iter().map(|&i| &entries[i]).collect();
        let measured = if g == o.throughput {
            measure_throughput(&rows, o.min_bytes)
        } else if g == o.latency {
            measure_latency(&rows)
        } else {
            return Err(format!("group {g:?} is neither --throughput nor --latency"));
        };
        for (i, m) in idx.into_iter().zip(measured) {
            out[i] = Some(m);
        }
    }
    Ok(out
        .into_iter()
        .map(|o| o.expect("every entry is in a group"))
        .collect())
}

/// Prints both tables; returns the number of failed rows.
pub fn report(entries: &[Entry], out: &[Outcome], o: &Opts) -> usize {
    let w = entries
        .iter()
        .map(|e| e.label.chars().count())
        .max()
        .unwrap_or(7)
        .max(7);
    let mut failures = 0;
    for g in spec::groups(entries) {
        let latency = g == o.latency;
        let (unit, scale) = if latency {
            ("µs", 1e6)
        } else {
            ("MB/s", 1e-6)
        };
        println!();
        println!(
            "{}: {g}",
            if latency {
                "keystroke latency"
            } else {
                "throughput"
            }
        );
        println!(
            "  {:<w$}  {:>5}  {:>12}  {:>12}  {:>9}",
            "command",
            "n",
            format!("median {unit}"),
            if latency {
                format!("p95 {unit}")
            } else {
                format!("min {unit}")
            },
            format!("x {}", o.reference)
        );
        let median_of = |label: &str| {
            entries
                .iter()
                .zip(out)
                .find(|(e, r)| e.group == g && e.label == label && r.failed.is_none())
                .and_then(|(_, r)| stats::median(&r.samples))
        };
        let reference = median_of(&o.reference);
        for (e, r) in entries.iter().zip(out).filter(|(e, _)| e.group == g) {
            match (&r.failed, stats::summarize(&r.samples)) {
                (None, Some(s)) => {
                    let other = if latency { s.p95 } else { s.min };
                    let ratio = reference.map_or("-".into(), |rf| format!("{:.2}", s.median / rf));
                    println!(
                        "  {:<w$}  {:>5}  {:>12.1}  {:>12.1}  {:>9}",
                        e.label,
                        s.n,
                        s.median * scale,
                        other * scale,
                        ratio
                    );
                }
                (failed, _) => {
                    failures += 1;
                    let why = failed.clone().unwrap_or_else(|| "no samples".into());
                    println!("  {:<w$}  FAILED: {why}", e.label);
                }
            }
        }
        if let (Some(t), Some(rf)) = (&o.target, reference)
            && let Some(m) = median_of(t)
        {
            let (word, x) = if latency {
                ("slower", m / rf)
            } else {
                ("faster", m / rf)
            };
            println!(
                "  {t}: {x:.2}x {}'s median ({} is {word} above 1)",
                o.reference,
                if latency { "latency" } else { "rate" }
            );
        }
    }
    failures
}

pub fn to_json(entries: &[Entry], out: &[Outcome], o: &Opts) -> J {
    let results = entries
        .iter()
        .zip(out)
        .map(|(e, r)| {
            let unit = if e.group == o.latency {
                "seconds"
            } else {
                "bytes_per_second"
            };
            let mut f = vec![
                (
                    "command",
                    J::Str(e.cmd.as_ref().map_or_else(Clone::clone, |c| c.display())),
                ),
                ("group", J::Str(e.group.clone())),
                ("label", J::Str(e.label.clone())),
                ("unit", J::Str(unit.into())),
                ("samples", json::nums(&r.samples)),
            ];
            if let Some(s) = stats::summarize(&r.samples) {
                f.push(("median", J::Num(s.median)));
                f.push(("p95", J::Num(s.p95)));
            }
            if let Some(why) = &r.failed {
                f.push(("failed", J::Str(why.clone())));
            }
            json::obj(f)
        })
        .collect();
    json::obj(vec![("results", J::Arr(results))])
}
