//! What each subcommand does: glue between the CLI, the pure stages and the
//! launcher. No system calls of its own beyond reading profiles.

use std::io::Write;
use std::path::Path;

use clap::Parser;

use crate::cli::{Cli, Command, RunArgs};
use crate::host::Host;
use crate::launch::{self, EXIT_LAUNCH_FAILED};
use crate::plan::{self, Request};
use crate::profile::load::{BUILTIN, Found, SearchPath, profiles_in};
use crate::profile::{self, ProfileError, ProfileRef};

/// Runs hutch with these arguments (the program name first); returns the
/// exit code.
pub fn main(args: Vec<std::ffi::OsString>) -> i32 {
    crate::sys::ensure_stdio_open();
    if crate::shim::dispatch::shim_name(&args).is_some() {
        let path = crate::shim::lookup::current_path();
        return match crate::shim::dispatch::run_args(args, &Host::current(), &path) {
            Ok(run_args) => run(run_args),
            Err(e) => {
                eprintln!("hutch: {}", crate::diag::sanitize(&e.to_string()));
                e.exit_code()
            }
        };
    }
    if let Some(run_args) = crate::cli::fast_run_args(&args) {
        return run(run_args);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return command_line_error(&e),
    };
    match cli.command {
        Command::Run(args) => run(args),
        Command::Check { profiles } => check(&profiles),
        Command::Profiles { json } => profiles(json),
        Command::Doctor { json } => doctor(json),
        Command::Image { command } => crate::manage::image::run(command),
        Command::Ps { json } => crate::manage::ps(json),
        Command::Exec(args) => crate::manage::exec(args),
        Command::Stop { name, timeout } => crate::manage::stop(&name, timeout),
        Command::Volume { command } => crate::manage::volume(command),
        Command::Shim { command } => crate::shim::run(command),
        Command::Export {
            command: crate::cli::ExportCommand::Oci(args),
        } => crate::export::command::oci(args),
        Command::Import {
            command: crate::cli::ImportCommand::Firejail(args),
        } => crate::import::command::firejail(args),
        Command::Learn(args) => crate::learn::command::learn(args),
        Command::Completions { shell } => print(shell.script()),
        Command::Man { page } => crate::manpages::run(page.as_deref()),
        Command::Complete { words } => crate::completions::run(&words),
        Command::Schema => print(
            &(serde_json::to_string_pretty(&profile::jsonschema::generate()).unwrap_or_default()
                + "\n"),
        ),
    }
}

