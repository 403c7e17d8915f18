//! What each subcommand does: glue between the CLI, the pure stages and the
//! launcher. No system calls of its own beyond reading profiles.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::cli::{Cli, Command, RunArgs};
use crate::host::Host;
use crate::launch::{self, EXIT_LAUNCH_FAILED};
use crate::plan::{self, Request};
use crate::profile::load::{BUILTIN, Found, SearchPath, valid_name};
use crate::profile::{self, ProfileError, ProfileRef};

/// Runs hutch with these arguments (the program name first); returns the
/// exit code.
pub fn main(args: Vec<std::ffi::OsString>) -> i32 {
    ensure_stdio_open();
    if let Some(run_args) = crate::cli::fast_run_args(&args) {
        return run(run_args);
    }
    let cli = Cli::parse_from(args);
    match cli.command {
        Command::Run(args) => run(args),
        Command::Check { profiles } => check(&profiles),
        Command::Profiles { json } => profiles(json),
        Command::Doctor { json } => doctor(json),
        Command::Image { command } => crate::image::command::run(command),
        Command::Ps { json } => crate::manage::ps(json),
        Command::Exec(args) => crate::manage::exec(args),
        Command::Stop { name, timeout } => crate::manage::stop(&name, timeout),
        Command::Volume { command } => crate::manage::volume(command),
        Command::Export {
            command: crate::cli::ExportCommand::Oci(args),
        } => crate::export::command::oci(args),
        Command::Completions { shell } => print(shell.script()),
        Command::Man { page } => crate::manpages::run(page.as_deref()),
        Command::Complete { words } => crate::completions::run(&words),
        Command::Schema => print(
            &(serde_json::to_string_pretty(&profile::jsonschema::generate()).unwrap_or_default()
                + "\n"),
        ),
    }
}

