//! Inputs for the image import: seed layers and archives, layers and
//! archives generated from `arbitrary` choices, and mutations of valid
//! ones (see check.rs for the input's form: a mode byte, then the bytes).
//!
//! Every choice is read from an [`Unstructured`], so the same generator
//! runs on random bytes (tests/image_fuzz.rs) and on a coverage-guided
//! fuzzer's bytes.

use std::io::Write;

use arbitrary::{Result, Unstructured};
use hutch::image::fuzzing::LayerFormat;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::check::{Mode, Outcome};

/// The seeds of the corpus, by name, with how far each must get.
pub fn seeds() -> Vec<(&'static str, Vec<u8>, Outcome)> {
    let plain = |entries: &[TarEntry]| input(Mode::Layer(LayerFormat::Tar), &tar(entries));
    let file = |path: &str, data: &[u8]| TarEntry::new(path, b'0').data(data);
    let busybox_like = [
        TarEntry::new("bin/", b'5'),
        file("bin/busybox", b"\x7fELF..."),
        TarEntry::new("bin/sh", b'2').link("busybox"),
        TarEntry::new("bin/ls", b'1').link("bin/busybox"),
        TarEntry::new("etc/.wh.motd", b'0'),
        TarEntry::new("var/.wh..wh..opq", b'0'),
        file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
    ];
    let long = "d/".repeat(80) + "file";
    let accepted = [
        ("accepted-layer", plain(&busybox_like)),
        (
            "accepted-gzip",
            input(Mode::Layer(LayerFormat::Gzip), &gzip(&tar(&busybox_like))),
        ),
        (
            "accepted-zstd",
            input(Mode::Layer(LayerFormat::Zstd), &zstd(&tar(&busybox_like))),
        ),
        (
            "accepted-long-names",
            plain(&[
                TarEntry::new(&long, b'0').gnu_long_name().data(b"x"),
                TarEntry::new(&long.replace('d', "p"), b'0')
                    .pax_path()
                    .data(b"y"),
                TarEntry::new("link", b'2').link(&long).pax_link(),
            ]),
        ),
        (
            "accepted-archive",
            input(Mode::Archive, &oci_archive(&Archive::default())),
        ),
        (
            "accepted-nested-index",
            input(
                Mode::Archive,
                &oci_archive(&Archive {
                    nesting: 3,
                    fanout: 3,
                    ..Archive::default()
                }),
            ),
        ),
        ("accepted-docker-save", input(Mode::Archive, &docker_save())),
    ];
    let refused = [
        ("refused-dotdot", plain(&[file("a/../../x", b"x")])),
        (
            "refused-through-symlink",
            plain(&[
                TarEntry::new("up", b'2').link("/"),
                file("up/etc/passwd", b"x"),
            ]),
        ),
        (
            "refused-device",
            plain(&[TarEntry::new("dev/sda", b'4').device(8, 0)]),
        ),
        ("refused-fifo", plain(&[TarEntry::new("fifo", b'6')])),
        ("refused-sparse", plain(&[TarEntry::new("holes", b'S')])),
        (
            "refused-huge-pax",
            input(
                Mode::Layer(LayerFormat::Tar),
                &TarEntry::new("x", b'x').header_claiming(1 << 30),
            ),
        ),
        (
            "refused-huge-long-name",
            input(
                Mode::Layer(LayerFormat::Tar),
                &TarEntry::new("././@LongLink", b'L').header_claiming(256 << 20),
            ),
        ),
        (
            "refused-over-budget",
            input(
                Mode::Layer(LayerFormat::Gzip),
                &gzip(&tar(&[file("big", &vec![0; 5 << 20])])),
            ),
        ),
        (
            "refused-wide-index",
            input(
                Mode::Archive,
                &oci_archive(&Archive {
                    nesting: 0,
                    fanout: 1025,
                    ..Archive::default()
                }),
            ),
        ),
    ];
    let mut out: Vec<_> = accepted
        .into_iter()
        .map(|(n, b)| (n, b, Outcome::Accepted))
        .collect();
    out.extend(refused.into_iter().map(|(n, b)| (n, b, Outcome::Refused)));
    out
}

