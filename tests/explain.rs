//! `hutch run --explain` of every shipped profile, text and `--json`, as
//! snapshots in tests/explain/ that a reviewer reads when a profile or the
//! planner changes.
//!
//! Each profile in profiles/ is planned on the synthetic machine of
//! tests/synthetic/ (uid 1000 in /home/u/project, a fixed environment,
//! Landlock ABI 7, stdin not a terminal, a fixed cgroup layout, a
//! filesystem tree made by the test), with the command `/bin/sh -c 'echo
//! hello'`; `container` also with `--image` (an image of two layers made
//! there, whose directory shows as `<machine>`). Profiles with `[desktop]`
//! or `[devices]` are planned in the machine's graphical session
//! (`Machine::desktop_host`: X11, Wayland with security contexts, sound
//! servers, a GPU node). The text is what
//! `--explain` prints (`plan::explain::render`), the JSON what `--explain
//! --json` prints (the plan, pretty-printed).
//!
//! The seccomp filter is built for the architecture hutch is compiled for;
//! the snapshots are x86_64's, and elsewhere the comparison says SKIP.
//!
//! After a change, the test prints the difference; read it, then rewrite
//! the snapshots with `HUTCH_BLESS=1 cargo test --test explain`.

#[path = "synthetic/mod.rs"]
mod synthetic;

use std::path::{Path, PathBuf};

use hutch::plan::{Plan, explain};
use hutch::profile::ProfileRef;
use hutch::profile::load::BUILTIN;
use synthetic::Machine;

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/explain")
}

/// Every profile shipped in profiles/, by the name `--profile` takes.
fn shipped_profiles() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut names = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(rel) = path.strip_prefix(&dir).unwrap().to_str()
                && let Some(name) = rel.strip_suffix(".toml")
            {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    names
}

/// One case: a file name and how to plan it (`text`: a profile of the
/// test's, written to the machine's search path first).
struct Case {
    file: String,
    profile: String,
    image: bool,
    text: Option<&'static str>,
}

/// A mount destination that resolves through a symlink inside the sandbox:
/// the machine's /etc/resolv.conf is one into /run, as with
/// systemd-resolved, and /etc is bound read-only (issue 12 #12).
const SYMLINKED_DESTINATION: &str = r#"version = 1
description = "A bind whose destination is a symlink in the bound /etc"
extends = ["base/system"]

[[mount]]
type = "ro-bind"
src = "${HOME}/project/resolv.conf"
dst = "/etc/resolv.conf"
"#;

fn cases() -> Vec<Case> {
    let mut out: Vec<Case> = shipped_profiles()
        .into_iter()
        .map(|p| Case {
            file: p.replace('/', "-"),
            profile: p,
            image: false,
            text: None,
        })
        .collect();
    out.push(Case {
        file: "container-image".into(),
        profile: "container".into(),
        image: true,
        text: None,
    });
    out.push(Case {
        file: "symlinked-destination".into(),
        profile: "symlinked-destination".into(),
        image: false,
        text: Some(SYMLINKED_DESTINATION),
    });
    out
}

/// `--explain` and `--explain --json` of a plan, with the machine's
/// temporary directory (the image's layers) written `<machine>`.
fn render(machine: &Machine, plan: &Plan) -> (String, String) {
    let text = explain::render(plan);
    let json = serde_json::to_string_pretty(plan).unwrap() + "\n";
    let root = machine.root().to_str().unwrap();
    (
        text.replace(root, "<machine>"),
        json.replace(root, "<machine>"),
    )
}

fn planned(machine: &Machine, case: &Case) -> Plan {
    if let Some(text) = case.text {
        let path = machine.profiles().join(format!("{}.toml", case.profile));
        std::fs::write(path, text).unwrap();
    }
    let plain = machine.host();
    let profile = machine
        .load(&plain, &ProfileRef::Name(case.profile.clone()))
        .unwrap_or_else(|e| panic!("{}: {}", case.profile, e.0.render()));
    let desktop = profile
        .layers
        .iter()
        .any(|l| l.raw.desktop.is_some() || l.raw.devices.is_some());
    let host = if desktop {
        machine.desktop_host()
    } else {
        plain
    };
    machine
        .plan_on(&host, &case.profile, case.image)
        .unwrap_or_else(|e| panic!("{}: {}", case.profile, e.0.render()))
}

