//! Integration tests of the OCI image store. Test images are written by the
//! tests themselves (tests/common_oci), with real file content: Debian's
//! static busybox (`busybox-static`) when installed.

mod common_oci;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common_oci::*;
use hutch::image::{ImageError, ImageInfo, ImageStore};
use serde_json::json;

const CHILD_ENV: &str = "HUTCH_IMAGE_TEST_CHILD";

/// The busybox binary, or stand-in bytes when busybox-static is missing.
fn busybox_bytes() -> (Vec<u8>, bool) {
    match fs::read("/bin/busybox") {
        Ok(b) => (b, true),
        Err(_) => {
            eprintln!(
                "note: /bin/busybox not found (install busybox-static); using generated content"
            );
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            let data = (0..2_000_000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            (data, false)
        }
    }
}

fn busybox_tar() -> Vec<u8> {
    let (bb, _) = busybox_bytes();
    let mut t = Tar::new();
    t.dir("bin", 0o755)
        .file("bin/busybox", 0o755, &bb)
        .hardlink("bin/sh", "bin/busybox")
        .symlink("bin/ls", "busybox")
        .dir("usr/bin", 0o755) // "usr" is implicit
        .symlink("usr/bin/env", "/bin/busybox")
        .dir("tmp", 0o1777)
        .dir("etc", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .dir("root", 0o700);
    t.finish()
}

fn small_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut t = Tar::new();
    t.file(name, 0o644, content);
    t.finish()
}

/// A work area: `src/` for the layout, `store/` for the store and an
/// empty `canary/` next to them that must never be written to.
struct Env {
    dir: TestDir,
}

impl Env {
    fn new() -> Env {
        let dir = TestDir::new();
        fs::create_dir(dir.path().join("canary")).unwrap();
        Env { dir }
    }
    fn base(&self) -> &Path {
        self.dir.path()
    }
    fn src(&self) -> PathBuf {
        self.base().join("src")
    }
    fn canary(&self) -> PathBuf {
        self.base().join("canary")
    }
    fn store_root(&self) -> PathBuf {
        self.base().join("store")
    }
    fn store(&self) -> ImageStore {
        ImageStore::open(self.store_root()).unwrap()
    }
    fn layout(&self) -> Layout {
        Layout::new(&self.src())
    }
    /// Nothing was written outside src/ and store/, and canary/ is empty.
    fn assert_nothing_outside(&self) {
        let mut top: Vec<_> = fs::read_dir(self.base())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert_eq!(
            top,
            ["canary", "src", "store"],
            "unexpected files next to the store"
        );
        assert_eq!(
            tree(&self.canary()),
            Vec::<String>::new(),
            "canary was written to"
        );
    }
    /// The store holds no image, layer or leftover.
    fn assert_store_empty(&self) {
        let store = self.store();
        assert!(store.list().unwrap().is_empty());
        for sub in ["layers/sha256", "images", "tmp", "locks"] {
            assert_eq!(
                tree(&self.store_root().join(sub)),
                Vec::<String>::new(),
                "store/{sub} is not empty"
            );
        }
    }
}

fn layer_dirs(env: &Env) -> Vec<String> {
    tree(&env.store_root().join("layers/sha256"))
        .into_iter()
        .filter(|p| !p.contains('/'))
        .collect()
}

fn meta(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: both strings are NUL-terminated and live for the call; the
    // buffer pointer and length describe a live, writable array.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

#[test]
fn busybox_image_imports_lists_and_keeps_content() {
    let env = Env::new();
    let mut layout = env.layout();
    let run = json!({
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo hi"],
        "Env": ["PATH=/usr/bin:/bin", "HOME=/root"],
        "WorkingDir": "/root",
        "User": "0:0",
    });
    let opts = ImageOpts {
        run,
        ..ImageOpts::named("busybox:latest")
    };
    let written = layout.add(&[Layer::new(busybox_tar(), Comp::None)], &opts);
    let store = env.store();
    let info = store.import(&env.src(), None).unwrap();

    assert_eq!(info.name, "busybox:latest");
    assert_eq!(
        info.manifest_digest.as_deref(),
        Some(written.manifest_digest.as_str())
    );
    assert_eq!(info.config_digest, written.config_digest);
    assert_eq!(info.architecture, host_arch());
    assert_eq!(info.os, "linux");
    assert_eq!(info.created.as_deref(), Some("2024-01-01T00:00:00Z"));
    assert_eq!(info.config.entrypoint, ["/bin/sh", "-c"]);
    assert_eq!(info.config.cmd, ["echo hi"]);
    assert_eq!(info.config.env, ["PATH=/usr/bin:/bin", "HOME=/root"]);
    assert_eq!(info.config.working_dir.as_deref(), Some("/root"));
    assert_eq!(info.config.user.as_deref(), Some("0:0"));
    assert_eq!(info.layers.len(), 1);
    assert_eq!(info.layer_digests, [digest(&busybox_tar())]);
    assert!(info.layers[0].starts_with(env.store_root()));

    assert_eq!(store.list().unwrap(), vec![info.clone()]);
    assert_eq!(
        store.inspect("busybox").unwrap(),
        info,
        ":latest is implied"
    );
    assert!(matches!(
        store.inspect("busybox:1"),
        Err(ImageError::NotFound { .. })
    ));
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["layers"][0], json!(info.layers[0]));
    assert_eq!(json["config"]["cmd"], json!(["echo hi"]));

    let root = &info.layers[0];
    let (bb, real) = busybox_bytes();
    assert_eq!(fs::read(root.join("bin/busybox")).unwrap(), bb);
    assert_eq!(meta(&root.join("bin/busybox")).mode() & 0o7777, 0o755);
    assert_eq!(
        meta(&root.join("bin/sh")).ino(),
        meta(&root.join("bin/busybox")).ino()
    );
    assert_eq!(
        fs::read_link(root.join("bin/ls")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read_link(root.join("usr/bin/env")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        meta(&root.join("usr")).mode() & 0o7777,
        0o755,
        "implicit parent"
    );
    assert_eq!(
        meta(root).mode() & 0o7777,
        0o755,
        "layer root without an entry"
    );
    assert_eq!(meta(&root.join("tmp")).mode() & 0o7777, 0o1777);
    assert_eq!(meta(&root.join("root")).mode() & 0o7777, 0o700);
    assert_eq!(meta(&root.join("etc/passwd")).mtime(), MTIME as i64);
    assert_eq!(
        meta(&root.join("etc/passwd")).uid(),
        nix::unistd::geteuid().as_raw(),
        "owned by importer"
    );
    if real {
        let out = Command::new(root.join("bin/busybox"))
            .args(["echo", "from-layer"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "from-layer\n");
    }
    env.assert_nothing_outside();
}

#[test]
fn oci_archive_tarball_imports_and_compressed_archive_is_refused() {
    let env = Env::new();
    let mut layout = env.layout();
    layout.add(
        &[Layer::new(busybox_tar(), Comp::Gzip)],
        &ImageOpts::default(),
    );
    let archive = env.base().join("img.tar");
    tar_dir(&env.src(), &archive);
    let store = env.store();
    let info = store.import(&archive, Some("bb")).unwrap();
    assert_eq!(info.name, "bb");
    let (bb, _) = busybox_bytes();
    assert_eq!(fs::read(info.layers[0].join("bin/busybox")).unwrap(), bb);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&fs::read(&archive).unwrap()).unwrap();
    let gz_path = env.base().join("img.tar.gz");
    fs::write(&gz_path, gz.finish().unwrap()).unwrap();
    let err = store.import(&gz_path, Some("bb2")).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::CompressedArchive {
                compression: "gzip",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("decompress"), "{err}");

    let err = store.import(&env.canary(), Some("x")).unwrap_err();
    assert!(matches!(err, ImageError::InvalidSource { .. }), "{err}");
}

/// Lower layer: gone, keep, dir/old, opq/old1, opq/sub/old2.
/// Upper layer: whiteout for gone, opaque opq with opq/new, dir/new.
fn whiteout_layers() -> (Vec<u8>, Vec<u8>) {
    let mut l1 = Tar::new();
    l1.file("gone", 0o644, b"gone")
        .file("keep", 0o644, b"kept\n")
        .dir("dir", 0o755)
        .file("dir/old", 0o644, b"old")
        .dir("opq", 0o755)
        .file("opq/old1", 0o644, b"1")
        .file("opq/sub/old2", 0o644, b"2");
    let mut l2 = Tar::new();
    l2.file(".wh.gone", 0o644, b"")
        .dir("opq", 0o755)
        .file("opq/.wh..wh..opq", 0o644, b"")
        .file("opq/new", 0o644, b"new")
        .file("dir/new", 0o644, b"new")
        .file("dir/.wh.new", 0o644, b"") // same-layer entry wins
        .file(".wh..wh.plnk/12.34", 0o644, b"aufs metadata");
    (l1.finish(), l2.finish())
}

#[test]
fn whiteouts_and_opaque_markers_become_overlay_metadata() {
    let env = Env::new();
    let mut layout = env.layout();
    let (l1, l2) = whiteout_layers();
    layout.add(
        &[Layer::new(l1, Comp::None), Layer::new(l2, Comp::Gzip)],
        &ImageOpts::named("wh:1"),
    );
    let info = env.store().import(&env.src(), None).unwrap();
    assert_eq!(info.layers.len(), 2);
    let upper = &info.layers[1];
    let gone = meta(&upper.join("gone"));
    assert!(
        gone.file_type().is_char_device(),
        "whiteout is a char device"
    );
    assert_eq!(gone.rdev(), 0, "whiteout is device 0:0");
    assert!(!upper.join(".wh.gone").exists());
    assert_eq!(
        get_xattr(&upper.join("opq"), "user.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(get_xattr(&upper.join("dir"), "user.overlay.opaque"), None);
    assert!(!upper.join("opq/.wh..wh..opq").exists());
    assert_eq!(fs::read(upper.join("dir/new")).unwrap(), b"new");
    assert!(meta(&upper.join("dir/new")).is_file());
    assert!(
        !upper.join(".wh..wh.plnk").exists(),
        "aufs metadata skipped"
    );
    let lower = &info.layers[0];
    assert_eq!(fs::read(lower.join("opq/sub/old2")).unwrap(), b"2");
}

// ---------------------------------------------------------------- overlay

enum Outcome {
    Skip(String),
    Fail(String),
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let rel = nix::sys::utsname::uname()
        .unwrap()
        .release()
        .to_string_lossy()
        .into_owned();
    let mut it = rel
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse::<u32>().ok());
    let (a, b) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

/// Runs as an unprivileged user: imports the two-layer image, mounts it
/// with overlayfs inside `unshare -Urm` and checks what is visible.
fn overlay_scenario(base: &Path) -> Result<(), Outcome> {
    if nix::unistd::geteuid().is_root() {
        return Err(Outcome::Fail(
            "overlay scenario must run unprivileged".into(),
        ));
    }
    if !kernel_at_least(5, 11) {
        return Err(Outcome::Skip(
            "unprivileged overlayfs needs Linux >= 5.11".into(),
        ));
    }
    let probe = Command::new("unshare").args(["-Urm", "true"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(Outcome::Skip(format!(
                "unprivileged user namespaces unavailable: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )));
        }
        Err(e) => return Err(Outcome::Skip(format!("cannot run unshare: {e}"))),
    }
    let src = base.join("src");
    let mut layout = Layout::new(&src);
    let (l1, l2) = whiteout_layers();
    layout.add(
        &[Layer::new(l1, Comp::None), Layer::new(l2, Comp::None)],
        &ImageOpts::named("wh:1"),
    );
    let store = ImageStore::open(base.join("store")).map_err(|e| Outcome::Fail(e.to_string()))?;
    let info = store
        .import(&src, None)
        .map_err(|e| Outcome::Fail(format!("import as uid {}: {e}", nix::unistd::geteuid())))?;
    let _lease = store
        .acquire("wh:1")
        .map_err(|e| Outcome::Fail(e.to_string()))?;
    let mnt = base.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let lowerdir: Vec<String> = info
        .layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let script = r#"mount -t overlay overlay -o "lowerdir=$1,userxattr" "$2" || exit 3
cd "$2" && ls -A . && echo --- && ls -A opq && echo --- && ls -A dir && echo --- && cat keep"#;
    let out = Command::new("unshare")
        .args([
            "-Urm",
            "sh",
            "-c",
            script,
            "sh",
            &lowerdir.join(":"),
            &mnt.display().to_string(),
        ])
        .output()
        .map_err(|e| Outcome::Fail(format!("run unshare: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(Outcome::Fail(format!(
            "overlay mount/check failed ({}): {stdout} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let sections: Vec<Vec<&str>> = stdout
        .split("---\n")
        .map(|s| s.lines().filter(|l| !l.is_empty()).collect())
        .collect();
    let expect = |i: usize, want: &[&str]| {
        let mut got = sections.get(i).cloned().unwrap_or_default();
        got.sort();
        if got != want {
            return Err(Outcome::Fail(format!(
                "section {i}: got {got:?}, want {want:?}; output:\n{stdout}"
            )));
        }
        Ok(())
    };
    expect(0, &["dir", "keep", "opq"])?; // "gone" is whited out
    expect(1, &["new"])?; // opaque: old1 and sub/ hidden
    expect(2, &["new", "old"])?; // not opaque: merged
    expect(3, &["kept"])?;
    Ok(())
}

#[test]
fn overlay_mount_of_two_layer_image_as_unprivileged_user() {
    let dir = TestDir::new();
    let base = dir.path();
    let result = if nix::unistd::geteuid().is_root() {
        // Import and mount as uid 65534, as a per-user store would be. The
        // test binary is copied next to the data, as the build directory
        // may not be reachable by that user.
        std::os::unix::fs::chown(base, Some(65534), Some(65534)).unwrap();
        let exe = base.join("test-binary");
        fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
        let setpriv = || {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
            c
        };
        let reachable = setpriv()
            .args(["test", "-x"])
            .arg(&exe)
            .status()
            .is_ok_and(|s| s.success());
        let out = if reachable {
            setpriv()
                .arg(&exe)
                .args([
                    "--exact",
                    "child_entry_point",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, "overlay")
                .env("HUTCH_IMAGE_TEST_BASE", base)
                .output()
        } else {
            Err(std::io::Error::other(format!(
                "uid 65534 cannot reach {} (is TMPDIR private?)",
                base.display()
            )))
        };
        match out {
            Err(e) => Err(Outcome::Skip(format!("cannot run as uid 65534: {e}"))),
            Ok(o) => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                match o.status.code() {
                    Some(0) if text.contains("OVERLAY-OK") => Ok(()),
                    Some(77) => Err(Outcome::Skip(
                        text.lines()
                            .find_map(|l| l.strip_prefix("SKIP: "))
                            .unwrap_or("")
                            .to_owned(),
                    )),
                    _ => Err(Outcome::Fail(format!(
                        "child as uid 65534 failed ({}):\n{text}",
                        o.status
                    ))),
                }
            }
        }
    } else {
        overlay_scenario(base)
    };
    match result {
        Ok(()) => {}
        Err(Outcome::Skip(reason)) => skip(&reason),
        Err(Outcome::Fail(msg)) => panic!("{msg}"),
    }
}

// ---------------------------------------------------------- verification

#[test]
fn tampered_blobs_are_rejected_and_store_is_unchanged() {
    // Each case breaks one thing in an otherwise valid two-layer image.
    type Breaker = fn(&Layout, &Written, &[Layer]);
    let cases: Vec<(&str, Breaker, &str)> = vec![
        (
            "layer content",
            |l, _, layers| {
                let p = l.blob_path(&layers[1].digest());
                let mut b = fs::read(&p).unwrap();
                let n = b.len() - 600; // inside the tar data
                b[n] ^= 1;
                fs::write(p, b).unwrap();
            },
            "layer 2/2 blob",
        ),
        (
            "layer size",
            |l, _, layers| {
                let p = l.blob_path(&layers[0].digest());
                fs::OpenOptions::new()
                    .append(true)
                    .open(p)
                    .unwrap()
                    .write_all(b"x")
                    .unwrap();
            },
            "should be",
        ),
        (
            "config",
            |l, w, _| {
                let p = l.blob_path(&w.config_digest);
                let b = fs::read_to_string(&p)
                    .unwrap()
                    .replace("/bin/sh", "/bin/xx");
                fs::write(p, b).unwrap();
            },
            "config blob",
        ),
        (
            "manifest",
            |l, w, _| {
                let p = l.blob_path(&w.manifest_digest);
                let b = fs::read_to_string(&p)
                    .unwrap()
                    .replace("schemaVersion\":2", "schemaVersion\": 2");
                fs::write(p, b).unwrap();
            },
            "manifest blob",
        ),
        (
            "missing layer",
            |l, _, layers| {
                fs::remove_file(l.blob_path(&layers[1].digest())).unwrap();
            },
            "missing",
        ),
    ];
    for (what, breaker, needle) in cases {
        let env = Env::new();
        let mut layout = env.layout();
        let layers = [
            Layer::new(small_tar("a", b"aaaa"), Comp::None),
            Layer::new(small_tar("b", &[7u8; 5000]), Comp::None),
        ];
        let w = layout.add(&layers, &ImageOpts::named("t:1"));
        breaker(&layout, &w, &layers);
        let err = env.store().import(&env.src(), None).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(
                err,
                ImageError::DigestMismatch { .. }
                    | ImageError::SizeMismatch { .. }
                    | ImageError::MissingBlob { .. }
            ),
            "{what}: {msg}"
        );
        assert!(
            msg.contains(needle) && msg.contains("sha256:"),
            "{what}: {msg}"
        );
        env.assert_store_empty();
        env.assert_nothing_outside();
    }
}

#[test]
fn diff_id_mismatch_is_rejected() {
    let env = Env::new();
    let layout = env.layout();
    let mut layer = Layer::new(small_tar("a", b"aaaa"), Comp::Gzip);
    layer.diff_id = digest(b"something else");
    let mut layout = layout;
    layout.add(&[layer], &ImageOpts::named("t:1"));
    let err = env.store().import(&env.src(), None).unwrap_err();
    assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err}");
    env.assert_store_empty();
}

#[test]
fn undecodable_layer_is_reported_as_corrupt() {
    for (comp, format) in [
        (Comp::Gzip, "tar+gzip"),
        (Comp::Zstd, "tar+zstd"),
        (Comp::None, "tar"),
    ] {
        let env = Env::new();
        let mut layer = Layer::new(small_tar("a", b"a"), comp);
        // Valid digest and size, but the content is not what it claims.
        layer.blob = b"this is not an archive, whatever it claims to be".repeat(20);
        let mut layout = env.layout();
        layout.add(&[layer], &ImageOpts::named("c:1"));
        let err = env.store().import(&env.src(), None).unwrap_err();
        assert!(
            matches!(err, ImageError::CorruptLayer { .. }),
            "{format}: {err}"
        );
        assert!(
            err.to_string()
                .contains(&format!("not a valid {format} archive")),
            "{err}"
        );
        env.assert_store_empty();
    }
}

// ------------------------------------------------------- malicious layers

/// Imports an image whose second layer is `tar` and expects a refusal
/// whose message names `entry`; checks nothing was written anywhere and
/// the (valid) first layer was not kept either.
fn assert_refused(build: impl FnOnce(&Env) -> Vec<u8>, entry: &str, reason: &str) {
    let env = Env::new();
    let tar = build(&env);
    let mut layout = env.layout();
    let benign = Layer::new(small_tar("etc/hostname", b"benign\n"), Comp::Gzip);
    layout.add(
        &[benign, Layer::new(tar, Comp::None)],
        &ImageOpts::named("evil:1"),
    );
    let err = env.store().import(&env.src(), None).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, ImageError::UnsafeEntry { .. }),
        "{entry}: {msg}"
    );
    assert!(
        msg.contains(&format!("{entry:?}")),
        "message does not name {entry:?}: {msg}"
    );
    assert!(
        msg.contains(reason),
        "message for {entry:?} lacks {reason:?}: {msg}"
    );
    env.assert_store_empty();
    env.assert_nothing_outside();
}

#[test]
fn path_traversal_is_refused() {
    assert_refused(|_| small_tar("../../x", b"pwned"), "../../x", "'..'");
    assert_refused(
        |_| small_tar("a/../../canary/pwned", b"pwned"),
        "a/../../canary/pwned",
        "'..'",
    );
}

#[test]
fn absolute_path_escape_is_refused() {
    assert_refused(
        |_| small_tar("/../../../canary/pwned", b"x"),
        "/../../../canary/pwned",
        "'..'",
    );
}

#[test]
fn absolute_paths_stay_inside_the_layer() {
    let env = Env::new();
    let target = format!("{}/pwned", env.canary().display());
    let mut layout = env.layout();
    layout.add(
        &[Layer::new(small_tar(&target, b"inside"), Comp::None)],
        &ImageOpts::named("abs:1"),
    );
    let info = env.store().import(&env.src(), None).unwrap();
    let inside = info.layers[0].join(target.trim_start_matches('/'));
    assert_eq!(fs::read(inside).unwrap(), b"inside");
    env.assert_nothing_outside();
}

#[test]
fn symlink_escape_is_refused() {
    assert_refused(
        |env| {
            let mut t = Tar::new();
            t.symlink("evil", &env.canary().display().to_string())
                .file("evil/pwned", 0o644, b"x");
            t.finish()
        },
        "evil/pwned",
        "symlink",
    );
    assert_refused(
        |_| {
            let mut t = Tar::new();
            t.dir("d", 0o755)
                .symlink("d/up", "../../..")
                .file("d/up/canary/pwned", 0o644, b"x");
            t.finish()
        },
        "d/up/canary/pwned",
        "symlink",
    );
    assert_refused(
        |_| {
            let mut t = Tar::new();
            t.symlink("etc", "/etc").hardlink("stolen", "etc/passwd");
            t.finish()
        },
        "stolen",
        "symlink",
    );
}

#[test]
fn symlinks_are_replaced_never_written_through() {
    let env = Env::new();
    let victim = env.canary().join("victim");
    let mut t = Tar::new();
    t.symlink("evil", &victim.display().to_string())
        .file("evil", 0o644, b"replaced")
        .symlink("dirlink", &env.canary().display().to_string())
        .dir("dirlink", 0o755)
        .file("dirlink/inside", 0o644, b"x");
    let mut layout = env.layout();
    layout.add(
        &[Layer::new(t.finish(), Comp::None)],
        &ImageOpts::named("s:1"),
    );
    let info = env.store().import(&env.src(), None).unwrap();
    let root = &info.layers[0];
    assert!(meta(&root.join("evil")).is_file());
    assert_eq!(fs::read(root.join("evil")).unwrap(), b"replaced");
    assert!(meta(&root.join("dirlink")).is_dir());
    assert!(meta(&root.join("dirlink/inside")).is_file());
    env.assert_nothing_outside();
}

#[test]
fn hardlink_escapes_are_refused() {
    assert_refused(
        |_| {
            let mut t = Tar::new();
            t.hardlink("shadow", "/etc/shadow");
            t.finish()
        },
        "shadow",
        "does not exist in this layer",
    );
    assert_refused(
        |_| {
            let mut t = Tar::new();
            t.hardlink("x", "../../x");
            t.finish()
        },
        "x",
        "'..'",
    );
    assert_refused(
        |_| {
            let mut t = Tar::new();
            t.dir("d", 0o755).hardlink("dl", "d");
            t.finish()
        },
        "dl",
        "not a regular file",
    );
}

#[test]
fn device_nodes_and_fifos_are_refused() {
    assert_refused(
        |_| {
            let mut t = Tar::new();
            t.dir("dev", 0o755).chardev("dev/null", 1, 3);
            t.finish()
        },
        "dev/null",
        "character device",
    );
    assert_refused(
        |_| {
            let mut t = Tar::new();
            t.blockdev("sda", 8, 0);
            t.finish()
        },
        "sda",
        "block device",
    );
    assert_refused(
        |_| {
            let mut t = Tar::new();
            t.fifo("pipe");
            t.finish()
        },
        "pipe",
        "FIFO",
    );
}

#[test]
fn file_used_as_directory_is_refused() {
    assert_refused(
        |_| {
            let mut t = Tar::new();
            t.file("f", 0o644, b"x").file("f/g", 0o644, b"y");
            t.finish()
        },
        "f/g",
        "not a directory",
    );
}

#[test]
fn setuid_and_setgid_bits_are_stripped() {
    let env = Env::new();
    let mut t = Tar::new();
    t.dir("./", 0o555) // the root: owner rwx is kept so it can be moved and removed
        .raw(b"v7dir/", b'0', 0o750, b"", b"", (0, 0)) // old-style directory
        .file("suid", 0o4755, b"x")
        .file("sgid", 0o2711, b"x")
        .dir("sgiddir", 0o2775)
        .dir("sticky", 0o1777)
        .file("ro", 0o444, b"x")
        .dir("rodir", 0o555)
        .file("rodir/inner", 0o600, b"x")
        .file(&format!("{}file", "deep/".repeat(30)), 0o644, b"deep") // PAX path
        .symlink(&format!("link-{}", "x".repeat(120)), &"t".repeat(150)); // PAX name+linkpath
    let mut layout = env.layout();
    layout.add(
        &[Layer::new(t.finish(), Comp::None)],
        &ImageOpts::named("m:1"),
    );
    let info = env.store().import(&env.src(), None).unwrap();
    let root = &info.layers[0];
    let mode = |p: &str| meta(&root.join(p)).mode() & 0o7777;
    assert_eq!(mode(""), 0o755);
    assert!(meta(&root.join("v7dir")).is_dir());
    assert_eq!(mode("v7dir"), 0o750);
    assert_eq!(mode("suid"), 0o755);
    assert_eq!(mode("sgid"), 0o711);
    assert_eq!(mode("sgiddir"), 0o775);
    assert_eq!(mode("sticky"), 0o1777);
    assert_eq!(mode("ro"), 0o444);
    assert_eq!(
        mode("rodir"),
        0o555,
        "mode applied after content was created"
    );
    assert_eq!(mode("rodir/inner"), 0o600);
    assert_eq!(
        fs::read(root.join(format!("{}file", "deep/".repeat(30)))).unwrap(),
        b"deep"
    );
    let long_link = root.join(format!("link-{}", "x".repeat(120)));
    assert_eq!(
        fs::read_link(long_link).unwrap(),
        Path::new(&"t".repeat(150))
    );
    // Removal copes with the read-only directory.
    env.store().remove("m:1").unwrap();
    assert!(layer_dirs(&env).is_empty());
}

// ------------------------------------------------- sharing, leases and GC

#[test]
fn images_sharing_a_layer_store_it_once() {
    let env = Env::new();
    let base_tar = busybox_tar();
    let mut layout = env.layout();
    layout.add(
        &[
            Layer::new(base_tar.clone(), Comp::None),
            Layer::new(small_tar("a", b"A"), Comp::None),
        ],
        &ImageOpts::named("a:1"),
    );
    layout.add(
        &[
            Layer::new(base_tar.clone(), Comp::Gzip),
            Layer::new(small_tar("b", b"B"), Comp::Zstd),
        ],
        &ImageOpts::named("b:1"),
    );
    let store = env.store();
    let a = store.import(&env.src(), Some("a:1")).unwrap();
    let b = store.import(&env.src(), Some("b:1")).unwrap();
    assert_eq!(
        a.layers[0], b.layers[0],
        "same diff_id, same directory, whatever the compression"
    );
    assert_ne!(a.layers[1], b.layers[1]);
    assert_eq!(layer_dirs(&env).len(), 3);
    assert_eq!(
        fs::read(b.layers[1].join("b")).unwrap(),
        b"B",
        "zstd layer unpacked"
    );

    store.remove("a:1").unwrap();
    assert_eq!(layer_dirs(&env).len(), 2);
    assert!(
        b.layers.iter().all(|p| p.is_dir()),
        "shared layer kept for b"
    );
    assert!(!a.layers[1].exists());
    // "b" means "b:latest", which does not exist.
    assert!(matches!(
        store.remove("b"),
        Err(ImageError::NotFound { .. })
    ));
    store.remove("b:1").unwrap();
    env.assert_store_empty();
}

#[test]
fn remove_by_full_name_and_gc_everything() {
    let env = Env::new();
    let mut layout = env.layout();
    layout.add(
        &[Layer::new(small_tar("a", b"A"), Comp::None)],
        &ImageOpts::named("x:1"),
    );
    let store = env.store();
    store.import(&env.src(), None).unwrap();
    assert!(matches!(
        store.remove("x"),
        Err(ImageError::NotFound { .. })
    ));
    store.remove("x:1").unwrap();
    env.assert_store_empty();
    assert!(matches!(
        store.remove("x:1"),
        Err(ImageError::NotFound { .. })
    ));
}

#[test]
fn remove_is_refused_while_leased() {
    let env = Env::new();
    let mut layout = env.layout();
    layout.add(
        &[Layer::new(small_tar("a", b"A"), Comp::None)],
        &ImageOpts::named("app:1"),
    );
    let store = env.store();
    let info = store.import(&env.src(), None).unwrap();

    let lease = store.acquire("app:1").unwrap();
    assert_eq!(lease.info(), &info);
    let second = store.acquire("app:1").unwrap(); // leases are shared
    let err = store.remove("app:1").unwrap_err();
    assert!(matches!(err, ImageError::InUse { .. }), "{err}");
    assert_eq!(err.to_string().lines().count(), 1);
    assert!(
        err.to_string()
            .contains("image app:1 is in use by a running sandbox"),
        "{err}"
    );

    // Replacing the name with another image is refused too.
    let other = env.base().join("src2");
    let mut l2 = Layout::new(&other);
    l2.add(
        &[Layer::new(small_tar("b", b"B"), Comp::None)],
        &ImageOpts::default(),
    );
    let err = store.import(&other, Some("app:1")).unwrap_err();
    assert!(matches!(err, ImageError::InUse { .. }), "{err}");

    drop(lease);
    assert!(
        matches!(store.remove("app:1"), Err(ImageError::InUse { .. })),
        "second lease still held"
    );
    drop(second);
    assert_eq!(store.list().unwrap(), vec![info.clone()]);
    assert!(info.layers[0].is_dir());

    store.remove("app:1").unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(!info.layers[0].exists(), "unreferenced layer collected");
    assert!(matches!(
        store.acquire("app:1"),
        Err(ImageError::NotFound { .. })
    ));
    env.assert_store_empty();
}

#[test]
fn lease_is_held_by_another_process() {
    // A lease is a shared flock on the image's lock file: one taken by
    // another process (here flock(1) on the same file) blocks remove.
    let env = Env::new();
    let mut layout = env.layout();
    layout.add(
        &[Layer::new(small_tar("a", b"A"), Comp::None)],
        &ImageOpts::named("p:1"),
    );
    let store = env.store();
    store.import(&env.src(), None).unwrap();
    let lease = store.acquire("p:1").unwrap();
    use std::os::fd::AsRawFd;
    let lock_path = fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsFd::as_fd(&lease).as_raw_fd()
    ))
    .unwrap();
    drop(lease);
    let mut child = Command::new("flock")
        .args(["-s"])
        .arg(&lock_path)
        .args(["-c", "echo locked; exec sleep 30"])
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut line = [0u8; 7];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut line)
        .unwrap();
    assert_eq!(&line, b"locked\n");
    let err = store.remove("p:1");
    // sleep inherited the locked fd: end the whole process group.
    nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    assert!(matches!(err, Err(ImageError::InUse { .. })), "{err:?}");
    // The killed sleep releases the lock when it has fully exited.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.remove("p:1") {
            Ok(()) => break,
            Err(ImageError::InUse { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn reimport_is_idempotent_and_replacement_collects_old_layers() {
    let env = Env::new();
    let mut layout = env.layout();
    layout.add(
        &[Layer::new(small_tar("v", b"1"), Comp::None)],
        &ImageOpts::named("app:latest"),
    );
    let store = env.store();
    let first = store.import(&env.src(), None).unwrap();
    let again = store.import(&env.src(), None).unwrap();
    assert_eq!(first, again);
    assert_eq!(store.list().unwrap().len(), 1);

    let src2 = env.base().join("src2");
    let mut l2 = Layout::new(&src2);
    l2.add(
        &[Layer::new(small_tar("v", b"2"), Comp::None)],
        &ImageOpts::named("app:latest"),
    );
    let second = store.import(&src2, None).unwrap();
    assert_ne!(first.config_digest, second.config_digest);
    let listed = store.list().unwrap();
    assert_eq!(listed, vec![second.clone()]);
    assert!(!first.layers[0].exists(), "old layer collected");
    assert_eq!(fs::read(second.layers[0].join("v")).unwrap(), b"2");
    fs::remove_dir_all(&src2).unwrap();
}

#[test]
fn concurrent_imports_into_one_store_all_succeed() {
    let env = Env::new();
    let mut layout = env.layout();
    let shared = Layer::new(small_tar("shared", b"s"), Comp::None);
    layout.add(
        &[
            shared.clone(),
            Layer::new(many_files_tar(64, 8192), Comp::None),
        ],
        &ImageOpts::named("c1"),
    );
    layout.add(
        &[shared, Layer::new(busybox_tar(), Comp::Gzip)],
        &ImageOpts::named("c2"),
    );
    let threads: Vec<_> = ["c1", "c2", "c1", "c2", "c1"]
        .into_iter()
        .map(|tag| {
            let (root, src) = (env.store_root(), env.src());
            std::thread::spawn(move || {
                ImageStore::open(root)
                    .unwrap()
                    .import(&src, Some(tag))
                    .map(|i| i.name)
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    let names: Vec<_> = env
        .store()
        .list()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["c1", "c2"]);
    assert_eq!(layer_dirs(&env).len(), 3);
    assert_eq!(tree(&env.store_root().join("tmp")), Vec::<String>::new());
}

// ------------------------------------------------------ index selection

#[test]
fn multi_platform_index_picks_the_host() {
    let env = Env::new();
    let mut layout = env.layout();
    let foreign = ImageOpts {
        index_platform: Some(("linux".into(), foreign_arch().into())),
        config_arch: foreign_arch().into(),
        ..ImageOpts::named("multi:1")
    };
    let host = ImageOpts {
        index_platform: Some(("linux".into(), host_arch().into())),
        ..ImageOpts::named("multi:1")
    };
    layout.add(
        &[Layer::new(
            small_tar("arch", foreign_arch().as_bytes()),
            Comp::None,
        )],
        &foreign,
    );
    let want = layout.add(
        &[Layer::new(
            small_tar("arch", host_arch().as_bytes()),
            Comp::None,
        )],
        &host,
    );
    let info = env.store().import(&env.src(), None).unwrap();
    assert_eq!(info.name, "multi:1");
    assert_eq!(info.config_digest, want.config_digest);
    assert_eq!(
        fs::read(info.layers[0].join("arch")).unwrap(),
        host_arch().as_bytes()
    );
}

#[test]
fn nested_index_is_followed() {
    let env = Env::new();
    let mut layout = env.layout();
    let host = ImageOpts {
        index_platform: Some(("linux".into(), host_arch().into())),
        ..Default::default()
    };
    let w = layout.image(&[Layer::new(small_tar("n", b"n"), Comp::None)], &host);
    let nested = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [w.descriptor],
    }))
    .unwrap();
    let nested_digest = layout.blob(&nested);
    layout.index.push(json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": nested_digest,
        "size": nested.len(),
        "annotations": {"org.opencontainers.image.ref.name": "nested:2"},
    }));
    layout.write_index();
    let info = env.store().import(&env.src(), None).unwrap();
    assert_eq!(info.name, "nested:2");
    assert_eq!(info.config_digest, w.config_digest);
}

#[test]
fn foreign_only_index_lists_what_is_available() {
    let env = Env::new();
    let mut layout = env.layout();
    let foreign = ImageOpts {
        index_platform: Some(("linux".into(), foreign_arch().into())),
        config_arch: foreign_arch().into(),
        ..ImageOpts::named("f:1")
    };
    layout.add(&[Layer::new(small_tar("a", b"a"), Comp::None)], &foreign);
    let err = env.store().import(&env.src(), None).unwrap_err();
    assert!(
        matches!(err, ImageError::NoMatchingPlatform { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&format!("linux/{}", foreign_arch())), "{msg}");
    assert!(msg.contains(&format!("linux/{}", host_arch())), "{msg}");

    // A manifest without platform whose config is foreign is refused too.
    let env = Env::new();
    let mut layout = env.layout();
    let opts = ImageOpts {
        config_arch: foreign_arch().into(),
        ..ImageOpts::named("f:2")
    };
    layout.add(&[Layer::new(small_tar("a", b"a"), Comp::None)], &opts);
    let err = env.store().import(&env.src(), None).unwrap_err();
    assert!(matches!(err, ImageError::PlatformMismatch { .. }), "{err}");
    env.assert_store_empty();
}

#[test]
fn several_images_need_a_tag_and_unnamed_needs_a_name() {
    let env = Env::new();
    let mut layout = env.layout();
    layout.add(
        &[Layer::new(small_tar("w", b"a"), Comp::None)],
        &ImageOpts::named("a"),
    );
    let wb = layout.add(
        &[Layer::new(small_tar("w", b"b"), Comp::None)],
        &ImageOpts::named("b"),
    );
    let store = env.store();
    let err = store.import(&env.src(), None).unwrap_err();
    assert!(matches!(err, ImageError::Ambiguous { .. }), "{err}");
    assert!(
        err.to_string().contains("a [") && err.to_string().contains("b ["),
        "{err}"
    );
    let info = store.import(&env.src(), Some("b")).unwrap();
    assert_eq!(info.config_digest, wb.config_digest);

    let env = Env::new();
    let mut layout = env.layout();
    layout.add(
        &[Layer::new(small_tar("w", b"a"), Comp::None)],
        &ImageOpts::default(),
    );
    let store = env.store();
    let err = store.import(&env.src(), None).unwrap_err();
    assert!(matches!(err, ImageError::NameRequired { .. }), "{err}");
    assert!(matches!(
        store.import(&env.src(), Some("bad name")),
        Err(ImageError::InvalidName { .. })
    ));
    assert_eq!(
        store.import(&env.src(), Some("named")).unwrap().name,
        "named"
    );
}

#[test]
fn unsupported_layer_media_type_is_refused() {
    let env = Env::new();
    let mut layout = env.layout();
    let mut layer = Layer::new(small_tar("a", b"a"), Comp::None);
    layer.media_type = "application/vnd.oci.image.layer.v1.tar+bzip2".into();
    layout.add(&[layer], &ImageOpts::named("bz:1"));
    let err = env.store().import(&env.src(), None).unwrap_err();
    assert!(
        matches!(err, ImageError::UnsupportedMediaType { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("tar+bzip2"), "{err}");
    env.assert_store_empty();
}

#[test]
fn legacy_docker_save_archive_imports() {
    let env = Env::new();
    let base = busybox_tar();
    let top = small_tar("etc/hostname", b"docker\n");
    let archive = env.base().join("src");
    docker_save(
        &archive,
        &[base.clone(), top, base],
        "busybox:legacy",
        json!({"Cmd": ["sh"]}),
    );
    let store = env.store();
    let info = store.import(&archive, None).unwrap();
    assert_eq!(info.name, "busybox:legacy");
    assert_eq!(info.manifest_digest, None);
    assert_eq!(info.layers.len(), 3);
    assert_eq!(info.layers[0], info.layers[2], "symlinked duplicate layer");
    assert_eq!(info.config.cmd, ["sh"]);
    assert_eq!(
        fs::read(info.layers[1].join("etc/hostname")).unwrap(),
        b"docker\n"
    );

    // A layer that does not match the config's diff_id is refused.
    let env = Env::new();
    let archive = env.base().join("src");
    docker_save(&archive, &[small_tar("a", b"LAYER-DATA")], "x:1", json!({}));
    let mut bytes = fs::read(&archive).unwrap();
    let at = bytes.windows(10).position(|w| w == b"LAYER-DATA").unwrap();
    bytes[at] = b'P';
    fs::write(&archive, bytes).unwrap();
    let err = env.store().import(&archive, None).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("layer 1/1"), "{err}");
    env.assert_store_empty();
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Images made by independent tools: umoci writes an OCI layout (with
/// gzip layers and whiteouts), skopeo converts it to an oci-archive and
/// a legacy docker-archive. All three import to the same layers.
#[test]
fn images_made_by_umoci_and_skopeo_import() {
    if !have("umoci") || !have("skopeo") {
        skip("umoci and skopeo are not installed (apt-get install umoci skopeo)");
        return;
    }
    let env = Env::new();
    let base = env.base();
    let layout = env.src();
    let umoci = |args: &[&str]| run(Command::new("umoci").current_dir(base).args(args));
    umoci(&["init", "--layout", "src"]);
    umoci(&["new", "--image", "src:latest"]);
    umoci(&["unpack", "--rootless", "--image", "src:latest", "b1"]);
    let rootfs = base.join("b1/rootfs");
    fs::create_dir_all(rootfs.join("bin")).unwrap();
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    let (bb, _) = busybox_bytes();
    fs::write(rootfs.join("bin/busybox"), &bb).unwrap();
    fs::set_permissions(
        rootfs.join("bin/busybox"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    fs::write(rootfs.join("etc/gone"), b"lower").unwrap();
    umoci(&["repack", "--image", "src:latest", "b1"]);
    umoci(&[
        "config",
        "--image",
        "src:latest",
        "--config.cmd",
        "/bin/sh",
        "--config.env",
        "A=1",
    ]);
    umoci(&["unpack", "--rootless", "--image", "src:latest", "b2"]);
    fs::remove_file(base.join("b2/rootfs/etc/gone")).unwrap();
    fs::write(base.join("b2/rootfs/etc/new"), b"upper").unwrap();
    umoci(&["repack", "--image", "src:latest", "b2"]);
    let skopeo = |dest: String| {
        // HOME: skopeo keeps a blob-info cache there when not root.
        run(Command::new("skopeo")
            .current_dir(base)
            .env("HOME", base.join("home"))
            .args(["--insecure-policy", "copy", "-q", "oci:src:latest", &dest]))
    };
    skopeo(format!(
        "oci-archive:{}/oci.tar:busybox:umoci",
        base.display()
    ));
    skopeo(format!(
        "docker-archive:{}/docker.tar:busybox:docker",
        base.display()
    ));

    let store = env.store();
    let from_layout = store.import(&layout, None).unwrap();
    let from_oci = store.import(&base.join("oci.tar"), None).unwrap();
    let from_docker = store.import(&base.join("docker.tar"), None).unwrap();
    assert_eq!(from_layout.name, "latest", "umoci names by tag only");
    assert_eq!(from_oci.name, "busybox:umoci");
    assert_eq!(from_docker.name, "docker.io/library/busybox:docker");
    assert_eq!(from_docker.manifest_digest, None);
    for info in [&from_layout, &from_oci, &from_docker] {
        assert_eq!(info.layers, from_layout.layers, "{}", info.name);
        assert_eq!(info.config.cmd, ["/bin/sh"]);
        assert_eq!(info.config.env.last().map(String::as_str), Some("A=1"));
    }
    assert_eq!(
        layer_dirs(&env).len(),
        2,
        "gzip and plain variants share layers"
    );
    let (lower, upper) = (&from_layout.layers[0], &from_layout.layers[1]);
    assert_eq!(fs::read(lower.join("bin/busybox")).unwrap(), bb);
    assert_eq!(
        fs::read_link(lower.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let gone = meta(&upper.join("etc/gone"));
    assert!(
        gone.file_type().is_char_device() && gone.rdev() == 0,
        "whiteout from umoci"
    );
    assert_eq!(fs::read(upper.join("etc/new")).unwrap(), b"upper");
}

// ------------------------------------------------------------ crash safety

fn many_files_tar(n: usize, size: usize) -> Vec<u8> {
    let mut t = Tar::new();
    let chunk = vec![0x5au8; size];
    for i in 0..n {
        t.file(&format!("d{}/f{i}", i % 16), 0o644, &chunk);
    }
    t.finish()
}

/// Waits until the partial `layer-1` of an import in `tmp/` holds a file
/// (the importer is in the middle of the layer), or panics if the import
/// child ended first.
fn wait_mid_layer(tmp: &Path, child: &mut std::process::Child, deadline: Instant) {
    loop {
        let started = fs::read_dir(tmp)
            .into_iter()
            .flatten()
            .flatten()
            .any(|work| {
                fs::read_dir(work.path().join("layer-1/d0"))
                    .is_ok_and(|mut files| files.next().is_some())
            });
        if started {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            panic!("import child exited before it was in layer 2 ({status}): {out}");
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the import child"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn import_killed_mid_layer_leaves_no_image_and_next_import_succeeds() {
    use std::os::unix::process::ExitStatusExt;
    let env = Env::new();
    let mut layout = env.layout();
    let l1 = Layer::new(small_tar("first", b"complete"), Comp::Gzip);
    // Empty files (an inode each, no data): unpacking 20,000 of them takes
    // long enough to be caught in the middle.
    let l2 = Layer::new(many_files_tar(20_000, 0), Comp::Gzip);
    layout.add(&[l1.clone(), l2.clone()], &ImageOpts::named("killed:1"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_entry_point",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "import")
        .env("HUTCH_IMAGE_TEST_STORE", env.store_root())
        .env("HUTCH_IMAGE_TEST_SRC", env.src())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    wait_mid_layer(&env.store_root().join("tmp"), &mut child, deadline);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    let store = env.store();
    assert!(store.list().unwrap().is_empty(), "killed import is listed");
    assert!(matches!(
        store.inspect("killed:1"),
        Err(ImageError::NotFound { .. })
    ));
    assert!(matches!(
        store.acquire("killed:1"),
        Err(ImageError::NotFound { .. })
    ));
    let leftovers = tree(&env.store_root().join("tmp"));
    assert!(
        leftovers.iter().any(|p| p.ends_with("layer-1/d0/f0")),
        "expected a partial layer in tmp/: {leftovers:?}"
    );
    assert_eq!(
        layer_dirs(&env).len(),
        1,
        "layer 1 was complete and moved into place"
    );

    let info = store.import(&env.src(), None).unwrap();
    assert_eq!(store.list().unwrap(), vec![info.clone()]);
    assert_eq!(
        tree(&env.store_root().join("tmp")),
        Vec::<String>::new(),
        "leftovers cleaned"
    );
    assert_eq!(fs::read(info.layers[0].join("first")).unwrap(), b"complete");
    let files = tree(&info.layers[1])
        .into_iter()
        .filter(|p| p.contains("/f"))
        .count();
    assert_eq!(files, 20_000);
    env.assert_nothing_outside();
}

/// Entry point for the child processes spawned by the tests above; a no-op
/// when run as a normal test.
#[test]
fn child_entry_point() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "import" => {
            let store = ImageStore::open(std::env::var("HUTCH_IMAGE_TEST_STORE").unwrap()).unwrap();
            let src = PathBuf::from(std::env::var("HUTCH_IMAGE_TEST_SRC").unwrap());
            let info: ImageInfo = store.import(&src, None).unwrap();
            println!("imported {}", info.name);
        }
        "overlay" => {
            let base = PathBuf::from(std::env::var("HUTCH_IMAGE_TEST_BASE").unwrap());
            match overlay_scenario(&base) {
                Ok(()) => println!("OVERLAY-OK"),
                Err(Outcome::Skip(r)) => {
                    skip(&r);
                    std::process::exit(77);
                }
                Err(Outcome::Fail(m)) => panic!("{m}"),
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

#[test]
fn permissions_of_the_store_are_private() {
    let env = Env::new();
    let store = env.store();
    assert_eq!(meta(store.root()).permissions().mode() & 0o777, 0o700);
}

/// Prints a skip notice that shows in a plain `cargo test` run: libtest
/// captures only the print macros, so this writes to stderr directly.
fn skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
}
