//! `hutch doctor`: what this machine's kernel lets hutch do, tried for real,
//! and what each shipped profile would lose here.

use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use serde::Serialize;

use crate::host::Host;
use crate::plan::{self, Request};
use crate::prepare::report::{self, Step};
use crate::profile::load::{BUILTIN, SearchPath};
use crate::profile::{self, ProfileRef};
use crate::sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// What to do about it.
    pub fix: Option<String>,
}

fn check(name: &str, status: Status, detail: impl Into<String>, fix: Option<&str>) -> Check {
    Check {
        name: name.to_string(),
        status,
        detail: detail.into(),
        fix: fix.map(str::to_string),
    }
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The namespace probe: a child in new user, mount and pid namespaces maps
/// its ids, mounts a tmpfs and a procfs with the new mount API, and clones a
/// mount tree. Returns the first failing step.
fn probe_namespaces() -> Result<(), (Step, Errno)> {
    let (r, w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| (Step::ForkPayload, e))?;
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let uid_map = format!("{uid} {uid} 1\n");
    let gid_map = format!("{gid} {gid} 1\n");
    let flags = (libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID) as u64;
    let pid = sys::clone_fork(flags, None).map_err(|e| (Step::ForkPayload, e))?;
    if pid == 0 {
        let fd = w.as_raw_fd();
        let fail = |step, e| {
            report::send(fd, step, e, b"");
            sys::exit_now(1)
        };
        if let Err(e) = sys::write_file(c"/proc/self/setgroups", b"deny") {
            fail(Step::SetGroups, e);
        }
        if let Err(e) = sys::write_file(c"/proc/self/uid_map", uid_map.as_bytes()) {
            fail(Step::UidMap, e);
        }
        if let Err(e) = sys::write_file(c"/proc/self/gid_map", gid_map.as_bytes()) {
            fail(Step::GidMap, e);
        }
        if let Err(e) = sys::make_mounts_slave() {
            fail(Step::MountPropagation, e);
        }
        let tmp = sys::fsopen(c"tmpfs")
            .and_then(|fs| sys::fsconfig_create(fs).and_then(|()| sys::fsmount(fs, 0)))
            .unwrap_or_else(|e| fail(Step::RootTmpfs, e));
        if let Err(e) = sys::open_tree_clone(c"/usr") {
            fail(Step::OpenBindSource, e);
        }
        if let Err(e) = sys::mount_setattr(tmp, sys::MOUNT_ATTR_RDONLY, false) {
            fail(Step::RootReadOnly, e);
        }
        if let Err(e) = sys::fsopen(c"proc").and_then(|fs| {
            sys::fsconfig_create(fs).and_then(|()| sys::fsmount(fs, sys::MOUNT_ATTR_NOSUID))
        }) {
            fail(Step::Proc, e);
        }
        sys::exit_now(0);
    }
    drop(w);
    let mut buf = [0u8; 64];
    let n = nix::unistd::read(&r, &mut buf).unwrap_or(0);
    let status = exit_status(pid);
    match report::decode(&buf[..n]) {
        Some(f) => Err((f.step, f.errno)),
        None if status == Some(0) => Ok(()),
        None => Err((Step::ForkPayload, Errno::EIO)),
    }
}

/// Waits for the probe child `pid`; its exit code, if it exited (and was
/// not killed).
fn exit_status(pid: libc::pid_t) -> Option<i32> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Some(code),
            Err(Errno::EINTR) => continue,
            Ok(_) | Err(_) => return None,
        }
    }
}

