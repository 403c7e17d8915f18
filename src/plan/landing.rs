//! Where each mount destination lands inside the sandbox. The child walks a
//! destination in the new root as it is when the entry is mounted
//! (`child/resolve.rs`): a symlink on the way is followed inside the root,
//! so `dst = "/etc/foo"` where the ro-bound `/etc` holds `foo → /run/foo`
//! mounts at `/run/foo`. The planner works that out without namespaces,
//! from what the earlier entries show there (the host paths behind binds,
//! the symlinks entries make, the root directory or the image's layers),
//! so that `--explain` shows where the mount really goes.

use std::path::{Component, Path, PathBuf};

pub use super::mounts::Landing;
use super::mounts::{MountOp, PlannedMount};
use super::rootfs::{RootPlan, RootSource, Upper};
use crate::host::Host;

/// Most symlinks followed for one destination (the child's limit).
const MAX_LINKS: usize = 40;

/// What a path inside the sandbox is, as far as planning can tell.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Symlink(PathBuf),
    /// A directory, a file, or nothing yet (the child makes directories on
    /// the way): the walk goes on.
    Other,
    /// Nothing planning can see into (a fresh /proc): the walk stops.
    Opaque,
}

/// Sets [`PlannedMount::lands`] of every entry whose destination resolves
/// through a symlink to another place, given the root it is mounted on.
pub fn mark(ops: &mut [PlannedMount], root: Option<&RootPlan>, host: &Host) {
    for i in 0..ops.len() {
        let (earlier, rest) = ops.split_at_mut(i);
        let entry = &mut rest[0];
        entry.lands = land(&entry.op, earlier, root, host);
    }
}

/// Where the entry `op` lands, given the entries mounted before it.
fn land(
    op: &MountOp,
    earlier: &[PlannedMount],
    root: Option<&RootPlan>,
    host: &Host,
) -> Option<Landing> {
    let dst = op.dst();
    let view = View {
        earlier,
        root,
        host,
    };
    // Entries that make a node resolve only the parent: the last component
    // is made as it is named (the child's `open_parent`).
    let landing = match op {
        MountOp::Dir { .. } | MountOp::Symlink { .. } | MountOp::File { .. } => {
            let (parent, name) = (dst.parent()?, dst.file_name()?);
            let (at, through) = view.resolve(parent)?;
            (at.join(name), through)
        }
        _ => view.resolve(dst)?,
    };
    match landing {
        (at, Some(through)) if at != dst => Some(Landing { at, through }),
        _ => None,
    }
}

/// The sandbox's filesystem as the entries before one build it.
struct View<'a> {
    earlier: &'a [PlannedMount],
    root: Option<&'a RootPlan>,
    host: &'a Host,
}

