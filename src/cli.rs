//! Command-line interface.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "hutch",
    version,
    about = "Run a program in a sandbox described by a TOML profile, without setuid or root",
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a sandbox.
    ///
    /// Without --profile, the profile named after the command's basename is
    /// used if one exists, else `default`. Exit status: the payload's; 128+N if
    /// it was killed by signal N; 125 if hutch itself failed; 126/127 if the
    /// command could not be executed or was not found inside the sandbox.
    Run(RunArgs),
    /// Check profiles (and everything they extend) without running anything.
    ///
    /// Each profile is given as for `run --profile`: a name, looked up in
    /// the search path (its `.local.toml` overrides included), or a path
    /// (anything with a `/` or ending in `.toml`). Exit status: 0 if every
    /// profile is valid, 1 if one is not.
    Check {
        /// Profile names or paths to .toml files.
        #[arg(required = true, value_name = "NAME|PATH")]
        profiles: Vec<String>,
    },
    /// Check what this machine's kernel lets hutch do (by trying it), and
    /// what each shipped profile would lose here.
    Doctor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the profiles hutch can find, and where.
    Profiles {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the running sandboxes (name, pid, profile, uptime, command).
    ///
    /// Records of sandboxes whose hutch is gone (killed) are removed.
    Ps {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a running sandbox, confined exactly like its
    /// payload (same namespaces, capabilities, no_new_privs, rlimits,
    /// Landlock rules and seccomp filter).
    ///
    /// Exit status as for `run`: the command's; 128+N if killed by signal N;
    /// 125 if hutch failed; 126/127 if the command could not be executed or
    /// was not found inside the sandbox.
    Exec(ExecArgs),
    /// Stop a running sandbox: SIGTERM to its hutch (which passes it to the
    /// payload), then SIGKILL if it has not ended after the timeout.
    Stop {
        /// The sandbox's name (see `hutch ps`).
        name: String,
        /// Seconds to wait after SIGTERM before sending SIGKILL.
        #[arg(long, value_name = "SECS", default_value_t = 10.0)]
        timeout: f64,
    },
    /// Manage volumes: directories that outlive the sandboxes using them.
    Volume {
        #[command(subcommand)]
        command: VolumeCommand,
    },
    /// Manage the OCI images that `hutch run --image` uses as a root.
    ///
    /// Images live in $XDG_DATA_HOME/hutch/images (default
    /// ~/.local/share/hutch/images), one store per user; nothing is
    /// downloaded: export images with `docker save`, `podman save`,
    /// `skopeo copy ... oci-archive:FILE` or `oci:DIR` and import the file.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Put hutch in front of installed programs: a shim named after a
    /// program runs it in its profile, and its menu entries do too.
    ///
    /// A shim is a symlink NAME pointing to hutch in ~/.local/bin (with --system,
    /// /usr/local/bin). Started as NAME, hutch runs the program NAME that
    /// PATH finds after every shim of hutch (told apart by the file they
    /// lead to, not by name) in profile NAME (or the one given at install),
    /// with every argument untouched: `jq . d.json` is `hutch run --profile
    /// jq -- /usr/bin/jq . d.json`. What `install` adds is recorded, and
    /// `remove` takes away exactly that.
    Shim {
        #[command(subcommand)]
        command: ShimCommand,
    },
    /// Print the JSON Schema of the profile format, for editors.
    ///
    /// Packages install it as /usr/share/hutch/hutch-profile.schema.json.
    /// Editors using taplo ("Even Better TOML") validate a profile against it
    /// and describe each key when the profile's first line is
    /// `#:schema /usr/share/hutch/hutch-profile.schema.json`.
    Schema,
    /// Print the completion script of a shell.
    ///
    /// Packages install them. After `cargo install`, for example:
    /// `hutch completions bash > ~/.local/share/bash-completion/completions/hutch`,
    /// `hutch completions zsh > ~/.zfunc/_hutch` (with ~/.zfunc in fpath), or
    /// `hutch completions fish > ~/.config/fish/completions/hutch.fish`.
    /// They complete subcommands, options, profile names from the search path,
    /// image and volume names, and the names of running sandboxes.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print a manual page (roff), or list them.
    ///
    /// For `cargo install`, which installs no pages: `hutch man hutch-profile |
    /// man -l -`. Packages install them where `man` finds them.
    Man {
        /// The page: hutch, hutch-run, ..., hutch-profile. Without it, the list.
        page: Option<String>,
    },
    /// Complete a command line (what the completion scripts call).
    #[command(name = "__complete", hide = true)]
    Complete {
        /// The words of the command line up to the cursor, the program first
        /// and the word being completed last.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
    },
    /// Write a profile's sandbox in another format, to run it elsewhere.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Write a profile by watching a command run: the tightest profile,
    /// extending a base, that lets that run succeed.
    ///
    /// The command runs in the base profile's confinement with the rest of
    /// the host read-only (the home too: a write there fails and is not
    /// granted) and the working directory read-write. hutch records the
    /// paths it opens, executes, creates, removes and the unix sockets it
    /// connects to, through seccomp user notification (no privileges), and
    /// writes OUT.toml: read-only binds for what it read outside the base,
    /// read-write binds for what it wrote in the working directory, paths
    /// written with ${HOME}, ${CWD} and the XDG variables. Exit status: the
    /// command's; 125 if hutch failed (nothing is written).
    Learn(LearnArgs),
    /// Write a hutch profile from another sandbox's profile.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
}

#[derive(Debug, Args)]
pub struct LearnArgs {
    /// Write the profile to this file (required; never anywhere else).
    #[arg(short, long, value_name = "OUT.toml")]
    pub output: Option<PathBuf>,
    /// The profile the learnt one extends, and whose confinement the
    /// learning run keeps (default: `default`).
    #[arg(short, long, value_name = "NAME|PATH")]
    pub profile: Option<String>,
    /// Replace OUT.toml if it exists.
    #[arg(long)]
    pub force: bool,
    /// Say what is enforced during the learning run.
    #[arg(short, long)]
    pub verbose: bool,
    /// The command and its arguments (put `--` before it).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND",
        value_parser = clap::builder::OsStringValueParser::new()
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Translate a firejail profile into one self-contained hutch profile.
    ///
    /// The profile is read as firejail 0.9.72 reads it (includes from
    /// ~/.config/firejail, then /etc/firejail; `.local` overrides; `ignore`;
    /// `?CONDITION:` lines from firejail.config; macros), and each directive
    /// is translated by meaning. The result binds nothing firejail hides and
    /// passes `hutch check`; what hutch grants less of, cannot apply, or
    /// refuses as root-only is listed on standard error (every line with
    /// --report). Exit status: 0, or 1 if the profile cannot be read
    /// (nothing is written).
    Firejail(ImportFirejailArgs),
}

#[derive(Debug, Args)]
pub struct ImportFirejailArgs {
    /// A firejail profile: a name (`firefox`, looked up in
    /// ~/.config/firejail, then /etc/firejail) or a path to a file.
    #[arg(value_name = "NAME|FILE")]
    pub profile: String,
    /// Write the hutch profile to this file (default: standard output).
    #[arg(short, long, value_name = "OUT.toml")]
    pub output: Option<PathBuf>,
    /// Say on standard error what became of every line of the firejail
    /// profile: translated, stricter, not translatable or root-only, and why.
    #[arg(long)]
    pub report: bool,
    /// As --report, and list the files read.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum ShimCommand {
    /// Install shims of programs, and overrides of their menu entries.
    ///
    /// Each shim needs a profile: the one named after the program, or
    /// --profile. A file of that name in the shim directory that is not a
    /// shim of hutch is never replaced. Installing again changes nothing,
    /// or brings the menu entries up to date with the programs' own.
    /// Exit status: 0, or 1 if a program could not be shimmed (the others
    /// are).
    #[command(after_long_help = crate::program_kinds::help())]
    Install(ShimInstallArgs),
    /// List the shims `install` made (yours and the system's), and whether
    /// each is what PATH finds first.
    #[command(alias = "ls")]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove shims and their menu-entry overrides, leaving what was there
    /// before they were installed.
    ///
    /// A shim or override changed since it was installed is left in place
    /// (and said so). Exit status: 0, or 1 if a name has no shim.
    #[command(alias = "rm")]
    Remove(ShimRemoveArgs),
}

#[derive(Debug, Args)]
pub struct ShimInstallArgs {
    /// The programs (names, as typed in a shell).
    #[arg(
        required_unless_present = "all",
        conflicts_with = "all",
        value_name = "NAME"
    )]
    pub names: Vec<String>,
    /// Every installed program that has a profile, except shells and
    /// compilers (and, with --system, interpreters and the programs the
    /// system's own scripts run): `hutch shim install --help` lists them.
    #[arg(long)]
    pub all: bool,
    /// For every user: shims in /usr/local/bin, overrides in
    /// /usr/local/share/applications, the record in /var/lib/hutch (root
    /// only).
    #[arg(long)]
    pub system: bool,
    /// The profile the programs run in (default: the profile named after
    /// each program).
    #[arg(short, long, value_name = "NAME", conflicts_with = "all")]
    pub profile: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShimRemoveArgs {
    /// The programs whose shims go.
    #[arg(
        required_unless_present = "all",
        conflicts_with = "all",
        value_name = "NAME"
    )]
    pub names: Vec<String>,
    /// Every shim `install` made (in this scope).
    #[arg(long)]
    pub all: bool,
    /// The system's shims (root only).
    #[arg(long)]
    pub system: bool,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write an OCI runtime bundle (config.json, rootfs/, seccomp.json) of
    /// the sandbox `hutch run` would start, for crun, runc, Podman and
    /// Kubernetes.
    ///
    /// What the bundle cannot express (Landlock rules, hutch's init,
    /// volumes, ...) is listed on stderr and recorded in the bundle's
    /// `org.hutch.*` annotations. With an image, its layers are copied into
    /// rootfs/. Exit status: 0, or 125 if hutch failed (nothing is written).
    Oci(ExportOciArgs),
}