/// What clap says about the command line: help and the version on stdout
/// (status 0); a command line it cannot parse on stderr, its control
/// characters escaped, with hutch's status for failures: 2 would be taken
/// for a payload's status by a caller of `run` or `exec`.
fn command_line_error(e: &clap::Error) -> i32 {
    if !e.use_stderr() {
        let _ = e.print();
        return crate::exit::OK;
    }
    let text = crate::diag::sanitize_lines(&e.render().to_string());
    let _ = std::io::stderr().write_all(text.as_bytes());
    crate::exit::FAILED
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
        (None, None) => search.for_command(&args.command),
    };
    let mut profile = match profile::load(&pref, &search) {
        Ok(p) => p,
        Err(e) => {
            print_profile_error(&e);
            return EXIT_LAUNCH_FAILED;
        }
    };
    let additions = profile::adhoc::Additions {
        bind: args.bind,
        ro_bind: args.ro_bind,
        env: args.env,
        network: args.network,
        publish: args.publish,
    };
    match profile::adhoc::layer(&additions, host.cwd()) {
        Ok(Some(layer)) => profile.layers.push(layer),
        Ok(None) => {}
        Err(e) => {
            print_profile_error(&e);
            return EXIT_LAUNCH_FAILED;
        }
    }
    // Held until the sandbox exits: `hutch image rm` refuses meanwhile.
    let lease = match crate::manage::image::lease_for(args.image.as_deref(), &profile, &host) {
        Ok(l) => l,
        Err(crate::manage::image::LeaseError::Profile(e)) => {
            print_profile_error(&e);
            return EXIT_LAUNCH_FAILED;
        }
        Err(e) => {
            crate::diag::error(&e);
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
    let mut plan = match plan::build(&profile, &host, &request) {
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
        for s in &plan.skipped {
            eprintln!("hutch: skipped: {}", crate::diag::sanitize(s));
        }
    } else {
        for n in &plan.security.landlock.not_enforced {
            crate::diag::warning(format_args!("not enforced: {n}"));
        }
        if let Some(fallback) = plan::network::warnings(&plan.network)
            .into_iter()
            .find(|w| w.starts_with("not enforced"))
        {
            eprintln!("hutch: warning: {fallback}");
        }
        let desktop = plan.desktop.iter().flat_map(|d| &d.skipped);
        for s in desktop.chain(plan.devices.iter().flat_map(|d| &d.skipped)) {
            eprintln!(
                "hutch: warning: skipped (best-effort): {}",
                crate::diag::sanitize(s)
            );
        }
    }
    if args.report_denied {
        if plan.security.seccomp.arch.is_none() {
            crate::diag::error(
                "--report-denied watches through a seccomp filter, which hutch builds for x86_64 and aarch64 only",
            );
            return EXIT_LAUNCH_FAILED;
        }
        plan.security.seccomp.learn = true;
    }
    let launched = if args.report_denied {
        launch::learn(&plan, &host, registry, args.name.as_deref(), args.verbose).map(
            |(code, journal)| {
                crate::learn::command::report_denied(&plan, &host, &journal);
                code
            },
        )
    } else {
        launch::run(&plan, &host, registry, args.name.as_deref(), args.verbose)
    };
    match launched {
        Ok(code) => code,
        Err(e) => {
            match failure_origin(&plan, &e) {
                Some(from) => crate::diag::error(format_args!("{from}: {e}")),
                None => crate::diag::error(&e),
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
        crate::prepare::report::Step::RootOverlay | crate::prepare::report::Step::OpenWritable
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
    if failed > 0 {
        crate::exit::NO
    } else {
        crate::exit::OK
    }
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
    /// For a profile named after a program: the program `PATH` finds
    /// (hutch's shims left out), and its shim. Absent for hutch's bases
    /// (`default`, `cli`, `container`) and for names with a `/`.
    #[serde(flatten)]
    program: Option<crate::shim::ProgramStatus>,
}

fn profiles(json: bool) -> i32 {
    let host = Host::current();
    let search = SearchPath::standard(&host);
    let mut found: Vec<(String, Found)> = Vec::new();
    for dir in &search.dirs {
        let mut names = profiles_in(dir);
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
    let own = crate::shim::lookup::own_id().ok();
    let path = crate::shim::lookup::current_path();
    for (name, f) in found {
        let (source, text) = match &f {
            Found::File(p) => (
                p.display().to_string(),
                profile::load::read_profile_file(p).ok(),
            ),
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
        let program = (!name.contains('/') && !crate::shim::GENERIC_PROFILES.contains(&&*name))
            .then(|| crate::shim::program_status(&name, &host, own, &path));
        listed.push(Listed {
            shadowed: !seen.insert(name.clone()),
            name,
            source,
            description,
            overrides,
            program,
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
            if let Some(p) = &l.program {
                line.push_str(&format!("  [{}]", program_text(p)));
            }
            out.push_str(&crate::diag::sanitize(&line));
            out.push('\n');
            if let Some(d) = &l.description {
                let d = crate::diag::sanitize(d);
                out.push_str(&format!("{:width$}    {d}\n", ""));
            }
        }
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
    0
}

/// `installed: /usr/bin/jq; shim: active`.
fn program_text(p: &crate::shim::ProgramStatus) -> String {
    use crate::shim::ShimState;
    let installed = match &p.installed {
        Some(path) => format!("installed: {}", path.display()),
        None => "not installed".to_string(),
    };
    let shim = match &p.shim {
        None => "no shim".to_string(),
        Some(s) => match (s.state, &s.shadowed_by) {
            (ShimState::Shadowed, Some(by)) => {
                format!("shim {}: shadowed by {}", s.path.display(), by.display())
            }
            (state, _) => format!("shim {}: {}", s.path.display(), state.describe()),
        },
    };
    format!("{installed}; {shim}")
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
        crate::exit::NO
    } else {
        crate::exit::OK
    }
}