impl View<'_> {
    /// Walks `path` (absolute) one component at a time, following the
    /// symlinks it meets inside the sandbox: where it ends, and the first
    /// symlink on the way. `None` where planning cannot tell (too many
    /// links, out of the root, into a fresh /proc).
    fn resolve(&self, path: &Path) -> Option<(PathBuf, Option<PathBuf>)> {
        let mut pending: Vec<PathBuf> = components(path);
        pending.reverse();
        let mut at = PathBuf::from("/");
        let mut through = None;
        let mut links = 0;
        while let Some(name) = pending.pop() {
            if name == Path::new("..") {
                if !at.pop() {
                    return None;
                }
                continue;
            }
            let next = at.join(&name);
            match self.node(&next) {
                Node::Symlink(target) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return None;
                    }
                    through.get_or_insert(next);
                    if target.is_absolute() {
                        at = PathBuf::from("/");
                    }
                    pending.extend(components(&target).into_iter().rev());
                }
                Node::Other => at = next,
                Node::Opaque => return None,
            }
        }
        Some((at, through))
    }

    /// What `path` is after the earlier entries: the latest one at it or
    /// mounted above it decides; failing that, the root.
    fn node(&self, path: &Path) -> Node {
        for entry in self.earlier.iter().rev() {
            let dst = entry.lands.as_ref().map_or(entry.op.dst(), |l| &l.at);
            let Ok(rel) = path.strip_prefix(dst) else {
                continue;
            };
            let here = rel.as_os_str().is_empty();
            match &entry.op {
                MountOp::Symlink { target, .. } if here => return Node::Symlink(target.clone()),
                MountOp::Bind { src, .. } if !here => {
                    return host_node(&self.host.fs_path(src).join(rel));
                }
                MountOp::Volume { src, tmp, .. } if !here && !tmp => {
                    return host_node(&src.join(rel));
                }
                MountOp::Proc { .. } if !here => return Node::Opaque,
                MountOp::Dir { .. } | MountOp::File { .. } | MountOp::Symlink { .. } => {
                    // Made in whatever was there, or below it: look further.
                    if here {
                        return Node::Other;
                    }
                }
                _ => return Node::Other,
            }
        }
        self.in_root(path)
    }

    /// What `path` is in the root: the persistent upper layer, then the
    /// image's layers from the highest, or the root directory; nothing in
    /// an empty root.
    fn in_root(&self, path: &Path) -> Node {
        let Some(root) = self.root else {
            return Node::Other;
        };
        let rel = path.strip_prefix("/").unwrap_or(path);
        if let Upper::Dir { path: dir } = &root.writable
            && let Some(node) = layer_node(&dir.join("upper").join(rel))
        {
            return node;
        }
        match &root.source {
            RootSource::Dir { path: dir } => host_node(&self.host.fs_path(dir).join(rel)),
            RootSource::Image { layers, .. } => layers
                .iter()
                .find_map(|l| layer_node(&l.join(rel)))
                .unwrap_or(Node::Other),
        }
    }
}

/// What the host path `p` shows inside the sandbox.
fn host_node(p: &Path) -> Node {
    layer_node(p).unwrap_or(Node::Other)
}

/// A symlink at `p`, something else, or `None` if nothing is there (the
/// next layer down decides).
fn layer_node(p: &Path) -> Option<Node> {
    let m = std::fs::symlink_metadata(p).ok()?;
    if !m.file_type().is_symlink() {
        return Some(Node::Other);
    }
    Some(std::fs::read_link(p).map_or(Node::Other, Node::Symlink))
}

