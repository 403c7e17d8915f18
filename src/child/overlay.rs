//! The root as an overlayfs mount: read-only lower layers (an image's, or
//! a directory), changes in an upper layer on a tmpfs or in a persistent
//! directory. Mounted unprivileged inside the user namespace with the
//! `userxattr` option (Linux 5.11+), so whiteouts and opaque directories
//! are the 0:0 character devices and `user.overlay.opaque` attributes the
//! image store writes. How layers are named: see [`crate::prepare::root`].
//!
//! Runs between clone and exec: raw system calls and fixed buffers only.

use std::ffi::CStr;
use std::os::fd::RawFd;

use nix::errno::Errno;

use super::Fail;
use crate::prepare::OverlayInstr;
use crate::prepare::report::{self, ARG_MAX, Step};
use crate::prepare::slots::Descriptors;
use crate::sys;

/// Mounts the farm (attached at `staging`, and left there: the process's
/// working directory is in it until the caller moves on) with links to
/// the layers and the upper layer opened in `fds`, then the overlay;
/// returns the overlay's detached mount. The layer and upper descriptors
/// are closed either way. Failures are reported on `report` with the
/// kernel's own message when it gave one.
pub fn mount<'a>(
    o: &'a OverlayInstr,
    fds: &mut Descriptors,
    staging: &'a CStr,
    report: RawFd,
) -> Result<RawFd, Fail<'a>> {
    let r = farm(o, fds, staging).and_then(|farm| {
        let r = overlay(o, report);
        sys::close(farm);
        r
    });
    let upper = o.upper.iter().flatten();
    for slot in o.layers.iter().map(|(_, slot)| slot).chain(upper) {
        if let Some(fd) = fds.take(*slot) {
            sys::close(fd);
        }
    }
    r
}

fn overlay<'a>(o: &'a OverlayInstr, report: RawFd) -> Result<RawFd, Fail<'a>> {
    let fail = |e: Errno| Fail::with(Step::RootOverlay, e, o.what.to_bytes());
    let fs = sys::fsopen(c"overlay").map_err(fail)?;
    let r = configure(o, fs)
        .and_then(|()| sys::fsmount(fs, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV));
    if let Err(e) = r {
        send_with_log(report, fs, e, o.what.to_bytes());
    }
    sys::close(fs);
    r.map_err(fail)
}

/// `/proc/self/fd/N`, NUL-terminated, in `buf`.
fn fd_link(fd: RawFd, buf: &mut [u8; 32]) -> &CStr {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = fd.max(0) as u32;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[PREFIX.len() + i] = digits[len - 1 - i];
    }
    buf[PREFIX.len() + len] = 0;
    CStr::from_bytes_until_nul(&buf[..]).unwrap_or(c"")
}

fn link(target_fd: RawFd, dir: RawFd, name: &CStr) -> Result<(), Errno> {
    let mut buf = [0u8; 32];
    let target = fd_link(target_fd, &mut buf);
    // SAFETY: both strings are NUL-terminated.
    if unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// A private tmpfs holding the layer links and the upper layer, attached
/// (overlayfs before Linux 6.15 refuses layers on a detached mount) and
/// made the working directory.
fn farm<'a>(o: &'a OverlayInstr, fds: &Descriptors, staging: &CStr) -> Result<RawFd, Fail<'a>> {
    let fail = |e| Fail::with(Step::RootOverlay, e, o.what.to_bytes());
    let fs = sys::fsopen(c"tmpfs").map_err(fail)?;
    let r = (|| {
        // The upper directory's mode becomes the root's: 0755 like any `/`.
        sys::fsconfig_string(fs, c"mode", c"755")?;
        sys::fsconfig_create(fs)?;
        sys::fsmount(fs, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV)
    })();
    sys::close(fs);
    let farm = r.map_err(fail)?;
    let r = fill_farm(o, fds, farm, staging);
    if r.is_err() {
        sys::close(farm);
    }
    r.map(|()| farm)
}

fn fill_farm<'a>(
    o: &'a OverlayInstr,
    fds: &Descriptors,
    farm: RawFd,
    staging: &CStr,
) -> Result<(), Fail<'a>> {
    let fail = |e| Fail::with(Step::RootOverlay, e, o.what.to_bytes());
    sys::move_mount_to_path(farm, staging).map_err(fail)?;
    // SAFETY: farm is a directory descriptor.
    if unsafe { libc::fchdir(farm) } < 0 {
        return Err(fail(Errno::last()));
    }
    for (name, slot) in &o.layers {
        link(fds.dir(*slot)?, farm, name).map_err(fail)?;
    }
    match &o.upper {
        Some([upper, work]) => {
            link(fds.dir(*upper)?, farm, c"u").map_err(fail)?;
            link(fds.dir(*work)?, farm, c"w").map_err(fail)?;
        }
        None => {
            for (name, mode) in [(c"u", 0o755), (c"w", 0o700)] {
                // SAFETY: name is NUL-terminated.
                if unsafe { libc::mkdirat(farm, name.as_ptr(), mode) } < 0 {
                    return Err(fail(Errno::last()));
                }
            }
        }
    }
    Ok(())
}

