//! What the desktop sections (`[desktop]`, `[dbus]`) look up on the host:
//! its sockets (never through a symlink), programs in `PATH`, hutch's
//! runtime directory for their launch files; and the read-only bind that
//! hands one in. Below both sections, so that neither imports the other
//! for them.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::mounts::{MountOp, PlannedMount};
use crate::diag::Diagnostic;
use crate::host::Host;
use crate::profile::ProfileError;

/// Hutch's runtime directory: [desktop]'s launch directory is in it, its
/// helpers' private directories beside it. An error when there is none
/// (no runtime directory of the caller's and no home directory).
pub(super) fn hutch_state(host: &Host) -> Result<PathBuf, ProfileError> {
    crate::paths::runtime_dir(host).ok_or_else(|| {
        Diagnostic::new(
            "[desktop] needs hutch's runtime directory for its sockets, and there is none: no $XDG_RUNTIME_DIR or /run/user/UID of yours, and no home directory",
        )
        .help("run it in a login session (which has /run/user/UID), or with HOME set")
        .into()
    })
}

/// `path` if it is a socket on the host, else why not. Not through a
/// symlink: the bind would take whatever the link names when the sandbox
/// is built, and /tmp/.X11-unix is writable by every user.
pub(super) fn socket_at(
    host: &Host,
    path: &Path,
    what: &str,
    from_var: &str,
) -> Result<PathBuf, String> {
    match std::fs::symlink_metadata(host.fs_path(path)) {
        Ok(m) if m.file_type().is_socket() => Ok(path.to_path_buf()),
        Ok(m) if m.file_type().is_symlink() => Err(format!(
            "{what} {} ({from_var}) is a symlink; hutch binds only a socket itself: name the socket",
            path.display()
        )),
        Ok(_) => Err(format!(
            "{what} {} ({from_var}) is not a socket",
            path.display()
        )),
        Err(_) => Err(format!(
            "{what} {} ({from_var}) does not exist",
            path.display()
        )),
    }
}

/// A read-only bind of a socket or file the desktop sections hand in.
pub(super) fn bind(src: PathBuf, dst: PathBuf, from: &str) -> PlannedMount {
    PlannedMount {
        op: MountOp::Bind {
            src,
            dst,
            readonly: true,
            devices: false,
        },
        from: from.to_string(),
        lands: None,
    }
}

/// A helper program (Xephyr, xdg-dbus-proxy): `name` in the caller's
/// `PATH`, then in /usr/bin, where Debian installs them, so that a PATH
/// trimmed by the caller does not turn a desktop grant off.
pub(super) fn find_program(host: &Host, name: &str) -> Option<PathBuf> {
    host.find_program(name)
        .or_else(|| host.find_program_in(name, "/usr/bin"))
}
