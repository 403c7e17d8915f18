//! The child of `hutch exec`, already in the sandbox's namespaces: confine
//! exactly as the payload was confined, then execute the command.

use nix::errno::Errno;

use super::{Fail, confine, exec_payload};
use crate::prepare::report::{self, Step};
use crate::prepare::{Pipes, Prepared};
use crate::sys;

/// Entry point of the joined child. Never returns.
pub fn run(prepared: &Prepared, pipes: Pipes) -> ! {
    let code = match setup(prepared, pipes) {
        Ok(()) => exec_payload(prepared, pipes.report),
        Err(f) => {
            report::send(pipes.report, f.step, f.errno, f.arg);
            125
        }
    };
    sys::exit_now(code)
}

fn setup(prepared: &Prepared, pipes: Pipes) -> Result<(), Fail<'_>> {
    let mut keep = [pipes.report, pipes.go];
    keep.sort_unstable();
    sys::close_fds_from(3, &keep);
    super::die_with_parent(pipes.go)?;
    // SAFETY: cwd is NUL-terminated; joining the mount namespace put us at
    // the sandbox's root.
    if unsafe { libc::chdir(prepared.cwd.as_ptr()) } < 0 {
        return Err(Fail::with(
            Step::Chdir,
            Errno::last(),
            prepared.cwd.to_bytes(),
        ));
    }
    confine(prepared, pipes.learn)
}
