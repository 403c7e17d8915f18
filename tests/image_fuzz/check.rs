//! What must hold for any bytes an image import reads (shared by the
//! corpus replay and the fuzz drivers: tests/image_fuzz.rs and
//! fuzz/afl/).
//!
//! An input is a mode byte and a payload: `T`, `G` or `Z` a layer (plain,
//! gzip or zstd tar) that is unpacked into an empty directory as an
//! import unpacks it; `A` an archive (`oci-archive` or `docker save` tar)
//! whose image is chosen as an import chooses it (index walked, manifest
//! and config read and verified). A panic here is a finding: the code
//! panicked, wrote outside the layer, or left in it something an import
//! must never make.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use hutch::image::fuzzing::{LayerFormat, resolve_source, unpack};

/// The budget of a fuzzed layer: small, so that a bomb ends fast.
pub const MAX_SIZE: u64 = 4 << 20;

/// How far an input got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Refused (an error, as the import would report it).
    Refused,
    /// Unpacked completely, or its image chosen.
    Accepted,
}

/// What an input is, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Layer(LayerFormat),
    Archive,
}

impl Mode {
    pub fn of(byte: u8) -> Mode {
        match byte {
            b'T' => Mode::Layer(LayerFormat::Tar),
            b'G' => Mode::Layer(LayerFormat::Gzip),
            b'Z' => Mode::Layer(LayerFormat::Zstd),
            b'A' => Mode::Archive,
            b => Mode::of(b"TGZA"[usize::from(b % 4)]),
        }
    }

    #[allow(dead_code)] // for generate.rs; the AFL target only checks
    pub fn byte(self) -> u8 {
        match self {
            Mode::Layer(LayerFormat::Tar) => b'T',
            Mode::Layer(LayerFormat::Gzip) => b'G',
            Mode::Layer(LayerFormat::Zstd) => b'Z',
            Mode::Archive => b'A',
        }
    }
}

/// A directory for the checks, reused from input to input: `layer/` is
/// unpacked into, `outside/keep` must never change, `archive.tar` holds an
/// archive input.
pub struct Work {
    root: PathBuf,
}

const KEEP: &[u8] = b"must not change";

impl Work {
    /// Makes the directory `root` (which must not exist).
    pub fn new(root: &Path) -> Work {
        fs::create_dir_all(root.join("outside")).unwrap();
        fs::write(root.join("outside/keep"), KEEP).unwrap();
        Work {
            root: root.to_path_buf(),
        }
    }
}

impl Work {
    /// Removes what an input that was stopped half-way left (a fuzzer
    /// kills an input that takes too long, and its next process starts in
    /// the same directory).
    fn reset(&self) {
        let layer = self.root.join("layer");
        if fs::symlink_metadata(&layer).is_ok() {
            check_tree(&layer);
            remove(&layer);
        }
        let _ = fs::remove_file(self.root.join("archive.tar"));
    }
}

/// Runs one input.
pub fn check(bytes: &[u8], work: &Work) -> Outcome {
    work.reset();
    let Some((&mode, payload)) = bytes.split_first() else {
        return Outcome::Refused;
    };
    let outcome = match Mode::of(mode) {
        Mode::Layer(format) => check_layer(payload, format, work),
        Mode::Archive => check_archive(payload, work),
    };
    check_outside(work);
    outcome
}

fn check_layer(payload: &[u8], format: LayerFormat, work: &Work) -> Outcome {
    let layer = work.root.join("layer");
    fs::create_dir(&layer).unwrap();
    let result = unpack(payload, format, &layer, MAX_SIZE);
    if let Err(e) = &result {
        let message = e.to_string();
        assert!(
            message.len() < 2000 && !message.contains('\n'),
            "an error message of {} bytes or several lines: {message:?}",
            message.len()
        );
    }
    let written = check_tree(&layer);
    assert!(
        written <= MAX_SIZE,
        "{written} bytes written with a budget of {MAX_SIZE}"
    );
    remove(&layer);
    match result {
        Ok(()) => Outcome::Accepted,
        Err(_) => Outcome::Refused,
    }
}

fn check_archive(payload: &[u8], work: &Work) -> Outcome {
    let archive = work.root.join("archive.tar");
    fs::write(&archive, payload).unwrap();
    let result = resolve_source(&archive, None);
    fs::remove_file(&archive).unwrap();
    match result {
        Ok((config, layers)) => {
            assert!(config.starts_with("sha256:") && config.len() == 71);
            assert!(layers <= 500, "{layers} layers");
            Outcome::Accepted
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.len() < 2000 && !message.contains('\n'),
                "an error message of {} bytes or several lines: {message:?}",
                message.len()
            );
            Outcome::Refused
        }
    }
}

/// Nothing beside the layer was touched.
fn check_outside(work: &Work) {
    let mut names: Vec<_> = fs::read_dir(&work.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["outside"], "something was left beside the layer");
    let outside: Vec<_> = fs::read_dir(work.root.join("outside"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, ["keep"], "something was made outside the layer");
    let keep = work.root.join("outside/keep");
    assert!(!fs::symlink_metadata(&keep).unwrap().is_symlink());
    assert_eq!(fs::read(keep).unwrap(), KEEP, "a file outside was written");
}

/// Walks what was unpacked (without following symlinks): only
/// directories, regular files, symlinks and whiteouts (0:0 character
/// devices), and no setuid or setgid bit. Returns the bytes of the
/// regular files (which the budget bounds).
fn check_tree(dir: &Path) -> u64 {
    let mut stack = vec![dir.to_path_buf()];
    let mut bytes = 0u64;
    while let Some(d) = stack.pop() {
        make_readable(&d);
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            let ft = m.file_type();
            assert_eq!(m.mode() & 0o6000, 0, "{}: setuid or setgid", path.display());
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                bytes += m.len();
            } else if ft.is_char_device() {
                assert_eq!(m.rdev(), 0, "{}: a device other than 0:0", path.display());
            } else {
                assert!(ft.is_symlink(), "{}: {ft:?}", path.display());
            }
        }
    }
    bytes
}

/// Gives the owner rwx on a directory a layer left with fewer rights.
fn make_readable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::symlink_metadata(dir).unwrap().mode();
    if mode & 0o700 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode((mode & 0o7777) | 0o700)).unwrap();
    }
}

/// Removes a tree whose directories may have had their rights taken
/// away (they were given back by [`check_tree`]).
fn remove(dir: &Path) {
    fs::remove_dir_all(dir).unwrap();
}
