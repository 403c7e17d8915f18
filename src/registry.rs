//! The registry of running sandboxes: one JSON record per sandbox in
//! `$XDG_RUNTIME_DIR/hutch/sandboxes/NAME.json` (mode 0700 directories, 0600
//! files), written only by the launcher that runs the sandbox.
//!
//! - Before clone, the launcher reserves the name with a `starting` record
//!   (written to a temporary file, then renamed without replacing: two
//!   launches cannot take one name).
//! - When the payload has been executed (the child's report pipe closes
//!   without a failure), the record is rewritten, again atomically, as
//!   `running`, with the host pid and start time of the sandbox's first
//!   process (hutch's init, or the payload when `init = false`), and the
//!   **plan**: `hutch exec` applies exactly that confinement.
//! - The launcher removes it when the sandbox has exited. A launcher killed
//!   with SIGKILL leaves it behind: any reader treats a record whose launcher
//!   is gone (dead, or its pid reused: the start time differs) as stale and
//!   deletes it.
//!
//! Nothing in here is reachable from inside a sandbox: the planner refuses
//! binds that would expose the directory (`plan::volumes::check_exposure`).
//! `exec` and `stop` still verify the processes a record names before they
//! touch them (pidfd, start time, parent, executable, owner), so a stale or
//! forged record cannot point them at another process (CVE-2022-31214).
//!
//! When `$XDG_RUNTIME_DIR` is unset (cron, `su`) and `/run/user/UID` does not
//! exist, the directory is `/tmp/hutch-UID`, which must then be a directory
//! of the caller's with mode 0700 (checked, never followed if a symlink).

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::host::Host;
use crate::paths::{self, SANDBOX_NAME_RULE, valid_name};
use crate::sys;

/// Format version of the records.
const VERSION: u32 = 1;

/// `NS_GET_NSTYPE` of <linux/nsfs.h>: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::Ioctl = 0xb703;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid sandbox name {0:?}: {SANDBOX_NAME_RULE}")]
    InvalidName(String),
    #[error("{what} {}: {}", .path.display(), .errno.desc())]
    Io {
        what: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error(
        "hutch's runtime directory {} {why}; it holds the records `hutch exec` trusts, so it must be a directory of yours with mode 0700: {fix}",
        .path.display()
    )]
    Unsafe {
        path: PathBuf,
        why: String,
        fix: &'static str,
    },
    #[error(
        "a sandbox named `{name}` is already running (pid {pid}, profile {profile}); choose another name with --name"
    )]
    Taken {
        name: String,
        pid: i32,
        profile: String,
    },
    #[error("no running sandbox named `{0}` (see `hutch ps`)")]
    NotFound(String),
    #[error("sandbox `{0}` is still starting; try again in a moment")]
    Starting(String),
    #[error(
        "refusing to touch sandbox `{name}`: {why} (its record does not match the processes; it was removed as stale if the sandbox is gone)"
    )]
    Mismatch { name: String, why: String },
    #[error("cannot write the record of sandbox `{name}`: {error}")]
    Encode { name: String, error: String },
    #[error(
        "cannot read the plan recorded for sandbox `{name}` ({error}); was it started by another version of hutch?"
    )]
    Plan { name: String, error: String },
}

/// A process, identified beyond its pid: the start time (field 22 of
/// `/proc/PID/stat`, in clock ticks since boot) tells a reused pid apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: i32,
    pub start: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Name reserved; the sandbox is being built.
    Starting,
    /// The payload was executed.
    Running,
}

