//! The guard that keeps hutch's own state (the registry of running
//! sandboxes, the volume store) out of the sandbox's reach: a bind that
//! would expose it is refused, and one of a directory above it gets the
//! state hidden.

use std::path::{Path, PathBuf};

use crate::host::Host;
use crate::paths;

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

/// Refuses a `[[mount]]` bind of `src` that would put hutch's own state
/// within the sandbox's reach:
///
/// - the runtime directory holding the registry of running sandboxes, from
///   which `hutch exec` takes the confinement to apply (a sandbox that could
///   rewrite a record, or plant a fake one, could make `exec` join it less
///   confined): never bound;
/// - the volume store: never bound (that would bypass the locks and expose
///   every volume).
///
/// A bind of a directory *above* either is fine: [`exposed_state`] finds
/// them, to be hidden
/// inside the sandbox.
///
/// Returns the message and the help text.
pub fn check_exposure(src: &Path, host: &Host) -> Result<(), (String, String)> {
    let srcs = forms(src);
    let runtime = paths::runtime_dir(host);
    let store = paths::volume_store(host);
    let (runtime_forms, store_forms) = protected_forms(&runtime, store.as_deref());
    for r in &runtime_forms {
        for s in &srcs {
            if s.starts_with(r) {
                return Err((
                    format!(
                        "binding {} would expose hutch's registry of running sandboxes ({}) to the sandbox",
                        src.display(),
                        runtime.display()
                    ),
                    "`hutch exec` trusts that registry to confine what it starts; bind only the files the program needs from there".into(),
                ));
            }
        }
    }
    if let Some(store) = &store
        && store_forms
            .iter()
            .any(|v| srcs.iter().any(|s| s.starts_with(v)))
    {
        return Err((
            format!(
                "binding {} would expose hutch's volume store ({}) to the sandbox",
                src.display(),
                store.display()
            ),
            "declare the volume instead: `[volumes.NAME]` with `dst = ...` (it is then locked and opened safely)".into(),
        ));
    }
    Ok(())
}

/// Where a bind (`src` → `dst`) of a directory above hutch's registry or
/// volume store would show them inside the sandbox (`cli` started in /tmp
/// or in the home directory, say): each such path inside, with what it
/// hides, once. Only paths that exist are hidden (the launcher creates
/// the registry before planning). See [`super::mounts::state_masks`].
pub fn exposed_state<'a>(
    binds: impl Iterator<Item = (&'a Path, &'a Path)> + Clone,
    host: &Host,
) -> Vec<(PathBuf, String)> {
    let runtime = paths::runtime_dir(host);
    let store = paths::volume_store(host);
    let (runtime_forms, store_forms) = protected_forms(&runtime, store.as_deref());
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    for (protected, what) in [(&runtime_forms, "registry"), (&store_forms, "volume store")] {
        let Some(real) = protected.first() else {
            continue;
        };
        if !real.exists() {
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
                    format!("hutch: hides its {what} (under {})", src.display()),
                ));
            }
        }
    }
    out
}

type Forms = (Vec<PathBuf>, Vec<PathBuf>);

thread_local! {
    /// The spellings of the protected directories, resolved once per
    /// planning rather than once per bind.
    static PROTECTED: std::cell::RefCell<Option<(PathBuf, Option<PathBuf>, Forms)>> =
        const { std::cell::RefCell::new(None) };
}

fn protected_forms(runtime: &Path, store: Option<&Path>) -> Forms {
    PROTECTED.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some((r, s, forms)) = cell.as_ref()
            && r == runtime
            && s.as_deref() == store
        {
            return forms.clone();
        }
        let forms = (forms(runtime), store.map(forms).unwrap_or_default());
        *cell = Some((
            runtime.to_path_buf(),
            store.map(Path::to_path_buf),
            forms.clone(),
        ));
        forms
    })
}
