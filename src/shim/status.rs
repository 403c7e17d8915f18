//! Whether a program is installed and whether its shim is what runs:
//! `hutch shim list`, and the columns of `hutch profiles`.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::diag::sanitize;
use crate::host::Host;

use super::lookup::{self, FileId, Hit};
use super::{Scope, record};

/// Where a shim stands in `PATH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShimState {
    /// The program's name finds the shim first.
    Active,
    /// The name finds something else first (`shadowed_by`).
    Shadowed,
    /// The shim's directory is not in `PATH`.
    NotOnPath,
    /// The shim install made is gone, or no longer leads to hutch.
    Missing,
}

impl ShimState {
    pub fn describe(self) -> &'static str {
        match self {
            ShimState::Active => "active",
            ShimState::Shadowed => "shadowed",
            ShimState::NotOnPath => "not on PATH",
            ShimState::Missing => "missing",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShimInfo {
    pub path: PathBuf,
    pub state: ShimState,
    /// What the name runs instead, when shadowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadowed_by: Option<PathBuf>,
}

/// A program name's standing on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProgramStatus {
    /// The program `PATH` finds for the name, hutch's shims left out.
    pub installed: Option<PathBuf>,
    /// Its shim: the first in `PATH`, else one in the user's or the
    /// system's shim directory.
    pub shim: Option<ShimInfo>,
}

/// The standing of `name` for the caller (`PATH` as given; `own`:
/// hutch's identity, without which no shim can be recognised).
pub fn program_status(name: &str, host: &Host, own: Option<FileId>, path: &OsStr) -> ProgramStatus {
    let Some(own) = own else {
        let installed = lookup::find(name.as_ref(), path, FileId { dev: 0, ino: 0 }).program;
        return ProgramStatus {
            installed,
            shim: None,
        };
    };
    let hits = lookup::all_hits(name.as_ref(), path, own);
    let installed = hits.iter().find_map(|h| match h {
        Hit::Program(p) => Some(p.clone()),
        Hit::Shim(_) => None,
    });
    let first_shim = hits.iter().find_map(|h| match h {
        Hit::Shim(p) => Some(p.clone()),
        Hit::Program(_) => None,
    });
    let shim = match (hits.first(), first_shim) {
        (Some(Hit::Shim(p)), _) => Some(ShimInfo {
            path: p.clone(),
            state: ShimState::Active,
            shadowed_by: None,
        }),
        (_, Some(p)) => Some(ShimInfo {
            path: p,
            state: ShimState::Shadowed,
            shadowed_by: installed.clone(),
        }),
        _ => [Scope::User, Scope::System]
            .into_iter()
            .filter_map(|s| s.bin_dir(host))
            .map(|d| d.join(name))
            .find(|p| lookup::executable_id(p) == Some(own))
            .map(|path| ShimInfo {
                path,
                state: ShimState::NotOnPath,
                shadowed_by: None,
            }),
    };
    ProgramStatus { installed, shim }
}

/// Where the shim at `shim` stands in `path`.
fn standing(shim: &Path, name: &str, own: FileId, path: &OsStr) -> (ShimState, Option<PathBuf>) {
    if lookup::executable_id(shim) != Some(own) {
        return (ShimState::Missing, None);
    }
    let dir = shim.parent().unwrap_or(Path::new("/"));
    if !lookup::path_dirs(path).any(|d| lookup::same_dir(d, dir)) {
        return (ShimState::NotOnPath, None);
    }
    match lookup::all_hits(name.as_ref(), path, own)
        .into_iter()
        .next()
    {
        Some(Hit::Shim(p)) if p.parent().is_some_and(|d| lookup::same_dir(d, dir)) => {
            (ShimState::Active, None)
        }
        Some(Hit::Shim(p) | Hit::Program(p)) => (ShimState::Shadowed, Some(p)),
        None => (ShimState::Missing, None),
    }
}

#[derive(Serialize)]
struct Listed {
    name: String,
    scope: Scope,
    profile: String,
    shim: PathBuf,
    state: ShimState,
    #[serde(skip_serializing_if = "Option::is_none")]
    shadowed_by: Option<PathBuf>,
    /// The program the shim runs now.
    program: Option<PathBuf>,
    /// Whether install made the symlink (else it was there, and stays).
    made_by_install: bool,
    menu_entries: Vec<PathBuf>,
}

/// `hutch shim list`.
pub fn list(json: bool) -> i32 {
    let host = Host::current();
    let own = lookup::own_id().ok();
    let path = lookup::current_path();
    let mut listed = Vec::new();
    let mut status = 0;
    for scope in [Scope::User, Scope::System] {
        let (Some((record_path, owner)), Some(bin)) =
            (scope.record_path(&host), scope.bin_dir(&host))
        else {
            continue;
        };
        let record = match record::read(&record_path, owner) {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => {
                eprintln!("hutch: {}", sanitize(&e.to_string()));
                status = 1;
                continue;
            }
        };
        for s in &record.shims {
            let shim = s
                .link
                .as_ref()
                .map_or_else(|| bin.join(&s.name), |l| l.path.clone());
            let (state, shadowed_by) = match own {
                Some(own) => standing(&shim, &s.name, own, &path),
                None => (ShimState::Missing, None),
            };
            listed.push(Listed {
                program: own.and_then(|o| lookup::find(s.name.as_ref(), &path, o).program),
                name: s.name.clone(),
                scope,
                profile: s.effective_profile().to_string(),
                shim,
                state,
                shadowed_by,
                made_by_install: s.link.is_some(),
                menu_entries: s.desktop.iter().map(|o| o.path.clone()).collect(),
            });
        }
    }
    let out = if json {
        serde_json::to_string_pretty(&listed).unwrap_or_default() + "\n"
    } else {
        render(&listed)
    };
    let _ = std::io::stdout().write_all(out.as_bytes());
    status
}

fn render(listed: &[Listed]) -> String {
    if listed.is_empty() {
        return "no shims installed by `hutch shim install`\n".into();
    }
    let w = listed
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:w$}  {:6}  {:12}  {:22}  SHIM → PROGRAM\n",
        "NAME", "SCOPE", "PROFILE", "STATE"
    );
    for l in listed {
        let scope = match l.scope {
            Scope::User => "user",
            Scope::System => "system",
        };
        let state = match &l.shadowed_by {
            Some(p) => format!("shadowed by {}", p.display()),
            None => l.state.describe().to_string(),
        };
        let program = l
            .program
            .as_ref()
            .map_or("(not installed)".into(), |p| p.display().to_string());
        let line = format!(
            "{:w$}  {scope:6}  {:12}  {state:22}  {} → {program}",
            l.name,
            l.profile,
            l.shim.display()
        );
        out.push_str(&sanitize(&line));
        out.push('\n');
        for m in &l.menu_entries {
            out.push_str(&sanitize(&format!("{:w$}  menu entry {}", "", m.display())));
            out.push('\n');
        }
    }
    out
}
