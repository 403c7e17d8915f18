//! A failed step of the child, put to the user: "cannot DO WHAT: ERROR"
//! and, where hutch knows one, what to do about it. (The step codes and
//! the record the child sends are the child's vocabulary:
//! [`crate::prepare::report`].)

use nix::errno::Errno;

use crate::prepare::report::{self, Step};

/// A failure the child reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub step: Step,
    pub errno: Errno,
    /// The path or name the step was about, as bytes.
    pub arg: std::ffi::OsString,
}

impl Failure {
    /// The first record in what the child wrote, if any.
    pub fn decode(data: &[u8]) -> Option<Failure> {
        let record = report::decode(data)?;
        Some(Failure {
            step: record.step,
            errno: record.errno,
            arg: crate::argv::from_bytes(record.arg),
        })
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = self.step.doing();
        if self.arg.is_empty() {
            write!(f, "cannot {what}: {}", self.errno.desc())?;
        } else {
            write!(
                f,
                "cannot {what} {}: {}",
                crate::diag::name(&crate::argv::shown(&self.arg)),
                self.errno.desc()
            )?;
        }
        if let Some(help) = help(self.step, self.errno) {
            write!(f, " ({help})")?;
        }
        Ok(())
    }
}

/// What the user can do about a failure of `step` with `errno`.
fn help(step: Step, errno: Errno) -> Option<&'static str> {
    Some(match (step, errno) {
        (Step::UidMap | Step::GidMap | Step::SetGroups, Errno::EPERM | Errno::EACCES) => {
            "the kernel refused the user namespace's id map; on Ubuntu 23.10+ unprivileged user namespaces are restricted by AppArmor: install packaging/apparmor/hutch into /etc/apparmor.d, or run `hutch doctor`"
        }
        (Step::MountPropagation | Step::RootTmpfs | Step::AttachRoot, Errno::EPERM) => {
            "mounting is not permitted here; this happens inside some containers: run `hutch doctor`"
        }
        (Step::DescriptorSlot, _) => "this is a bug in hutch; please report it",
        (Step::Egress, Errno::EPROTONOSUPPORT | Errno::ENOENT | Errno::EOPNOTSUPP) => {
            "the kernel's nf_tables (or its reject expression) is not available in the sandbox's network namespace; as root, `modprobe nf_tables nft_reject_inet` (a user namespace cannot load modules), or set `[network] filter = \"off\"` to run without egress rules"
        }
        (Step::Egress, _) => {
            "the sandbox's egress rules could not be installed; nothing ran. `hutch doctor` checks nf_tables; `[network] filter = \"off\"` runs without the rules"
        }
        (_, Errno::ENOSYS) => {
            "the kernel lacks a system call hutch needs (the mount API needs Linux 5.12 or later); run `hutch doctor`"
        }
        (Step::RootOverlay, Errno::EPERM | Errno::EINVAL) => {
            "unprivileged overlayfs needs Linux 5.11 or later and a filesystem for the layers that supports it (a persistent `writable` directory must support user extended attributes: ext4, xfs, btrfs)"
        }
        (Step::RootOverlay, Errno::ENOENT) => {
            "a layer or the `writable` directory disappeared; re-import the image (`hutch image import`) or check the path"
        }
        (Step::OpenVolume, Errno::ELOOP | Errno::ENOTDIR) => {
            "a symlink or a file took the place of the volume directory or one above it after hutch checked it: something is tampering with the volume store; nothing was mounted, inspect it"
        }
        (Step::OpenVolume, Errno::ESTALE | Errno::ENOENT) => {
            "the volume directory was moved or replaced while the sandbox started; nothing was mounted: check what else writes to the volume store, then try again"
        }
        (Step::OpenWritable, Errno::ELOOP | Errno::ENOTDIR) => {
            "a symlink or a file took the place of the writable layer's directory or one above it after hutch checked it: something is tampering with it; nothing was mounted, inspect it"
        }
        (Step::OpenWritable, Errno::ESTALE | Errno::ENOENT) => {
            "the writable layer's directory was moved or replaced while the sandbox started; nothing was mounted: check what else writes to it, then try again"
        }
        (Step::OpenBindSource, Errno::ENOENT) => {
            "the source disappeared after the profile was checked; create it again or mark the entry optional"
        }
        (Step::OpenBindSource, Errno::EACCES) => {
            "you cannot access this path on the host; fix its permissions or drop the entry"
        }
        (Step::ResolveDestination, Errno::EXDEV) => {
            "a symlink on the way leads out of the sandbox root; choose a destination that does not pass through it"
        }
        (Step::ResolveDestination, Errno::ELOOP) => "too many symlinks on the way",
        (Step::ResolveDestination | Step::CreateMountPoint, Errno::EROFS) => {
            "the mount point would have to be created inside a read-only bind or root; create it on the host first, mount a tmpfs there in an earlier entry, or give a `root` a writable layer (`writable = \"tmpfs\"`)"
        }
        (Step::ResolveDestination | Step::CreateMountPoint, Errno::ENOTDIR) => {
            "a path component on the way is a file, not a directory"
        }
        (Step::Symlink | Step::File | Step::Dir, Errno::EEXIST) => {
            "something already exists at this path inside the sandbox; an earlier entry created or bound it"
        }
        (Step::Landlock, Errno::ELOOP) => {
            "the rule's path passes through a symlink on a mount the sandbox may write to; hutch does not follow one there, since the payload could have put it in place of the path to widen the rule: write the path without the symlink, or remove it"
        }
        (Step::Chdir, Errno::ENOENT) => {
            "the working directory does not exist inside the sandbox: bind it, or set `cwd` in the profile"
        }
        (Step::Exec, Errno::ENOENT) => {
            "no such program inside the sandbox: check the command and that the profile binds its directory (and its interpreter, for scripts)"
        }
        (Step::Exec, Errno::EACCES) => {
            "the program is not executable inside the sandbox (permissions, or a noexec mount)"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_says_what_failed_and_what_to_do() {
        let (r, w) = nix::unistd::pipe().unwrap();
        use std::os::fd::AsRawFd;
        report::send(w.as_raw_fd(), Step::Chdir, Errno::ENOENT, b"/work");
        let mut buf = [0u8; 2048];
        let n = nix::unistd::read(&r, &mut buf).unwrap();
        let f = Failure::decode(&buf[..n]).unwrap();
        assert_eq!(
            f.to_string(),
            "cannot change to the working directory /work: No such file or directory \
             (the working directory does not exist inside the sandbox: bind it, or set `cwd` in the profile)"
        );
        // No record: the payload was executed.
        assert_eq!(Failure::decode(b""), None);
    }
}
