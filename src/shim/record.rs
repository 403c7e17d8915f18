//! The record of what `hutch shim install` made, one per scope (the
//! user's in `$XDG_DATA_HOME/hutch/shims.json`, the system's in
//! `/var/lib/hutch/shims.json`): every symlink with the target it was
//! given, every menu-entry override with a digest of the bytes written,
//! and the directories install had to create. `remove` takes away only
//! what is recorded and unchanged, so it leaves what was there before.
//!
//! A shim started by its name reads the record too, for the profile it
//! was installed with: the record is read only if nobody but its owner
//! and root can have written it.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::safe_fs::{Dir, FsError, Publish, TrustError, open_trusted_file};

/// The format of the record.
pub const VERSION: u32 = 1;

/// The largest record hutch reads: thousands of shims.
const MAX_BYTES: u64 = 1 << 20;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    #[serde(default)]
    pub shims: Vec<Shim>,
    /// Directories install created (shim, menu and record directories and
    /// what was missing above them), removed again, if empty, when the
    /// last shim goes.
    #[serde(default)]
    pub created_dirs: Vec<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shim {
    /// The program's name (the shim's file name).
    pub name: String,
    /// The profile given at install; `None`: the profile named after the
    /// program.
    pub profile: Option<String>,
    /// The symlink install made; `None` when a shim of hutch was there
    /// already (made by hand): it is not install's to remove.
    pub link: Option<Link>,
    /// The menu-entry overrides written.
    #[serde(default)]
    pub desktop: Vec<Override>,
}

impl Shim {
    /// The profile the program runs in.
    pub fn effective_profile(&self) -> &str {
        self.profile.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub path: PathBuf,
    /// What the symlink holds: hutch's executable when it was made.
    pub target: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The desktop file ID it overrides (`org.gnome.Evince.desktop`).
    pub id: String,
    /// The override written.
    pub path: PathBuf,
    /// The entry it was made from.
    pub source: PathBuf,
    /// SHA-256 of the bytes written, hex: a file changed since is left.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("hutch's record of shims: {0}; move it away if it is not hutch's")]
    Untrusted(#[from] TrustError),
    #[error("cannot read hutch's record of shims {}: {}", .0.display(), .1)]
    Read(PathBuf, std::io::Error),
    #[error(
        "hutch's record of shims {} is larger than {} bytes: it is not one hutch wrote; move it away",
        .0.display(), MAX_BYTES
    )]
    TooLarge(PathBuf),
    #[error(
        "hutch's record of shims {} cannot be read ({}): move it away (the shims it lists stay; `hutch shim install` records them again)",
        .0.display(), .1
    )]
    Invalid(PathBuf, String),
    #[error(
        "hutch's record of shims {} has format version {}, newer than this hutch's ({VERSION}): upgrade hutch",
        .0.display(), .1
    )]
    Newer(PathBuf, u32),
    #[error("cannot write hutch's record of shims: {0}")]
    Write(#[from] FsError),
}

/// Reads the record at `path`, which only `owner` or root may have
/// written. `Ok(None)`: there is none (one failed `open`).
pub fn read(path: &Path, owner: u32) -> Result<Option<Record>, RecordError> {
    let Some(file) = open_trusted_file(path, owner)? else {
        return Ok(None);
    };
    let failed = |e| RecordError::Read(path.to_path_buf(), e);
    let len = file.metadata().map_err(failed)?.len();
    if len > MAX_BYTES {
        return Err(RecordError::TooLarge(path.to_path_buf()));
    }
    // Sized to the file: one read and the one that finds its end.
    let mut bytes = Vec::with_capacity(len as usize + 1);
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(RecordError::TooLarge(path.to_path_buf()));
    }
    parse(&bytes).map(Some).map_err(|e| match e {
        ParseError::Newer(v) => RecordError::Newer(path.to_path_buf(), v),
        ParseError::Json(m) => RecordError::Invalid(path.to_path_buf(), m),
    })
}

enum ParseError {
    Newer(u32),
    Json(String),
}

fn parse(bytes: &[u8]) -> Result<Record, ParseError> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    // The version first, so that a newer format is named as such rather
    // than reported as a key this hutch does not know.
    let v: Versioned =
        serde_json::from_slice(bytes).map_err(|e| ParseError::Json(e.to_string()))?;
    if v.version > VERSION {
        return Err(ParseError::Newer(v.version));
    }
    serde_json::from_slice(bytes).map_err(|e| ParseError::Json(e.to_string()))
}

impl Record {
    pub fn new() -> Record {
        Record {
            version: VERSION,
            ..Record::default()
        }
    }

