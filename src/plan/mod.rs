//! The plan: everything a launch will do, resolved and validated, as plain data.
//!
//! `build` is pure apart from reading the host's filesystem metadata (to check
//! bind sources); it is what `hutch run --explain` prints and what the child
//! process executes step by step.

pub mod arguments;
pub mod dbus;
pub mod desktop;
pub mod devices;
pub mod env;
pub mod explain;
pub mod exposure;
pub mod home_note;
pub mod host_sockets;
pub mod landing;
pub mod limits;
pub mod mounts;
pub mod network;
pub mod protect;
pub mod rootfs;
pub mod seccomp;
pub mod security;
pub mod terminal;
pub mod volumes;
pub mod workdir_sockets;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::diag::Diagnostic;
use crate::host::Host;
use crate::profile::schema::Identity;
use crate::profile::{At, Profile, ProfileError, vars};
pub use mounts::{MountOp, PlannedMount};
use rootfs::ImageRun;
pub use rootfs::{ImageRequest, RootPlan};

/// Hostname used when the profile does not set one.
pub const DEFAULT_HOSTNAME: &str = "hutch";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub profile: String,
    /// Files the profile was composed from, lowest precedence first.
    pub sources: Vec<String>,
    /// Those of `sources` that are `.local.toml` overrides.
    #[serde(default)]
    pub overrides: Vec<String>,
    pub namespaces: NamespacePlan,
    /// Single-id uid/gid maps; `None` without a user namespace.
    pub id_map: Option<IdMap>,
    pub hostname: Option<String>,
    /// What the root is built from; `None`: an empty tmpfs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<RootPlan>,
    pub mounts: Vec<PlannedMount>,
    /// Optional entries left out, for `--explain`.
    pub skipped: Vec<String>,
    /// The working directory, as bytes: the caller's may not be UTF-8.
    #[serde(with = "crate::argv::json::path")]
    pub cwd: PathBuf,
    /// The command, as bytes (JSON: see `crate::argv::json`).
    #[serde(with = "crate::argv::json")]
    pub argv: Vec<OsString>,
    pub env: BTreeMap<String, String>,
    /// hutch's own init is PID 1 and the payload its child.
    pub init: bool,
    /// The home is a tmpfs: init names at exit what was written there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_note: Option<home_note::HomeNote>,
    pub security: SecurityPlan,
    /// cgroup limits (`[limits]`) and the backends that can apply them.
    #[serde(default)]
    pub limits: Option<limits::LimitsPlan>,
    /// `[network]`: the mode, and for `user` mode the program, forwards,
    /// DNS and egress rules (left out of the JSON when it is the default).
    #[serde(default, skip_serializing_if = "network::NetworkPlan::is_default")]
    pub network: network::NetworkPlan,
    /// `[desktop]`: display, sound, app id (its mounts are in `mounts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desktop: Option<desktop::DesktopPlan>,
    /// `[devices]`: the device nodes granted (their mounts are in `mounts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<devices::DevicesPlan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub uid_inside: u32,
    pub uid_outside: u32,
    pub gid_inside: u32,
    pub gid_outside: u32,
}

/// Everything that limits what the payload may do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecurityPlan {
    /// Effective, permitted, inheritable, bounding and ambient sets all emptied.
    pub drop_all_capabilities: bool,
    pub no_new_privs: bool,
    /// The sandbox is killed when the launcher dies.
    pub die_with_parent: bool,
    /// Every inherited file descriptor except 0, 1, 2 is closed.
    pub close_inherited_fds: bool,
    /// The payload runs in a new session, without the caller's terminal.
    pub new_session: bool,
    /// With `new_session`: a pseudo-terminal of its own as its controlling
    /// terminal, relayed by hutch (`terminal = "pty"`, interactive caller).
    /// (Absent from the records of sandboxes started by an older hutch.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pty: Option<terminal::PtyPlan>,
    pub seccomp: security::SeccompPlan,
    pub landlock: security::LandlockPlan,
    pub rlimits: Vec<security::RlimitPlan>,
}

