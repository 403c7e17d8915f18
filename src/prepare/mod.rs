//! The plan lowered for the child, computed before clone: every path a C
//! string, every buffer allocated, the seccomp filter compiled, so that the
//! child only makes system calls. Both sides import this room: the
//! launcher builds a [`Prepared`], the child applies it and reports a
//! failed step in the vocabulary of [`report`].
//!
//! - [`mounts`]: the profile's mounts as [`MountInstr`]s;
//! - [`root`]: what the root is built from ([`RootInstr`]);
//! - [`exec`]: the command and environment for execve;
//! - [`confine`]: resource limits, the Landlock ruleset, the seccomp filter;
//! - [`netfilter`]: `[network]`'s egress rules as an nf_tables batch;
//! - [`slots`]: the descriptors the child opens first, as a typed table;
//! - [`report`]: the steps the child runs and how it reports a failure.

pub mod confine;
pub mod exec;
pub mod home_note;
pub mod mounts;
pub mod netfilter;
pub mod report;
pub mod root;
pub mod slots;

use std::ffi::CString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::landlock::Ruleset;
use crate::plan::Plan;
use crate::plan::seccomp::{self, Insn};
pub use confine::Rlimit;
pub use exec::Exec;
pub use mounts::MountInstr;
pub use root::{OverlayInstr, RootInstr};
pub use slots::SlotTable;

/// A directory the launcher opened, checked and pins (a volume, or a
/// persistent upper layer's `upper` and `work`): the child opens `path`
/// again without following symlinks and uses it only if it is the same
/// inode (`sys::open_pinned_dir`).
#[derive(Debug)]
pub struct PinnedDir {
    pub path: CString,
    pub dev: u64,
    pub ino: u64,
}

impl PinnedDir {
    pub fn of(what: &'static str, p: &crate::safe_fs::Pinned) -> Result<PinnedDir, NulError> {
        Ok(PinnedDir {
            path: cstring_path(what, &p.path)?,
            dev: p.dev,
            ino: p.ino,
        })
    }
}

#[derive(Debug)]
pub struct Prepared {
    pub clone_flags: u64,
    /// `(uid_map, gid_map)` contents, when a user namespace is created.
    pub id_maps: Option<(Vec<u8>, Vec<u8>)>,
    pub mount_ns: bool,
    /// The sandbox gets a network namespace of its own, made by the clone
    /// or, with a CPU to spare, by a helper in parallel (see child::netns).
    pub net_ns: bool,
    pub pid_ns: bool,
    /// The descriptors the child opens before it builds the root.
    pub slots: SlotTable,
    /// What the root is built from; `None`: an empty tmpfs.
    pub root: Option<RootInstr>,
    pub mounts: Vec<MountInstr>,
    pub hostname: Option<CString>,
    pub cwd: CString,
    pub exec: Exec,
    pub init: bool,
    pub new_session: bool,
    /// With `new_session`: the payload's own pseudo-terminal, opened in the
    /// devpts of the `dev` mount marked `terminal`.
    pub pty: Option<PtyInstr>,
    /// Where the child waits for the launcher (set by the helpers that
    /// need it, before clone).
    pub barriers: Barriers,
    /// Create the cgroup namespace after the parent has placed the child in
    /// its cgroup (instead of at clone, which would root it at hutch's own).
    pub unshare_cgroup_ns: bool,
    /// The caller's umask, restored for the payload.
    pub umask: libc::mode_t,
    pub rlimits: Vec<Rlimit>,
    pub landlock: Option<Ruleset>,
    pub seccomp: Option<Vec<Insn>>,
    /// `seccomp` is a learning filter: loaded with a listener, which the
    /// child sends to the launcher (`Pipes::learn`).
    pub seccomp_listener: bool,
    /// `[network]` user mode's egress rules, installed in the sandbox's
    /// network namespace before the child confines itself.
    pub egress: Option<netfilter::EgressBatch>,
    /// hutch's own command line in memory (`arg_start..arg_end`), which
    /// init overwrites so the sandbox's `ps` shows `hutch-init`, not the
    /// host's path and arguments.
    pub title: Option<(usize, usize)>,
    /// The home is a tmpfs: init names at exit what was written there.
    pub home_note: Option<home_note::HomeNoteInstr>,
}

