//! Shell completion, driven the way the shells drive it: bash through
//! bash-completion's machinery (`complete -p`, COMP_WORDS, `_hutch`), fish
//! through `complete -C`; zsh's script is checked for syntax. The user has
//! a profile of their own, an imported image, a volume, and a sandbox
//! running under a name: completion must offer each where it belongs.

mod common;
mod common_oci;

use std::path::Path;
use std::process::Command;

use common::*;
use common_oci::{Comp, ImageOpts, Layer, Layout, Tar};

const BASH_COMPLETION: &str = "/usr/share/bash-completion/bash_completion";

/// The scratch user's world: a profile `mine`, an image `comp-image:1.0`, a
/// volume `compvol`, and a running sandbox `comp-box` (until dropped).
struct World {
    s: Scratch,
    _sandbox: (std::process::Child, KillOnDrop),
}

fn world() -> World {
    let s = Scratch::new();
    s.write(
        "config/hutch/profiles/mine.toml",
        "version = 1\nextends = [\"cli\"]\n",
    );
    s.write(
        "with-volume.toml",
        "version = 1\nextends = [\"cli\"]\n[volumes.compvol]\ndst = \"/vol\"\n",
    );
    ok(&s
        .hutch(&["run", "--profile", "./with-volume.toml", "--", "true"])
        .output()
        .unwrap());
    let layout = s.path().join("layout");
    let mut tar = Tar::new();
    tar.dir("etc", 0o755).file("etc/motd", 0o644, b"hello\n");
    Layout::new(&layout).add(
        &[Layer::new(tar.finish(), Comp::Gzip)],
        &ImageOpts::default(),
    );
    s.chown_all();
    ok(&s
        .hutch(&[
            "image",
            "import",
            layout.to_str().unwrap(),
            "--tag",
            "comp-image:1.0",
        ])
        .output()
        .unwrap());
    let sandbox = spawn_named(&s, "comp-box", "cli", &["sleep", "60"]);
    wait_running(&s, "comp-box");
    World {
        s,
        _sandbox: sandbox,
    }
}

/// `sh`-quotes a word.
fn quote(w: &str) -> String {
    format!("'{}'", w.replace('\'', r"'\''"))
}