#[derive(Debug, Args)]
pub struct ExportOciArgs {
    /// Profile name (looked up in the search path) or path to a .toml file.
    /// Default with --image: `container`.
    #[arg(short, long, value_name = "NAME|PATH")]
    pub profile: Option<String>,
    /// Use an imported image as the root (`hutch image list`), as `run` does.
    #[arg(long, value_name = "NAME")]
    pub image: Option<String>,
    /// The bundle's directory; it must not exist or be empty (default:
    /// ./PROFILE-oci).
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Refuse (write nothing) if the bundle would lose anything hutch
    /// enforces or does.
    #[arg(long)]
    pub strict: bool,
    /// The command and its arguments (put `--` before it if it starts with `-`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND",
        value_parser = clap::builder::OsStringValueParser::new()
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The sandbox's name (see `hutch ps`).
    pub name: String,
    /// The command and its arguments (put `--` before it if it starts with `-`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND",
        value_parser = clap::builder::OsStringValueParser::new()
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// List the volumes, and the tmp volumes of running sandboxes.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a volume: path, mode, disk usage, the sandboxes using it.
    Inspect {
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the host path of a volume.
    Path { name: String },
    /// Delete a volume. Refused while a sandbox uses it; a volume that is not
    /// empty needs --force.
    Rm {
        name: String,
        /// Delete it even if it is not empty, with everything in it.
        #[arg(long)]
        force: bool,
    },
}

/// A size for `--max-size`: `512M`, `2G`, `1048576`.
fn parse_size(s: &str) -> Result<u64, String> {
    crate::profile::schema::Size::parse(s)
        .filter(|&n| n > 0)
        .ok_or_else(|| "a size is a positive number of bytes, or one with a suffix K, M, G or T (powers of 1024), e.g. 512M".to_string())
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import an OCI image layout (directory or tar) or a `docker save` archive.
    Import {
        /// The image layout directory or archive.
        #[arg(value_name = "FILE|DIR")]
        source: PathBuf,
        /// The name to store it under (default: the name the source carries).
        #[arg(long, value_name = "NAME")]
        tag: Option<String>,
        /// The most its layers may unpack to (bytes, or with a suffix K, M,
        /// G or T: powers of 1024); the import stops beyond it and leaves
        /// nothing behind. Default: 32G.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
    },
    /// List the imported images.
    #[command(alias = "ls")]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print everything known about an image, as JSON.
    Inspect {
        /// The image name (`:latest` may be left out).
        name: String,
    },
    /// Remove images (refused while a sandbox uses one).
    #[command(alias = "remove")]
    Rm {
        /// Image names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Profile name (looked up in the search path) or path to a .toml file.
    /// Default with --image: `container`.
    #[arg(short, long, value_name = "NAME|PATH")]
    pub profile: Option<String>,
    /// Use an imported image as the root (`hutch image list`); its
    /// Entrypoint, Cmd, Env, WorkingDir and User are the defaults, and the
    /// COMMAND replaces its Cmd.
    #[arg(long, value_name = "NAME")]
    pub image: Option<String>,
    /// Print what would be done (the resolved plan) instead of running.
    #[arg(long)]
    pub explain: bool,
    /// With --explain: print the plan as JSON.
    #[arg(long, requires = "explain")]
    pub json: bool,
    /// Say on stderr which profile files are merged and what this launch
    /// enforces (and what it cannot).
    #[arg(short, long)]
    pub verbose: bool,
    /// Name of the sandbox, for `hutch ps`, `exec` and `stop` (default: the
    /// profile's name and a short random id).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Bind a host path read-write for this run, at DST (default: its own
    /// path); checked like a `[[mount]]` entry, `[protect]` applies.
    /// Repeatable.
    #[arg(long, value_name = "SRC[:DST]")]
    pub bind: Vec<String>,
    /// Bind a host path read-only for this run, at DST (default: its own
    /// path). Repeatable.
    #[arg(long, value_name = "SRC[:DST]")]
    pub ro_bind: Vec<String>,
    /// Set an environment variable for this run (the value is taken
    /// literally). Repeatable.
    #[arg(long, value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// The sandbox's network for this run, like `[network] mode`: `none`
    /// (loopback only), `user` (a private network connected by pasta) or
    /// `host` (the host's own, warned about).
    #[arg(long, value_name = "none|host|user")]
    pub network: Option<String>,
    /// Forward a host port into the sandbox for this run, like an entry of
    /// `[network] publish` (`[ADDR:]HOST:SANDBOX[/tcp|udp]`, loopback unless
    /// an address is given); needs user mode. Repeatable.
    #[arg(long, value_name = "SPEC")]
    pub publish: Vec<String>,
    /// After the run, say on stderr which paths, sockets and system calls
    /// the sandbox refused, each with the profile entry that would allow
    /// it (watched as `hutch learn` watches; slower).
    #[arg(long)]
    pub report_denied: bool,
    /// The command and its arguments (put `--` before it if it starts with `-`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND",
        value_parser = clap::builder::OsStringValueParser::new()
    )]
    pub command: Vec<OsString>,
}

