//! What the child tells the parent when a step fails: a fixed-size record
//! written with one write(2) (atomic on a pipe), so no allocation is needed on
//! the child side. End of file on the pipe without a record means the payload
//! was executed. How a failure is put to the user (with a hint per step) is
//! the launcher's: `launch::report`.

use std::os::fd::RawFd;

use nix::errno::Errno;

/// The steps the child runs, in this order. Each failure names its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Step {
    DeathSignal = 1,
    ParentGone,
    SetGroups,
    UidMap,
    GidMap,
    WaitForParent,
    CgroupNamespace,
    NetNamespace,
    MountPropagation,
    OpenBindSource,
    OpenVolume,
    OpenWritable,
    DescriptorSlot,
    RootTmpfs,
    RootOverlay,
    AttachRoot,
    ResolveDestination,
    CreateMountPoint,
    Bind,
    Tmpfs,
    Proc,
    Dev,
    Terminal,
    Dir,
    Symlink,
    File,
    RootReadOnly,
    PivotRoot,
    DetachOldRoot,
    HandOffTerminal,
    Egress,
    Hostname,
    Chdir,
    HandOffNamespaces,
    Rlimit,
    Dumpable,
    Capabilities,
    NoNewPrivs,
    Landlock,
    Seccomp,
    LearnListener,
    ForkPayload,
    SignalFd,
    NewSession,
    ControllingTerminal,
    Exec,
}

impl Step {
    const ALL: &'static [Step] = &[
        Step::DeathSignal,
        Step::ParentGone,
        Step::SetGroups,
        Step::UidMap,
        Step::GidMap,
        Step::WaitForParent,
        Step::CgroupNamespace,
        Step::NetNamespace,
        Step::MountPropagation,
        Step::OpenBindSource,
        Step::OpenVolume,
        Step::OpenWritable,
        Step::DescriptorSlot,
        Step::RootTmpfs,
        Step::RootOverlay,
        Step::AttachRoot,
        Step::ResolveDestination,
        Step::CreateMountPoint,
        Step::Bind,
        Step::Tmpfs,
        Step::Proc,
        Step::Dev,
        Step::Terminal,
        Step::Dir,
        Step::Symlink,
        Step::File,
        Step::RootReadOnly,
        Step::PivotRoot,
        Step::DetachOldRoot,
        Step::HandOffTerminal,
        Step::Egress,
        Step::Hostname,
        Step::Chdir,
        Step::HandOffNamespaces,
        Step::Rlimit,
        Step::Dumpable,
        Step::Capabilities,
        Step::NoNewPrivs,
        Step::Landlock,
        Step::Seccomp,
        Step::LearnListener,
        Step::ForkPayload,
        Step::SignalFd,
        Step::NewSession,
        Step::ControllingTerminal,
        Step::Exec,
    ];

    fn from_u32(v: u32) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| *s as u32 == v)
    }

    /// What the step was doing, to complete "cannot ...".
    pub fn doing(self) -> &'static str {
        match self {
            Step::DeathSignal => "arrange for the sandbox to die with hutch",
            Step::ParentGone => "start the sandbox: hutch exited during setup",
            Step::SetGroups => "deny setgroups in the user namespace",
            Step::UidMap => "write the uid map of the user namespace",
            Step::GidMap => "write the gid map of the user namespace",
            Step::WaitForParent => "wait for hutch to finish the outside setup",
            Step::CgroupNamespace => "create the cgroup namespace (rooted at the limits cgroup)",
            Step::NetNamespace => "create the network namespace",
            Step::MountPropagation => "make the mount namespace private",
            Step::OpenBindSource => "open bind source",
            Step::OpenVolume => "open volume directory",
            Step::OpenWritable => "open the writable layer's directory",
            Step::DescriptorSlot => "find the descriptor hutch prepared for the",
            Step::RootTmpfs => "create the tmpfs for the new root",
            Step::RootOverlay => "mount the root with overlayfs from",
            Step::AttachRoot => "attach the new root",
            Step::ResolveDestination => "resolve mount destination",
            Step::CreateMountPoint => "create mount point",
            Step::Bind => "bind onto",
            Step::Tmpfs => "mount a tmpfs on",
            Step::Proc => "mount /proc for the sandbox's pid namespace on",
            Step::Dev => "build the minimal /dev at",
            Step::Terminal => "open the payload's pseudo-terminal in",
            Step::HandOffTerminal => "hand the payload's pseudo-terminal to hutch's relay",
            Step::Dir => "create directory",
            Step::Symlink => "create symlink",
            Step::File => "create file",
            Step::RootReadOnly => "make the new root read-only",
            Step::PivotRoot => "switch to the new root (pivot_root)",
            Step::DetachOldRoot => "detach the host's root",
            Step::Egress => "install the egress filter (nf_tables) rule",
            Step::Hostname => "set the hostname",
            Step::Chdir => "change to the working directory",
            Step::HandOffNamespaces => "hand the sandbox's namespaces to hutch (for `hutch exec`)",
            Step::Rlimit => "set resource limit",
            Step::Dumpable => "mark hutch's init non-dumpable",
            Step::Capabilities => "drop capabilities",
            Step::NoNewPrivs => "set no_new_privs",
            Step::Landlock => "apply the Landlock ruleset",
            Step::Seccomp => "load the seccomp filter",
            Step::LearnListener => "hand the learning filter's listener to hutch",
            Step::ForkPayload => "start the payload under hutch's init",
            Step::SignalFd => "set up signal forwarding in hutch's init",
            Step::NewSession => "start a new session for the payload",
            Step::ControllingTerminal => {
                "make the sandbox's pseudo-terminal the payload's controlling terminal"
            }
            Step::Exec => "execute",
        }
    }
}

