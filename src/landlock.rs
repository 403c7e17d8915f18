//! Landlock, in one place: the kernel's access rights, the probe for what
//! this kernel offers (the ABI version, or why there is none, and the errata
//! it fixed), and the ruleset the child applies.
//!
//! A bottom module: it imports nothing of hutch's but `sys`. What a launch
//! asks for (which rules, required or best-effort) is planned in
//! `plan::security`, against the probe's answer, so that `--explain` and a
//! refusal can say what will and will not be enforced before anything runs;
//! `prepare` lowers the plan to a [`Ruleset`]; the child calls
//! [`Ruleset::restrict_self`], which makes raw system calls only and
//! allocates nothing.
//!
//! Why not the landlock crate (rust-landlock): it keeps the kernel's ABI
//! version to itself and reports what it enforced only after
//! `restrict_self`, while hutch decides at plan time; see
//! docs/ARCHITECTURE.md ("Dependencies").

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

use nix::errno::Errno;

use crate::sys;

/// Landlock access rights and scopes (`<linux/landlock.h>`).
pub mod access {
    pub const EXECUTE: u64 = 1 << 0;
    pub const WRITE_FILE: u64 = 1 << 1;
    pub const READ_FILE: u64 = 1 << 2;
    pub const READ_DIR: u64 = 1 << 3;
    pub const REMOVE_DIR: u64 = 1 << 4;
    pub const REMOVE_FILE: u64 = 1 << 5;
    pub const MAKE_CHAR: u64 = 1 << 6;
    pub const MAKE_DIR: u64 = 1 << 7;
    pub const MAKE_REG: u64 = 1 << 8;
    pub const MAKE_SOCK: u64 = 1 << 9;
    pub const MAKE_FIFO: u64 = 1 << 10;
    pub const MAKE_BLOCK: u64 = 1 << 11;
    pub const MAKE_SYM: u64 = 1 << 12;
    pub const REFER: u64 = 1 << 13;
    pub const TRUNCATE: u64 = 1 << 14;
    pub const IOCTL_DEV: u64 = 1 << 15;
    /// The rights that apply to a file (not a directory) in a rule.
    pub const FILE: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;
    pub const READ: u64 = READ_FILE | READ_DIR | EXECUTE;

    pub const NET_BIND_TCP: u64 = 1 << 0;
    pub const NET_CONNECT_TCP: u64 = 1 << 1;
    pub const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
    pub const SCOPE_SIGNAL: u64 = 1 << 1;

    /// Every filesystem right a kernel with this ABI knows.
    pub fn all_fs(abi: u32) -> u64 {
        let mut all = (1 << 13) - 1;
        if abi >= 2 {
            all |= REFER;
        }
        if abi >= 3 {
            all |= TRUNCATE;
        }
        if abi >= 5 {
            all |= IOCTL_DEV;
        }
        all
    }

    pub fn names(bits: u64) -> Vec<&'static str> {
        [
            (EXECUTE, "execute"),
            (WRITE_FILE, "write_file"),
            (READ_FILE, "read_file"),
            (READ_DIR, "read_dir"),
            (REMOVE_DIR, "remove_dir"),
            (REMOVE_FILE, "remove_file"),
            (MAKE_CHAR, "make_char"),
            (MAKE_DIR, "make_dir"),
            (MAKE_REG, "make_reg"),
            (MAKE_SOCK, "make_sock"),
            (MAKE_FIFO, "make_fifo"),
            (MAKE_BLOCK, "make_block"),
            (MAKE_SYM, "make_sym"),
            (REFER, "refer"),
            (TRUNCATE, "truncate"),
            (IOCTL_DEV, "ioctl_dev"),
        ]
        .into_iter()
        .filter_map(|(b, n)| (bits & b != 0).then_some(n))
        .collect()
    }

    /// The rights a rule grants on `rights` when its path turns out to be a
    /// file: the kernel refuses directory rights on a file.
    pub fn on_file(rights: u64) -> u64 {
        rights & FILE
    }
}

// ---- What this kernel offers -------------------------------------------

const CREATE_RULESET_VERSION: u32 = 1 << 0;
const CREATE_RULESET_ERRATA: u32 = 1 << 1;

/// Whether this kernel enforces Landlock, as its probe answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Available, with this ABI version (1 or more).
    Abi(u32),
    /// `ENOSYS`: no Landlock system calls.
    NotBuilt,
    /// `EOPNOTSUPP`: built in, but not enabled at boot.
    Disabled,
    /// Any other error (the raw errno).
    Refused(i32),
}

impl Support {
    /// The ABI version; 0 when Landlock cannot be used.
    pub fn abi(self) -> u32 {
        match self {
            Support::Abi(v) => v,
            _ => 0,
        }
    }

