//! `hutch run --report-denied`: after a run watched as `hutch learn`
//! watches, what the sandbox refused, each with the profile entry that
//! would allow it. Pure, on the journal and the run's own plan.
//!
//! A path is refused when the sandbox does not show it although the host
//! has it (it was read, executed or connected to), or when it was written
//! where the sandbox is read-only (a read-only bind, an empty directory of
//! the profile, the root). A system call is refused when the run's filter
//! denied it. What Landlock refuses on a path the mounts show, and why a
//! shown path failed otherwise, is not known here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::draft::{Context, generalise, quote};
use crate::helpers::learn::{Journal, Kind};
use crate::plan::{MountOp, PlannedMount};

/// What the sandbox has at a path.
#[derive(Debug, PartialEq, Eq)]
enum Here {
    /// The host's own path.
    Host { writable: bool },
    /// A writable place of the sandbox's own (tmpfs, /dev, /proc).
    Own,
    /// A read-only place of the sandbox's own, or nothing.
    ReadOnly,
}

fn here(mounts: &[PlannedMount], path: &Path, depth: usize) -> Here {
    let covering = mounts.iter().rev().find(|m| path.starts_with(m.op.dst()));
    match covering.map(|m| &m.op) {
        Some(MountOp::Symlink { target, dst }) if dst != path && depth < 8 => {
            let rest = path.strip_prefix(dst).unwrap_or(Path::new(""));
            let to = dst.parent().unwrap_or(Path::new("/")).join(target);
            here(
                mounts,
                &crate::helpers::learn::normalize(&to.join(rest)),
                depth + 1,
            )
        }
        Some(MountOp::Bind {
            src, dst, readonly, ..
        }) if src == dst => Here::Host {
            writable: !readonly,
        },
        Some(MountOp::Volume { readonly, .. }) if !readonly => Here::Own,
        Some(MountOp::Tmpfs { .. } | MountOp::Proc { .. } | MountOp::Dev { .. }) => Here::Own,
        _ => Here::ReadOnly,
    }
}

fn entry(kind: &str, path: &Path, ctx: &Context<'_>) -> String {
    let q = quote(&generalise(path, ctx));
    format!("a [[mount]] with type = \"{kind}\", src = {q}, dst = {q}")
}

/// One line per refusal, without the `hutch: ` prefix.
pub fn denied(journal: &Journal, mounts: &[PlannedMount], ctx: &Context<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for (path, kind) in journal.accesses.keys() {
        let shown = path.display().to_string();
        match kind {
            Kind::Network => out.push(format!(
                "connect to {shown}: the sandbox has no network; add: [namespaces] net = false"
            )),
            Kind::Connect if shown.starts_with('@') => out.push(format!(
                "connect to the abstract socket {shown}: it belongs to the host's network namespace; add: [namespaces] net = false"
            )),
            Kind::Read | Kind::Exec | Kind::Connect => {
                if matches!(here(mounts, path, 0), Here::Host { .. } | Here::Own)
                    || !(ctx.exists)(path)
                {
                    continue;
                }
                let what = match kind {
                    Kind::Exec => "execute",
                    Kind::Connect => "connect to",
                    _ => "read",
                };
                out.push(format!(
                    "{what} {shown}: not in the sandbox; add: {}",
                    entry("ro-bind", path, ctx)
                ));
            }
            Kind::Write | Kind::Create | Kind::Remove => {
                let at = here(mounts, path, 0);
                if matches!(at, Here::Own | Here::Host { writable: true }) {
                    continue;
                }
                // The directory: what a write, a new name or a removal needs.
                let Some(dir) = path.parent() else { continue };
                if !dirs.insert(dir.to_path_buf()) || !(ctx.exists)(dir) {
                    continue;
                }
                out.push(format!(
                    "write {shown}: read-only in the sandbox; add: {}",
                    entry("bind", dir, ctx)
                ));
            }
        }
    }
    for (call, n) in &journal.refused {
        out.push(format!(
            "system call {call} ({n} time{}): denied by the seccomp filter; add: [seccomp] allow = [\"{call}\"]",
            if *n == 1 { "" } else { "s" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(p: &str, ro: bool) -> PlannedMount {
        PlannedMount {
            op: MountOp::Bind {
                src: p.into(),
                dst: p.into(),
                readonly: ro,
                devices: false,
            },
            from: String::new(),
            lands: None,
        }
    }

    #[test]
    fn refusals_come_with_the_entry_that_allows_them() {
        let mounts = vec![
            bind("/usr", true),
            PlannedMount {
                op: MountOp::Dir {
                    dst: "/home/u".into(),
                    mode: 0o700,
                },
                from: String::new(),
                lands: None,
            },
            PlannedMount {
                op: MountOp::Tmpfs {
                    dst: "/tmp".into(),
                    size: None,
                    mode: 0o1777,
                },
                from: String::new(),
                lands: None,
            },
        ];
        let mut j = Journal::default();
        for (p, k) in [
            ("/usr/bin/sh", Kind::Exec),
            ("/home/u/.config/app.conf", Kind::Read),
            ("/home/u/absent", Kind::Read),
            ("/usr/lib/x", Kind::Write),
            ("/tmp/scratch", Kind::Write),
            ("10.0.0.1:443", Kind::Network),
        ] {
            j.accesses.insert((PathBuf::from(p), k), 1);
        }
        j.refused.insert("keyctl".into(), 2);
        let exists = |p: &Path| !p.ends_with("absent");
        let ctx = Context {
            base: String::new(),
            base_mounts: &mounts,
            learn_mounts: &mounts,
            cwd: None,
            vars: vec![("HOME", "/home/u".into())],
            command: String::new(),
            exists: &exists,
        };
        let lines = denied(&j, &mounts, &ctx);
        assert_eq!(
            lines,
            vec![
                "read /home/u/.config/app.conf: not in the sandbox; add: a [[mount]] with type = \"ro-bind\", src = \"${HOME}/.config/app.conf\", dst = \"${HOME}/.config/app.conf\"",
                "write /usr/lib/x: read-only in the sandbox; add: a [[mount]] with type = \"bind\", src = \"/usr/lib\", dst = \"/usr/lib\"",
                "connect to 10.0.0.1:443: the sandbox has no network; add: [namespaces] net = false",
                "system call keyctl (2 times): denied by the seccomp filter; add: [seccomp] allow = [\"keyctl\"]",
            ]
        );
    }
}
