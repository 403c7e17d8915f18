//! Shims: hutch in front of installed programs, by their own names
//! (firejail's `firecfg`, done without setuid and undone exactly).
//!
//! - [`dispatch`]: hutch started under another name runs that program in
//!   a sandbox (the launch path of every shim).
//! - [`lookup`]: the program behind a name in `PATH`, shims told apart by
//!   identity (device and inode of hutch's executable), never by name.
//! - `install`: `hutch shim install | remove`, which make and take away
//!   symlinks and menu-entry overrides, recorded in [`record`].
//! - [`desktop`]: parsing a `.desktop` entry and writing its override.
//! - [`exclude`]: what `install --all` leaves out, and why.
//! - `status`: `hutch shim list`, and the columns of `hutch profiles`.
//!
//! Where things go, by scope:
//!
//! ```text
//!              shims              menu overrides                  record
//! user         ~/.local/bin       $XDG_DATA_HOME/applications     $XDG_DATA_HOME/hutch/shims.json
//! --system     /usr/local/bin     /usr/local/share/applications   /var/lib/hutch/shims.json
//! ```

pub mod desktop;
pub mod dispatch;
pub mod exclude;
mod install;
pub mod lookup;
mod menus;
pub mod record;
mod status;

use std::path::{Path, PathBuf};

use crate::cli::ShimCommand;
use crate::host::Host;

pub use status::{ProgramStatus, ShimInfo, ShimState, program_status};

/// The profiles hutch ships as bases, not for a program of their name.
pub const GENERIC_PROFILES: &[&str] = &["default", "cli", "container"];

/// Whose shims: the caller's, or (installed by root) everyone's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    User,
    System,
}

/// The system's shim directory.
pub const SYSTEM_BIN: &str = "/usr/local/bin";
/// Where the system's menu-entry overrides go.
pub const SYSTEM_APPLICATIONS: &str = "/usr/local/share/applications";
/// The data directories of menu entries when `XDG_DATA_DIRS` is not set.
const DEFAULT_DATA_DIRS: &str = "/usr/local/share/:/usr/share/";

impl Scope {
    pub fn of(system: bool) -> Scope {
        if system { Scope::System } else { Scope::User }
    }

    /// Where this scope's shims go: `~/.local/bin` (`None` without a home
    /// directory) or `/usr/local/bin`.
    pub fn bin_dir(self, host: &Host) -> Option<PathBuf> {
        match self {
            Scope::User => host.home().map(|h| h.join(".local/bin")),
            Scope::System => Some(PathBuf::from(SYSTEM_BIN)),
        }
    }

    /// Where this scope's menu-entry overrides go.
    pub fn applications_dir(self, host: &Host) -> Option<PathBuf> {
        match self {
            Scope::User => host
                .xdg_base("XDG_DATA_HOME")
                .map(|d| d.join("applications")),
            Scope::System => Some(PathBuf::from(SYSTEM_APPLICATIONS)),
        }
    }

    /// The directory of this scope's record.
    pub fn state_dir(self, host: &Host) -> Option<PathBuf> {
        match self {
            Scope::User => crate::paths::user_state_dir(host),
            Scope::System => Some(PathBuf::from(crate::paths::SYSTEM_STATE_DIR)),
        }
    }

    /// This scope's record, and who alone (with root) may have written it.
    pub fn record_path(self, host: &Host) -> Option<(PathBuf, u32)> {
        let owner = self.owner(host);
        self.state_dir(host)
            .map(|d| (d.join(crate::paths::SHIM_RECORD), owner))
    }

    /// Who owns what this scope installs.
    pub fn owner(self, host: &Host) -> u32 {
        match self {
            Scope::User => host.uid,
            Scope::System => 0,
        }
    }

    /// The `applications` directories menu entries come from, by
    /// precedence (`XDG_DATA_DIRS`), without this scope's own.
    pub fn menu_sources(self, host: &Host) -> Vec<PathBuf> {
        let dirs = host
            .env("XDG_DATA_DIRS")
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| DEFAULT_DATA_DIRS.to_string());
        let own = self.applications_dir(host);
        let mut out: Vec<PathBuf> = Vec::new();
        for d in dirs.split(':').filter(|d| d.starts_with('/')) {
            let apps = Path::new(d).join("applications");
            let is_own = own.as_deref().is_some_and(|o| lookup::same_dir(o, &apps));
            if !is_own && !out.contains(&apps) {
                out.push(apps);
            }
        }
        out
    }
}

/// `hutch shim ...`; the exit status.
pub fn run(command: ShimCommand) -> i32 {
    match command {
        ShimCommand::Install(args) => install::install(&args),
        ShimCommand::Remove(args) => install::remove(&args),
        ShimCommand::List { json } => status::list(json),
    }
}
