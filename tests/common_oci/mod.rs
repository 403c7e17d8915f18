//! Test helpers: write tar layers byte by byte (so malicious entries can be
//! expressed exactly), and OCI image layouts / docker-save archives with
//! correct digests.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

pub const MTIME: u64 = 1_700_000_000;

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(data))
}

/// The host architecture in OCI terms.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// An architecture that is not the host's.
pub fn foreign_arch() -> &'static str {
    if host_arch() == "s390x" {
        "riscv64"
    } else {
        "s390x"
    }
}

/// A minimal ustar writer; long names use PAX headers.
#[derive(Default)]
pub struct Tar {
    buf: Vec<u8>,
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    assert!(s.len() <= width, "value {value} too large for tar field");
    field[..width].copy_from_slice(s.as_bytes());
    field[width] = 0;
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // "<len> key=value\n", where len counts the whole record.
    let body_len = 1 + key.len() + 1 + value.len() + 1;
    let mut len = body_len + 1;
    while format!("{len}").len() + body_len != len {
        len = format!("{len}").len() + body_len;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

impl Tar {
    pub fn new() -> Self {
        Tar::default()
    }

    fn header(
        &mut self,
        name: &[u8],
        typeflag: u8,
        mode: u32,
        size: u64,
        link: &[u8],
        dev: (u32, u32),
    ) {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name);
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], MTIME);
        h[156] = typeflag;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], u64::from(dev.0));
        octal(&mut h[337..345], u64::from(dev.1));
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.buf.extend_from_slice(&h);
    }

    fn data(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.buf.extend(std::iter::repeat_n(0u8, pad));
    }

    /// Any entry, exactly as given.
    pub fn raw(
        &mut self,
        path: &[u8],
        typeflag: u8,
        mode: u32,
        link: &[u8],
        data: &[u8],
        dev: (u32, u32),
    ) -> &mut Self {
        let (name, link_field): (&[u8], &[u8]) = if path.len() > 100 || link.len() > 100 {
            let mut pax = Vec::new();
            if path.len() > 100 {
                pax.extend(pax_record("path", path));
            }
            if link.len() > 100 {
                pax.extend(pax_record("linkpath", link));
            }
            self.header(
                b"././@PaxHeader",
                b'x',
                0o644,
                pax.len() as u64,
                b"",
                (0, 0),
            );
            self.data(&pax);
            (
                if path.len() > 100 {
                    b"pax-long-name"
                } else {
                    path
                },
                if link.len() > 100 {
                    b"pax-long-link"
                } else {
                    link
                },
            )
        } else {
            (path, link)
        };
        self.header(name, typeflag, mode, data.len() as u64, link_field, dev);
        self.data(data);
        self
    }

    /// A header alone, announcing `size` bytes of data the caller appends
    /// (or never does: a stream generated elsewhere follows).
    pub fn header_only(&mut self, path: &[u8], typeflag: u8, size: u64) -> &mut Self {
        self.header(path, typeflag, 0o644, size, b"", (0, 0));
        self
    }

    /// The bytes written so far, without the end-of-archive blocks.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.raw(path.as_bytes(), b'0', mode, b"", data, (0, 0))
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.raw(path.as_bytes(), b'5', mode, b"", b"", (0, 0))
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(path.as_bytes(), b'2', 0o777, target.as_bytes(), b"", (0, 0))
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(path.as_bytes(), b'1', 0o644, target.as_bytes(), b"", (0, 0))
    }

    pub fn chardev(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        self.raw(path.as_bytes(), b'3', 0o666, b"", b"", (major, minor))
    }

    pub fn blockdev(&mut self, path: &str, major: u32, minor: u32) -> &mut Self {
        self.raw(path.as_bytes(), b'4', 0o660, b"", b"", (major, minor))
    }

    pub fn fifo(&mut self, path: &str) -> &mut Self {
        self.raw(path.as_bytes(), b'6', 0o644, b"", b"", (0, 0))
    }

    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.buf.clone();
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

/// A layer blob ready to be written into a layout.
#[derive(Clone, Debug)]
pub struct Layer {
    pub blob: Vec<u8>,
    pub media_type: String,
    pub diff_id: String,
}

impl Layer {
    pub fn new(tar: Vec<u8>, comp: Comp) -> Layer {
        let diff_id = digest(&tar);
        let (blob, media_type) = match comp {
            Comp::None => (tar, "application/vnd.oci.image.layer.v1.tar"),
            Comp::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&tar).unwrap();
                (
                    e.finish().unwrap(),
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                )
            }
            Comp::Zstd => (
                ruzstd::encoding::compress_to_vec(
                    &tar[..],
                    ruzstd::encoding::CompressionLevel::Fastest,
                ),
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        };
        Layer {
            blob,
            media_type: media_type.to_owned(),
            diff_id,
        }
    }

    pub fn digest(&self) -> String {
        digest(&self.blob)
    }
}