/// What Landlock enforces here: the ABI, or why there is none (not built
/// in, or not enabled at boot), and the errata this kernel lacks the fix for.
fn landlock_check(host: &Host) -> Check {
    use crate::landlock::{ERRATA, Support};
    let support = host.landlock();
    let abi = support.abi();
    let (mut status, mut detail) = match abi {
        0 => (
            Status::Fail,
            format!("not available: {}", support.problem().unwrap_or_default()),
        ),
        1..=3 => (Status::Warn, format!("ABI {abi}: filesystem rules only")),
        4 | 5 => (
            Status::Warn,
            format!("ABI {abi}: filesystem and TCP port rules; no socket/signal scoping"),
        ),
        _ => (
            Status::Ok,
            format!("ABI {abi}: filesystem, TCP ports, abstract-socket and signal scoping"),
        ),
    };
    let fixed = if abi > 0 { host.landlock_errata() } else { 0 };
    let unfixed: Vec<String> = ERRATA
        .iter()
        .filter(|e| abi >= e.abi && fixed & e.bit() == 0)
        .map(|e| format!("erratum {} ({})", e.number, e.without_fix))
        .collect();
    if !unfixed.is_empty() {
        status = status.max(Status::Warn);
        detail += &format!("; this kernel lacks the fix for {}", unfixed.join(", "));
    }
    let fix = match (status, support) {
        (Status::Fail, Support::Disabled) => Some(
            "reboot with `landlock` in `lsm=`; profiles requiring Landlock refuse to run until then",
        ),
        (Status::Fail, _) => Some(
            "use a kernel built with CONFIG_SECURITY_LANDLOCK=y (Linux 5.13+) and `landlock` in the lsm= boot parameter; profiles requiring Landlock refuse to run until then",
        ),
        (Status::Warn, _) if !unfixed.is_empty() => Some(
            "update the kernel: stable releases carry the fixes (the kernel's Landlock documentation, \"Errata\", lists them)",
        ),
        (Status::Warn, _) => {
            Some("a newer kernel (6.12+) enforces more; best-effort parts are skipped")
        }
        (Status::Ok, _) => None,
    };
    check("landlock", status, detail, fix)
}

/// Loads hutch's default seccomp filter in a child and checks that a denied
/// call is refused while an allowed one works.
fn probe_seccomp() -> Result<(), String> {
    let Some(arch) = plan::seccomp::Arch::native() else {
        return Err("hutch has no filters for this architecture".into());
    };
    let rules: Vec<_> = plan::seccomp::GROUPS
        .iter()
        .flat_map(plan::seccomp::default_rules)
        .collect();
    let filter = plan::seccomp::compile(&rules, arch).map_err(|e| e.to_string())?;
    let pid = sys::clone_fork(0, None).map_err(|e| e.desc().to_string())?;
    if pid == 0 {
        if sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).is_err() || sys::seccomp_load(&filter).is_err()
        {
            sys::exit_now(2);
        }
        // keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0).
        let denied = sys::keyctl(0, -3, 0) == Err(Errno::EPERM);
        let allowed = nix::unistd::getppid().as_raw() > 0;
        sys::exit_now(if denied && allowed { 0 } else { 3 });
    }
    match exit_status(pid) {
        Some(0) => Ok(()),
        Some(2) => {
            Err("the kernel refused to load a filter (CONFIG_SECCOMP_FILTER missing?)".into())
        }
        _ => Err("the filter was loaded but did not deny keyctl".into()),
    }
}

/// In new user and mount namespaces, mounts an overlay the way `--image`
/// does. `Ok(true)`: a tmpfs upper layer also holds overlayfs's xattrs.
fn probe_overlay() -> Result<bool, Errno> {
    let uid_map = format!("{0} {0} 1\n", nix::unistd::getuid().as_raw());
    let gid_map = format!("{0} {0} 1\n", nix::unistd::getgid().as_raw());
    let flags = (libc::CLONE_NEWUSER | libc::CLONE_NEWNS) as u64;
    let pid = sys::clone_fork(flags, None)?;
    if pid == 0 {
        let r = sys::write_file(c"/proc/self/setgroups", b"deny")
            .and_then(|()| sys::write_file(c"/proc/self/uid_map", uid_map.as_bytes()))
            .and_then(|()| sys::write_file(c"/proc/self/gid_map", gid_map.as_bytes()))
            .and_then(|()| crate::child::overlay::probe(c"/tmp"));
        // Exit status: 0 overlay and tmpfs xattrs, 1 overlay only, else 2 + errno.
        sys::exit_now(match r {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => 2 + (e as i32).clamp(0, 200),
        });
    }
    match exit_status(pid) {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        Some(n) if n >= 2 => Err(Errno::from_raw(n - 2)),
        _ => Err(Errno::EIO),
    }
}

