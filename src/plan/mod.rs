//! The plan: everything a launch will do, resolved and validated, as plain data.
//!
//! `build` is pure apart from reading the host's filesystem metadata (to check
//! bind sources); it is what `hutch run --explain` prints and what the child
//! process executes step by step.

pub mod env;
pub mod explain;
pub mod mounts;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::diag::Diagnostic;
use crate::host::Host;
use crate::profile::schema::Identity;
use crate::profile::{Profile, ProfileError, vars};
pub use mounts::{MountOp, PlannedMount};

/// Hostname used when the profile does not set one.
pub const DEFAULT_HOSTNAME: &str = "hutch";

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub profile: String,
    /// Files the profile was composed from, lowest precedence first.
    pub sources: Vec<String>,
    pub namespaces: NamespacePlan,
    /// Single-id uid/gid maps; `None` without a user namespace.
    pub id_map: Option<IdMap>,
    pub hostname: Option<String>,
    pub mounts: Vec<PlannedMount>,
    /// Optional entries left out, for `--explain`.
    pub skipped: Vec<String>,
    pub cwd: PathBuf,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// hutch's own init is PID 1 and the payload its child.
    pub init: bool,
    pub security: SecurityPlan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NamespacePlan {
    pub user: bool,
    pub mount: bool,
    pub pid: bool,
    pub uts: bool,
    pub ipc: bool,
    pub net: bool,
    pub cgroup: bool,
}

