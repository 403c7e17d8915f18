//! hutch's exit statuses: one table for every subcommand (README, "Exit
//! status"; hutch(1)). hutch's own failures share one status, 125, as in
//! docker and podman: `run` and `exec` pass on the payload's status, so
//! hutch keeps clear of the small numbers a payload uses (and of 126, 127
//! and 128+N, which keep a shell's meaning).

/// Done.
pub const OK: i32 = 0;
/// The answer is no, and nothing failed: `check` found a profile invalid,
/// `doctor` a check that fails.
pub const NO: i32 = 1;
/// hutch itself failed, or was called wrongly (a command line it cannot
/// parse, a bad profile, no such sandbox, volume or image, a store it
/// cannot read or write, a setup step of the sandbox); one message on
/// stderr says what and what to do.
pub const FAILED: i32 = 125;
/// `run`, `exec`: the command was found but could not be executed.
pub const CANNOT_EXECUTE: i32 = 126;
/// `run`, `exec`: the command was not found inside the sandbox.
pub const NOT_FOUND: i32 = 127;
