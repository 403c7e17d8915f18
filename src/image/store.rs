//! The on-disk image store: import, list, inspect, lease and remove.

use std::collections::{HashMap, HashSet};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::budget::{Budget, DEFAULT_MAX_SIZE, SpaceGuard};
use super::digest::Digest;
use super::error::ImageError;
use super::resolve::{HostPlatform, LayerRef, Resolved, resolve, verify_layer_blob};
use super::source::Source;
use super::unpack::unpack_layer;
use crate::host::Host;
use crate::paths;
use crate::safe_fs::{
    Dir, Publish, fsync_dir, open_dir, remove_contents, remove_tree_at, unique_suffix,
};

const LAYERS_DIR: &str = "layers/sha256";
const IMAGES_DIR: &str = "images";
const LOCKS_DIR: &str = "locks";
const TMP_DIR: &str = "tmp";
const STORE_LOCK: &str = "store.lock";
const RECORD_VERSION: u32 = 1;

/// What a container needs from the image config to run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRunConfig {
    /// `Entrypoint` (empty if unset).
    pub entrypoint: Vec<String>,
    /// `Cmd` (empty if unset).
    pub cmd: Vec<String>,
    /// `Env`, as `KEY=value` strings.
    pub env: Vec<String>,
    /// `WorkingDir`, if set and non-empty.
    pub working_dir: Option<String>,
    /// `User` (`name`, `uid`, `uid:gid`, ...), if set and non-empty.
    pub user: Option<String>,
}

/// An imported image, as returned by [`ImageStore::import`],
/// [`ImageStore::list`] and [`ImageStore::inspect`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The name the image is stored under (e.g. `busybox:latest`).
    pub name: String,
    /// Digest of the image manifest; `None` for legacy `docker save`
    /// archives, which have no manifest blob.
    pub manifest_digest: Option<String>,
    /// Digest of the image config blob (the image ID).
    pub config_digest: String,
    /// Architecture from the image config (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// OS from the image config (`linux`).
    pub os: String,
    /// Architecture variant (`v8`, ...), if the config gives one.
    pub variant: Option<String>,
    /// Creation time from the image config (RFC 3339), if given.
    pub created: Option<String>,
    /// When the image was imported, in seconds since the Unix epoch.
    pub imported_at: u64,
    /// Total size of the layer blobs as imported (compressed), in bytes.
    pub size: u64,
    /// Total size of the layers unpacked (their uncompressed tar streams,
    /// each distinct layer once), in bytes; `None` for an image imported
    /// by a hutch that did not record it.
    pub unpacked_size: Option<u64>,
    /// Uncompressed layer digests (config `rootfs.diff_ids`), lowest first.
    pub layer_digests: Vec<String>,
    /// Unpacked layer directories, lowest first: the overlayfs lower
    /// layers (mount with `userxattr`; `lowerdir=` lists them highest
    /// first). The same directory appears twice if the image lists the
    /// same layer twice. Only use them while holding an [`ImageLease`].
    pub layers: Vec<PathBuf>,
    /// Entrypoint, Cmd, Env, WorkingDir and User from the image config.
    pub config: ImageRunConfig,
}

/// Metadata file of one image (`images/<key>.json`). Paths are not stored,
/// so the store can be moved.
#[derive(Debug, Serialize, Deserialize)]
struct ImageRecord {
    version: u32,
    name: String,
    manifest_digest: Option<String>,
    config_digest: String,
    architecture: String,
    os: String,
    variant: Option<String>,
    created: Option<String>,
    imported_at: u64,
    size: u64,
    layers: Vec<String>,
    /// The unpacked size of each layer (its uncompressed tar stream), in
    /// the order of `layers`; empty in records of older hutch versions.
    #[serde(default)]
    layer_sizes: Vec<u64>,
    config: ImageRunConfig,
}

impl ImageRecord {
    /// The unpacked size of each distinct layer, added up.
    fn unpacked_size(&self) -> Option<u64> {
        if self.layer_sizes.len() != self.layers.len() {
            return None;
        }
        let mut seen = HashSet::new();
        Some(
            self.layers
                .iter()
                .zip(&self.layer_sizes)
                .filter(|(d, _)| seen.insert(*d))
                .map(|(_, s)| s)
                .sum(),
        )
    }
}

impl ImageRecord {
    fn same_image(&self, other: &ImageRecord) -> bool {
        self.manifest_digest == other.manifest_digest
            && self.config_digest == other.config_digest
            && self.layers == other.layers
    }
}

