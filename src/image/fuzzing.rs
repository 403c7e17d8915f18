//! Entry points for fuzzing the import's parsers on raw bytes
//! (tests/image_fuzz.rs and fuzz/afl/): the layer unpacker (tar entries,
//! compressed or not) and the archive reader with the index walk. They
//! run the same code an import runs, on a directory and a file the
//! caller provides; nothing else of the store is involved.

use std::os::fd::AsFd;
use std::path::Path;

use super::budget::{Budget, SpaceGuard};
use super::digest::Digest;
use super::error::ImageError;
use super::oci::Compression;
use super::resolve::{HostPlatform, LayerRef, resolve};
use super::source::Source;
use super::unpack::unpack_layer;
use crate::safe_fs::open_dir;

/// How a fuzzed layer is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerFormat {
    Tar,
    Gzip,
    Zstd,
}

/// Unpacks `blob` (a layer in `format`) into the empty directory `dest`
/// with a budget of `max_size` bytes, as an import does. The blob's digest
/// is taken from the bytes; the uncompressed stream's digest cannot be
/// known beforehand, so a layer that unpacked completely and only differs
/// from the (unknowable) diff_id counts as accepted.
pub fn unpack(
    blob: &[u8],
    format: LayerFormat,
    dest: &Path,
    max_size: u64,
) -> Result<(), ImageError> {
    let compression = match format {
        LayerFormat::Tar => Compression::None,
        LayerFormat::Gzip => Compression::Gzip,
        LayerFormat::Zstd => Compression::Zstd,
    };
    let layer = LayerRef {
        what: "layer 1/1".into(),
        path: String::new(),
        blob: Digest::of(blob),
        size: Some(blob.len() as u64),
        compression,
        diff_id: Digest::of(b""),
    };
    let fd = open_dir(dest).map_err(ImageError::io("open", dest))?;
    let parent = dest.parent().unwrap_or(dest);
    let parent_fd = open_dir(parent).map_err(ImageError::io("open", parent))?;
    let mut space = SpaceGuard::new(parent_fd, parent)?;
    let mut budget = Budget::new(max_size, true);
    match unpack_layer(blob, &layer, (fd.as_fd(), dest), &mut budget, &mut space) {
        Ok(_) | Err(ImageError::DiffIdMismatch { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens `archive` (an `oci-archive` or `docker save` tar, or a layout
/// directory) and chooses the image in it for this host as an import does:
/// the index walked, manifest and config read and verified. Returns the
/// config's digest and the number of layers; unpacks nothing.
pub fn resolve_source(archive: &Path, tag: Option<&str>) -> Result<(String, usize), ImageError> {
    let src = Source::open(archive)?;
    let resolved = resolve(&src, tag, &HostPlatform::current())?;
    Ok((resolved.config_digest.to_string(), resolved.layers.len()))
}
