//! The profile loader and the planner against hostile profiles.
//!
//! `cargo test` replays, through the checks of tests/profile_fuzz/check.rs,
//! every shipped profile, every file of tests/bad-profiles/ and the
//! committed corpus (tests/fuzz-corpus/profile/: the composed seeds of
//! tests/profile_fuzz/generate.rs, inputs that once failed, and inputs a
//! coverage-guided fuzzer kept). The fuzzer itself runs outside CI, on the
//! stable toolchain:
//!
//! ```sh
//! TMPDIR=/dev/shm HUTCH_FUZZ_EXECS=1000000 cargo test --release --test profile_fuzz -- --ignored --nocapture
//! ```
//!
//! (Every execution writes the input's files into the synthetic machine,
//! which lives in `$TMPDIR`: on a busy disk, a tmpfs is five times faster.)
//!
//! It feeds profiles generated key by key, mutations of real ones (lines,
//! values, bytes, long and deeply nested values) and several of them as
//! the files of one profile (extends, override) to the loader and the
//! planner, and fails on a panic, a broken check, an allocation out of
//! proportion to the input, or an input that takes over 10 s; the input is
//! then written to `target/profile-fuzz-crashes/`, to be added to the
//! corpus once fixed. fuzz/afl/ runs the same checks under AFL++.
//! `HUTCH_BLESS=1 cargo test --test profile_fuzz` rewrites the seed files.

#[path = "profile_fuzz/check.rs"]
mod check;
#[path = "fuzz_kit/mod.rs"]
mod fuzz_kit;
#[path = "profile_fuzz/generate.rs"]
mod generate;
#[path = "synthetic/mod.rs"]
mod synthetic;

use std::time::Duration;

use arbitrary::Unstructured;
use check::{Outcome, check};
use fuzz_kit::{Fuzzer, SplitMix, assert_seed_committed, corpus_dir, files_in, manifest, measure};
use synthetic::Machine;

/// The most loading and planning a profile of `len` bytes may cost: a
/// fixed part (the built-in profiles it may extend, the default seccomp
/// rules, the plan and its JSON twice) and a part in proportion to the
/// text (its copies, the parsed values with their spans, the messages
/// that quote it).
fn allocation_bound(len: usize) -> usize {
    64 * len + (4 << 20)
}

/// Runs `check` on `bytes`, measuring its peak allocation and its time.
fn measured(machine: &Machine, bytes: &[u8]) -> (Outcome, usize, Duration) {
    let (outcome, peak, took) = measure(|| check(machine, bytes));
    assert!(
        peak <= allocation_bound(bytes.len()),
        "{peak} bytes allocated to load and plan {} bytes",
        bytes.len()
    );
    (outcome, peak, took)
}

/// The committed corpus, the shipped profiles and tests/bad-profiles/.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let toml = |n: &str| n.ends_with(".toml");
    let mut all = files_in(&corpus_dir("profile"), |_| true);
    all.extend(files_in(&manifest().join("profiles"), toml));
    all.extend(files_in(&manifest().join("profiles/base"), toml));
    all.extend(files_in(&manifest().join("tests/bad-profiles"), toml));
    all
}

/// Every input of the corpus passes the checks; the corpus holds the seeds
/// as generate.rs builds them today; the shipped profiles plan, and the
/// bad profiles are refused.
#[test]
fn the_corpus_replays_cleanly() {
    let machine = Machine::new();
    for (name, bytes) in generate::seeds() {
        assert_seed_committed(&corpus_dir("profile"), name, &bytes);
    }
    let mut outcomes = Vec::new();
    for (name, bytes) in corpus() {
        match std::panic::catch_unwind(|| measured(&machine, &bytes)) {
            Ok((outcome, _, _)) => outcomes.push((name, outcome)),
            Err(_) => panic!("{name}: the finding above"),
        }
    }
    let outcome_of = |n: &str| outcomes.iter().find(|(name, _)| name == n).map(|o| o.1);
    for shipped in ["default.toml", "cli.toml", "container.toml", "system.toml"] {
        assert_eq!(outcome_of(shipped), Some(Outcome::Planned), "{shipped}");
    }
    let bad = files_in(&manifest().join("tests/bad-profiles"), |n| {
        n.ends_with(".toml")
    });
    // Nearly all are refused here too (a few need the real machine: the
    // image store, the caller's own runtime directory).
    let refused = bad
        .iter()
        .filter(|(n, _)| outcome_of(n) != Some(Outcome::Planned))
        .count();
    assert!(
        refused * 10 >= bad.len() * 9,
        "only {refused} of {} bad profiles refused",
        bad.len()
    );
    let planned = outcomes
        .iter()
        .filter(|(n, o)| n.starts_with("seed-") && *o == Outcome::Planned)
        .count();
    assert!(planned >= 4, "only {planned} composed seeds plan");
}

#[test]
#[ignore = "the fuzzer: run it outside CI (see the module doc)"]
fn fuzz_the_loader_and_planner() {
    let machine = Machine::new();
    let bases: Vec<Vec<u8>> = corpus().into_iter().map(|(_, b)| b).collect();
    // Those that plan: mutations of them reach the planner more often.
    let good: Vec<Vec<u8>> = bases
        .iter()
        .filter(|b| check(&machine, b) == Outcome::Planned)
        .cloned()
        .collect();
    let mut fuzzer = Fuzzer::start("profile");
    let mut rng = SplitMix(fuzzer.seed);
    let mut choices = vec![0u8; 4096];
    let mut counts = [0u64; 3];
    for _ in 0..fuzzer.execs {
        rng.fill(&mut choices);
        let input = generate::input(&mut Unstructured::new(&choices), &good, &bases).unwrap();
        counts[fuzzer.check(input, |b| measured(&machine, b)) as usize] += 1;
    }
    let [refused, unplanned, planned] = counts;
    let counts =
        format!("refused {refused}, loaded but not planned {unplanned}, planned {planned}");
    eprintln!("{}", fuzzer.summary(&counts, |b| measured(&machine, b).2));
}