/// A volume a sandbox uses, and how: what the volume store locks and
/// the registry records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeUse {
    pub name: String,
    pub shared: bool,
    pub tmp: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub name: String,
    pub state: State,
    /// The outer hutch, which supervises the sandbox and removes the record.
    /// Its start time is filled in once running (0 before: see `created`).
    pub launcher: ProcId,
    /// When the record was made, in the clock ticks of `/proc/PID/stat`'s
    /// start times: a launcher that started later is not this one.
    pub created: u64,
    /// Device and inode of the launcher's executable; set once running.
    pub exe: (u64, u64),
    /// The sandbox's first process (hutch's init, or the payload with
    /// `init = false`), host pid; set once running.
    pub init: Option<ProcId>,
    pub uid: u32,
    pub profile: String,
    pub command: Vec<String>,
    /// Seconds since the epoch.
    pub started: u64,
    pub volumes: Vec<VolumeUse>,
    /// The sandbox's namespaces, as descriptors the launcher holds; set
    /// once running.
    pub namespaces: Vec<NsRef>,
    /// The cgroup directories of its `[limits]` (empty without limits);
    /// set once running.
    pub cgroup: Vec<PathBuf>,
    /// The plan the sandbox runs, as its launcher serialised it (the
    /// registry does not need its type: `exec` reads it); set once
    /// running.
    pub plan: Option<Box<RawValue>>,
}

/// One namespace of a sandbox: `kind` as in `/proc/PID/ns/KIND`, the
/// launcher's descriptor number for it, and its nsfs device and inode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsRef {
    pub kind: String,
    pub fd: i32,
    pub dev: u64,
    pub ino: u64,
}

/// Namespace kinds, in the order `exec` joins them (the user namespace
/// first: it grants the right to join the others), with their clone flags.
pub const NS_KINDS: &[(&str, libc::c_int)] = &[
    ("user", libc::CLONE_NEWUSER),
    ("mnt", libc::CLONE_NEWNS),
    ("pid", libc::CLONE_NEWPID),
    ("uts", libc::CLONE_NEWUTS),
    ("ipc", libc::CLONE_NEWIPC),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
];

fn ns_flag(kind: &str) -> Option<libc::c_int> {
    NS_KINDS.iter().find(|(k, _)| *k == kind).map(|(_, f)| *f)
}

/// The namespaces of a running sandbox, held by its launcher for the
/// sandbox's life so that `hutch exec` can join them (through
/// `/proc/LAUNCHER/fd/N`). The child hands them over (see `child::handoff`).
pub struct HeldNamespaces {
    _fds: Vec<OwnedFd>,
    refs: Vec<NsRef>,
}

impl HeldNamespaces {
    /// Takes the descriptors the child sent on `sock`: one per namespace in
    /// `flags` (clone flags), in [`NS_KINDS`] order.
    pub fn receive(sock: &OwnedFd, flags: u64) -> Result<HeldNamespaces, Errno> {
        let fds = sys::recv_fds(sock.as_raw_fd())?;
        let kinds: Vec<&(&str, libc::c_int)> = NS_KINDS
            .iter()
            .filter(|(_, f)| flags & *f as u64 != 0)
            .collect();
        if fds.len() != kinds.len() {
            return Err(Errno::EPROTO);
        }
        let mut refs = Vec::with_capacity(fds.len());
        for ((kind, flag), fd) in kinds.into_iter().zip(&fds) {
            // SAFETY: NS_GET_NSTYPE takes no argument and only answers.
            if unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) } != *flag {
                return Err(Errno::EPROTO);
            }
            let (dev, ino) = sys::dev_ino(fd.as_raw_fd())?;
            refs.push(NsRef {
                kind: kind.to_string(),
                fd: fd.as_raw_fd(),
                dev,
                ino,
            });
        }
        Ok(HeldNamespaces { _fds: fds, refs })
    }
}

/// `(ppid, start time)` of a process, from `/proc/PID/stat`.
pub fn proc_stat(pid: i32) -> Option<(i32, u64)> {
    // One read into a fixed buffer: the line is well under 1 KiB unless
    // the command name is absurd, and then it is cut after the fields
    // needed... or parse_stat fails and the process counts as gone.
    let path = cstring(&format!("/proc/{pid}/stat"));
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let fd = owned(fd);
    let mut buf = [0u8; 1024];
    // SAFETY: buf is valid for its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return None;
    }
    parse_stat(&buf[..n as usize])
}

