//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    Check {
        /// Profile files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
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
    /// Say on stderr what this launch enforces (and what it cannot).
    #[arg(short, long)]
    pub verbose: bool,
    /// The command and its arguments (put `--` before it if it starts with `-`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
