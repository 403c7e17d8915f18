//! The registry's directory and its records: a private (0700) directory
//! of the caller's, opened without following symlinks; records written
//! whole (a temporary file renamed onto the name), read back only if they
//! are the caller's regular files; stale ones removed by whoever meets
//! them.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::RegistryError;
use super::namespaces::HeldNamespaces;
use super::procfs::{ProcId, boot_ticks, exe_id, proc_stat};
use super::record::{Record, State, VERSION, VolumeUse, now};
use crate::host::Host;
use crate::paths::{REGISTRY_DIR, valid_name};
use crate::safe_fs::{Dir, FsError, Publish, Require};
use crate::sys;

/// The registry directory, opened safely.
pub struct Registry {
    dir: Dir,
    pub path: PathBuf,
    pub(super) uid: u32,
}

/// Opens `name` in `parent` as a private directory of `uid` (making it
/// with 0700 when `create`): never through a symlink, and refused if
/// another user owns it or others may enter it.
fn private_dir(
    parent: &Dir,
    name: &str,
    uid: u32,
    create: bool,
) -> Result<Option<Dir>, RegistryError> {
    let refused = |path: PathBuf, why: String, fix| RegistryError::Unsafe { path, why, fix };
    match parent.sub(name, create.then_some(0o700), Require::private_to(uid)) {
        Ok(dir) => Ok(dir),
        Err(FsError::NotYours { path, owner, .. }) => Err(refused(
            path,
            format!("belongs to uid {owner}"),
            "remove it (it may have been planted by another user), or set XDG_RUNTIME_DIR",
        )),
        Err(FsError::NotPrivate { path, mode }) => Err(refused(
            path,
            format!("has mode {mode:04o}"),
            "run `chmod 700` on it",
        )),
        Err(FsError::Symlink(path) | FsError::NotADirectory(path)) => Err(refused(
            path,
            "is a symlink or not a directory".into(),
            "remove it (it may have been planted), or set XDG_RUNTIME_DIR",
        )),
        Err(e) => Err(e.into()),
    }
}

impl Registry {
    /// Opens the registry; with `create`, makes its directories (0700).
    /// `Ok(None)`: there is none yet (nothing is running).
    pub fn open(host: &Host, create: bool) -> Result<Option<Registry>, RegistryError> {
        let runtime = host
            .hutch_runtime_dir()
            .ok_or(RegistryError::NoRuntimeDir)?;
        if create && runtime.in_home {
            std::fs::create_dir_all(&runtime.base).map_err(|e| RegistryError::NoRuntimeBase {
                path: runtime.base.clone(),
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            })?;
        }
        // The base ($XDG_RUNTIME_DIR, /run/user/UID or $XDG_STATE_HOME) is
        // taken as the environment says; everything below is checked.
        let Some(mut dir) = Dir::open_configured(&runtime.base)? else {
            return Ok(None);
        };
        let below = runtime
            .path
            .strip_prefix(&runtime.base)
            .unwrap_or(Path::new("hutch"));
        for name in below.iter().chain([std::ffi::OsStr::new(REGISTRY_DIR)]) {
            let name = name.to_str().unwrap_or("hutch");
            let Some(next) = private_dir(&dir, name, host.uid, create)? else {
                return Ok(None);
            };
            dir = next;
        }
        Ok(Some(Registry {
            path: dir.path().to_path_buf(),
            dir,
            uid: host.uid,
        }))
    }

