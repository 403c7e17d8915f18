//! Where hutch keeps its state on the host, and how the names in it are
//! spelled: facts about the XDG layout, shared by the planner (which keeps
//! these directories out of a sandbox's reach) and the stores (which open
//! them safely).
//!
//! ```text
//! $XDG_RUNTIME_DIR/hutch/sandboxes/   the registry of running sandboxes
//!   (else /run/user/UID/hutch/, else $XDG_STATE_HOME/hutch/runtime-HOST/)
//! $XDG_DATA_HOME/hutch/volumes/       the volume store (tmp volumes in .tmp/)
//! $XDG_DATA_HOME/hutch/images/        the image store
//! $XDG_DATA_HOME/hutch/shims.json     what `hutch shim install` made for the user
//! /var/lib/hutch/shims.json           ... and with --system, for everyone
//! ```
//!
//! Nothing here creates or checks a directory: the stores do that when
//! they open one.

use std::path::PathBuf;

use crate::host::Host;

/// How volume names are spelled, for error messages.
pub const VOLUME_NAME_RULE: &str =
    "a volume name is 1 to 64 letters, digits, `_`, `-` or `.`, starting with a letter or a digit";
/// How sandbox names are spelled, for error messages.
pub const SANDBOX_NAME_RULE: &str =
    "a sandbox name is 1 to 64 letters, digits, `_`, `-` or `.`, starting with a letter or a digit";
/// The directory of the volume store that holds the tmp volumes of running
/// sandboxes (its leading dot keeps it apart from every volume name).
pub const VOLUME_TMP_DIR: &str = ".tmp";
/// The directory of the registry below [`runtime_dir`].
pub const REGISTRY_DIR: &str = "sandboxes";

pub use crate::names::valid_name;

/// The directory for hutch's runtime state, whose `sandboxes/` is the
/// registry: `$XDG_RUNTIME_DIR/hutch`, else `/run/user/UID/hutch`, else
/// `$XDG_STATE_HOME/hutch/runtime-HOST` (see [`Host::hutch_runtime_dir`],
/// which remembers the answer for the process). `None`: none of them can
/// be named (no runtime directory and no home directory).
pub fn runtime_dir(host: &Host) -> Option<PathBuf> {
    host.hutch_runtime_dir().map(|r| r.path.clone())
}

/// `$XDG_DATA_HOME/hutch` (default `~/.local/share/hutch`): the stores of
/// volumes and images.
fn data_dir(host: &Host) -> Option<PathBuf> {
    host.xdg_base("XDG_DATA_HOME").map(|d| d.join("hutch"))
}

/// The volume store: `$XDG_DATA_HOME/hutch/volumes`. `None`: neither
/// `XDG_DATA_HOME` nor a home directory is known.
pub fn volume_store(host: &Host) -> Option<PathBuf> {
    data_dir(host).map(|d| d.join("volumes"))
}

/// The image store: `$XDG_DATA_HOME/hutch/images`. `None` as for
/// [`volume_store`].
pub fn image_store(host: &Host) -> Option<PathBuf> {
    data_dir(host).map(|d| d.join("images"))
}

/// The file name of a record of shims (`hutch shim`), in [`user_state_dir`]
/// or [`SYSTEM_STATE_DIR`].
pub const SHIM_RECORD: &str = "shims.json";

/// hutch's state for every user: the record of the system's shims.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/hutch";

/// `$XDG_DATA_HOME/hutch`: the user's record of shims (and the stores).
/// `None` as for [`volume_store`].
pub fn user_state_dir(host: &Host) -> Option<PathBuf> {
    data_dir(host)
}

/// Which of hutch's state directories a [`StateDir`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// The registry of running sandboxes, which `hutch exec` trusts.
    Registry,
    /// The volume store.
    Volumes,
    /// The image store, whose layers every sandbox of an image shares.
    Images,
}

impl StateKind {
    /// What it is, for messages: "hutch's {long}".
    pub fn long_name(self) -> &'static str {
        match self {
            StateKind::Registry => "registry of running sandboxes",
            StateKind::Volumes => "volume store",
            StateKind::Images => "image store",
        }
    }

    /// Its short name, for `--explain`: "hides its {short}".
    pub fn short_name(self) -> &'static str {
        match self {
            StateKind::Registry => "registry",
            StateKind::Volumes => "volume store",
            StateKind::Images => "image store",
        }
    }
}

/// One of hutch's state directories on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    pub kind: StateKind,
    pub path: PathBuf,
}

/// Every directory of hutch's own state that no sandbox may see: the
/// registry (a sandbox that could rewrite a record could make `exec`
/// join it less confined), the volume store (binding it would bypass the
/// locks and expose every volume) and the image store (its layers are
/// shared by every later sandbox of an image, which trusts them unchanged).
/// Those that cannot be named (no home directory) are left out.
pub fn state_dirs(host: &Host) -> Vec<StateDir> {
    [
        (StateKind::Registry, runtime_dir(host)),
        (StateKind::Volumes, volume_store(host)),
        (StateKind::Images, image_store(host)),
    ]
    .into_iter()
    .filter_map(|(kind, path)| Some(StateDir { kind, path: path? }))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn names() {
        for ok in ["a", "cache", "my-vol_2.old", "9"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "..",
            "a b",
            &"x".repeat(65),
            "é",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_stores_follow_xdg_data_home_then_home() {
        let host = |env: &[(&str, &str)]| Host::fixed(1000, 1000, env, "/");
        let both = host(&[("XDG_DATA_HOME", "/x/data"), ("HOME", "/home/u")]);
        assert_eq!(
            volume_store(&both).unwrap(),
            Path::new("/x/data/hutch/volumes")
        );
        assert_eq!(
            image_store(&both).unwrap(),
            Path::new("/x/data/hutch/images")
        );
        let relative = host(&[("XDG_DATA_HOME", "relative"), ("HOME", "/home/u")]);
        assert_eq!(
            image_store(&relative).unwrap(),
            Path::new("/home/u/.local/share/hutch/images")
        );
        let home = host(&[("HOME", "/home/u")]);
        assert_eq!(
            volume_store(&home).unwrap(),
            Path::new("/home/u/.local/share/hutch/volumes")
        );
        let nothing = host(&[]);
        assert_eq!(image_store(&nothing), None);
        assert_eq!(volume_store(&nothing), None);
    }
}
