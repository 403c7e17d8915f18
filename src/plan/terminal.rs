//! Planning how the payload meets the caller's terminal: it keeps it (same
//! session, job control; the seccomp filter blocks TIOCSTI and TIOCLINUX),
//! it gets none (a new session), or it gets a pseudo-terminal of its own,
//! allocated in the sandbox's devpts and relayed by hutch (`terminal =
//! "pty"`, what `docker run -it` does).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::mounts::{MountOp, PlannedMount};
use super::security::SeccompPlan;
use crate::host::Host;
use crate::profile::schema::Terminal;
use crate::profile::{Profile, ProfileError};

/// The payload's own pseudo-terminal: allocated in the devpts of the
/// `dev` mount at `dev`, made the payload's controlling terminal, and
/// relayed by hutch to the caller's terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtyPlan {
    /// The `dev` mount whose private devpts holds it (`/dev`: programs
    /// name a pseudo-terminal `/dev/pts/N`).
    pub dev: PathBuf,
    /// Which of standard input, output and error are the caller's
    /// terminal: the payload gets the new one in their place (the others,
    /// files or pipes, it keeps).
    pub replaces: [bool; 3],
}

/// What [`plan_terminal`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalPlan {
    /// The payload runs in a session of its own, without the caller's
    /// terminal.
    pub new_session: bool,
    /// ... and with a pseudo-terminal of its own as controlling terminal.
    pub pty: Option<PtyPlan>,
}

impl TerminalPlan {
    const CALLERS: TerminalPlan = TerminalPlan {
        new_session: false,
        pty: None,
    };
    const NONE: TerminalPlan = TerminalPlan {
        new_session: true,
        pty: None,
    };
}

/// Decides the payload's terminal from the profile's `terminal`, the
/// seccomp filter and which of the caller's standard descriptors are
/// terminals.
pub fn plan_terminal(
    profile: &Profile,
    host: &Host,
    seccomp: &SeccompPlan,
    mounts: &[PlannedMount],
) -> Result<TerminalPlan, ProfileError> {
    let at = profile.last(|p| p.terminal.as_ref());
    let filtered = seccomp.blocks_tty_injection();
    let ttys = host.std_terminals();
    let auto = if ttys[0] && filtered {
        TerminalPlan::CALLERS
    } else {
        TerminalPlan::NONE
    };
    match at.as_ref().map_or(Terminal::Auto, |a| *a.get()) {
        Terminal::None => Ok(TerminalPlan::NONE),
        Terminal::Auto => Ok(auto),
        Terminal::Inherit if filtered => Ok(TerminalPlan::CALLERS),
        Terminal::Inherit => Err(at
            .expect("explicit")
            .diag("`terminal = \"inherit\"` without the seccomp filter that blocks TIOCSTI and TIOCLINUX would let the program type commands into your terminal")
            .help("keep the default seccomp filter (and its @tty-inject group), or use `terminal = \"none\"` or `\"pty\"`")
            .into()),
        Terminal::Pty => {
            let Some(dev) = private_devpts(mounts) else {
                return Err(at
                    .expect("explicit")
                    .diag("`terminal = \"pty\"` needs a `dev` mount at /dev: the pseudo-terminal is allocated in its private devpts, where programs look for /dev/pts/N")
                    .help("add a [[mount]] with type = \"dev\" and dst = \"/dev\" (`base/system` and `container` have one), or use `terminal = \"auto\"`")
                    .into());
            };
            // Only a fully interactive caller gets a relay: with standard
            // output a pipe (`| less`), hutch would compete with the reader
            // of the terminal for its input.
            Ok(if ttys[0] && ttys[1] {
                TerminalPlan {
                    new_session: true,
                    pty: Some(PtyPlan {
                        dev: dev.to_path_buf(),
                        replaces: ttys,
                    }),
                }
            } else {
                auto
            })
        }
    }
}

/// The destination of the `dev` mount whose devpts the sandbox sees at
/// /dev/pts: the last mount at /dev or on /dev/pts must be that `dev`.
fn private_devpts(mounts: &[PlannedMount]) -> Option<&Path> {
    let dev = Path::new("/dev");
    let last = mounts.iter().rev().find(|m| {
        let dst = m.op.dst();
        dst == dev || dst.starts_with("/dev/pts")
    })?;
    match &last.op {
        MountOp::Dev { dst } => Some(dst),
        _ => None,
    }
}