/// Every check, in the order `hutch doctor` shows them.
pub fn run_checks(host: &Host) -> Vec<Check> {
    let mut out = vec![
        kernel_check(),
        userns_check(host),
        landlock_check(host),
        overlay_check(),
        seccomp_check(),
        learn_check(),
        tiocsti_check(),
        cgroup_check(host),
        registry_check(host),
        tun_check(),
    ];
    out.extend(network_checks(host));
    out.push(dbus_proxy_check(host));
    out.push(portals_check(host));
    out.extend(profile_checks(host));
    out
}

/// The kernel's version: the new mount API and mount_setattr need 5.12.
fn kernel_check() -> Check {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let version: Vec<u32> = release
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    let new_enough = version.as_slice() >= [5, 12].as_slice();
    check(
        "kernel",
        if new_enough { Status::Ok } else { Status::Fail },
        format!("Linux {release}"),
        (!new_enough)
            .then_some("hutch needs Linux 5.12 or later (the new mount API and mount_setattr)"),
    )
}

/// User, mount and pid namespaces made for real, with the sysctls that
/// decide whether an unprivileged user may.
fn userns_check(host: &Host) -> Check {
    let mut userns_detail = Vec::new();
    if let Some(v) = read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
        userns_detail.push(format!("apparmor_restrict_unprivileged_userns={v}"));
    }
    if let Some(v) = read_trim("/proc/sys/kernel/unprivileged_userns_clone") {
        userns_detail.push(format!("unprivileged_userns_clone={v}"));
    }
    if let Some(v) = read_trim("/proc/sys/user/max_user_namespaces") {
        userns_detail.push(format!("max_user_namespaces={v}"));
    }
    let (step, errno) = match probe_namespaces() {
        Ok(()) => {
            return check(
                "user namespaces",
                Status::Ok,
                format!(
                    "created user, mount and pid namespaces, mapped uid {}, mounted tmpfs and proc ({})",
                    host.uid,
                    userns_detail.join(", ")
                ),
                None,
            );
        }
        Err(failed) => failed,
    };
    let fix = match (step, errno) {
        (Step::ForkPayload, Errno::EPERM) | (Step::UidMap | Step::GidMap | Step::SetGroups, _) => {
            "enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces>0); on Ubuntu 23.10+ install packaging/apparmor/hutch into /etc/apparmor.d"
        }
        (_, Errno::ENOSYS) => "upgrade the kernel: hutch needs Linux 5.12+",
        _ => {
            "run hutch outside containers that forbid mounting, or ask the administrator to allow user namespaces"
        }
    };
    check(
        "user namespaces",
        Status::Fail,
        format!(
            "could not {}: {} ({})",
            step.doing(),
            errno.desc(),
            userns_detail.join(", ")
        ),
        Some(fix),
    )
}

/// An unprivileged overlay mounted for real, and whether tmpfs holds its
/// extended attributes.
fn overlay_check() -> Check {
    match probe_overlay() {
        Ok(true) => check(
            "overlayfs",
            Status::Ok,
            "mounted an unprivileged overlay (userxattr) with a tmpfs upper layer: `--image` and writable `root`s work",
            None,
        ),
        Ok(false) => check(
            "overlayfs",
            Status::Warn,
            "unprivileged overlays work, but tmpfs cannot hold their extended attributes (Linux < 6.6): in an image, re-creating a deleted directory fails",
            Some("use `writable = \"/some/dir\"` on ext4, xfs or btrfs, or Linux 6.6+"),
        ),
        Err(e) => check(
            "overlayfs",
            Status::Fail,
            format!("could not mount an unprivileged overlay: {}", e.desc()),
            Some(
                "`hutch run --image` and `root` with a writable layer need unprivileged overlayfs (Linux 5.11+)",
            ),
        ),
    }
}