    /// Why Landlock cannot be used here and what to do about it; `None`
    /// when it can.
    pub fn problem(self) -> Option<String> {
        match self {
            Support::Abi(_) => None,
            Support::NotBuilt => Some(
                "this kernel has no Landlock: it was built without CONFIG_SECURITY_LANDLOCK \
                 (Linux 5.13+), or a seccomp filter around hutch hides the system call"
                    .into(),
            ),
            Support::Disabled => Some(
                "Landlock is built into this kernel but was not enabled at boot: add `landlock` \
                 to the `lsm=` boot parameter (keeping the modules /sys/kernel/security/lsm lists)"
                    .into(),
            ),
            Support::Refused(errno) => Some(format!(
                "the kernel refused hutch's Landlock probe: {}",
                Errno::from_raw(errno).desc()
            )),
        }
    }
}

/// Asks the kernel whether it enforces Landlock, and at which ABI.
pub fn probe() -> Support {
    match create_ruleset_query(CREATE_RULESET_VERSION) {
        Ok(abi) => Support::Abi(abi),
        Err(Errno::ENOSYS) => Support::NotBuilt,
        Err(Errno::EOPNOTSUPP) => Support::Disabled,
        Err(e) => Support::Refused(e as i32),
    }
}

/// The errata this kernel fixed, bit `N - 1` for erratum `N`. 0 where the
/// kernel cannot say (the query came with Linux 6.15 and its stable
/// backports): then no fix is known to be there.
pub fn fixed_errata() -> u32 {
    create_ruleset_query(CREATE_RULESET_ERRATA).unwrap_or(0)
}

/// `landlock_create_ruleset(NULL, 0, flag)`: a number, no ruleset.
fn create_ruleset_query(flag: u32) -> Result<u32, Errno> {
    // SAFETY: with a NULL attribute, size 0 and a query flag the kernel
    // reads no memory and returns a number.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            flag,
        )
    };
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(rc as u32)
    }
}

/// What an erratum touches, among what hutch enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    Filesystem,
    TcpPorts,
    SignalScope,
}

/// A Landlock bug fixed after its feature shipped, which the kernel reports
/// as fixed or not (Documentation/userspace-api/landlock.rst, "Errata").
#[derive(Debug)]
pub struct Erratum {
    pub number: u32,
    /// The first ABI with the affected feature.
    pub abi: u32,
    pub feature: Feature,
    /// What goes wrong on a kernel without the fix.
    pub without_fix: &'static str,
}

impl Erratum {
    pub fn bit(&self) -> u32 {
        1 << (self.number - 1)
    }
}

/// The errata known to hutch. None of them makes hutch drop a restriction:
/// errata 1 and 2 make the kernel stricter than meant (dropping the feature
/// would trade a breakage for less confinement, which the kernel's
/// documentation advises against), erratum 3 is a hole that only the fix
/// closes. `--explain` and `hutch doctor` name the ones that apply.
pub const ERRATA: &[Erratum] = &[
    Erratum {
        number: 1,
        abi: 4,
        feature: Feature::TcpPorts,
        without_fix: "the TCP port rules also restrict bind and connect of other stream \
                      protocols (MPTCP, SCTP, SMC)",
    },
    Erratum {
        number: 2,
        abi: 6,
        feature: Feature::SignalScope,
        without_fix: "signal scoping also stops a thread that entered a Landlock domain of its \
                      own from signalling the other threads of its process (a payload that \
                      sandboxes one thread breaks, e.g. in glibc's setuid())",
    },
    Erratum {
        number: 3,
        abi: 1,
        feature: Feature::Filesystem,
        without_fix: "a directory moved out of a bind mount can widen access through rename or \
                      link, past the filesystem rules",
    },
];

/// Every erratum hutch knows, as fixed bits.
pub fn all_errata() -> u32 {
    ERRATA.iter().fold(0, |bits, e| bits | e.bit())
}

/// The errata that apply to `feature` on a kernel with `abi` and whose fix
/// `fixed` lacks.
pub fn unfixed(abi: u32, fixed: u32, feature: Feature) -> impl Iterator<Item = &'static Erratum> {
    ERRATA
        .iter()
        .filter(move |e| e.feature == feature && abi >= e.abi && fixed & e.bit() == 0)
}

// ---- The ruleset the child applies -------------------------------------

/// One path rule, ready for the child.
#[derive(Debug)]
pub struct PathRule {
    /// A path inside the sandbox.
    pub path: CString,
    /// Rights as planned; the child keeps only file rights if the path is
    /// a file.
    pub access: u64,
    /// Rules derived from mounts are skipped when the path is missing.
    pub skip_if_missing: bool,
    /// Whether the path is a directory, when the plan knew; else the child
    /// looks.
    pub is_dir: Option<bool>,
}