fn input(mode: Mode, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![mode.byte()];
    v.extend_from_slice(payload);
    v
}

/// One input: a generated layer or archive, or a mutated one (from
/// `bases`, the corpus), or bytes.
pub fn generated(u: &mut Unstructured, bases: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut bytes = match u.choose_index(10)? {
        0..=3 => {
            let entries = (0..u.int_in_range(0..=10)?)
                .map(|_| arbitrary_entry(u))
                .collect::<Result<Vec<_>>>()?;
            let tar = tar(&entries);
            match u.choose_index(6)? {
                0 => input(Mode::Layer(LayerFormat::Gzip), &gzip(&tar)),
                1 => input(Mode::Layer(LayerFormat::Zstd), &zstd(&tar)),
                _ => input(Mode::Layer(LayerFormat::Tar), &tar),
            }
        }
        4..=5 => input(Mode::Archive, &oci_archive(&arbitrary_archive(u)?)),
        6..=8 if !bases.is_empty() => u.choose(bases)?.clone(),
        _ => u.arbitrary::<Vec<u8>>()?,
    };
    for _ in 0..u.int_in_range(0..=3)? {
        mutate(u, &mut bytes)?;
    }
    if u.ratio(3, 4)? {
        fix_checksums(&mut bytes);
    }
    Ok(bytes)
}

// ------------------------------------------------------------ tar

/// One tar entry, and the extension headers written before it.
#[derive(Clone, Debug)]
pub struct TarEntry {
    path: Vec<u8>,
    flag: u8,
    mode: u32,
    link: Vec<u8>,
    data: Vec<u8>,
    /// The size the header claims (default: the data's).
    size: Option<u64>,
    device: (u32, u32),
    gnu_long_name: bool,
    gnu_long_link: bool,
    pax: Vec<(String, Vec<u8>)>,
    gnu_magic: bool,
}

impl TarEntry {
    fn new(path: &str, flag: u8) -> TarEntry {
        TarEntry {
            path: path.as_bytes().to_vec(),
            flag,
            mode: 0o644,
            link: Vec::new(),
            data: Vec::new(),
            size: None,
            device: (0, 0),
            gnu_long_name: false,
            gnu_long_link: false,
            pax: Vec::new(),
            gnu_magic: false,
        }
    }

    fn data(mut self, d: &[u8]) -> Self {
        self.data = d.to_vec();
        self
    }

    fn link(mut self, l: &str) -> Self {
        self.link = l.as_bytes().to_vec();
        self
    }

    fn device(mut self, major: u32, minor: u32) -> Self {
        self.device = (major, minor);
        self
    }

    fn gnu_long_name(mut self) -> Self {
        self.gnu_long_name = true;
        self
    }

    fn pax_path(mut self) -> Self {
        self.pax.push(("path".into(), self.path.clone()));
        self
    }

    fn pax_link(mut self) -> Self {
        self.pax.push(("linkpath".into(), self.link.clone()));
        self
    }

    /// The header alone, claiming `size` bytes that never come.
    fn header_claiming(mut self, size: u64) -> Vec<u8> {
        self.size = Some(size);
        header(&self, &self.path, &self.link)
    }
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    if s.len() <= width {
        field[..width].copy_from_slice(s.as_bytes());
    } else {
        // Base-256, as GNU tar writes what octal cannot hold.
        field.fill(0);
        field[0] = 0x80;
        let be = value.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&be);
    }
}

fn header(e: &TarEntry, path: &[u8], link: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    let name = &path[..path.len().min(100)];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], u64::from(e.mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], e.size.unwrap_or(e.data.len() as u64));
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = e.flag;
    let link = &link[..link.len().min(100)];
    h[157..157 + link.len()].copy_from_slice(link);
    if e.gnu_magic {
        h[257..265].copy_from_slice(b"ustar  \0");
    } else {
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
    }
    octal(&mut h[329..337], u64::from(e.device.0));
    octal(&mut h[337..345], u64::from(e.device.1));
    set_checksum(&mut h);
    h.to_vec()
}

