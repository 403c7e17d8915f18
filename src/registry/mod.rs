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
//! exist, the directory is `$XDG_STATE_HOME/hutch/runtime-HOST` (default
//! under `~/.local/state`), never a name in `/tmp`: another user could make
//! that first and keep the caller from launching at all. Every directory
//! below the base is the caller's with mode 0700 (checked, never followed
//! if a symlink).
//!
//! Here by concern: [`record`] (the format), `store` (the directory, and
//! reserving, recording and removing), `procfs` (who a process is),
//! `namespaces` (the ones a launcher holds) and `target` (verifying what
//! `exec` and `stop` touch).

use std::collections::BTreeMap;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::host::Host;
use crate::paths::SANDBOX_NAME_RULE;
use crate::safe_fs::FsError;

mod namespaces;
mod procfs;
pub mod record;
mod store;
mod target;

pub use namespaces::{HeldNamespaces, NS_KINDS};
pub use procfs::{ProcId, proc_stat};
pub use record::{NsRef, Record, State, VolumeUse};
pub use store::{Entry, Registry, default_name};
pub use target::Target;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid sandbox name {0:?}: {SANDBOX_NAME_RULE}")]
    InvalidName(String),
    #[error(transparent)]
    Fs(#[from] FsError),
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
        "hutch has nowhere to keep its records of running sandboxes: XDG_RUNTIME_DIR is not a directory of yours, /run/user/UID does not exist and there is no home directory (HOME); set XDG_RUNTIME_DIR to a directory of yours with mode 0700"
    )]
    NoRuntimeDir,
    #[error(
        "cannot create {} for hutch's records of running sandboxes (XDG_RUNTIME_DIR is not a directory of yours and /run/user/UID does not exist, so they go to your home): {}; set XDG_RUNTIME_DIR to a directory of yours with mode 0700",
        .path.display(), .errno.desc()
    )]
    NoRuntimeBase { path: PathBuf, errno: Errno },
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
    #[error("cannot receive the namespaces of sandbox {name}: {}", .errno.desc())]
    Namespaces { name: String, errno: Errno },
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