/// A Landlock ruleset, computed before clone.
#[derive(Debug)]
pub struct Ruleset {
    pub handled_fs: u64,
    pub handled_net: u64,
    pub scoped: u64,
    pub fs_rules: Vec<PathRule>,
    /// (port, rights) pairs.
    pub net_rules: Vec<(u64, u64)>,
}

/// A failed step of [`Ruleset::restrict_self`], with the path of the rule
/// it failed on.
#[derive(Debug, PartialEq, Eq)]
pub struct ApplyError<'a> {
    pub errno: Errno,
    pub path: Option<&'a CStr>,
}

impl ApplyError<'_> {
    fn new(errno: Errno) -> Self {
        ApplyError { errno, path: None }
    }
}

/// `struct landlock_ruleset_attr`, in its ABI 6 size: a kernel accepts the
/// larger struct when the fields it does not know are zero.
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

const RULE_PATH_BENEATH: u32 = 1;
const RULE_NET_PORT: u32 = 2;

impl Ruleset {
    /// Creates the kernel's ruleset from `self` and restricts the calling
    /// thread with it (no_new_privs must be set). Each rule's path is
    /// opened, as it is now, by `open` (an `O_PATH` descriptor, or the
    /// errno). Raw system calls only, no allocation: safe between clone and
    /// exec when `open` is.
    pub fn restrict_self(
        &self,
        open: impl Fn(&CStr) -> Result<RawFd, Errno>,
    ) -> Result<(), ApplyError<'_>> {
        let ruleset = self.create().map_err(ApplyError::new)?;
        let result = self.add_rules(ruleset, open).and_then(|()| {
            // SAFETY: plain integer arguments.
            let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) };
            if rc < 0 {
                Err(ApplyError::new(Errno::last()))
            } else {
                Ok(())
            }
        });
        sys::close(ruleset);
        result
    }

    /// The kernel's (empty) ruleset for what `self` handles.
    fn create(&self) -> Result<RawFd, Errno> {
        let attr = RulesetAttr {
            handled_access_fs: self.handled_fs,
            handled_access_net: self.handled_net,
            scoped: self.scoped,
        };
        // SAFETY: attr is a valid landlock_ruleset_attr of the size passed;
        // the kernel only reads it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                std::mem::size_of::<RulesetAttr>(),
                0u32,
            )
        };
        if rc < 0 {
            Err(Errno::last())
        } else {
            Ok(rc as RawFd)
        }
    }

    fn add_rules(
        &self,
        ruleset: RawFd,
        open: impl Fn(&CStr) -> Result<RawFd, Errno>,
    ) -> Result<(), ApplyError<'_>> {
        for rule in &self.fs_rules {
            let failed = |errno| ApplyError {
                errno,
                path: Some(rule.path.as_c_str()),
            };
            let fd = match open(rule.path.as_c_str()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if rule.skip_if_missing => continue,
                Err(e) => return Err(failed(e)),
            };
            let is_dir = rule.is_dir.unwrap_or_else(|| is_directory(fd));
            let rights = if is_dir {
                rule.access
            } else {
                access::on_file(rule.access)
            };
            let added = if rights == 0 {
                Ok(())
            } else {
                add_path_rule(ruleset, fd, rights)
            };
            sys::close(fd);
            added.map_err(failed)?;
        }
        for &(port, rights) in &self.net_rules {
            add_port_rule(ruleset, port, rights).map_err(ApplyError::new)?;
        }
        Ok(())
    }
}

