//! `hutch learn`'s recorder: serves the listener of the sandbox's learning
//! filter (`plan::seccomp::learning_rules`) from a thread of the launcher.
//!
//! For each watched call it reads the path the call names from the
//! caller's memory (`/proc/PID/mem`: the launcher is an ancestor of every
//! process in the sandbox and owns its user namespace, so the kernel lets
//! it), resolves a relative one against the caller's working directory or
//! the directory descriptor it passed (`/proc/PID/cwd`, `/proc/PID/fd/N`),
//! checks that the notification is still pending (`SECCOMP_IOCTL_NOTIF_ID_
//! VALID`: the pid was not reused between receiving the call and reading
//! its memory), records the access, and lets the call continue: the kernel
//! then runs it reading the path again itself, so what was recorded never
//! decides what happens. A call the run's own filter denies is recorded as
//! refused and answered with its errno, never continued.
//!
//! Life cycle: the socket the child sends the listener on is made before
//! clone; the thread starts with the child; it ends when every process
//! holding the filter is gone (the listener hangs up) or at `finish`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Serialize;

use super::{CloneSetup, Helper, HelperError, Started};
use crate::plan::Plan;
use crate::plan::seccomp::{LEARNED_CALLS, learning_rules};
use crate::sys;
use crate::sys::notify::{self, Answer, Notif};

const NAME: &str = "the learning recorder";
const AT_FDCWD: i32 = -100;
const AT_EMPTY_PATH: u64 = 0x1000;
const PATH_MAX: usize = 4096;

/// What a call did with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Opened for reading (or as a path only).
    Read,
    /// Opened for writing, an existing file or one it may create.
    Write,
    /// Made: a directory (mkdir), or the new name of a rename.
    Create,
    /// Removed, or the old name of a rename.
    Remove,
    /// Executed.
    Exec,
    /// A unix socket connected to (an abstract one's name starts with `@`).
    Connect,
    /// An internet address connected to (the path is the address).
    Network,
}

/// Everything one run was seen to do.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Journal {
    /// Each path with what was done to it, and how many times.
    pub accesses: BTreeMap<(PathBuf, Kind), usize>,
    /// System calls the run's filter refused, with how many times.
    pub refused: BTreeMap<String, usize>,
    /// Calls whose path could not be read (the caller died meanwhile, or
    /// its memory was not readable).
    pub unread: usize,
}

pub struct Learner {
    /// Our end and the child's, until the child is cloned.
    socket: Option<(OwnedFd, OwnedFd)>,
    /// By call number: the watched calls' names, and the errno of those
    /// the run's own filter denies.
    calls: HashMap<u32, (&'static str, Option<u32>)>,
    journal: Arc<Mutex<Journal>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Learner {
    /// The recorder `plan` needs, if it is a learning run.
    pub fn wanted(plan: &Plan) -> Result<Option<Learner>, HelperError> {
        let s = &plan.security.seccomp;
        if !s.learn {
            return Ok(None);
        }
        let start = |errno| HelperError::Start {
            helper: NAME,
            errno,
        };
        let arch = s.arch.ok_or(start(nix::errno::Errno::ENOSYS))?;
        let rules = if s.active { &s.rules[..] } else { &[] };
        let (_, refused) = learning_rules(rules);
        let mut calls = HashMap::new();
        for name in LEARNED_CALLS {
            if let Some(nr) = arch.number(name) {
                calls.insert(nr, (*name, None));
            }
        }
        for (name, errno) in refused {
            if let Some(nr) = arch.number(&name) {
                let known = static_name(&name);
                calls.insert(nr, (known, Some(errno)));
            }
        }
        Ok(Some(Learner {
            socket: Some(sys::seqpacket_pair().map_err(start)?),
            calls,
            journal: Arc::default(),
            stop: Arc::default(),
            thread: None,
        }))
    }

    /// What was recorded (complete once the launch has finished).
    pub fn journal(&self) -> Journal {
        self.journal.lock().map(|j| j.clone()).unwrap_or_default()
    }
}

/// The name of a denied call as a `'static` string: the syscall table's
/// own (`syscalls` knows every name a rule can hold).
fn static_name(name: &str) -> &'static str {
    use std::str::FromStr;
    syscalls::Sysno::from_str(name).map_or("?", |s| s.name())
}

impl Helper for Learner {
    fn name(&self) -> &'static str {
        NAME
    }

