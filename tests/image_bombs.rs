//! `hutch image import` against hostile sources, as an unprivileged user:
//! decompression and sparse bombs, oversized tar headers, index fan-out,
//! and inputs that would block or never end (a FIFO as `index.json`, a
//! `docker save` layer linked to `/dev/zero`). Each attack runs the real
//! binary under an address-space limit and a time bound, and must end in a
//! one-line refusal with nothing left in the store; each has a control
//! built the same way that imports, so that the probe is known to reach
//! the code it attacks.
//!
//! The bombs are generated as small streams (zstd RLE blocks, repeated
//! gzip members) whose uncompressed size is what the issue measured (a
//! gibibyte and more), with a small `--max-size` so that nothing big is
//! ever written.

mod common;
mod common_oci;

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use common_oci::{Comp, ImageOpts, Layer, Layout, Tar, digest, docker_save};
use serde_json::json;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// The address space `hutch image import` gets: a debug build needs about
/// 20 MiB; buffering a gibibyte fails.
const ADDRESS_SPACE: u64 = 256 * MIB;
/// The longest an import may take here: the bombs are cut off in well
/// under a second; without the limits they ran for minutes or forever.
const TIME_BOUND: Duration = Duration::from_secs(60);

/// A layout directory inside the scratch area, readable by the test user.
fn layout(s: &Scratch, name: &str) -> (Layout, PathBuf) {
    let dir = s.path().join(name);
    (Layout::new(&dir), dir)
}

/// Runs `hutch image import ARGS...` as the test user, with its address
/// space capped and killed past [`TIME_BOUND`].
fn import(s: &Scratch, args: &[&str]) -> Output {
    s.chown_all();
    let mut cmd = s.hutch(&["image", "import"]);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let limit = ADDRESS_SPACE;
    // SAFETY: setrlimit is a system call, safe between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_AS, limit, limit)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().unwrap();
    let _guard = KillOnDrop(child.id());
    let deadline = Instant::now() + TIME_BOUND;
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "`hutch image import {}` ran for more than {TIME_BOUND:?}",
            args.join(" ")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The import was refused with one line saying `needle`, and the store
/// holds no image, layer or leftover.
#[track_caller]
fn refused(s: &Scratch, out: &Output, needle: &str) {
    fails_with(out, 125, needle);
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.len() < 1000, "a short line: {} bytes", err.len());
    assert_store_empty(s);
}

fn store(s: &Scratch) -> PathBuf {
    s.home().join(".local/share/hutch/images")
}

#[track_caller]
fn assert_store_empty(s: &Scratch) {
    for sub in ["layers/sha256", "images", "tmp"] {
        let left: Vec<_> = fs::read_dir(store(s).join(sub))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "store/{sub} is not empty: {left:?}");
    }
}

/// A layer descriptor for a blob made here, whose uncompressed stream is
/// not hashed (a bomb is refused before its end, where the digest would
/// be checked).
fn bomb_layer(blob: Vec<u8>, media_type: &str) -> Layer {
    Layer {
        blob,
        media_type: media_type.to_owned(),
        diff_id: format!("sha256:{}", "00".repeat(32)),
    }
}

/// A tar stream: `head`, then `zeros` zero bytes, then the end blocks.
fn tar_len(head: &[u8], zeros: u64) -> u64 {
    head.len() as u64 + zeros + 1024
}

// ------------------------------------------------------------ generators

/// A zstd frame holding `head` as is, then `zeros` zero bytes as RLE
/// blocks of 128 KiB (4 bytes each: a gibibyte in 32 KiB), then the two
/// end blocks of a tar.
fn zstd_zeros(head: &[u8], zeros: u64) -> Vec<u8> {
    const BLOCK: u64 = 128 * 1024;
    // Magic; no content size, checksum or dictionary; a 128 KiB window.
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38];
    let block = |out: &mut Vec<u8>, kind: u32, size: u64, last: bool| {
        let h = (size as u32) << 3 | kind << 1 | u32::from(last);
        out.extend_from_slice(&h.to_le_bytes()[..3]);
    };
    for chunk in head.chunks(BLOCK as usize) {
        block(&mut out, 0, chunk.len() as u64, false);
        out.extend_from_slice(chunk);
    }
    let mut left = zeros + 1024;
    while left > 0 {
        let n = left.min(BLOCK);
        left -= n;
        block(&mut out, 1, n, left == 0);
        out.push(0);
    }
    out
}

