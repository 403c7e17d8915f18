//! Writing an [`Export`] to disk: `config.json`, `seccomp.json` (the same
//! filter on its own, for Podman and Kubernetes) and `rootfs/`.
//!
//! The bundle is built in a temporary directory beside the destination and
//! renamed into place at the end, so a failure leaves nothing half-built
//! at the destination (the temporary directory is removed; a SIGKILL
//! leaves it behind as `DIR.hutch-tmp-PID`).
//!
//! An image's layers are flattened into `rootfs/` the way overlayfs shows
//! them, lowest layer first: a whiteout (a 0:0 character device in hutch's
//! store) removes what lower layers have there, an opaque directory
//! (`user.overlay.opaque=y`) empties it first, anything else replaces what
//! is there. Files are copied, not linked, so nothing the container does
//! reaches the image store. Every path is handled relative to an open
//! directory without following symlinks, and directories keep owner rwx
//! until the copy is done, then get their modes.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, fchmod, fstatat, futimens, mkdirat};
use nix::sys::time::TimeSpec;
use nix::unistd::{linkat, symlinkat};

use super::oci::{Export, RootContent, RootEntry};
use crate::image::opaque::is_opaque;
use crate::safe_fs::{
    file_type, list_names, open_dir, open_dir_at, open_dir_below, remove_contents, remove_tree_at,
};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0} exists and is not an empty directory; give another with -o DIR, or remove it")]
    Exists(PathBuf),
    #[error("cannot write the bundle at {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot copy {path} of image layer {layer}: {source}")]
    Layer {
        layer: PathBuf,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot make {path} in the bundle's rootfs/: {source}")]
    Entry { path: PathBuf, source: io::Error },
}

fn write_err<E: Into<io::Error>>(path: &Path) -> impl FnOnce(E) -> BundleError + '_ {
    move |source| BundleError::Write {
        path: path.to_path_buf(),
        source: source.into(),
    }
}

/// Writes the bundle into `dir`, which must not exist or be empty.
pub fn write(export: &Export, dir: &Path) -> Result<(), BundleError> {
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => {}
        Ok(false) => return Err(BundleError::Exists(dir.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(BundleError::Exists(dir.to_path_buf()));
        }
        Err(e) => return Err(write_err(dir)(e)),
    }
    let mut tmp = dir.as_os_str().to_owned();
    tmp.push(format!(".hutch-tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let result =
        fill(export, &tmp).and_then(|()| std::fs::rename(&tmp, dir).map_err(write_err(dir)));
    if result.is_err() {
        remove_path(&tmp);
    }
    result
}

/// Removes a directory tree given by path, without following symlinks in it.
fn remove_path(path: &Path) {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    if let Ok(fd) = open_dir(parent) {
        let _ = remove_tree_at(fd.as_fd(), name, parent);
    }
}

fn fill(export: &Export, tmp: &Path) -> Result<(), BundleError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(tmp)
        .map_err(write_err(tmp))?;
    if !matches!(export.root, RootContent::HostDir(_)) {
        let rootfs = tmp.join("rootfs");
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&rootfs)
            .map_err(write_err(&rootfs))?;
        let fd = open_dir(&rootfs).map_err(write_err(&rootfs))?;
        let modes = match &export.root {
            RootContent::Layers(layers) => flatten(layers, fd.as_fd())?,
            _ => BTreeMap::new(),
        };
        for e in &export.entries {
            make_entry(fd.as_fd(), e)?;
        }
        apply_modes(fd.as_fd(), &modes)?;
    }
    write_file(&tmp.join("config.json"), &pretty(&export.config))?;
    if let Some(s) = &export.config.linux.seccomp {
        write_file(&tmp.join("seccomp.json"), &pretty(s))?;
    }
    Ok(())
}

/// Pretty JSON with a final newline, as the bundle's files are written.
pub fn pretty<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

fn write_file(path: &Path, text: &str) -> Result<(), BundleError> {
    std::fs::write(path, text).map_err(write_err(path))
}

/// A layer being copied, and the final modes of the directories so far.
struct Flatten<'a> {
    layer: &'a Path,
    rootfs: BorrowedFd<'a>,
    /// Directory modes by path relative to rootfs/, applied at the end.
    modes: BTreeMap<PathBuf, u32>,
    /// Files of this layer with more than one link: (dev, ino) → first copy.
    links: HashMap<(u64, u64), PathBuf>,
}