fn set_checksum(h: &mut [u8]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    h[148..155].copy_from_slice(format!("{:06o}\0", sum & 0o777_777).as_bytes());
}

fn padded(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len = len.to_string().len() + body;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// An archive of `entries`, each after its extension headers, and the
/// two zero blocks that end it.
pub fn tar(entries: &[TarEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let extension = |flag: u8, data: &[u8]| {
            let mut x = TarEntry::new("././@LongLink", flag).data(data);
            x.gnu_magic = true;
            let mut v = header(&x, &x.path, b"");
            padded(&mut v, data);
            v
        };
        if e.gnu_long_name {
            let mut name = e.path.clone();
            name.push(0);
            out.extend(extension(b'L', &name));
        }
        if e.gnu_long_link {
            let mut link = e.link.clone();
            link.push(0);
            out.extend(extension(b'K', &link));
        }
        if !e.pax.is_empty() {
            let records: Vec<u8> = e.pax.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
            let x = TarEntry::new("PaxHeaders/x", b'x').data(&records);
            out.extend(header(&x, &x.path, b""));
            padded(&mut out, &records);
        }
        out.extend(header(e, &e.path, &e.link));
        padded(&mut out, &e.data);
    }
    out.extend([0u8; 1024]);
    out
}

const COMPONENTS: &[&str] = &[
    "a",
    "b",
    "etc",
    "bin",
    "..",
    ".",
    "",
    ".wh.a",
    ".wh.b",
    ".wh..wh..opq",
    ".wh..wh.plnk",
    ".wh.",
    "passwd",
    "\u{1b}[2J",
    "é",
];
const FLAGS: &[u8] = b"0123456\x0075SLKxgVDMN";

fn arbitrary_path(u: &mut Unstructured) -> Result<Vec<u8>> {
    let mut path = Vec::new();
    if u.ratio(1, 8)? {
        path.push(b'/');
    }
    for i in 0..u.int_in_range(1..=4)? {
        if i > 0 {
            path.push(b'/');
        }
        match u.choose_index(12)? {
            0 => path.extend(std::iter::repeat_n(b'x', u.int_in_range(100..=300)?)),
            1 => path.extend(
                u.arbitrary::<Vec<u8>>()?
                    .into_iter()
                    .filter(|&b| b != b'/' && b != 0),
            ),
            _ => path.extend_from_slice(u.choose(COMPONENTS)?.as_bytes()),
        }
    }
    if u.ratio(1, 8)? {
        path.push(b'/');
    }
    Ok(path)
}

fn arbitrary_entry(u: &mut Unstructured) -> Result<TarEntry> {
    let path = arbitrary_path(u)?;
    let flag = if u.ratio(1, 8)? {
        u.arbitrary()?
    } else {
        *u.choose(FLAGS)?
    };
    let mut e = TarEntry::new("", flag);
    e.path = path;
    e.mode = if u.ratio(1, 4)? {
        u.arbitrary()?
    } else {
        0o4755
    };
    e.link = arbitrary_path(u)?;
    e.data = match u.choose_index(8)? {
        0 => vec![0xa5; u.int_in_range(0..=70_000)?],
        1..=3 => u.arbitrary()?,
        _ => Vec::new(),
    };
    if u.ratio(1, 8)? {
        e.size = Some(*u.choose(&[0, 1, 511, 512, 1 << 20, 1 << 33, u64::MAX >> 1])?);
    }
    e.device = if u.ratio(1, 4)? {
        (u.arbitrary()?, u.arbitrary()?)
    } else {
        (0, 0)
    };
    e.gnu_long_name = u.ratio(1, 6)?;
    e.gnu_long_link = u.ratio(1, 8)?;
    e.gnu_magic = u.ratio(1, 4)?;
    for _ in 0..u.int_in_range(0..=2)? {
        let key = *u.choose(&[
            "path",
            "linkpath",
            "size",
            "mtime",
            "GNU.sparse.major",
            "SCHILY.xattr.user.overlay.opaque",
            "uid",
        ])?;
        let value = match key {
            "path" => e.path.clone(),
            "linkpath" => e.link.clone(),
            "size" | "mtime" | "uid" => u.int_in_range(0..=70_000u64)?.to_string().into_bytes(),
            _ => u.arbitrary()?,
        };
        e.pax.push((key.into(), value));
    }
    Ok(e)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

/// Rewrites the checksum of every block that looks like a tar header, so
/// that a mutation gets past the checksum into the parser proper.
fn fix_checksums(bytes: &mut [u8]) {
    if bytes
        .first()
        .is_some_and(|&m| matches!(Mode::of(m), Mode::Layer(LayerFormat::Tar) | Mode::Archive))
    {
        for block in bytes[1..].chunks_exact_mut(512) {
            if &block[257..262] == b"ustar" {
                set_checksum(block);
            }
        }
    }
}

// ------------------------------------------------------------ archives

fn digest(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// How an OCI archive is laid out.
#[derive(Clone, Debug)]
pub struct Archive {
    /// Indexes between index.json and the manifest.
    nesting: usize,
    /// References each index makes to the one below.
    fanout: usize,
    /// Layers of the image (small tars).
    layers: usize,
    /// Changes made to the JSON documents (before they are hashed).
    damage: Vec<(usize, Damage)>,
    arch: &'static str,
    media_type: bool,
}

impl Default for Archive {
    fn default() -> Self {
        Archive {
            nesting: 0,
            fanout: 1,
            layers: 1,
            damage: Vec::new(),
            arch: host_arch(),
            media_type: true,
        }
    }
}

/// A change to one of the archive's JSON documents.
#[derive(Clone, Debug)]
enum Damage {
    /// Replace the value at a key with another.
    Set(&'static str, Value),
    /// Remove a key.
    Remove(&'static str),
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn arbitrary_archive(u: &mut Unstructured) -> Result<Archive> {
    let mut a = Archive {
        nesting: u.int_in_range(0..=5)?,
        fanout: *u.choose(&[1, 1, 2, 3, 40])?,
        layers: u.int_in_range(0..=3)?,
        arch: if u.ratio(7, 8)? { host_arch() } else { "s390x" },
        media_type: u.ratio(4, 5)?,
        ..Archive::default()
    };
    for _ in 0..u.int_in_range(0..=2)? {
        let doc = u.int_in_range(0..=3)?;
        let key = *u.choose(&[
            "schemaVersion",
            "mediaType",
            "manifests",
            "config",
            "layers",
            "rootfs",
            "digest",
            "size",
            "architecture",
            "os",
        ])?;
        let value = match u.choose_index(7)? {
            0 => json!(null),
            1 => json!(-1),
            2 => json!(u64::MAX),
            3 => json!("sha256:zz"),
            4 => json!([]),
            5 => json!({}),
            _ => json!("x".repeat(u.int_in_range(0..=300)?)),
        };
        let damage = if u.ratio(1, 3)? {
            Damage::Remove(key)
        } else {
            Damage::Set(key, value)
        };
        a.damage.push((doc, damage));
    }
    Ok(a)
}

fn damaged(mut v: Value, doc: usize, a: &Archive) -> Vec<u8> {
    for (d, damage) in &a.damage {
        if *d != doc {
            continue;
        }
        if let Some(obj) = v.as_object_mut() {
            match damage {
                Damage::Set(k, val) => {
                    obj.insert((*k).into(), val.clone());
                }
                Damage::Remove(k) => {
                    obj.remove(*k);
                }
            }
        }
    }
    serde_json::to_vec(&v).unwrap()
}

/// An `oci-archive`: oci-layout, index.json, and the blobs, with digests
/// computed after any damage, so that the walk reads what it finds.
pub fn oci_archive(a: &Archive) -> Vec<u8> {
    let mut files: Vec<TarEntry> =
        vec![TarEntry::new("oci-layout", b'0').data(br#"{"imageLayoutVersion":"1.0.0"}"#)];
    let mut blob = |data: Vec<u8>| {
        let d = digest(&data);
        files.push(TarEntry::new(&format!("blobs/sha256/{}", &d[7..]), b'0').data(&data));
        d
    };
    let layers: Vec<Vec<u8>> = (0..a.layers)
        .map(|i| tar(&[TarEntry::new(&format!("f{i}"), b'0').data(b"x")]))
        .collect();
    let config = damaged(
        json!({
            "architecture": a.arch, "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| digest(l)).collect::<Vec<_>>()},
        }),
        0,
        a,
    );
    let config_desc = json!({
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": blob(config.clone()), "size": config.len(),
    });
    let layer_descs: Vec<Value> = layers
        .iter()
        .map(|l| {
            json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": blob(l.clone()), "size": l.len(),
            })
        })
        .collect();
    let manifest = damaged(
        json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config_desc, "layers": layer_descs,
        }),
        1,
        a,
    );
    let mut below = json!({
        "digest": blob(manifest.clone()), "size": manifest.len(),
        "platform": {"os": "linux", "architecture": a.arch},
    });
    if a.media_type {
        below["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
    }
    for level in 0..a.nesting {
        let index = damaged(
            json!({"schemaVersion": 2, "manifests": vec![below.clone(); a.fanout]}),
            2 + level % 2,
            a,
        );
        below = json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": blob(index.clone()), "size": index.len(),
        });
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": vec![below; a.fanout],
    }))
    .unwrap();
    files.push(TarEntry::new("index.json", b'0').data(&index));
    tar(&files)
}

/// A `docker save` archive of one layer, stored twice (the second a
/// symlink to the first, as docker writes it).
fn docker_save() -> Vec<u8> {
    let layer = tar(&[TarEntry::new("hello", b'0').data(b"hi")]);
    let config = serde_json::to_vec(&json!({
        "architecture": host_arch(), "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer), digest(&layer)]},
    }))
    .unwrap();
    let config_name = format!("{}.json", &digest(&config)[7..]);
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name, "RepoTags": ["saved:1"],
        "Layers": ["1/layer.tar", "2/layer.tar"],
    }]))
    .unwrap();
    tar(&[
        TarEntry::new(&config_name, b'0').data(&config),
        TarEntry::new("1/layer.tar", b'0').data(&layer),
        TarEntry::new("2/layer.tar", b'2').link("../1/layer.tar"),
        TarEntry::new("manifest.json", b'0').data(&manifest),
    ])
}