/// What the command line adds to a profile.
#[derive(Debug, Default, Clone)]
pub struct Request {
    /// The command after `--`, as bytes; empty means the profile's `command`.
    pub command: Vec<OsString>,
    /// `hutch check` validates a profile that may leave the command to the
    /// command line.
    pub command_optional: bool,
    /// The image to use as the root (`--image`, or leased for the profile's
    /// `image`).
    pub image: Option<ImageRequest>,
}

/// Plans `profile` on `host` for what the command line adds: every
/// concern in turn, in the order their errors are reported.
pub fn build(profile: &Profile, host: &Host, request: &Request) -> Result<Plan, ProfileError> {
    let mut ns = plan_namespaces(profile);
    let network = network::plan(profile, host, ns.net_at.as_ref(), ns.plan.user)?;
    ns.plan.net = network.mode != network::Mode::Host;
    let identity = profile.last(|p| p.identity.as_ref());
    check_user_namespace(&ns, identity.as_ref(), host)?;
    let rooted = rootfs::plan_root(
        profile,
        host,
        request.image.as_ref(),
        request.command_optional,
    )?;
    let image = rooted.image.as_ref();
    let id_map = plan_id_map(ns.plan.user, identity.as_ref(), host, image);
    let hostname = plan_hostname(profile, ns.plan.uts)?;
    let uid_inside = id_map.map_or(host.uid, |m| m.uid_inside);
    let AllMounts {
        mut mount_plan,
        workdir,
        desktop,
        devices,
    } = plan_all_mounts(
        profile,
        host,
        &ns,
        rooted.root.as_ref(),
        &request.command,
        uid_inside,
    )?;
    mount_plan.ops.extend(resolv_conf(profile, &ns, &network)?);

    // An image's environment comes between hutch's defaults and the profile's.
    let image_env = image.map(|i| i.env(uid_inside)).unwrap_or_default();
    let mut env = env::plan_env(profile, host, &image_env)?;
    if let Some(d) = &desktop {
        desktop::apply_env(&mut env, &d.env, &env::explicitly_set(profile));
    }
    let argv = plan_argv(profile, request, image)?;
    let cwd = match workdir {
        Some(dir) => dir,
        None => plan_cwd(profile, host, image, &mut mount_plan.ops)?,
    };
    landing::mark(&mut mount_plan.ops, rooted.root.as_ref(), host);

    let init = profile.last(|p| p.init.as_ref()).is_none_or(|i| *i.get());
    let security = plan_security(profile, host, &mount_plan.ops, rooted.root.as_ref())?;
    let limits = limits::plan(profile, host, init)?;
    let home_note = home_note::plan(
        profile,
        env.get("HOME").map(Path::new),
        &mount_plan.ops,
        init,
    );

    Ok(Plan {
        profile: profile.name.clone(),
        sources: profile.sources(),
        overrides: profile.overrides(),
        namespaces: ns.plan,
        id_map,
        hostname,
        root: rooted.root,
        mounts: mount_plan.ops,
        skipped: mount_plan.skipped,
        cwd,
        argv,
        env,
        init,
        home_note,
        security,
        limits,
        network,
        desktop: desktop.map(|d| d.desktop),
        devices,
    })
}

/// `user` mode's /etc/resolv.conf, over the host's (whose resolver the
/// sandbox cannot reach): the backend's DNS forwarder, or nothing with
/// `dns = false`.
fn resolv_conf(
    profile: &Profile,
    ns: &Namespaces<'_>,
    network: &network::NetworkPlan,
) -> Result<Option<PlannedMount>, ProfileError> {
    let Some(user) = &network.user else {
        return Ok(None);
    };
    if !ns.plan.mount {
        return Err(ns.mount_needed(
            "`[network] mode = \"user\"` writes the sandbox's /etc/resolv.conf and needs",
            "remove `namespaces.mount = false`",
        ));
    }
    let dns = profile.last(|p| p.network.as_ref()?.dns.as_ref());
    let from = match (&dns, &network.from) {
        (Some(d), _) => {
            let (line, col) = d.file.line_col(d.value.span().start);
            format!("{}:{line}:{col}", d.file.name)
        }
        (None, Some(f)) => f.clone(),
        (None, None) => String::new(),
    };
    let content = match user.dns {
        Some(addr) => format!(
            "# hutch: {}'s DNS forwarder\nnameserver {addr}\n",
            user.backend.name()
        ),
        None => "# hutch: no DNS ([network] dns = false)\n".to_string(),
    };
    Ok(Some(PlannedMount {
        op: MountOp::File {
            dst: PathBuf::from("/etc/resolv.conf"),
            content,
            mode: 0o444,
            cover: true,
        },
        from: format!("[network] {from}"),
        lands: None,
    }))
}

