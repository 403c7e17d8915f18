//! The `hutch` binary. It skips Rust's runtime start-up (a stack-overflow
//! handler set up by reading /proc/self/maps, signal disposition changes):
//! hutch starts before every sandboxed command, and none of that is needed.
//! `app::main` does the one part that matters, making sure descriptors 0, 1
//! and 2 are open.
#![no_main]

#[unsafe(no_mangle)]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: these are the arguments the C runtime passes to main: argc
    // strings laid out by the kernel on the initial stack.
    unsafe { hutch::launch::prepare::record_command_line(argc, argv) };
    hutch::app::main()
}
