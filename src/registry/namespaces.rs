//! A running sandbox's namespaces, as the registry knows them: the kinds
//! `exec` joins, in order, and the descriptors the launcher holds for the
//! sandbox's life so that `exec` can open them again through
//! `/proc/LAUNCHER/fd/N`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::stat::fstat;

use super::RegistryError;
use super::record::NsRef;
use crate::sys;

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

/// The clone flag of a namespace kind.
pub(super) fn ns_flag(kind: &str) -> Option<libc::c_int> {
    NS_KINDS.iter().find(|(k, _)| *k == kind).map(|(_, f)| *f)
}

/// The namespaces of a running sandbox, held by its launcher for the
/// sandbox's life. The child hands them over (see `child::handoff`).
pub struct HeldNamespaces {
    _fds: Vec<OwnedFd>,
    pub(super) refs: Vec<NsRef>,
}

impl HeldNamespaces {
    /// Takes the descriptors the child of sandbox `name` sent on `sock`:
    /// one per namespace in `flags` (clone flags), in [`NS_KINDS`] order,
    /// each checked to be of its kind.
    pub fn receive(
        sock: &OwnedFd,
        flags: u64,
        name: &str,
    ) -> Result<HeldNamespaces, RegistryError> {
        receive(sock, flags).map_err(|errno| RegistryError::Namespaces {
            name: name.to_string(),
            errno,
        })
    }
}

#[cfg(test)]
impl HeldNamespaces {
    /// A launcher holding no namespace (for tests of the records).
    pub(super) fn none() -> HeldNamespaces {
        HeldNamespaces {
            _fds: Vec::new(),
            refs: Vec::new(),
        }
    }
}

fn receive(sock: &OwnedFd, flags: u64) -> Result<HeldNamespaces, Errno> {
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
        if sys::ns_type(fd.as_fd())? != *flag {
            return Err(Errno::EPROTO);
        }
        let st = fstat(fd)?;
        refs.push(NsRef {
            kind: kind.to_string(),
            fd: fd.as_raw_fd(),
            dev: st.st_dev,
            ino: st.st_ino,
        });
    }
    Ok(HeldNamespaces { _fds: fds, refs })
}
