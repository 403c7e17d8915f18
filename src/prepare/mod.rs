//! Turning a plan into what the child needs, computed before clone: every
//! path as a C string, every buffer allocated, so the child only makes system
//! calls.

pub mod report;
pub mod root;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::plan::mounts::DEV_NODES;
use crate::plan::seccomp::{self, Insn};
use crate::plan::security::RLIMITS;
use crate::plan::{MountOp, Plan};
use crate::sys;

#[derive(Debug)]
pub enum Op {
    Bind {
        source: usize,
        dst: CString,
        attrs: u64,
    },
    Tmpfs {
        dst: CString,
        mode: CString,
        size: Option<CString>,
    },
    /// A procfs: new, or (`host_source`) the host's bound; then hardened.
    Proc {
        dst: CString,
        host_source: Option<usize>,
        /// Made read-only in place: (name inside /proc, full path for messages).
        readonly: Vec<(CString, CString)>,
        /// Covered with a read-only /dev/null: (name, full path, source index).
        masked: Vec<(CString, CString, usize)>,
    },
    /// `first_node` indexes the sources for [`DEV_NODES`], in that order.
    Dev {
        dst: CString,
        first_node: usize,
    },
    Dir {
        dst: CString,
        mode: u32,
    },
    Symlink {
        target: CString,
        dst: CString,
    },
    File {
        dst: CString,
        content: Vec<u8>,
        mode: u32,
    },
}

#[derive(Debug)]
pub struct Exec {
    /// Paths to try in order (PATH lookup inside the sandbox).
    pub candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub argv_ptrs: Vec<*const libc::c_char>,
    pub env: Vec<CString>,
    pub envp: Vec<*const libc::c_char>,
}

/// The Landlock ruleset and its path rule, under the names the child's
/// vocabulary had before they moved to `crate::landlock`.
pub use crate::landlock::{PathRule as LandlockPathRule, Ruleset as Landlock};

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
            path: cpath(what, &p.path)?,
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
    /// Host paths opened (as detached mount trees) before the root is built.
    pub sources: Vec<CString>,
    /// What the root is built from; `None`: an empty tmpfs.
    pub root: Option<root::RootOp>,
    pub ops: Vec<Op>,
    pub hostname: Option<CString>,
    pub cwd: CString,
    pub exec: Exec,
    pub init: bool,
    pub new_session: bool,
    pub wait_for_parent: bool,
    /// Create the cgroup namespace after the parent has placed the child in
    /// its cgroup (instead of at clone, which would root it at hutch's own).
    pub unshare_cgroup_ns: bool,
    /// The caller's umask, restored for the payload.
    pub umask: libc::mode_t,
    /// (resource, value for soft and hard)
    pub rlimits: Vec<(crate::sys::RlimitResource, libc::rlim_t)>,
    pub landlock: Option<Landlock>,
    pub seccomp: Option<Vec<Insn>>,
    /// hutch's own command line in memory (`arg_start..arg_end`), which
    /// init overwrites so the sandbox's `ps` shows `hutch-init`, not the
    /// host's path and arguments.
    pub title: Option<(usize, usize)>,
    /// Volumes, in the order of the plan's; filled by the launcher (which
    /// opens and locks them). Their detached mounts take the slots after
    /// `sources` in the child's source descriptors.
    pub volumes: Vec<PinnedDir>,
    /// A persistent upper layer's `upper` and `work` directories; filled
    /// by the launcher (which opens, checks and locks them). The child
    /// refuses to build a persistent overlay without them.
    pub upper: Option<[PinnedDir; 2]>,
}

/// A string from the plan contained a NUL byte.
#[derive(Debug, thiserror::Error)]
#[error("{what} contains a NUL byte: {value:?}")]
pub struct NulError {
    pub what: &'static str,
    pub value: String,
}