    pub fn get(&self, name: &str) -> Option<&Shim> {
        self.shims.iter().find(|s| s.name == name)
    }

    /// Adds `shim`, or replaces the entry of its name.
    pub fn put(&mut self, shim: Shim) {
        match self.shims.iter_mut().find(|s| s.name == shim.name) {
            Some(slot) => *slot = shim,
            None => self.shims.push(shim),
        }
    }

    pub fn take(&mut self, name: &str) -> Option<Shim> {
        let i = self.shims.iter().position(|s| s.name == name)?;
        Some(self.shims.remove(i))
    }

    /// Notes a directory install created.
    pub fn created(&mut self, dir: PathBuf) {
        if !self.created_dirs.contains(&dir) {
            self.created_dirs.push(dir);
        }
    }

    /// Writes the record (whole or not at all, synced) as `name` in `dir`,
    /// with `mode`; a record of nothing is removed instead.
    pub fn save(&self, dir: &Dir, name: &str, mode: u32) -> Result<(), RecordError> {
        if self.shims.is_empty() && self.created_dirs.is_empty() {
            return match dir.unlink(name) {
                Err(FsError::Io {
                    errno: nix::errno::Errno::ENOENT,
                    ..
                }) => Ok(()),
                other => Ok(other?),
            };
        }
        let mut bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| RecordError::Invalid(dir.path().join(name), e.to_string()))?;
        bytes.push(b'\n');
        let tmp = format!(".{name}.tmp");
        dir.publish(
            name,
            &bytes,
            Publish {
                tmp_dir: dir,
                tmp_name: &tmp,
                replace: true,
                durable: true,
            },
        )?;
        set_mode(dir, name, mode)?;
        Ok(())
    }
}

/// Gives the file `name` of `dir` (written by [`Dir::publish`], mode
/// 0600) `mode`, through a descriptor opened without following a symlink.
pub fn set_mode(dir: &Dir, name: &str, mode: u32) -> Result<(), FsError> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    if mode == 0o600 {
        return Ok(());
    }
    let path = dir.path().join(name);
    let fd = crate::safe_fs::open_beneath(dir.fd(), name, OFlag::O_RDONLY, Mode::empty())
        .map_err(|e| FsError::io("cannot open", &path, e))?;
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))
        .map_err(|e| FsError::io("cannot change the mode of", &path, e))
}

/// SHA-256 of `bytes`, in hex.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn me() -> u32 {
        nix::unistd::getuid().as_raw()
    }

    fn sample() -> Record {
        let mut r = Record::new();
        r.put(Shim {
            name: "jq".into(),
            profile: Some("cli".into()),
            link: Some(Link {
                path: "/h/.local/bin/jq".into(),
                target: "/usr/bin/hutch".into(),
            }),
            desktop: vec![Override {
                id: "jq.desktop".into(),
                path: "/h/.local/share/applications/jq.desktop".into(),
                source: "/usr/share/applications/jq.desktop".into(),
                sha256: digest(b"x"),
            }],
        });
        r.created("/h/.local/bin".into());
        r
    }

    #[test]
    fn a_record_round_trips_and_an_empty_one_is_removed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let dir = Dir::open_existing(d.path()).unwrap();
        let path = d.path().join("shims.json");
        assert!(read(&path, me()).unwrap().is_none());
        let r = sample();
        r.save(&dir, "shims.json", 0o600).unwrap();
        assert_eq!(read(&path, me()).unwrap(), Some(r.clone()));
        assert_eq!(r.get("jq").unwrap().effective_profile(), "cli");
        let mut empty = r;
        empty.take("jq").unwrap();
        empty.created_dirs.clear();
        empty.save(&dir, "shims.json", 0o600).unwrap();
        assert!(!path.exists());
        // Saving an empty record twice is fine.
        empty.save(&dir, "shims.json", 0o600).unwrap();
    }

    #[test]
    fn a_record_others_could_write_or_from_a_newer_hutch_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = d.path().join("shims.json");
        std::fs::write(&path, r#"{"version": 9, "shims": [], "later": 1}"#).unwrap();
        let e = read(&path, me()).unwrap_err();
        assert!(matches!(e, RecordError::Newer(_, 9)), "{e}");
        std::fs::write(&path, r#"{"version": 1, "later": 1}"#).unwrap();
        let e = read(&path, me()).unwrap_err();
        assert!(e.to_string().contains("unknown field `later`"), "{e}");
        std::fs::write(&path, r#"{"version": 1}"#).unwrap();
        assert_eq!(read(&path, me()).unwrap(), Some(Record::new()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = read(&path, me()).unwrap_err();
        assert!(
            e.to_string().contains("can be written by other users"),
            "{e}"
        );
    }
}
