//! overlayfs's opaque-directory marker as hutch's layers carry it: the
//! extended attribute `user.overlay.opaque=y` (the layers are mounted with
//! `userxattr`), which hides what lower layers have in that directory.

use std::ffi::CStr;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

use crate::sys;

const XATTR: &CStr = c"user.overlay.opaque";

/// Whether the layer directory `dir` is opaque.
pub fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 4];
    sys::fgetxattr(dir, XATTR, &mut buf) == Ok(1) && buf[0] == b'y'
}

/// Whether the layer directory at `path` is opaque (a symlink there is not
/// followed, and is not).
pub fn is_opaque_at(path: &Path) -> bool {
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut buf = [0u8; 4];
    sys::lgetxattr(&path, XATTR, &mut buf) == Ok(1) && buf[0] == b'y'
}

/// Marks the layer directory `dir` opaque. `EOPNOTSUPP`: the filesystem
/// has no user extended attributes.
pub fn set_opaque(dir: BorrowedFd<'_>) -> Result<(), Errno> {
    sys::fsetxattr(dir, XATTR, b"y")
}
