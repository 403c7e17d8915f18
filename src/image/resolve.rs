//! Finding the image to import in a source: walk the index (choosing the
//! host platform), read and verify manifest and config, and describe each
//! layer. Nothing here writes anywhere.

use std::collections::HashSet;
use std::io::Read;

use super::digest::{Digest, HashingReader};
use super::error::{ImageError, clip};
use super::oci::{
    self, Compression, Descriptor, DockerSaveEntry, ImageConfig, ImageLayoutFile, Index, Manifest,
    Platform,
};
use super::source::Source;

/// Largest JSON document (index, manifest, config) accepted.
pub(crate) const MAX_JSON: u64 = 8 << 20;
/// Deepest nesting of indexes followed.
const MAX_INDEX_DEPTH: usize = 4;
/// Most descriptors one index may list (a multi-platform index lists one
/// per platform, with attestations a few more).
const MAX_INDEX_ENTRIES: usize = 1024;
/// Most descriptors looked at in all the indexes of a source together: a
/// nested index is read once however often it is listed, so an index of
/// 200 references to an index of 200 references... costs 200 per level,
/// not 200 to the power of the depth.
const MAX_DESCRIPTORS: usize = 4096;
/// Most layers of an image: overlayfs stacks at most 500 lower layers.
const MAX_LAYERS: usize = 500;
/// Most names listed in a message about what a source holds.
const MAX_LISTED: usize = 8;

/// The platform this process runs on, in OCI terms.
#[derive(Clone, Debug)]
pub(crate) struct HostPlatform {
    pub os: &'static str,
    pub arch: &'static str,
}

impl HostPlatform {
    pub(crate) fn current() -> HostPlatform {
        HostPlatform {
            os: std::env::consts::OS,
            arch: oci_arch(std::env::consts::ARCH),
        }
    }

    fn matches(&self, os: &str, arch: &str) -> bool {
        os == self.os && arch == self.arch
    }
}

impl std::fmt::Display for HostPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

