//! The image import (src/image/: the tar reader and unpacker, the archive
//! reader and the index walk) against hostile input.
//!
//! `cargo test` replays the committed corpus (tests/fuzz-corpus/image/:
//! the seeds of tests/image_fuzz/generate.rs, inputs that once failed, and
//! inputs a coverage-guided fuzzer kept) through the checks of
//! tests/image_fuzz/check.rs. The fuzzer itself runs outside CI, on the
//! stable toolchain:
//!
//! ```sh
//! HUTCH_FUZZ_EXECS=1000000 cargo test --release --test image_fuzz -- --ignored --nocapture
//! ```
//!
//! It feeds generated layers (entries of every type, hostile names, long
//! names and PAX records, wrong sizes; plain, gzip or zstd) and archives
//! (indexes nested and fanned out, JSON damaged before it is hashed),
//! mutations of the corpus and raw bytes, and fails on a panic, on a
//! write outside the layer or anything an import must not leave in one, on
//! an allocation out of proportion to the input, or on an input that
//! takes over 10 s; the input is then written to
//! `target/image-fuzz-crashes/`, to be added to the corpus once fixed.
//! `HUTCH_FUZZ_DIR` chooses where the fuzzer unpacks layers (default:
//! /dev/shm, a tmpfs, where an input costs ~1 ms rather than ~14 ms on a
//! busy disk; before Linux 6.6 tmpfs has no user extended attributes, so
//! layers with opaque directories are refused there). The corpus replay
//! unpacks below the target directory.
//! `HUTCH_BLESS=1 cargo test --test image_fuzz` rewrites the seed files.
#[path = "image_fuzz/check.rs"]
mod check;
#[path = "fuzz_kit/mod.rs"]
mod fuzz_kit;
#[path = "image_fuzz/generate.rs"]
mod generate;

use std::path::PathBuf;
use std::time::Duration;

use arbitrary::Unstructured;
use check::{Mode, Outcome, Work, check};
use fuzz_kit::{Fuzzer, SplitMix, assert_seed_committed, corpus_dir, files_in, measure};

/// The most an input of `len` bytes may cost: the unpacker's buffer, a
/// PAX header at its limit, what the input describes (directories to set
/// the modes of, JSON documents), and for zstd the window its frame
/// header asks for (at most 128 MiB, ruzstd's limit, allocated up front).
fn allocation_bound(len: usize, mode: Mode) -> usize {
    let zstd_window = match mode {
        Mode::Layer(hutch::image::fuzzing::LayerFormat::Zstd) => 130 << 20,
        _ => 0,
    };
    4 * (1 << 20) + 64 * len + zstd_window
}

/// Runs `check` on `bytes`, measuring its peak allocation and its time.
fn measured(bytes: &[u8], work: &Work) -> (Outcome, usize, Duration) {
    let (outcome, peak, took) = measure(|| check(bytes, work));
    let mode = Mode::of(bytes.first().copied().unwrap_or(b'T'));
    assert!(
        peak <= allocation_bound(bytes.len(), mode),
        "{peak} bytes allocated for an input of {} bytes",
        bytes.len()
    );
    (outcome, peak, took)
}

/// A fresh work directory for the checks, below `base`.
fn work_dir(name: &str, base: PathBuf) -> (tempfile::TempDir, Work) {
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(base)
        .unwrap();
    let work = Work::new(&dir.path().join("w"));
    (dir, work)
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    files_in(&corpus_dir("image"), |_| true)
}

/// Every input of the committed corpus passes the checks, and the corpus
/// holds the seeds as generate.rs builds them today, each getting as far
/// as it should.
#[test]
fn the_corpus_replays_cleanly() {
    let (_dir, work) = work_dir("image-corpus-", env!("CARGO_TARGET_TMPDIR").into());
    let seeds = generate::seeds();
    for (name, bytes, expected) in &seeds {
        assert_seed_committed(&corpus_dir("image"), name, bytes);
        assert_eq!(check(bytes, &work), *expected, "seed {name}");
    }
    let mut replayed = 0;
    for (name, bytes) in corpus() {
        if std::panic::catch_unwind(|| measured(&bytes, &work)).is_err() {
            panic!("{name}: the finding above");
        }
        replayed += 1;
    }
    assert!(replayed >= seeds.len(), "{replayed} inputs replayed");
}

#[test]
#[ignore = "the fuzzer: run it outside CI (see the module doc)"]
fn fuzz_the_import() {
    let bases: Vec<Vec<u8>> = corpus().into_iter().map(|(_, b)| b).collect();
    let base = std::env::var_os("HUTCH_FUZZ_DIR")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    let (_dir, work) = work_dir("image-fuzz-", base);
    let mut fuzzer = Fuzzer::start("image");
    let mut rng = SplitMix(fuzzer.seed);
    let mut choices = vec![0u8; 4096];
    let mut counts = [0u64; 2];
    let mut by_mode = [0u64; 4];
    for _ in 0..fuzzer.execs {
        rng.fill(&mut choices);
        let input = generate::generated(&mut Unstructured::new(&choices), &bases).unwrap();
        let mode = Mode::of(input.first().copied().unwrap_or(b'T')).byte();
        by_mode[b"TGZA".iter().position(|&m| m == mode).unwrap()] += 1;
        counts[fuzzer.check(input, |b| measured(b, &work)) as usize] += 1;
    }
    let [refused, accepted] = counts;
    let [tar, gzip, zstd, archive] = by_mode;
    let counts = format!(
        "layers: {tar} tar, {gzip} gzip, {zstd} zstd; {archive} archives; refused {refused}, accepted {accepted}"
    );
    eprintln!("{}", fuzzer.summary(&counts, |b| measured(b, &work).2));
}
