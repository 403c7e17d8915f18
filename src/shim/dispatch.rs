//! A shim started: hutch invoked under another name than `hutch` (a
//! symlink `jq → hutch`) runs the program of that name in a sandbox, as
//! `hutch run --profile jq -- /usr/bin/jq ARGS...` would.
//!
//! This is a launch path like `hutch run`'s fast one, so it stays cheap:
//! one `stat` of hutch's own executable, one per `PATH` directory up to
//! the program, and a read of the shim record only when the shim is one
//! `hutch shim install` made (a missing record costs one failed `open`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::cli::RunArgs;
use crate::host::Host;

use super::lookup;
use super::{Scope, record};

/// The exit status when the program is not found (as a shell's).
pub const EXIT_NOT_FOUND: i32 = 127;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(
        "hutch was started as {0:?}, which is not valid UTF-8: a shim's name must be a program name"
    )]
    NameNotUtf8(OsString),
    #[error("cannot find hutch's own executable (/proc/self/exe): {0}; is /proc mounted?")]
    OwnExe(nix::errno::Errno),
    #[error(
        "{name}: no program of that name in PATH but hutch's own shims{}: install it, or remove the shim (`hutch shim remove {name}`); call hutch as `hutch` for its own commands",
        shims_text(.shims)
    )]
    NotFound { name: String, shims: Vec<PathBuf> },
    #[error("{0}")]
    Record(#[from] record::RecordError),
}

fn shims_text(shims: &[PathBuf]) -> String {
    match shims.first() {
        Some(p) => format!(" ({})", p.display()),
        None => String::new(),
    }
}

impl DispatchError {
    /// The exit status: 127 for a program not found, else hutch's own
    /// failure (125).
    pub fn exit_code(&self) -> i32 {
        match self {
            DispatchError::NotFound { .. } => EXIT_NOT_FOUND,
            _ => crate::launch::EXIT_LAUNCH_FAILED,
        }
    }
}

/// The name hutch was started under, when it is not `hutch`: hutch is a
/// shim of that program.
pub fn shim_name(args: &[OsString]) -> Option<&OsStr> {
    let base = Path::new(args.first()?).file_name()?;
    (base != "hutch").then_some(base)
}

/// The `hutch run` a shim stands for: the program `name` found in `path`
/// (the caller's `PATH`) after every shim of hutch, in the profile the shim
/// was installed with (else the one `hutch run` picks for it), with the
/// arguments as given.
pub fn run_args(args: Vec<OsString>, host: &Host, path: &OsStr) -> Result<RunArgs, DispatchError> {
    let mut args = args.into_iter();
    let argv0 = args.next().unwrap_or_default();
    let name = Path::new(&argv0)
        .file_name()
        .unwrap_or(argv0.as_os_str())
        .to_os_string();
    let name = name.into_string().map_err(DispatchError::NameNotUtf8)?;
    let own = lookup::own_id().map_err(DispatchError::OwnExe)?;
    let found = lookup::find(name.as_ref(), path, own);
    let Some(program) = found.program else {
        return Err(DispatchError::NotFound {
            name,
            shims: found.shim.into_iter().collect(),
        });
    };
    // Arguments pass as bytes: a file name need not be UTF-8.
    let mut command = vec![program.clone().into_os_string()];
    command.extend(args);
    // The shim that was started: the path it was started by (if that is a
    // shim of this hutch: argv[0] can say anything), or the one PATH led
    // to (known to be one by the walk).
    let shim = if argv0.as_encoded_bytes().contains(&b'/') {
        let given = PathBuf::from(&argv0);
        (lookup::executable_id(&given) == Some(own)).then_some(given)
    } else {
        found.shim
    };
    let profile = match shim {
        Some(shim) => recorded_profile(&shim, &name, host)?,
        None => None,
    };
    Ok(RunArgs {
        profile,
        image: None,
        name: None,
        explain: false,
        json: false,
        verbose: false,
        bind: Vec::new(),
        ro_bind: Vec::new(),
        env: Vec::new(),
        network: None,
        publish: Vec::new(),
        report_denied: false,
        command,
    })
}

/// The profile `hutch shim install --profile` recorded for the shim at
/// `shim`, if it is one of the user's or the system's.
fn recorded_profile(shim: &Path, name: &str, host: &Host) -> Result<Option<String>, DispatchError> {
    let Some(dir) = shim.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(None);
    };
    for scope in [Scope::User, Scope::System] {
        let Some(bin) = scope.bin_dir(host) else {
            continue;
        };
        if !lookup::same_dir(dir, &bin) {
            continue;
        }
        let Some((record, owner)) = scope.record_path(host) else {
            return Ok(None);
        };
        let record = record::read(&record, owner)?;
        return Ok(record.and_then(|r| r.get(name).and_then(|s| s.profile.clone())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hutch_under_its_own_name_is_not_a_shim() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(shim_name(&os(&["hutch", "run"])), None);
        assert_eq!(shim_name(&os(&["/usr/bin/hutch"])), None);
        assert_eq!(shim_name(&os(&["./hutch", "x"])), None);
        assert_eq!(shim_name(&os(&[])), None);
        assert_eq!(shim_name(&os(&[""])), None);
        assert_eq!(shim_name(&os(&["jq", "."])), Some(OsStr::new("jq")));
        assert_eq!(
            shim_name(&os(&["/home/u/.local/bin/jq"])),
            Some(OsStr::new("jq"))
        );
    }
}
