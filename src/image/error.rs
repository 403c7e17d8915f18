//! The error type of the image store.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while importing, listing, leasing or removing
/// images. Each message is one line saying what happened and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// A filesystem operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "create directory".
        action: String,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Neither `$XDG_DATA_HOME` nor a home directory is known.
    #[error(
        "cannot locate the image store: neither XDG_DATA_HOME nor HOME is set to an absolute path; set one of them"
    )]
    NoStoreLocation,

    /// The import source is neither an OCI layout nor a supported archive.
    #[error("{path} is not an OCI image layout or image archive: {reason}")]
    InvalidSource {
        /// The source given to `import`.
        path: PathBuf,
        /// Why it was not recognised.
        reason: String,
    },

    /// The import source is a compressed tarball.
    #[error(
        "{path} is a {compression}-compressed archive; decompress it first (e.g. `gunzip` or `zstd -d`) and import the plain .tar"
    )]
    CompressedArchive {
        /// The source given to `import`.
        path: PathBuf,
        /// "gzip", "zstd", "xz" or "bzip2".
        compression: &'static str,
    },

    /// A blob referenced by the image is not in the source.
    #[error(
        "{what} blob {digest} is missing from the image source; re-export the image completely"
    )]
    MissingBlob {
        /// Which blob ("manifest", "config", "layer 2", ...).
        what: String,
        /// Its digest.
        digest: String,
    },

    /// A blob does not have the size its descriptor announces.
    #[error(
        "{what} blob {digest} should be {expected} bytes but is {actual}; the image is corrupt or was tampered with, re-export it"
    )]
    SizeMismatch {
        /// Which blob.
        what: String,
        /// Its expected digest.
        digest: String,
        /// Size given by the descriptor.
        expected: u64,
        /// Size found ("at least" when reading stopped early).
        actual: String,
    },

    /// A blob's content does not hash to the digest that references it.
    #[error(
        "{what} blob {digest} has content digest {actual}; the image is corrupt or was tampered with, re-export it"
    )]
    DigestMismatch {
        /// Which blob.
        what: String,
        /// The digest that references it.
        digest: String,
        /// The digest of what was actually read.
        actual: String,
    },

    /// A layer's uncompressed content does not match the config's diff_id.
    #[error(
        "layer {layer} unpacks to content {actual} but the image config expects {expected}; the image is corrupt, re-export it"
    )]
    DiffIdMismatch {
        /// The layer blob digest.
        layer: String,
        /// The diff_id from the image config.
        expected: String,
        /// The digest of the uncompressed tar stream.
        actual: String,
    },

    /// A digest uses an algorithm other than sha256, or is malformed.
    #[error("unsupported or malformed digest {digest:?}: only sha256:<64 hex digits> is supported")]
    UnsupportedDigest {
        /// The digest string as found.
        digest: String,
    },

    /// A manifest, config or layer has a media type this store cannot handle.
    #[error("{what} has unsupported media type {media_type:?}; {hint}")]
    UnsupportedMediaType {
        /// Which object.
        what: String,
        /// Its media type.
        media_type: String,
        /// What is supported.
        hint: &'static str,
    },

    /// A JSON document or archive structure is invalid.
    #[error("invalid {what}: {reason}; the image is malformed, re-export it")]
    Malformed {
        /// Which document.
        what: String,
        /// What is wrong.
        reason: String,
    },

    /// No image in the source matches the host platform.
    #[error(
        "no image for {host} in {path} (available: {available}); import an image built for this host"
    )]
    NoMatchingPlatform {
        /// The source.
        path: PathBuf,
        /// The host platform, e.g. linux/amd64.
        host: String,
        /// What the source offers.
        available: String,
    },

    /// The selected image's config says it is for another platform.
    #[error("the image is for {image}, but this host is {host}; import an image built for {host}")]
    PlatformMismatch {
        /// Platform from the image config.
        image: String,
        /// The host platform.
        host: String,
    },

    /// The source holds several images for this platform.
    #[error("{path} holds several images ({choices}); pass the tag of the one to import")]
    Ambiguous {
        /// The source.
        path: PathBuf,
        /// The candidates.
        choices: String,
    },

    /// No name was given and the source does not carry one.
    #[error(
        "the image in {path} has no name (no org.opencontainers.image.ref.name annotation or RepoTags); pass a name to import it under"
    )]
    NameRequired {
        /// The source.
        path: PathBuf,
    },

    /// An image name is not acceptable.
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },

    /// A layer contains an entry that is refused for safety.
    #[error(
        "layer {layer}: refusing entry {entry:?}: {reason}; the image is unsafe or corrupt and was not imported"
    )]
    UnsafeEntry {
        /// The layer blob digest.
        layer: String,
        /// The entry path as written in the archive.
        entry: String,
        /// Why it was refused.
        reason: String,
    },

    /// A layer blob is not a valid (compressed) tar stream.
    #[error(
        "layer {layer} is not a valid {format} archive ({source}); the image is corrupt, re-export it"
    )]
    CorruptLayer {
        /// The layer blob digest.
        layer: String,
        /// "tar", "tar+gzip" or "tar+zstd".
        format: &'static str,
        /// What the decoder or tar reader said.
        #[source]
        source: io::Error,
    },

    /// A layer entry could not be read or written.
    #[error(
        "layer {layer}: cannot unpack {entry:?}: {source}; check the free space and permissions of the image store"
    )]
    Unpack {
        /// The layer blob digest.
        layer: String,
        /// The entry path (or "archive" for stream-level problems).
        entry: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The image unpacks to more than the import may write.
    #[error("the image unpacks to more than {limit} bytes, the most this import may write{hint}")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
        /// What to do (`--max-size`, or nothing when the caller chose it).
        hint: &'static str,
    },

    /// The store's filesystem is (nearly) full.
    #[error(
        "stopped importing: the filesystem of {path} has {free} left, and an import leaves at least {keep} free; free some space (or move the image store: it follows XDG_DATA_HOME) and import again"
    )]
    NoSpace {
        /// The store.
        path: PathBuf,
        /// What is left ("12 MiB", "800 inodes").
        free: String,
        /// What an import leaves free.
        keep: String,
    },

    /// The store's filesystem cannot hold overlayfs metadata.
    #[error(
        "the filesystem of {path} does not support user extended attributes, which overlayfs needs for opaque directories; put the image store on ext4, xfs, btrfs or tmpfs (Linux >= 6.6)"
    )]
    NoUserXattr {
        /// The directory where setting the xattr failed.
        path: PathBuf,
    },

    /// No image by that name.
    #[error("image {name} not found; run `hutch image list` to see imported images")]
    NotFound {
        /// The name asked for.
        name: String,
    },

    /// The image is leased by a running sandbox.
    #[error("image {name} is in use by a running sandbox; stop the sandbox and retry")]
    InUse {
        /// The image name.
        name: String,
    },

    /// The store contains something it did not write.
    #[error(
        "image store entry {path} is damaged: {reason}; remove that file (or the whole store) and re-import"
    )]
    StoreCorrupt {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The longest piece of untrusted input (a name, a media type) an error
/// message repeats: the rest is cut, and the message says how long it was.
pub(crate) const SHOWN_MAX: usize = 200;

/// `s`, cut to [`SHOWN_MAX`] characters for a message (control characters
/// are escaped where the line is printed, or by `{:?}`).
pub(crate) fn clip(s: &str) -> String {
    clip_bytes(s.as_bytes())
}

/// [`clip`] of bytes that may not be UTF-8 (shown lossily).
pub(crate) fn clip_bytes(b: &[u8]) -> String {
    let looked_at = &b[..b.len().min(4 * SHOWN_MAX)];
    let text = String::from_utf8_lossy(looked_at);
    let end = text
        .char_indices()
        .nth(SHOWN_MAX)
        .map_or(text.len(), |(i, _)| i);
    if end == text.len() && looked_at.len() == b.len() {
        text.into_owned()
    } else {
        format!("{}... ({} bytes in all)", &text[..end], b.len())
    }
}

impl ImageError {
    /// The error of `action` on `path`, from an `io::Error`, an errno or
    /// a `safe_fs` error.
    pub(crate) fn io<E: Into<io::Error>>(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(E) -> Self {
        let action = action.into();
        let path = path.into();
        move |source| ImageError::Io {
            action,
            path,
            source: source.into(),
        }
    }

    pub(crate) fn malformed(what: impl Into<String>, reason: impl Into<String>) -> Self {
        ImageError::Malformed {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