/// The namespaces, with where `user` and `mount` were turned off (for the
/// errors of what needs them).
struct Namespaces<'a> {
    plan: NamespacePlan,
    user_at: Option<At<'a, bool>>,
    mount_at: Option<At<'a, bool>>,
    /// `[namespaces] net`, where set (`[network]` checks it agrees).
    net_at: Option<At<'a, bool>>,
}

impl Namespaces<'_> {
    /// The error for `what`, which needs the mount namespace the profile
    /// turns off.
    fn mount_needed(&self, what: &str, help: &str) -> ProfileError {
        let at = self
            .mount_at
            .as_ref()
            .expect("mount namespace is on by default");
        at.diag(format!(
            "{what} the mount namespace, which this profile turns off"
        ))
        .help(help)
        .into()
    }
}

fn plan_namespaces(profile: &Profile) -> Namespaces<'_> {
    let ns = |f: fn(&crate::profile::schema::Namespaces) -> Option<&toml::Spanned<bool>>| {
        profile.last(|p| f(p.namespaces.as_ref()?))
    };
    let flag = |a: &Option<At<'_, bool>>| a.as_ref().is_none_or(|a| *a.get());
    let user_at = ns(|n| n.user.as_ref());
    let mount_at = ns(|n| n.mount.as_ref());
    let net_at = ns(|n| n.net.as_ref());
    let plan = NamespacePlan {
        user: flag(&user_at),
        mount: flag(&mount_at),
        pid: flag(&ns(|n| n.pid.as_ref())),
        uts: flag(&ns(|n| n.uts.as_ref())),
        ipc: flag(&ns(|n| n.ipc.as_ref())),
        net: flag(&net_at),
        cgroup: flag(&ns(|n| n.cgroup.as_ref())),
    };
    Namespaces {
        plan,
        user_at,
        mount_at,
        net_at,
    }
}

/// Without a user namespace: only root, and only as itself.
fn check_user_namespace(
    ns: &Namespaces<'_>,
    identity: Option<&At<'_, Identity>>,
    host: &Host,
) -> Result<(), ProfileError> {
    if ns.plan.user {
        return Ok(());
    }
    let at = ns
        .user_at
        .as_ref()
        .expect("user namespace is on by default");
    if host.uid != 0 {
        return Err(at
            .diag("`namespaces.user = false` needs root: an ordinary user can only create namespaces inside a user namespace of their own")
            .help("remove the line, or run as root")
            .into());
    }
    if let Some(id) = identity
        && *id.get() != Identity::SelfIds
    {
        return Err(id
            .diag("`identity` other than \"self\" needs a user namespace")
            .help("remove `namespaces.user = false`, or drop the identity line")
            .into());
    }
    Ok(())
}

/// Who the payload is inside: the profile decides; else the image's
/// `User` (root if it sets none); else the caller.
fn plan_id_map(
    user_ns: bool,
    identity: Option<&At<'_, Identity>>,
    host: &Host,
    image: Option<&ImageRun>,
) -> Option<IdMap> {
    user_ns.then(|| {
        let (uid_inside, gid_inside) = match identity.map(|i| *i.get()) {
            Some(Identity::Root) => (0, 0),
            Some(Identity::Ids { uid, gid }) => (uid, gid.unwrap_or(uid)),
            Some(Identity::SelfIds) => (host.uid, host.gid),
            None => image.map_or((host.uid, host.gid), ImageRun::ids),
        };
        IdMap {
            uid_inside,
            uid_outside: host.uid,
            gid_inside,
            gid_outside: host.gid,
        }
    })
}