/// The components of a path to walk: names and `..`; `.` and the root
/// dropped.
fn components(path: &Path) -> Vec<PathBuf> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(PathBuf::from(n)),
            Component::ParentDir => Some(PathBuf::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn entry(op: MountOp) -> PlannedMount {
        PlannedMount {
            op,
            from: "test".into(),
            lands: None,
        }
    }

    fn bind(src: &str, dst: &str) -> PlannedMount {
        entry(MountOp::Bind {
            src: src.into(),
            dst: dst.into(),
            readonly: true,
            devices: false,
        })
    }

    fn tmpfs(dst: &str) -> PlannedMount {
        entry(MountOp::Tmpfs {
            dst: dst.into(),
            size: None,
            mode: 0o755,
        })
    }

    fn link(dst: &str, target: &str) -> PlannedMount {
        entry(MountOp::Symlink {
            target: target.into(),
            dst: dst.into(),
        })
    }

    /// A host tree: /etc with `foo → /run/foo`, `rel → ../srv/x`,
    /// `out → ../../..` and `plain/`; /srv/data.
    fn machine() -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(etc.join("plain")).unwrap();
        std::fs::create_dir_all(dir.path().join("srv/data")).unwrap();
        symlink("/run/foo", etc.join("foo")).unwrap();
        symlink("../srv/x", etc.join("rel")).unwrap();
        symlink("../../..", etc.join("out")).unwrap();
        let host = Host::fixed(1000, 1000, &[("HOME", "/home/u")], "/").with_fs_root(dir.path());
        (dir, host)
    }

    fn landed(ops: Vec<PlannedMount>, host: &Host) -> Vec<Option<(String, String)>> {
        let mut ops = ops;
        mark(&mut ops, None, host);
        ops.iter()
            .map(|m| {
                m.lands
                    .as_ref()
                    .map(|l| (l.at.display().to_string(), l.through.display().to_string()))
            })
            .collect()
    }

    fn some(at: &str, through: &str) -> Option<(String, String)> {
        Some((at.into(), through.into()))
    }

    #[test]
    fn a_destination_through_a_symlink_in_a_bound_directory_lands_where_it_points() {
        let (_d, host) = machine();
        let got = landed(
            vec![
                bind("/etc", "/etc"),
                tmpfs("/run"),
                bind("/srv/data", "/etc/foo"),
                bind("/srv/data", "/etc/rel/sub"),
                bind("/srv/data", "/etc/plain"),
                entry(MountOp::Dir {
                    dst: "/etc/foo".into(),
                    mode: 0o755,
                }),
            ],
            &host,
        );
        assert_eq!(
            got,
            vec![
                None,
                None,
                // Absolute target: from the sandbox's root.
                some("/run/foo", "/etc/foo"),
                // Relative target: from the link's directory.
                some("/srv/x/sub", "/etc/rel"),
                // No symlink on the way (the control).
                None,
                // A node entry resolves its parent only: /etc/foo is made
                // as named (and fails there at run time: it exists).
                None,
            ]
        );
    }

    #[test]
    fn symlinks_made_by_entries_and_later_mounts_count() {
        let (_d, host) = machine();
        let got = landed(
            vec![
                link("/bin", "usr/bin"),
                bind("/srv/data", "/bin/tool"),
                // A tmpfs over /etc hides the host's symlinks.
                bind("/etc", "/etc"),
                tmpfs("/etc"),
                bind("/srv/data", "/etc/foo"),
                // A file entry inside a linked directory lands there.
                link("/conf", "/etc/plain"),
                entry(MountOp::File {
                    dst: "/conf/app.ini".into(),
                    content: String::new(),
                    mode: 0o644,
                    cover: false,
                }),
            ],
            &host,
        );
        assert_eq!(
            got,
            vec![
                None,
                some("/usr/bin/tool", "/bin"),
                None,
                None,
                None,
                None,
                some("/etc/plain/app.ini", "/conf"),
            ]
        );
    }

    #[test]
    fn what_planning_cannot_tell_is_left_as_written() {
        let (_d, host) = machine();
        let got = landed(
            vec![
                bind("/etc", "/etc"),
                // `..` above the root: the child refuses it (EXDEV).
                bind("/srv/data", "/etc/out/x"),
                // A loop.
                link("/a", "/b"),
                link("/b", "/a"),
                bind("/srv/data", "/a/x"),
                entry(MountOp::Proc {
                    dst: "/proc".into(),
                }),
                bind("/srv/data", "/proc/self/x"),
            ],
            &host,
        );
        assert_eq!(got, vec![None; 7]);
    }

    #[test]
    fn a_root_directory_and_an_image_layer_are_looked_into() {
        let (d, host) = machine();
        let rootdir = RootPlan {
            source: RootSource::Dir { path: "/".into() },
            writable: Upper::ReadOnly,
            from: "test".into(),
        };
        let mut ops = vec![bind("/srv/data", "/etc/foo")];
        mark(&mut ops, Some(&rootdir), &host);
        assert_eq!(ops[0].lands.as_ref().unwrap().at, Path::new("/run/foo"));
        // Layers are real paths, highest first: the upper one's plain
        // directory hides the lower one's symlink.
        let (upper, lower) = (d.path().join("upper"), d.path().join("lower"));
        std::fs::create_dir_all(upper.join("etc/foo")).unwrap();
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        symlink("/run/foo", lower.join("etc/foo")).unwrap();
        symlink("/opt/x", lower.join("etc/only-below")).unwrap();
        let image = RootPlan {
            source: RootSource::Image {
                name: "i".into(),
                id: "sha256:0".into(),
                layers: vec![upper, lower],
            },
            writable: Upper::Tmpfs,
            from: "test".into(),
        };
        let mut ops = vec![
            bind("/srv/data", "/etc/foo"),
            bind("/srv/data", "/etc/only-below"),
        ];
        mark(&mut ops, Some(&image), &host);
        assert_eq!(ops[0].lands, None);
        assert_eq!(ops[1].lands.as_ref().unwrap().at, Path::new("/opt/x"));
    }
}
