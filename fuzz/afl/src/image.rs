//! AFL++ target for hutch's image import: the input is a mode byte and a
//! layer or an archive (see tests/image_fuzz/check.rs), checked exactly as
//! the corpus replay of `cargo test --test image_fuzz` checks it.
//!
//! On stable Rust, from this directory (`cargo install cargo-afl` once):
//!
//! ```sh
//! cargo afl build --release
//! cargo afl fuzz -i ../../tests/fuzz-corpus/image -o out-image -- target/release/image-import
//! ```
//!
//! Layers are unpacked below `$HUTCH_FUZZ_DIR` (default /dev/shm, else
//! the temporary directory), in a directory of the process's own.
//! Crashes land in `out-image/default/crashes/`; add each, once fixed, to
//! tests/fuzz-corpus/image/ as `crash-<what>`.

#[path = "../../../tests/image_fuzz/check.rs"]
mod check;

use std::path::PathBuf;

fn main() {
    let base = std::env::var_os("HUTCH_FUZZ_DIR")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(std::env::temp_dir);
    let root = base.join(format!("hutch-afl-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let work = check::Work::new(&root);
    afl::fuzz!(|data: &[u8]| {
        check::check(data, &work);
    });
}