/// Parses `hutch run ...` without building clap's command tree, which costs
/// about a tenth of a millisecond on every launch. Only arguments it fully
/// understands are taken; anything else (help, errors, unknown or repeated
/// options, combined short flags, an option value that is not UTF-8)
/// returns `None` and clap parses instead, so the two can never disagree on
/// an accepted command line (see the tests). The command is taken as bytes.
pub fn fast_run_args(args: &[OsString]) -> Option<RunArgs> {
    if args.get(1)?.as_bytes() != b"run" {
        return None;
    }
    let rest = &args[2..];
    let mut r = RunArgs {
        profile: None,
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
        command: Vec::new(),
    };
    let mut i = 0;
    while i < rest.len() {
        let arg = rest[i].as_bytes();
        let (name, inline) = match arg.iter().position(|&b| b == b'=') {
            Some(at) if arg.starts_with(b"--") => (&arg[..at], Some(&arg[at + 1..])),
            _ => (arg, None),
        };
        let value_slot = match name {
            b"-p" | b"--profile" => Some(&mut r.profile),
            b"--image" => Some(&mut r.image),
            b"--name" => Some(&mut r.name),
            _ => None,
        };
        if let Some(slot) = value_slot {
            if slot.is_some() {
                return None;
            }
            let value = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    rest.get(i)?.as_bytes()
                }
            };
            // clap reads a value that looks like an option as a mistake.
            if inline.is_none() && value.starts_with(b"-") {
                return None;
            }
            *slot = Some(std::str::from_utf8(value).ok()?.to_string());
            i += 1;
            continue;
        }
        if inline.is_some() {
            return None;
        }
        let flag = match arg {
            b"--explain" => &mut r.explain,
            b"--json" => &mut r.json,
            b"-v" | b"--verbose" => &mut r.verbose,
            b"--report-denied" => &mut r.report_denied,
            b"--" => {
                r.command = rest[i + 1..].to_vec();
                break;
            }
            a if a.starts_with(b"-") && a != b"-" => return None,
            _ => {
                r.command = rest[i..].to_vec();
                break;
            }
        };
        if *flag {
            return None;
        }
        *flag = true;
        i += 1;
    }
    if r.json && !r.explain {
        return None;
    }
    Some(r)
}