impl NamespacePlan {
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.user, "user"),
            (self.mount, "mount"),
            (self.pid, "pid"),
            (self.uts, "uts"),
            (self.ipc, "ipc"),
            (self.net, "net"),
            (self.cgroup, "cgroup"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IdMap {
    pub uid_inside: u32,
    pub uid_outside: u32,
    pub gid_inside: u32,
    pub gid_outside: u32,
}

/// Confinement that is always applied in this version.
#[derive(Debug, Clone, Serialize)]
pub struct SecurityPlan {
    /// Effective, permitted, inheritable, bounding and ambient sets all emptied.
    pub drop_all_capabilities: bool,
    pub no_new_privs: bool,
    /// The sandbox is killed when the launcher dies.
    pub die_with_parent: bool,
    /// Every inherited file descriptor except 0, 1, 2 is closed.
    pub close_inherited_fds: bool,
}

/// What the command line adds to a profile.
#[derive(Debug, Default, Clone)]
pub struct Request {
    /// The command after `--`; empty means the profile's `command`.
    pub command: Vec<String>,
    /// `hutch check` validates a profile that may leave the command to the
    /// command line.
    pub command_optional: bool,
}

pub fn build(profile: &Profile, host: &Host, request: &Request) -> Result<Plan, ProfileError> {
    let ns = |f: fn(&crate::profile::schema::Namespaces) -> Option<&toml::Spanned<bool>>| {
        profile.last(|p| f(p.namespaces.as_ref()?))
    };
    let flag = |a: &Option<crate::profile::At<'_, bool>>| a.as_ref().is_none_or(|a| *a.get());
    let user_at = ns(|n| n.user.as_ref());
    let mount_at = ns(|n| n.mount.as_ref());
    let uts_at = ns(|n| n.uts.as_ref());
    let namespaces = NamespacePlan {
        user: flag(&user_at),
        mount: flag(&mount_at),
        pid: flag(&ns(|n| n.pid.as_ref())),
        uts: flag(&uts_at),
        ipc: flag(&ns(|n| n.ipc.as_ref())),
        net: flag(&ns(|n| n.net.as_ref())),
        cgroup: flag(&ns(|n| n.cgroup.as_ref())),
    };

    let identity = profile.last(|p| p.identity.as_ref());
    if !namespaces.user {
        let at = user_at.as_ref().expect("user namespace is on by default");
        if host.uid != 0 {
            return Err(at
                .diag("`namespaces.user = false` needs root: an ordinary user can only create namespaces inside a user namespace of their own")
                .help("remove the line, or run as root")
                .into());
        }
        if let Some(id) = &identity
            && *id.get() == Identity::Root
        {
            return Err(id
                .diag("`identity = \"root\"` needs a user namespace")
                .help("remove `namespaces.user = false`, or drop the identity line")
                .into());
        }
    }
    let id_map = namespaces.user.then(|| {
        let root = identity
            .as_ref()
            .is_some_and(|i| *i.get() == Identity::Root);
        IdMap {
            uid_inside: if root { 0 } else { host.uid },
            uid_outside: host.uid,
            gid_inside: if root { 0 } else { host.gid },
            gid_outside: host.gid,
        }
    });

    let hostname_at = profile.last(|p| p.hostname.as_ref());
    let hostname = match (&hostname_at, namespaces.uts) {
        (Some(h), true) => {
            validate_hostname(h.get()).map_err(|why| {
                h.diag(format!("key `hostname`: {why}"))
                    .help("use letters, digits, `-` and `.`, at most 64 characters")
            })?;
            Some(h.get().clone())
        }
        (Some(h), false) => {
            return Err(h
                .diag("`hostname` needs the uts namespace, which this profile turns off")
                .help("remove `namespaces.uts = false` or the hostname")
                .into());
        }
        (None, true) => Some(DEFAULT_HOSTNAME.to_string()),
        (None, false) => None,
    };

    let mount_plan = mounts::plan_mounts(profile, host, namespaces.pid)?;
    if !namespaces.mount && !mount_plan.ops.is_empty() {
        let at = mount_at.as_ref().expect("mount namespace is on by default");
        return Err(at
            .diag("[[mount]] entries need the mount namespace, which this profile turns off")
            .help("remove `namespaces.mount = false` or the [[mount]] entries")
            .into());
    }

    let env = env::plan_env(profile, host)?;

    let argv = if !request.command.is_empty() {
        request.command.clone()
    } else if let Some(cmd) = profile.last(|p| p.command.as_ref()) {
        if cmd.get().is_empty() {
            return Err(cmd
                .diag("key `command`: the command is empty")
                .help("write e.g. `command = [\"/usr/bin/prog\", \"--flag\"]`")
                .into());
        }
        cmd.get().clone()
    } else if request.command_optional {
        Vec::new()
    } else {
        return Err(Diagnostic::new(format!(
            "no command to run: none given after `--` and profile `{}` has no `command`",
            profile.name
        ))
        .help("run `hutch run [--profile NAME] -- COMMAND [ARGS...]`")
        .into());
    };
    if let Some(bad) = argv.iter().find(|a| a.contains('\0')) {
        return Err(
            Diagnostic::new(format!("command argument {bad:?} contains a NUL byte")).into(),
        );
    }

    let cwd = match profile.last(|p| p.cwd.as_ref()) {
        Some(c) => {
            let expanded = vars::expand(c.get(), host)
                .map_err(|err| ProfileError::from(c.diag(err.message()).help(err.help())))?;
            let path = PathBuf::from(&expanded);
            if !path.is_absolute()
                || path
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
            {
                return Err(c
                    .diag(format!(
                        "key `cwd`: {expanded:?} must be an absolute path without `..`"
                    ))
                    .help("for example `cwd = \"${HOME}\"` or `cwd = \"${CWD}\"`")
                    .into());
            }
            path
        }
        None => default_cwd(host, &mount_plan.ops),
    };

    let init = profile.last(|p| p.init.as_ref()).is_none_or(|i| *i.get());

    Ok(Plan {
        profile: profile.name.clone(),
        sources: profile.sources(),
        namespaces,
        id_map,
        hostname,
        mounts: mount_plan.ops,
        skipped: mount_plan.skipped,
        cwd,
        argv,
        env,
        init,
        security: SecurityPlan {
            drop_all_capabilities: true,
            no_new_privs: true,
            die_with_parent: true,
            close_inherited_fds: true,
        },
    })
}

fn validate_hostname(h: &str) -> Result<(), &'static str> {
    if h.is_empty() {
        return Err("the hostname is empty");
    }
    if h.len() > 64 {
        return Err("longer than 64 bytes");
    }
    if !h
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err("only letters, digits, `-` and `.` are allowed");
    }
    Ok(())
}

/// The caller's directory if the sandbox shows it at the same path, else `/`.
fn default_cwd(host: &Host, ops: &[PlannedMount]) -> PathBuf {
    let Some(cwd) = host.cwd() else {
        return PathBuf::from("/");
    };
    let covering = ops.iter().rev().find(|m| cwd.starts_with(m.op.dst()));
    match covering.map(|m| &m.op) {
        Some(MountOp::Bind { src, dst, .. }) if src == dst => cwd.to_path_buf(),
        _ => PathBuf::from("/"),
    }
}
