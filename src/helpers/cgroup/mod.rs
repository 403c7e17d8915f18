//! The cgroup a sandbox runs in, from before clone until it is gone: the
//! helper that applies a [`LimitsPlan`] with the first backend that works
//! (see [`crate::plan::limits`]): a directory hutch creates ([`fs`]) or a
//! transient systemd scope ([`systemd`]).
//!
//! The launcher creates the cgroup, places the sandbox in it before it runs
//! anything (the child waits on its go pipe unless it was cloned into the
//! cgroup), watches `memory.events` and `pids.events`, reports OOM kills
//! and refused forks, and removes the cgroup afterwards.

pub mod fs;
pub mod systemd;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::PollFlags;
use std::path::PathBuf;

use super::{CloneSetup, Helper, HelperError, Started};
use crate::plan::limits::{BEST_EFFORT_HELP, Backend, BackendPlan, LimitsPlan, size};
use crate::prepare::Barrier;
use crate::profile::schema::Enforce;

/// What went wrong applying limits at run time.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Backend(String),
    /// Required limits that no backend could apply after all.
    #[error("cannot apply the [limits] of this profile: {}; {BEST_EFFORT_HELP}", .0.join("; "))]
    Unenforceable(Vec<String>),
}

impl CgroupError {
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CgroupError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// The cgroup a running sandbox is in.
enum Active {
    Fs(fs::FsCgroup),
    /// A systemd scope; systemd removes its cgroup when the sandbox ends.
    Scope {
        unit: String,
        dir: PathBuf,
    },
}

/// Counters read from the cgroup's event files.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Events {
    /// Processes the OOM killer killed.
    pub oom_kills: u64,
    /// Forks refused at `pids`.
    pub pids_max: u64,
}

/// The limits of one launch, from before clone until the cgroup is gone.
pub struct Session {
    plan: LimitsPlan,
    /// Backends not tried yet.
    remaining: Vec<BackendPlan>,
    /// Why the backends tried so far failed.
    failures: Vec<String>,
    /// The cgroup the sandbox is (or will be cloned) in, and its backend
    /// with the limits it leaves out.
    active: Option<(Active, BackendPlan)>,
    /// The new cgroup, for clone3's CLONE_INTO_CGROUP.
    clone_into: Option<OwnedFd>,
    /// memory.events, pids.events (cgroup v2): they signal changes to poll().
    watched: Vec<(std::fs::File, PathBuf)>,
    events: Events,
    /// The sandbox gets a cgroup namespace, which must be rooted at its
    /// cgroup: the child makes it once placed there.
    cgroup_ns: bool,
    /// No backend worked (best-effort): the sandbox runs without limits.
    gave_up: bool,
    finished: bool,
}

impl Session {
    /// The limits of a launch that has not started: nothing made yet.
    /// `cgroup_ns`: the sandbox gets a cgroup namespace.
    pub fn new(plan: &LimitsPlan, cgroup_ns: bool) -> Session {
        Session {
            plan: plan.clone(),
            remaining: plan.backends.clone(),
            failures: plan.unusable.clone(),
            active: None,
            clone_into: None,
            watched: Vec::new(),
            events: Events::default(),
            cgroup_ns,
            gave_up: false,
            finished: false,
        }
    }

    /// Prepares what can be prepared before clone: a cgroup v2 or v1
    /// directory when that backend comes first (a systemd scope needs the
    /// child's pid, so it is made after clone). Only file system calls: the
    /// launcher is still single-threaded.
    fn make_before_clone(&mut self) -> Result<(), CgroupError> {
        let s = self;
        while let Some(next) = s.remaining.first() {
            if matches!(next.backend, Backend::Systemd { .. }) {
                break;
            }
            let b = s.remaining.remove(0);
            let made = s.create_fs(&b).and_then(|cg| match cg.clone_fd() {
                Ok(fd) => Ok((cg, fd)),
                Err(e) => {
                    cg.remove();
                    Err(e)
                }
            });
            match made {
                Ok((cg, fd)) => {
                    s.clone_into = fd;
                    s.active = Some((Active::Fs(cg), b));
                    break;
                }
                Err(e) => s.failures.push(format!("{}: {e}", b.backend.title())),
            }
        }
        if s.active.is_none() && s.remaining.is_empty() {
            s.give_up()?;
        }
        Ok(())
    }

    fn dir_name(&self) -> String {
        format!("{}-{}", self.plan.name, std::process::id())
    }

    fn create_fs(&self, b: &BackendPlan) -> Result<fs::FsCgroup, CgroupError> {
        let skip = b.missing_keys();
        match &b.backend {
            Backend::V2 { mount, parent, .. } => {
                fs::FsCgroup::create_v2(mount, parent, &self.dir_name(), &self.plan, &skip)
            }
            Backend::V1 { dirs } => {
                fs::FsCgroup::create_v1(dirs, &self.dir_name(), &self.plan, &skip)
            }
            Backend::Systemd { .. } => Err(CgroupError::Backend(
                "a systemd scope is not a directory hutch creates".into(),
            )),
        }
    }

