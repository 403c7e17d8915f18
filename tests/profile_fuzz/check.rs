//! What must hold for any bytes given as a profile (shared by the corpus
//! replay and the fuzz drivers: tests/profile_fuzz.rs and fuzz/afl/).
//!
//! An input is up to three files separated by NUL bytes (which no profile
//! holds): `fuzz.toml`, then its override `fuzz.local.toml`, then
//! `fuzzbase.toml`, which the first may extend (`extends = ["fuzzbase"]`
//! or `["fuzzbase.toml"]`); the built-in profiles are there too. They are
//! written into the search path of the synthetic machine
//! (tests/synthetic/), then `fuzz` is loaded and planned twice, as `hutch
//! run` plans it (a command, and the image the profile names, leased) and
//! as `hutch check` does (no command needed).
//!
//! A panic here is a finding: the loader or the planner panicked, an error
//! pointed outside its file, or a plan broke an invariant that
//! tests/plan_props.rs checks at length (destinations normalised inside
//! the root; the plan's JSON reads back).

use std::path::{Component, Path};

use crate::synthetic::Machine;
use hutch::diag::Diagnostic;
use hutch::plan::{self, Plan, Request, explain};
use hutch::profile::ProfileRef;

/// How far an input got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The loader refused it (syntax, keys, extends, version, ...).
    Refused,
    /// It loaded; `hutch run` would not plan it (`hutch check` may).
    Unplanned,
    /// It planned for `hutch run`.
    Planned,
}

/// The files an input is made of, in the search path.
const FILES: [&str; 3] = ["fuzz.toml", "fuzz.local.toml", "fuzzbase.toml"];

/// Writes the input's files where the machine looks for profiles.
pub fn write_files(machine: &Machine, bytes: &[u8]) {
    let mut parts = bytes.splitn(FILES.len(), |b| *b == 0);
    for name in FILES {
        let path = machine.profiles().join(name);
        match parts.next() {
            Some(part) => std::fs::write(&path, part).unwrap(),
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// Loads and plans the input on `machine`, checking what came out.
pub fn check(machine: &Machine, bytes: &[u8]) -> Outcome {
    write_files(machine, bytes);
    let host = machine.host();
    let profile = match machine.load(&host, &ProfileRef::Name("fuzz".into())) {
        Ok(p) => p,
        Err(e) => {
            sound_diagnostic(&e.0);
            return Outcome::Refused;
        }
    };
    let run = Request {
        command: vec!["/bin/sh".into(), "-c".into(), "true".into()],
        command_optional: false,
        // `hutch run` leases the image a profile names before planning;
        // a request that is not `--image` is ignored by a profile that
        // names none.
        image: Some(machine.image(false)),
    };
    let check = Request {
        command: Vec::new(),
        command_optional: true,
        image: None,
    };
    let mut outcome = Outcome::Planned;
    for request in [run, check] {
        match plan::build(&profile, &host, &request) {
            Ok(plan) => sound_plan(&plan),
            Err(e) => {
                sound_diagnostic(&e.0);
                outcome = Outcome::Unplanned;
            }
        }
    }
    outcome
}

/// Errors that have no place in a file to point at: the file as a whole
/// cannot be read (its path is in the message).
const WITHOUT_A_PLACE: &[&str] = &[
    "profile file is not valid UTF-8",
    "refusing profile override",
];

/// An error renders, and points at a place inside its file.
fn sound_diagnostic(d: &Diagnostic) {
    let _ = d.render();
    let _ = d.to_string();
    let Some(span) = &d.span else {
        assert!(
            WITHOUT_A_PLACE.iter().any(|m| d.message.contains(m)),
            "an error that points nowhere: {}",
            d.message
        );
        return;
    };
    let file = d.file.as_ref().expect("a span without a file");
    assert!(
        span.start <= span.end && span.end <= file.text.len(),
        "{}: span {span:?} outside the file ({} bytes): {}",
        file.name,
        file.text.len(),
        d.message
    );
}

/// Every destination is a normalised path below `/`, `--explain` renders,
/// and the JSON of the plan (as the registry stores it) reads back the same.
fn sound_plan(plan: &Plan) {
    for m in &plan.mounts {
        let dst = m.op.dst();
        assert!(
            normalised(dst) && dst != Path::new("/"),
            "destination {dst:?} from {}",
            m.from
        );
    }
    let _ = explain::render(plan);
    let json = serde_json::to_string(plan).unwrap();
    let again: Plan = serde_json::from_str(&json).expect("the plan's JSON reads back");
    assert_eq!(
        serde_json::to_string(&again).unwrap(),
        json,
        "JSON round trip"
    );
}

fn normalised(p: &Path) -> bool {
    let mut rebuilt = String::new();
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => {
                rebuilt.push('/');
                rebuilt.push_str(&n.to_string_lossy());
            }
            _ => return false,
        }
    }
    p.as_os_str().as_encoded_bytes() == rebuilt.as_bytes()
}