    fn before_clone(&mut self, setup: &mut CloneSetup<'_>) -> Result<(), HelperError> {
        if let Some((_, child_end)) = &self.socket {
            setup.pipes.learn = child_end.as_raw_fd();
        }
        Ok(())
    }

    fn start(&mut self, _child: &Started) -> Result<(), HelperError> {
        // The child's end is closed here: the child holds its own.
        let Some((ours, _child_end)) = self.socket.take() else {
            return Ok(());
        };
        let serve = Serve {
            calls: std::mem::take(&mut self.calls),
            journal: self.journal.clone(),
            stop: self.stop.clone(),
            mem: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("hutch-learn".into())
            .spawn(move || serve.run(ours))
            .map_err(|e| HelperError::Start {
                helper: NAME,
                errno: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EAGAIN)),
            })?;
        self.thread = Some(thread);
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        Some(format!(
            "{NAME}: seccomp user notification on {} calls, answered by hutch",
            LEARNED_CALLS.len()
        ))
    }

    fn finish(&mut self, code: i32) -> i32 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        code
    }
}

impl Drop for Learner {
    fn drop(&mut self) {
        self.finish(0);
    }
}

/// The thread's state.
struct Serve {
    calls: HashMap<u32, (&'static str, Option<u32>)>,
    journal: Arc<Mutex<Journal>>,
    stop: Arc<AtomicBool>,
    /// `/proc/PID/mem`, by pid, reopened when a read fails (the process
    /// executed something, or died and its pid was reused).
    mem: HashMap<u32, File>,
}

impl Serve {
    fn run(mut self, sock: OwnedFd) {
        let Some(listener) = self.receive_listener(&sock) else {
            return;
        };
        drop(sock);
        // Best effort: older kernels wake through the scheduler.
        let _ = notify::set_sync_wakeup(listener.as_fd());
        loop {
            let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(200u16)) {
                Ok(0) => {
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
            let revents = fds[0].revents().unwrap_or(PollFlags::empty());
            if revents.contains(PollFlags::POLLIN) {
                match notify::recv(listener.as_fd()) {
                    Ok(n) => self.answer(listener.as_fd(), &n),
                    // The caller is gone, or a signal interrupted it.
                    Err(nix::errno::Errno::ENOENT | nix::errno::Errno::EINTR) => {}
                    Err(_) => return,
                }
            } else if !revents.is_empty() {
                // Hung up: nothing holds the filter any more.
                return;
            }
        }
    }

    /// Waits for the child's message: the listener, or end of file when
    /// it failed before loading the filter.
    fn receive_listener(&self, sock: &OwnedFd) -> Option<OwnedFd> {
        loop {
            let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(200u16)) {
                Ok(0) if self.stop.load(Ordering::Relaxed) => return None,
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(_) => return None,
            }
            let mut data = [0u8; 1];
            return match sys::recv_message(sock.as_raw_fd(), &mut data) {
                Err(nix::errno::Errno::EAGAIN) => continue,
                Ok((_, fd)) => fd,
                Err(_) => None,
            };
        }
    }

