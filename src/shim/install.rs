//! `hutch shim install` and `hutch shim remove`.
//!
//! Every change is recorded before it is made (so that a hutch killed
//! half-way leaves a record `remove` can finish from), made without
//! following a symlink and without ever replacing a file that is not
//! hutch's: a symlink is created with `symlinkat` (which fails if the name
//! exists), an override is renamed in only where nothing is, or where
//! hutch's own unchanged override is. `remove` takes away what the record
//! lists and is unchanged, then the directories install created, if they
//! are empty.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use std::os::fd::OwnedFd;

use nix::fcntl::{AtFlags, Flock, FlockArg, readlinkat, renameat};
use nix::sys::stat::{SFlag, fstatat};
use nix::unistd::{UnlinkatFlags, symlinkat, unlinkat};

use crate::cli::{ShimInstallArgs, ShimRemoveArgs};
use crate::diag::sanitize;
use crate::host::Host;
use crate::profile::{ProfileRef, SearchPath};
use crate::safe_fs::{Dir, FsError, Require, file_type, lstat_at};

use super::lookup::{self, FileId};
use super::menus;
use super::record::{self, Link, Override, Record, Shim};
use super::{GENERIC_PROFILES, Scope, exclude};

mod installer;
mod remover;

use installer::Installer;
pub(super) use remover::remove;

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error(
        "--system changes /usr/local/bin, /usr/local/share/applications and /var/lib/hutch for every user: run it as root (sudo)"
    )]
    NotRoot,
    #[error("no home directory (HOME is not set): it holds the shim directory ~/.local/bin")]
    NoHome,
    #[error("cannot find hutch's own executable (/proc/self/exe): {0}")]
    OwnExe(Errno),
    #[error(transparent)]
    Record(#[from] record::RecordError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(
        "{} (owner uid {owner}, mode {mode:04o}) may be written by other users, who could replace what hutch puts there: `chmod o-w,g-w` it",
        .path.display()
    )]
    OpenToOthers {
        path: PathBuf,
        owner: u32,
        mode: u32,
    },
    #[error("{} is not valid UTF-8: hutch keeps its shims' places in its record as text", .0.display())]
    NotUtf8(PathBuf),
}

/// What one `install` or `remove` works with.
pub(super) struct Ctx<'h> {
    pub host: &'h Host,
    pub scope: Scope,
    pub owner: u32,
    pub own: FileId,
    /// hutch's executable: what a shim points to.
    pub hutch: PathBuf,
    pub path: OsString,
    pub bin: PathBuf,
    pub applications: PathBuf,
    pub state: PathBuf,
    pub record_path: PathBuf,
}