/// Copies the layers into `rootfs`; returns the directories' final modes,
/// to be applied once nothing more is made in them.
fn flatten(
    layers: &[PathBuf],
    rootfs: BorrowedFd<'_>,
) -> Result<BTreeMap<PathBuf, u32>, BundleError> {
    let mut f = Flatten {
        layer: Path::new(""),
        rootfs,
        modes: BTreeMap::new(),
        links: HashMap::new(),
    };
    for layer in layers {
        f.layer = layer;
        f.links.clear();
        let src = open_dir(layer).map_err(|e| f.err(Path::new("/"), e))?;
        f.dir(src.as_fd(), rootfs, Path::new(""))?;
    }
    Ok(f.modes)
}

/// Sets the directories' modes, deepest first, so that a parent losing its
/// write bit does not stop a child.
fn apply_modes(rootfs: BorrowedFd<'_>, modes: &BTreeMap<PathBuf, u32>) -> Result<(), BundleError> {
    for (rel, mode) in modes.iter().rev() {
        let fd = open_beneath(rootfs, rel).map_err(|e| BundleError::Entry {
            path: Path::new("/").join(rel),
            source: e.into(),
        })?;
        fchmod(&fd, Mode::from_bits_truncate(*mode)).map_err(|e| BundleError::Entry {
            path: Path::new("/").join(rel),
            source: e.into(),
        })?;
    }
    Ok(())
}

/// Opens the directory `rel` below `dir`, one component at a time, never
/// following a symlink.
fn open_beneath(dir: BorrowedFd<'_>, rel: &Path) -> nix::Result<OwnedFd> {
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(name) => names.push(name),
            Component::RootDir | Component::CurDir => {}
            _ => return Err(Errno::EINVAL),
        }
    }
    open_dir_below(dir, names, None, |_| {})
        .map_err(|(_, e)| e)?
        .ok_or(Errno::ENOENT)
}

