//! `hutch learn -o OUT.toml [--profile BASE] [--force] -- COMMAND...`.
//!
//! 1. The base profile (default `default`) is planned for the command.
//! 2. The learning run: the base, plus a layer that shows the rest of the
//!    host read-only (every top-level directory but /proc, /sys, /dev and
//!    /tmp, which stay the sandbox's own; the X servers' socket directory
//!    /tmp/.X11-unix, the home and the runtime directory bound read-only
//!    over the base's) and the
//!    working directory read-write. Nothing of the user's outside the
//!    working directory can change: the home is read-only while learning
//!    (writes fail with EROFS, and are recorded). Its seccomp filter is the
//!    base's learning filter (`plan::seccomp::learning_rules`), served by
//!    `helpers::learn`.
//! 3. The journal becomes a profile extending the base (`draft`), which
//!    must pass the planner as `hutch check` runs it, and is written to
//!    OUT only (an existing OUT only with --force).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::draft::{self, Context};
use crate::cli::LearnArgs;
use crate::diag::{SourceFile, sanitize};
use crate::host::Host;
use crate::plan::{self, Request};
use crate::profile::load::SearchPath;
use crate::profile::{self, Layer, Profile, ProfileError, ProfileRef};

/// The base profile without --profile: the system read-only, the working
/// directory read-only and an empty, read-only home. Whatever the run
/// needs beyond that is added; `cli` would grant the whole working
/// directory read-write from the start.
pub const DEFAULT_BASE: &str = "default";

/// Top-level host directories the learning run leaves to the base: the
/// sandbox has its own.
const OWN: &[&str] = &["proc", "sys", "dev", "tmp", "lost+found"];

/// Where X servers put their sockets (`/tmp/.X11-unix/X0`, ...).
const X11_SOCKETS: &str = "/tmp/.X11-unix";

pub fn learn(args: LearnArgs) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(Failed::Message(m)) => {
            crate::diag::error(m);
            crate::exit::FAILED
        }
        Err(Failed::Profile(e)) => {
            let _ = std::io::stderr().write_all(e.0.render().as_bytes());
            crate::exit::FAILED
        }
    }
}

enum Failed {
    Message(String),
    Profile(ProfileError),
}

impl From<ProfileError> for Failed {
    fn from(e: ProfileError) -> Failed {
        Failed::Profile(e)
    }
}

fn msg(s: impl Into<String>) -> Failed {
    Failed::Message(s.into())
}

