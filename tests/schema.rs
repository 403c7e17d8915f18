//! The JSON Schema of the profile format (`hutch schema`,
//! schema/hutch-profile.schema.json), checked with an independent validator
//! (tests/schema/validate.py: Python's tomllib and the `jsonschema` package,
//! Debian's python3-jsonschema) against hutch itself:
//!
//! - the shipped file is what `hutch schema` prints (regenerate with
//!   `HUTCH_BLESS=1 cargo test --test schema`);
//! - every shipped profile and every example of the reference is valid;
//! - every malformed profile of tests/bad-profiles fails it, except those
//!   listed in [`CANNOT_EXPRESS`], which must pass it (so the list is exact);
//! - on a set of values around each constraint, the schema and `hutch check`
//!   agree, except where listed in [`SCHEMA_IS_LOOSER`]; the schema never
//!   rejects a profile hutch accepts.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use hutch::profile::reference;

/// Malformed profiles whose fault a JSON Schema of one file cannot state.
const CANNOT_EXPRESS: &[(&str, &str)] = &[
    ("cycle-a.toml", "`extends` across files"),
    ("cycle-b.toml", "`extends` across files"),
    ("extends-self.toml", "`extends` across files"),
    (
        "extends-in-local-override-target.toml",
        "a rule on another file (the .local.toml beside the one extended)",
    ),
    (
        "unknown-profile.toml",
        "whether a profile exists on this machine",
    ),
    ("image-not-imported.toml", "whether an image is imported"),
    (
        "network-allow-bad-cidr.toml",
        "arithmetic on an address (bits set beyond its prefix)",
    ),
    (
        "network-host-ports-mode-none.toml",
        "the mode in effect, which a later file (a .local.toml) may set",
    ),
    (
        "network-mode-disagrees-with-namespaces.toml",
        "the mode in effect, which a later file (a .local.toml) may set",
    ),
    (
        "network-host-ports-twice.toml",
        "equal ports written differently (5432 and \"5432/tcp\")",
    ),
    (
        "network-publish-twice.toml",
        "equal host ports in different entries (\"8080:80\", \"8080:81\")",
    ),
    (
        "command-nul-byte.toml",
        "which characters a command's arguments may hold (the schema states their type only)",
    ),
    ("missing-source.toml", "whether a host path exists"),
    ("root-missing.toml", "whether a host path exists"),
    ("root-not-a-directory.toml", "what a host path is"),
    (
        "destination-through-host-symlink.toml",
        "where symlinks in a bound host tree lead",
    ),
    (
        "symlink-leads-out.toml",
        "where a relative symlink target leads from its destination",
    ),
    (
        "writable-inside-root.toml",
        "where variables point (the two paths nest after expansion)",
    ),
    (
        "writable-in-registry.toml",
        "where variables point (hutch's own directories)",
    ),
    (
        "writable-in-volume-store.toml",
        "where variables point (hutch's own directories)",
    ),
    (
        "exposes-registry.toml",
        "where variables point (hutch's own directories)",
    ),
    (
        "writable-host-root.toml",
        "rules on host paths, applied after variables are expanded",
    ),
    (
        "writable-sys.toml",
        "rules on host paths, applied after variables are expanded",
    ),
    (
        "duplicate-destination.toml",
        "uniqueness of one key across the entries of an array",
    ),
    (
        "volume-duplicate-destination.toml",
        "uniqueness of one key across the tables of a map (after normalising the path)",
    ),
    (
        "remove-not-inherited.toml",
        "what the profiles this one extends contain",
    ),
    (
        "seccomp-unknown-syscall.toml",
        "the system call table of the machine's architecture",
    ),
    (
        "seccomp-unknown-group.toml",
        "the system call groups (checked with the system call names)",
    ),
    (
        "hostname-without-uts.toml",
        "the composed profile: another layer may turn the namespace back on",
    ),
    (
        "mounts-without-mount-namespace.toml",
        "the composed profile: another layer may turn the namespace back on",
    ),
    (
        "root-without-mount-namespace.toml",
        "the composed profile: another layer may turn the namespace back on",
    ),
    (
        "volumes-without-mount-namespace.toml",
        "the composed profile: another layer may turn the namespace back on",
    ),
    (
        "terminal-inherit-without-filter.toml",
        "the composed profile: another layer may turn the filter back on",
    ),
    (
        "terminal-pty-under-covered-pts.toml",
        "the composed mount list: which mount the sandbox sees at /dev/pts depends on every layer",
    ),
    (
        "terminal-pty-without-dev.toml",
        "the composed profile: another layer may add the `dev` mount at /dev",
    ),
    (
        "writable-without-root.toml",
        "the composed profile: `root` or `image` may come from a base",
    ),
    (
        "volume-without-dst.toml",
        "the composed profile: `dst` may come from another layer",
    ),
    (
        "volume-tmp-shared.toml",
        "the composed profile: another layer may set `shared = false`",
    ),
    (
        "limits-pids-too-few.toml",
        "the composed profile: the minimum depends on `init`",
    ),
];