    fn answer(&mut self, listener: std::os::fd::BorrowedFd<'_>, n: &Notif) {
        let nr = n.data.nr as u32;
        let Some(&(name, denied)) = self.calls.get(&nr) else {
            // Not a call the learning filter hands over: fail closed.
            let _ = notify::send(listener, n.id, Answer::Errno(libc::ENOSYS));
            return;
        };
        if let Some(errno) = denied {
            if let Ok(mut j) = self.journal.lock() {
                *j.refused.entry(name.to_string()).or_default() += 1;
            }
            let _ = notify::send(listener, n.id, Answer::Errno(errno as i32));
            return;
        }
        let seen = self.decode(name, n);
        // Read before this: if the caller died and its pid was reused
        // meanwhile, what was read is another process's and is dropped.
        let valid = notify::id_valid(listener, n.id);
        // The caller waits for this; the journal can wait for it.
        let _ = notify::send(listener, n.id, Answer::Continue);
        if let Ok(mut j) = self.journal.lock() {
            match seen {
                Some(list) if valid => {
                    for (path, kind) in list {
                        *j.accesses.entry((path, kind)).or_default() += 1;
                    }
                }
                _ => j.unread += 1,
            }
        }
    }

    /// The paths call `name` names, with what it does to them; `None` if
    /// they cannot be read.
    fn decode(&mut self, name: &str, n: &Notif) -> Option<Vec<(PathBuf, Kind)>> {
        let pid = n.pid;
        let a = n.data.args;
        let open_kind = |flags: u64| {
            let flags = flags as i32;
            if flags & libc::O_PATH != 0 {
                Kind::Read
            } else if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_CREAT != 0 {
                Kind::Write
            } else {
                Kind::Read
            }
        };
        let one = |this: &mut Serve, dirfd: i32, addr: u64, kind: Kind| {
            let p = this.path_at(pid, dirfd, addr)?;
            Some(vec![(p, kind)])
        };
        match name {
            "open" => one(self, AT_FDCWD, a[0], open_kind(a[1])),
            "creat" => one(self, AT_FDCWD, a[0], Kind::Write),
            "openat" => one(self, a[0] as i32, a[1], open_kind(a[2])),
            "openat2" => {
                let mut how = [0u8; 8];
                self.read_mem(pid, a[2], &mut how)?;
                one(self, a[0] as i32, a[1], open_kind(u64::from_ne_bytes(how)))
            }
            "execve" => one(self, AT_FDCWD, a[0], Kind::Exec),
            "execveat" if a[4] & AT_EMPTY_PATH != 0 => Some(Vec::new()),
            "execveat" => one(self, a[0] as i32, a[1], Kind::Exec),
            "mkdir" => one(self, AT_FDCWD, a[0], Kind::Create),
            "mkdirat" => one(self, a[0] as i32, a[1], Kind::Create),
            "unlink" | "rmdir" => one(self, AT_FDCWD, a[0], Kind::Remove),
            "unlinkat" => one(self, a[0] as i32, a[1], Kind::Remove),
            "rename" => {
                let from = self.path_at(pid, AT_FDCWD, a[0])?;
                let to = self.path_at(pid, AT_FDCWD, a[1])?;
                Some(vec![(from, Kind::Remove), (to, Kind::Create)])
            }
            "renameat" | "renameat2" => {
                let from = self.path_at(pid, a[0] as i32, a[1])?;
                let to = self.path_at(pid, a[2] as i32, a[3])?;
                Some(vec![(from, Kind::Remove), (to, Kind::Create)])
            }
            "connect" => self
                .address(pid, a[1], a[2])
                .map(|x| x.into_iter().collect()),
            _ => Some(Vec::new()),
        }
    }

