//! `hutch export oci`: profile → plan → bundle, with what the bundle cannot
//! express listed on stderr (and `--strict` refusing when any of it would
//! be lost).

use std::io::Write;
use std::path::PathBuf;

use super::oci::{self, Export, GapKind};
use crate::cli::ExportOciArgs;
use crate::host::Host;
use crate::launch::EXIT_LAUNCH_FAILED;
use crate::plan::{self, Request};
use crate::profile::load::SearchPath;
use crate::profile::{self, ProfileRef};

pub fn oci(args: ExportOciArgs) -> i32 {
    match export(args) {
        Ok(()) => 0,
        Err(Failure::Profile(e)) => {
            let _ = std::io::stderr().write_all(e.0.render().as_bytes());
            EXIT_LAUNCH_FAILED
        }
        Err(Failure::Line(line)) => {
            crate::diag::error(&line);
            EXIT_LAUNCH_FAILED
        }
    }
}

enum Failure {
    /// A profile error, rendered with its file, line and column.
    Profile(profile::ProfileError),
    /// Anything else: one line.
    Line(String),
}

impl From<profile::ProfileError> for Failure {
    fn from(e: profile::ProfileError) -> Failure {
        Failure::Profile(e)
    }
}

fn export(args: ExportOciArgs) -> Result<(), Failure> {
    let host = super::target_host(Host::current());
    let search = SearchPath::standard(&host);
    let pref = match (&args.profile, &args.image) {
        (Some(p), _) => ProfileRef::from_cli(p),
        (None, Some(_)) => ProfileRef::Name("container".to_string()),
        (None, None) => search.for_command(&args.command),
    };
    let profile = profile::load(&pref, &search)?;
    // Held while the layers are copied: `hutch image rm` waits.
    let lease = match crate::manage::image::lease_for(args.image.as_deref(), &profile, &host) {
        Ok(l) => l,
        Err(crate::manage::image::LeaseError::Profile(e)) => return Err(e.into()),
        Err(e) => return Err(Failure::Line(e.to_string())),
    };
    let request = Request {
        command: args.command,
        command_optional: false,
        image: lease.as_ref().map(|(l, from_cli)| plan::ImageRequest {
            info: l.info().clone(),
            from_cli: *from_cli,
        }),
    };
    let mut plan = plan::build(&profile, &host, &request)?;
    if make_state_dirs(&plan, &host)? {
        plan = plan::build(&profile, &host, &request)?;
    }
    let export = oci::export(&plan, &host).map_err(|e| Failure::Line(e.to_string()))?;
    report(&export);
    let lost: Vec<&str> = export
        .gaps
        .iter()
        .filter(|g| g.kind == GapKind::Lost)
        .map(|g| g.key.as_str())
        .collect();
    if args.strict && !lost.is_empty() {
        return Err(Failure::Line(format!(
            "--strict: the bundle would lose {} (listed above); nothing was written",
            lost.join(", ")
        )));
    }
    let dir = args
        .output
        .unwrap_or_else(|| PathBuf::from(default_dir(&plan.profile)));
    super::bundle::write(&export, &dir).map_err(|e| Failure::Line(e.to_string()))?;
    println!("{}", dir.display());
    Ok(())
}

/// hutch's registry, volume store and image store must stay hidden from a container even
/// if they appear after the export, but the planner masks only those that
/// exist (`hutch run` plans anew at each launch). Where a bind would show
/// one that does not exist yet, it is created now, as hutch creates it on
/// first use; returns whether anything was, so that the plan is made again.
fn make_state_dirs(plan: &plan::Plan, host: &Host) -> Result<bool, Failure> {
    let binds: Vec<&std::path::Path> = plan
        .mounts
        .iter()
        .filter_map(|m| match &m.op {
            plan::MountOp::Bind { src, .. } => Some(src.as_path()),
            _ => None,
        })
        .collect();
    let shown = |dir: &std::path::Path| !dir.exists() && binds.iter().any(|b| dir.starts_with(b));
    let mut made = false;
    if crate::paths::runtime_dir(host).is_some_and(|r| shown(&r)) {
        crate::registry::Registry::open(host, true).map_err(|e| Failure::Line(e.to_string()))?;
        made = true;
    }
    if crate::paths::volume_store(host).is_some_and(|s| shown(&s)) {
        crate::volume::Store::open(host, true).map_err(|e| Failure::Line(e.to_string()))?;
        made = true;
    }
    if let Some(images) = crate::paths::image_store(host).filter(|s| shown(s)) {
        crate::image::ImageStore::open(images).map_err(|e| Failure::Line(e.to_string()))?;
        made = true;
    }
    Ok(made)
}

/// Says on stderr what the bundle does not do as hutch would.
fn report(export: &Export) {
    let mut out = String::new();
    for g in &export.gaps {
        let kind = match g.kind {
            GapKind::Lost => "not in the bundle",
            GapKind::Differs => "differs in the bundle",
        };
        out.push_str(&format!("hutch: {kind}: {}: {}\n", g.key, g.what));
    }
    let _ = std::io::stderr().write_all(crate::diag::sanitize_lines(&out).as_bytes());
}

/// `./NAME-oci` for profile NAME (its last path component, `.toml` left out).
fn default_dir(profile: &str) -> String {
    let base = profile.rsplit('/').next().unwrap_or(profile);
    let base = base.strip_suffix(".toml").unwrap_or(base);
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}-oci", if clean.is_empty() { "hutch" } else { &clean })
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_directories_are_named_after_the_profile() {
        assert_eq!(super::default_dir("cli"), "cli-oci");
        assert_eq!(super::default_dir("base/system"), "system-oci");
        assert_eq!(super::default_dir("/p/my tool.toml"), "my_tool-oci");
    }
}