fn is_directory(fd: RawFd) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is valid for writes of a struct stat.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return false;
    }
    // SAFETY: fstat succeeded, so it wrote the whole struct.
    let st = unsafe { st.assume_init() };
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn add_path_rule(ruleset: RawFd, parent: RawFd, rights: u64) -> Result<(), Errno> {
    let attr = PathBeneathAttr {
        allowed_access: rights,
        parent_fd: parent,
    };
    // SAFETY: attr is a valid (packed) landlock_path_beneath_attr; the kernel
    // only reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

fn add_port_rule(ruleset: RawFd, port: u64, rights: u64) -> Result<(), Errno> {
    let attr = NetPortAttr {
        allowed_access: rights,
        port,
    };
    // SAFETY: attr is a valid landlock_net_port_attr; the kernel only reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            RULE_NET_PORT,
            &attr as *const NetPortAttr,
            0u32,
        )
    };
    if rc < 0 { Err(Errno::last()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens a rule's path as the kernel resolves it (the tests' rules lie
    /// in directories of their own).
    fn open_following(path: &CStr) -> Result<RawFd, Errno> {
        // SAFETY: the path is NUL-terminated; the call only reads it.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 { Err(Errno::last()) } else { Ok(fd) }
    }

    #[test]
    fn access_sets_follow_the_abi() {
        assert_eq!(access::all_fs(1), 0x1fff);
        assert_eq!(access::all_fs(3), 0x7fff);
        assert_eq!(access::all_fs(7), 0xffff);
        assert_eq!(
            access::names(access::READ),
            ["execute", "read_file", "read_dir"]
        );
        assert_eq!(
            access::on_file(access::all_fs(7)),
            access::EXECUTE
                | access::WRITE_FILE
                | access::READ_FILE
                | access::TRUNCATE
                | access::IOCTL_DEV
        );
    }

    #[test]
    fn a_file_gets_only_file_rights_whether_or_not_the_plan_knew() {
        let abi = probe().abi();
        if abi == 0 {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "SKIP: no Landlock on this kernel");
            return;
        }
        let all = access::all_fs(abi);
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = || CString::new(file.path().to_str().unwrap()).unwrap();
        let ruleset = |is_dir| Ruleset {
            handled_fs: all,
            handled_net: 0,
            scoped: 0,
            fs_rules: vec![
                PathRule {
                    path: path(),
                    access: all,
                    skip_if_missing: false,
                    is_dir,
                },
                PathRule {
                    path: c"/nonexistent/derived".into(),
                    access: all,
                    skip_if_missing: true,
                    is_dir: Some(true),
                },
            ],
            net_rules: Vec::new(),
        };
        // Control: the kernel refuses directory rights on a file.
        let fd = ruleset(None).create().unwrap();
        let file_fd = std::fs::File::open(file.path()).unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(
            add_path_rule(fd, file_fd.as_raw_fd(), all),
            Err(Errno::EINVAL)
        );
        sys::close(fd);
        // The plan knew it is a file, or the child looks: either way the
        // ruleset applies (in a child process, which it confines).
        for is_dir in [Some(false), None] {
            let rules = ruleset(is_dir);
            // SAFETY: the child makes system calls only and ends in _exit.
            match unsafe { nix::unistd::fork() }.unwrap() {
                nix::unistd::ForkResult::Child => {
                    let code = match sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
                        .map_err(ApplyError::new)
                        .and_then(|_| rules.restrict_self(open_following))
                    {
                        Ok(()) => 0,
                        Err(e) => e.errno as i32,
                    };
                    sys::exit_now(code);
                }
                nix::unistd::ForkResult::Parent { child } => {
                    let status = nix::sys::wait::waitpid(child, None).unwrap();
                    assert_eq!(
                        status,
                        nix::sys::wait::WaitStatus::Exited(child, 0),
                        "is_dir {is_dir:?} (exit code: the errno)"
                    );
                }
            }
        }
    }

    #[test]
    fn the_probe_names_why_landlock_is_missing() {
        assert_eq!(Support::Abi(6).abi(), 6);
        assert_eq!(Support::Abi(6).problem(), None);
        for s in [Support::NotBuilt, Support::Disabled, Support::Refused(1)] {
            assert_eq!(s.abi(), 0);
        }
        assert!(
            Support::NotBuilt
                .problem()
                .unwrap()
                .contains("CONFIG_SECURITY_LANDLOCK")
        );
        assert!(Support::Disabled.problem().unwrap().contains("`lsm=`"));
        // This kernel answers one way or the other, never with a bogus ABI.
        let here = probe();
        assert!(here.abi() > 0 || here.problem().is_some(), "{here:?}");
    }

    #[test]
    fn errata_apply_from_their_abi_until_fixed() {
        let signal = |abi, fixed| {
            unfixed(abi, fixed, Feature::SignalScope)
                .map(|e| e.number)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            signal(5, 0),
            Vec::<u32>::new(),
            "no signal scoping before ABI 6"
        );
        assert_eq!(signal(6, 0), [2]);
        assert_eq!(signal(6, 0b010), Vec::<u32>::new());
        assert_eq!(signal(7, all_errata()), Vec::<u32>::new());
        let fs: Vec<u32> = unfixed(1, 0b011, Feature::Filesystem)
            .map(|e| e.number)
            .collect();
        assert_eq!(fs, [3]);
        // The kernel never reports a fix for an erratum beyond its ABI.
        let here = probe().abi();
        let fixed = fixed_errata();
        for e in ERRATA.iter().filter(|e| here < e.abi) {
            assert_eq!(
                fixed & e.bit(),
                0,
                "erratum {} reported fixed at ABI {here}",
                e.number
            );
        }
    }
}