/// Runs `bash` as the scratch user with hutch on its PATH.
fn bash(s: &Scratch, script: &str) -> String {
    let dir = hutch_bin().parent().unwrap();
    let out = s
        .as_user(Path::new("/bin/bash"))
        .args(["--norc", "--noprofile", "-c", script])
        .env("PATH", format!("{}:/usr/bin:/bin", dir.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// What bash offers for a command line, as bash would call `_hutch`: the
/// line split at COMP_WORDBREAKS (`=` and `:` are words of their own).
fn bash_complete(s: &Scratch, line: &str) -> Vec<String> {
    let script_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions/hutch.bash");
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in line.chars() {
        match c {
            ' ' => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            '=' | ':' => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                words.push(c.to_string());
            }
            c => word.push(c),
        }
    }
    words.push(word);
    let cword = words.len() - 1;
    let quoted: Vec<String> = words.iter().map(|w| quote(w)).collect();
    let script = format!(
        r#"source {bc}
source {script}
complete -p hutch | grep -q -- '-F _hutch' || {{ echo "complete -p: $(complete -p hutch)"; exit 1; }}
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE={line}
COMP_POINT=${{#COMP_LINE}}
COMPREPLY=()
_hutch hutch "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        bc = BASH_COMPLETION,
        script = quote(script_path.to_str().unwrap()),
        words = quoted.join(" "),
        line = quote(line),
    );
    bash(s, &script)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_profiles_images_volumes_and_running_sandboxes() {
    if !Path::new(BASH_COMPLETION).exists() {
        return skip("bash-completion is not installed (Debian: bash-completion)");
    }
    let w = world();
    let s = &w.s;
    let top = bash_complete(s, "hutch ");
    for sub in ["run", "check", "stop", "volume", "completions"] {
        assert!(top.contains(&sub.to_string()), "{sub}: {top:?}");
    }
    assert!(!top.iter().any(|t| t.starts_with("__")), "{top:?}");

    let profiles = bash_complete(s, "hutch run --profile ");
    for p in ["cli", "container", "default", "mine"] {
        assert!(profiles.contains(&p.to_string()), "{p}: {profiles:?}");
    }
    assert_eq!(
        bash_complete(s, "hutch run --profile=c"),
        ["chromium", "cli", "container", "convert", "cpio", "curl"],
        "after `=`, bash replaces only what follows it"
    );
    assert_eq!(bash_complete(s, "hutch check mi"), ["mine"]);
    assert_eq!(bash_complete(s, "hutch run -v --explain -p mi"), ["mine"]);

    assert_eq!(bash_complete(s, "hutch stop "), ["comp-box"]);
    assert_eq!(bash_complete(s, "hutch exec comp"), ["comp-box"]);
    assert_eq!(bash_complete(s, "hutch volume rm "), ["compvol"]);
    assert_eq!(bash_complete(s, "hutch image rm co"), ["comp-image:1.0"]);
    assert_eq!(
        bash_complete(s, "hutch run --image comp-image:"),
        ["1.0"],
        "after `:`, bash replaces only what follows it"
    );
    assert_eq!(
        bash_complete(s, "hutch run --ex"),
        ["--explain"],
        "options of the subcommand"
    );
    let commands = bash_complete(s, "hutch run -p cli ls");
    assert!(commands.contains(&"ls".to_string()), "{commands:?}");
}

#[test]
fn the_sandbox_list_follows_what_runs() {
    if !Path::new(BASH_COMPLETION).exists() {
        return skip("bash-completion is not installed (Debian: bash-completion)");
    }
    let s = Scratch::new();
    assert!(bash_complete(&s, "hutch stop ").is_empty());
    let (child, guard) = spawn_named(&s, "short-lived", "cli", &["sleep", "60"]);
    wait_running(&s, "short-lived");
    assert_eq!(bash_complete(&s, "hutch stop "), ["short-lived"]);
    drop(guard);
    let mut child = child;
    let _ = child.wait();
    assert!(
        bash_complete(&s, "hutch stop ").is_empty(),
        "a sandbox that ended is not offered"
    );
}

#[test]
fn fish_completes_profiles_and_running_sandboxes() {
    if Command::new("fish").arg("--version").output().is_err() {
        return skip("fish is not installed");
    }
    let w = world();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions/hutch.fish");
    let fish = |line: &str| -> Vec<String> {
        let dir = hutch_bin().parent().unwrap();
        let out =
            w.s.as_user(Path::new("/usr/bin/fish"))
                .args([
                    "--no-config",
                    "-c",
                    &format!(
                        "source {}; complete -C {}",
                        quote(script.to_str().unwrap()),
                        quote(line)
                    ),
                ])
                .env("PATH", format!("{}:/usr/bin:/bin", dir.display()))
                .output()
                .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    let profiles = fish("hutch run --profile ");
    for p in ["cli", "mine"] {
        assert!(profiles.contains(&p.to_string()), "{p}: {profiles:?}");
    }
    assert_eq!(fish("hutch stop "), ["comp-box"]);
    assert_eq!(fish("hutch volume path "), ["compvol"]);
    let top = fish("hutch ");
    assert!(top.contains(&"run".to_string()), "{top:?}");
}

#[test]
fn the_scripts_are_what_hutch_prints_and_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    let s = Scratch::new();
    for (shell, file, check) in [
        ("bash", "hutch.bash", ["bash", "-n"]),
        ("zsh", "_hutch", ["zsh", "-n"]),
        ("fish", "hutch.fish", ["fish", "--no-execute"]),
    ] {
        let printed = ok(&s.hutch(&["completions", shell]).output().unwrap());
        assert_eq!(
            printed,
            std::fs::read_to_string(root.join(file)).unwrap(),
            "{shell}"
        );
        match Command::new(check[0])
            .arg(check[1])
            .arg(root.join(file))
            .output()
        {
            Ok(out) => assert!(
                out.status.success(),
                "{shell}: {}{}",
                stdout(&out),
                stderr(&out)
            ),
            Err(_) => skip(&format!("{} is not installed: {file} not parsed", check[0])),
        }
    }
}

#[test]
fn completing_is_cheap_and_starts_nothing() {
    // A completion that lists everything still creates no store, registry
    // or volume directory for a user who has none.
    let s = Scratch::new();
    for line in [
        vec!["hutch", "run", "--profile", ""],
        vec!["hutch", "stop", ""],
        vec!["hutch", "volume", "rm", ""],
        vec!["hutch", "image", "rm", ""],
    ] {
        let mut args = vec!["__complete", "--"];
        args.extend(line);
        ok(&s.hutch(&args).output().unwrap());
    }
    assert!(!s.home().join(".local").exists(), "nothing created in ~");
    assert_eq!(
        std::fs::read_dir(s.runtime()).unwrap().count(),
        0,
        "no registry created"
    );
}