/// hutch's default filter loaded for real (see [`probe_seccomp`]).
fn seccomp_check() -> Check {
    match probe_seccomp() {
        Ok(()) => check(
            "seccomp",
            Status::Ok,
            "loaded hutch's default filter: keyctl denied, other calls allowed",
            None,
        ),
        Err(e) => check(
            "seccomp",
            Status::Fail,
            e,
            Some("hutch needs CONFIG_SECCOMP_FILTER; profiles requiring seccomp refuse to run"),
        ),
    }
}

/// How `hutch learn` and `run --report-denied` can watch a run: a child
/// loads a filter handing `getppid` to a listener it holds, forks, and
/// answers its own child's call with "continue" (exit 0: with the
/// synchronous wake-up of Linux 6.6, 1: without it).
fn probe_learn() -> Result<bool, String> {
    let Some(arch) = plan::seccomp::Arch::native() else {
        return Err("hutch has no filters for this architecture".into());
    };
    let rule = plan::seccomp::Rule {
        syscall: "getppid".into(),
        check: plan::seccomp::Check::Always,
        action: plan::seccomp::Action::Notify,
        reason: "doctor".into(),
    };
    let filter = plan::seccomp::compile(&[rule], arch).map_err(|e| e.to_string())?;
    let pid = sys::clone_fork(0, None).map_err(|e| e.desc().to_string())?;
    if pid == 0 {
        sys::exit_now(serve_one(&filter));
    }
    match exit_status(pid) {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        Some(2) => Err("the kernel refused a filter with a listener (Linux 5.0+ has them)".into()),
        _ => {
            Err("a watched call was not let through (the continue answer needs Linux 5.5+)".into())
        }
    }
}

/// In the probe's child: see [`probe_learn`].
fn serve_one(filter: &[crate::bpf::Insn]) -> i32 {
    use std::os::fd::AsFd;
    if sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).is_err() {
        return 2;
    }
    let Ok(fd) = sys::notify::seccomp_load_listener(filter) else {
        return 2;
    };
    let listener = sys::notify::own_listener(fd);
    let sync = sys::notify::set_sync_wakeup(listener.as_fd()).is_ok();
    let Ok(child) = sys::clone_fork(0, None) else {
        return 3;
    };
    if child == 0 {
        sys::exit_now(if nix::unistd::getppid().as_raw() > 0 {
            0
        } else {
            3
        });
    }
    let served = sys::notify::recv(listener.as_fd())
        .and_then(|n| sys::notify::send(listener.as_fd(), n.id, sys::notify::Answer::Continue));
    match (served, exit_status(child)) {
        (Ok(()), Some(0)) if sync => 0,
        (Ok(()), Some(0)) => 1,
        _ => 3,
    }
}

fn learn_check() -> Check {
    const WHAT: &str = "seccomp user notification (hutch learn, run --report-denied)";
    match probe_learn() {
        Ok(true) => check(
            "learn",
            Status::Ok,
            format!("{WHAT}: a watched call answered, with synchronous wake-up"),
            None,
        ),
        Ok(false) => check(
            "learn",
            Status::Warn,
            format!("{WHAT}: a watched call answered, without synchronous wake-up"),
            Some("Linux 6.6+ wakes hutch's recorder synchronously; here learning runs slower"),
        ),
        Err(e) => check(
            "learn",
            Status::Warn,
            format!("{WHAT}: {e}"),
            Some("hutch learn and run --report-denied refuse to run here; nothing else needs it"),
        ),
    }
}