    /// Reads a record; `Ok(None)` if there is none by that name (or none
    /// this hutch can read: see below).
    pub(super) fn read(&self, name: &str) -> Result<Option<Record>, RegistryError> {
        let file = format!("{name}.json");
        let text = match self.dir.read_file(&file, self.uid) {
            Ok(Some(text)) => text,
            // Not the caller's regular file: not a record of theirs.
            Ok(None) | Err(FsError::NotYours { .. } | FsError::NotAFile(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match serde_json::from_slice::<Record>(&text) {
            Ok(r) if r.name == name && r.version == VERSION => Ok(Some(r)),
            // A record this hutch cannot read (another version): left alone
            // unless its launcher is gone.
            _ => {
                #[derive(Deserialize)]
                struct Minimal {
                    launcher: ProcId,
                }
                if let Ok(m) = serde_json::from_slice::<Minimal>(&text)
                    && proc_stat(m.launcher.pid).is_none()
                {
                    self.unlink(&file);
                }
                Ok(None)
            }
        }
    }

    /// Removes a file of the registry (a record, a temporary file), if
    /// it is there.
    pub(super) fn unlink(&self, file: &str) {
        let _ = self.dir.unlink(file);
    }

    /// Writes `record` whole: a temporary file renamed onto the name,
    /// without replacing an existing record when `replace` is false
    /// ([`FsError::Exists`]).
    fn write(&self, record: &Record, replace: bool) -> Result<(), RegistryError> {
        let data = serde_json::to_vec(record).map_err(|e| RegistryError::Encode {
            name: record.name.clone(),
            error: e.to_string(),
        })?;
        let how = Publish {
            tmp_dir: &self.dir,
            // A leftover of this name is a dead launcher's (same pid).
            tmp_name: &format!(".{}.{}.tmp", record.name, record.launcher.pid),
            replace,
            // The runtime directory is a tmpfs: nothing survives a crash.
            durable: false,
        };
        Ok(self
            .dir
            .publish(&format!("{}.json", record.name), &data, how)?)
    }

    /// Reserves a name for a sandbox about to start: `name`, or one made
    /// from the profile and a short random id. The record says which
    /// profile and command it runs and which volumes it uses.
    pub fn reserve(
        &self,
        name: Option<&str>,
        profile: &str,
        command: &[std::ffi::OsString],
        volumes: &[VolumeUse],
    ) -> Result<Entry<'_>, RegistryError> {
        if let Some(n) = name
            && !valid_name(n)
        {
            return Err(RegistryError::InvalidName(n.to_string()));
        }
        // Only what is cheap before the sandbox starts: the exact start time
        // and the executable are filled in once it runs.
        let mut record = Record {
            version: VERSION,
            name: String::new(),
            state: State::Starting,
            launcher: ProcId {
                pid: std::process::id() as i32,
                start: 0,
            },
            created: boot_ticks(),
            exe: (0, 0),
            init: None,
            uid: self.uid,
            profile: profile.to_string(),
            command: command.to_vec(),
            started: now(),
            volumes: volumes.to_vec(),
            namespaces: Vec::new(),
            cgroup: Vec::new(),
            plan: None,
        };
        for attempt in 0..8 {
            record.name = match name {
                Some(n) => n.to_string(),
                None => default_name(profile),
            };
            match self.write(&record, false) {
                Ok(()) => {
                    return Ok(Entry {
                        registry: self,
                        record,
                    });
                }
                Err(RegistryError::Fs(FsError::Exists(_))) => {
                    match self.read(&record.name)? {
                        Some(old) if !old.stale() => {
                            if name.is_none() && attempt < 7 {
                                continue;
                            }
                            return Err(RegistryError::Taken {
                                name: old.name.clone(),
                                pid: old.init.map_or(old.launcher.pid, |i| i.pid),
                                profile: old.profile,
                            });
                        }
                        // Stale (or unreadable and gone): take its place.
                        Some(_) => self.unlink(&format!("{}.json", record.name)),
                        None => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::Taken {
            name: record.name,
            pid: 0,
            profile: profile.to_string(),
        })
    }

    /// Every record, stale ones removed (and leftover temporary files of
    /// dead launchers). Sandboxes still starting are included.
    pub fn records(&self) -> Vec<Record> {
        let mut out = Vec::new();
        let names = self.dir.names().unwrap_or_default();
        for file in names.iter().filter_map(|n| n.to_str()) {
            if let Some(name) = file.strip_suffix(".json")
                && valid_name(name)
            {
                match self.read(name) {
                    Ok(Some(r)) if r.stale() => self.unlink(file),
                    Ok(Some(r)) => out.push(r),
                    _ => {}
                }
            } else if let Some(pid) = file
                .strip_suffix(".tmp")
                .and_then(|f| f.rsplit('.').next())
                .and_then(|p| p.parse::<i32>().ok())
                && proc_stat(pid).is_none()
            {
                self.unlink(file);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The record of a running sandbox.
    pub fn find(&self, name: &str) -> Result<Record, RegistryError> {
        if !valid_name(name) {
            return Err(RegistryError::InvalidName(name.to_string()));
        }
        match self.read(name)? {
            Some(r) if r.stale() => {
                self.unlink(&format!("{name}.json"));
                Err(RegistryError::NotFound(name.to_string()))
            }
            Some(r) if r.state == State::Starting => Err(RegistryError::Starting(name.into())),
            Some(r) => Ok(r),
            None => Err(RegistryError::NotFound(name.to_string())),
        }
    }

    /// Removes the record of a sandbox whose launcher is gone.
    pub fn remove_stale(&self, name: &str) {
        if let Ok(Some(r)) = self.read(name)
            && r.stale()
        {
            self.unlink(&format!("{name}.json"));
        }
    }
}

/// `PROFILE-abc123`: the profile's last path component (without `.toml`),
/// reduced to name characters, and six random hex digits.
pub fn default_name(profile: &str) -> String {
    let base = Path::new(profile)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("sandbox");
    let base = base.strip_suffix(".toml").unwrap_or(base);
    let mut clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    while clean
        .chars()
        .next()
        .is_some_and(|c| !c.is_ascii_alphanumeric())
    {
        clean.remove(0);
    }
    if clean.is_empty() {
        clean = "sandbox".into();
    }
    let mut id = [0u8; 3];
    if sys::getrandom(&mut id) != Ok(3) {
        // No getrandom: the time is random enough to tell launches apart.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        id.copy_from_slice(&t.to_le_bytes()[..3]);
    }
    format!("{clean}-{:02x}{:02x}{:02x}", id[0], id[1], id[2])
}

/// A launch's record, removed when dropped (after the sandbox has exited).
pub struct Entry<'r> {
    registry: &'r Registry,
    record: Record,
}

impl Entry<'_> {
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Records the sandbox as running: its first process, the namespaces
    /// its launcher holds, and its plan (whatever `exec` will read back
    /// with [`Registry::target`]).
    pub fn running(
        &mut self,
        init_pid: i32,
        namespaces: &HeldNamespaces,
        cgroup: Vec<PathBuf>,
        plan: &impl Serialize,
    ) -> Result<(), RegistryError> {
        let plan = serde_json::value::to_raw_value(plan).map_err(|e| RegistryError::Encode {
            name: self.record.name.clone(),
            error: e.to_string(),
        })?;
        let Some((_, start)) = proc_stat(init_pid) else {
            // It is gone already: nothing to record.
            return Ok(());
        };
        let me = self.record.launcher.pid;
        self.record.launcher.start = proc_stat(me).map_or(0, |(_, s)| s);
        self.record.exe = exe_id("self").unwrap_or((0, 0));
        self.record.state = State::Running;
        self.record.init = Some(ProcId {
            pid: init_pid,
            start,
        });
        self.record.namespaces = namespaces.refs.clone();
        self.record.cgroup = cgroup;
        self.record.plan = Some(plan);
        self.registry.write(&self.record, true)
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        self.registry.unlink(&format!("{}.json", self.record.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_valid() {
        for profile in [
            "cli",
            "base/system",
            "./my profile.toml",
            "/x/.hidden.toml",
            "é",
        ] {
            let n = default_name(profile);
            assert!(valid_name(&n), "{profile} → {n}");
        }
        assert!(default_name("cli").starts_with("cli-"));
        assert!(default_name("./my profile.toml").starts_with("my-profile-"));
        assert_ne!(default_name("cli"), default_name("cli"));
    }
}
