//! Files named on the command line (`file_arguments`): `hutch run evince
//! ~/Downloads/x.pdf` binds exactly that file, not its directory.
//!
//! Each argument after the program that names an existing host path (as
//! given, or relative to the working directory) is bound at its real path,
//! symlinks resolved: a symlink never widens what is bound, and a target
//! that `[protect] hide` covers is refused there (see `protect`). Options
//! (`-x`, `--file=...`) are not paths; directories that hold the user's
//! whole world are left out, with a note. An argument spelled through a
//! symlink that the sandbox does not show gets a symlink of its own, on the
//! sandbox's tmpfs, to the bound path.

use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

use super::mounts::{MountOp, PlannedMount};
use crate::host::Host;
use crate::profile::schema::FileArguments;
use crate::profile::{Profile, ProfileError};

/// The binds for the arguments of `command` (the program first), and
/// notes on arguments left out.
pub fn plan_file_arguments(
    profile: &Profile,
    host: &Host,
    command: &[OsString],
    ops: &[PlannedMount],
    root_is_tmpfs: bool,
) -> Result<(Vec<PlannedMount>, Vec<String>), ProfileError> {
    let Some(at) = profile.last(|p| p.file_arguments.as_ref()) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let readonly = match at.get() {
        FileArguments::None => return Ok((Vec::new(), Vec::new())),
        FileArguments::ReadOnly => true,
        FileArguments::ReadWrite => false,
    };
    let (line, col) = at.file.line_col(at.value.span().start);
    let key_at = format!("{}:{line}:{col}", at.file.name);
    let mut binds: Vec<PlannedMount> = Vec::new();
    let mut notes = Vec::new();
    for (i, arg) in command.iter().enumerate().skip(1) {
        let Some(real) = existing_path(arg, host) else {
            continue;
        };
        // Arguments are bytes; notes and the plan's `from` show them as text.
        let arg_text = Path::new(arg).display();
        if let Some(why) = super::protect::whole_world(&real, host) {
            notes.push(format!(
                "argument {i} ({arg_text}): {} {why}",
                real.display()
            ));
            continue;
        }
        // A unix socket is a line to a program on the host, not a file to
        // read or write (a read-only bind does not stop connect()): only a
        // bind the user writes grants it (see workdir_sockets).
        if std::fs::symlink_metadata(host.fs_path(&real))
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        {
            notes.push(format!(
                "argument {i} ({arg_text}): {} is a unix socket, which file_arguments does not bind (grant it with --bind)",
                real.display()
            ));
            continue;
        }
        if shown_alike(&real, readonly, ops) || binds.iter().any(|b| b.op.dst() == real) {
            continue;
        }
        let from = format!("argument {i} ({arg_text}); file_arguments at {key_at}");
        let link = link_to(arg, &real, host, ops, &binds, root_is_tmpfs);
        binds.push(PlannedMount {
            op: MountOp::Bind {
                src: real.clone(),
                dst: real.clone(),
                readonly,
                devices: false,
            },
            from: from.clone(),
            lands: None,
        });
        if let Some(dst) = link {
            binds.push(PlannedMount {
                op: MountOp::Symlink { target: real, dst },
                from,
                lands: None,
            });
        }
    }
    Ok((binds, notes))
}

/// Where the argument's own name needs a symlink to its real path: it is
/// spelled through a symlink (`real` differs) and nothing shows that name
/// inside (it would lie on a tmpfs of the sandbox's own, never the host).
fn link_to(
    arg: &OsStr,
    real: &Path,
    host: &Host,
    ops: &[PlannedMount],
    binds: &[PlannedMount],
    root_is_tmpfs: bool,
) -> Option<PathBuf> {
    let given = Path::new(arg);
    let absolute = if given.is_absolute() {
        given.to_path_buf()
    } else {
        host.cwd()?.join(given)
    };
    let mut clean = PathBuf::from("/");
    for c in absolute.components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::RootDir | Component::CurDir => {}
            _ => return None,
        }
    }
    if clean == real {
        return None;
    }
    let covering = ops
        .iter()
        .chain(binds)
        .rev()
        .find(|m| clean.starts_with(m.op.dst()));
    match covering.map(|m| &m.op) {
        Some(MountOp::Tmpfs { .. }) => Some(clean),
        None if root_is_tmpfs => Some(clean),
        _ => None,
    }
}

/// The real path of an argument that names an existing host path: absolute,
/// or relative to the working directory; never an option.
fn existing_path(arg: &OsStr, host: &Host) -> Option<PathBuf> {
    let bytes = arg.as_encoded_bytes();
    if bytes.is_empty() || bytes[0] == b'-' || bytes.contains(&0) {
        return None;
    }
    let given = Path::new(arg);
    let absolute = if given.is_absolute() {
        given.to_path_buf()
    } else {
        host.cwd()?.join(given)
    };
    let real = std::fs::canonicalize(host.fs_path(&absolute)).ok()?;
    let real = host.host_path(&real)?;
    // canonicalize gives a clean absolute path; check anyway, the planner
    // never binds a path with `..`.
    real.components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        .then_some(real)
}

/// Whether `real` is already shown at its own path with at least the
/// access asked for: the last mount over it is a bind that maps it to
/// itself (read-write, or read-only when read-only is asked).
fn shown_alike(real: &Path, readonly: bool, ops: &[PlannedMount]) -> bool {
    let covering = ops.iter().rev().find(|m| real.starts_with(m.op.dst()));
    match covering.map(|m| &m.op) {
        Some(MountOp::Bind {
            src,
            dst,
            readonly: ro,
            ..
        }) => src == dst && (readonly || !ro),
        _ => false,
    }
}
