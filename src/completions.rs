//! Shell completion: `hutch completions SHELL` prints a small script for
//! bash, zsh or fish, and the script asks `hutch __complete -- WORDS...`
//! (the command line up to the cursor, the word being completed last) what
//! may come next. One engine serves the three shells, so subcommands and
//! flags come from the same clap definition as the parser, and dynamic
//! values (profile, image, volume and running sandbox names) are read when
//! asked: profile directories and hutch's stores are listed, nothing is
//! launched and nothing is created.
//!
//! Not clap_complete: its static scripts cannot call back for dynamic
//! values, and its dynamic engine is behind the `unstable-dynamic` feature,
//! whose script protocol may change in any release; a distribution ships
//! the script and the binary separately and needs them to keep agreeing.
//!
//! The answer is one candidate per line, `VALUE` or `VALUE<TAB>DESCRIPTION`,
//! or a directive the script carries out with the shell's own completion:
//! `:files`, `:commands`, or `:offset N` (complete the command line from
//! word N on, as a command of its own: the payload after `hutch run`).

use std::path::Path;

use clap::{Arg, ArgAction, Command, CommandFactory};

use crate::cli::Cli;
use crate::host::Host;

/// What may be typed at the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Values {
    /// These words, each with a description.
    Words(Vec<(String, String)>),
    /// Profile names from the search path.
    Profiles,
    /// firejail profile names (~/.config/firejail, /etc/firejail).
    FirejailProfiles,
    /// Names of imported images.
    Images,
    /// Names of volumes.
    Volumes,
    /// Names of running sandboxes.
    Sandboxes,
    /// Names of the programs `hutch shim install` shimmed.
    Shims,
    /// Paths (the shell completes them).
    Files,
    /// Command names (the shell completes them).
    Commands,
    /// The rest of the line is a command of its own, from this word on.
    Offset(usize),
    /// Free text: nothing to offer.
    Nothing,
    /// These values, each written after a prefix (`--profile=`).
    Prefixed(String, Box<Values>),
}

/// What the value of an argument is, by subcommand path and argument id.
/// Every argument that takes a value is classified here; a test fails for a
/// new one until it is.
pub fn value_kind(path: &[&str], id: &str) -> Option<Values> {
    Some(match (path, id) {
        (["run"] | ["export", "oci"] | ["learn"], "profile") | (["check"], "profiles") => {
            Values::Profiles
        }
        (["run"] | ["export", "oci"], "image")
        | (["image", "inspect"], "name")
        | (["image", "rm"], "names") => Values::Images,
        (["export", "oci"], "output")
        | (["import", "firejail"], "output")
        | (["learn"], "output")
        | (["run"], "bind" | "ro_bind") => Values::Files,
        (["import", "firejail"], "profile") => Values::FirejailProfiles,
        (["export", "oci"], "command") => Values::Commands,
        (["exec"], "name") | (["stop"], "name") => Values::Sandboxes,
        (["volume", "inspect" | "path" | "rm"], "name") => Values::Volumes,
        (["image", "import"], "source") => Values::Files,
        (["run"] | ["exec"] | ["learn"], "command") | (["shim", "install"], "names") => {
            Values::Commands
        }
        (["shim", "install"], "profile") => Values::Profiles,
        (["shim", "remove"], "names") => Values::Shims,
        (["run"], "network") => Values::Words(
            [
                ("none", "loopback only"),
                ("user", "a private network connected by pasta"),
                ("host", "the host's own network"),
            ]
            .map(|(w, d)| (w.to_string(), d.to_string()))
            .to_vec(),
        ),
        (["run"], "name" | "env" | "publish")
        | (["stop"], "timeout")
        | (["image", "import"], "tag" | "max_size") => Values::Nothing,
        (["__complete"], "words") => Values::Nothing,
        (["man"], "page") => Values::Words(
            crate::manpages::PAGES
                .iter()
                .map(|(file, _)| (page_name(file).to_string(), String::new()))
                .collect(),
        ),
        _ => return None,
    })
}

fn page_name(file: &str) -> &str {
    file.rsplit_once('.').map_or(file, |(n, _)| n)
}

/// Answers `hutch __complete -- WORDS...`.
pub fn run(words: &[String]) -> i32 {
    let host = Host::current();
    let mut out = String::new();
    for line in answer(&complete(words), &host) {
        out.push_str(&line);
        out.push('\n');
    }
    use std::io::Write;
    let _ = std::io::stdout().write_all(out.as_bytes());
    0
}