/// A gzip stream of several members (which `gunzip` and every OCI runtime
/// read as one): `head`, then `zeros` zero bytes a mebibyte per member
/// (about 1 KiB each), then the end blocks.
fn gzip_zeros(head: &[u8], zeros: u64) -> Vec<u8> {
    let member = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let mut out = member(head);
    let mib = member(&vec![0u8; MIB as usize]);
    let mut left = zeros + 1024;
    while left >= MIB {
        out.extend_from_slice(&mib);
        left -= MIB;
    }
    out.extend_from_slice(&member(&vec![0u8; left as usize]));
    out
}

/// The whole uncompressed stream of the generators above, for controls
/// small enough to hash.
fn plain(head: &[u8], zeros: u64) -> Vec<u8> {
    let mut v = head.to_vec();
    v.resize(head.len() + zeros as usize + 1024, 0);
    v
}

/// A layer whose stream is `head` + zeros, compressed by `comp` with the
/// generators (a control's diff_id is the real one).
fn generated(head: &[u8], zeros: u64, comp: Comp, control: bool) -> Layer {
    let (blob, media_type) = match comp {
        Comp::Zstd => (
            zstd_zeros(head, zeros),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        Comp::Gzip => (
            gzip_zeros(head, zeros),
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        Comp::None => unreachable!("generated layers are compressed"),
    };
    let mut layer = bomb_layer(blob, media_type);
    if control {
        layer.diff_id = digest(&plain(head, zeros));
    }
    layer
}

/// The header of a regular file of `size` bytes (whose data follows).
fn file_header(name: &str, size: u64) -> Vec<u8> {
    Tar::new()
        .header_only(name.as_bytes(), b'0', size)
        .bytes()
        .to_vec()
}

fn one_layer_image(s: &Scratch, dir: &str, layer: Layer) -> PathBuf {
    let (mut l, path) = layout(s, dir);
    l.add(&[layer], &ImageOpts::named("bomb:1"));
    path
}

// ------------------------------------------------------------ the bombs

/// zstd: 33 KiB that inflate to a gibibyte file. Cut off at the budget;
/// the control (4 MiB of the same) imports, and `image list` shows what
/// it unpacked to, not the size of its blob.
#[test]
fn a_zstd_bomb_stops_at_the_budget() {
    let s = Scratch::new();
    let bomb = generated(&file_header("zeros", GIB), GIB, Comp::Zstd, false);
    assert!(bomb.blob.len() < 40 << 10, "{} bytes", bomb.blob.len());
    let dir = one_layer_image(&s, "zstd", bomb);
    let started = Instant::now();
    let out = import(&s, &[dir.to_str().unwrap(), "--max-size", "8M"]);
    refused(&s, &out, "unpacks to more than 8388608 bytes");
    assert!(started.elapsed() < Duration::from_secs(20));

    let control = generated(&file_header("zeros", 4 * MIB), 4 * MIB, Comp::Zstd, true);
    let dir = one_layer_image(&s, "zstd-control", control);
    ok(&import(&s, &[dir.to_str().unwrap(), "--max-size", "8M"]));
    let list = ok(&s.hutch(&["image", "list"]).output().unwrap());
    assert!(list.contains("UNPACKED"), "{list}");
    let row = list.lines().find(|l| l.starts_with("bomb:1")).unwrap();
    assert!(row.ends_with("4.2 MB"), "unpacked size shown: {list}");
    let json = ok(&s.hutch(&["image", "list", "--json"]).output().unwrap());
    let images: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        images[0]["unpacked_size"],
        tar_len(&file_header("zeros", 0), 4 * MIB)
    );
}

/// gzip: 1 MiB of repeated members that inflate to a gibibyte.
#[test]
fn a_gzip_bomb_stops_at_the_budget() {
    let s = Scratch::new();
    let bomb = generated(&file_header("zeros", GIB), GIB, Comp::Gzip, false);
    let dir = one_layer_image(&s, "gzip", bomb);
    let out = import(&s, &[dir.to_str().unwrap(), "--max-size", "8M"]);
    refused(&s, &out, "unpacks to more than 8388608 bytes");

    let control = generated(&file_header("zeros", 4 * MIB), 4 * MIB, Comp::Gzip, true);
    let dir = one_layer_image(&s, "gzip-control", control);
    ok(&import(&s, &[dir.to_str().unwrap(), "--max-size", "8M"]));
}

/// Bytes hidden after the end of the archive count too (they are read, to
/// be hashed); a chosen limit's message does not suggest the flag again,
/// and a limit of nothing is not one.
#[test]
fn the_budget_counts_the_whole_stream() {
    let s = Scratch::new();
    let mut head = Tar::new();
    head.file("small", 0o644, b"x");
    let mut head = head.finish();
    // A valid archive, then a gibibyte of trailing zeros.
    head.truncate(head.len() - 1024);
    let dir = one_layer_image(&s, "trailing", generated(&head, GIB, Comp::Zstd, false));
    let out = import(&s, &[dir.to_str().unwrap(), "--max-size", "2M"]);
    refused(&s, &out, "unpacks to more than 2097152 bytes");
    assert!(!stderr(&out).contains("--max-size SIZE"), "chosen limit");
    let out = s
        .hutch(&["image", "import", dir.to_str().unwrap(), "--max-size", "0"])
        .output()
        .unwrap();
    fails_with(&out, 125, "a size is a positive number of bytes");
}

/// A GNU sparse entry of 2 KiB that claims a gibibyte of holes: refused
/// (no image builder writes sparse files); the same file as a plain
/// entry imports.
#[test]
fn a_sparse_entry_is_refused() {
    let s = Scratch::new();
    let tar = sparse_tar("holes", GIB, b"data");
    assert!(tar.len() <= 2048);
    let dir = one_layer_image(&s, "sparse", Layer::new(tar, Comp::None));
    let out = import(&s, &[dir.to_str().unwrap()]);
    refused(&s, &out, "sparse files are not supported");
    assert!(stderr(&out).contains("\"holes\""), "{}", stderr(&out));

    let mut plain = Tar::new();
    plain.file("holes", 0o644, b"data");
    let dir = one_layer_image(&s, "sparse-control", Layer::new(plain.finish(), Comp::None));
    ok(&import(&s, &[dir.to_str().unwrap()]));
}

/// An old-GNU sparse entry: `data` stored at the end of a file of
/// `real_size` bytes, everything before it a hole.
fn sparse_tar(name: &str, real_size: u64, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, width: usize, v: u64| {
        let s = format!("{v:0w$o}", w = width - 1);
        h[at..at + width - 1].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, 0o644);
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, 512);
    octal(&mut h, 136, 12, 1_700_000_000);
    h[156] = b'S';
    h[257..265].copy_from_slice(b"ustar  \0");
    // The sparse map: one chunk of 512 bytes at the end; the real size.
    octal(&mut h, 386, 12, real_size - 512);
    octal(&mut h, 398, 12, 512);
    octal(&mut h, 483, 12, real_size);
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut tar = h.to_vec();
    let mut chunk = data.to_vec();
    chunk.resize(512, 0);
    tar.extend_from_slice(&chunk);
    tar.extend_from_slice(&[0u8; 1024]);
    tar
}