/// The payload's own pseudo-terminal (`plan::terminal::PtyPlan`), lowered.
#[derive(Debug, Clone, Copy)]
pub struct PtyInstr {
    /// Which of the standard descriptors 0, 1 and 2 it replaces.
    pub replaces: [bool; 3],
    /// The caller's terminal's mode and size, which the new one starts
    /// with (read by the launcher before clone; `None`: the kernel's
    /// defaults).
    pub mode: Option<TerminalMode>,
}

/// A terminal's attributes and window size.
#[derive(Clone, Copy)]
pub struct TerminalMode {
    pub termios: libc::termios,
    pub size: libc::winsize,
}

impl std::fmt::Debug for TerminalMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TerminalMode {{ {}x{} }}",
            self.size.ws_col, self.size.ws_row
        )
    }
}

/// A point where the child stops until the launcher writes a byte on the
/// go pipe: a helper that must act on the child (place it in a cgroup)
/// or be ready before the child goes on declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Barrier {
    /// Before the child makes its cgroup namespace: the cgroup helper
    /// places it in the sandbox's cgroup meanwhile.
    Early = 1,
    /// Before the child confines itself, its filesystem built: a helper
    /// that works on the child's namespaces (pasta) runs in parallel with
    /// the mounts and is ready by then.
    Late = 2,
}

/// The barriers a child waits at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Barriers(u8);

impl Barriers {
    pub fn add(&mut self, barrier: Barrier) {
        self.0 |= barrier as u8;
    }

    pub fn has(self, barrier: Barrier) -> bool {
        self.0 & barrier as u8 != 0
    }
}

/// The descriptors the child shares with the launcher.
#[derive(Debug, Clone, Copy)]
pub struct Pipes {
    /// Write end: failure records; end of file means the payload was executed.
    pub report: RawFd,
    /// Read end: the launcher's byte per barrier; hang-up means it is gone.
    pub go: RawFd,
    /// Where the network namespace arrives from the launcher's helper (-1: none).
    pub netns: RawFd,
    /// Where the child sends its namespaces to the launcher (-1: nowhere).
    pub handoff: RawFd,
    /// `hutch learn`: where the child sends its seccomp listener (-1: no
    /// learning).
    pub learn: RawFd,
    /// With a pseudo-terminal: where the child sends its master to the
    /// launcher, and hutch's init says when the payload was stopped by
    /// the terminal (Ctrl-Z); -1 otherwise.
    pub terminal: RawFd,
}

/// The signals the launcher forwards to the sandbox, and hutch's init to
/// the payload. Both block them (with SIGCHLD) and read them from a
/// signalfd.
pub const FORWARDED: &[libc::c_int] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// What the launcher holds for the sandbox (opened, checked, locked) and
/// the child opens again: the volumes, one per volume mount in the plan's
/// order, and a persistent upper layer's `upper` and `work`.
#[derive(Debug, Default)]
pub struct Held {
    pub volumes: Vec<PinnedDir>,
    pub upper: Option<[PinnedDir; 2]>,
}

impl Prepared {
    /// The clone flags of every namespace the sandbox ends up with, also
    /// those created after clone (the cgroup namespace under `[limits]`).
    pub fn namespace_flags(&self) -> u64 {
        let mut flags = self.clone_flags;
        if self.unshare_cgroup_ns {
            flags |= libc::CLONE_NEWCGROUP as u64;
        }
        flags
    }
}

/// A string from the plan contained a NUL byte.
#[derive(Debug, thiserror::Error)]
#[error("{what} contains a NUL byte: {value:?}")]
pub struct NulError {
    pub what: &'static str,
    pub value: String,
}

/// `bytes` as a C string; `what` names it if it holds a NUL byte.
pub fn cstring(what: &'static str, bytes: &[u8]) -> Result<CString, NulError> {
    CString::new(bytes).map_err(|_| NulError {
        what,
        value: String::from_utf8_lossy(bytes).into_owned(),
    })
}

/// A path as a C string; `what` names it if it holds a NUL byte.
pub fn cstring_path(what: &'static str, path: &Path) -> Result<CString, NulError> {
    cstring(what, path.as_os_str().as_bytes())
}