/// Longest argument (a path) carried in a record.
pub const ARG_MAX: usize = 1024;
const RECORD: usize = 8 + 2 + ARG_MAX;

/// A record as the child wrote it: the failed step, the error, and the
/// path or name it was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub step: Step,
    pub errno: Errno,
    pub arg: &'a [u8],
}

/// Child side: reports a failure. Allocation-free.
pub fn send(fd: RawFd, step: Step, errno: Errno, arg: &[u8]) {
    let mut buf = [0u8; RECORD];
    buf[0..4].copy_from_slice(&(step as u32).to_ne_bytes());
    buf[4..8].copy_from_slice(&(errno as i32).to_ne_bytes());
    let n = arg.len().min(ARG_MAX);
    buf[8..10].copy_from_slice(&(n as u16).to_ne_bytes());
    buf[10..10 + n].copy_from_slice(&arg[..n]);
    let _ = crate::sys::write_all(fd, &buf[..10 + n]);
}

/// Parent side: decodes the first record in `data`, if any.
pub fn decode(data: &[u8]) -> Option<Record<'_>> {
    if data.len() < 10 {
        return None;
    }
    let step = Step::from_u32(u32::from_ne_bytes(data[0..4].try_into().ok()?))?;
    let errno = Errno::from_raw(i32::from_ne_bytes(data[4..8].try_into().ok()?));
    let n = u16::from_ne_bytes(data[8..10].try_into().ok()?) as usize;
    let arg = data.get(10..10 + n)?;
    Some(Record { step, errno, arg })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let (r, w) = nix::unistd::pipe().unwrap();
        use std::os::fd::AsRawFd;
        send(w.as_raw_fd(), Step::Bind, Errno::EROFS, b"/usr/x");
        let mut buf = [0u8; 2048];
        let n = nix::unistd::read(&r, &mut buf).unwrap();
        let f = decode(&buf[..n]).unwrap();
        assert_eq!(f.step, Step::Bind);
        assert_eq!(f.errno, Errno::EROFS);
        assert_eq!(f.arg, b"/usr/x");
        assert_eq!(Step::ALL.len(), Step::Exec as usize);
    }
}