/// A PAX extended header of a gibibyte: refused from its header, nothing
/// of it buffered (the address space is 256 MiB); a 64 KiB one (an
/// extended attribute, say) is read and imports.
#[test]
fn a_huge_pax_header_is_refused_before_it_is_read() {
    let s = Scratch::new();
    let head = Tar::new()
        .header_only(b"PaxHeaders/x", b'x', GIB)
        .bytes()
        .to_vec();
    let dir = one_layer_image(&s, "pax", generated(&head, GIB, Comp::Gzip, false));
    let out = import(&s, &[dir.to_str().unwrap()]);
    refused(&s, &out, "a PAX extended header of 1073741824 bytes");

    let value = "v".repeat(64 << 10);
    let record = pax_record("SCHILY.xattr.user.big", &value);
    let mut t = Tar::new();
    t.header_only(b"PaxHeaders/x", b'x', record.len() as u64);
    let mut tar = t.bytes().to_vec();
    tar.extend_from_slice(&record);
    tar.resize(tar.len().next_multiple_of(512), 0);
    let mut rest = Tar::new();
    rest.file("with-xattr", 0o644, b"x");
    tar.extend_from_slice(&rest.finish());
    let dir = one_layer_image(&s, "pax-control", Layer::new(tar, Comp::Gzip));
    ok(&import(&s, &[dir.to_str().unwrap()]));
}

fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len = len.to_string().len() + body;
    }
    format!("{len} {key}={value}\n").into_bytes()
}

