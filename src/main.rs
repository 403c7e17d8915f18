//! The `hutch` binary. It skips Rust's runtime start-up (a stack-overflow
//! handler set up by reading /proc/self/maps, signal disposition changes):
//! hutch starts before every sandboxed command, and none of that is needed.
//! `app::main` does the one part that matters, making sure descriptors 0, 1
//! and 2 are open.
#![no_main]

#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    hutch::app::main()
}
