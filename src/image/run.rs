//! What an image contributes to `hutch run --image NAME`: the defaults from
//! its config (command, environment, working directory, user), with user
//! and group names looked up in the image's own `/etc/passwd` and
//! `/etc/group` (read from the unpacked layers, whiteouts respected).

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use super::store::ImageInfo;

/// Largest `/etc/passwd` or `/etc/group` read from an image.
const MAX_ACCOUNT_FILE: u64 = 1 << 20;

/// The run defaults of an image, as its config gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `Env`, in order, split at the first `=`.
    pub env: Vec<(String, String)>,
    /// `WorkingDir`, if the config sets one.
    pub working_dir: Option<String>,
    /// `User`, resolved; `None` when the config sets none (root, like docker).
    pub user: Option<UserIds>,
}

/// A user of the image: ids and home directory inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserIds {
    pub uid: u32,
    pub gid: u32,
}

/// Why an image's config cannot be applied. Messages are one line, saying
/// what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageConfigError {
    #[error(
        "image {image}: User {spec:?} names user {name:?}, which is not in the image's /etc/passwd; set `identity = \"UID[:GID]\"` in the profile"
    )]
    UnknownUser {
        image: String,
        spec: String,
        name: String,
    },
    #[error(
        "image {image}: User {spec:?} names group {name:?}, which is not in the image's /etc/group; set `identity = \"UID:GID\"` in the profile"
    )]
    UnknownGroup {
        image: String,
        spec: String,
        name: String,
    },
    #[error(
        "image {image}: Env entry {entry:?} is not NAME=value; re-build the image, or set the variable with [env] set in the profile"
    )]
    BadEnv { image: String, entry: String },
}

impl ImageDefaults {
    /// Reads the defaults of `info`, resolving `User` against the image's files.
    pub fn of(info: &ImageInfo) -> Result<ImageDefaults, ImageConfigError> {
        let c = &info.config;
        let mut env = Vec::with_capacity(c.env.len());
        for entry in &c.env {
            match entry.split_once('=') {
                Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
                    env.push((k.to_string(), v.to_string()))
                }
                _ => {
                    return Err(ImageConfigError::BadEnv {
                        image: info.name.clone(),
                        entry: entry.clone(),
                    });
                }
            }
        }
        let user = match c.user.as_deref() {
            None | Some("") => None,
            Some(spec) => Some(resolve_user(&info.name, &info.layers, spec)?),
        };
        Ok(ImageDefaults {
            entrypoint: c.entrypoint.clone(),
            cmd: c.cmd.clone(),
            env,
            working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
            user,
        })
    }
}

/// Resolves a docker `User` (`user`, `uid`, `user:group`, `uid:gid`, ...):
/// names through the image's `/etc/passwd` and `/etc/group`; without a
/// group, the user's primary group from `/etc/passwd`, else 0.
pub fn resolve_user(
    image: &str,
    layers: &[PathBuf],
    spec: &str,
) -> Result<UserIds, ImageConfigError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_image_file(layers, "etc/passwd").unwrap_or_default();
    let entries = parse_passwd(&passwd);
    let numeric = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (uid, primary) = match numeric(user) {
        Some(uid) => (uid, entries.iter().find(|e| e.uid == uid).map(|e| e.gid)),
        None => match entries.iter().find(|e| e.name == user) {
            Some(e) => (e.uid, Some(e.gid)),
            None => {
                return Err(ImageConfigError::UnknownUser {
                    image: image.to_string(),
                    spec: spec.to_string(),
                    name: user.to_string(),
                });
            }
        },
    };
    let gid = match group {
        None | Some("") => primary.unwrap_or(0),
        Some(g) => match numeric(g) {
            Some(gid) => gid,
            None => {
                let groups = read_image_file(layers, "etc/group").unwrap_or_default();
                parse_group(&groups)
                    .into_iter()
                    .find(|(name, _)| name == g)
                    .map(|(_, gid)| gid)
                    .ok_or_else(|| ImageConfigError::UnknownGroup {
                        image: image.to_string(),
                        spec: spec.to_string(),
                        name: g.to_string(),
                    })?
            }
        },
    };
    Ok(UserIds { uid, gid })
}

/// The home directory of `uid` in the image's `/etc/passwd`, if listed.
pub fn home_of(layers: &[PathBuf], uid: u32) -> Option<String> {
    let passwd = read_image_file(layers, "etc/passwd")?;
    parse_passwd(&passwd)
        .into_iter()
        .find(|e| e.uid == uid)
        .map(|e| e.home)
        .filter(|h| h.starts_with('/'))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some((f[0].to_string(), f[2].parse().ok()?))
        })
        .collect()
}