/// A shell `hutch completions` writes a script for (the scripts ask
/// `crate::completions` what to complete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    /// The completion script.
    pub fn script(self) -> &'static str {
        match self {
            Shell::Bash => BASH,
            Shell::Zsh => ZSH,
            Shell::Fish => FISH,
        }
    }

    /// Where packages install the script, below the prefix (`/usr`).
    pub fn install_path(self) -> &'static str {
        match self {
            Shell::Bash => "share/bash-completion/completions/hutch",
            Shell::Zsh => "share/zsh/site-functions/_hutch",
            Shell::Fish => "share/fish/vendor_completions.d/hutch.fish",
        }
    }
}

const BASH: &str = include_str!("../completions/hutch.bash");
const ZSH: &str = include_str!("../completions/_hutch");
const FISH: &str = include_str!("../completions/hutch.fish");

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    type Parsed = (
        Option<String>,
        Option<String>,
        Option<String>,
        bool,
        bool,
        // verbose, report_denied
        (bool, bool),
        Vec<OsString>,
    );

    fn via_clap<A: AsRef<std::ffi::OsStr>>(args: &[A]) -> Option<Parsed> {
        let cli = Cli::try_parse_from(args.iter().map(|a| a.as_ref())).ok()?;
        let Command::Run(r) = cli.command else {
            return None;
        };
        Some((
            r.profile,
            r.image,
            r.name,
            r.explain,
            r.json,
            (r.verbose, r.report_denied),
            r.command,
        ))
    }

    #[test]
    fn the_fast_run_parser_agrees_with_clap() {
        let pieces: &[&[&str]] = &[
            &["-p", "cli"],
            &["--profile", "x.toml"],
            &["--profile=cli"],
            &["--image", "busybox"],
            &["--image=busybox"],
            &["--name", "web"],
            &["--name=web"],
            &["--explain"],
            &["--json"],
            &["-v"],
            &["--verbose"],
            &["--report-denied"],
            &["--"],
            &["-p"],
            &["-pcli"],
            &["-vp", "cli"],
            &["--bogus"],
            &["-"],
            &["--profile", "--explain"],
            &["--help"],
            &["curl", "-s", "--explain"],
            &["sh", "-c", "echo --"],
        ];
        let mut checked = 0;
        // Every sequence of up to three pieces, then a command.
        let mut seqs: Vec<Vec<&str>> = vec![vec![]];
        for _ in 0..3 {
            let mut next = Vec::new();
            for s in &seqs {
                for p in pieces {
                    let mut v = s.clone();
                    v.extend_from_slice(p);
                    next.push(v);
                }
            }
            seqs.extend(next);
        }
        for s in seqs {
            for tail in [&[][..], &["true"][..], &["--", "ls", "-l"][..]] {
                let mut args = vec!["hutch", "run"];
                args.extend_from_slice(&s);
                args.extend_from_slice(tail);
                let os: Vec<std::ffi::OsString> = args.iter().map(|a| a.into()).collect();
                if let Some(f) = fast_run_args(&os) {
                    let fast = (
                        f.profile,
                        f.image,
                        f.name,
                        f.explain,
                        f.json,
                        (f.verbose, f.report_denied),
                        f.command,
                    );
                    assert_eq!(Some(fast), via_clap(&args), "{args:?}");
                    checked += 1;
                }
            }
        }
        assert!(
            checked > 1000,
            "the fast path should take most plain command lines: {checked}"
        );
    }

    /// The command is bytes: an argument that is not UTF-8 passes both
    /// parsers untouched; an option value that is not UTF-8 is left to
    /// clap, which refuses it.
    #[test]
    fn commands_are_bytes_in_both_parsers() {
        use std::os::unix::ffi::OsStringExt;
        let ff = || OsString::from_vec(b"x\xff".to_vec());
        for pre in [
            &["run"][..],
            &["run", "-p", "cli", "--"][..],
            &["run", "--explain"][..],
        ] {
            let mut args: Vec<OsString> = std::iter::once("hutch")
                .chain(pre.iter().copied())
                .map(OsString::from)
                .collect();
            args.push("cat".into());
            args.push(ff());
            let fast = fast_run_args(&args).expect("taken by the fast path");
            assert_eq!(fast.command, [OsString::from("cat"), ff()]);
            let clap = via_clap(&args).expect("clap takes it too");
            assert_eq!(clap.6, fast.command);
        }
        let bad: Vec<OsString> = vec!["hutch".into(), "run".into(), "-p".into(), ff(), "ls".into()];
        assert!(fast_run_args(&bad).is_none());
        assert!(Cli::try_parse_from(&bad).is_err());
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn command_options_stay_with_the_command() {
        let cli = Cli::try_parse_from(["hutch", "run", "curl", "-s", "--help"]).unwrap();
        let Command::Run(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.command, ["curl", "-s", "--help"]);
        let cli = Cli::try_parse_from(["hutch", "run", "-p", "cli", "--", "--weird"]).unwrap();
        let Command::Run(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.profile.as_deref(), Some("cli"));
        assert_eq!(r.command, ["--weird"]);
        let cli = Cli::try_parse_from(["hutch", "run", "--image", "busybox", "--", "sh"]).unwrap();
        let Command::Run(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.image.as_deref(), Some("busybox"));
        assert_eq!(r.command, ["sh"]);
    }
}