    /// No backend worked: an error for required limits, a warning otherwise.
    fn give_up(&mut self) -> Result<(), CgroupError> {
        if self.plan.enforce == Enforce::Required {
            return Err(CgroupError::Unenforceable(self.failures.clone()));
        }
        self.gave_up = true;
        let keys: Vec<&str> = self.plan.keys().iter().map(|k| k.name()).collect();
        crate::diag::warning(format_args!(
            "not enforced: [limits] {}: {}",
            keys.join(", "),
            self.failures.join("; ")
        ));
        Ok(())
    }

    /// Puts the child in its cgroup unless clone already did
    /// (`cloned_into`), trying the remaining backends in order. The child
    /// has run nothing of the profile yet; on error the caller kills it.
    fn after_clone(&mut self, pid: libc::pid_t, cloned_into: bool) -> Result<(), CgroupError> {
        self.clone_into = None;
        if self.gave_up {
            return Ok(());
        }
        let attach_failed = match &self.active {
            Some((Active::Fs(cg), b)) if !cloned_into => cg.attach(pid).err().map(|e| {
                cg.remove();
                format!("{}: {e}", b.backend.title())
            }),
            _ => None,
        };
        if let Some(why) = attach_failed {
            self.failures.push(why);
            self.active = None;
        }
        while self.active.is_none() && !self.remaining.is_empty() {
            let mut b = self.remaining.remove(0);
            let result = match b.backend.clone() {
                Backend::Systemd {
                    address,
                    system,
                    mount,
                } => self.start_scope(&address, system, &mount, pid, &mut b),
                _ => self.create_fs(&b).and_then(|cg| match cg.attach(pid) {
                    Ok(()) => Ok(Active::Fs(cg)),
                    Err(e) => {
                        cg.remove();
                        Err(e)
                    }
                }),
            };
            match result {
                Ok(a) => self.active = Some((a, b)),
                Err(e) => self.failures.push(format!("{}: {e}", b.backend.title())),
            }
        }
        if self.active.is_none() {
            return self.give_up();
        }
        self.warn_unapplied();
        self.watch_events();
        Ok(())
    }

    fn start_scope(
        &self,
        address: &str,
        system: bool,
        mount: &std::path::Path,
        pid: libc::pid_t,
        b: &mut BackendPlan,
    ) -> Result<Active, CgroupError> {
        let skip = b.missing_keys();
        let unit = crate::plan::limits::unit_name(&self.plan.name, Some(pid as u32));
        let props = systemd::properties(&self.plan, &skip, pid as u32);
        systemd::start_scope(address, system, &unit, props)?;
        let dir = systemd::scope_dir(mount, pid, &unit)?;
        // systemd ignores limits whose controller it was not delegated:
        // check what the kernel really has.
        let unapplied = fs::verify(&dir, &self.plan, &skip);
        if !unapplied.is_empty() {
            if self.plan.enforce == Enforce::Required {
                let why: Vec<String> = unapplied
                    .iter()
                    .map(|(k, w)| format!("{}: {w}", k.name()))
                    .collect();
                // The caller ends the sandbox, and systemd the empty scope.
                return Err(CgroupError::Backend(format!(
                    "{unit} lacks limits: {}",
                    why.join("; ")
                )));
            }
            b.missing.extend(unapplied);
        }
        Ok(Active::Scope { unit, dir })
    }

    fn dir(&self) -> Option<PathBuf> {
        match &self.active {
            Some((Active::Fs(cg), _)) => cg.dirs().first().cloned(),
            Some((Active::Scope { dir, .. }, _)) => Some(dir.clone()),
            None => None,
        }
    }

    /// Warns about the limits the backend in use leaves out.
    fn warn_unapplied(&self) {
        if let Some((_, b)) = &self.active {
            for (k, why) in &b.missing {
                crate::diag::warning(format_args!("not enforced: limit `{}`: {why}", k.name()));
            }
        }
    }

    /// `limits memory 64 MiB, pids 32 via BACKEND: WHERE`, once placed.
    fn applied(&self) -> Option<String> {
        let (active, b) = self.active.as_ref()?;
        let skip = b.missing_keys();
        let applied: Vec<String> = self
            .plan
            .keys()
            .into_iter()
            .filter(|k| !skip.contains(k))
            .map(|k| self.plan.describe(k))
            .collect();
        let place = match active {
            Active::Fs(cg) => cg
                .dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            Active::Scope { unit, dir } => format!("{unit} ({})", dir.display()),
        };
        Some(format!(
            "limits {} via {}: {place}",
            applied.join(", "),
            b.backend.title()
        ))
    }