/// The lines of the answer, dynamic values read now.
pub fn answer(values: &Values, host: &Host) -> Vec<String> {
    let plain = |names: Vec<String>| names.into_iter().collect::<Vec<_>>();
    match values {
        Values::Words(words) => words
            .iter()
            .map(|(w, d)| {
                if d.is_empty() {
                    w.clone()
                } else {
                    format!("{w}\t{d}")
                }
            })
            .collect(),
        Values::Profiles => plain(crate::profile::load::names(host)),
        Values::FirejailProfiles => plain(firejail_profile_names(host)),
        Values::Images => plain(image_names(host)),
        Values::Volumes => plain(volume_names(host)),
        Values::Sandboxes => plain(sandbox_names(host)),
        Values::Shims => plain(shim_names(host)),
        Values::Files => vec![":files".into()],
        Values::Commands => vec![":commands".into()],
        Values::Offset(n) => vec![format!(":offset {n}")],
        Values::Nothing => Vec::new(),
        Values::Prefixed(prefix, values) => answer(values, host)
            .into_iter()
            .map(|line| {
                if line.starts_with(':') {
                    line
                } else {
                    format!("{prefix}{line}")
                }
            })
            .collect(),
    }
}

/// The parse state while walking the words before the cursor.
struct Walk {
    cmd: Command,
    path: Vec<String>,
    positionals: usize,
    /// After `--`: every word is a positional.
    dashdash: bool,
}

/// What may come at the last word of `words` (`words[0]` is the program).
pub fn complete(words: &[String]) -> Values {
    let Some((current, before)) = words.split_last() else {
        return Values::Nothing;
    };
    let mut w = Walk {
        cmd: Cli::command(),
        path: Vec::new(),
        positionals: 0,
        dashdash: false,
    };
    let mut i = 1;
    while i < before.len() {
        let word = &before[i];
        if !w.dashdash && word == "--" {
            w.dashdash = true;
        } else if !w.dashdash && word.starts_with('-') && word.len() > 1 {
            if let Some(arg) = takes_separate_value(&w.cmd, word) {
                i += 1;
                if i == before.len() {
                    // The cursor is on this option's value.
                    return values_of(&w, &arg, current);
                }
            }
        } else if let Some(sub) = subcommand(&w.cmd, word, w.positionals) {
            w.path.push(sub.get_name().to_string());
            w.cmd = sub;
            w.positionals = 0;
        } else {
            if let Some(arg) = positional(&w.cmd, w.positionals)
                && arg.is_trailing_var_arg_set()
            {
                // The payload's command: the rest of the line is its own.
                return Values::Offset(i);
            }
            w.positionals += 1;
        }
        i += 1;
    }
    if !w.dashdash && current.starts_with('-') {
        if let Some((name, _)) = current.split_once('=')
            && let Some(arg) = long_option(&w.cmd, name)
        {
            let value = &current[name.len() + 1..];
            return Values::Prefixed(format!("{name}="), Box::new(values_of(&w, &arg, value)));
        }
        return options(&w.cmd);
    }
    if w.positionals == 0 && !w.dashdash && w.cmd.has_subcommands() {
        return subcommands(&w.cmd);
    }
    match positional(&w.cmd, w.positionals) {
        Some(arg) => values_of(&w, &arg, current),
        None => Values::Nothing,
    }
}

/// `--opt` or `-o` (or `-abo`) whose value is the next word.
fn takes_separate_value(cmd: &Command, word: &str) -> Option<Arg> {
    if let Some(long) = word.strip_prefix("--") {
        if long.contains('=') {
            return None;
        }
        let arg = long_option(cmd, word)?;
        return takes_value(&arg).then_some(arg);
    }
    // `-vp NAME`: the last short flag takes the next word if it takes a value
    // and nothing follows it in this word.
    let shorts: Vec<char> = word[1..].chars().collect();
    for (n, c) in shorts.iter().enumerate() {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_short() == Some(*c))?
            .clone();
        if takes_value(&arg) {
            return (n == shorts.len() - 1).then_some(arg);
        }
    }
    None
}

fn takes_value(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::Set | ArgAction::Append)
}

fn long_option(cmd: &Command, word: &str) -> Option<Arg> {
    let long = word.strip_prefix("--")?;
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .cloned()
}

fn subcommand(cmd: &Command, word: &str, positionals: usize) -> Option<Command> {
    if positionals > 0 {
        return None;
    }
    cmd.get_subcommands()
        .find(|s| s.get_name() == word || s.get_all_aliases().any(|a| a == word))
        .cloned()
}

