//! `hutch run --explain`: the plan in words.

use std::fmt::Write;

use super::{MountOp, Plan};
use crate::diag::sanitize;

fn quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

pub fn render(plan: &Plan) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "profile     {}", sanitize(&plan.profile));
    let _ = writeln!(o, "  from      {}", sanitize(&plan.sources.join(" ← ")));
    let argv: Vec<String> = plan.argv.iter().map(|a| quote(a)).collect();
    let _ = writeln!(o, "command     {}", sanitize(&argv.join(" ")));
    let _ = writeln!(o, "cwd         {}", plan.cwd.display());
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
    if !plan.namespaces.net {
        let _ = writeln!(o, "network     host (shared with the caller)");
    } else {
        let _ = writeln!(o, "network     none (loopback only)");
    }
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
    let _ = writeln!(
        o,
        "mounts      (in order; root is an empty tmpfs, made read-only)"
    );
    for (i, planned) in plan.mounts.iter().enumerate() {
        let line = match &planned.op {
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
            MountOp::File { dst, content, mode } => format!(
                "file     {} ({} bytes, mode {:04o}, read-only)",
                dst.display(),
                content.len(),
                mode
            ),
        };
        let _ = writeln!(o, "  {:>2}  {}", i + 1, sanitize(&line));
        let _ = writeln!(o, "          from {}", sanitize(&planned.from));
    }
    for s in &plan.skipped {
        let _ = writeln!(o, "   -  skipped: {}", sanitize(s));
    }
    let _ = writeln!(o, "environment (cleared except the keep list, then set)");
    for (k, v) in &plan.env {
        let _ = writeln!(o, "  {}={}", sanitize(k), sanitize(v));
    }
    let s = &plan.security;
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
    o
}
