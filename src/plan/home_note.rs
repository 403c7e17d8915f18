//! `home_note`: where the home directory is a tmpfs (`cli`,
//! `base/edits-cwd`), what the program writes there is gone at exit. So
//! that this never happens unseen, hutch's init lists the home once the
//! payload has exited and, if anything was written, names it on stderr,
//! once per run; a run that wrote nothing there (an alias's usual run)
//! stays quiet. The mounts inside the home (volumes, the working
//! directory, named files) are the plan's, not writes: their mount points
//! and the directories holding them are expected entries.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::mounts::{MountOp, PlannedMount};
use crate::profile::Profile;

/// What init checks at exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeNote {
    /// The home directory inside the sandbox: a tmpfs.
    #[serde(with = "crate::argv::json::path")]
    pub home: PathBuf,
    /// The destinations of the mounts in it, relative to it.
    pub planned: Vec<PathBuf>,
}

/// The note, if the profile wants it (the default), there is an init to
/// give it, and the last mount at `home` is a tmpfs.
pub fn plan(
    profile: &Profile,
    home: Option<&Path>,
    ops: &[PlannedMount],
    init: bool,
) -> Option<HomeNote> {
    let wanted = profile
        .last(|p| p.home_note.as_ref())
        .is_none_or(|n| *n.get());
    let home = home.filter(|h| h.is_absolute() && *h != Path::new("/"))?;
    if !wanted || !init {
        return None;
    }
    let at = ops.iter().rposition(|m| m.op.dst() == home)?;
    if !matches!(ops[at].op, MountOp::Tmpfs { .. }) {
        return None;
    }
    let mut planned: Vec<PathBuf> = ops[at + 1..]
        .iter()
        .filter_map(|m| m.op.dst().strip_prefix(home).ok())
        .filter(|rel| !rel.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .collect();
    planned.sort();
    planned.dedup();
    // What lies in another mount is that mount's, not the home's.
    let mut outer: Vec<PathBuf> = Vec::new();
    for p in planned {
        if !outer.iter().any(|o| p.starts_with(o)) {
            outer.push(p);
        }
    }
    Some(HomeNote {
        home: home.to_path_buf(),
        planned: outer,
    })
}

/// The directories init lists, relative to the home ("" first, parents
/// before children), each with the names in it that the plan put there.
pub fn listing(note: &HomeNote) -> Vec<(PathBuf, Vec<std::ffi::OsString>)> {
    let mut dirs: Vec<(PathBuf, Vec<std::ffi::OsString>)> = vec![(PathBuf::new(), Vec::new())];
    for p in &note.planned {
        let mut parent = PathBuf::new();
        for c in p.components() {
            let name = c.as_os_str().to_os_string();
            let at = dirs.iter().position(|(d, _)| *d == parent);
            let at = at.unwrap_or_else(|| {
                dirs.push((parent.clone(), Vec::new()));
                dirs.len() - 1
            });
            if !dirs[at].1.contains(&name) {
                dirs[at].1.push(name.clone());
            }
            parent.push(&name);
        }
    }
    // A mount point is not listed (it shows the mount): only the
    // directories above one.
    dirs.retain(|(d, _)| d.as_os_str().is_empty() || !note.planned.contains(d));
    dirs.sort_by_key(|(d, _)| d.components().count());
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(op: MountOp) -> PlannedMount {
        PlannedMount {
            op,
            from: "test".into(),
            lands: None,
        }
    }

    fn tmpfs(dst: &str) -> PlannedMount {
        mount(MountOp::Tmpfs {
            dst: dst.into(),
            size: None,
            mode: 0o700,
        })
    }

    fn bind(dst: &str) -> PlannedMount {
        mount(MountOp::Bind {
            src: dst.into(),
            dst: dst.into(),
            readonly: false,
            devices: false,
        })
    }

    fn profile(text: &str) -> Profile {
        let file = crate::diag::SourceFile::new("test", None, text);
        let raw = crate::profile::parse(&file).unwrap();
        Profile {
            name: "test".into(),
            layers: vec![crate::profile::Layer {
                file,
                raw,
                is_override: false,
            }],
        }
    }

    #[test]
    fn a_tmpfs_home_is_noted_with_the_mounts_in_it() {
        let p = profile("version = 1\n");
        let ops = [
            tmpfs("/tmp"),
            tmpfs("/home/u"),
            bind("/home/u/project"),
            bind("/home/u/.cache/pip"),
            bind("/home/u/.cache/pip/x"),
        ];
        let note = plan(&p, Some(Path::new("/home/u")), &ops, true).unwrap();
        assert_eq!(
            note.planned,
            [PathBuf::from(".cache/pip"), "project".into()]
        );
        let l = listing(&note);
        assert_eq!(
            l,
            [
                (PathBuf::new(), vec![".cache".into(), "project".into()]),
                (PathBuf::from(".cache"), vec!["pip".into()]),
            ]
        );
    }

    #[test]
    fn no_note_without_a_tmpfs_home_an_init_or_when_the_profile_says_so() {
        let p = profile("version = 1\n");
        let home = Some(Path::new("/home/u"));
        // A home that is a bind, or a tmpfs covered by a later bind.
        assert!(plan(&p, home, &[bind("/home/u")], true).is_none());
        assert!(plan(&p, home, &[tmpfs("/home/u"), bind("/home/u")], true).is_none());
        assert!(plan(&p, home, &[tmpfs("/tmp")], true).is_none());
        assert!(plan(&p, home, &[tmpfs("/home/u")], false).is_none());
        let quiet = profile("version = 1\nhome_note = false\n");
        assert!(plan(&quiet, home, &[tmpfs("/home/u")], true).is_none());
    }
}
