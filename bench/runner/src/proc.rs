//! Process spawning, waiting and timing.
//!
//! Every measured launch goes through `posix_spawn` + `wait4`, timed with
//! `CLOCK_MONOTONIC` read immediately before the spawn and immediately after
//! the wait returns. The child gets /dev/null on stdin and stdout and a memfd
//! on stderr, so failures can be reported with the launcher's own message.

use std::ffi::CString;
use std::io;
use std::os::raw::c_char;
use std::ptr;

unsafe extern "C" {
    static environ: *const *const c_char;
}

/// Monotonic clock in nanoseconds.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A command line ready to spawn: resolved program path plus argv.
pub struct Cmdline {
    path: CString,
    // Owns the strings that argv_ptrs points into.
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    pub words: Vec<String>,
}

impl Cmdline {
    /// Resolve `words[0]` through `$PATH` (unless it contains a slash) once,
    /// so that path search is not part of any measured launch.
    pub fn new(words: &[String]) -> Result<Cmdline, String> {
        if words.is_empty() {
            return Err("empty command".into());
        }
        let prog = &words[0];
        let path = if prog.contains('/') {
            prog.clone()
        } else {
            let search = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
            search
                .split(':')
                .map(|d| format!("{}/{}", if d.is_empty() { "." } else { d }, prog))
                .find(|p| is_executable(p))
                .ok_or_else(|| format!("{prog}: command not found in PATH"))?
        };
        let to_c = |s: &str| CString::new(s).map_err(|_| format!("NUL byte in argument {s:?}"));
        let path = to_c(&path)?;
        let argv = words
            .iter()
            .map(|w| to_c(w))
            .collect::<Result<Vec<_>, _>>()?;
        let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_ptrs.push(ptr::null());
        Ok(Cmdline {
            path,
            _argv: argv,
            argv_ptrs,
            words: words.to_vec(),
        })
    }