    /// Opens the v2 event files, whose changes wake poll() with POLLPRI.
    fn watch_events(&mut self) {
        let v2 = match &self.active {
            Some((Active::Fs(cg), _)) => cg.is_v2(),
            Some((Active::Scope { .. }, _)) => true,
            None => false,
        };
        let Some(dir) = self.dir().filter(|_| v2) else {
            return;
        };
        for f in ["memory.events", "pids.events"] {
            let path = dir.join(f);
            if let Ok(file) = std::fs::File::open(&path) {
                self.watched.push((file, path));
            }
        }
        self.refresh();
    }

    /// Re-reads the watched event files (poll said they changed). A systemd
    /// scope disappears as soon as the sandbox ends, so its counters are
    /// read while it runs.
    pub fn refresh(&mut self) {
        for (fd, path) in &self.watched {
            if let Some(text) = fs::pread_all(fd) {
                fs::merge_events(&mut self.events, path, &text);
            }
        }
    }

    /// After the sandbox ended with `code`: reports OOM kills and refused
    /// forks, and removes the cgroup. Returns the exit code for hutch: the
    /// payload's (137 when the OOM killer killed it).
    fn finish_session(&mut self, code: i32) -> i32 {
        if self.finished {
            return code;
        }
        self.finished = true;
        self.refresh();
        if let Some((Active::Fs(cg), _)) = &self.active {
            for (path, text) in cg.event_files() {
                fs::merge_events(&mut self.events, &path, &text);
            }
            cg.remove();
        }
        self.watched.clear();
        let ev = self.events;
        if ev.oom_kills > 0 {
            let limit = self
                .plan
                .memory
                .map(|m| format!(" of {}", size(m)))
                .unwrap_or_default();
            if code == 128 + libc::SIGKILL {
                crate::diag::error(format_args!(
                    "out of memory: the sandbox reached its memory limit{limit} and the kernel's OOM killer killed the payload (exit status 137)"
                ));
            } else {
                crate::diag::error(format_args!(
                    "out of memory: the sandbox reached its memory limit{limit} and the kernel's OOM killer killed {} process(es) in it",
                    ev.oom_kills
                ));
            }
        }
        if ev.pids_max > 0 {
            crate::diag::error(format_args!(
                "the sandbox reached its process limit (pids {}): {} fork(s) failed",
                self.plan.pids.unwrap_or(0),
                ev.pids_max
            ));
        }
        code
    }

    /// The cgroup directories the sandbox is in (one per hierarchy with
    /// cgroup v1), for `hutch exec` to put what it runs there too.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        match &self.active {
            Some((Active::Fs(cg), _)) => cg.dirs().to_vec(),
            Some((Active::Scope { dir, .. }, _)) => vec![dir.clone()],
            None => Vec::new(),
        }
    }
}

impl Helper for Session {
    fn name(&self) -> &'static str {
        "the cgroup for [limits]"
    }

    /// A cgroup directory to clone into, when that backend comes first;
    /// a cgroup namespace made by the child once it is placed, so that it
    /// is rooted at the sandbox's cgroup and not at hutch's own.
    fn before_clone(&mut self, setup: &mut CloneSetup<'_>) -> Result<(), HelperError> {
        self.make_before_clone()?;
        setup.into_cgroup = self.clone_into.as_ref().map(|f| f.as_raw_fd());
        if self.cgroup_ns {
            setup.flags &= !(libc::CLONE_NEWCGROUP as u64);
            setup.prepared.unshare_cgroup_ns = true;
        }
        Ok(())
    }

    /// Unless cloned into its cgroup, the child waits to be placed there
    /// before it makes its cgroup namespace or runs anything.
    fn barrier(&self, setup: &CloneSetup<'_>) -> Option<Barrier> {
        setup.into_cgroup.is_none().then_some(Barrier::Early)
    }

    /// Places the child (a D-Bus round trip for a systemd scope); threads
    /// are allowed from here on.
    fn start(&mut self, child: &Started) -> Result<(), HelperError> {
        Ok(self.after_clone(child.pid, child.in_cgroup)?)
    }

    fn describe(&self) -> Option<String> {
        self.applied()
    }

    /// memory.events and pids.events: a change wakes poll() with POLLPRI.
    fn watch(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        self.watched
            .iter()
            .map(|(f, _)| (f.as_fd(), PollFlags::POLLPRI))
            .collect()
    }

    fn woken(&mut self) {
        self.refresh();
    }

    fn finish(&mut self, code: i32) -> i32 {
        self.finish_session(code)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A launch that failed half-way still removes its cgroup.
        if !self.finished
            && let Some((Active::Fs(cg), _)) = &self.active
        {
            cg.remove();
        }
    }
}
