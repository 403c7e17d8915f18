//! Dropping privileges before the payload runs: capabilities in all five sets,
//! securebits locked, no_new_privs. Verified afterwards, so a silent failure
//! cannot leave the payload privileged.

use nix::errno::Errno;

use super::{Fail, resolve};
use crate::landlock::Ruleset;
use crate::prepare::Rlimit;
use crate::prepare::report::Step;
use crate::sys;

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Empties the bounding, ambient, inheritable, permitted and effective sets,
/// locks securebits so uid 0 regains nothing, and sets no_new_privs.
pub fn drop_privileges() -> Result<(), Fail<'static>> {
    let fail = |e| Fail::new(Step::Capabilities, e);
    // The bounding set first: dropping it needs CAP_SETPCAP, still held here.
    for cap in 0..64 {
        match sys::prctl(libc::PR_CAPBSET_DROP, cap) {
            Ok(_) => {}
            Err(Errno::EINVAL) => break,
            Err(e) => return Err(fail(e)),
        }
    }
    let bits = libc::SECBIT_NOROOT
        | libc::SECBIT_NOROOT_LOCKED
        | libc::SECBIT_NO_SETUID_FIXUP
        | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
        | libc::SECBIT_KEEP_CAPS_LOCKED
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE
        | libc::SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    sys::prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong).map_err(fail)?;
    match sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    ) {
        Ok(_) | Err(Errno::EINVAL) => {}
        Err(e) => return Err(fail(e)),
    }
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are valid v3 capability structures.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } < 0 {
        return Err(fail(Errno::last()));
    }
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|e| Fail::new(Step::NoNewPrivs, e))?;

    // Verify rather than trust: a kernel or a bug that left anything behind
    // must stop the launch.
    // SAFETY: capget writes two CapData entries.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } < 0 {
        return Err(fail(Errno::last()));
    }
    if data
        .iter()
        .any(|d| d.effective | d.permitted | d.inheritable != 0)
        || sys::prctl(libc::PR_CAPBSET_READ, 0) != Ok(0)
    {
        return Err(fail(Errno::EPERM));
    }
    if sys::prctl(libc::PR_GET_NO_NEW_PRIVS, 0) != Ok(1) {
        return Err(Fail::new(Step::NoNewPrivs, Errno::EPERM));
    }
    Ok(())
}

pub fn set_rlimits(limits: &[Rlimit]) -> Result<(), Fail<'static>> {
    for limit in limits {
        let lim = libc::rlimit {
            rlim_cur: limit.value,
            rlim_max: limit.value,
        };
        // SAFETY: lim is a valid rlimit; resource is one hutch knows.
        if unsafe { libc::setrlimit(limit.resource, &lim) } < 0 {
            return Err(Fail::with(
                Step::Rlimit,
                Errno::last(),
                limit.name.as_bytes(),
            ));
        }
    }
    Ok(())
}

/// Builds and enforces the Landlock ruleset. Paths are inside the new
/// root, opened through the child's walker following only the symlinks on
/// read-only mounts (see [`resolve::open_rule_path`]): `hutch exec` opens
/// them again long after the payload started, and a symlink the payload
/// put in place of a rule's path must not point the rule elsewhere.
pub fn apply_landlock(ruleset: &Ruleset) -> Result<(), Fail<'_>> {
    // SAFETY: "/" is NUL-terminated.
    let root = unsafe {
        libc::open(
            c"/".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if root < 0 {
        return Err(Fail::with(Step::Landlock, Errno::last(), b"/"));
    }
    let applied = ruleset.restrict_self(|path| resolve::open_rule_path(root, path.to_bytes()));
    sys::close(root);
    applied.map_err(|e| match e.path {
        Some(path) => Fail::with(Step::Landlock, e.errno, path.to_bytes()),
        None => Fail::new(Step::Landlock, e.errno),
    })
}