fn parse_stat(text: &[u8]) -> Option<(i32, u64)> {
    // The command name (field 2) may contain spaces and parentheses: the
    // fields after it start after its last `)`.
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): field N is fields[N - 3].
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start))
}

/// The real uid of a process as the host sees it.
fn proc_uid(pid: i32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn exe_id(pid: &str) -> Option<(u64, u64)> {
    let m = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((m.dev(), m.ino()))
}

/// Whether a process still is the one a `ProcId` names.
fn alive(p: &ProcId) -> bool {
    proc_stat(p.pid).is_some_and(|(_, start)| start == p.start)
}

/// Now, in the clock ticks of `/proc/PID/stat` start times (CLOCK_BOOTTIME
/// in units of `_SC_CLK_TCK`).
fn boot_ticks() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "the clock and its tick rate are read together"
    )]
    // SAFETY: ts is valid for writes; sysconf only answers.
    let (rc, hz) = unsafe {
        (
            libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts),
            libc::sysconf(libc::_SC_CLK_TCK),
        )
    };
    if rc < 0 || hz <= 0 {
        return u64::MAX;
    }
    ts.tv_sec as u64 * hz as u64 + ts.tv_nsec as u64 * hz as u64 / 1_000_000_000
}

impl Record {
    /// Whether the launcher is still the process that made the record: the
    /// same start time once known; before, a process that started no later
    /// than the record was made (a reused pid belongs to a newer process).
    fn launcher_alive(&self) -> bool {
        if self.launcher.start != 0 {
            return alive(&self.launcher);
        }
        proc_stat(self.launcher.pid).is_some_and(|(_, start)| start <= self.created)
    }

    /// A record is stale once its launcher is gone: only the launcher
    /// removes a live one, so nothing else can race with it.
    fn stale(&self) -> bool {
        !self.launcher_alive()
    }

    /// Whether the sandbox is up: running, and its first process alive.
    pub fn is_running(&self) -> bool {
        self.state == State::Running && !self.stale() && self.init.as_ref().is_some_and(alive)
    }