/// A line diff (longest common subsequence), `-` for the snapshot's lines
/// and `+` for the new ones, with two lines of context.
fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut lines: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            lines.push((' ', a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            lines.push(('-', a[i]));
            i += 1;
        } else {
            lines.push(('+', b[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = (0..lines.len()).filter(|&k| lines[k].0 != ' ').collect();
    let near = |k: usize| changed.iter().any(|&c| c.abs_diff(k) <= 2);
    let mut out = String::new();
    let mut skipped = false;
    for (k, (mark, line)) in lines.iter().enumerate() {
        if near(k) {
            if skipped {
                out.push_str("  ...\n");
                skipped = false;
            }
            out.push_str(&format!("{mark} {line}\n"));
        } else {
            skipped = true;
        }
    }
    out
}

/// Whether the snapshots are this architecture's; if not, says SKIP.
fn snapshots_apply() -> bool {
    let here = cfg!(target_arch = "x86_64");
    if !here {
        eprintln!(
            "SKIP: the snapshots hold x86_64's seccomp filter; this is {}",
            std::env::consts::ARCH
        );
    }
    here
}

/// Compares (or, blessing, writes) one snapshot; the difference if stale.
fn compare(file: &str, rendered: &str, bless: bool) -> Option<String> {
    let path = snapshot_dir().join(file);
    if bless {
        std::fs::create_dir_all(snapshot_dir()).unwrap();
        std::fs::write(&path, rendered).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    (committed != rendered).then(|| {
        format!(
            "--- tests/explain/{file} (snapshot)\n+++ as planned now\n{}",
            diff(&committed, rendered)
        )
    })
}

#[test]
fn every_shipped_profile_matches_its_snapshot() {
    if !snapshots_apply() {
        return;
    }
    let machine = Machine::new();
    let bless = std::env::var_os("HUTCH_BLESS").is_some();
    let mut stale = Vec::new();
    for case in cases() {
        let (text, json) = render(&machine, &planned(&machine, &case));
        stale.extend(compare(&format!("{}.txt", case.file), &text, bless));
        stale.extend(compare(&format!("{}.json", case.file), &json, bless));
    }
    assert!(
        stale.is_empty(),
        "--explain differs from its snapshot:\n\n{}\nIf the change is intended, run `HUTCH_BLESS=1 cargo test --test explain` and commit tests/explain/.",
        stale.join("\n")
    );
}

/// tests/explain/ holds a snapshot of every case and nothing else, and
/// every shipped profile is a built-in one (what `--profile NAME` finds
/// without a search path).
#[test]
fn the_snapshots_cover_every_shipped_profile() {
    let mut expected: Vec<String> = cases()
        .iter()
        .flat_map(|c| [format!("{}.json", c.file), format!("{}.txt", c.file)])
        .collect();
    expected.sort();
    let mut on_disk: Vec<String> = std::fs::read_dir(snapshot_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, expected);
    let mut builtin: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
    builtin.sort();
    assert_eq!(builtin, shipped_profiles());
}

/// The snapshot is the machine's, not this one's: two machines in other
/// directories give the same text, whatever this process's environment.
#[test]
fn the_snapshot_does_not_depend_on_where_it_is_taken() {
    let (a, b) = (Machine::new(), Machine::new());
    for case in cases() {
        assert_eq!(
            render(&a, &planned(&a, &case)),
            render(&b, &planned(&b, &case)),
            "{}",
            case.file
        );
    }
}

/// The negative control: a profile that differs from a shipped one by a
/// single mount (a copy of `cli` in the search path, which shadows the
/// built-in) no longer matches the snapshot, and the difference names
/// exactly that mount, in the text and in the JSON.
#[test]
fn a_changed_plan_does_not_match_the_snapshot() {
    if !snapshots_apply() {
        return;
    }
    let machine = Machine::new();
    let cli = BUILTIN.iter().find(|(n, _)| *n == "cli").unwrap().1;
    let changed = format!("{cli}\n[[mount]]\ntype = \"tmpfs\"\ndst = \"/srv/cache\"\n");
    std::fs::write(machine.profiles().join("cli.toml"), changed).unwrap();
    let case = Case {
        file: "cli".into(),
        profile: "cli".into(),
        image: false,
        text: None,
    };
    let (text, json) = render(&machine, &planned(&machine, &case));
    let text_diff = compare("cli.txt", &text, false).expect("the text snapshot must differ");
    let added: Vec<&str> = text_diff
        .lines()
        .filter(|l| l.starts_with("+ ") || l.starts_with("- "))
        .collect();
    assert!(
        added.iter().any(|l| l.contains("tmpfs    /srv/cache")),
        "{text_diff}"
    );
    let json_diff = compare("cli.json", &json, false).expect("the JSON snapshot must differ");
    assert!(
        json_diff.contains("+       \"dst\": \"/srv/cache\""),
        "{json_diff}"
    );
}

#[test]
fn the_diff_shows_what_changed() {
    let d = diff("a\nb\nc\nd\ne\nf\ng\n", "a\nb\nc\nD\ne\nf\ng\nh\n");
    assert_eq!(d, "  ...\n  b\n  c\n- d\n+ D\n  e\n  f\n  g\n+ h\n");
}