/// Options for one image in a layout.
#[derive(Clone, Debug)]
pub struct ImageOpts {
    pub ref_name: Option<String>,
    /// Platform in the index descriptor (None: no platform field).
    pub index_platform: Option<(String, String)>,
    /// Architecture in the config.
    pub config_arch: String,
    pub run: Value,
}

impl Default for ImageOpts {
    fn default() -> Self {
        ImageOpts {
            ref_name: None,
            index_platform: None,
            config_arch: host_arch().to_owned(),
            run: json!({"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]}),
        }
    }
}

impl ImageOpts {
    pub fn named(name: &str) -> Self {
        ImageOpts {
            ref_name: Some(name.to_owned()),
            ..Default::default()
        }
    }
}

/// An OCI image layout being written.
pub struct Layout {
    pub dir: PathBuf,
    pub index: Vec<Value>,
}

/// Descriptor and digests of an image written into a layout.
#[derive(Clone, Debug)]
pub struct Written {
    pub descriptor: Value,
    pub manifest_digest: String,
    pub config_digest: String,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_owned(),
            index: Vec::new(),
        }
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    }

    /// Writes a blob, returns its digest.
    pub fn blob(&self, data: &[u8]) -> String {
        let d = digest(data);
        fs::write(self.blob_path(&d), data).unwrap();
        d
    }

    /// Writes config, layers and manifest; returns the manifest descriptor
    /// (not yet in the index).
    pub fn image(&self, layers: &[Layer], opts: &ImageOpts) -> Written {
        let diff_ids: Vec<_> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let config = serde_json::to_vec(&json!({
            "architecture": opts.config_arch,
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": opts.run,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [],
        }))
        .unwrap();
        let config_digest = self.blob(&config);
        let layer_descs: Vec<_> = layers
            .iter()
            .map(|l| {
                json!({
                    "mediaType": l.media_type,
                    "digest": self.blob(&l.blob),
                    "size": l.blob.len(),
                })
            })
            .collect();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": layer_descs,
        }))
        .unwrap();
        let manifest_digest = self.blob(&manifest);
        let mut desc = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
        });
        if let Some(n) = &opts.ref_name {
            desc["annotations"] = json!({"org.opencontainers.image.ref.name": n});
        }
        if let Some((os, arch)) = &opts.index_platform {
            desc["platform"] = json!({"os": os, "architecture": arch});
        }
        Written {
            descriptor: desc,
            manifest_digest,
            config_digest,
        }
    }

    /// Adds an image to the index and rewrites index.json.
    pub fn add(&mut self, layers: &[Layer], opts: &ImageOpts) -> Written {
        let w = self.image(layers, opts);
        self.index.push(w.descriptor.clone());
        self.write_index();
        w
    }

    pub fn write_index(&self) {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": self.index,
        });
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }
}

/// Packs a directory into an uncompressed tar (like an oci-archive).
pub fn tar_dir(dir: &Path, out: &Path) {
    let f = fs::File::create(out).unwrap();
    let mut b = tar::Builder::new(f);
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap().sync_all().unwrap();
}

/// Writes a legacy `docker save` archive (no index.json) to `out`.
/// The second and later occurrences of an identical layer are stored as
/// symlinks to the first, as docker does.
pub fn docker_save(out: &Path, layers: &[Vec<u8>], repo_tag: &str, run: Value) {
    let diff_ids: Vec<_> = layers.iter().map(|l| digest(l)).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": host_arch(),
        "os": "linux",
        "config": run,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_name = format!("{}.json", sha256_hex(&config));
    let mut t = Tar::new();
    t.file(&config_name, 0o644, &config);
    let mut paths: Vec<String> = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let id = format!("{:064x}", i + 1);
        let path = format!("{id}/layer.tar");
        t.dir(&id, 0o755);
        match layers[..i].iter().position(|p| p == l) {
            Some(first) => {
                t.symlink(&path, &format!("../{}", paths[first]));
            }
            None => {
                t.file(&path, 0o644, l);
            }
        }
        paths.push(path);
    }
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": [repo_tag],
        "Layers": paths,
    }]))
    .unwrap();
    t.file("manifest.json", 0o644, &manifest);
    fs::write(out, t.finish()).unwrap();
}

/// A temporary directory that can be removed even when tests left
/// read-only directories in it.
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
}

impl TestDir {
    pub fn new() -> TestDir {
        TestDir {
            dir: Some(tempfile::tempdir().unwrap()),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }
}

fn make_writable(p: &Path) {
    let Ok(meta) = fs::symlink_metadata(p) else {
        return;
    };
    if meta.is_dir() {
        let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let dir = self.dir.take().unwrap();
        make_writable(dir.path());
        let _ = dir.close();
    }
}

/// Every path below `root` (relative), sorted; symlinks not followed.
pub fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, p: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let path = e.path();
            out.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if fs::symlink_metadata(&path)
                .map(|m| m.is_dir())
                .unwrap_or(false)
            {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}