    pub fn uptime(&self) -> u64 {
        now().saturating_sub(self.started)
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn owned(fd: i32) -> OwnedFd {
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn cstring(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// Opens `name` in `dir` as a private directory of `uid` (making it with
/// 0700 when `create`): never through a symlink, and refused if another
/// user owns it or others may enter it.
fn private_dir(
    dir: BorrowedFd<'_>,
    name: &CStr,
    path: &Path,
    uid: u32,
    create: bool,
) -> Result<Option<OwnedFd>, RegistryError> {
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let mut made = false;
    loop {
        // SAFETY: name is NUL-terminated.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
        if fd >= 0 {
            let fd = owned(fd);
            // SAFETY: an all-zero stat is valid storage for fstat to fill.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: st is valid for writes.
            if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
                return Err(RegistryError::Io {
                    what: "cannot inspect",
                    path: path.to_path_buf(),
                    errno: Errno::last(),
                });
            }
            if st.st_uid != uid {
                return Err(RegistryError::Unsafe {
                    path: path.to_path_buf(),
                    why: format!("belongs to uid {}", st.st_uid),
                    fix: "remove it (it may have been planted by another user), or set XDG_RUNTIME_DIR",
                });
            }
            if st.st_mode & 0o077 != 0 {
                return Err(RegistryError::Unsafe {
                    path: path.to_path_buf(),
                    why: format!("has mode {:04o}", st.st_mode & 0o7777),
                    fix: "run `chmod 700` on it",
                });
            }
            return Ok(Some(fd));
        }
        let errno = Errno::last();
        match errno {
            Errno::ENOENT if create && !made => {
                // SAFETY: name is NUL-terminated.
                if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o700) } < 0
                    && Errno::last() != Errno::EEXIST
                {
                    return Err(RegistryError::Io {
                        what: "cannot create",
                        path: path.to_path_buf(),
                        errno: Errno::last(),
                    });
                }
                made = true;
            }
            Errno::ENOENT => return Ok(None),
            Errno::ELOOP | Errno::ENOTDIR => {
                return Err(RegistryError::Unsafe {
                    path: path.to_path_buf(),
                    why: "is a symlink or not a directory".into(),
                    fix: "remove it (it may have been planted), or set XDG_RUNTIME_DIR",
                });
            }
            _ => {
                return Err(RegistryError::Io {
                    what: "cannot open",
                    path: path.to_path_buf(),
                    errno,
                });
            }
        }
    }
}

/// The registry directory, opened safely.
pub struct Registry {
    dir: OwnedFd,
    pub path: PathBuf,
    uid: u32,
}

impl Registry {
    /// Opens the registry; with `create`, makes its directories (0700).
    /// `Ok(None)`: there is none yet (nothing is running).
    pub fn open(host: &Host, create: bool) -> Result<Option<Registry>, RegistryError> {
        let runtime = paths::runtime_dir(host);
        let parent = runtime.parent().unwrap_or(Path::new("/"));
        let c = CString::new(parent.as_os_str().as_bytes()).unwrap_or_default();
        // The parent ($XDG_RUNTIME_DIR, /run/user/UID or /tmp) is taken as
        // the environment says; everything below is checked.
        // SAFETY: c is NUL-terminated.
        let pfd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if pfd < 0 {
            return Err(RegistryError::Io {
                what: "cannot open",
                path: parent.to_path_buf(),
                errno: Errno::last(),
            });
        }
        let pfd = owned(pfd);
        let leaf = runtime
            .file_name()
            .map(|n| n.as_bytes())
            .unwrap_or(b"hutch");
        let leaf = CString::new(leaf).unwrap_or_default();
        let Some(rfd) = private_dir(pfd.as_fd(), &leaf, &runtime, host.uid, create)? else {
            return Ok(None);
        };
        let path = runtime.join("sandboxes");
        let Some(dir) = private_dir(rfd.as_fd(), c"sandboxes", &path, host.uid, create)? else {
            return Ok(None);
        };
        Ok(Some(Registry {
            dir,
            path,
            uid: host.uid,
        }))
    }

    fn file(name: &str) -> CString {
        cstring(&format!("{name}.json"))
    }

    fn io(&self, what: &'static str, file: &str, errno: Errno) -> RegistryError {
        RegistryError::Io {
            what,
            path: self.path.join(file),
            errno,
        }
    }