/// Values `hutch check` refuses that the schema lets through, and why
/// (key path, TOML value).
const SCHEMA_IS_LOOSER: &[(&str, &str, &str)] = &[
    (
        "identity",
        "\"4294967296\"",
        "ids beyond 32 bits (a pattern cannot bound a number)",
    ),
    (
        "limits.memory",
        "\"1000\"",
        "a size written as a string is not compared with the minimum",
    ),
    (
        "cwd",
        "\"${USER}/x\"",
        "a variable that expands to a relative path",
    ),
    ("extends", "[\"nope\"]", "whether a profile exists"),
];

/// tests/schema/validate.py, or why it cannot run here.
fn validator() -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schema/validate.py");
    let probe = Command::new("python3")
        .args(["-c", "import tomllib, jsonschema"])
        .output();
    match probe {
        Ok(o) if o.status.success() => Ok(script),
        Ok(o) => Err(format!(
            "python3 cannot import tomllib and jsonschema (Debian: python3-jsonschema): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("python3: {e}")),
    }
}

fn shipped_schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/hutch-profile.schema.json")
}

/// Each file's verdict: `ok`, `invalid: ...` or `not-toml: ...`.
fn validate(files: &[PathBuf]) -> BTreeMap<PathBuf, String> {
    let out = Command::new("python3")
        .arg(validator().unwrap())
        .arg(shipped_schema())
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut verdicts = BTreeMap::new();
    for line in text.lines() {
        let (verdict, rest) = line.split_once(' ').unwrap();
        let (file, why) = rest.split_once(": ").unwrap_or((rest, ""));
        verdicts.insert(PathBuf::from(file), format!("{verdict} {why}"));
    }
    assert_eq!(verdicts.len(), files.len(), "{text}");
    verdicts
}

#[test]
fn the_shipped_schema_is_what_hutch_schema_prints() {
    let printed = ok(&Scratch::new().hutch(&["schema"]).output().unwrap());
    let generated =
        serde_json::to_string_pretty(&hutch::profile::jsonschema::generate()).unwrap() + "\n";
    assert_eq!(printed, generated);
    if std::env::var_os("HUTCH_BLESS").is_some() {
        std::fs::create_dir_all(shipped_schema().parent().unwrap()).unwrap();
        std::fs::write(shipped_schema(), &generated).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(shipped_schema()).unwrap_or_default(),
        generated,
        "schema/hutch-profile.schema.json is out of date; run `HUTCH_BLESS=1 cargo test --test schema`"
    );
}

