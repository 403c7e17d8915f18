//! The record format: one JSON file per sandbox, as the launcher writes it
//! and `ps`, `exec` and `stop` read it.

use std::ffi::OsString;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::procfs::{ProcId, alive, proc_stat};

/// Format version of the records.
pub(super) const VERSION: u32 = 1;

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

/// One namespace of a sandbox: `kind` as in `/proc/PID/ns/KIND`, the
/// launcher's descriptor number for it, and its nsfs device and inode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsRef {
    pub kind: String,
    pub fd: i32,
    pub dev: u64,
    pub ino: u64,
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
    /// The payload's command line, as bytes (see `crate::argv::json`).
    #[serde(with = "crate::argv::json")]
    pub command: Vec<OsString>,
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

impl Record {
    /// Whether the launcher is still the process that made the record: the
    /// same start time once known; before, a process that started no later
    /// than the record was made (a reused pid belongs to a newer process).
    pub(super) fn launcher_alive(&self) -> bool {
        if self.launcher.start != 0 {
            return alive(&self.launcher);
        }
        proc_stat(self.launcher.pid).is_some_and(|(_, start)| start <= self.created)
    }

    /// A record is stale once its launcher is gone: only the launcher
    /// removes a live one, so nothing else can race with it.
    pub(super) fn stale(&self) -> bool {
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

/// Seconds since the epoch.
pub(super) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