/// The `n`th positional argument (a trailing list takes every later one).
fn positional(cmd: &Command, n: usize) -> Option<Arg> {
    let list: Vec<&Arg> = cmd.get_positionals().collect();
    list.get(n)
        .or_else(|| {
            list.last()
                .filter(|a| matches!(a.get_action(), ArgAction::Append))
        })
        .map(|a| (*a).clone())
}

fn values_of(w: &Walk, arg: &Arg, current: &str) -> Values {
    let possible = arg.get_possible_values();
    if !possible.is_empty() {
        return Values::Words(
            possible
                .iter()
                .filter(|p| !p.is_hide_set())
                .map(|p| {
                    let help = p.get_help().map(|h| h.to_string()).unwrap_or_default();
                    (p.get_name().to_string(), help)
                })
                .collect(),
        );
    }
    let path: Vec<&str> = w.path.iter().map(String::as_str).collect();
    match value_kind(&path, arg.get_id().as_str()) {
        // A profile given by path: anything with a `/`, or ending in .toml.
        Some(Values::Profiles | Values::FirejailProfiles)
            if current.contains('/') || current.starts_with('.') || current.starts_with('~') =>
        {
            Values::Files
        }
        Some(v) => v,
        None => Values::Nothing,
    }
}

fn options(cmd: &Command) -> Values {
    let mut words = Vec::new();
    for a in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let help = first_line(a.get_help().map(|h| h.to_string()));
        if let Some(long) = a.get_long() {
            words.push((format!("--{long}"), help.clone()));
        }
        if let Some(short) = a.get_short() {
            words.push((format!("-{short}"), help));
        }
    }
    if !cmd.is_disable_help_flag_set() {
        words.push(("--help".into(), "Print help".into()));
    }
    if cmd.get_version().is_some() {
        words.push(("--version".into(), "Print version".into()));
    }
    Values::Words(words)
}

fn subcommands(cmd: &Command) -> Values {
    Values::Words(
        cmd.get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(|s| {
                let help = first_line(s.get_about().map(|h| h.to_string()));
                (s.get_name().to_string(), help)
            })
            .collect(),
    )
}

/// The first sentence of a help text: what a completion menu has room for.
fn first_line(text: Option<String>) -> String {
    let text = text.unwrap_or_default();
    let line = text.lines().next().unwrap_or("");
    let sentence = line.split_once(". ").map_or(line, |(s, _)| s);
    sentence.strip_suffix('.').unwrap_or(sentence).to_string()
}

/// The firejail profiles `hutch import firejail` finds by name.
pub fn firejail_profile_names(host: &Host) -> Vec<String> {
    let mut dirs = vec![std::path::PathBuf::from(
        crate::import::firejail::env::SYSCONFDIR,
    )];
    if let Some(home) = host.home() {
        dirs.push(home.join(".config/firejail"));
    }
    let mut names: Vec<String> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|rd| rd.flatten())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".profile")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Imported images, without opening (and so creating) a store that is not
/// there.
pub fn image_names(host: &Host) -> Vec<String> {
    let Ok(root) = crate::image::ImageStore::default_root(host) else {
        return Vec::new();
    };
    if !root.join("images").is_dir() {
        return Vec::new();
    }
    crate::image::ImageStore::open(&root)
        .and_then(|s| s.list())
        .map(|list| list.into_iter().map(|i| i.name).collect())
        .unwrap_or_default()
}

/// The volumes in the store (names only: nothing is opened or locked).
pub fn volume_names(host: &Host) -> Vec<String> {
    let Some(store) = crate::paths::volume_store(host) else {
        return Vec::new();
    };
    let mut names: Vec<String> = list_dir(&store)
        .into_iter()
        .filter(|n| crate::paths::valid_name(n))
        .collect();
    names.sort();
    names
}

/// Sandboxes running now (the registry as `hutch ps` reads it).
pub fn sandbox_names(host: &Host) -> Vec<String> {
    match crate::registry::Registry::open(host, false) {
        Ok(Some(r)) => r.records().into_iter().map(|r| r.name).collect(),
        _ => Vec::new(),
    }
}