#[test]
fn shipped_profiles_and_the_references_examples_are_valid() {
    if let Err(why) = validator() {
        return skip(&why);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for (name, _) in hutch::profile::load::BUILTIN {
        files.push(root.join("profiles").join(format!("{name}.toml")));
    }
    let dir = tempfile::tempdir().unwrap();
    for doc in reference::KEYS {
        if let Some(text) = reference::example_profile(doc) {
            let path = dir
                .path()
                .join(format!("{}.toml", doc.path.replace(['*', '[', ']'], "_")));
            std::fs::write(&path, text).unwrap();
            files.push(path);
        }
    }
    let bad: Vec<String> = validate(&files)
        .into_iter()
        .filter(|(_, v)| !v.starts_with("ok"))
        .map(|(f, v)| format!("{}: {v}", f.display()))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn malformed_profiles_fail_the_schema_unless_it_cannot_express_them() {
    if let Err(why) = validator() {
        return skip(&why);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-profiles");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut wrong = Vec::new();
    for (file, verdict) in validate(&files) {
        let name = file.file_name().unwrap().to_str().unwrap();
        let listed = CANNOT_EXPRESS.iter().any(|(n, _)| *n == name);
        match (listed, verdict.starts_with("ok")) {
            (true, false) => wrong.push(format!(
                "{name}: the schema now rejects it ({verdict}); take it off CANNOT_EXPRESS"
            )),
            (false, true) => wrong.push(format!(
                "{name}: the schema accepts it; tighten the schema or list it in CANNOT_EXPRESS with the reason"
            )),
            _ => {}
        }
    }
    for (name, _) in CANNOT_EXPRESS {
        assert!(
            dir.join(name).is_file(),
            "CANNOT_EXPRESS names {name}, which is gone"
        );
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Values on both sides of each type's and key's limits.
const SAMPLES: &[(&str, &[&str])] = &[
    (
        "mount[].size",
        &[
            "0", "1024", "\"64M\"", "\"64m\"", "\"1g\"", "\"1GiB\"", "\"1kb\"", "\"12 K\"",
            "\" 5 \"", "\"12X\"", "\"M\"", "\"\"", "\"1.5G\"", "\"-1\"", "-1", "true", "1.5",
        ],
    ),
    (
        "rlimits.nofile",
        &[
            "1024",
            "\"unlimited\"",
            "\"Unlimited\"",
            "\"64K\"",
            "\"lots\"",
            "-5",
            "0",
        ],
    ),
    (
        "mount[].mode",
        &[
            "\"0755\"",
            "\"1777\"",
            "\"0o755\"",
            "\"7777\"",
            "\"07777\"",
            "\"17777\"",
            "\"999\"",
            "\"0\"",
            "\"\"",
            "\"0o\"",
            "\"000777\"",
            "755",
        ],
    ),
    (
        "identity",
        &[
            "\"self\"",
            "\"root\"",
            "\"1000\"",
            "\"1000:100\"",
            "\"1000:staff\"",
            "\"admin\"",
            "\":1\"",
            "\"1:\"",
            "1000",
            "-1",
            "true",
            "\"4294967296\"",
        ],
    ),
    (
        "seccomp.errno",
        &["\"EPERM\"", "\"EWHAT\"", "1", "0", "4095", "4096", "\"1\""],
    ),
    (
        "hostname",
        &[
            "\"box\"",
            "\"bad host!\"",
            "\"a.b-c\"",
            "\"\"",
            "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
        ],
    ),
    (
        "cwd",
        &[
            "\"/work\"",
            "\"work\"",
            "\"~/x\"",
            "\"~x\"",
            "\"${HOME}/x\"",
            "\"${HOEM}/x\"",
            "\"/a/../b\"",
            "\"$$x\"",
            "\"/a$b\"",
            "\"${USER}/x\"",
            "\"/a/..b\"",
        ],
    ),
    (
        "env.keep",
        &[
            "[\"A\"]",
            "[\"A*\"]",
            "[\"!A\"]",
            "[\"A*B\"]",
            "[\"*\"]",
            "[\"1A\"]",
            "[\"!\"]",
            "[\"!A*\"]",
            "[\"a_b\"]",
            "[\"!*\"]",
        ],
    ),
    (
        "extends",
        &["[\"cli\"]", "[\"../evil\"]", "[\"nope\"]", "[\"a/./b\"]"],
    ),
    ("mount[].dst", &["\"/\"", "\"//\"", "\"/x\"", "\"/x/\""]),
    ("landlock.tcp_bind", &["[80]", "[70000]", "[-1]", "[]"]),
    ("command", &["[]", "[\"sh\"]"]),
];

/// Keys that need another key beside them in the sample, and keys checked
/// only when `enforce` allows it.
fn sample_profile(path: &str, value: &'static str) -> String {
    let doc = reference::doc(path).unwrap();
    let text = reference::example_profile(&reference::Doc {
        example: value,
        ..*doc
    })
    .unwrap();
    match path {
        p if p.starts_with("limits.") => {
            text.replace("[limits]\n", "[limits]\nenforce = \"best-effort\"\n")
        }
        _ => text,
    }
}

#[test]
fn the_schema_and_hutch_check_agree_on_values_around_each_limit() {
    if let Err(why) = validator() {
        return skip(&why);
    }
    let s = Scratch::new();
    let mut cases = Vec::new();
    for (path, values) in SAMPLES {
        for value in *values {
            let name = format!("sample-{}.toml", cases.len());
            let file = s.write(&name, &sample_profile(path, value));
            cases.push((*path, *value, file));
        }
    }
    let verdicts = validate(&cases.iter().map(|(_, _, f)| f.clone()).collect::<Vec<_>>());
    let mut wrong = Vec::new();
    for (path, value, file) in &cases {
        let out = s
            .hutch(&["check", file.to_str().unwrap()])
            .output()
            .unwrap();
        let hutch_ok = out.status.success();
        let verdict = &verdicts[file];
        let schema_ok = verdict.starts_with("ok");
        let listed = SCHEMA_IS_LOOSER
            .iter()
            .any(|(p, v, _)| p == path && v == value);
        let expected = if listed {
            !hutch_ok && schema_ok
        } else {
            hutch_ok == schema_ok
        };
        if !expected {
            wrong.push(format!(
                "{path} = {value}: hutch check {}, the schema {verdict}{}",
                if hutch_ok {
                    "accepts".into()
                } else {
                    format!("refuses ({})", stderr(&out).lines().next().unwrap_or(""))
                },
                if listed {
                    " (listed in SCHEMA_IS_LOOSER)"
                } else {
                    ""
                }
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
