//! AFL++ target for hutch's profile loader and planner: the input is a
//! profile (up to three files separated by NUL: the profile, its
//! `.local.toml` override, a base it may extend), loaded and planned on
//! the synthetic machine and checked exactly as the corpus replay of
//! `cargo test --test profile_fuzz` checks it (tests/profile_fuzz/check.rs).
//!
//! On stable Rust, from this directory (`cargo install cargo-afl` once):
//!
//! ```sh
//! cargo afl build --release
//! mkdir -p in-profile
//! cp ../../tests/fuzz-corpus/profile/* ../../profiles/*.toml ../../profiles/base/*.toml \
//!    ../../tests/bad-profiles/*.toml in-profile/
//! cargo afl fuzz -i in-profile -o out-profile -- target/release/profile-plan
//! ```
//!
//! The machine's tree is made once in `$HUTCH_FUZZ_MACHINE` (default
//! /tmp/hutch-profile-fuzz-machine; one per parallel fuzzer). Crashes land
//! in `out-profile/default/crashes/`; add each, once fixed, to
//! tests/fuzz-corpus/profile/ as `crash-<what>`. The corpus's `afl-*` files
//! are a run's queue reduced with `afl-cmin.bash` (from the AFL++ that
//! `cargo afl` built), so `cargo test` replays what the fuzzer reached.
//! Give the machine a tmpfs (`HUTCH_FUZZ_MACHINE=/dev/shm/...`): every
//! execution writes the input's files there.

#[path = "../../../tests/profile_fuzz/check.rs"]
mod check;
#[path = "../../../tests/synthetic/mod.rs"]
mod synthetic;

fn main() {
    let dir = std::env::var_os("HUTCH_FUZZ_MACHINE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/tmp/hutch-profile-fuzz-machine".into());
    let machine = synthetic::Machine::at(&dir);
    afl::fuzz!(|data: &[u8]| {
        check::check(&machine, data);
    });
}