/// The content of `rel` (a relative path without `..`) as the image shows
/// it: from the highest layer that has it, unless a higher layer hides it
/// with a whiteout, an opaque directory or a non-directory on the way.
/// Symlinks are not followed (`None`), nor are files over 1 MiB read.
pub fn read_image_file(layers: &[PathBuf], rel: &str) -> Option<String> {
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| *p == "." || *p == "..") || parts.is_empty() {
        return None;
    }
    for layer in layers.iter().rev() {
        let mut path = layer.clone();
        for (i, part) in parts.iter().enumerate() {
            path.push(part);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                // Not in this layer: look below, unless an opaque directory
                // on the way hides the layers below.
                Err(_) => {
                    let opaque = parts[..i].iter().enumerate().any(|(j, _)| {
                        let dir: PathBuf = parts[..=j].iter().fold(layer.clone(), |p, c| p.join(c));
                        super::opaque::is_opaque_at(&dir)
                    });
                    if opaque {
                        return None;
                    }
                    break;
                }
            };
            let ft = meta.file_type();
            if ft.is_char_device() && meta.rdev() == 0 {
                return None; // whiteout
            }
            let last = i + 1 == parts.len();
            if !last {
                if ft.is_dir() {
                    continue;
                }
                return None; // a file or link hides the directories below
            }
            if !ft.is_file() || meta.len() > MAX_ACCOUNT_FILE {
                return None;
            }
            let mut f = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .ok()?;
            let mut text = String::new();
            f.by_ref()
                .take(MAX_ACCOUNT_FILE)
                .read_to_string(&mut text)
                .ok()?;
            return Some(text);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn layer(dir: &Path, n: usize, files: &[(&str, &str)]) -> PathBuf {
        let l = dir.join(format!("l{n}"));
        for (p, content) in files {
            let path = l.join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        fs::create_dir_all(&l).unwrap();
        l
    }

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\nweb:x:101:102:web:/srv/web:/bin/false\nbroken line\n";

    #[test]
    fn users_resolve_like_docker() {
        let d = tempfile::tempdir().unwrap();
        let l = vec![layer(
            d.path(),
            0,
            &[
                ("etc/passwd", PASSWD),
                ("etc/group", "root:x:0:\nstaff:x:50:\n"),
            ],
        )];
        let r = |s: &str| resolve_user("img", &l, s);
        assert_eq!(r("web"), Ok(UserIds { uid: 101, gid: 102 }));
        assert_eq!(r("101"), Ok(UserIds { uid: 101, gid: 102 }));
        assert_eq!(r("4000"), Ok(UserIds { uid: 4000, gid: 0 }));
        assert_eq!(r("web:staff"), Ok(UserIds { uid: 101, gid: 50 }));
        assert_eq!(r("1:2"), Ok(UserIds { uid: 1, gid: 2 }));
        assert!(matches!(
            r("nobody"),
            Err(ImageConfigError::UnknownUser { .. })
        ));
        assert!(matches!(
            r("web:wheel"),
            Err(ImageConfigError::UnknownGroup { .. })
        ));
        assert_eq!(home_of(&l, 101).as_deref(), Some("/srv/web"));
        assert_eq!(home_of(&l, 7), None);
    }

    #[test]
    fn higher_layers_and_whiteouts_decide() {
        let d = tempfile::tempdir().unwrap();
        let low = layer(d.path(), 0, &[("etc/passwd", PASSWD)]);
        let high = layer(d.path(), 1, &[("etc/passwd", "a:x:5:5::/a:/bin/sh\n")]);
        let both = vec![low.clone(), high.clone()];
        assert_eq!(
            read_image_file(&both, "etc/passwd").as_deref(),
            Some("a:x:5:5::/a:/bin/sh\n")
        );
        // A layer without the file shows the one below.
        let other = layer(d.path(), 2, &[("etc/hosts", "x")]);
        let three = vec![low.clone(), other.clone()];
        assert_eq!(
            read_image_file(&three, "etc/passwd").as_deref(),
            Some(PASSWD)
        );
        // A whiteout (0:0 character device) hides it; creating one needs
        // Linux >= 5.8 unprivileged: skip that part where it is refused.
        let wh = d.path().join("l3");
        fs::create_dir_all(wh.join("etc")).unwrap();
        let node = wh.join("etc/passwd");
        let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
        if nix::sys::stat::mknod(&node, nix::sys::stat::SFlag::S_IFCHR, mode, 0).is_ok() {
            assert_eq!(read_image_file(&[low.clone(), wh], "etc/passwd"), None);
        }
        // A file where a directory was hides everything below it.
        let file = layer(d.path(), 4, &[("etc", "not a dir")]);
        assert_eq!(read_image_file(&[low, file], "etc/passwd"), None);
        assert_eq!(read_image_file(&both, "../etc/passwd"), None);
    }
}
