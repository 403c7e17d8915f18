//! What `hutch shim install --all` leaves out, and why: programs whose shim
//! would put other programs, or the system itself, in a sandbox meant for
//! one tool. Naming a program shims it anyway.
//!
//! The criterion, by kind:
//! - **starts other programs** (never): shells, and the programs that run
//!   a command they are given (`env`, `sudo`, `xargs`, terminal
//!   multiplexers, other sandboxes): every script and every command they
//!   start would run inside one sandbox, in the wrong profile.
//! - **builds** (never): compilers, linkers, build tools. A build runs them
//!   thousands of times (a launch each) and they need the whole tree.
//! - **scripts are made of it** (never): coreutils, grep, sed, awk,
//!   find and the like, which shell scripts call on every line.
//! - **interpreter** (with `--system`): `python3`, `perl`, `node`, ... A
//!   system-wide shim would run package-manager hooks, maintainer scripts
//!   and services in its sandbox (root's `PATH` starts with
//!   `/usr/local/bin`). In your own `~/.local/bin` only your commands see
//!   it, which is what you asked for.
//! - **the system calls it** (with `--system`): programs that package
//!   managers, maintainer scripts, cron jobs and services run by name —
//!   dpkg runs `tar` and `xz`, apt runs `gpgv`, scripts run `git`, `curl`,
//!   `wget`, `ssh`, `openssl`, `man`, `less`.

use super::Scope;
pub use crate::program_kinds::{Reason, reason};

impl Reason {
    /// Whether the reason keeps the program out of `--all` in `scope`.
    fn applies(self, scope: Scope) -> bool {
        match self {
            Reason::StartsPrograms | Reason::Builds | Reason::ScriptTool => true,
            Reason::Interpreter | Reason::SystemCalls => scope == Scope::System,
        }
    }
}

/// Why `--all` leaves `name` out in `scope`, if it does.
pub fn excluded(name: &str, scope: Scope) -> Option<Reason> {
    reason(name).filter(|r| r.applies(scope))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        // Your own shims of interpreters and of what the system runs are
        // yours to have; the system's are not.
        assert_eq!(excluded("python3", Scope::User), None);
        assert_eq!(excluded("git", Scope::User), None);
        assert_eq!(excluded("git", Scope::System), Some(Reason::SystemCalls));
        assert_eq!(excluded("bash", Scope::User), Some(Reason::StartsPrograms));
    }
}
