//! The OCI image store: offline import of OCI image layouts (directories
//! or `oci-archive` tarballs, and `docker save` archives) into a per-user,
//! content-addressed store of unpacked layers ready to be mounted as
//! unprivileged overlayfs lower layers.
//!
//! ```no_run
//! use hutch::image::ImageStore;
//! # fn main() -> Result<(), hutch::image::ImageError> {
//! let store = ImageStore::open(ImageStore::default_root(&hutch::host::Host::current())?)?;
//! let info = store.import("busybox.tar".as_ref(), Some("busybox"))?;
//! let lease = store.acquire(&info.name)?; // keeps the layers alive
//! // mount lease.info().layers (lowest first) with overlayfs `userxattr`...
//! drop(lease);
//! store.remove("busybox")?;
//! # Ok(()) }
//! ```
//!
//! # Verification
//! Every blob (manifest, config, each layer) is checked against the size
//! and sha256 digest that reference it before anything is written, and
//! again while a layer is unpacked; the uncompressed stream must also match
//! the config's `rootfs.diff_ids`. Only `sha256` digests are accepted.
//!
//! # Layer safety (layers are untrusted input)
//! - Paths are resolved one component at a time with
//!   `openat(O_NOFOLLOW | O_DIRECTORY)` from the layer directory: nothing
//!   is ever created through a symlink, nothing outside the layer is
//!   reachable. A leading `/` or `./` is dropped (absolute paths land
//!   inside the layer).
//! - **Refused** (import fails, naming the entry): `..` components, paths
//!   longer than `PATH_MAX`, entries whose parent is a symlink or not a
//!   directory, hardlinks whose target is outside the layer, missing from
//!   it (links may only point to entries earlier in the same layer), a
//!   directory or a special file, block and character devices (except the
//!   0:0 character device, which is an overlay whiteout) and FIFOs.
//! - **Stripped**: setuid and setgid bits (the sticky bit is kept).
//!   Other permission bits and mtimes are kept; directories missing from
//!   the layer are created 0755, and the layer root keeps owner rwx (it is
//!   renamed into and out of the store; the owner is root in the container).
//! - **Ignored**: ownership (files belong to the importing user, no chown)
//!   and extended attributes recorded in the layer (so file capabilities
//!   are dropped and a layer cannot plant `user.overlay.*` attributes).
//! - Symlinks are created as they are (absolute targets are normal in
//!   images and are resolved inside the container later), never followed.
//! - **Bounded**: the tar reader (`tar_stream`) checks every extension
//!   header against its limit before reading it and refuses sparse files;
//!   every byte of a layer's uncompressed stream is charged to the
//!   import's budget (`--max-size`) before it is written, and the import
//!   stops while the store's filesystem still has room (`budget`);
//!   indexes are bounded in depth, breadth and total, each read once;
//!   error messages cut what they repeat of the input (`error::clip`).
//!
//! # Sources
//! A layout directory's files are opened beneath it (symlinks followed
//! only inside it) and must be regular files, read no further than their
//! size; an archive is indexed by its headers alone, seeking over blobs.
//!
//! # Whiteouts
//! Layers are stored as overlayfs lower layers for an unprivileged mount
//! with `-o userxattr`: an OCI whiteout `.wh.NAME` becomes a 0:0 character
//! device `NAME` (unprivileged `mknod` of it needs Linux >= 5.8), and an
//! opaque marker `.wh..wh..opq` becomes the xattr `user.overlay.opaque=y`
//! on its directory. Other `.wh..wh.*` entries (aufs metadata) are skipped.
//!
//! # Crash safety
//! Layers are unpacked into `tmp/`, flushed with `syncfs`, and renamed into
//! `layers/`; the image metadata is written last (temp file, fsync,
//! rename). An import killed at any point leaves no image in `list`; its
//! leftovers in `tmp/` are removed by the next import (imports and removals
//! serialise on an exclusive `flock` of `store.lock`).

mod budget;
mod digest;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod oci;
pub mod opaque;
mod resolve;
pub mod run;
mod source;
mod store;
mod tar_stream;
mod unpack;

pub use budget::DEFAULT_MAX_SIZE;
pub use error::ImageError;
pub use store::{ImageInfo, ImageLease, ImageRunConfig, ImageStore, ImportOptions, validate_name};
