//! Command-line interface.

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
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
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
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
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
    /// The command and its arguments (put `--` before it if it starts with `-`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

/// Parses `hutch run ...` without building clap's command tree, which costs
/// about a tenth of a millisecond on every launch. Only arguments it fully
/// understands are taken; anything else (help, errors, unknown or repeated
/// options, combined short flags) returns `None` and clap parses instead, so
/// the two can never disagree on an accepted command line (see the tests).
pub fn fast_run_args(args: &[std::ffi::OsString]) -> Option<RunArgs> {
    let mut it = args.iter().skip(1);
    if it.next()?.to_str()? != "run" {
        return None;
    }
    let mut r = RunArgs {
        profile: None,
        image: None,
        name: None,
        explain: false,
        json: false,
        verbose: false,
        command: Vec::new(),
    };
    let rest: Vec<&str> = it.map(|a| a.to_str()).collect::<Option<_>>()?;
    let mut i = 0;
    while i < rest.len() {
        let arg = rest[i];
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (arg, None),
        };
        let value_slot = match name {
            "-p" | "--profile" => Some(&mut r.profile),
            "--image" => Some(&mut r.image),
            "--name" => Some(&mut r.name),
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
                    rest.get(i)?
                }
            };
            // clap reads a value that looks like an option as a mistake.
            if inline.is_none() && value.starts_with('-') {
                return None;
            }
            *slot = Some(value.to_string());
            i += 1;
            continue;
        }
        if inline.is_some() {
            return None;
        }
        let flag = match arg {
            "--explain" => &mut r.explain,
            "--json" => &mut r.json,
            "-v" | "--verbose" => &mut r.verbose,
            "--" => {
                r.command = rest[i + 1..].iter().map(|s| s.to_string()).collect();
                break;
            }
            a if a.starts_with('-') && a != "-" => return None,
            _ => {
                r.command = rest[i..].iter().map(|s| s.to_string()).collect();
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
        bool,
        Vec<String>,
    );

    fn via_clap(args: &[&str]) -> Option<Parsed> {
        let cli = Cli::try_parse_from(args).ok()?;
        let Command::Run(r) = cli.command else {
            return None;
        };
        Some((
            r.profile, r.image, r.name, r.explain, r.json, r.verbose, r.command,
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
                        f.profile, f.image, f.name, f.explain, f.json, f.verbose, f.command,
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