/// A lease on an image, held by a running sandbox: while any lease exists
/// the image cannot be removed or replaced, so its layer directories stay.
///
/// The lease is a shared `flock` on the image's lock file, held by a file
/// descriptor owned by this value (opened close-on-exec): dropping the
/// lease, or the death of the process, releases it. To keep the lease in
/// a child process across `exec`, clear `FD_CLOEXEC` on [`AsFd::as_fd`].
#[derive(Debug)]
pub struct ImageLease {
    lock: File,
    info: ImageInfo,
}

impl ImageLease {
    /// The leased image.
    pub fn info(&self) -> &ImageInfo {
        &self.info
    }
}

impl AsFd for ImageLease {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.lock.as_fd()
    }
}

/// Limits of one import (see [`ImageStore::import_with`]).
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The most the layers it unpacks may add up to, in bytes (their
    /// uncompressed tar streams); `None`: [`DEFAULT_MAX_SIZE`].
    pub max_size: Option<u64>,
}

/// A per-user, content-addressed store of unpacked OCI images.
///
/// On disk (all below the root given to [`ImageStore::open`]):
///
/// ```text
/// store.lock               flock: held exclusively by import and remove
/// layers/sha256/<hex>/     one unpacked layer, keyed by its uncompressed
///                          digest (diff_id); shared by all images using it
/// images/<key>.json        metadata of one image (key = hash of its name),
///                          written last, atomically: its presence means the
///                          image is complete
/// locks/<key>.lock         per-image lease lock (shared = in use)
/// tmp/                     work directories of imports and removals; wiped
///                          at the start of every import
/// ```
///
/// `list`, `inspect` and `acquire` take no store lock: they only read
/// metadata files, which are always complete.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// Checks that `name` can be used as an image name: 1 to 255 characters,
/// starting with a letter or digit, made of letters, digits and `._-:/@+`.
pub fn validate_name(name: &str) -> Result<(), ImageError> {
    let bad = |reason| {
        Err(ImageError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 255 {
        return bad("it is longer than 255 characters");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return bad("it must start with a letter or digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-:/@+".contains(&b))
    {
        return bad("only letters, digits and . _ - : / @ + are allowed");
    }
    Ok(())
}

fn name_key(name: &str) -> String {
    Digest::of(name.as_bytes()).hex()[..32].to_owned()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

fn is_dir_nofollow(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

impl ImageStore {
    /// The default store location: `$XDG_DATA_HOME/hutch/images`, or
    /// `~/.local/share/hutch/images` when `XDG_DATA_HOME` is unset or not
    /// absolute (see [`paths::image_store`]).
    pub fn default_root(host: &Host) -> Result<PathBuf, ImageError> {
        paths::image_store(host).ok_or(ImageError::NoStoreLocation)
    }

    /// Opens the store at `root`, creating it (mode 0700) if needed.
    pub fn open(root: impl AsRef<Path>) -> Result<ImageStore, ImageError> {
        let root = root.as_ref().to_owned();
        let store = ImageStore { root };
        for dir in [LAYERS_DIR, IMAGES_DIR, LOCKS_DIR, TMP_DIR] {
            let path = store.root.join(dir);
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&path)
                .map_err(ImageError::io("create directory", &path))?;
        }
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn layers_dir(&self) -> PathBuf {
        self.root.join(LAYERS_DIR)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP_DIR)
    }

    fn record_path(&self, key: &str) -> PathBuf {
        self.root.join(IMAGES_DIR).join(format!("{key}.json"))
    }

    fn lock_path(&self, key: &str) -> PathBuf {
        self.root.join(LOCKS_DIR).join(format!("{key}.lock"))
    }

    fn layer_path(&self, diff_id: &str) -> Result<PathBuf, ImageError> {
        let d = Digest::parse(diff_id)?;
        Ok(self.layers_dir().join(d.hex()))
    }

    /// Opens (creating if asked) a lock file.
    fn open_lock(path: &Path, create: bool) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(create)
            .create(create)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
    }

    /// Takes an image's lock file exclusively, which fails while a running
    /// sandbox holds it (shared); `name` is for the error.
    fn lock_unused(&self, lock_path: &Path, name: &str) -> Result<File, ImageError> {
        let lock = Self::open_lock(lock_path, true)
            .map_err(ImageError::io("open lock file", lock_path))?;
        match lock.try_lock() {
            Ok(()) => Ok(lock),
            Err(fs::TryLockError::WouldBlock) => Err(ImageError::InUse {
                name: name.to_string(),
            }),
            Err(fs::TryLockError::Error(e)) => Err(ImageError::io("lock", lock_path)(e)),
        }
    }

    /// Takes the store-wide exclusive lock (blocking).
    fn lock_store(&self) -> Result<File, ImageError> {
        let path = self.root.join(STORE_LOCK);
        let f = Self::open_lock(&path, true).map_err(ImageError::io("open lock file", &path))?;
        f.lock().map_err(ImageError::io("lock", &path))?;
        Ok(f)
    }

    fn read_record(&self, key: &str) -> Result<Option<ImageRecord>, ImageError> {
        let path = self.record_path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ImageError::io("read", &path)(e)),
        };
        let record: ImageRecord =
            serde_json::from_slice(&bytes).map_err(|e| ImageError::StoreCorrupt {
                path: path.clone(),
                reason: format!("invalid metadata ({e})"),
            })?;
        if record.version != RECORD_VERSION {
            return Err(ImageError::StoreCorrupt {
                path,
                reason: format!("unknown metadata version {}", record.version),
            });
        }
        Ok(Some(record))
    }

    fn read_all_records(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let dir = self.root.join(IMAGES_DIR);
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(ImageError::io("read", &dir))? {
            let entry = entry.map_err(ImageError::io("read", &dir))?;
            let name = entry.file_name();
            let Some(key) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Some(r) = self.read_record(key)? {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn info(&self, r: &ImageRecord) -> Result<ImageInfo, ImageError> {
        Ok(ImageInfo {
            name: r.name.clone(),
            manifest_digest: r.manifest_digest.clone(),
            config_digest: r.config_digest.clone(),
            architecture: r.architecture.clone(),
            os: r.os.clone(),
            variant: r.variant.clone(),
            created: r.created.clone(),
            imported_at: r.imported_at,
            size: r.size,
            unpacked_size: r.unpacked_size(),
            layer_digests: r.layers.clone(),
            layers: r
                .layers
                .iter()
                .map(|d| self.layer_path(d))
                .collect::<Result<_, _>>()
                .map_err(|_| ImageError::StoreCorrupt {
                    path: self.record_path(&name_key(&r.name)),
                    reason: "invalid layer digest".into(),
                })?,
            config: r.config.clone(),
        })
    }

    /// Finds the stored name for `name`: exactly, or with `:latest` added
    /// when `name` has no tag or digest.
    fn resolve_name(&self, name: &str) -> Result<(String, ImageRecord), ImageError> {
        if let Some(r) = self.read_record(&name_key(name))? {
            return Ok((name.to_owned(), r));
        }
        let last = name.rsplit('/').next().unwrap_or(name);
        if !last.contains(':') && !name.contains('@') {
            let with_tag = format!("{name}:latest");
            if let Some(r) = self.read_record(&name_key(&with_tag))? {
                return Ok((with_tag, r));
            }
        }
        Err(ImageError::NotFound {
            name: name.to_owned(),
        })
    }

    /// Lists complete images, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageInfo>, ImageError> {
        self.read_all_records()?
            .iter()
            .map(|r| self.info(r))
            .collect()
    }

    /// Describes one image. `name` may omit a `:latest` tag.
    pub fn inspect(&self, name: &str) -> Result<ImageInfo, ImageError> {
        let (_, record) = self.resolve_name(name)?;
        self.info(&record)
    }

    /// Leases an image for a running sandbox (see [`ImageLease`]). Blocks
    /// only while an import is replacing the same name or a removal is in
    /// progress, then returns the current image or [`ImageError::NotFound`].
    pub fn acquire(&self, name: &str) -> Result<ImageLease, ImageError> {
        let (name, _) = self.resolve_name(name)?;
        let key = name_key(&name);
        let path = self.lock_path(&key);
        let not_found = || ImageError::NotFound { name: name.clone() };
        let lock = loop {
            let f = match Self::open_lock(&path, false) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
                Err(e) => return Err(ImageError::io("open lock file", &path)(e)),
            };
            f.lock_shared().map_err(ImageError::io("lock", &path))?;
            // remove() unlinks the lock file while holding it exclusively:
            // make sure ours is still the live one.
            let held = f.metadata().map_err(ImageError::io("stat", &path))?;
            match fs::metadata(&path) {
                Ok(m) if m.dev() == held.dev() && m.ino() == held.ino() => break f,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
                Err(e) => return Err(ImageError::io("stat", &path)(e)),
            }
        };
        let record = self.read_record(&key)?.ok_or_else(not_found)?;
        Ok(ImageLease {
            lock,
            info: self.info(&record)?,
        })
    }

    /// Removes an image, refusing with [`ImageError::InUse`] while any
    /// [`ImageLease`] on it exists, then deletes the layers no other image
    /// uses.
    pub fn remove(&self, name: &str) -> Result<(), ImageError> {
        let _store = self.lock_store()?;
        let (name, _) = self.resolve_name(name)?;
        let key = name_key(&name);
        let lock_path = self.lock_path(&key);
        let lock = self.lock_unused(&lock_path, &name)?;
        let record_path = self.record_path(&key);
        fs::remove_file(&record_path).map_err(ImageError::io("remove", &record_path))?;
        let images_dir = self.root.join(IMAGES_DIR);
        fsync_dir(&images_dir).map_err(ImageError::io("sync", &images_dir))?;
        fs::remove_file(&lock_path).map_err(ImageError::io("remove", &lock_path))?;
        drop(lock);
        self.gc()
    }

    /// Empties `tmp/`. Only called with the store lock held, so nothing in
    /// there belongs to a live import: it is left over from a killed one.
    fn clean_tmp(&self) -> Result<(), ImageError> {
        let tmp = self.tmp_dir();
        let fd = open_dir(&tmp).map_err(ImageError::io("open", &tmp))?;
        remove_contents(fd.as_fd(), &tmp).map_err(ImageError::io("clean up", &tmp))
    }

    /// Deletes layers no image references, and lock files of images that
    /// no longer exist. Called with the store lock held. A layer is first
    /// renamed into `tmp/` (atomic), so a crash mid-deletion can never
    /// leave a partial layer under `layers/`.
    fn gc(&self) -> Result<(), ImageError> {
        let records = self.read_all_records()?;
        let referenced: HashSet<String> = records
            .iter()
            .flat_map(|r| r.layers.iter())
            .filter_map(|d| Digest::parse(d).ok())
            .map(|d| d.hex().to_owned())
            .collect();
        let layers = self.layers_dir();
        let tmp = self.tmp_dir();
        let tmp_fd = open_dir(&tmp).map_err(ImageError::io("open", &tmp))?;
        let mut moved = false;
        for entry in fs::read_dir(&layers).map_err(ImageError::io("read", &layers))? {
            let entry = entry.map_err(ImageError::io("read", &layers))?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(Digest::from_hex) else {
                continue;
            };
            if referenced.contains(hex.hex()) {
                continue;
            }
            let doomed = format!("gc-{}-{}", hex.hex(), unique_suffix());
            fs::rename(entry.path(), tmp.join(&doomed))
                .map_err(ImageError::io("move unused layer", entry.path()))?;
            moved = true;
            remove_tree_at(tmp_fd.as_fd(), doomed.as_ref(), &tmp)
                .map_err(ImageError::io("delete unused layer", tmp.join(&doomed)))?;
        }
        if moved {
            fsync_dir(&layers).map_err(ImageError::io("sync", &layers))?;
        }
        let keys: HashSet<String> = records.iter().map(|r| name_key(&r.name)).collect();
        let locks = self.root.join(LOCKS_DIR);
        for entry in fs::read_dir(&locks).map_err(ImageError::io("read", &locks))? {
            let entry = entry.map_err(ImageError::io("read", &locks))?;
            let file_name = entry.file_name();
            let Some(key) = file_name.to_str().and_then(|n| n.strip_suffix(".lock")) else {
                continue;
            };
            if keys.contains(key) {
                continue;
            }
            // Only unlink what nobody holds; acquire() re-checks the inode.
            if let Ok(f) = Self::open_lock(&entry.path(), false)
                && f.try_lock().is_ok()
            {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// Imports an image from an OCI image layout directory, a tar archive
    /// of one (`oci-archive`), or a `docker save` archive.
    ///
    /// The image is stored under `tag` if given, else under the name the
    /// source carries (`org.opencontainers.image.ref.name`, or `RepoTags`
    /// for `docker save`). When the source holds several images, the one
    /// for the host platform is chosen, and `tag` selects among several
    /// names. Re-importing the same image under the same name is a no-op;
    /// importing a different image under an existing name replaces it,
    /// unless that image is in use.
    ///
    /// Every blob is verified (size and sha256) before anything is
    /// written; layers are unpacked into `tmp/`, synced, and renamed into
    /// place; the metadata is written last. An import that fails or is
    /// killed leaves no image behind (leftovers in `tmp/` are removed by
    /// the next import).
    pub fn import(&self, source: &Path, tag: Option<&str>) -> Result<ImageInfo, ImageError> {
        self.import_with(source, tag, &ImportOptions::default())
    }

    /// [`ImageStore::import`], with limits: the import stops (and leaves
    /// nothing behind) once the layers it unpacks add up to more than
    /// `options.max_size` bytes, or once the store's filesystem has little
    /// left (see [`super::budget`]).
    pub fn import_with(
        &self,
        source: &Path,
        tag: Option<&str>,
        options: &ImportOptions,
    ) -> Result<ImageInfo, ImageError> {
        if let Some(t) = tag {
            validate_name(t)?;
        }
        let _store = self.lock_store()?;
        self.clean_tmp()?;

        let src = Source::open(source)?;
        let host = HostPlatform::current();
        let resolved = resolve(&src, tag, &host)?;
        let name = match tag {
            Some(t) => t.to_owned(),
            None => resolved
                .name
                .clone()
                .ok_or_else(|| ImageError::NameRequired {
                    path: source.to_owned(),
                })?,
        };
        validate_name(&name)?;

        // Verify every layer blob before writing anything.
        let mut size = 0u64;
        let mut verified = HashSet::new();
        for layer in &resolved.layers {
            if verified.contains(&layer.blob) {
                continue;
            }
            size += verify_layer_blob(&src, layer)?;
            verified.insert(layer.blob.clone());
        }
        let mut record = make_record(&name, &resolved, size);

        let key = name_key(&name);
        let lock_path = self.lock_path(&key);
        let lock = self.lock_unused(&lock_path, &name)?;
        let existing = self.read_record(&key)?;
        if let Some(old) = &existing
            && old.same_image(&record)
        {
            let info = self.info(old)?;
            if info.layers.iter().all(|p| is_dir_nofollow(p)) {
                return Ok(info);
            }
        }

        let mut budget = Budget::new(
            options.max_size.unwrap_or(DEFAULT_MAX_SIZE),
            options.max_size.is_some(),
        );
        let result = self.unpack_and_commit(&src, &resolved, &mut record, &key, &mut budget);
        if result.is_err() && existing.is_none() {
            // Leave no trace of a failed new image (we hold its lock).
            let _ = fs::remove_file(&lock_path);
        }
        drop(lock);
        // Collect layers nothing references (those of a replaced image, or
        // those a failed import already moved into place). Best effort: a
        // failed cleanup is retried by the next import or removal.
        let _ = self.gc();
        let _ = self.clean_tmp();
        result?;
        self.info(&record)
    }

    fn unpack_and_commit(
        &self,
        src: &Source,
        resolved: &Resolved,
        record: &mut ImageRecord,
        key: &str,
        budget: &mut Budget,
    ) -> Result<(), ImageError> {
        let tmp = self.tmp_dir();
        let work = tmp.join(format!("import-{}", unique_suffix()));
        DirBuilder::new()
            .mode(0o700)
            .create(&work)
            .map_err(ImageError::io("create directory", &work))?;
        let result = (|| {
            let tmp_fd = open_dir(&tmp).map_err(ImageError::io("open", &tmp))?;
            let mut space = SpaceGuard::new(tmp_fd, &self.root)?;
            let mut known = self.known_layer_sizes()?;
            let mut sizes = Vec::with_capacity(resolved.layers.len());
            for (i, layer) in resolved.layers.iter().enumerate() {
                let staging = work.join(format!("layer-{i}"));
                let size = self
                    .unpack_one(src, layer, &staging, budget, &mut space)?
                    .or_else(|| known.get(layer.diff_id.hex()).copied());
                if let Some(size) = size {
                    known.insert(layer.diff_id.hex().to_owned(), size);
                }
                sizes.push(size);
            }
            record.layer_sizes = sizes.into_iter().collect::<Option<_>>().unwrap_or_default();
            self.write_record(key, record)
        })();
        if let Ok(tmp_fd) = open_dir(&tmp) {
            let name = work.file_name().expect("has a name");
            let _ = remove_tree_at(tmp_fd.as_fd(), name, &tmp);
        }
        result
    }

    /// Unpacks one layer into `staging`, syncs it and moves it into
    /// `layers/`; returns its unpacked size, or `None` if it is there already (unpacked for this image
    /// or another).
    fn unpack_one(
        &self,
        src: &Source,
        layer: &LayerRef,
        staging: &Path,
        budget: &mut Budget,
        space: &mut SpaceGuard,
    ) -> Result<Option<u64>, ImageError> {
        let layers_dir = self.layers_dir();
        let dest = layers_dir.join(layer.diff_id.hex());
        if is_dir_nofollow(&dest) {
            return Ok(None);
        }
        DirBuilder::new()
            .mode(0o700)
            .create(staging)
            .map_err(ImageError::io("create directory", staging))?;
        let fd = open_dir(staging).map_err(ImageError::io("open", staging))?;
        let blob = src
            .open_file(&layer.path)?
            .ok_or_else(|| ImageError::MissingBlob {
                what: layer.what.clone(),
                digest: layer.blob.to_string(),
            })?;
        let unpacked = unpack_layer(blob, layer, (fd.as_fd(), staging), budget, space)?;
        // One syncfs flushes every file and directory of the layer.
        nix::unistd::syncfs(&fd).map_err(ImageError::io("sync", staging))?;
        drop(fd);
        fs::rename(staging, &dest).map_err(ImageError::io("move layer into", &dest))?;
        fsync_dir(&layers_dir).map_err(ImageError::io("sync", &layers_dir))?;
        Ok(Some(unpacked))
    }

    /// The unpacked size of every layer the store's images record one for,
    /// by the layer's hex digest.
    fn known_layer_sizes(&self) -> Result<HashMap<String, u64>, ImageError> {
        let mut known = HashMap::new();
        for r in self.read_all_records()? {
            if r.layer_sizes.len() != r.layers.len() {
                continue;
            }
            for (d, size) in r.layers.iter().zip(&r.layer_sizes) {
                if let Ok(d) = Digest::parse(d) {
                    known.insert(d.hex().to_owned(), *size);
                }
            }
        }
        Ok(known)
    }
}

impl ImageStore {
    /// Writes an image's metadata whole, through a temporary file in
    /// `tmp/`, synced: after a crash it is the old file or the new one.
    fn write_record(&self, key: &str, record: &ImageRecord) -> Result<(), ImageError> {
        let bytes = serde_json::to_vec_pretty(record).expect("record serialises");
        let dest = self.record_path(key);
        let (tmp, images) = (self.tmp_dir(), self.root.join(IMAGES_DIR));
        let tmp_dir = Dir::open_existing(&tmp).map_err(ImageError::io("open", &tmp))?;
        let dir = Dir::open_existing(&images).map_err(ImageError::io("open", &images))?;
        let how = Publish {
            tmp_dir: &tmp_dir,
            tmp_name: &format!("meta-{}", unique_suffix()),
            replace: true,
            durable: true,
        };
        dir.publish(&format!("{key}.json"), &bytes, how)
            .map_err(ImageError::io("write", &dest))
    }
}

fn make_record(name: &str, r: &Resolved, size: u64) -> ImageRecord {
    let rc = r.config.config.as_ref();
    let c = &r.config;
    ImageRecord {
        version: RECORD_VERSION,
        name: name.to_owned(),
        manifest_digest: r.manifest_digest.as_ref().map(Digest::to_string),
        config_digest: r.config_digest.to_string(),
        architecture: c.architecture.clone(),
        os: c.os.clone(),
        variant: non_empty(c.variant.clone()),
        created: non_empty(c.created.clone()),
        imported_at: now_secs(),
        size,
        layers: r.layers.iter().map(|l| l.diff_id.to_string()).collect(),
        layer_sizes: Vec::new(),
        config: ImageRunConfig {
            entrypoint: rc.and_then(|c| c.entrypoint.clone()).unwrap_or_default(),
            cmd: rc.and_then(|c| c.cmd.clone()).unwrap_or_default(),
            env: rc.and_then(|c| c.env.clone()).unwrap_or_default(),
            working_dir: non_empty(rc.and_then(|c| c.working_dir.clone())),
            user: non_empty(rc.and_then(|c| c.user.clone())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for ok in [
            "busybox",
            "busybox:latest",
            "docker.io/library/alpine:3.20",
            "a@sha256:ab",
            "x_y+z",
        ] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            "-x",
            ".x",
            "a b",
            "a\nb",
            "../x",
            "/abs",
            &"a".repeat(256),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn name_keys_are_distinct_and_file_safe() {
        let a = name_key("busybox:latest");
        let b = name_key("busybox:1");
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
