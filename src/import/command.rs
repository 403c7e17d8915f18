//! `hutch import firejail NAME|FILE [-o OUT.toml] [--report] [-v]`.

use std::io::Write;
use std::path::Path;

use super::firejail::{self, Env, Fs, macros, source};
use crate::cli::ImportFirejailArgs;
use crate::diag::{SourceFile, sanitize};
use crate::host::Host;
use crate::plan::{self, Request};
use crate::profile::{Layer, Profile, ProfileError};

/// Checks `text` as `hutch check` would (it is self-contained: one layer).
pub fn check(text: &str, name: &str, host: &Host) -> Result<plan::Plan, ProfileError> {
    let file = SourceFile::new(name, None, text);
    let raw = crate::profile::parse(&file)?;
    let profile = Profile {
        name: name.to_string(),
        layers: vec![Layer {
            file,
            raw,
            is_override: false,
        }],
    };
    let request = Request {
        command: Vec::new(),
        command_optional: true,
        image: None,
    };
    plan::build(&profile, host, &request)
}

pub fn firejail(args: ImportFirejailArgs) -> i32 {
    let fail = |msg: String| {
        crate::diag::error(msg);
        crate::exit::FAILED
    };
    let host = Host::current();
    let env = match Env::current(&host) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let file = match source::locate(&args.profile, &env) {
        Ok(f) => f,
        Err(e) => return fail(e.to_string()),
    };
    let fs = Fs::new();
    let imported = match firejail::import(&file, &env, &fs) {
        Ok(i) => i,
        Err(e) => return fail(e.to_string()),
    };
    let text = imported.draft.render(&|p| macros::to_hutch(p, &env));
    let name = args
        .output
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<imported profile>".into());
    if let Err(e) = check(&text, &name, &host) {
        let _ = std::io::stderr().write_all(e.0.render().as_bytes());
        return fail(format!(
            "the profile imported from {} does not pass hutch's own check (a bug in `hutch import`); nothing was written",
            file.display()
        ));
    }
    let report = &imported.report;
    let shown = report.render(args.report || args.verbose);
    if args.verbose {
        eprintln!("Files read:");
        for f in &report.files {
            eprintln!("  {}", sanitize(f));
        }
    }
    let _ = std::io::stderr().write_all(shown.as_bytes());
    match &args.output {
        Some(out) => {
            if let Err(e) = write_atomically(out, &text) {
                return fail(format!("cannot write {}: {e}", out.display()));
            }
            eprintln!("hutch: wrote {}", sanitize(&out.display().to_string()));
        }
        None => {
            let _ = std::io::stdout().write_all(text.as_bytes());
        }
    }
    0
}

/// Writes `text` to `path` through a new file beside it, renamed over it,
/// so that a reader never sees half a profile.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(name);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}