/// Failures to turn a plan into the child's instructions.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Nul(#[from] NulError),
    #[error("cannot build the seccomp filter: {0}")]
    Seccomp(#[from] seccomp::CompileError),
    #[error(transparent)]
    Root(#[from] root::RootError),
    #[error("hutch holds no {0} for this sandbox (this is a bug in hutch; please report it)")]
    NotHeld(&'static str),
    #[error(
        "hutch holds a {0} this sandbox does not use (this is a bug in hutch; please report it)"
    )]
    HeldUnused(&'static str),
}

/// Lowers `plan`, with what the launcher holds for it, for the child.
pub fn prepare(plan: &Plan, held: Held) -> Result<Prepared, PrepareError> {
    let mut slots = SlotTable::default();
    let mounts = mounts::lower(plan, held.volumes, &mut slots)?;
    let root = root::lower(plan, held.upper, &mut slots)?;
    let security = &plan.security;
    Ok(Prepared {
        clone_flags: clone_flags(plan),
        id_maps: plan.id_map.map(|m| {
            (
                format!("{} {} 1\n", m.uid_inside, m.uid_outside).into_bytes(),
                format!("{} {} 1\n", m.gid_inside, m.gid_outside).into_bytes(),
            )
        }),
        mount_ns: plan.namespaces.mount,
        net_ns: plan.namespaces.net,
        pid_ns: plan.namespaces.pid,
        root,
        slots,
        mounts,
        hostname: plan
            .hostname
            .as_ref()
            .map(|h| cstring("hostname", h.as_bytes()))
            .transpose()?,
        cwd: cstring_path("working directory", &plan.cwd)?,
        exec: exec::lower(plan)?,
        init: plan.init,
        new_session: security.new_session,
        pty: security.pty.as_ref().map(|p| PtyInstr {
            replaces: p.replaces,
            mode: None,
        }),
        barriers: Barriers::default(),
        unshare_cgroup_ns: false,
        umask: caller_umask(),
        rlimits: confine::rlimits(&security.rlimits),
        landlock: confine::landlock(&security.landlock)?,
        seccomp: match (&security.seccomp, security.seccomp.arch) {
            (s, Some(arch)) if s.learn => {
                let rules = if s.active { &s.rules[..] } else { &[] };
                Some(seccomp::compile(&seccomp::learning_rules(rules).0, arch)?)
            }
            (s, Some(arch)) if s.active => Some(seccomp::compile(&s.rules, arch)?),
            _ => None,
        },
        seccomp_listener: security.seccomp.learn && security.seccomp.arch.is_some(),
        egress: plan
            .network
            .user
            .as_ref()
            .and_then(|u| netfilter::lower(&u.egress)),
        title: crate::host::command_line::area(),
        home_note: plan
            .home_note
            .as_ref()
            .map(|n| home_note::lower(n, &plan.profile))
            .transpose()?,
    })
}

/// The namespaces the plan asks for, as clone flags.
fn clone_flags(plan: &Plan) -> u64 {
    let ns = &plan.namespaces;
    let mut flags = 0u64;
    for (on, flag) in [
        (ns.user, libc::CLONE_NEWUSER),
        (ns.mount, libc::CLONE_NEWNS),
        (ns.pid, libc::CLONE_NEWPID),
        (ns.uts, libc::CLONE_NEWUTS),
        (ns.ipc, libc::CLONE_NEWIPC),
        (ns.net, libc::CLONE_NEWNET),
        (ns.cgroup, libc::CLONE_NEWCGROUP),
    ] {
        if on {
            flags |= flag as u64;
        }
    }
    flags
}

/// The caller's umask (reading it means setting it and setting it back).
fn caller_umask() -> libc::mode_t {
    use nix::sys::stat::{Mode, umask};
    let old = umask(Mode::from_bits_truncate(0o022));
    umask(old);
    old.bits()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::host::Host;
    use crate::plan::{Request, build};
    use crate::profile::{ProfileRef, SearchPath, load};

    /// The plan of the profile `text` (extending the built-ins as it
    /// says) for `/bin/true`, on a fixed host.
    pub(crate) fn plan_of(text: &str) -> Plan {
        try_plan_of(text).unwrap()
    }

    fn try_plan_of(text: &str) -> Result<Plan, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), text).unwrap();
        let path = dir.path().display().to_string();
        let host = Host::fixed(
            1000,
            1000,
            &[("HOME", "/home/u"), ("HUTCH_PROFILE_PATH", &path)],
            "/",
        );
        let search = SearchPath::standard(&host);
        let profile = load(&ProfileRef::Name("p".into()), &search).map_err(|e| e.to_string())?;
        let request = Request {
            command: vec!["/bin/true".into()],
            command_optional: false,
            image: None,
        };
        build(&profile, &host, &request).map_err(|e| e.to_string())
    }

    fn pinned(path: &std::ffi::CStr) -> PinnedDir {
        PinnedDir {
            path: path.into(),
            dev: 1,
            ino: 2,
        }
    }

    /// The kind of the slot behind a handle of `prepared`'s table.
    fn kind<T>(prepared: &Prepared, slot: slots::Slot<T>) -> slots::SlotKind {
        prepared
            .slots
            .entry(slot)
            .expect("a slot of this table")
            .kind
    }

    #[test]
    fn every_instruction_holds_a_slot_of_its_kind() {
        use slots::SlotKind::*;
        let plan = plan_of(
            "version = 1\n[namespaces]\npid = false\n\
             [[mount]]\ntype = \"ro-bind\"\nsrc = \"/usr\"\ndst = \"/usr\"\n\
             [volumes.data]\ndst = \"/data\"\n\
             [[mount]]\ntype = \"proc\"\ndst = \"/proc\"\n\
             [[mount]]\ntype = \"dev\"\ndst = \"/dev\"\n",
        );
        let held = Held {
            volumes: vec![pinned(c"/store/data")],
            upper: None,
        };
        let prepared = prepare(&plan, held).unwrap();
        let mut seen = Vec::new();
        for instr in &prepared.mounts {
            match instr {
                MountInstr::Bind { source, .. } => seen.push(kind(&prepared, *source)),
                MountInstr::Proc {
                    host_source,
                    masked,
                    ..
                } => {
                    seen.push(kind(&prepared, host_source.unwrap()));
                    seen.extend(masked.iter().map(|(_, _, s)| kind(&prepared, *s)));
                }
                MountInstr::Dev { nodes, .. } => {
                    assert_eq!(nodes[0].0.as_c_str(), c"null");
                    seen.extend(nodes.iter().map(|(_, s)| kind(&prepared, *s)));
                }
                _ => {}
            }
        }
        // The plan's order: the mounts, then the volumes.
        let last = seen.len() - 1;
        assert_eq!(
            [seen[0], seen[1], seen[last]],
            [BindSource, HostProc, Volume]
        );
        assert!(seen[2..last].contains(&DevNode));
        assert!(
            seen[2..last]
                .iter()
                .all(|k| [ProcMask, DevNode].contains(k))
        );
        // Every slot is used by exactly one instruction.
        assert_eq!(seen.len(), prepared.slots.len());
        assert_eq!(
            prepared.slots.entries()[last].opening.path().as_c_str(),
            c"/store/data"
        );
    }

    #[test]
    fn what_the_launcher_holds_must_match_the_plan() {
        let volume = plan_of("version = 1\n[volumes.data]\ndst = \"/data\"\n");
        let err = prepare(&volume, Held::default()).unwrap_err();
        assert!(matches!(err, PrepareError::NotHeld("volume")), "{err}");
        let none = plan_of("version = 1\n");
        let extra = Held {
            volumes: vec![pinned(c"/store/data")],
            upper: None,
        };
        let err = prepare(&none, extra).unwrap_err();
        assert!(matches!(err, PrepareError::HeldUnused("volume")), "{err}");
        let upper = Held {
            volumes: Vec::new(),
            upper: Some([pinned(c"/w/upper"), pinned(c"/w/work")]),
        };
        let err = prepare(&none, upper).unwrap_err();
        assert!(
            matches!(err, PrepareError::HeldUnused("writable layer")),
            "{err}"
        );
        assert!(prepare(&none, Held::default()).is_ok());
    }

    #[test]
    fn a_persistent_upper_layer_is_opened_only_as_the_launcher_claimed_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        let root = dir.path().join("rootfs").display().to_string();
        let changes = dir.path().join("changes").display().to_string();
        let plan = match try_plan_of(&format!(
            "version = 1\nroot = \"{root}\"\nwritable = \"{changes}\"\n"
        )) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let err = prepare(&plan, Held::default()).unwrap_err();
        assert!(
            matches!(err, PrepareError::NotHeld("writable layer")),
            "{err}"
        );
        let held = Held {
            volumes: Vec::new(),
            upper: Some([pinned(c"/w/upper"), pinned(c"/w/work")]),
        };
        let prepared = prepare(&plan, held).unwrap();
        let Some(RootInstr::Overlay(o)) = &prepared.root else {
            panic!("{:?}", prepared.root)
        };
        let [upper, work] = o.upper.unwrap();
        assert_eq!(kind(&prepared, upper), slots::SlotKind::Upper);
        assert_eq!(kind(&prepared, work), slots::SlotKind::Work);
        assert_eq!(kind(&prepared, o.layers[0].1), slots::SlotKind::Layer);
    }
}