impl Flatten<'_> {
    /// Removes `name` (whatever it is) from the rootfs directory `dst`, and
    /// the modes recorded for it and below it.
    fn remove(
        &mut self,
        dst: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
    ) -> Result<(), BundleError> {
        self.modes.retain(|p, _| !p.starts_with(path));
        remove_tree_at(dst, name, path).map_err(|e| self.err(path, e))
    }

    fn err(&self, rel: &Path, e: impl Into<io::Error>) -> BundleError {
        BundleError::Layer {
            layer: self.layer.to_path_buf(),
            path: Path::new("/").join(rel),
            source: e.into(),
        }
    }

    /// Applies the layer directory `src` onto the rootfs directory `dst`.
    fn dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &Path,
    ) -> Result<(), BundleError> {
        let mut names = list_names(src).map_err(|e| self.err(rel, e))?;
        names.sort();
        for name in names {
            let path = rel.join(&name);
            let st = fstatat(src, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(|e| self.err(&path, e))?;
            match file_type(&st) {
                SFlag::S_IFCHR if st.st_rdev == 0 => self.remove(dst, &name, &path)?,
                SFlag::S_IFDIR => self.subdir(src, dst, &name, &path, st.st_mode)?,
                SFlag::S_IFREG => self.file(src, dst, &name, &path, &st)?,
                SFlag::S_IFLNK => {
                    self.remove(dst, &name, &path)?;
                    let target =
                        readlinkat(src, name.as_os_str()).map_err(|e| self.err(&path, e))?;
                    symlinkat(target.as_os_str(), dst, name.as_os_str())
                        .map_err(|e| self.err(&path, e))?;
                }
                // hutch's import refuses devices, FIFOs and sockets.
                _ => {
                    return Err(self.err(
                        &path,
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            "not a file, directory or symlink",
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn subdir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        mode: u32,
    ) -> Result<(), BundleError> {
        let sub = open_dir_at(src, name).map_err(|e| self.err(path, e))?;
        let existing = fstatat(dst, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
        match existing.map(|st| file_type(&st)) {
            Some(SFlag::S_IFDIR) => {
                if is_opaque(sub.as_fd()) {
                    let d = open_dir_at(dst, name).map_err(|e| self.err(path, e))?;
                    self.modes.retain(|p, _| p == path || !p.starts_with(path));
                    remove_contents(d.as_fd(), path).map_err(|e| self.err(path, e))?;
                }
            }
            other => {
                if other.is_some() {
                    self.remove(dst, name, path)?;
                }
                mkdirat(dst, name, Mode::from_bits_truncate(0o700))
                    .map_err(|e| self.err(path, e))?;
            }
        }
        self.modes.insert(path.to_path_buf(), mode & 0o7777);
        let d = open_dir_at(dst, name).map_err(|e| self.err(path, e))?;
        self.dir(sub.as_fd(), d.as_fd(), path)
    }

    fn file(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        st: &nix::sys::stat::FileStat,
    ) -> Result<(), BundleError> {
        self.remove(dst, name, path)?;
        let key = (st.st_dev, st.st_ino);
        if st.st_nlink > 1
            && let Some(first) = self.links.get(&key)
        {
            return linkat(self.rootfs, first.as_os_str(), dst, name, AtFlags::empty())
                .map_err(|e| self.err(path, e));
        }
        let from = openat(
            src,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.err(path, e))?;
        let to = openat(
            dst,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| self.err(path, e))?;
        let (mut from, mut to) = (File::from(from), File::from(to));
        io::copy(&mut from, &mut to).map_err(|e| self.err(path, e))?;
        fchmod(&to, Mode::from_bits_truncate(st.st_mode & 0o7777))
            .map_err(|e| self.err(path, e))?;
        let atime = TimeSpec::new(st.st_atime, st.st_atime_nsec);
        let mtime = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
        futimens(&to, &atime, &mtime).map_err(|e| self.err(path, e))?;
        if st.st_nlink > 1 {
            self.links.insert(key, path.to_path_buf());
        }
        Ok(())
    }
}

/// Makes a directory, symlink or file of the plan in rootfs/ (parents are
/// made 0755 where missing; an existing directory is fine for a `dir`).
fn make_entry(rootfs: BorrowedFd<'_>, entry: &RootEntry) -> Result<(), BundleError> {
    let path = match entry {
        RootEntry::Dir { path, .. }
        | RootEntry::Symlink { path, .. }
        | RootEntry::File { path, .. } => path,
    };
    let err = |e: Errno| BundleError::Entry {
        path: path.clone(),
        source: e.into(),
    };
    let (parent, leaf) = parent_of(rootfs, path).map_err(err)?;
    let leaf = leaf.as_os_str();
    match entry {
        RootEntry::Dir { mode, .. } => {
            match mkdirat(&parent, leaf, Mode::from_bits_truncate(*mode)) {
                Ok(()) => fchmod(
                    &open_dir_at(parent.as_fd(), leaf).map_err(err)?,
                    Mode::from_bits_truncate(*mode),
                )
                .map_err(err),
                Err(Errno::EEXIST) => open_dir_at(parent.as_fd(), leaf).map(drop).map_err(err),
                Err(e) => Err(err(e)),
            }
        }
        RootEntry::Symlink { target, .. } => {
            symlinkat(target.as_os_str(), &parent, leaf).map_err(err)
        }
        RootEntry::File { content, mode, .. } => {
            let fd = openat(
                &parent,
                leaf,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(err)?;
            let mut f = File::from(fd);
            io::Write::write_all(&mut f, content.as_bytes()).map_err(|e| BundleError::Entry {
                path: path.clone(),
                source: e,
            })?;
            fchmod(&f, Mode::from_bits_truncate(*mode)).map_err(err)
        }
    }
}

/// The parent directory of the absolute `path` inside `rootfs` (made 0755
/// where missing, never through a symlink) and the last component.
fn parent_of(rootfs: BorrowedFd<'_>, path: &Path) -> nix::Result<(OwnedFd, PathBuf)> {
    let names: Vec<&OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let Some((leaf, dirs)) = names.split_last() else {
        return Err(Errno::EINVAL);
    };
    let made = Some(Mode::from_bits_truncate(0o755));
    let fd = open_dir_below(rootfs, dirs.iter().copied(), made, |_| {})
        .map_err(|(_, e)| e)?
        .expect("made where missing");
    Ok((fd, PathBuf::from(OsStr::from_bytes(leaf.as_bytes()))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::oci::{Config, Export};
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    fn opaque(dir: &Path) -> bool {
        use crate::image::opaque::set_opaque;
        set_opaque(std::fs::File::open(dir).unwrap().as_fd()).is_ok()
    }

    fn whiteout(path: &Path) {
        nix::sys::stat::mknod(path, SFlag::S_IFCHR, Mode::empty(), 0).unwrap();
    }

    /// Two layers in the store's format, as `hutch image import` leaves them.
    fn layers(dir: &Path) -> Vec<PathBuf> {
        let (l1, l2) = (dir.join("l1"), dir.join("l2"));
        for d in ["a", "d", "m", "gone"] {
            std::fs::create_dir_all(l1.join(d)).unwrap();
        }
        std::fs::write(l1.join("a/file1"), "one").unwrap();
        std::fs::write(l1.join("a/keep"), "keep").unwrap();
        std::fs::write(l1.join("d/x"), "x").unwrap();
        std::fs::write(l1.join("m/f"), "f").unwrap();
        std::fs::write(l1.join("gone/inner"), "i").unwrap();
        std::fs::write(l1.join("hard1"), "linked").unwrap();
        std::fs::hard_link(l1.join("hard1"), l1.join("hard2")).unwrap();
        symlink("a/file1", l1.join("link")).unwrap();
        std::fs::set_permissions(l1.join("a/keep"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(l1.join("a/keep"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::fs::set_permissions(l1.join("m"), std::fs::Permissions::from_mode(0o555)).unwrap();

        for d in ["a", "d", "m", "link"] {
            std::fs::create_dir_all(l2.join(d)).unwrap();
        }
        whiteout(&l2.join("a/file1"));
        whiteout(&l2.join("gone"));
        std::fs::write(l2.join("d/y"), "y").unwrap();
        std::fs::write(l2.join("m/g"), "g").unwrap();
        std::fs::write(l2.join("link/inside"), "now a directory").unwrap();
        std::fs::set_permissions(l2.join("m"), std::fs::Permissions::from_mode(0o555)).unwrap();
        vec![l1, l2]
    }

    fn export_with(root: RootContent, entries: Vec<RootEntry>) -> Export {
        let config: Config =
            serde_json::from_str(include_str!("../../tests/oci-export/cli.config.json")).unwrap();
        Export {
            config,
            root,
            entries,
            gaps: Vec::new(),
        }
    }

    #[test]
    fn layers_flatten_as_overlayfs_shows_them() {
        let dir = tempfile::tempdir().unwrap();
        let layers = layers(dir.path());
        let opaque = opaque(&layers[1].join("d"));
        let out = dir.path().join("bundle");
        let entries = vec![RootEntry::Dir {
            path: "/m/sub/deeper".into(),
            mode: 0o750,
        }];
        write(
            &export_with(RootContent::Layers(layers.clone()), entries),
            &out,
        )
        .unwrap();
        let r = out.join("rootfs");
        let read = |p: &str| std::fs::read_to_string(r.join(p)).ok();
        assert_eq!(read("a/file1"), None, "whited out");
        assert!(
            !r.join("gone").exists(),
            "a whiteout removes a whole directory"
        );
        assert_eq!(read("a/keep").as_deref(), Some("keep"));
        let keep = std::fs::metadata(r.join("a/keep")).unwrap();
        assert_eq!(keep.mode() & 0o7777, 0o640);
        assert_eq!(keep.mtime(), 1_000_000);
        assert_eq!(read("d/y").as_deref(), Some("y"));
        if opaque {
            assert_eq!(
                read("d/x"),
                None,
                "the opaque directory hides the lower one"
            );
        } else {
            eprintln!("SKIP: this filesystem has no user xattrs: opaque directories not checked");
        }
        assert_eq!(read("m/f").as_deref(), Some("f"));
        assert_eq!(
            read("m/g").as_deref(),
            Some("g"),
            "added to a 0555 directory"
        );
        assert_eq!(
            std::fs::metadata(r.join("m")).unwrap().mode() & 0o7777,
            0o555
        );
        assert_eq!(read("link/inside").as_deref(), Some("now a directory"));
        let (h1, h2) = (
            std::fs::metadata(r.join("hard1")).unwrap(),
            std::fs::metadata(r.join("hard2")).unwrap(),
        );
        assert_eq!(h1.ino(), h2.ino(), "hard links stay linked");
        let store = std::fs::metadata(layers[0].join("hard1")).unwrap();
        assert_ne!(h1.ino(), store.ino(), "copied, never linked to the store");
        assert_eq!(
            std::fs::metadata(r.join("m/sub/deeper")).unwrap().mode() & 0o7777,
            0o750
        );
        assert!(out.join("config.json").is_file() && out.join("seccomp.json").is_file());
        // The temporary directory is gone.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn an_existing_bundle_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b");
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("mine"), "x").unwrap();
        let e = export_with(RootContent::Empty, Vec::new());
        let err = write(&e, &out).unwrap_err();
        assert!(matches!(err, BundleError::Exists(_)), "{err}");
        assert_eq!(std::fs::read_to_string(out.join("mine")).unwrap(), "x");
        // An empty directory is fine, and entries land in rootfs/.
        let empty = dir.path().join("e");
        std::fs::create_dir(&empty).unwrap();
        let entries = vec![RootEntry::Symlink {
            path: "/bin".into(),
            target: "usr/bin".into(),
        }];
        write(&export_with(RootContent::Empty, entries), &empty).unwrap();
        assert_eq!(
            std::fs::read_link(empty.join("rootfs/bin")).unwrap(),
            Path::new("usr/bin")
        );
    }

    #[test]
    fn a_failed_bundle_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b");
        let missing = RootContent::Layers(vec![dir.path().join("no-such-layer")]);
        let err = write(&export_with(missing, Vec::new()), &out).unwrap_err();
        assert!(err.to_string().contains("no-such-layer"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