impl<'h> Ctx<'h> {
    pub fn new(host: &'h Host, scope: Scope) -> Result<Ctx<'h>, ShimError> {
        if scope == Scope::System && !nix::unistd::geteuid().is_root() {
            return Err(ShimError::NotRoot);
        }
        let (Some(bin), Some(applications), Some((record_path, owner)), Some(state)) = (
            scope.bin_dir(host),
            scope.applications_dir(host),
            scope.record_path(host),
            scope.state_dir(host),
        ) else {
            return Err(ShimError::NoHome);
        };
        for p in [&bin, &applications, &state] {
            if p.to_str().is_none() {
                return Err(ShimError::NotUtf8(p.clone()));
            }
        }
        Ok(Ctx {
            host,
            scope,
            owner,
            own: lookup::own_id().map_err(ShimError::OwnExe)?,
            hutch: lookup::own_path().map_err(ShimError::OwnExe)?,
            path: lookup::current_path(),
            bin,
            applications,
            state,
            record_path,
        })
    }

    /// The program behind `name` (in `PATH`, after hutch's shims).
    pub fn program(&self, name: &str) -> Option<PathBuf> {
        lookup::find(name.as_ref(), &self.path, self.own).program
    }

    pub fn read_record(&self) -> Result<Record, ShimError> {
        Ok(record::read(&self.record_path, self.owner)?.unwrap_or_else(Record::new))
    }

    /// The record's mode: the system's is read by every user's shims.
    fn record_mode(&self) -> u32 {
        match self.scope {
            Scope::User => 0o600,
            Scope::System => 0o644,
        }
    }

    /// Holds the state directory's lock: one `install` or `remove` at a
    /// time changes the record (a shim reading it needs no lock: the
    /// record is replaced whole).
    pub fn lock(&self, state: &Dir) -> Result<Flock<OwnedFd>, ShimError> {
        Flock::lock(state.readable()?, FlockArg::LockExclusive)
            .map_err(|(_, e)| FsError::io("cannot lock", state.path(), e).into())
    }

    pub fn save(&self, record: &Record, state: &Dir) -> Result<(), ShimError> {
        Ok(record.save(state, crate::paths::SHIM_RECORD, self.record_mode())?)
    }

    /// Opens the directory `path`, making what is missing (mode `mode`)
    /// and noting in `record` each directory made. Below the deepest
    /// directory that exists (the user's or the system's own layout,
    /// symlinks and all), nothing is followed; it must be the owner's, and
    /// others may not write to it.
    pub fn open_dir(&self, path: &Path, mode: u32, record: &mut Record) -> Result<Dir, ShimError> {
        let mut missing = Vec::new();
        let mut base = path;
        let mut dir = loop {
            if let Some(d) = Dir::open_configured(base)? {
                break d;
            }
            match (base.parent(), base.file_name()) {
                (Some(parent), Some(name)) => {
                    missing.push(name.to_str().ok_or(ShimError::NotUtf8(path.into()))?);
                    base = parent;
                }
                _ => return Err(FsError::io("cannot open", path, Errno::ENOENT).into()),
            }
        };
        let require = Require::owned_by(self.owner);
        for name in missing.into_iter().rev() {
            dir = match dir.sub(name, None, require)? {
                Some(d) => d,
                None => {
                    let made = dir
                        .sub(name, Some(mode), require)?
                        .ok_or_else(|| FsError::io("cannot create", path, Errno::ENOENT))?;
                    record.created(made.path().to_path_buf());
                    made
                }
            };
        }
        self.check_closed(&dir)?;
        Ok(dir)
    }

    /// A directory hutch writes to must be the owner's and closed to
    /// others; group write is fine where the group is the user's own (or
    /// root chose it, for the system's).
    fn check_closed(&self, dir: &Dir) -> Result<(), ShimError> {
        let st = dir.stat()?;
        let group_ok = self.scope == Scope::System || st.st_gid == self.host.gid;
        let open = st.st_mode & 0o002 != 0 || (st.st_mode & 0o020 != 0 && !group_ok);
        if st.st_uid != self.owner || open {
            return Err(ShimError::OpenToOthers {
                path: dir.path().to_path_buf(),
                owner: st.st_uid,
                mode: st.st_mode & 0o7777,
            });
        }
        Ok(())
    }
}

/// What is at the shim's place, and what install does about it.
#[derive(Debug, PartialEq, Eq)]
enum LinkPlan {
    Create,
    /// Install's own symlink, pointing to this hutch.
    Keep,
    /// Install's own symlink, pointing to where hutch was.
    Repoint,
    /// A shim of hutch install did not make: used, not owned.
    HandMade,
}

fn plan_link(
    ctx: &Ctx<'_>,
    bin: &Dir,
    name: &str,
    prev: Option<&Link>,
) -> Result<LinkPlan, String> {
    let shown = bin.path().join(name);
    let st = match lstat_at(bin.fd(), name) {
        Err(Errno::ENOENT) => return Ok(LinkPlan::Create),
        Err(e) => return Err(format!("cannot inspect {}: {}", shown.display(), e.desc())),
        Ok(st) => st,
    };
    if file_type(&st) == SFlag::S_IFLNK {
        let target = readlinkat(bin.fd(), name).map(PathBuf::from).ok();
        if let (Some(l), Some(t)) = (prev, &target)
            && &l.target == t
        {
            return Ok(if *t == ctx.hutch {
                LinkPlan::Keep
            } else {
                LinkPlan::Repoint
            });
        }
    }
    let leads_to = fstatat(bin.fd(), name, AtFlags::empty())
        .ok()
        .map(|s| FileId {
            dev: s.st_dev,
            ino: s.st_ino,
        });
    if leads_to == Some(ctx.own) {
        return Ok(LinkPlan::HandMade);
    }
    Err(format!(
        "{} exists and is not a shim of hutch: left as it is (move it away to shim {name} there)",
        shown.display()
    ))
}

fn make_link(ctx: &Ctx<'_>, bin: &Dir, name: &str, plan: &LinkPlan) -> Result<(), String> {
    let shown = bin.path().join(name);
    let failed = |e: Errno| format!("cannot make {}: {}", shown.display(), e.desc());
    match plan {
        LinkPlan::Create => symlinkat(&ctx.hutch, bin.fd(), name).map_err(failed),
        LinkPlan::Repoint => {
            let tmp = format!(".{name}.hutch-tmp");
            let _ = unlinkat(bin.fd(), tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            symlinkat(&ctx.hutch, bin.fd(), tmp.as_str()).map_err(failed)?;
            renameat(bin.fd(), tmp.as_str(), bin.fd(), name).map_err(failed)
        }
        LinkPlan::Keep | LinkPlan::HandMade => Ok(()),
    }
}

/// `hutch shim install`.
pub(super) fn install(args: &ShimInstallArgs) -> i32 {
    let host = Host::current();
    let ctx = match Ctx::new(&host, Scope::of(args.system)) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let search = SearchPath::standard(&host);
    let names = if args.all {
        all_candidates(&ctx, &search)
    } else {
        args.names.clone()
    };
    match Installer::open(&ctx, &search) {
        Ok(mut inst) => inst.run(&names, args.profile.as_deref()),
        Err(e) => fail(&e),
    }
}

fn fail(e: &ShimError) -> i32 {
    eprintln!("hutch: {}", sanitize(&e.to_string()));
    1
}

/// Every program `--all` shims: a profile of its name (not one of hutch's
/// bases), installed, and not left out by [`exclude`].
fn all_candidates(ctx: &Ctx<'_>, search: &SearchPath) -> Vec<String> {
    let mut names = crate::profile::load::names(ctx.host);
    names.retain(|n| search.find(n).is_some() && !GENERIC_PROFILES.contains(&n.as_str()));
    let mut out = Vec::new();
    for name in names {
        let Some(program) = ctx.program(&name) else {
            continue;
        };
        match exclude::excluded(&name, ctx.scope) {
            Some(why) => println!(
                "{name}: left out ({}): {}; `hutch shim install{} {name}` shims it anyway",
                sanitize(&program.display().to_string()),
                why.describe(),
                if ctx.scope == Scope::System {
                    " --system"
                } else {
                    ""
                }
            ),
            None => out.push(name),
        }
    }
    if out.is_empty() {
        println!("no installed program has a profile of its name to shim");
    }
    out
}

/// Reads the regular file `name` of `dir` (never through a symlink).
fn read_in(dir: &Dir, name: &str, owner: u32) -> Option<Vec<u8>> {
    dir.read_file(name, owner).ok().flatten()
}

/// Removes the file `name` from `dir` if it holds what hutch wrote
/// (`sha256`). `Ok(false)`: it was gone already.
fn remove_if_unchanged(dir: &Dir, name: &str, sha256: &str, owner: u32) -> Result<bool, String> {
    let shown = dir.path().join(name);
    match dir.read_file(name, owner) {
        Ok(None) => Ok(false),
        Ok(Some(bytes)) if record::digest(&bytes) == sha256 => {
            dir.unlink(name).map(|()| true).map_err(|e| e.to_string())
        }
        Ok(Some(_)) => Err(format!(
            "{} changed since hutch wrote it: left as it is",
            shown.display()
        )),
        Err(e) => Err(format!("{e}: left as it is")),
    }
}

/// Removes the directories install created that are empty now, the
/// deepest first.
fn remove_created(dirs: &[PathBuf]) {
    let mut dirs = dirs.to_vec();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let (Some(parent), Some(name)) = (d.parent(), d.file_name()) else {
            continue;
        };
        if let Ok(Some(p)) = Dir::open_configured(parent) {
            // ENOTEMPTY: something else lives there now; it stays.
            let _ = unlinkat(p.fd(), name, UnlinkatFlags::RemoveDir);
        }
    }
}

/// Whether `name` may be a shim's: a program name, not hutch's own.
fn valid_program_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "hutch"
        && !name.starts_with(['-', '.'])
        && !name.contains('/')
        && !name.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// The overrides of `prev` that `now` no longer has.
fn dropped_overrides<'a>(prev: Option<&'a Shim>, now: &[Override]) -> Vec<&'a Override> {
    prev.map(|p| {
        p.desktop
            .iter()
            .filter(|o| !now.iter().any(|n| n.path == o.path))
            .collect()
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_names() {
        for ok in ["jq", "g++", "python3.11", "7z", "x-www"] {
            assert!(valid_program_name(ok), "{ok}");
        }
        for bad in [
            "",
            "hutch",
            "-x",
            ".hidden",
            "a/b",
            "a b",
            "a\nb",
            &"x".repeat(256),
        ] {
            assert!(!valid_program_name(bad), "{bad:?}");
        }
    }
}