/// Whether the kernel still lets a process push input into its terminal.
fn tiocsti_check() -> Check {
    let detail = match read_trim("/proc/sys/dev/tty/legacy_tiocsti") {
        Some(v) if v == "0" => {
            "disabled by the kernel (dev.tty.legacy_tiocsti=0); hutch filters it too"
        }
        Some(_) => {
            "enabled in this kernel (dev.tty.legacy_tiocsti=1): hutch's seccomp filter blocks it inside sandboxes"
        }
        None => "kernel without the legacy_tiocsti switch: hutch's seccomp filter blocks it",
    };
    check("TIOCSTI", Status::Ok, detail, None)
}

/// Where `[limits]` would be applied (see `crate::plan::limits::doctor`).
fn cgroup_check(host: &Host) -> Check {
    let (full, detail, fix) = crate::plan::limits::doctor(host);
    Check {
        name: "cgroup limits".into(),
        status: if full { Status::Ok } else { Status::Warn },
        detail,
        fix,
    }
}

/// Where the records of running sandboxes go (`ps`, `exec` and `stop`
/// read them): a runtime directory of the caller's, else the home (no
/// login session: cron, `su`, ssh without pam_systemd), else nowhere, and
/// every launch is refused.
fn registry_check(host: &Host) -> Check {
    const FIX: &str = "set XDG_RUNTIME_DIR to a directory of yours with mode 0700 (a login through pam_systemd makes /run/user/UID)";
    match host.hutch_runtime_dir() {
        Some(r) if !r.in_home => check(
            "registry",
            Status::Ok,
            format!("records of running sandboxes in {}", r.path.display()),
            None,
        ),
        Some(r) if !creatable(&r.path) => check(
            "registry",
            Status::Fail,
            format!(
                "no runtime directory of yours, and {} (in your home) cannot be made: every launch is refused",
                r.path.display()
            ),
            Some(FIX),
        ),
        Some(r) => check(
            "registry",
            Status::Warn,
            format!(
                "XDG_RUNTIME_DIR is not a directory of yours and /run/user/{} does not exist: records of running sandboxes in {} (in your home)",
                host.uid,
                r.path.display()
            ),
            Some(FIX),
        ),
        None => check(
            "registry",
            Status::Fail,
            "no runtime directory of yours and no home directory: every launch is refused",
            Some(FIX),
        ),
    }
}

/// Whether `path` exists, or its nearest existing ancestor is a directory
/// the caller may create entries in.
fn creatable(path: &std::path::Path) -> bool {
    let Some(existing) = path.ancestors().find(|a| a.exists()) else {
        return false;
    };
    existing == path
        || (existing.is_dir()
            && nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK).is_ok())
}

/// Whether this user can open /dev/net/tun, which pasta and slirp4netns
/// need for `[network] mode = "user"`; the cause when not.
fn tun_check() -> Check {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let name = "/dev/net/tun";
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
    {
        Ok(_) => check(
            name,
            Status::Ok,
            "opened: pasta and slirp4netns can make their tap devices",
            None,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let how = std::fs::metadata("/dev/net/tun")
                .map(|m| {
                    format!(
                        "mode {:04o}, owner uid {}",
                        m.permissions().mode() & 0o7777,
                        m.uid()
                    )
                })
                .unwrap_or_default();
            check(
                name,
                Status::Warn,
                format!(
                    "cannot be opened by this user ({how}): udev usually makes it 0666, and this machine has no udev rule doing so; `[network] mode = \"user\"` cannot work"
                ),
                Some(
                    "as root: `chmod 0666 /dev/net/tun` (or install udev, whose rules set that mode at boot)",
                ),
            )
        }
        Err(e) => check(
            name,
            Status::Warn,
            format!("cannot be opened: {e}; `[network] mode = \"user\"` cannot work"),
            Some(
                "load the tun module (`modprobe tun`, CONFIG_TUN) or create the device: `mknod /dev/net/tun c 10 200`, mode 0666",
            ),
        ),
    }
}