fn plan_hostname(profile: &Profile, uts: bool) -> Result<Option<String>, ProfileError> {
    let hostname_at = profile.last(|p| p.hostname.as_ref());
    Ok(match (&hostname_at, uts) {
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
    })
}

/// Every mount of the sandbox, the working directory when `workdir` bound
/// it (the payload starts there), and the desktop grants that add mounts.
struct AllMounts {
    mount_plan: mounts::MountPlan,
    workdir: Option<PathBuf>,
    desktop: Option<desktop::Planned>,
    devices: Option<devices::DevicesPlan>,
}

/// The `[[mount]]` entries, the working directory (`workdir`), the paths
/// the command's arguments name (`file_arguments`), `[desktop]`'s and
/// `[devices]`' mounts, the volumes, then the `[protect]` masks and the
/// masks over hutch's own state; all of which (and a `root`) need the
/// mount namespace. `uid_inside` names the private runtime directory.
fn plan_all_mounts(
    profile: &Profile,
    host: &Host,
    ns: &Namespaces<'_>,
    root: Option<&RootPlan>,
    command: &[OsString],
    uid_inside: u32,
) -> Result<AllMounts, ProfileError> {
    let mut mount_plan = mounts::plan_mounts(profile, host)?;
    let mut workdir = None;
    match protect::plan_workdir(profile, host)? {
        Some(protect::WorkdirPlan::Bound(bind)) => {
            // Over what it lies in (a private home), under what lies in it
            // (a `--bind` into the working directory).
            let dir = bind.op.dst().to_path_buf();
            let at = mount_plan
                .ops
                .iter()
                .position(|m| m.op.dst().starts_with(&dir) && m.op.dst() != dir)
                .unwrap_or(mount_plan.ops.len());
            // Its unix sockets masked, right over it: a read-only bind does
            // not stop connect() (see workdir_sockets).
            let (masks, note) = workdir_sockets::masks(&dir, host, &bind.from)?;
            mount_plan
                .ops
                .splice(at..at, std::iter::once(bind).chain(masks));
            mount_plan.skipped.extend(note);
            workdir = Some(dir);
        }
        Some(protect::WorkdirPlan::LeftOut(note)) => mount_plan.skipped.push(note),
        None => {}
    }
    let (argument_ops, notes) =
        arguments::plan_file_arguments(profile, host, command, &mount_plan.ops, root.is_none())?;
    mount_plan.ops.extend(argument_ops);
    mount_plan.skipped.extend(notes);
    let (desktop, devices) = plan_desktop(profile, host, ns, uid_inside, &mut mount_plan.ops)?;
    let volume_ops = volumes::plan_volumes(profile, host)?;
    if !ns.plan.mount && !volume_ops.is_empty() {
        return Err(ns.mount_needed(
            "volumes need",
            "remove `namespaces.mount = false` or the [volumes] tables",
        ));
    }
    mount_plan.ops.extend(volume_ops);
    let protected = protect::protect_masks(profile, host, &mount_plan.ops)?;
    mount_plan.ops.extend(protected);
    // A root directory above hutch's state shows it at `/`: masked too.
    let at_root = root.map(RootPlan::host_dirs_at_root).unwrap_or_default();
    let masks = mounts::state_masks(&mount_plan.ops, &at_root, host);
    mount_plan.ops.extend(masks);
    if !ns.plan.mount && !mount_plan.ops.is_empty() {
        return Err(ns.mount_needed(
            "[[mount]] entries need",
            "remove `namespaces.mount = false` or the [[mount]] entries",
        ));
    }
    if !ns.plan.mount && root.is_some() {
        return Err(ns.mount_needed(
            "`root` and `image` need",
            "remove `namespaces.mount = false`, or `root`/`image`",
        ));
    }
    Ok(AllMounts {
        mount_plan,
        workdir,
        desktop,
        devices,
    })
}

