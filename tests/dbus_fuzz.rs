//! The D-Bus message decoder (src/dbus/wire.rs) against hostile input.
//!
//! `cargo test` replays the committed corpus (tests/fuzz-corpus/dbus/: the
//! seed messages of tests/dbus_fuzz/generate.rs, inputs that once crashed,
//! and inputs a coverage-guided fuzzer kept) through the checks of
//! tests/dbus_fuzz/check.rs. The fuzzer itself runs outside CI, on the
//! stable toolchain:
//!
//! ```sh
//! HUTCH_FUZZ_EXECS=1000000 cargo test --release --test dbus_fuzz -- --ignored --nocapture
//! ```
//!
//! It feeds `arbitrary`-generated messages, mutations of valid ones and
//! headers over arbitrary bodies to the decoder, and fails on a panic, a
//! broken round trip, an allocation out of proportion to the input, or an
//! input that takes over 10 s; the input is then written to
//! `target/dbus-fuzz-crashes/`, to be added to the corpus once fixed.
//! `HUTCH_BLESS=1 cargo test --test dbus_fuzz` rewrites the seed files.

#[path = "dbus_fuzz/check.rs"]
mod check;
#[path = "fuzz_kit/mod.rs"]
mod fuzz_kit;
#[path = "dbus_fuzz/generate.rs"]
mod generate;

use std::time::Duration;

use arbitrary::Unstructured;
use check::{Outcome, check};
use fuzz_kit::{Fuzzer, SplitMix, assert_seed_committed, corpus_dir, files_in, measure};

/// The most a message of `len` bytes may cost to decode: the values read
/// from it (a byte becomes a 56-byte `Value`, and vectors double), a copy
/// of its body, and a little more.
fn allocation_bound(len: usize) -> usize {
    256 * len + (64 << 10)
}

/// Runs `check` on `bytes`, measuring its peak allocation and its time.
fn measured(bytes: &[u8]) -> (Outcome, usize, Duration) {
    let (outcome, peak, took) = measure(|| check(bytes));
    assert!(
        peak <= allocation_bound(bytes.len()),
        "{peak} bytes allocated to decode {} bytes",
        bytes.len()
    );
    (outcome, peak, took)
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    files_in(&corpus_dir("dbus"), |_| true)
}

/// Every input of the committed corpus passes the checks, and the corpus
/// holds the seeds as generate.rs builds them today, each getting as far
/// through the decoder as it should.
#[test]
fn the_corpus_replays_cleanly() {
    let seeds = generate::seeds();
    for (name, bytes, expected) in &seeds {
        assert_seed_committed(&corpus_dir("dbus"), name, bytes);
        assert_eq!(check(bytes), *expected, "seed {name}");
    }
    let mut replayed = 0;
    for (name, bytes) in corpus() {
        if std::panic::catch_unwind(|| measured(&bytes)).is_err() {
            panic!("{name}: the finding above");
        }
        replayed += 1;
    }
    assert!(replayed >= seeds.len(), "{replayed} inputs replayed");
}

#[test]
#[ignore = "the fuzzer: run it outside CI (see the module doc)"]
fn fuzz_the_decoder() {
    let bases: Vec<Vec<u8>> = corpus().into_iter().map(|(_, b)| b).collect();
    let mut fuzzer = Fuzzer::start("dbus");
    let mut rng = SplitMix(fuzzer.seed);
    let mut choices = vec![0u8; 4096];
    let mut counts = [0u64; 3];
    for _ in 0..fuzzer.execs {
        rng.fill(&mut choices);
        let input = generate::input(&mut Unstructured::new(&choices), &bases).unwrap();
        counts[fuzzer.check(input, measured) as usize] += 1;
    }
    let [refused, header_only, read] = counts;
    let counts = format!("refused {refused}, header only {header_only}, read {read}");
    eprintln!("{}", fuzzer.summary(&counts, |b| measured(b).2));
}