fn run(args: LearnArgs) -> Result<i32, Failed> {
    if args.command.is_empty() {
        return Err(msg(
            "no command to learn: give it after `--` (hutch learn -o OUT.toml -- COMMAND ARGS...)",
        ));
    }
    let Some(out) = args.output.clone() else {
        return Err(msg(
            "no output file: give one with -o OUT.toml (hutch learn -o OUT.toml -- COMMAND ARGS...)",
        ));
    };
    let shown_out = sanitize(&out.display().to_string());
    if !args.force && std::fs::symlink_metadata(&out).is_ok() {
        return Err(msg(format!(
            "{shown_out} exists; give another -o, or --force to replace it"
        )));
    }
    if out.is_dir() {
        return Err(msg(format!("{shown_out} is a directory; -o takes a file")));
    }
    let host = Host::current();
    let search = SearchPath::standard(&host);
    let (base_ref, base_name) = match &args.profile {
        None => (
            ProfileRef::Name(DEFAULT_BASE.into()),
            DEFAULT_BASE.to_string(),
        ),
        Some(p) => match ProfileRef::from_cli(p) {
            ProfileRef::Path(path) => {
                let abs = std::path::absolute(&path)
                    .map_err(|e| msg(format!("{}: {e}", sanitize(&path.display().to_string()))))?;
                let name = abs.display().to_string();
                (ProfileRef::Path(abs), name)
            }
            r => (r, p.clone()),
        },
    };
    let base = profile::load(&base_ref, &search)?;
    let request = || Request {
        command: args.command.clone(),
        command_optional: false,
        image: None,
    };
    let base_plan = plan::build(&base, &host, &request())?;
    if base_plan.root.is_some() {
        return Err(msg(format!(
            "{base_name} runs on a root directory or an image; `hutch learn` learns profiles built on the host's own directories"
        )));
    }

    // The learning run.
    let mut learning = profile::load(&base_ref, &search)?;
    learning.layers.push(learning_layer(&host, &base_plan)?);
    let registry = crate::registry::Registry::open(&host, true);
    let mut plan = plan::build(&learning, &host, &request())?;
    if plan.security.seccomp.arch.is_none() {
        return Err(msg(
            "hutch learns through a seccomp filter, which it builds for x86_64 and aarch64 only",
        ));
    }
    plan.security.seccomp.learn = true;
    if args.verbose {
        eprintln!("{}", plan::explain::enforced_summary(&plan));
    }
    let (code, journal) = match crate::launch::learn(&plan, &host, registry, None, args.verbose) {
        Ok(r) => r,
        Err(e) => {
            crate::diag::error(&e);
            return Ok(e.exit_code());
        }
    };

    // hutch's init executes the command: a process whose memory the
    // launcher may not read (it is non-dumpable until then), so its
    // execve is not seen. The program is the one the child finds as it
    // does (`prepare::exec`): a path, or the first in the sandbox's PATH.
    let mut journal = journal;
    if let Some(program) = payload_program(&plan) {
        journal
            .accesses
            .entry((program, crate::helpers::learn::Kind::Exec))
            .or_insert(1);
    }
    // The profile.
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let ctx = Context {
        base: base_name.clone(),
        base_mounts: &base_plan.mounts,
        learn_mounts: &plan.mounts,
        cwd: host.cwd().map(Path::to_path_buf),
        vars: vars(&host),
        command: args
            .command
            .iter()
            .map(|a| sanitize(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" "),
        exists: &exists,
    };
    let text = draft::draft(&journal, &ctx);
    if let Err(e) = check(&text, &shown_out, &base, &host, &request()) {
        let _ = std::io::stderr().write_all(e.0.render().as_bytes());
        return Err(msg(format!(
            "the learnt profile does not pass hutch's own check (a bug in `hutch learn`); nothing was written to {shown_out}"
        )));
    }
    write(&out, &text, args.force).map_err(|e| msg(format!("cannot write {shown_out}: {e}")))?;
    let paths = journal.accesses.len();
    eprintln!("hutch: learnt from {paths} path accesses; wrote {shown_out} (extends {base_name})");
    if code != 0 {
        crate::diag::warning(format_args!(
            "the command exited with status {code}: the profile allows what this failing run did, which may not be all it needs"
        ));
    }
    Ok(code)
}

/// `hutch run --report-denied`: what the run's sandbox refused, on stderr.
pub fn report_denied(plan: &plan::Plan, host: &Host, journal: &crate::helpers::learn::Journal) {
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let ctx = Context {
        base: plan.profile.clone(),
        base_mounts: &plan.mounts,
        learn_mounts: &plan.mounts,
        cwd: host.cwd().map(Path::to_path_buf),
        vars: vars(host),
        command: String::new(),
        exists: &exists,
    };
    let lines = super::report::denied(journal, &plan.mounts, &ctx);
    if lines.is_empty() {
        eprintln!("hutch: denied: nothing the sandbox could be seen to refuse");
    }
    for line in lines {
        eprintln!("hutch: denied: {}", sanitize(&line));
    }
}

/// The program the payload runs, absolute, as the child finds it.
fn payload_program(plan: &plan::Plan) -> Option<PathBuf> {
    let program = Path::new(plan.argv.first()?);
    if program.as_os_str().as_encoded_bytes().contains(&b'/') {
        return Some(crate::helpers::learn::normalize(&plan.cwd.join(program)));
    }
    let path = plan
        .env
        .get("PATH")
        .map_or("/usr/local/bin:/usr/bin:/bin", String::as_str);
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// The variables a learnt profile writes paths with.
fn vars(host: &Host) -> Vec<(&'static str, PathBuf)> {
    let mut v = Vec::new();
    if let Some(h) = host.home() {
        v.push(("HOME", h.to_path_buf()));
    }
    for var in [
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
        "XDG_STATE_HOME",
    ] {
        if let Some(d) = host.xdg_base(var) {
            v.push((var, d));
        }
    }
    v.push(("XDG_RUNTIME_DIR", host.runtime_dir()));
    if let Some(c) = host.cwd() {
        v.push(("CWD", c.to_path_buf()));
    }
    // Only directories that are really there, and not `/` itself.
    v.retain(|(_, d)| d.is_absolute() && d.parent().is_some() && d.is_dir());
    v
}

/// The layer that makes the learning run permissive: the host read-only
/// where the base shows nothing, the working directory read-write.
fn learning_layer(host: &Host, base_plan: &plan::Plan) -> Result<Layer, Failed> {
    let mut text = String::from("version = 1\nworkdir = \"read-write\"\n");
    let mut add = |path: &Path, keep_symlink: bool| {
        let Some(s) = path.to_str() else { return };
        let q = toml::Value::String(s.to_string()).to_string();
        text.push_str(&format!(
            "[[mount]]\ntype = \"ro-bind\"\nsrc = {q}\ndst = {q}\noptional = true\n"
        ));
        if keep_symlink {
            text.push_str("keep_symlink = true\n");
        }
    };
    let bound = |p: &Path| base_plan.mounts.iter().any(|m| m.op.dst() == p);
    let mut top: Vec<PathBuf> = std::fs::read_dir("/")
        .map_err(|e| msg(format!("cannot list /: {e}")))?
        .flatten()
        .filter(|e| !OWN.contains(&e.file_name().to_string_lossy().as_ref()))
        .map(|e| e.path())
        .collect();
    top.sort();
    for p in top {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if bound(&p) || !(meta.is_dir() || meta.file_type().is_symlink()) {
            continue;
        }
        add(&p, meta.file_type().is_symlink());
    }
    // The X server's sockets: /tmp stays the sandbox's own, but a display
    // is reached through this directory of the host's /tmp.
    if Path::new(X11_SOCKETS).is_dir() {
        add(Path::new(X11_SOCKETS), false);
    }
    if let Some(h) = host.home() {
        add(h, false);
    }
    let runtime = host.runtime_dir();
    if runtime.is_dir() {
        add(&runtime, false);
    }
    let file = SourceFile::new("<hutch learn>", None, text);
    let raw = profile::parse(&file)?;
    Ok(Layer {
        file,
        raw,
        is_override: false,
    })
}

/// Plans the learnt profile as `hutch check` would: its text as a layer
/// over the base it extends.
fn check(
    text: &str,
    name: &str,
    base: &Profile,
    host: &Host,
    request: &Request,
) -> Result<plan::Plan, ProfileError> {
    let file = SourceFile::new(name, None, text);
    let raw = profile::parse(&file)?;
    let mut layers: Vec<Layer> = base
        .layers
        .iter()
        .map(|l| Layer {
            file: l.file.clone(),
            raw: l.raw.clone(),
            is_override: l.is_override,
        })
        .collect();
    layers.push(Layer {
        file,
        raw,
        is_override: false,
    });
    let profile = Profile {
        name: name.to_string(),
        layers,
    };
    plan::build(&profile, host, request)
}

/// Writes `text` to `path` and nowhere else: a new file only, unless
/// `force` (then the file is replaced in place).
fn write(path: &Path, text: &str, force: bool) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(!force)
        .create(force)
        .truncate(force)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}