/// `[desktop]` and `[devices]`, their mounts added to `ops`.
fn plan_desktop(
    profile: &Profile,
    host: &Host,
    ns: &Namespaces<'_>,
    uid_inside: u32,
    ops: &mut Vec<PlannedMount>,
) -> Result<(Option<desktop::Planned>, Option<devices::DevicesPlan>), ProfileError> {
    let desktop = desktop::plan(
        profile,
        host,
        uid_inside,
        !ns.plan.net,
        security::scopes_abstract_sockets(profile, host),
        ops,
    )?;
    let devices = devices::plan(profile, host)?;
    if let Some((_, device_ops)) = &devices {
        ops.extend(device_ops.iter().cloned());
    }
    if !ns.plan.mount && (desktop.is_some() || devices.is_some()) {
        return Err(ns.mount_needed(
            "[desktop] and [devices] need",
            "remove `namespaces.mount = false`, or the [desktop] and [devices] tables",
        ));
    }
    Ok((desktop, devices.map(|(d, _)| d)))
}

/// The command: the image's (unless the profile has one), the command
/// line's, or the profile's `command`.
fn plan_argv(
    profile: &Profile,
    request: &Request,
    image: Option<&ImageRun>,
) -> Result<Vec<OsString>, ProfileError> {
    let profile_command = profile.last(|p| p.command.as_ref());
    let argv = if let Some(img) = image.filter(|_| profile_command.is_none()) {
        img.argv(&request.command)?
    } else if !request.command.is_empty() {
        request.command.clone()
    } else if let Some(cmd) = profile_command {
        if cmd.get().is_empty() {
            return Err(cmd
                .diag("key `command`: the command is empty")
                .help("write e.g. `command = [\"/usr/bin/prog\", \"--flag\"]`")
                .into());
        }
        if let Some(bad) = cmd.get().iter().find(|a| a.contains('\0')) {
            return Err(cmd
                .diag(format!(
                    "key `command`: argument {bad:?} contains a NUL byte"
                ))
                .help("a program's arguments cannot hold NUL bytes; remove the \\u0000")
                .into());
        }
        crate::argv::from_strs(cmd.get())
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
    if let Some(bad) = argv.iter().find(|a| a.as_bytes().contains(&0)) {
        return Err(Diagnostic::new(format!(
            "command argument {} contains a NUL byte",
            crate::argv::shell_quote(bad)
        ))
        .into());
    }
    Ok(argv)
}

/// The working directory: the profile's `cwd`, else the image's (a mount
/// creates it when the image lacks it), else the caller's where the
/// sandbox shows it.
fn plan_cwd(
    profile: &Profile,
    host: &Host,
    image: Option<&ImageRun>,
    ops: &mut Vec<PlannedMount>,
) -> Result<PathBuf, ProfileError> {
    let Some(c) = profile.last(|p| p.cwd.as_ref()) else {
        return Ok(match image.map(ImageRun::working_dir).transpose()? {
            Some(Some((dir, create))) => {
                ops.extend(create);
                dir
            }
            _ => default_cwd(host, ops),
        });
    };
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
    Ok(path)
}

fn plan_security(
    profile: &Profile,
    host: &Host,
    ops: &[PlannedMount],
    root: Option<&RootPlan>,
) -> Result<SecurityPlan, ProfileError> {
    let seccomp = security::plan_seccomp(profile)?;
    let mut landlock = security::plan_landlock(profile, host, ops)?;
    if let Some(root) = root {
        rootfs::landlock_rule(profile, root, &mut landlock);
    }
    let terminal = terminal::plan_terminal(profile, host, &seccomp, ops)?;
    Ok(SecurityPlan {
        drop_all_capabilities: true,
        no_new_privs: true,
        die_with_parent: true,
        close_inherited_fds: true,
        new_session: terminal.new_session,
        pty: terminal.pty,
        seccomp,
        landlock,
        rlimits: security::plan_rlimits(profile),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{ProfileRef, SearchPath, load};

    /// Loads profile `name` from files written in a temp dir (plus built-ins).
    fn plan_of(files: &[(&str, &str)], name: &str, uid: u32) -> Result<Plan, String> {
        plan_with(files, name, uid, &["prog"], None)
    }

    fn plan_with(
        files: &[(&str, &str)],
        name: &str,
        uid: u32,
        command: &[&str],
        image: Option<ImageRequest>,
    ) -> Result<Plan, String> {
        let dir = tempfile::tempdir().unwrap();
        for (n, text) in files {
            let p = dir.path().join(format!("{n}.toml"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let path = dir.path().display().to_string();
        let project = dir.path().join("project");
        std::fs::create_dir_all(&project).unwrap();
        let host = Host::fixed(
            uid,
            uid,
            &[
                ("HOME", "/home/u"),
                ("HUTCH_PROFILE_PATH", &path),
                ("TERM", "xterm"),
                ("LC_ALL", "C"),
                ("SECRET", "s"),
            ],
            project.to_str().unwrap(),
        );
        let search = SearchPath::standard(&host);
        let profile = load(&ProfileRef::Name(name.into()), &search).map_err(|e| e.to_string())?;
        build(
            &profile,
            &host,
            &Request {
                command: crate::argv::from_strs(command),
                command_optional: false,
                image,
            },
        )
        .map_err(|e| e.to_string())
    }

    fn dsts(plan: &Plan) -> Vec<String> {
        plan.mounts
            .iter()
            .map(|m| m.op.dst().display().to_string())
            .collect()
    }

    #[test]
    fn defaults_are_safe() {
        let plan = plan_of(&[("p", "version = 1\n")], "p", 1000).unwrap();
        assert_eq!(plan.namespaces.names().len(), 7);
        assert_eq!(
            plan.id_map,
            Some(IdMap {
                uid_inside: 1000,
                uid_outside: 1000,
                gid_inside: 1000,
                gid_outside: 1000
            })
        );
        assert_eq!(plan.hostname.as_deref(), Some(DEFAULT_HOSTNAME));
        assert!(plan.mounts.is_empty());
        assert!(plan.init);
        assert_eq!(plan.cwd, PathBuf::from("/"));
        assert_eq!(plan.env.get("TERM").map(String::as_str), Some("xterm"));
        assert_eq!(plan.env.get("LC_ALL").map(String::as_str), Some("C"));
        assert_eq!(plan.env.get("HOME").map(String::as_str), Some("/home/u"));
        assert!(!plan.env.contains_key("SECRET"));
        assert!(plan.security.drop_all_capabilities && plan.security.no_new_privs);
    }

    #[test]
    fn cli_profile_binds_the_working_directory_last() {
        let plan = plan_of(&[], "cli", 1000).unwrap();
        let d = dsts(&plan);
        assert_eq!(d.first().map(String::as_str), Some("/usr"));
        assert_eq!(d[d.len() - 2], "/home/u");
        assert!(d[d.len() - 1].ends_with("/project"));
        assert_eq!(plan.cwd.display().to_string(), d[d.len() - 1]);
        match &plan.mounts.last().unwrap().op {
            MountOp::Bind {
                src, dst, readonly, ..
            } => {
                assert_eq!(src, dst);
                assert!(!readonly);
            }
            other => panic!("{other:?}"),
        }
        assert!(plan.mounts[0].from.starts_with("builtin:base/system:"));
    }

    #[test]
    fn layers_replace_in_place_and_remove() {
        let base = "version = 1\n[[mount]]\ntype = \"tmpfs\"\ndst = \"/a\"\n[[mount]]\ntype = \"tmpfs\"\ndst = \"/b\"\n[[mount]]\ntype = \"tmpfs\"\ndst = \"/c\"\n";
        let child = "version = 1\nextends = [\"base\"]\nremove = [\"/c\"]\n[[mount]]\ntype = \"dir\"\ndst = \"/a\"\nmode = \"0700\"\n[[mount]]\ntype = \"tmpfs\"\ndst = \"/d\"\n";
        let plan = plan_of(&[("base", base), ("child", child)], "child", 1000).unwrap();
        assert_eq!(dsts(&plan), ["/a", "/b", "/d"]);
        assert_eq!(
            plan.mounts[0].op,
            MountOp::Dir {
                dst: "/a".into(),
                mode: 0o700
            }
        );
    }

    #[test]
    fn diamonds_load_each_base_once_and_later_layers_win() {
        let files = [
            (
                "root",
                "version = 1\nhostname = \"root\"\n[[mount]]\ntype = \"tmpfs\"\ndst = \"/r\"\n",
            ),
            (
                "left",
                "version = 1\nextends = [\"root\"]\nhostname = \"left\"\n",
            ),
            ("right", "version = 1\nextends = [\"root\"]\n"),
            ("top", "version = 1\nextends = [\"left\", \"right\"]\n"),
        ];
        let plan = plan_of(&files, "top", 1000).unwrap();
        assert_eq!(plan.hostname.as_deref(), Some("left"));
        assert_eq!(dsts(&plan), ["/r"]);
        assert_eq!(plan.sources.len(), 4);
    }

    #[test]
    fn identity_root_and_namespace_switches() {
        let plan = plan_of(
            &[(
                "p",
                "version = 1\nidentity = \"root\"\n[namespaces]\nnet = false\nuts = false\n",
            )],
            "p",
            1000,
        )
        .unwrap();
        let m = plan.id_map.unwrap();
        assert_eq!((m.uid_inside, m.uid_outside), (0, 1000));
        assert!(!plan.namespaces.net && !plan.namespaces.uts);
        assert_eq!(plan.hostname, None);
        let err = plan_of(
            &[("p", "version = 1\n[namespaces]\nuser = false\n")],
            "p",
            1000,
        )
        .unwrap_err();
        assert!(err.contains("needs root"), "{err}");
        assert!(
            plan_of(
                &[("p", "version = 1\n[namespaces]\nuser = false\n")],
                "p",
                0
            )
            .is_ok()
        );
    }

    #[test]
    fn optional_missing_sources_are_skipped_and_reported() {
        let plan = plan_of(
            &[("p", "version = 1\n[[mount]]\ntype = \"ro-bind\"\nsrc = \"/nonexistent/x\"\ndst = \"/x\"\noptional = true\n")],
            "p",
            1000,
        )
        .unwrap();
        assert!(plan.mounts.is_empty());
        assert_eq!(plan.skipped.len(), 1);
        assert!(plan.skipped[0].contains("/nonexistent/x"));
    }

    #[test]
    fn env_keep_and_set_compose() {
        let files = [
            (
                "base",
                "version = 1\n[env]\nkeep = [\"SEC*\"]\nset = { A = \"1\", B = \"${HOME}/b\" }\n",
            ),
            (
                "top",
                "version = 1\nextends = [\"base\"]\n[env]\nkeep = [\"!TERM\"]\nset = { A = \"2\" }\n",
            ),
        ];
        let plan = plan_of(&files, "top", 1000).unwrap();
        assert_eq!(plan.env.get("SECRET").map(String::as_str), Some("s"));
        assert!(!plan.env.contains_key("TERM"));
        assert_eq!(plan.env.get("A").map(String::as_str), Some("2"));
        assert_eq!(plan.env.get("B").map(String::as_str), Some("/home/u/b"));
    }

    #[test]
    fn the_plan_serializes_for_explain() {
        let plan = plan_of(&[], "default", 1000).unwrap();
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["profile"], "default");
        assert_eq!(json["mounts"][0]["op"], "bind");
        let text = explain::render(&plan);
        assert!(text.contains("dir      /home/u (mode 0700)"), "{text}");
    }

    fn image(config: crate::image::ImageRunConfig) -> ImageRequest {
        ImageRequest {
            info: crate::image::ImageInfo {
                name: "img:latest".into(),
                manifest_digest: None,
                config_digest: format!("sha256:{}", "ab".repeat(32)),
                architecture: "amd64".into(),
                os: "linux".into(),
                variant: None,
                created: None,
                imported_at: 0,
                size: 0,
                unpacked_size: None,
                layer_digests: Vec::new(),
                layers: vec!["/s/l1".into(), "/s/l2".into(), "/s/l1".into()],
                config,
            },
            from_cli: true,
        }
    }

    fn config() -> crate::image::ImageRunConfig {
        crate::image::ImageRunConfig {
            entrypoint: vec!["/ep".into()],
            cmd: vec!["default".into()],
            env: vec!["PATH=/img/bin".into(), "A=image".into()],
            working_dir: Some("/work".into()),
            user: Some("7:8".into()),
        }
    }

    #[test]
    fn an_image_supplies_defaults_that_the_profile_overrides() {
        let plan = plan_with(&[], "container", 1000, &[], Some(image(config()))).unwrap();
        let root = plan.root.as_ref().unwrap();
        assert_eq!(root.from, "--image");
        assert_eq!(root.writable, rootfs::Upper::Tmpfs);
        // Highest first, each layer once.
        assert_eq!(
            root.lowers(),
            [std::path::Path::new("/s/l1"), std::path::Path::new("/s/l2")]
        );
        assert_eq!(plan.argv, ["/ep", "default"]);
        assert_eq!(plan.env.get("PATH").map(String::as_str), Some("/img/bin"));
        assert_eq!(plan.env.get("A").map(String::as_str), Some("image"));
        assert_eq!(plan.env.get("HOME").map(String::as_str), Some("/"));
        assert!(!plan.env.contains_key("USER"));
        assert_eq!(plan.cwd, PathBuf::from("/work"));
        assert_eq!(
            plan.mounts.last().map(|m| &m.op),
            Some(&MountOp::Dir {
                dst: "/work".into(),
                mode: 0o755
            })
        );
        let m = plan.id_map.unwrap();
        assert_eq!((m.uid_inside, m.gid_inside, m.uid_outside), (7, 8, 1000));

        // The command line replaces Cmd, not Entrypoint.
        let plan = plan_with(&[], "container", 1000, &["x"], Some(image(config()))).unwrap();
        assert_eq!(plan.argv, ["/ep", "x"]);

        let over = "version = 1\nextends = [\"container\"]\ncommand = [\"/own\"]\ncwd = \"/\"\nidentity = \"self\"\nwritable = false\n[env]\nset = { A = \"profile\" }\n";
        let plan = plan_with(&[("over", over)], "over", 1000, &[], Some(image(config()))).unwrap();
        assert_eq!(plan.argv, ["/own"]);
        assert_eq!(plan.cwd, PathBuf::from("/"));
        assert_eq!(plan.env.get("A").map(String::as_str), Some("profile"));
        assert_eq!(plan.id_map.unwrap().uid_inside, 1000);
        assert_eq!(plan.root.unwrap().writable, rootfs::Upper::ReadOnly);

        // No user in the image: root, like docker.
        let mut c = config();
        c.user = None;
        c.entrypoint.clear();
        c.cmd.clear();
        let plan = plan_with(&[], "container", 1000, &["sh"], Some(image(c.clone()))).unwrap();
        assert_eq!(plan.id_map.unwrap().uid_inside, 0);
        assert_eq!(plan.argv, ["sh"]);
        let err = plan_with(&[], "container", 1000, &[], Some(image(c))).unwrap_err();
        assert!(err.contains("has no Entrypoint or Cmd"), "{err}");
    }

    #[test]
    fn the_root_gets_a_landlock_rule_of_its_own() {
        let plan = plan_with(&[], "container", 1000, &["sh"], Some(image(config()))).unwrap();
        let ll = &plan.security.landlock;
        assert_ne!(ll.handled_fs, 0, "the fixed host has Landlock");
        let root_rules: Vec<_> = ll
            .fs_rules
            .iter()
            .filter(|r| r.path == std::path::Path::new("/"))
            .collect();
        assert!(
            root_rules
                .iter()
                .any(|r| r.access & security::access::WRITE_FILE != 0),
            "{root_rules:?}"
        );
    }

    #[test]
    fn identity_takes_numeric_ids() {
        let plan = plan_of(&[("p", "version = 1\nidentity = \"42\"\n")], "p", 1000).unwrap();
        let m = plan.id_map.unwrap();
        assert_eq!((m.uid_inside, m.gid_inside), (42, 42));
        let plan = plan_of(&[("p", "version = 1\nidentity = \"42:7\"\n")], "p", 1000).unwrap();
        let m = plan.id_map.unwrap();
        assert_eq!((m.uid_inside, m.gid_inside, m.gid_outside), (42, 7, 1000));
    }
}
