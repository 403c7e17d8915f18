//! `hutch run --explain`: the plan in words.

use std::fmt::Write;

use super::seccomp::{Action, Check};
use super::security::{LandlockPlan, SeccompPlan, access};
use super::{MountOp, Plan};
use crate::diag::sanitize;
use crate::profile::schema::Enforce;

/// Every profile file merged, lowest precedence first (what the profile
/// extends, the profile, the overrides of each), overrides marked.
pub fn profile_files(plan: &Plan) -> String {
    plan.sources
        .iter()
        .map(|s| {
            if plan.overrides.contains(s) {
                format!("{s} (override)")
            } else {
                s.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ← ")
}

/// The whole plan in words, section by section.
pub fn render(plan: &Plan) -> String {
    let mut o = String::new();
    render_process(&mut o, plan);
    render_mounts(&mut o, plan);
    let _ = writeln!(o, "environment (cleared except the keep list, then set)");
    for (k, v) in &plan.env {
        let _ = writeln!(o, "  {}={}", sanitize(k), sanitize(v));
    }
    render_security(&mut o, plan);
    o
}

/// The profile, the command, the namespaces and who runs inside.
fn render_process(o: &mut String, plan: &Plan) {
    let _ = writeln!(o, "profile     {}", sanitize(&plan.profile));
    let _ = writeln!(o, "  from      {}", sanitize(&profile_files(plan)));
    let _ = writeln!(o, "command     {}", crate::argv::shell_words(&plan.argv));
    let _ = writeln!(
        o,
        "cwd         {}",
        crate::argv::shown(plan.cwd.as_os_str())
    );
    let ns = plan.namespaces.names();
    let _ = writeln!(
        o,
        "namespaces  {}",
        if ns.is_empty() {
            "none".to_string()
        } else {
            ns.join(" ")
        }
    );
    super::network::render(o, &plan.network);
    match &plan.id_map {
        Some(m) => {
            let _ = writeln!(
                o,
                "ids         uid {} → {}, gid {} → {} (single ids, setgroups denied)",
                m.uid_inside, m.uid_outside, m.gid_inside, m.gid_outside
            );
        }
        None => {
            let _ = writeln!(o, "ids         the caller's (no user namespace)");
        }
    }
    let _ = writeln!(
        o,
        "hostname    {}",
        plan.hostname.as_deref().unwrap_or("(the host's)")
    );
    let _ = writeln!(
        o,
        "init        {}",
        if plan.init {
            "hutch init is PID 1; the payload is its child"
        } else {
            "none: the payload is PID 1"
        }
    );
    if let Some(note) = &plan.home_note {
        let _ = writeln!(
            o,
            "home        {} is a tmpfs: what is written there is gone at exit, and init then names it on stderr (home_note = false: quiet)",
            note.home.display()
        );
    }
}

/// The root and the mounts on it, in order, each with where it came from.
fn render_mounts(o: &mut String, plan: &Plan) {
    let root = match &plan.root {
        None => "root is an empty tmpfs, made read-only".to_string(),
        Some(r) => {
            let _ = write!(o, "{}", super::rootfs::describe(r));
            "on top of the root".to_string()
        }
    };
    let _ = writeln!(o, "mounts      (in order; {root})");
    for (i, planned) in plan.mounts.iter().enumerate() {
        let _ = writeln!(o, "  {:>2}  {}", i + 1, sanitize(&mount_line(&planned.op)));
        if let Some(l) = &planned.lands {
            let _ = writeln!(
                o,
                "          lands at {} ({} is a symlink inside the sandbox)",
                sanitize(&l.at.display().to_string()),
                sanitize(&l.through.display().to_string())
            );
        }
        let _ = writeln!(o, "          from {}", sanitize(&planned.from));
    }
    for s in &plan.skipped {
        let _ = writeln!(o, "   -  skipped: {}", sanitize(s));
    }
    if let Some(d) = &plan.desktop {
        o.push_str(&super::desktop::explain(d));
    }
    if let Some(d) = &plan.devices {
        o.push_str(&super::devices::explain(d));
    }
}

/// One mount, in words.
fn mount_line(op: &MountOp) -> String {
    match op {
        MountOp::Bind {
            src,
            dst,
            readonly,
            devices,
        } => {
            let mut flags = vec![if *readonly { "ro" } else { "rw" }, "nosuid"];
            if !devices {
                flags.push("nodev");
            }
            flags.push("recursive");
            format!(
                "bind     {} ← {} ({})",
                dst.display(),
                src.display(),
                flags.join(",")
            )
        }
        MountOp::Tmpfs { dst, size, mode } => format!(
            "tmpfs    {} (mode {:04o}{}, nosuid,nodev)",
            dst.display(),
            mode,
            size.map(|s| format!(", size {s} bytes"))
                .unwrap_or_default()
        ),
        MountOp::Proc { dst } => format!(
            "proc     {} (new, for the sandbox's pid namespace; nosuid,nodev,noexec)",
            dst.display()
        ),
        MountOp::Dev { dst } => format!(
            "dev      {} (ro tmpfs: null zero full random urandom tty, pts, ptmx, shm)",
            dst.display()
        ),
        MountOp::Dir { dst, mode } => format!("dir      {} (mode {:04o})", dst.display(), mode),
        MountOp::Symlink { target, dst } => {
            format!("symlink  {} → {}", dst.display(), target.display())
        }
        MountOp::File {
            dst,
            content,
            mode,
            cover,
        } => format!(
            "file     {} ({} bytes, mode {:04o}, read-only{})",
            dst.display(),
            content.len(),
            mode,
            if *cover {
                ", mounted over what is there"
            } else {
                ""
            }
        ),
        MountOp::Volume {
            name,
            src,
            dst,
            readonly,
            shared,
            tmp,
        } => super::volumes::explain(name, src, dst, *readonly, *shared, *tmp),
    }
}

/// The terminal, seccomp, Landlock, rlimits, `[limits]` and the rest of
/// the confinement.
fn render_security(o: &mut String, plan: &Plan) {
    let s = &plan.security;
    let _ = writeln!(
        o,
        "terminal    {}",
        super::terminal::describe(s.new_session, s.pty.as_ref())
    );
    render_seccomp(o, &s.seccomp);
    render_landlock(o, &s.landlock);
    if !s.rlimits.is_empty() {
        let limits: Vec<String> = s
            .rlimits
            .iter()
            .map(|r| match r.value {
                Some(v) => format!("{}={v}", r.name),
                None => format!("{}=unlimited", r.name),
            })
            .collect();
        let _ = writeln!(o, "rlimits     {} (soft and hard)", limits.join(" "));
    }
    if let Some(l) = &plan.limits {
        o.push_str(&super::limits::explain(l));
    }
    let mut sec = Vec::new();
    if s.drop_all_capabilities {
        sec.push("all capabilities dropped (effective, permitted, inheritable, bounding, ambient)");
    }
    if s.no_new_privs {
        sec.push("no_new_privs");
    }
    if s.close_inherited_fds {
        sec.push("inherited fds closed except 0,1,2");
    }
    if s.die_with_parent {
        sec.push("dies with hutch");
    }
    let _ = writeln!(o, "security    {}", sec.join("; "));
}

fn enforce_word(e: Enforce) -> &'static str {
    match e {
        Enforce::Required => "required",
        Enforce::BestEffort => "best-effort",
        Enforce::Off => "off",
    }
}

fn render_seccomp(o: &mut String, s: &SeccompPlan) {
    if !s.active {
        let why = match s.enforce {
            Enforce::Off => "off (the profile turns it off)",
            _ => "NOT ENFORCED: no filter for this architecture",
        };
        let _ = writeln!(o, "seccomp     {why}");
        return;
    }
    let mode = if s.log_only {
        "LOG ONLY: nothing is blocked, matching calls are logged"
    } else {
        "loaded last, before the payload runs"
    };
    let _ = writeln!(
        o,
        "seccomp     {} rules, {}, {mode}; foreign architectures killed{}",
        s.rules.len(),
        enforce_word(s.enforce),
        if s.arch == Some(super::seccomp::Arch::X86_64) {
            ", x32 refused"
        } else {
            ""
        }
    );
    let mut by_reason: Vec<(&str, Vec<String>)> = Vec::new();
    for r in &s.rules {
        let action = match r.action {
            Action::Allow => "allow".to_string(),
            Action::Errno(e) => super::seccomp::ERRNOS
                .iter()
                .find(|(_, n)| *n == e)
                .map_or(format!("errno {e}"), |(n, _)| n.to_string()),
            Action::Log => "log".into(),
            Action::Kill => "kill".into(),
            Action::Notify => "notify".into(),
        };
        let cond = match &r.check {
            Check::Always => String::new(),
            Check::ArgIn { arg, values } => format!(
                "(arg{arg} in {})",
                values
                    .iter()
                    .map(|v| format!("{v:#x}"))
                    .collect::<Vec<_>>()
                    .join("|")
            ),
            Check::ArgNotIn { arg, values } => format!(
                "(arg{arg} not {})",
                values
                    .iter()
                    .map(|v| format!("{v:#x}"))
                    .collect::<Vec<_>>()
                    .join("|")
            ),
            Check::ArgHasBits { arg, mask } => format!("(arg{arg} & {mask:#x})"),
        };
        let item = format!("{}{cond}→{action}", r.syscall);
        match by_reason.iter_mut().find(|(k, _)| *k == r.reason) {
            Some((_, v)) => v.push(item),
            None => by_reason.push((&r.reason, vec![item])),
        }
    }
    for (reason, items) in by_reason {
        let _ = writeln!(o, "  {:<14} {}", reason, items.join(" "));
    }
    if let Some(note) = io_uring_note(s) {
        let _ = writeln!(o, "  not enforced: {note}");
    }
}

/// Says which denied calls io_uring, allowed by the profile, can perform.
fn io_uring_note(s: &SeccompPlan) -> Option<String> {
    if !s.active || s.through_io_uring.is_empty() {
        return None;
    }
    Some(format!(
        "io_uring is allowed (`allow = [\"@io_uring\"]`) and can perform {} without those system calls",
        s.through_io_uring.join(", ")
    ))
}

fn describe_access(bits: u64, handled: u64) -> String {
    if bits == handled {
        "everything".into()
    } else if bits == handled & !access::IOCTL_DEV {
        "read, write, create, remove, execute (no device ioctls)".into()
    } else {
        access::names(bits).join(",")
    }
}

fn render_landlock(o: &mut String, l: &LandlockPlan) {
    if !l.active() {
        if l.not_enforced.is_empty() {
            let _ = writeln!(o, "landlock    off");
        } else {
            let _ = writeln!(o, "landlock    NOT ENFORCED");
        }
    } else {
        let mut parts = Vec::new();
        if l.handled_fs != 0 {
            parts.push(format!("filesystem ({} rules)", l.fs_rules.len()));
        }
        if l.handled_net != 0 {
            parts.push("TCP ports".to_string());
        }
        if l.scoped != 0 {
            parts.push("abstract unix sockets and signals scoped".to_string());
        }
        let _ = writeln!(o, "landlock    ABI {}: {}", l.abi, parts.join("; "));
        for r in &l.fs_rules {
            let _ = writeln!(
                o,
                "  {:<24} {}",
                sanitize(&r.path.display().to_string()),
                describe_access(r.access, l.handled_fs)
            );
        }
        for (port, bits) in &l.net_rules {
            let what = if bits & access::NET_BIND_TCP != 0 {
                "bind"
            } else {
                "connect"
            };
            let _ = writeln!(o, "  tcp {what} {port}");
        }
        if l.handled_net & access::NET_BIND_TCP != 0
            && !l
                .net_rules
                .iter()
                .any(|(_, b)| b & access::NET_BIND_TCP != 0)
        {
            let _ = writeln!(o, "  tcp bind: none allowed");
        }
        if l.handled_net & access::NET_CONNECT_TCP != 0
            && !l
                .net_rules
                .iter()
                .any(|(_, b)| b & access::NET_CONNECT_TCP != 0)
        {
            let _ = writeln!(o, "  tcp connect: none allowed");
        }
    }
    for n in &l.not_enforced {
        let _ = writeln!(o, "  not enforced: {}", sanitize(n));
    }
    for c in &l.caveats {
        let _ = writeln!(o, "  caveat: {}", sanitize(c));
    }
}

/// One line for `hutch run -v`: what this launch enforces.
pub fn enforced_summary(plan: &Plan) -> String {
    let s = &plan.security;
    let mut parts = vec![format!("namespaces {}", plan.namespaces.names().join(","))];
    parts.push(if s.seccomp.active {
        if s.seccomp.log_only {
            format!("seccomp {} rules LOG ONLY", s.seccomp.rules.len())
        } else {
            format!("seccomp {} rules", s.seccomp.rules.len())
        }
    } else {
        "seccomp off".into()
    });
    let l = &s.landlock;
    if l.active() {
        let mut what = Vec::new();
        if l.handled_fs != 0 {
            what.push("fs");
        }
        if l.handled_net != 0 {
            what.push("tcp");
        }
        if l.scoped != 0 {
            what.push("scope");
        }
        parts.push(format!("landlock ABI {} {}", l.abi, what.join("+")));
    } else {
        parts.push("landlock off".into());
    }
    if let Some(limits) = &plan.limits {
        parts.push(super::limits::summary(limits));
    }
    parts.push(super::network::summary(&plan.network));
    parts.push("capabilities none".into());
    parts.push("no_new_privs".into());
    if s.pty.is_some() {
        parts.push("own terminal".into());
    } else if s.new_session {
        parts.push("new session".into());
    }
    let mut line = format!(
        "hutch: profile {}\nhutch: enforcing {}",
        sanitize(&profile_files(plan)),
        parts.join("; ")
    );
    for n in io_uring_note(&s.seccomp).iter().chain(&l.not_enforced) {
        line.push_str(&format!("\nhutch: not enforced: {n}"));
    }
    for w in super::network::warnings(&plan.network) {
        line.push_str(&format!("\nhutch: {w}"));
    }
    if let Some(d) = &plan.desktop {
        line.push('\n');
        line.push_str(&super::desktop::summary(d));
    }
    if let Some(d) = &plan.devices {
        line.push('\n');
        line.push_str(&super::devices::summary(d));
    }
    line
}