/// pasta and slirp4netns: installed, and tried for real (a byte through
/// each, see `helpers::usernet::probe`).
fn network_checks(host: &Host) -> Vec<Check> {
    use crate::plan::network::Backend;
    let mut out = Vec::new();
    for (backend, name, missing) in [
        (
            Backend::Pasta,
            "pasta",
            "not installed: `[network] mode = \"user\"` falls back to slirp4netns where it can",
        ),
        (
            Backend::Slirp4netns,
            "slirp4netns",
            "not installed (the fallback of user mode where pasta is missing)",
        ),
    ] {
        let Some(program) = host.find_program(name) else {
            let fix = match backend {
                Backend::Pasta => crate::plan::network::PASTA_PACKAGE,
                Backend::Slirp4netns => "install the package `slirp4netns` (or pasta, preferred)",
            };
            out.push(check(name, Status::Warn, missing, Some(fix)));
            continue;
        };
        out.push(match crate::helpers::usernet::probe(backend, &program) {
            Ok(()) => check(
                name,
                Status::Ok,
                format!(
                    "{}: connected a new network namespace and passed a TCP round trip to the host's loopback",
                    program.display()
                ),
                None,
            ),
            Err(e) => check(
                name,
                Status::Warn,
                format!("{} is installed but failed: {e}", program.display()),
                Some("see the /dev/net/tun line; user mode needs it and unprivileged user namespaces"),
            ),
        });
    }
    out
}

/// xdg-dbus-proxy, tried for the holes its security fixes closed
/// (`helpers::dbus_probe`), whatever its version says.
fn dbus_proxy_check(host: &Host) -> Check {
    const NAME: &str = "xdg-dbus-proxy";
    let Some(proxy) = host.find_program(NAME) else {
        return check(
            NAME,
            Status::Warn,
            "not installed: profiles with [dbus] cannot run",
            Some("install the package `xdg-dbus-proxy`"),
        );
    };
    let Some(daemon) = host.find_program("dbus-daemon") else {
        return check(
            NAME,
            Status::Warn,
            format!(
                "{}: cannot be checked for the holes its security fixes closed without dbus-daemon, so profiles with [dbus] are refused unless best-effort",
                proxy.display()
            ),
            Some("install the package `dbus-daemon`"),
        );
    };
    let start = std::time::Instant::now();
    match crate::helpers::dbus_probe::probe(&proxy, &daemon) {
        Ok(r) => {
            let detail = format!(
                "{}: {} (tried on a private bus in {} ms)",
                proxy.display(),
                r.summary(),
                start.elapsed().as_millis()
            );
            if r.holes().is_empty() {
                check(NAME, Status::Ok, detail, None)
            } else {
                check(
                    NAME,
                    Status::Fail,
                    format!("{detail}; profiles with [dbus] are refused unless best-effort"),
                    Some("upgrade xdg-dbus-proxy (your distribution's security update, or 0.1.8+)"),
                )
            }
        }
        Err(e) => check(
            NAME,
            Status::Warn,
            format!(
                "{}: the check for the holes its security fixes closed failed: {e}; profiles with [dbus] are refused unless best-effort",
                proxy.display()
            ),
            None,
        ),
    }
}

