//! AFL++ target for hutch's D-Bus message decoder: the input is one message
//! as a bus would send it, checked exactly as the corpus replay of
//! `cargo test --test dbus_fuzz` checks it (tests/dbus_fuzz/check.rs).
//!
//! On stable Rust, from this directory (`cargo install cargo-afl` once):
//!
//! ```sh
//! cargo afl build --release
//! cargo afl fuzz -i ../../tests/fuzz-corpus/dbus -o out -- target/release/dbus-decode
//! ```
//!
//! Crashes land in `out/default/crashes/`; add each, once fixed, to
//! tests/fuzz-corpus/dbus/ as `crash-<what>`. The corpus's `afl-*` files are
//! a run's queue reduced with `afl-cmin.bash` (`cargo afl cmin` found no
//! coverage with this persistent target), so `cargo test` replays what the
//! fuzzer reached.

#[path = "../../../tests/dbus_fuzz/check.rs"]
mod check;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        check::check(data);
    });
}