/// Rust's architecture names to the GOARCH-style names used by OCI.
pub(crate) fn oci_arch(rust_arch: &'static str) -> &'static str {
    match rust_arch {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "mips" if cfg!(target_endian = "little") => "mipsle",
        other => other,
    }
}

/// Where a layer's bytes are and what they must hash to.
#[derive(Debug)]
pub(crate) struct LayerRef {
    /// "layer 2/5" for messages.
    pub what: String,
    /// Path inside the source.
    pub path: String,
    /// Digest of the blob as stored.
    pub blob: Digest,
    /// Size of the blob, when a descriptor gives it.
    pub size: Option<u64>,
    pub compression: Compression,
    /// Digest of the uncompressed tar (config `rootfs.diff_ids`).
    pub diff_id: Digest,
}

/// The image chosen in a source, with verified manifest and config.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// Name found in the source (ref.name annotation or RepoTags).
    pub name: Option<String>,
    /// `None` for legacy `docker save` archives, which have no manifest blob.
    pub manifest_digest: Option<Digest>,
    pub config_digest: Digest,
    pub config: ImageConfig,
    pub layers: Vec<LayerRef>,
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Checks the length and digest of a blob that has been read completely.
pub(crate) fn check_digest(
    expected: &Digest,
    size: Option<u64>,
    what: &str,
    actual: &Digest,
    len: u64,
) -> Result<(), ImageError> {
    if let Some(s) = size
        && len != s
    {
        return Err(ImageError::SizeMismatch {
            what: what.to_owned(),
            digest: expected.to_string(),
            expected: s,
            actual: if len > s {
                format!("more than {s}")
            } else {
                len.to_string()
            },
        });
    }
    if actual != expected {
        return Err(ImageError::DigestMismatch {
            what: what.to_owned(),
            digest: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// Streams `reader` through sha256, reading at most `size + 1` bytes when a
/// size is known, and checks size and digest. Returns the bytes read when
/// `keep` is set, and the length.
fn check_stream(
    reader: impl Read,
    expected: &Digest,
    size: Option<u64>,
    what: &str,
    keep: bool,
    src: &Source,
) -> Result<(Vec<u8>, u64), ImageError> {
    let limited: Box<dyn Read> = match size {
        Some(s) => Box::new(reader.take(s.saturating_add(1))),
        None => Box::new(reader),
    };
    let mut hr = HashingReader::new(limited);
    let mut kept = Vec::new();
    let io_err = |e| ImageError::Io {
        action: format!("read {what} blob {expected} from"),
        path: src.path().to_owned(),
        source: e,
    };
    if keep {
        hr.read_to_end(&mut kept).map_err(io_err)?;
    }
    let (actual, len) = hr.finish().map_err(io_err)?;
    check_digest(expected, size, what, &actual, len)?;
    Ok((kept, len))
}

/// Reads a JSON blob named by a descriptor and verifies size and digest.
fn read_json_blob(
    src: &Source,
    digest: &Digest,
    size: u64,
    what: &str,
) -> Result<Vec<u8>, ImageError> {
    if size > MAX_JSON {
        return Err(ImageError::malformed(
            what,
            format!("{size} bytes is more than the {MAX_JSON} byte limit"),
        ));
    }
    let reader = src
        .open_file(&blob_path(digest))?
        .ok_or_else(|| ImageError::MissingBlob {
            what: what.to_owned(),
            digest: digest.to_string(),
        })?;
    Ok(check_stream(reader, digest, Some(size), what, true, src)?.0)
}

/// Verifies a layer blob (size and digest) without unpacking it. Returns
/// its length.
pub(crate) fn verify_layer_blob(src: &Source, layer: &LayerRef) -> Result<u64, ImageError> {
    let reader = src
        .open_file(&layer.path)?
        .ok_or_else(|| ImageError::MissingBlob {
            what: layer.what.clone(),
            digest: layer.blob.to_string(),
        })?;
    Ok(check_stream(reader, &layer.blob, layer.size, &layer.what, false, src)?.1)
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ImageError> {
    // serde's message may quote the document (a whole string value).
    serde_json::from_slice(bytes).map_err(|e| ImageError::malformed(what, clip(&e.to_string())))
}

/// Refuses an image of more layers than overlayfs can stack.
fn check_layer_count(n: usize) -> Result<(), ImageError> {
    if n > MAX_LAYERS {
        return Err(ImageError::malformed(
            "image",
            format!("it has {n} layers; overlayfs stacks at most {MAX_LAYERS}"),
        ));
    }
    Ok(())
}

/// Chooses and loads the image to import.
pub(crate) fn resolve(
    src: &Source,
    tag: Option<&str>,
    host: &HostPlatform,
) -> Result<Resolved, ImageError> {
    if let Some(layout) = src.read_small("oci-layout", 64 * 1024)? {
        let layout: ImageLayoutFile = parse_json(&layout, "oci-layout")?;
        if !layout.image_layout_version.starts_with("1.") {
            return Err(ImageError::InvalidSource {
                path: src.path().to_owned(),
                reason: format!(
                    "unsupported imageLayoutVersion {:?} (expected 1.0.0)",
                    clip(&layout.image_layout_version)
                ),
            });
        }
    }
    let resolved = if let Some(index) = src.read_small("index.json", MAX_JSON)? {
        resolve_oci(src, &index, tag, host)?
    } else if let Some(manifest) = src.read_small("manifest.json", MAX_JSON)? {
        resolve_docker_save(src, &manifest, tag)?
    } else {
        return Err(ImageError::InvalidSource {
            path: src.path().to_owned(),
            reason: "found neither index.json (OCI layout) nor manifest.json (docker save)".into(),
        });
    };
    check_config(&resolved, host)?;
    Ok(resolved)
}

fn check_config(r: &Resolved, host: &HostPlatform) -> Result<(), ImageError> {
    let c = &r.config;
    if c.rootfs.kind != "layers" {
        return Err(ImageError::malformed(
            "image config",
            format!("rootfs.type is {:?}, expected \"layers\"", c.rootfs.kind),
        ));
    }
    // Tolerate configs that omit os/architecture; refuse explicit mismatches.
    let os = if c.os.is_empty() { host.os } else { &c.os };
    let arch = if c.architecture.is_empty() {
        host.arch
    } else {
        &c.architecture
    };
    if !host.matches(os, arch) {
        return Err(ImageError::PlatformMismatch {
            image: format!("{os}/{arch}"),
            host: host.to_string(),
        });
    }
    Ok(())
}

struct Candidate {
    digest: Digest,
    size: u64,
    name: Option<String>,
    platform: Option<Platform>,
}

impl Candidate {
    fn describe(&self) -> String {
        let plat = self
            .platform
            .as_ref()
            .map_or_else(|| "platform unspecified".to_owned(), Platform::display);
        let plat = clip(&plat);
        match &self.name {
            Some(n) => format!("{} [{plat}] {}", clip(n), self.digest.short()),
            None => format!("[{plat}] {}", self.digest.short()),
        }
    }
}

enum DescKind {
    Index,
    Manifest,
    Other,
}

fn desc_kind(media_type: &str, bytes: Option<&[u8]>) -> DescKind {
    match media_type {
        oci::MT_OCI_INDEX | oci::MT_DOCKER_LIST => DescKind::Index,
        oci::MT_OCI_MANIFEST | oci::MT_DOCKER_MANIFEST => DescKind::Manifest,
        "" => {
            // mediaType is required, but be tolerant: sniff the document.
            let v: Option<serde_json::Value> = bytes.and_then(|b| serde_json::from_slice(b).ok());
            match v {
                Some(v) if v.get("manifests").is_some() => DescKind::Index,
                Some(v) if v.get("config").is_some() => DescKind::Manifest,
                _ => DescKind::Other,
            }
        }
        _ => DescKind::Other,
    }
}

/// Where a walk of the indexes of a source is.
struct IndexWalk<'a> {
    src: &'a Source,
    host: &'a HostPlatform,
    /// The images for this host found so far.
    found: Vec<Candidate>,
    /// What was passed over (other platforms, other media types).
    skipped: Vec<String>,
    /// Nested indexes already walked (each is walked once).
    walked: HashSet<Digest>,
    /// Descriptors looked at so far.
    descriptors: usize,
}

impl IndexWalk<'_> {
    /// Walks `index` (at `depth`, named `name` and for `platform` by the
    /// index above, if it says).
    fn walk(
        &mut self,
        index: &Index,
        depth: usize,
        name: Option<&str>,
        platform: Option<&Platform>,
    ) -> Result<(), ImageError> {
        if index.schema_version != 2 {
            return Err(ImageError::malformed(
                "image index",
                format!("schemaVersion {} (expected 2)", index.schema_version),
            ));
        }
        if index.manifests.len() > MAX_INDEX_ENTRIES {
            return Err(ImageError::malformed(
                "image index",
                format!(
                    "it lists {} manifests (at most {MAX_INDEX_ENTRIES} are read)",
                    index.manifests.len()
                ),
            ));
        }
        for desc in &index.manifests {
            self.descriptors += 1;
            if self.descriptors > MAX_DESCRIPTORS {
                return Err(ImageError::malformed(
                    "image index",
                    format!("its indexes list more than {MAX_DESCRIPTORS} manifests in all"),
                ));
            }
            self.descriptor(desc, depth, name, platform)?;
        }
        Ok(())
    }

    fn descriptor(
        &mut self,
        desc: &Descriptor,
        depth: usize,
        name: Option<&str>,
        platform: Option<&Platform>,
    ) -> Result<(), ImageError> {
        let digest = Digest::parse(&desc.digest)?;
        let d_name = desc.annotation(oci::ANNOTATION_REF_NAME).or(name);
        let d_platform = desc.platform.as_ref().or(platform);
        if desc.annotation(oci::ANNOTATION_DOCKER_REF_TYPE) == Some("attestation-manifest") {
            return Ok(());
        }
        if let Some(p) = d_platform
            && !self.host.matches(&p.os, &p.architecture)
        {
            self.skipped.push(clip(&p.display()));
            return Ok(());
        }
        let sniffed = if desc.media_type.is_empty() {
            Some(read_json_blob(self.src, &digest, desc.size, "manifest")?)
        } else {
            None
        };
        match desc_kind(&desc.media_type, sniffed.as_deref()) {
            DescKind::Manifest => self.found.push(Candidate {
                digest,
                size: desc.size,
                name: d_name.map(str::to_owned),
                platform: d_platform.cloned(),
            }),
            DescKind::Index => {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(ImageError::malformed(
                        "image index",
                        "indexes are nested too deeply",
                    ));
                }
                if !self.walked.insert(digest.clone()) {
                    return Ok(()); // listed before: its images are found already
                }
                let bytes = match sniffed {
                    Some(b) => b,
                    None => read_json_blob(self.src, &digest, desc.size, "image index")?,
                };
                let nested: Index = parse_json(&bytes, "image index")?;
                drop(bytes);
                self.walk(&nested, depth + 1, d_name, d_platform)?;
            }
            DescKind::Other => {
                self.skipped
                    .push(format!("{} ({})", clip(&desc.media_type), digest.short()))
            }
        }
        Ok(())
    }
}

/// At most [`MAX_LISTED`] of `items`, joined, and how many more there are.
fn listed(items: impl ExactSizeIterator<Item = String>, sep: &str) -> String {
    let total = items.len();
    let mut shown: Vec<String> = items.take(MAX_LISTED).collect();
    if total > MAX_LISTED {
        shown.push(format!("and {} more", total - MAX_LISTED));
    }
    shown.join(sep)
}

fn resolve_oci(
    src: &Source,
    index_bytes: &[u8],
    tag: Option<&str>,
    host: &HostPlatform,
) -> Result<Resolved, ImageError> {
    let index: Index = parse_json(index_bytes, "index.json")?;
    let mut walk = IndexWalk {
        src,
        host,
        found: Vec::new(),
        skipped: Vec::new(),
        walked: HashSet::new(),
        descriptors: 0,
    };
    walk.walk(&index, 0, None, None)?;
    let chosen = choose(src, walk.found, &walk.skipped, tag, host)?;
    let manifest = read_manifest(src, &chosen)?;
    let config_desc: &Descriptor = &manifest.config;
    if config_desc.media_type != oci::MT_OCI_CONFIG
        && config_desc.media_type != oci::MT_DOCKER_CONFIG
    {
        return Err(ImageError::UnsupportedMediaType {
            what: "image config".into(),
            media_type: clip(&config_desc.media_type),
            hint: "only container images (OCI or Docker image config) can be imported",
        });
    }
    let config_digest = Digest::parse(&config_desc.digest)?;
    let config_bytes = read_json_blob(src, &config_digest, config_desc.size, "config")?;
    let config: ImageConfig = parse_json(&config_bytes, "image config")?;
    let layers = layer_refs(&manifest, &config)?;
    Ok(Resolved {
        name: chosen.name,
        manifest_digest: Some(chosen.digest),
        config_digest,
        config,
        layers,
    })
}

/// The one image of the index's candidates for this host (`tag` picks
/// among several names); `skipped` says what the index had instead.
fn choose(
    src: &Source,
    mut cands: Vec<Candidate>,
    skipped: &[String],
    tag: Option<&str>,
    host: &HostPlatform,
) -> Result<Candidate, ImageError> {
    if cands.len() > 1
        && let Some(tag) = tag
        && cands.iter().any(|c| c.name.as_deref() == Some(tag))
    {
        cands.retain(|c| c.name.as_deref() == Some(tag));
    }
    // The same manifest listed under several names is one image.
    let first = cands.first().map(|c| c.digest.clone());
    let all_same = cands.iter().all(|c| Some(&c.digest) == first.as_ref());
    match cands.len() {
        0 => Err(ImageError::NoMatchingPlatform {
            path: src.path().to_owned(),
            host: host.to_string(),
            available: if skipped.is_empty() {
                "nothing".into()
            } else {
                listed(skipped.iter().cloned(), ", ")
            },
        }),
        1 => Ok(cands.remove(0)),
        _ if all_same => {
            let names: Vec<_> = cands.iter().filter_map(|c| c.name.clone()).collect();
            let mut c = cands.remove(0);
            // Without a tag, a name is only taken if it is unambiguous.
            if tag.is_none() && names.iter().any(|n| Some(n) != names.first()) {
                c.name = None;
            }
            Ok(c)
        }
        _ => Err(ImageError::Ambiguous {
            path: src.path().to_owned(),
            choices: listed(cands.iter().map(Candidate::describe), "; "),
        }),
    }
}

/// The chosen image's manifest: schema 2, OCI or Docker.
fn read_manifest(src: &Source, chosen: &Candidate) -> Result<Manifest, ImageError> {
    let manifest_bytes = read_json_blob(src, &chosen.digest, chosen.size, "manifest")?;
    let manifest: Manifest = parse_json(&manifest_bytes, "image manifest")?;
    if manifest.schema_version != 2 {
        return Err(ImageError::malformed(
            "image manifest",
            format!("schemaVersion {} (expected 2)", manifest.schema_version),
        ));
    }
    if let Some(mt) = &manifest.media_type
        && mt != oci::MT_OCI_MANIFEST
        && mt != oci::MT_DOCKER_MANIFEST
    {
        return Err(ImageError::UnsupportedMediaType {
            what: format!("manifest {}", chosen.digest),
            media_type: clip(mt),
            hint: "only OCI and Docker schema 2 image manifests can be imported",
        });
    }
    Ok(manifest)
}

/// The manifest's layers, each with the uncompressed digest the config
/// gives it.
fn layer_refs(manifest: &Manifest, config: &ImageConfig) -> Result<Vec<LayerRef>, ImageError> {
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::malformed(
            "image",
            format!(
                "manifest lists {} layers but config has {} diff_ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        ));
    }
    let total = manifest.layers.len();
    check_layer_count(total)?;
    let mut layers = Vec::with_capacity(total);
    for (i, (desc, diff_id)) in manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .enumerate()
    {
        let what = format!("layer {}/{}", i + 1, total);
        let compression = oci::layer_compression(&desc.media_type).ok_or_else(|| {
            ImageError::UnsupportedMediaType {
                what: what.clone(),
                media_type: clip(&desc.media_type),
                hint: "supported layer types are tar, tar+gzip and tar+zstd",
            }
        })?;
        let blob = Digest::parse(&desc.digest)?;
        layers.push(LayerRef {
            what,
            path: blob_path(&blob),
            blob,
            size: Some(desc.size),
            compression,
            diff_id: Digest::parse(diff_id)?,
        });
    }
    Ok(layers)
}

/// Legacy `docker save` archives: `manifest.json` lists a config file named
/// by its digest and uncompressed layer tars, whose digests must equal the
/// config's diff_ids. So the chain is verified from the config file name.
fn resolve_docker_save(
    src: &Source,
    manifest_bytes: &[u8],
    tag: Option<&str>,
) -> Result<Resolved, ImageError> {
    let mut entries: Vec<DockerSaveEntry> = parse_json(manifest_bytes, "manifest.json")?;
    let tags_of = |e: &DockerSaveEntry| e.repo_tags.clone().unwrap_or_default();
    if entries.len() > 1
        && let Some(tag) = tag
    {
        entries.retain(|e| tags_of(e).iter().any(|t| t == tag));
    }
    let entry = match entries.len() {
        0 if tag.is_some() => {
            return Err(ImageError::Ambiguous {
                path: src.path().to_owned(),
                choices: "none is tagged with the name given".into(),
            });
        }
        0 => return Err(ImageError::malformed("manifest.json", "it lists no image")),
        1 => entries.remove(0),
        _ => {
            return Err(ImageError::Ambiguous {
                path: src.path().to_owned(),
                choices: listed(
                    entries.iter().map(|e| {
                        let t = tags_of(e);
                        if t.is_empty() {
                            clip(&e.config)
                        } else {
                            listed(t.iter().map(|t| clip(t)), ", ")
                        }
                    }),
                    "; ",
                ),
            });
        }
    };
    let hex = entry
        .config
        .strip_prefix("blobs/sha256/")
        .or_else(|| entry.config.strip_suffix(".json"))
        .unwrap_or("");
    let config_digest = Digest::from_hex(hex).ok_or_else(|| {
        ImageError::malformed(
            "manifest.json",
            format!(
                "config file name {:?} is not a sha256 digest",
                clip(&entry.config)
            ),
        )
    })?;
    let config_reader = src
        .open_file(&entry.config)?
        .ok_or_else(|| ImageError::MissingBlob {
            what: "config".into(),
            digest: config_digest.to_string(),
        })?;
    let (config_bytes, _) = check_stream(
        config_reader.take(MAX_JSON + 1),
        &config_digest,
        None,
        "config",
        true,
        src,
    )?;
    let config: ImageConfig = parse_json(&config_bytes, "image config")?;
    if config.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(ImageError::malformed(
            "image",
            format!(
                "manifest.json lists {} layers but config has {} diff_ids",
                entry.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        ));
    }
    let total = entry.layers.len();
    check_layer_count(total)?;
    let mut layers = Vec::with_capacity(total);
    for (i, (path, diff_id)) in entry.layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
        let diff_id = Digest::parse(diff_id)?;
        layers.push(LayerRef {
            what: format!("layer {}/{}", i + 1, total),
            path: path.clone(),
            blob: diff_id.clone(),
            size: None,
            compression: Compression::None,
            diff_id,
        });
    }
    let name = entry.repo_tags.and_then(|t| t.into_iter().next());
    Ok(Resolved {
        name,
        manifest_digest: None,
        config_digest,
        config,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names_follow_oci() {
        assert_eq!(oci_arch("x86_64"), "amd64");
        assert_eq!(oci_arch("aarch64"), "arm64");
        assert_eq!(oci_arch("riscv64"), "riscv64");
        let host = HostPlatform::current();
        assert_eq!(host.os, "linux");
        assert!(!host.arch.is_empty());
    }

    #[test]
    fn check_digest_reports_size_then_digest() {
        let d = Digest::of(b"hello");
        let other = Digest::of(b"hellO");
        assert!(check_digest(&d, Some(5), "x", &d, 5).is_ok());
        assert!(check_digest(&d, None, "x", &d, 5).is_ok());
        assert!(matches!(
            check_digest(&d, Some(4), "x", &d, 5),
            Err(ImageError::SizeMismatch { .. })
        ));
        let e = check_digest(&d, Some(5), "layer 1/1", &other, 5).unwrap_err();
        assert!(matches!(e, ImageError::DigestMismatch { .. }));
        assert!(e.to_string().contains(&d.to_string()), "{e}");
    }
}