/// Who xdg-desktop-portal takes an app with `[dbus] portals` for: an app
/// scope of its own where the user has a systemd manager's cgroup, else
/// whatever unit hutch runs in.
fn portals_check(host: &Host) -> Check {
    let v2 = host.cgroups().v2.as_ref();
    match v2.and_then(|v| v.user_manager.as_ref()) {
        Some(m) => check(
            "portals",
            Status::Ok,
            format!(
                "the D-Bus proxy of a profile with portals runs in an app scope of its own under {} (app-hutch-APPID-PID.scope): portals know the app by its id (xdg-desktop-portal 1.16 only ids of three or more elements)",
                m.path
            ),
            None,
        ),
        None => check(
            "portals",
            Status::Warn,
            format!(
                "for an app with [dbus] portals, {}",
                crate::plan::dbus::portal_identity(v2.map(|v| v.own.as_str()), host.uid)
            ),
            Some(
                "run hutch in a systemd user session (pam_systemd) for portals to know the app by its id",
            ),
        ),
    }
}

/// What each shipped profile would lose on this machine.
fn profile_checks(host: &Host) -> Vec<Check> {
    let search = SearchPath::standard(host);
    // Judged for this machine, not for the directory doctor runs in (`cli`
    // refuses to start in the home directory or /tmp).
    let host = &host.clone().without_cwd();
    let request = Request {
        command: vec!["true".into()],
        command_optional: false,
        image: None,
    };
    let mut out = Vec::new();
    for (name, _) in BUILTIN {
        let loaded = profile::load(&ProfileRef::Name(name.to_string()), &search);
        // A desktop building block needs what a desktop session has (a
        // display, a sound server, a GPU), and a profile with [network] or
        // [dbus] a helper program (pasta, xdg-dbus-proxy) that packages
        // only recommend: without them it is not usable here, which is no
        // fault of the kernel's (the error names what to install).
        let grants = loaded.as_ref().is_ok_and(|p| {
            p.layers.iter().any(|l| {
                l.raw.desktop.is_some()
                    || l.raw.devices.is_some()
                    || l.raw.network.is_some()
                    || l.raw.dbus.is_some()
            })
        });
        let planned = loaded.and_then(|p| plan::build(&p, host, &request));
        let name = format!("profile {name}");
        out.push(match planned {
            Ok(p)
                if p.security.landlock.not_enforced.is_empty()
                    && p.security.seccomp.active
                    && p.network.fallback.is_none() =>
            {
                // A desktop block says what this session gives it (a
                // security context or not, the display, the devices).
                let grants: Vec<String> = p
                    .desktop
                    .iter()
                    .map(plan::desktop::summary)
                    .chain(p.devices.iter().map(plan::devices::summary))
                    .map(|l| l.replace("hutch: ", "").replace('\n', "; "))
                    .collect();
                let network = plan::network::summary(&p.network);
                let detail = if grants.is_empty() {
                    format!("everything it asks for is enforced here; {network}")
                } else {
                    format!("enforced here; {}; {network}", grants.join("; "))
                };
                check(&name, Status::Ok, detail, None)
            }
            Ok(p) => {
                let mut lost: Vec<String> = p.security.landlock.not_enforced.clone();
                if !p.security.seccomp.active
                    && p.security.seccomp.enforce != crate::profile::schema::Enforce::Off
                {
                    lost.push("seccomp filter".into());
                }
                if let Some(why) = &p.network.fallback {
                    lost.push(format!("[network] mode = \"user\" ({why})"));
                }
                let detail = format!(
                    "runs, without: {}; {}",
                    lost.join("; "),
                    plan::network::summary(&p.network)
                );
                check(&name, Status::Warn, detail, None)
            }
            Err(e) if grants => check(&name, Status::Warn, format!("not usable here: {e}"), None),
            Err(e) => check(
                &name,
                Status::Fail,
                format!("would refuse to run: {e}"),
                None,
            ),
        });
    }
    out
}

pub fn render(checks: &[Check]) -> String {
    let mut s = String::new();
    for c in checks {
        let tag = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        s.push_str(&format!(
            "{tag} {:<16} {}\n",
            c.name,
            crate::diag::sanitize(&c.detail)
        ));
        if let Some(f) = &c.fix {
            s.push_str(&format!("     {:<16} → {}\n", "", f));
        }
    }
    s
}