    /// Reads a record; `Ok(None)` if there is none by that name.
    fn read(&self, name: &str) -> Result<Option<Record>, RegistryError> {
        let file = format!("{name}.json");
        let c = cstring(&file);
        // SAFETY: c is NUL-terminated.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            let errno = Errno::last();
            if errno == Errno::ENOENT {
                return Ok(None);
            }
            return Err(self.io("cannot open", &file, errno));
        }
        let mut f = std::fs::File::from(owned(fd));
        let meta = f.metadata().map_err(|e| {
            self.io(
                "cannot inspect",
                &file,
                Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            )
        })?;
        if meta.uid() != self.uid || !meta.is_file() {
            return Ok(None);
        }
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut text).map_err(|e| {
            self.io(
                "cannot read",
                &file,
                Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            )
        })?;
        match serde_json::from_slice::<Record>(&text) {
            Ok(r) if r.name == name && r.version == VERSION => Ok(Some(r)),
            // A record this hutch cannot read (another version): left alone
            // unless its launcher is gone.
            _ => {
                #[derive(Deserialize)]
                struct Minimal {
                    launcher: ProcId,
                }
                if let Ok(m) = serde_json::from_slice::<Minimal>(&text)
                    && proc_stat(m.launcher.pid).is_none()
                {
                    self.unlink(&file);
                }
                Ok(None)
            }
        }
    }

    fn unlink(&self, file: &str) {
        let c = cstring(file);
        // SAFETY: c is NUL-terminated.
        unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0) };
    }

    /// Writes `record` atomically: a temporary file renamed onto the name,
    /// without replacing an existing record when `replace` is false.
    fn write(&self, record: &Record, replace: bool) -> Result<(), RegistryError> {
        let data = serde_json::to_vec(record).map_err(|e| RegistryError::Encode {
            name: record.name.clone(),
            error: e.to_string(),
        })?;
        let tmp = format!(".{}.{}.tmp", record.name, record.launcher.pid);
        let ctmp = cstring(&tmp);
        let dir = self.dir.as_raw_fd();
        let create = || {
            // SAFETY: ctmp is NUL-terminated.
            unsafe {
                libc::openat(
                    dir,
                    ctmp.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o600 as libc::c_uint,
                )
            }
        };
        let mut fd = create();
        if fd < 0 && Errno::last() == Errno::EEXIST {
            // A leftover with our pid: a dead launcher's.
            // SAFETY: ctmp is NUL-terminated.
            unsafe { libc::unlinkat(dir, ctmp.as_ptr(), 0) };
            fd = create();
        }
        if fd < 0 {
            return Err(self.io("cannot create", &tmp, Errno::last()));
        }
        let fd = owned(fd);
        let written = sys::write_all(fd.as_raw_fd(), &data);
        drop(fd);
        let target = Self::file(&record.name);
        // Ok(true): renamed; Ok(false): linked (the temporary name remains).
        let published = written.and_then(|()| {
            let flags = if replace { 0 } else { sys::RENAME_NOREPLACE };
            match sys::renameat2(dir, &ctmp, dir, &target, flags) {
                // A filesystem without RENAME_NOREPLACE: link(2) never replaces.
                Err(Errno::EINVAL) if !replace => {
                    // SAFETY: both names are NUL-terminated.
                    if unsafe { libc::linkat(dir, ctmp.as_ptr(), dir, target.as_ptr(), 0) } < 0 {
                        Err(Errno::last())
                    } else {
                        Ok(false)
                    }
                }
                other => other.map(|()| true),
            }
        });
        if published != Ok(true) {
            // SAFETY: ctmp is NUL-terminated.
            unsafe { libc::unlinkat(dir, ctmp.as_ptr(), 0) };
        }
        let r = published.map(drop);
        r.map_err(|e| self.io("cannot write", &format!("{}.json", record.name), e))
    }

    /// Reserves a name for a sandbox about to start: `name`, or one made
    /// from the profile and a short random id. The record says which
    /// profile and command it runs and which volumes it uses.
    pub fn reserve(
        &self,
        name: Option<&str>,
        profile: &str,
        command: &[String],
        volumes: &[VolumeUse],
    ) -> Result<Entry<'_>, RegistryError> {
        if let Some(n) = name
            && !valid_name(n)
        {
            return Err(RegistryError::InvalidName(n.to_string()));
        }
        // Only what is cheap before the sandbox starts: the exact start time
        // and the executable are filled in once it runs.
        let launcher = ProcId {
            pid: std::process::id() as i32,
            start: 0,
        };
        let mut record = Record {
            version: VERSION,
            name: String::new(),
            state: State::Starting,
            launcher,
            created: boot_ticks(),
            exe: (0, 0),
            init: None,
            uid: self.uid,
            profile: profile.to_string(),
            command: command.to_vec(),
            started: now(),
            volumes: volumes.to_vec(),
            namespaces: Vec::new(),
            cgroup: Vec::new(),
            plan: None,
        };
        for attempt in 0..8 {
            record.name = match name {
                Some(n) => n.to_string(),
                None => default_name(profile),
            };
            match self.write(&record, false) {
                Ok(()) => {
                    return Ok(Entry {
                        registry: self,
                        record,
                    });
                }
                Err(RegistryError::Io {
                    errno: Errno::EEXIST,
                    ..
                }) => {
                    match self.read(&record.name)? {
                        Some(old) if !old.stale() => {
                            if name.is_none() && attempt < 7 {
                                continue;
                            }
                            return Err(RegistryError::Taken {
                                name: old.name.clone(),
                                pid: old.init.map_or(old.launcher.pid, |i| i.pid),
                                profile: old.profile,
                            });
                        }
                        // Stale (or unreadable and gone): take its place.
                        Some(_) => self.unlink(&format!("{}.json", record.name)),
                        None => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::Taken {
            name: record.name,
            pid: 0,
            profile: profile.to_string(),
        })
    }

    /// Every record, stale ones removed (and leftover temporary files of
    /// dead launchers). Sandboxes still starting are included.
    pub fn records(&self) -> Vec<Record> {
        let mut out = Vec::new();
        // SAFETY: "." is NUL-terminated; the descriptor is ours to read.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                c".".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return out;
        }
        let Ok(mut d) = nix::dir::Dir::from_fd(owned(fd)) else {
            return out;
        };
        let mut names = Vec::new();
        for e in d.iter().flatten() {
            if let Ok(n) = e.file_name().to_str() {
                names.push(n.to_string());
            }
        }
        for file in names {
            if let Some(name) = file.strip_suffix(".json")
                && valid_name(name)
            {
                match self.read(name) {
                    Ok(Some(r)) if r.stale() => self.unlink(&file),
                    Ok(Some(r)) => out.push(r),
                    _ => {}
                }
            } else if let Some(pid) = file
                .strip_suffix(".tmp")
                .and_then(|f| f.rsplit('.').next())
                .and_then(|p| p.parse::<i32>().ok())
                && proc_stat(pid).is_none()
            {
                self.unlink(&file);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The record of a running sandbox.
    pub fn find(&self, name: &str) -> Result<Record, RegistryError> {
        if !valid_name(name) {
            return Err(RegistryError::InvalidName(name.to_string()));
        }
        match self.read(name)? {
            Some(r) if r.stale() => {
                self.unlink(&format!("{name}.json"));
                Err(RegistryError::NotFound(name.to_string()))
            }
            Some(r) if r.state == State::Starting => Err(RegistryError::Starting(name.into())),
            Some(r) => Ok(r),
            None => Err(RegistryError::NotFound(name.to_string())),
        }
    }

    /// Removes the record of a sandbox whose launcher is gone.
    pub fn remove_stale(&self, name: &str) {
        if let Ok(Some(r)) = self.read(name)
            && r.stale()
        {
            self.unlink(&format!("{name}.json"));
        }
    }
}

/// `PROFILE-abc123`: the profile's last path component (without `.toml`),
/// reduced to name characters, and six random hex digits.
pub fn default_name(profile: &str) -> String {
    let base = Path::new(profile)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("sandbox");
    let base = base.strip_suffix(".toml").unwrap_or(base);
    let mut clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    while clean
        .chars()
        .next()
        .is_some_and(|c| !c.is_ascii_alphanumeric())
    {
        clean.remove(0);
    }
    if clean.is_empty() {
        clean = "sandbox".into();
    }
    let mut id = [0u8; 3];
    // SAFETY: id is valid for 3 bytes of writes.
    let n = unsafe { libc::getrandom(id.as_mut_ptr().cast(), id.len(), 0) };
    if n != 3 {
        // No getrandom: the time is random enough to tell launches apart.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        id.copy_from_slice(&t.to_le_bytes()[..3]);
    }
    format!("{clean}-{:02x}{:02x}{:02x}", id[0], id[1], id[2])
}

/// A launch's record, removed when dropped (after the sandbox has exited).
pub struct Entry<'r> {
    registry: &'r Registry,
    record: Record,
}

impl Entry<'_> {
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Records the sandbox as running: its first process, the namespaces
    /// its launcher holds, and its plan (whatever `exec` will read back
    /// with [`Registry::target`]).
    pub fn running(
        &mut self,
        init_pid: i32,
        namespaces: &HeldNamespaces,
        cgroup: Vec<PathBuf>,
        plan: &impl Serialize,
    ) -> Result<(), RegistryError> {
        let plan = serde_json::value::to_raw_value(plan).map_err(|e| RegistryError::Encode {
            name: self.record.name.clone(),
            error: e.to_string(),
        })?;
        let Some((_, start)) = proc_stat(init_pid) else {
            // It is gone already: nothing to record.
            return Ok(());
        };
        let me = self.record.launcher.pid;
        self.record.launcher.start = proc_stat(me).map_or(0, |(_, s)| s);
        self.record.exe = exe_id("self").unwrap_or((0, 0));
        self.record.state = State::Running;
        self.record.init = Some(ProcId {
            pid: init_pid,
            start,
        });
        self.record.namespaces = namespaces.refs.clone();
        self.record.cgroup = cgroup;
        self.record.plan = Some(plan);
        self.registry.write(&self.record, true)
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.registry.unlink(&format!("{}.json", self.record.name));
    }
}

/// Live sandboxes using each volume (by volume name).
pub fn volume_users(host: &Host) -> BTreeMap<String, Vec<String>> {
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Ok(Some(reg)) = Registry::open(host, false) {
        for r in reg.records() {
            for v in &r.volumes {
                users
                    .entry(v.name.clone())
                    .or_default()
                    .push(r.name.clone());
            }
        }
    }
    users
}

/// Live sandboxes using `volume`, but for the one named `except` (the
/// caller's own).
pub fn users_of_volume(host: &Host, volume: &str, except: Option<&str>) -> Vec<String> {
    let mut users = volume_users(host).remove(volume).unwrap_or_default();
    users.retain(|u| Some(u.as_str()) != except);
    users
}

/// A running sandbox, checked against its record: its namespaces (opened
/// from its verified launcher, in joining order, with their clone flags)
/// and its plan, read as the type `P` the caller asks for. What `exec`
/// joins.
pub struct Target<P> {
    pub namespaces: Vec<(libc::c_int, OwnedFd)>,
    pub record: Record,
    pub plan: P,
}

fn mismatch(r: &Record, why: impl Into<String>) -> RegistryError {
    RegistryError::Mismatch {
        name: r.name.clone(),
        why: why.into(),
    }
}

/// Holds `p` with a pidfd after checking it is still the process recorded.
fn pin(r: &Record, p: &ProcId, what: &str) -> Result<OwnedFd, RegistryError> {
    let fd = sys::pidfd_open(p.pid).map_err(|e| {
        mismatch(
            r,
            format!("its {what} (pid {}) is gone: {}", p.pid, e.desc()),
        )
    })?;
    Ok(owned(fd))
}

/// Checks that the launcher a record names is that launcher: same start
/// time, same executable, same owner.
fn check_launcher(r: &Record, uid: u32) -> Result<(), RegistryError> {
    let l = &r.launcher;
    if !r.launcher_alive() {
        return Err(mismatch(r, format!("its launcher (pid {}) is gone", l.pid)));
    }
    // (Recorded once running; a sandbox still starting is checked by its
    // start time and owner only.)
    if r.state == State::Running && exe_id(&l.pid.to_string()) != Some(r.exe) {
        return Err(mismatch(
            r,
            format!("process {} does not run the executable recorded", l.pid),
        ));
    }
    if proc_uid(l.pid) != Some(uid) || r.uid != uid {
        return Err(mismatch(r, format!("process {} is not yours", l.pid)));
    }
    Ok(())
}

/// Confirms a pidfd still refers to a live process: if so, whatever was
/// read from `/proc/PID` before was about that very process.
fn still_alive(r: &Record, pidfd: &OwnedFd, pid: i32) -> Result<(), RegistryError> {
    sys::pidfd_send_signal(pidfd.as_raw_fd(), 0).map_err(|e| {
        mismatch(
            r,
            format!("process {pid} ended while being checked: {}", e.desc()),
        )
    })
}

impl Registry {
    /// The sandbox `name`, verified: its launcher is alive, started when
    /// recorded, runs the recorded hutch executable and is the caller's; its
    /// first process is alive and the launcher's child; and each namespace
    /// descriptor taken from the launcher is of the recorded kind and inode.
    pub fn target<P: DeserializeOwned>(&self, name: &str) -> Result<Target<P>, RegistryError> {
        let r = self.find(name)?;
        let (Some(init), Some(plan)) = (r.init, r.plan.as_ref()) else {
            return Err(RegistryError::Starting(name.into()));
        };
        let plan = serde_json::from_str(plan.get()).map_err(|e| RegistryError::Plan {
            name: name.to_string(),
            error: e.to_string(),
        })?;
        let launcher = pin(&r, &r.launcher, "launcher")?;
        check_launcher(&r, self.uid)?;
        match proc_stat(init.pid) {
            Some((ppid, start)) if start == init.start && ppid == r.launcher.pid => {}
            Some(_) => {
                return Err(mismatch(
                    &r,
                    format!(
                        "process {} is not the one recorded (its pid was reused)",
                        init.pid
                    ),
                ));
            }
            None => return Err(RegistryError::NotFound(name.into())),
        }
        if proc_uid(init.pid) != Some(self.uid) {
            return Err(mismatch(&r, format!("process {} is not yours", init.pid)));
        }
        let mut namespaces = Vec::new();
        for ns in &r.namespaces {
            let Some(flag) = ns_flag(&ns.kind) else {
                return Err(mismatch(
                    &r,
                    format!("unknown namespace kind {:?}", ns.kind),
                ));
            };
            let path = cstring(&format!("/proc/{}/fd/{}", r.launcher.pid, ns.fd));
            // SAFETY: path is NUL-terminated.
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(mismatch(
                    &r,
                    format!(
                        "cannot open its {} namespace from its launcher: {}",
                        ns.kind,
                        Errno::last().desc()
                    ),
                ));
            }
            let fd = owned(fd);
            // SAFETY: NS_GET_NSTYPE takes no argument and only answers.
            let kind = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
            if sys::dev_ino(fd.as_raw_fd()) != Ok((ns.dev, ns.ino)) || kind != flag {
                return Err(mismatch(
                    &r,
                    format!(
                        "descriptor {} of process {} is not its {} namespace",
                        ns.fd, r.launcher.pid, ns.kind
                    ),
                ));
            }
            namespaces.push((flag, fd));
        }
        namespaces.sort_by_key(|(flag, _)| NS_KINDS.iter().position(|(_, f)| f == flag));
        // The launcher is still the process all of this was read from.
        still_alive(&r, &launcher, r.launcher.pid)?;
        Ok(Target {
            namespaces,
            record: r,
            plan,
        })
    }

    /// The launcher of sandbox `name`, verified and held by a pidfd: what
    /// `stop` signals.
    pub fn launcher(&self, name: &str) -> Result<(Record, OwnedFd), RegistryError> {
        let r = match self.find(name) {
            Err(RegistryError::Starting(_)) => self
                .read(name)?
                .ok_or_else(|| RegistryError::NotFound(name.into()))?,
            other => other?,
        };
        let pidfd = pin(&r, &r.launcher, "launcher")?;
        check_launcher(&r, self.uid)?;
        still_alive(&r, &pidfd, r.launcher.pid)?;
        Ok((r, pidfd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let mut line = String::from("1234 (a) b (c) d) S 77");
        for i in 5..=21 {
            line.push_str(&format!(" {i}"));
        }
        line.push_str(" 987654 23 24\n");
        assert_eq!(parse_stat(line.as_bytes()), Some((77, 987654)));
        let me = std::process::id() as i32;
        let (ppid, start) = proc_stat(me).unwrap();
        assert_eq!(ppid, nix::unistd::getppid().as_raw());
        assert!(start > 0);
    }

    #[test]
    fn default_names_are_valid() {
        for profile in [
            "cli",
            "base/system",
            "./my profile.toml",
            "/x/.hidden.toml",
            "é",
        ] {
            let n = default_name(profile);
            assert!(valid_name(&n), "{profile} → {n}");
        }
        assert!(default_name("cli").starts_with("cli-"));
        assert!(default_name("./my profile.toml").starts_with("my-profile-"));
        assert_ne!(default_name("cli"), default_name("cli"));
    }
}