/// If hutch was started with 0, 1 or 2 closed, the next descriptor it
/// opens would take that number and become the payload's stdin, stdout or
/// stderr: open /dev/null there instead.
fn ensure_stdio_open() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: fds is a valid array of three pollfds; zero timeout.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } <= 0 {
        return;
    }
    for p in fds {
        if p.revents & libc::POLLNVAL != 0 {
            // SAFETY: opening /dev/null; the lowest free number is p.fd.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

/// Writes `text` to stdout; exit status 0.
fn print(text: &str) -> i32 {
    let _ = std::io::stdout().write_all(text.as_bytes());
    0
}

fn print_profile_error(e: &ProfileError) {
    let _ = std::io::stderr().write_all(e.0.render().as_bytes());
}

fn run(args: RunArgs) -> i32 {
    let host = Host::current();
    let search = SearchPath::standard(&host);
    let pref = match (&args.profile, &args.image) {
        (Some(p), _) => ProfileRef::from_cli(p),
        (None, Some(_)) => ProfileRef::Name("container".to_string()),
        (None, None) => auto_profile(&args.command, &search),
    };
    let profile = match profile::load(&pref, &search) {
        Ok(p) => p,
        Err(e) => {
            print_profile_error(&e);
            return EXIT_LAUNCH_FAILED;
        }
    };
    // Held until the sandbox exits: `hutch image rm` refuses meanwhile.
    let lease = match crate::image::command::lease_for(args.image.as_deref(), &profile) {
        Ok(l) => l,
        Err(crate::image::command::LeaseError::Profile(e)) => {
            print_profile_error(&e);
            return EXIT_LAUNCH_FAILED;
        }
        Err(e) => {
            eprintln!("hutch: {}", crate::diag::sanitize(&e.to_string()));
            return EXIT_LAUNCH_FAILED;
        }
    };
    let request = Request {
        command: args.command,
        command_optional: false,
        image: lease.as_ref().map(|(l, from_cli)| plan::ImageRequest {
            info: l.info().clone(),
            from_cli: *from_cli,
        }),
    };
    // The registry must exist before planning, so that a bind of a directory
    // above it (cli started in /tmp) is planned with a mask over it; the
    // launch uses it, and reports any problem with it.
    let registry = crate::registry::Registry::open(&host, true);
    let plan = match plan::build(&profile, &host, &request) {
        Ok(p) => p,
        Err(e) => {
            print_profile_error(&e);
            return EXIT_LAUNCH_FAILED;
        }
    };
    if args.explain {
        let out = if args.json {
            serde_json::to_string_pretty(&plan).unwrap_or_default() + "\n"
        } else {
            plan::explain::render(&plan)
        };
        let _ = std::io::stdout().write_all(out.as_bytes());
        return 0;
    }
    if args.verbose {
        eprintln!("{}", plan::explain::enforced_summary(&plan));
    } else {
        for n in &plan.security.landlock.not_enforced {
            eprintln!("hutch: warning: not enforced: {n}");
        }
        let desktop = plan.desktop.iter().flat_map(|d| &d.skipped);
        for s in desktop.chain(plan.devices.iter().flat_map(|d| &d.skipped)) {
            eprintln!(
                "hutch: warning: skipped (best-effort): {}",
                crate::diag::sanitize(s)
            );
        }
    }
    match launch::run(&plan, &host, registry, args.name.as_deref(), args.verbose) {
        Ok(code) => code,
        Err(e) => {
            match failure_origin(&plan, &e) {
                Some(from) => eprintln!("hutch: {from}: {e}"),
                None => eprintln!("hutch: {e}"),
            }
            e.exit_code()
        }
    }
}

/// The profile entry a failed setup step was about, as `file:line:col`.
fn failure_origin(plan: &plan::Plan, e: &launch::LaunchError) -> Option<String> {
    let launch::LaunchError::Setup(f) = e else {
        return None;
    };
    if matches!(
        f.step,
        launch::report::Step::RootOverlay | launch::report::Step::OpenWritable
    ) {
        return plan.root.as_ref().map(|r| r.from.clone());
    }
    let arg = Path::new(&f.arg);
    plan.mounts
        .iter()
        .find(|m| {
            m.op.dst() == arg || matches!(&m.op, plan::MountOp::Bind { src, .. } if src == arg)
        })
        .map(|m| m.from.clone())
}

/// The profile named after the command, if there is one, else `default`.
pub(crate) fn auto_profile(command: &[String], search: &SearchPath) -> ProfileRef {
    let base = command
        .first()
        .and_then(|c| Path::new(c).file_name())
        .and_then(|n| n.to_str());
    match base {
        Some(name) if valid_name(name) && search.find(name).is_some() => {
            ProfileRef::Name(name.to_string())
        }
        _ => ProfileRef::Name("default".to_string()),
    }
}

fn check(profiles: &[String]) -> i32 {
    let host = Host::current();
    let search = SearchPath::standard(&host);
    let mut failed = 0;
    for given in profiles {
        let result = profile::load(&ProfileRef::from_cli(given), &search).and_then(|p| {
            let request = Request {
                command: Vec::new(),
                command_optional: true,
                image: None,
            };
            plan::build(&p, &host, &request)
        });
        match result {
            Ok(plan) => println!(
                "{given}: ok ({})",
                crate::diag::sanitize(&plan::explain::profile_files(&plan))
            ),
            Err(e) => {
                failed += 1;
                print_profile_error(&e);
            }
        }
    }
    if failed > 0 { 1 } else { 0 }
}

#[derive(serde::Serialize)]
struct Listed {
    name: String,
    source: String,
    description: Option<String>,
    /// Shadowed by a profile of the same name earlier in the search path.
    shadowed: bool,
    /// `.local.toml` overrides that apply to it.
    overrides: Vec<String>,
}

fn profiles(json: bool) -> i32 {
    let host = Host::current();
    let search = SearchPath::standard(&host);
    let mut found: Vec<(String, Found)> = Vec::new();
    for dir in &search.dirs {
        let mut names = Vec::new();
        collect_profiles(dir, dir, 0, &mut names);
        names.sort();
        found.extend(names.into_iter().map(|(n, p)| (n, Found::File(p))));
    }
    found.extend(
        BUILTIN
            .iter()
            .map(|(n, t)| (n.to_string(), Found::Builtin(n, t))),
    );
    let mut listed = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, f) in found {
        let (source, text) = match &f {
            Found::File(p) => (p.display().to_string(), std::fs::read_to_string(p).ok()),
            Found::Builtin(n, t) => (format!("builtin:{n}"), Some(t.to_string())),
        };
        let description = text
            .and_then(|t| toml::from_str::<profile::RawProfile>(&t).ok())
            .and_then(|r| r.description.map(|d| d.into_inner()));
        let overrides = search
            .local_dirs
            .iter()
            .map(|d| d.join(format!("{name}.local.toml")))
            .filter(|p| p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        listed.push(Listed {
            shadowed: !seen.insert(name.clone()),
            name,
            source,
            description,
            overrides,
        });
    }
    let mut out = String::new();
    if json {
        out = serde_json::to_string_pretty(&listed).unwrap_or_default() + "\n";
    } else {
        let width = listed
            .iter()
            .map(|l| l.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        for l in &listed {
            let mut line = format!("{:width$}  {}", l.name, l.source);
            if l.shadowed {
                line.push_str("  (shadowed)");
            }
            for o in &l.overrides {
                line.push_str(&format!("  + {o}"));
            }
            if let Some(d) = &l.description {
                line.push_str(&format!("\n{:width$}    {}", "", d));
            }
            out.push_str(&crate::diag::sanitize(&line));
            out.push('\n');
        }
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
    0
}

/// The profiles in `dir`, as (name, path), three levels deep at most.
pub(crate) fn collect_profiles(
    base: &Path,
    dir: &Path,
    depth: usize,
    out: &mut Vec<(String, PathBuf)>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() && depth < 3 {
            collect_profiles(base, &path, depth + 1, out);
            continue;
        }
        let Some(rel) = path.strip_prefix(base).ok().and_then(|r| r.to_str()) else {
            continue;
        };
        let Some(name) = rel.strip_suffix(".toml") else {
            continue;
        };
        if name.ends_with(".local") || !valid_name(name) {
            continue;
        }
        out.push((name.to_string(), path.clone()));
    }
}

fn doctor(json: bool) -> i32 {
    let host = Host::current();
    let checks = crate::doctor::run_checks(&host);
    let out = if json {
        serde_json::to_string_pretty(&checks).unwrap_or_default() + "\n"
    } else {
        crate::doctor::render(&checks)
    };
    let _ = std::io::stdout().write_all(out.as_bytes());
    if checks
        .iter()
        .any(|c| c.status == crate::doctor::Status::Fail)
    {
        1
    } else {
        0
    }
}