    /// The command as one shell-quoted string (used in JSON and messages).
    pub fn display(&self) -> String {
        self.words
            .iter()
            .map(|w| shell_quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn is_executable(p: &str) -> bool {
    match CString::new(p) {
        // SAFETY: c is a valid NUL-terminated string.
        Ok(c) => unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 },
        Err(_) => false,
    }
}

pub fn shell_quote(w: &str) -> String {
    let plain = !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// An owned file descriptor (closed on drop).
pub struct Fd(pub i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

pub fn open_devnull() -> io::Result<Fd> {
    // SAFETY: constant, valid path.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(Fd(fd))
    }
}

/// An in-memory file that receives a child's stderr.
pub struct Capture(Fd);

impl Capture {
    pub fn new() -> io::Result<Capture> {
        // SAFETY: valid name, valid flags.
        let fd = unsafe { libc::memfd_create(c"benchrun-stderr".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(Capture(Fd(fd)))
        }
    }
    pub fn fd(&self) -> i32 {
        self.0.0
    }
    /// Empty the file before a run (the child shares our file offset).
    pub fn reset(&self) -> io::Result<()> {
        // SAFETY: fd is ours.
        unsafe {
            if libc::ftruncate(self.fd(), 0) != 0 || libc::lseek(self.fd(), 0, libc::SEEK_SET) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
    /// Everything written so far (at most 256 KiB), lossily decoded.
    pub fn contents(&self) -> String {
        let mut buf = vec![0u8; 256 * 1024];
        let mut len = 0usize;
        while len < buf.len() {
            // SAFETY: the destination range is inside buf.
            let n = unsafe {
                libc::pread(
                    self.fd(),
                    buf[len..].as_mut_ptr().cast(),
                    buf.len() - len,
                    len as i64,
                )
            };
            if n <= 0 {
                break;
            }
            len += n as usize;
        }
        buf.truncate(len);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Spawn `cmd` with the given stdin/stdout/stderr descriptors.
/// Signal dispositions and mask are reset to defaults in the child
/// (the Rust runtime ignores SIGPIPE, which must not leak into payloads).
pub fn spawn(cmd: &Cmdline, stdin: i32, stdout: i32, stderr: i32) -> io::Result<libc::pid_t> {
    // SAFETY: all structures are initialised by their init functions before
    // use and destroyed afterwards; argv/envp are NUL-terminated arrays of
    // valid C strings that outlive the call.
    unsafe {
        let mut fa: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut fa);
        libc::posix_spawnattr_init(&mut attr);
        libc::posix_spawn_file_actions_adddup2(&mut fa, stdin, 0);
        libc::posix_spawn_file_actions_adddup2(&mut fa, stdout, 1);
        libc::posix_spawn_file_actions_adddup2(&mut fa, stderr, 2);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        let mut defaults: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut defaults);
        for sig in [
            libc::SIGPIPE,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGTERM,
            libc::SIGCHLD,
        ] {
            libc::sigaddset(&mut defaults, sig);
        }
        libc::posix_spawnattr_setsigmask(&mut attr, &empty);
        libc::posix_spawnattr_setsigdefault(&mut attr, &defaults);
        libc::posix_spawnattr_setflags(
            &mut attr,
            (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short,
        );
        let mut pid: libc::pid_t = 0;
        let rc = libc::posix_spawn(
            &mut pid,
            cmd.path.as_ptr(),
            &fa,
            &attr,
            cmd.argv_ptrs.as_ptr() as *const *mut c_char,
            environ as *const *mut c_char,
        );
        libc::posix_spawn_file_actions_destroy(&mut fa);
        libc::posix_spawnattr_destroy(&mut attr);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(pid)
    }
}

/// How a child ended, plus its CPU usage.
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    /// Exit code, or 128 + signal number when killed by a signal.
    pub code: i32,
    pub signal: Option<i32>,
    pub user_s: f64,
    pub sys_s: f64,
}

impl Exit {
    pub fn ok(&self) -> bool {
        self.signal.is_none() && self.code == 0
    }
    pub fn describe(&self) -> String {
        match self.signal {
            Some(s) => format!("killed by signal {s}"),
            None => format!("exit status {}", self.code),
        }
    }
}

fn exit_from(status: i32, ru: &libc::rusage) -> Exit {
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let (code, signal) = if libc::WIFEXITED(status) {
        (libc::WEXITSTATUS(status), None)
    } else if libc::WIFSIGNALED(status) {
        (128 + libc::WTERMSIG(status), Some(libc::WTERMSIG(status)))
    } else {
        (255, None)
    };
    Exit {
        code,
        signal,
        user_s: tv(ru.ru_utime),
        sys_s: tv(ru.ru_stime),
    }
}

/// Wait for a specific child (pid > 0) or any child (pid == -1).
pub fn wait(pid: libc::pid_t) -> io::Result<(libc::pid_t, Exit)> {
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data; out-pointers are valid.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if r > 0 {
            return Ok((r, exit_from(status, &ru)));
        }
        if errno() != libc::EINTR {
            return Err(io::Error::last_os_error());
        }
    }
}

/// One timed launch.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub wall_s: f64,
    pub exit: Exit,
}

/// Spawn, wait, and time one run of `cmd`. stderr goes to `cap`.
pub fn run_timed(cmd: &Cmdline, devnull: i32, cap: &Capture) -> io::Result<Sample> {
    cap.reset()?;
    let t0 = now_ns();
    let pid = spawn(cmd, devnull, devnull, cap.fd())?;
    let (_, exit) = wait(pid)?;
    let t1 = now_ns();
    Ok(Sample {
        wall_s: (t1 - t0) as f64 / 1e9,
        exit,
    })
}

/// The first non-empty line of a launcher's stderr, or the exit description.
pub fn failure_message(stderr: &str, exit: &Exit) -> String {
    match stderr.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(line) => format!("{line} ({})", exit.describe()),
        None => format!("{} with empty stderr", exit.describe()),
    }
}