/// A GNU long name of 256 MiB: refused from its header, and the message
/// does not repeat it; a long name of 300 bytes imports.
#[test]
fn a_huge_gnu_long_name_is_refused_and_not_echoed() {
    let s = Scratch::new();
    let head = Tar::new()
        .header_only(b"././@LongLink", b'L', 256 * MIB)
        .bytes()
        .to_vec();
    let mut stream_head = head.clone();
    stream_head.extend(std::iter::repeat_n(b'a', 4096));
    let dir = one_layer_image(
        &s,
        "longname",
        generated(&stream_head, 256 * MIB - 4096, Comp::Gzip, false),
    );
    let out = import(&s, &[dir.to_str().unwrap()]);
    refused(&s, &out, "a GNU long name of 268435456 bytes");

    let name = format!("{}file", "dir/".repeat(70));
    let mut named = name.clone().into_bytes();
    named.push(0);
    let mut t = Tar::new();
    t.header_only(b"././@LongLink", b'L', named.len() as u64);
    let mut tar = t.bytes().to_vec();
    tar.extend_from_slice(&named);
    tar.resize(tar.len().next_multiple_of(512), 0);
    let mut rest = Tar::new();
    rest.file("short", 0o644, b"x");
    tar.extend_from_slice(&rest.finish());
    let dir = one_layer_image(&s, "longname-control", Layer::new(tar, Comp::None));
    ok(&import(&s, &[dir.to_str().unwrap()]));
    let layers = store(&s).join("layers/sha256");
    let layer = fs::read_dir(&layers)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(layer.join(&name).exists(), "the long name was applied");
}

/// A refused entry whose name is 4,000 bytes of control characters is
/// named in a short line, escaped.
#[test]
fn refused_names_are_cut_and_escaped() {
    let s = Scratch::new();
    let name = format!("..\n{}", "\u{1b}[31m".repeat(800));
    let mut t = Tar::new();
    t.file(&name, 0o644, b"x");
    let dir = one_layer_image(&s, "names", Layer::new(t.finish(), Comp::None));
    let out = import(&s, &[dir.to_str().unwrap()]);
    refused(&s, &out, "bytes in all");
    assert!(!stderr(&out).contains('\u{1b}'), "{}", stderr(&out));
}

// ------------------------------------------------------------ indexes

/// index.json → 200 × index 1 → 200 × index 2 → 200 × index 3 → 200 ×
/// one manifest: 1.6 billion paths, 801 documents. Each index is read
/// once: the import takes well under the bound and the image imports. The
/// control, 2 references a level, imported before the fix too.
#[test]
fn nested_indexes_are_read_once_each() {
    for (fanout, dir) in [(2, "fan-2"), (200, "fan-200")] {
        let s = Scratch::new();
        let (layout, path) = layout(&s, dir);
        let mut t = Tar::new();
        t.file("hello", 0o644, b"hi");
        let w = layout.image(&[Layer::new(t.finish(), Comp::Gzip)], &ImageOpts::default());
        let mut below = w.descriptor.clone();
        for _ in 0..3 {
            let index = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": vec![below.clone(); fanout],
            }))
            .unwrap();
            below = json!({
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": layout.blob(&index),
                "size": index.len(),
            });
        }
        let top = Layout {
            dir: path.clone(),
            index: vec![below; fanout],
        };
        top.write_index();
        let started = Instant::now();
        let out = import(&s, &[path.to_str().unwrap(), "--tag", "fan:1"]);
        ok(&out);
        assert!(started.elapsed() < Duration::from_secs(20), "{dir}");
    }
}

/// An index of more manifests than any image has is refused, and so are
/// indexes that list more than 4096 in all; the message stays short.
#[test]
fn index_breadth_and_total_are_bounded() {
    let s = Scratch::new();
    let (mut l, path) = layout(&s, "wide");
    let w = l.image(&[], &ImageOpts::default());
    l.index = vec![w.descriptor.clone(); 1025];
    l.write_index();
    refused(
        &s,
        &import(&s, &[path.to_str().unwrap(), "--tag", "w:1"]),
        "it lists 1025 manifests",
    );

    // Five different indexes of 1000 each: 5000 in all.
    let (mut l, path) = layout(&s, "total");
    let w = l.image(&[], &ImageOpts::default());
    let mut nested = Vec::new();
    for i in 0..5 {
        let mut d = w.descriptor.clone();
        d["annotations"] = json!({"n": i.to_string()});
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": vec![d; 1000],
        }))
        .unwrap();
        nested.push(json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": l.blob(&index),
            "size": index.len(),
        }));
    }
    l.index = nested;
    l.write_index();
    refused(
        &s,
        &import(&s, &[path.to_str().unwrap(), "--tag", "t:1"]),
        "more than 4096 manifests in all",
    );
}

// ------------------------------------------------------------ inputs that never end