pub(crate) fn c(what: &'static str, s: &[u8]) -> Result<CString, NulError> {
    CString::new(s).map_err(|_| NulError {
        what,
        value: String::from_utf8_lossy(s).into_owned(),
    })
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

pub(crate) fn cpath(what: &'static str, p: &Path) -> Result<CString, NulError> {
    c(what, p.as_os_str().as_bytes())
}

pub use crate::plan::mounts::{PROC_MASKED, PROC_READONLY};

/// Failures to turn a plan into the child's instructions.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Nul(#[from] NulError),
    #[error("cannot build the seccomp filter: {0}")]
    Seccomp(#[from] seccomp::CompileError),
    #[error(transparent)]
    Root(#[from] root::RootError),
}

pub fn prepare(plan: &Plan) -> Result<Prepared, PrepareError> {
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
    let id_maps = plan.id_map.map(|m| {
        (
            format!("{} {} 1\n", m.uid_inside, m.uid_outside).into_bytes(),
            format!("{} {} 1\n", m.gid_inside, m.gid_outside).into_bytes(),
        )
    });

    let mut sources = Vec::new();
    let mut ops = Vec::with_capacity(plan.mounts.len());
    // Ops that bind volume number N, to point at their slot once `sources`
    // is complete.
    let mut volume_ops = Vec::new();
    for m in &plan.mounts {
        ops.push(match &m.op {
            MountOp::Bind {
                src,
                dst,
                readonly,
                devices,
            } => {
                sources.push(cpath("bind source", src)?);
                let mut attrs = sys::MOUNT_ATTR_NOSUID;
                if !devices {
                    attrs |= sys::MOUNT_ATTR_NODEV;
                }
                if *readonly {
                    attrs |= sys::MOUNT_ATTR_RDONLY;
                }
                Op::Bind {
                    source: sources.len() - 1,
                    dst: cpath("mount destination", dst)?,
                    attrs,
                }
            }
            MountOp::Tmpfs { dst, size, mode } => Op::Tmpfs {
                dst: cpath("mount destination", dst)?,
                mode: c("mode", format!("{mode:o}").as_bytes())?,
                size: size
                    .map(|s| c("size", s.to_string().as_bytes()))
                    .transpose()?,
            },
            MountOp::Proc { dst } => {
                let host_source = if plan.namespaces.pid {
                    None
                } else {
                    sources.push(c("proc", b"/proc")?);
                    Some(sources.len() - 1)
                };
                // The host's /proc is the same kernel's: entries it lacks
                // (kcore without CONFIG_PROC_KCORE, ...) need no work.
                let present = |n: &&&str| Path::new("/proc").join(n).exists();
                let readonly = PROC_READONLY
                    .iter()
                    .filter(present)
                    .map(|n| {
                        Ok((
                            c("proc entry", n.as_bytes())?,
                            cpath("proc entry", &dst.join(n))?,
                        ))
                    })
                    .collect::<Result<_, NulError>>()?;
                let mut masked = Vec::new();
                for n in PROC_MASKED.iter().filter(present) {
                    sources.push(c("device", b"/dev/null")?);
                    masked.push((
                        c("proc entry", n.as_bytes())?,
                        cpath("proc entry", &dst.join(n))?,
                        sources.len() - 1,
                    ));
                }
                Op::Proc {
                    dst: cpath("mount destination", dst)?,
                    host_source,
                    readonly,
                    masked,
                }
            }
            MountOp::Dev { dst } => {
                let first_node = sources.len();
                for node in DEV_NODES {
                    sources.push(c("device", format!("/dev/{node}").as_bytes())?);
                }
                Op::Dev {
                    dst: cpath("mount destination", dst)?,
                    first_node,
                }
            }
            MountOp::Dir { dst, mode } => Op::Dir {
                dst: cpath("directory", dst)?,
                mode: *mode,
            },
            MountOp::Symlink { target, dst } => Op::Symlink {
                target: cpath("symlink target", target)?,
                dst: cpath("symlink", dst)?,
            },
            MountOp::File { dst, content, mode } => Op::File {
                dst: cpath("file", dst)?,
                content: content.as_bytes().to_vec(),
                mode: *mode,
            },
            MountOp::Volume { dst, readonly, .. } => {
                volume_ops.push(ops.len());
                let mut attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
                if *readonly {
                    attrs |= sys::MOUNT_ATTR_RDONLY;
                }
                Op::Bind {
                    source: volume_ops.len() - 1,
                    dst: cpath("mount destination", dst)?,
                    attrs,
                }
            }
        });
    }
    for &i in &volume_ops {
        if let Op::Bind { source, .. } = &mut ops[i] {
            *source += sources.len();
        }
    }

    let root = root::prepare(plan, &mut sources)?;

    let argv: Vec<CString> = plan
        .argv
        .iter()
        .map(|a| c("command argument", a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let env: Vec<CString> = plan
        .env
        .iter()
        .map(|(k, v)| c("environment variable", format!("{k}={v}").as_bytes()))
        .collect::<Result<_, _>>()?;
    let program = plan.argv.first().map(String::as_str).unwrap_or("");
    let candidates = if program.contains('/') {
        vec![c("command", program.as_bytes())?]
    } else {
        let path = plan
            .env
            .get("PATH")
            .map(String::as_str)
            .unwrap_or("/usr/local/bin:/usr/bin:/bin");
        // Empty or relative PATH entries would search the working directory:
        // not something to do implicitly in a sandbox.
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| {
                c(
                    "command",
                    format!("{}/{program}", d.trim_end_matches('/')).as_bytes(),
                )
            })
            .collect::<Result<_, _>>()?
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());

    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "reading the umask means setting it and setting it back, one step"
    )]
    // SAFETY: umask only swaps the process's file mode mask; set it back at once.
    let umask = unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old
    };

    Ok(Prepared {
        clone_flags: flags,
        id_maps,
        mount_ns: ns.mount,
        net_ns: ns.net,
        pid_ns: ns.pid,
        root,
        sources,
        ops,
        hostname: plan
            .hostname
            .as_ref()
            .map(|h| c("hostname", h.as_bytes()))
            .transpose()?,
        cwd: cpath("working directory", &plan.cwd)?,
        exec: Exec {
            candidates,
            argv,
            argv_ptrs,
            env,
            envp,
        },
        init: plan.init,
        new_session: plan.security.new_session,
        wait_for_parent: false,
        unshare_cgroup_ns: false,
        umask,
        rlimits: plan
            .security
            .rlimits
            .iter()
            .filter_map(|r| {
                let res = RLIMITS.iter().find(|(n, _)| *n == r.name)?.1;
                Some((res, r.value.unwrap_or(libc::RLIM_INFINITY)))
            })
            .collect(),
        landlock: landlock(&plan.security.landlock)?,
        seccomp: match (&plan.security.seccomp.active, plan.security.seccomp.arch) {
            (true, Some(arch)) => Some(seccomp::compile(&plan.security.seccomp.rules, arch)?),
            _ => None,
        },
        title: command_line_area(),
        volumes: Vec::new(),
        upper: None,
    })
}