// ------------------------------------------------------------ mutation

/// One change to the bytes of an input (its mode byte included).
fn mutate(u: &mut Unstructured, bytes: &mut Vec<u8>) -> Result<()> {
    if bytes.is_empty() {
        bytes.extend_from_slice(&u.arbitrary::<[u8; 16]>()?);
    }
    let at = u.choose_index(bytes.len())?;
    match u.choose_index(8)? {
        0 => bytes[at] ^= 1 << u.int_in_range(0..=7)?,
        1 => bytes[at] = *u.choose(b"\x00\x01\x7f\x80\xff/.0725xLKS{}\"")?,
        2 => {
            // An octal number into a header field.
            let digits = format!("{:o}", u.arbitrary::<u64>()? >> u.int_in_range(0..=63)?);
            let end = (at + digits.len()).min(bytes.len());
            bytes[at..end].copy_from_slice(&digits.as_bytes()[..end - at]);
        }
        3 => {
            let extra: Vec<u8> = (0..u.int_in_range(1..=8)?)
                .map(|_| u.arbitrary())
                .collect::<Result<_>>()?;
            bytes.splice(at..at, extra);
        }
        4 => {
            let end = (at + u.int_in_range(1..=600)?).min(bytes.len());
            bytes.drain(at..end);
        }
        5 => {
            // Copy a stretch (a header, say) over another place.
            let len = u.int_in_range(1..=512)?.min(bytes.len() - at);
            let chunk = bytes[at..at + len].to_vec();
            let to = u.choose_index(bytes.len())?;
            bytes.splice(to..to, chunk);
        }
        6 => bytes.truncate(at.max(1)),
        _ => bytes[at] = u.arbitrary()?,
    }
    Ok(())
}