fn configure(o: &OverlayInstr, fs: RawFd) -> Result<(), Errno> {
    // Relative names resolve against the working directory, the farm.
    match &o.lowerdir {
        Some(joined) => sys::fsconfig_string(fs, c"lowerdir", joined)?,
        None => {
            for (name, _) in &o.layers {
                sys::fsconfig_string(fs, c"lowerdir+", name)?;
            }
        }
    }
    sys::fsconfig_string(fs, c"upperdir", c"u")?;
    sys::fsconfig_string(fs, c"workdir", c"w")?;
    sys::fsconfig_flag(fs, c"userxattr")?;
    sys::fsconfig_create(fs)
}

/// Reports `what: <the kernel's last error message>` (from the filesystem
/// context's log), or just `what` if there is none. The parent reads the
/// first record only, so the caller's own report after this one is moot.
fn send_with_log(report_fd: RawFd, fs: RawFd, errno: Errno, what: &[u8]) {
    let mut out = [0u8; ARG_MAX];
    let mut n = 0;
    let mut push = |bytes: &[u8], n: &mut usize| {
        let take = bytes.len().min(ARG_MAX - *n);
        out[*n..*n + take].copy_from_slice(&bytes[..take]);
        *n += take;
    };
    push(what, &mut n);
    let mut msg = [0u8; 256];
    let mut last = 0;
    for _ in 0..16 {
        let mut buf = [0u8; 256];
        // SAFETY: buf is valid for its length; reading the context's log.
        let r = unsafe { libc::read(fs, buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            break;
        }
        let r = r as usize;
        // Messages are "e text", "w text" or "i text"; keep the last error.
        if r > 2 && buf[0] == b'e' && buf[1] == b' ' {
            msg[..r - 2].copy_from_slice(&buf[2..r]);
            last = r - 2;
        }
    }
    if last > 0 {
        push(b" (", &mut n);
        push(&msg[..last], &mut n);
        push(b")", &mut n);
    }
    report::send(report_fd, Step::RootOverlay, errno, &out[..n]);
}

/// For `hutch doctor`, in a child that owns its user and mount namespaces:
/// mounts a one-layer overlay the way [`mount`] does (farm tmpfs attached
/// at `staging`, `userxattr`), then checks whether a tmpfs upper layer can
/// hold overlayfs's extended attributes (Linux 6.6+). `Ok(false)`: the
/// overlay works but tmpfs lacks user xattrs.
pub fn probe(staging: &CStr) -> Result<bool, Errno> {
    let fs = sys::fsopen(c"tmpfs")?;
    let farm = sys::fsconfig_create(fs).and_then(|()| sys::fsmount(fs, 0));
    sys::close(fs);
    let farm = farm?;
    sys::move_mount_to_path(farm, staging)?;
    // SAFETY: farm is a directory descriptor.
    if unsafe { libc::fchdir(farm) } < 0 {
        return Err(Errno::last());
    }
    for dir in [c"l", c"u", c"w"] {
        // SAFETY: dir is NUL-terminated.
        if unsafe { libc::mkdirat(farm, dir.as_ptr(), 0o755) } < 0 {
            return Err(Errno::last());
        }
    }
    let fs = sys::fsopen(c"overlay")?;
    let r = (|| {
        sys::fsconfig_string(fs, c"lowerdir", c"l")?;
        sys::fsconfig_string(fs, c"upperdir", c"u")?;
        sys::fsconfig_string(fs, c"workdir", c"w")?;
        sys::fsconfig_flag(fs, c"userxattr")?;
        sys::fsconfig_create(fs)?;
        sys::fsmount(fs, 0)
    })();
    sys::close(fs);
    sys::close(r?);
    // SAFETY: the names and the one-byte value are valid for the call.
    let xattr = unsafe {
        libc::setxattr(
            c"u".as_ptr(),
            c"user.hutch-probe".as_ptr(),
            c"y".as_ptr().cast(),
            1,
            0,
        )
    };
    Ok(xattr == 0)
}