static COMMAND_LINE: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();

/// Records where the process's command line lives, from the arguments the
/// binary's `main` received, so that finding it costs no /proc read.
///
/// # Safety
/// `argv` must point to `argc` valid NUL-terminated strings, laid out one
/// after the other as the kernel puts them on a new process's stack.
pub unsafe fn record_command_line(argc: libc::c_int, argv: *const *const libc::c_char) {
    if argc < 1 || argv.is_null() {
        return;
    }
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "the first and last argument pointers are read under the caller's one guarantee"
    )]
    // SAFETY: the caller guarantees argc valid pointers to C strings.
    let (first, last) = unsafe { (*argv, *argv.add(argc as usize - 1)) };
    if first.is_null() || last.is_null() {
        return;
    }
    // SAFETY: `last` is a valid C string (caller's guarantee).
    let end = last as usize + unsafe { libc::strlen(last) } + 1;
    let _ = COMMAND_LINE.set((first as usize, end));
}

/// Where this process's command line lives; the cloned child has the same
/// addresses. Falls back to fields 48 and 49 of /proc/self/stat.
fn command_line_area() -> Option<(usize, usize)> {
    if let Some(area) = COMMAND_LINE.get() {
        return Some(*area);
    }
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces; the state (field 3) comes first.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let start = fields.get(48 - 3)?.parse().ok()?;
    let end = fields.get(49 - 3)?.parse().ok()?;
    (start != 0 && end > start).then_some((start, end))
}

/// The planned ruleset with its paths as C strings. Rights stay as
/// planned: the child narrows them on a path that turns out to be a file
/// (`landlock::access::on_file`), the one place that does.
fn landlock(l: &crate::plan::security::LandlockPlan) -> Result<Option<Landlock>, NulError> {
    if !l.active() {
        return Ok(None);
    }
    Ok(Some(Landlock {
        handled_fs: l.handled_fs,
        handled_net: l.handled_net,
        scoped: l.scoped,
        fs_rules: l
            .fs_rules
            .iter()
            .map(|r| {
                Ok(LandlockPathRule {
                    path: cpath("landlock path", &r.path)?,
                    access: r.access,
                    skip_if_missing: r.derived,
                    is_dir: r.is_dir,
                })
            })
            .collect::<Result<_, NulError>>()?,
        net_rules: l
            .net_rules
            .iter()
            .map(|(port, access)| (*port as u64, *access))
            .collect(),
    }))
}
