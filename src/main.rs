//! The `hutch` binary. It skips Rust's runtime start-up (a stack-overflow
//! handler set up by reading /proc/self/maps, signal disposition changes):
//! hutch starts before every sandboxed command, and none of that is needed.
//! `app::main` does the one part that matters, making sure descriptors 0, 1
//! and 2 are open.
//!
//! The arguments are taken from `main`'s own `argc`/`argv`: without Rust's
//! start-up, `std::env::args` is filled only where the C library hands them
//! to initialisers too (glibc does, musl does not).
#![no_main]
#![deny(unsafe_code)]

use std::ffi::{CStr, OsString};

// With musl, hutch brings its own allocator (see Cargo.toml); with glibc it
// uses glibc's.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
use std::os::unix::ffi::OsStringExt;

#[allow(
    unsafe_code,
    reason = "the C entry point: its name is the C runtime's, and argv is a raw pointer from it"
)]
#[unsafe(no_mangle)]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: these are the arguments the C runtime passes to main: argc
    // strings laid out by the kernel on the initial stack.
    unsafe { hutch::host::command_line::record(argc, argv) };
    let count = usize::try_from(argc).unwrap_or(0);
    #[allow(
        clippy::multiple_unsafe_ops_per_block,
        reason = "an argv entry is read by offsetting the argv pointer and reading through it, under the C runtime's one guarantee"
    )]
    let args = (0..count)
        // SAFETY: argv holds argc valid pointers (see above).
        .map(|i| unsafe { *argv.add(i) })
        .take_while(|p| !p.is_null())
        // SAFETY: each non-null argv entry is a NUL-terminated string.
        .map(|p| OsString::from_vec(unsafe { CStr::from_ptr(p) }.to_bytes().to_vec()))
        .collect();
    hutch::app::main(args)
}