/// What `--explain` says about the terminal.
pub fn describe(new_session: bool, pty: Option<&PtyPlan>) -> String {
    match (new_session, pty) {
        (_, Some(p)) => {
            let names = ["standard input", "output", "error"];
            let replaced: Vec<&str> = names
                .iter()
                .zip(p.replaces)
                .filter_map(|(n, r)| r.then_some(*n))
                .collect();
            format!(
                "its own pseudo-terminal in the devpts at {}/pts, relayed by hutch in place of the caller's ({}); new session",
                p.dev.display(),
                replaced.join(", ")
            )
        }
        (true, None) => "new session, no controlling terminal".into(),
        (false, None) => "the caller's (job control kept; TIOCSTI/TIOCLINUX filtered)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{self, Request};
    use crate::profile::{ProfileRef, SearchPath, load};

    /// The terminal plan of `p.toml` (`body` after `version = 1`) for a
    /// caller whose standard descriptors are terminals as `ttys` says.
    fn terminal_of(body: &str, ttys: [bool; 3]) -> Result<(bool, Option<PtyPlan>), String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), format!("version = 1\n{body}")).unwrap();
        let path = dir.path().display().to_string();
        let host = Host::fixed(
            1000,
            1000,
            &[("HOME", "/home/u"), ("HUTCH_PROFILE_PATH", &path)],
            "/home/u",
        )
        .with_std_terminals(ttys);
        let search = SearchPath::standard(&host);
        let profile = load(&ProfileRef::Name("p".into()), &search).map_err(|e| e.to_string())?;
        let request = Request {
            command: vec!["true".into()],
            ..Request::default()
        };
        let plan = plan::build(&profile, &host, &request).map_err(|e| e.to_string())?;
        Ok((plan.security.new_session, plan.security.pty))
    }

    const SYSTEM: &str = "extends = [\"base/system\"]\n";
    const ALL: [bool; 3] = [true; 3];

    #[test]
    fn pty_is_given_to_an_interactive_caller_only() {
        let pty = format!("{SYSTEM}terminal = \"pty\"\n");
        let (new_session, p) = terminal_of(&pty, ALL).unwrap();
        assert!(new_session);
        assert_eq!(
            p,
            Some(PtyPlan {
                dev: "/dev".into(),
                replaces: ALL
            })
        );
        // Standard error to a file: kept.
        let (_, p) = terminal_of(&pty, [true, true, false]).unwrap();
        assert_eq!(p.unwrap().replaces, [true, true, false]);
        // Standard output a pipe: as `auto`, the caller's terminal.
        assert_eq!(
            terminal_of(&pty, [true, false, true]).unwrap(),
            (false, None)
        );
        // No terminal at all: a new session without one.
        assert_eq!(terminal_of(&pty, [false; 3]).unwrap(), (true, None));
    }

    #[test]
    fn auto_keeps_the_callers_terminal() {
        assert_eq!(terminal_of(SYSTEM, ALL).unwrap(), (false, None));
        assert_eq!(terminal_of(SYSTEM, [false; 3]).unwrap(), (true, None));
    }

    #[test]
    fn pty_needs_no_seccomp_filter() {
        let body = format!("{SYSTEM}terminal = \"pty\"\n[seccomp]\ndefault = false\n");
        assert!(terminal_of(&body, ALL).unwrap().1.is_some());
        // Without a terminal and without the filter: a new session.
        assert_eq!(
            terminal_of(&body, [true, false, false]).unwrap(),
            (true, None)
        );
    }

    #[test]
    fn pty_needs_a_private_devpts_at_dev() {
        let err = terminal_of("terminal = \"pty\"\n", ALL).unwrap_err();
        assert!(err.contains("needs a `dev` mount at /dev"), "{err}");
        // Refused whether or not this run is interactive: `hutch check`
        // says it too.
        let err = terminal_of("terminal = \"pty\"\n", [false; 3]).unwrap_err();
        assert!(err.contains("needs a `dev` mount at /dev"), "{err}");
        // A /dev elsewhere, or a tmpfs over /dev/pts, is not one.
        let moved = "terminal = \"pty\"\n[[mount]]\ntype = \"dev\"\ndst = \"/mydev\"\n";
        assert!(terminal_of(moved, ALL).is_err());
        let covered = format!(
            "{SYSTEM}terminal = \"pty\"\n[[mount]]\ntype = \"tmpfs\"\ndst = \"/dev/pts\"\n"
        );
        assert!(terminal_of(&covered, ALL).is_err());
    }

    #[test]
    fn explain_names_the_replaced_descriptors() {
        let p = PtyPlan {
            dev: "/dev".into(),
            replaces: [true, true, false],
        };
        assert_eq!(
            describe(true, Some(&p)),
            "its own pseudo-terminal in the devpts at /dev/pts, relayed by hutch in place of the caller's (standard input, output); new session"
        );
    }
}