/// The programs shimmed by `hutch shim install`, the user's and the
/// system's (read from their records; nothing is created).
pub fn shim_names(host: &Host) -> Vec<String> {
    let mut names: Vec<String> = [crate::shim::Scope::User, crate::shim::Scope::System]
        .into_iter()
        .filter_map(|s| s.record_path(host))
        .filter_map(|(path, owner)| crate::shim::record::read(&path, owner).ok().flatten())
        .flat_map(|r| r.shims.into_iter().map(|s| s.name))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn list_dir(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: &str) -> Values {
        let mut words: Vec<String> = line.split(' ').map(str::to_string).collect();
        if line.ends_with(' ') {
            words.pop();
            words.push(String::new());
        }
        complete(&words)
    }

    fn words(v: Values) -> Vec<String> {
        match v {
            Values::Words(w) => w.into_iter().map(|(w, _)| w).collect(),
            other => panic!("expected words, got {other:?}"),
        }
    }

    #[test]
    fn subcommands_and_their_options() {
        let top = words(at("hutch "));
        for s in [
            "run",
            "check",
            "ps",
            "exec",
            "stop",
            "volume",
            "image",
            "completions",
        ] {
            assert!(top.contains(&s.to_string()), "{s} in {top:?}");
        }
        assert!(!top.iter().any(|w| w.starts_with("__")), "hidden: {top:?}");
        let run = words(at("hutch run --"));
        for o in ["--profile", "--image", "--explain", "--name", "--verbose"] {
            assert!(run.contains(&o.to_string()), "{o} in {run:?}");
        }
        assert_eq!(
            words(at("hutch volume ")),
            ["list", "inspect", "path", "rm"]
        );
        assert_eq!(words(at("hutch completions ")), ["bash", "zsh", "fish"]);
    }

    #[test]
    fn values_by_option_and_position() {
        assert_eq!(at("hutch run --profile "), Values::Profiles);
        assert_eq!(at("hutch run -p c"), Values::Profiles);
        assert_eq!(at("hutch run -vp c"), Values::Profiles);
        assert_eq!(at("hutch run --profile ./my"), Values::Files);
        assert_eq!(at("hutch check cli "), Values::Profiles);
        assert_eq!(at("hutch import firejail "), Values::FirejailProfiles);
        assert_eq!(at("hutch import firejail ./x"), Values::Files);
        assert_eq!(at("hutch import firejail x -o "), Values::Files);
        assert_eq!(at("hutch run --image "), Values::Images);
        assert_eq!(at("hutch image rm a "), Values::Images);
        assert_eq!(at("hutch stop "), Values::Sandboxes);
        assert_eq!(at("hutch exec "), Values::Sandboxes);
        assert_eq!(at("hutch stop --timeout "), Values::Nothing);
        assert_eq!(at("hutch volume rm --force "), Values::Volumes);
        assert_eq!(at("hutch image import "), Values::Files);
        assert_eq!(at("hutch run --name "), Values::Nothing);
        assert_eq!(at("hutch shim install "), Values::Commands);
        assert_eq!(at("hutch shim install jq cu"), Values::Commands);
        assert_eq!(at("hutch shim install --profile "), Values::Profiles);
        assert_eq!(at("hutch shim remove "), Values::Shims);
        assert_eq!(words(at("hutch shim ")), ["install", "list", "remove"]);
    }

    #[test]
    fn the_payload_is_a_command_line_of_its_own() {
        assert_eq!(at("hutch run "), Values::Commands);
        assert_eq!(at("hutch run -p cli -- "), Values::Commands);
        assert_eq!(at("hutch run -p cli ls -"), Values::Offset(4));
        assert_eq!(at("hutch run -p cli -- ls "), Values::Offset(5));
        assert_eq!(at("hutch exec box sh "), Values::Offset(3));
        // `--profile=` keeps its prefix, as bash and fish complete the word.
        assert_eq!(
            at("hutch run --profile=c"),
            Values::Prefixed("--profile=".into(), Box::new(Values::Profiles))
        );
        let host = Host::fixed(1000, 1000, &[], "/");
        assert!(answer(&at("hutch run --profile=c"), &host).contains(&"--profile=cli".into()));
    }

    #[test]
    fn every_argument_that_takes_a_value_is_classified() {
        fn visit(cmd: &Command, path: &mut Vec<String>, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let takes = takes_value(a) || a.is_positional();
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                if takes
                    && a.get_possible_values().is_empty()
                    && value_kind(&p, a.get_id().as_str()).is_none()
                {
                    missing.push(format!("{} {}", path.join(" "), a.get_id()));
                }
            }
            for s in cmd.get_subcommands() {
                path.push(s.get_name().to_string());
                visit(s, path, missing);
                path.pop();
            }
        }
        let mut missing = Vec::new();
        visit(&Cli::command(), &mut Vec::new(), &mut missing);
        assert!(
            missing.is_empty(),
            "say in completions::value_kind what these take: {missing:?}"
        );
    }
}
