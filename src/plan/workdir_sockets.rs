//! The unix sockets in the bound working directory, masked.
//!
//! `connect()` to a pathname unix socket checks only write permission on
//! the socket's inode: a read-only mount does not count (the kernel's
//! read-only check covers regular files, directories and symlinks), and
//! Landlock (up to its ABI 7, Linux 6.15 to 6.18) has no right for it
//! either (`LANDLOCK_ACCESS_FS_MAKE_SOCK` is about creating one). So a
//! program under `default`, which sees the working directory read-only,
//! could still talk to a server listening in it: a language server, git's
//! fsmonitor daemon in `.git`, a container engine's or a debugger's socket,
//! whatever runs commands for its clients on the host. Each socket found is
//! masked the way `[protect] hide` masks a file: /dev/null bound over it,
//! which a connect() refuses (ECONNREFUSED: not a socket).
//!
//! The search is a breadth-first walk of directory entries (their type
//! comes with `getdents64`: no `stat` per file), without following
//! symlinks, bounded to [`WALK_BUDGET`] entries so that a launch from a huge
//! tree costs about a millisecond more, not tens of them. When the bound is reached, the sockets bound
//! in hutch's network namespace by an absolute path (`/proc/net/unix`,
//! which lists every listening pathname socket of the host's programs) are
//! masked too, and `-v`/`--explain` say what the walk did not cover: a
//! socket deeper than the bound made by a program in another network
//! namespace or by a relative path. A socket created after the launch is
//! not covered either.

use std::collections::VecDeque;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use super::mounts::{MountOp, PlannedMount};
use crate::diag::Diagnostic;
use crate::host::Host;
use crate::profile::ProfileError;

/// Directory entries the walk reads at most: about a millisecond's worth
/// (`cargo bench --bench plan -- workdir_socket`, see bench/README.md).
pub const WALK_BUDGET: usize = 4_096;
/// Sockets masked at most: each is a mount.
pub const MAX_SOCKETS: usize = 256;

/// What the walk of `dir` found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// The sockets, as host paths.
    pub sockets: Vec<PathBuf>,
    /// Entries read.
    pub entries: usize,
    /// Whether every entry under `dir` was read.
    pub complete: bool,
}

/// Walks `dir` (a path on `host`) breadth-first for sockets, reading at
/// most `budget` entries.
pub fn scan(dir: &Path, host: &Host, budget: usize) -> Scan {
    let mut out = Scan::default();
    let mut queue = VecDeque::from([dir.to_path_buf()]);
    while let Some(d) = queue.pop_front() {
        // An unreadable directory shows nothing to the sandbox either.
        let Ok(entries) = std::fs::read_dir(host.fs_path(&d)) else {
            continue;
        };
        for e in entries.flatten() {
            if out.entries == budget {
                return out;
            }
            out.entries += 1;
            // From the directory entry's d_type; a symlink is not followed.
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                queue.push_back(d.join(e.file_name()));
            } else if t.is_socket() {
                out.sockets.push(d.join(e.file_name()));
            }
        }
    }
    out.complete = true;
    out
}

/// The absolute paths of the pathname sockets `/proc/net/unix` lists
/// under `dir`, that are sockets there now.
fn listed_sockets(dir: &Path, host: &Host) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(host.fs_path(Path::new("/proc/net/unix"))) else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(7))
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.starts_with(dir))
        .filter(|p| {
            std::fs::symlink_metadata(host.fs_path(p)).is_ok_and(|m| m.file_type().is_socket())
        })
        .collect()
}

/// The masks over the sockets in the working directory `dir` (bound at
/// its own path), and a note when the walk did not cover all of it.
pub fn masks(
    dir: &Path,
    host: &Host,
    from: &str,
) -> Result<(Vec<PlannedMount>, Option<String>), ProfileError> {
    masks_within(dir, host, from, WALK_BUDGET)
}

fn masks_within(
    dir: &Path,
    host: &Host,
    from: &str,
    budget: usize,
) -> Result<(Vec<PlannedMount>, Option<String>), ProfileError> {
    let found = scan(dir, host, budget);
    let mut sockets = found.sockets;
    let mut note = None;
    if !found.complete {
        for p in listed_sockets(dir, host) {
            if !sockets.contains(&p) {
                sockets.push(p);
            }
        }
        note = Some(format!(
            "the unix sockets of the working directory {}: the walk for them stopped after {} entries; beyond them only the sockets bound by absolute path in this network namespace (/proc/net/unix) are masked",
            dir.display(),
            found.entries
        ));
    }
    if sockets.len() > MAX_SOCKETS {
        return Err(Diagnostic::new(format!(
            "the working directory {} holds {} unix sockets, more than the {MAX_SOCKETS} hutch masks (a program in the sandbox could connect to any of them, read-only bind or not)",
            dir.display(),
            sockets.len()
        ))
        .help("run it from a directory without them, or remove the stale ones")
        .into());
    }
    let ops = sockets
        .into_iter()
        .map(|dst| PlannedMount {
            op: MountOp::Bind {
                src: PathBuf::from("/dev/null"),
                dst,
                readonly: true,
                devices: false,
            },
            from: format!("{from} (a unix socket in the working directory)"),
            lands: None,
        })
        .collect();
    Ok((ops, note))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn finds_sockets_at_any_depth_and_not_through_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let deep = t.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(t.path().join("a/file"), "x").unwrap();
        let _top = UnixListener::bind(t.path().join("top.sock")).unwrap();
        let _deep = UnixListener::bind(deep.join("deep.sock")).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let _out = UnixListener::bind(elsewhere.path().join("out.sock")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), t.path().join("link")).unwrap();
        let host = Host::fixed(0, 0, &[], "/");
        let mut s = scan(t.path(), &host, 1000);
        s.sockets.sort();
        assert!(s.complete);
        assert_eq!(
            s.sockets,
            [deep.join("deep.sock"), t.path().join("top.sock")]
        );
    }

    #[test]
    fn the_walk_stops_at_its_budget_shallow_entries_first() {
        let t = tempfile::tempdir().unwrap();
        let deep = t.path().join("d1/d2");
        std::fs::create_dir_all(&deep).unwrap();
        let _top = UnixListener::bind(t.path().join("s")).unwrap();
        let _deep = UnixListener::bind(deep.join("s")).unwrap();
        let host = Host::fixed(0, 0, &[], "/");
        let s = scan(t.path(), &host, 3);
        assert!(!s.complete);
        assert_eq!(s.entries, 3);
        assert_eq!(s.sockets, [t.path().join("s")]);
        // Beyond the budget, a socket a program of this network namespace
        // listens on by absolute path is still found (/proc/net/unix), and
        // the note says what is not covered.
        let (ops, note) = masks_within(t.path(), &host, "test", 3).unwrap();
        let mut dsts: Vec<&Path> = ops.iter().map(|m| m.op.dst()).collect();
        dsts.sort();
        assert_eq!(dsts, [deep.join("s"), t.path().join("s")]);
        assert!(note.unwrap().contains("stopped after 3 entries"));
        // Within it: every one, no note.
        let (ops, note) = masks(t.path(), &host, "test").unwrap();
        assert_eq!(ops.len(), 2);
        assert!(note.is_none(), "{note:?}");
    }
}
