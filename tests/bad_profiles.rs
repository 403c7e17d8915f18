//! Every file in tests/bad-profiles/ is a malformed profile. Its header says
//! what the error must contain:
//!
//! ```text
//! # expect: text that must appear in the message (one or more lines)
//! # at: LINE:COL            where the error points
//! # at-file: other.toml     if it points into another file
//! # mode: run               check with `hutch run` instead of `hutch check`
//! ```
//!
//! The directory is copied to a scratch dir owned by the test user, so that
//! `${CWD}` and relative `extends` resolve there.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

struct Case {
    name: String,
    expects: Vec<String>,
    at: Option<String>,
    at_file: Option<String>,
    run: bool,
}

fn cases(dir: &Path) -> Vec<Case> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut case = Case {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            expects: Vec::new(),
            at: None,
            at_file: None,
            run: false,
        };
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("# expect: ") {
                case.expects.push(v.to_string());
            } else if let Some(v) = line.strip_prefix("# at: ") {
                case.at = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("# at-file: ") {
                case.at_file = Some(v.to_string());
            } else if line.trim() == "# mode: run" {
                case.run = true;
            }
        }
        assert!(
            !case.expects.is_empty(),
            "{}: no `# expect:` line",
            case.name
        );
        out.push(case);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[test]
fn every_malformed_profile_gets_a_precise_error() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-profiles");
    let s = Scratch::new();
    let st = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(s.path().join("cases"))
        .status()
        .unwrap();
    assert!(st.success());
    s.chown_all();
    let dir = s.path().join("cases");
    let all = cases(&dir);
    assert!(
        all.len() >= 25,
        "the suite must keep at least 25 cases, has {}",
        all.len()
    );
    let mut failures = Vec::new();
    for case in &all {
        let file = format!("./{}", case.name);
        let mut cmd = if case.run {
            s.hutch(&["run", "--profile", &file, "--", "true"])
        } else {
            s.hutch(&["check", &file])
        };
        let out = cmd.current_dir(&dir).output().unwrap();
        let err = stderr(&out);
        let want_code = if case.run { 125 } else { 1 };
        let mut problems = Vec::new();
        if out.status.code() != Some(want_code) {
            problems.push(format!(
                "exit status {:?}, expected {want_code}",
                out.status.code()
            ));
        }
        if err.contains("panicked") {
            problems.push("hutch panicked".into());
        }
        for e in &case.expects {
            if !err.contains(e.as_str()) {
                problems.push(format!("message lacks {e:?}"));
            }
        }
        if let Some(at) = &case.at {
            let f = case.at_file.as_deref().unwrap_or(&case.name);
            let loc = format!("{f}:{at}");
            if !err.contains(&loc) {
                problems.push(format!("message lacks the location {loc:?}"));
            }
        }
        if !case.run && !err.starts_with("error: ") {
            problems.push("message does not start with `error: `".into());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}:\n  {}\n  --- stderr ---\n{}",
                case.name,
                problems.join("\n  "),
                err
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}