    /// A socket address: a unix path (or `@name` for an abstract one), or
    /// an internet address.
    fn address(&mut self, pid: u32, addr: u64, len: u64) -> Option<Option<(PathBuf, Kind)>> {
        let len = (len as usize).min(128);
        if len < 2 {
            return Some(None);
        }
        let mut buf = vec![0u8; len];
        self.read_mem(pid, addr, &mut buf)?;
        let family = u16::from_ne_bytes([buf[0], buf[1]]) as i32;
        let path = &buf[2..];
        Some(match family {
            libc::AF_UNIX if path.first() == Some(&0) => {
                let name = String::from_utf8_lossy(&path[1..]);
                Some((PathBuf::from(format!("@{name}")), Kind::Connect))
            }
            libc::AF_UNIX => {
                let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
                if end == 0 {
                    return Some(None);
                }
                let p = Path::new(std::ffi::OsStr::from_bytes(&path[..end]));
                let p = if p.is_absolute() {
                    normalize(p)
                } else {
                    normalize(&self.base(pid, AT_FDCWD)?.join(p))
                };
                Some((p, Kind::Connect))
            }
            libc::AF_INET if len >= 8 => {
                let port = u16::from_be_bytes([buf[2], buf[3]]);
                let ip = std::net::Ipv4Addr::new(buf[4], buf[5], buf[6], buf[7]);
                Some((PathBuf::from(format!("{ip}:{port}")), Kind::Network))
            }
            libc::AF_INET6 if len >= 24 => {
                let port = u16::from_be_bytes([buf[2], buf[3]]);
                let mut o = [0u8; 16];
                o.copy_from_slice(&buf[8..24]);
                let ip = std::net::Ipv6Addr::from(o);
                Some((PathBuf::from(format!("[{ip}]:{port}")), Kind::Network))
            }
            _ => None,
        })
    }

    /// The path at `addr`, absolute: relative ones against `dirfd`.
    fn path_at(&mut self, pid: u32, dirfd: i32, addr: u64) -> Option<PathBuf> {
        let bytes = self.read_string(pid, addr)?;
        let p = Path::new(std::ffi::OsStr::from_bytes(&bytes));
        if p.is_absolute() {
            return Some(normalize(p));
        }
        Some(normalize(&self.base(pid, dirfd)?.join(p)))
    }

    /// The directory a relative path starts from, as the caller sees it
    /// (procfs shows the caller's own mount namespace's paths).
    fn base(&self, pid: u32, dirfd: i32) -> Option<PathBuf> {
        let link = if dirfd == AT_FDCWD {
            format!("/proc/{pid}/cwd")
        } else {
            format!("/proc/{pid}/fd/{dirfd}")
        };
        std::fs::read_link(link).ok()
    }

    /// A NUL-terminated string of at most PATH_MAX bytes, read a page at
    /// a time (the next page may not be mapped).
    fn read_string(&mut self, pid: u32, addr: u64) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = addr;
        // Most paths are short: a small read first, then to the end of
        // each page (the next one may not be mapped).
        let mut want = 256;
        let mut buf = [0u8; 4096];
        while out.len() < PATH_MAX {
            let to_page_end = 4096 - (at % 4096) as usize;
            let n = to_page_end.min(want).min(PATH_MAX - out.len());
            self.read_mem(pid, at, &mut buf[..n])?;
            if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..end]);
                return Some(out);
            }
            out.extend_from_slice(&buf[..n]);
            at += n as u64;
            want = 4096;
        }
        None
    }

    fn read_mem(&mut self, pid: u32, addr: u64, buf: &mut [u8]) -> Option<()> {
        for attempt in 0..2 {
            if attempt == 1 || !self.mem.contains_key(&pid) {
                let f = File::open(format!("/proc/{pid}/mem")).ok()?;
                if self.mem.len() > 256 {
                    self.mem.clear();
                }
                self.mem.insert(pid, f);
            }
            let f = self.mem.get(&pid)?;
            if f.read_exact_at(buf, addr).is_ok() {
                return Some(());
            }
        }
        self.mem.remove(&pid);
        None
    }
}

/// `.` and `..` taken out lexically: the path as the program named it
/// (symlinks are not followed: the kernel resolves them when it runs the
/// call, and a profile binds the name).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_lexically() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
        assert_eq!(normalize(Path::new("/")), PathBuf::from("/"));
    }
}