/// A FIFO as `index.json` (or as the source) is refused at once; before,
/// the import waited for a writer forever. The control is the same layout
/// with a regular index.json.
#[test]
fn a_fifo_in_a_layout_is_refused_without_blocking() {
    let s = Scratch::new();
    let (mut l, path) = layout(&s, "fifo");
    let mut t = Tar::new();
    t.file("f", 0o644, b"x");
    l.add(
        &[Layer::new(t.finish(), Comp::None)],
        &ImageOpts::named("fifo:1"),
    );
    let index = path.join("index.json");
    let regular = fs::read(&index).unwrap();
    fs::remove_file(&index).unwrap();
    nix::unistd::mkfifo(&index, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    refused(
        &s,
        &import(&s, &[path.to_str().unwrap()]),
        "index.json is a FIFO, not a regular file",
    );
    let source = s.path().join("source-fifo");
    nix::unistd::mkfifo(&source, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    refused(
        &s,
        &import(&s, &[source.to_str().unwrap()]),
        "neither a directory nor a regular file but a FIFO",
    );

    fs::remove_file(&index).unwrap();
    fs::write(&index, regular).unwrap();
    ok(&import(&s, &[path.to_str().unwrap()]));
}

/// A `docker save` directory whose `layer.tar` links to `/dev/zero`: a
/// layer of no announced size, so hashing it never ended. Refused: links
/// are followed only inside the source. The control links `layer.tar` to
/// the same layer elsewhere in the directory, and imports.
#[test]
fn a_layer_linked_out_of_the_source_is_refused() {
    let s = Scratch::new();
    let mut t = Tar::new();
    t.file("f", 0o644, b"x");
    let layer = t.finish();
    let layer_tar = format!("{:064x}/layer.tar", 1);
    let unpacked = |name: &str, link: &str| {
        let archive = s.path().join(format!("{name}.tar"));
        docker_save(&archive, std::slice::from_ref(&layer), "saved:1", json!({}));
        let dir = s.path().join(name);
        fs::create_dir(&dir).unwrap();
        let st = Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success());
        fs::rename(dir.join(&layer_tar), dir.join("stored-layer")).unwrap();
        std::os::unix::fs::symlink(link, dir.join(&layer_tar)).unwrap();
        dir
    };
    let evil = unpacked("evil", "/dev/zero");
    refused(
        &s,
        &import(&s, &[evil.to_str().unwrap()]),
        "leads out of the image source",
    );
    let control = unpacked("saved", "../stored-layer");
    ok(&import(&s, &[control.to_str().unwrap()]));
}

// ------------------------------------------------------------ free space

/// On a store filesystem of 32 MiB, a layer of 40 MiB stops while 16 MiB
/// are still free (whatever `--max-size` allows), and leaves nothing; a
/// layer of 6 MiB imports. Needs root, to mount the small filesystem in a
/// mount namespace of its own.
#[test]
fn an_import_stops_before_the_filesystem_is_full() {
    if !is_root() {
        skip("an_import_stops_before_the_filesystem_is_full needs root to mount a small tmpfs");
        return;
    }
    let s = Scratch::new();
    let big = generated(&file_header("zeros", 40 * MIB), 40 * MIB, Comp::Gzip, true);
    let small = generated(&file_header("zeros", 6 * MIB), 6 * MIB, Comp::Gzip, true);
    let big = one_layer_image(&s, "big", big);
    let small = one_layer_image(&s, "small", small);
    let data = s.path().join("small-fs");
    fs::create_dir(&data).unwrap();
    s.chown_all();
    let script = format!(
        "mount -t tmpfs -o size=32m,mode=0755,uid={NOBODY} tmpfs {data} && \
         setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- \
           env -i HOME={home} XDG_DATA_HOME={data} {hutch} image import {big} --max-size 1G; \
         echo big=$?; df -k {data} | tail -1; \
         setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- \
           env -i HOME={home} XDG_DATA_HOME={data} {hutch} image import {small}; echo small=$?",
        data = data.display(),
        home = s.home().display(),
        hutch = hutch_bin().display(),
        big = big.display(),
        small = small.display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains("big=1"), "{text}");
    assert!(
        text.contains("stopped importing: the filesystem of") && text.contains("16 MiB free"),
        "{text}"
    );
    let df = text.lines().find(|l| l.starts_with("tmpfs")).unwrap();
    let used_kib: u64 = df.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(used_kib < 1024, "the partial layer was removed: {df}");
    assert!(text.contains("small=0"), "{text}");
}
