//! The guard that keeps hutch's own state (the registry of running
//! sandboxes, the volume store, the image store: [`paths::state_dirs`])
//! out of the sandbox's reach, by one rule for all of them: a bind that
//! would expose one is refused, and one of a directory above it gets it
//! hidden.

use std::path::{Path, PathBuf};

use crate::host::Host;
use crate::paths::{self, StateDir, StateKind};

/// Both spellings of a path: as written and with symlinks resolved (when it
/// exists), so that neither a symlinked `$HOME` nor a symlinked bind source
/// slips past a comparison.
fn forms(p: &Path) -> Vec<PathBuf> {
    let mut v = vec![p.to_path_buf()];
    if let Ok(c) = std::fs::canonicalize(p)
        && c != p
    {
        v.push(c);
    }
    v
}

/// What to do instead of binding a state directory of this kind.
fn instead(kind: StateKind) -> &'static str {
    match kind {
        StateKind::Registry => {
            "`hutch exec` trusts that registry to confine what it starts; bind only the files the program needs from there"
        }
        StateKind::Volumes => {
            "declare the volume instead: `[volumes.NAME]` with `dst = ...` (it is then locked and opened safely)"
        }
        StateKind::Images => {
            "run the image with `--image NAME` or `image = \"NAME\"`: its layers are shared by every sandbox of the image and must stay unchanged"
        }
    }
}

/// Refuses a `[[mount]]` bind of `src` (or a `root`/`writable` directory)
/// that would put one of hutch's state directories, or a part of one,
/// within the sandbox's reach. A bind of a directory *above* one is fine:
/// [`exposed_state`] finds them, to be hidden inside the sandbox.
///
/// Returns the message and the help text.
pub fn check_exposure(src: &Path, host: &Host) -> Result<(), (String, String)> {
    let srcs = forms(src);
    for (state, state_forms) in protected_forms(host) {
        if state_forms
            .iter()
            .any(|v| srcs.iter().any(|s| s.starts_with(v)))
        {
            return Err((
                format!(
                    "binding {} would expose hutch's {} ({}) to the sandbox",
                    src.display(),
                    state.kind.long_name(),
                    state.path.display()
                ),
                instead(state.kind).into(),
            ));
        }
    }
    Ok(())
}

/// Where a bind (`src` → `dst`) of a directory above one of hutch's state
/// directories would show it inside the sandbox (`cli` started in /tmp or
/// in the home directory, say): each such path inside, with what it hides,
/// once. Only paths that exist are hidden (the launcher creates the
/// registry before planning). See [`super::mounts::state_masks`].
pub fn exposed_state<'a>(
    binds: impl Iterator<Item = (&'a Path, &'a Path)> + Clone,
    host: &Host,
) -> Vec<(PathBuf, String)> {
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    for (state, protected) in protected_forms(host) {
        if !state.path.exists() {
            continue;
        }
        for (src, dst) in binds.clone() {
            let inside = forms(src).iter().find_map(|s| {
                protected
                    .iter()
                    .find_map(|p| {
                        p.strip_prefix(s)
                            .ok()
                            .filter(|rest| !rest.as_os_str().is_empty())
                    })
                    .map(|rest| dst.join(rest))
            });
            if let Some(path) = inside
                && !out.iter().any(|(o, _)| *o == path)
            {
                out.push((
                    path,
                    format!(
                        "hutch: hides its {} (under {})",
                        state.kind.short_name(),
                        src.display()
                    ),
                ));
            }
        }
    }
    out
}

type Forms = Vec<(StateDir, Vec<PathBuf>)>;

thread_local! {
    /// The spellings of the state directories, resolved once per planning
    /// rather than once per bind.
    static PROTECTED: std::cell::RefCell<Option<Forms>> =
        const { std::cell::RefCell::new(None) };
}

/// Each state directory of `host` with its spellings.
fn protected_forms(host: &Host) -> Forms {
    let dirs = paths::state_dirs(host);
    PROTECTED.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some(cached) = cell.as_ref()
            && cached.len() == dirs.len()
            && cached.iter().zip(&dirs).all(|((c, _), d)| c == d)
        {
            return cached.clone();
        }
        let fresh: Forms = dirs
            .into_iter()
            .map(|d| {
                let f = forms(&d.path);
                (d, f)
            })
            .collect();
        *cell = Some(fresh.clone());
        fresh
    })
}
