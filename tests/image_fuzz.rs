//! The image import (src/image/: the tar reader and unpacker, the archive
//! reader and the index walk) against hostile input.
//!
//! `cargo test` replays the committed corpus (tests/fuzz-corpus/image/:
//! the seeds of tests/image_fuzz/generate.rs, inputs that once failed, and
//! inputs a coverage-guided fuzzer kept) through the checks of
//! tests/image_fuzz/check.rs. The fuzzer itself runs outside CI, on the
//! stable toolchain:
//!
//! ```sh
//! HUTCH_FUZZ_EXECS=1000000 cargo test --release --test image_fuzz -- --ignored --nocapture
//! ```
//!
//! It feeds generated layers (entries of every type, hostile names, long
//! names and PAX records, wrong sizes; plain, gzip or zstd) and archives
//! (indexes nested and fanned out, JSON damaged before it is hashed),
//! mutations of the corpus and raw bytes, and fails on a panic, on a
//! write outside the layer or anything an import must not leave in one, on
//! an allocation out of proportion to the input, or on an input that
//! takes over 10 s; the input is then written to
//! `target/image-fuzz-crashes/`, to be added to the corpus once fixed.
//! `HUTCH_FUZZ_DIR` chooses where the fuzzer unpacks layers (default:
//! /dev/shm, a tmpfs, where an input costs ~1 ms rather than ~14 ms on a
//! busy disk; before Linux 6.6 tmpfs has no user extended attributes, so
//! layers with opaque directories are refused there). The corpus replay
//! unpacks below the target directory.
//! `HUTCH_BLESS=1 cargo test --test image_fuzz` rewrites the seed files.

#[path = "image_fuzz/check.rs"]
mod check;
#[path = "image_fuzz/generate.rs"]
mod generate;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use check::{Mode, Outcome, Work, check};

// ------------------------------------------------------------ allocation

/// Counts the bytes this thread holds, and the most it held, so that an
/// input's peak allocation can be compared with its size.
struct Counting;

thread_local! {
    static HELD: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters are const-initialised thread-locals, which do not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        held_grows(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        held_shrinks(layout.size());
        // SAFETY: the caller's contract for `dealloc` is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        held_grows(new_size);
        held_shrinks(layout.size());
        // SAFETY: the caller's contract for `realloc` is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn held_grows(n: usize) {
    let _ = HELD.try_with(|h| {
        h.set(h.get() + n);
        let _ = PEAK.try_with(|p| p.set(p.get().max(h.get())));
    });
}

fn held_shrinks(n: usize) {
    let _ = HELD.try_with(|h| h.set(h.get().saturating_sub(n)));
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most an input of `len` bytes may cost: the unpacker's buffer, a
/// PAX header at its limit, what the input describes (directories to set
/// the modes of, JSON documents), and for zstd the window its frame
/// header asks for (at most 128 MiB, ruzstd's limit, allocated up front).
fn allocation_bound(len: usize, mode: Mode) -> usize {
    let zstd_window = match mode {
        Mode::Layer(hutch::image::fuzzing::LayerFormat::Zstd) => 130 << 20,
        _ => 0,
    };
    4 * (1 << 20) + 64 * len + zstd_window
}

/// Runs `check` on `bytes`, measuring its peak allocation and its time.
fn measured(bytes: &[u8], work: &Work) -> (Outcome, usize, Duration) {
    let base = HELD.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let started = Instant::now();
    let outcome = check(bytes, work);
    let took = started.elapsed();
    let peak = PEAK.with(Cell::get) - base;
    let mode = Mode::of(bytes.first().copied().unwrap_or(b'T'));
    assert!(
        peak <= allocation_bound(bytes.len(), mode),
        "{peak} bytes allocated for an input of {} bytes",
        bytes.len()
    );
    (outcome, peak, took)
}

/// A fresh work directory for the checks, below `base`.
fn work_dir(name: &str, base: PathBuf) -> (tempfile::TempDir, Work) {
    std::fs::create_dir_all(&base).unwrap();
    let dir = tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(base)
        .unwrap();
    let work = Work::new(&dir.path().join("w"));
    (dir, work)
}

// ------------------------------------------------------------ corpus

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus/image")
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Every input of the committed corpus passes the checks, and the corpus
/// holds the seeds as generate.rs builds them today, each getting as far
/// as it should.
#[test]
fn the_corpus_replays_cleanly() {
    let bless = std::env::var_os("HUTCH_BLESS").is_some();
    let (_dir, work) = work_dir("image-corpus-", env!("CARGO_TARGET_TMPDIR").into());
    let seeds = generate::seeds();
    for (name, bytes, expected) in &seeds {
        let path = corpus_dir().join(format!("seed-{name}"));
        if bless {
            std::fs::write(&path, bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == *bytes,
            "{} differs from the seed generate.rs builds: rerun with HUTCH_BLESS=1",
            path.display()
        );
        assert_eq!(check(bytes, &work), *expected, "seed {name}");
    }
    let mut replayed = 0;
    for (name, bytes) in corpus() {
        if std::panic::catch_unwind(|| measured(&bytes, &work)).is_err() {
            panic!("{name}: the finding above");
        }
        replayed += 1;
    }
    assert!(replayed >= seeds.len(), "{replayed} inputs replayed");
}

// ------------------------------------------------------------ the fuzzer

/// splitmix64: a fast, seedable source of the bytes `arbitrary` reads.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let n = chunk.len();
            chunk.copy_from_slice(&self.next().to_le_bytes()[..n]);
        }
    }
}

/// The input being checked, and since when (nanoseconds after the start;
/// 0 between inputs), for the panic hook and the watchdog.
static CURRENT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static STARTED_NS: AtomicU64 = AtomicU64::new(0);
const TOO_SLOW: Duration = Duration::from_secs(10);

fn env_number(key: &str) -> Option<u64> {
    std::env::var(key).ok()?.parse().ok()
}

/// Writes the input being checked where the report says.
fn save_current(why: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/image-fuzz-crashes");
    let bytes = CURRENT.lock().map(|b| b.clone()).unwrap_or_default();
    let name = format!("{why}-{:016x}", fnv1a(&bytes));
    let _ = std::fs::create_dir_all(&dir);
    if std::fs::write(dir.join(&name), &bytes).is_ok() {
        eprintln!("image fuzz: input saved as {}", dir.join(name).display());
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Aborts with the input saved when one input takes too long.
fn watchdog(start: Instant) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let since = STARTED_NS.load(Ordering::Relaxed);
            if since != 0 && start.elapsed().as_nanos() as u64 - since > TOO_SLOW.as_nanos() as u64
            {
                save_current("slow");
                eprintln!("image fuzz: one input took over {TOO_SLOW:?}");
                std::process::abort();
            }
        }
    });
}

#[test]
#[ignore = "the fuzzer: run it outside CI (see the module doc)"]
fn fuzz_the_import() {
    let execs = env_number("HUTCH_FUZZ_EXECS").unwrap_or(100_000);
    let seed = env_number("HUTCH_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let bases: Vec<Vec<u8>> = corpus().into_iter().map(|(_, b)| b).collect();
    let base = std::env::var_os("HUTCH_FUZZ_DIR")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into());
    let (_dir, work) = work_dir("image-fuzz-", base);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        save_current("crash");
        default_hook(info);
    }));
    let start = Instant::now();
    watchdog(start);
    let mut rng = SplitMix(seed);
    let mut choices = vec![0u8; 4096];
    let mut counts = [0u64; 2];
    let mut by_mode = [0u64; 4];
    let (mut max_ratio, mut slowest, mut slowest_input) = (0f64, Duration::ZERO, Vec::new());
    for _ in 0..execs {
        rng.fill(&mut choices);
        let input = generate::generated(&mut Unstructured::new(&choices), &bases).unwrap();
        CURRENT.lock().unwrap().clone_from(&input);
        STARTED_NS.store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let (outcome, peak, took) = measured(&input, &work);
        STARTED_NS.store(0, Ordering::Relaxed);
        counts[outcome as usize] += 1;
        let mode = Mode::of(input.first().copied().unwrap_or(b'T')).byte();
        by_mode[b"TGZA".iter().position(|&m| m == mode).unwrap()] += 1;
        max_ratio = max_ratio.max(peak as f64 / input.len().max(1) as f64);
        if took > slowest {
            (slowest, slowest_input) = (took, input);
        }
    }
    let retimed = (0..3)
        .map(|_| measured(&slowest_input, &work).2)
        .min()
        .unwrap();
    let [refused, accepted] = counts;
    let [tar, gzip, zstd, archive] = by_mode;
    eprintln!(
        "image fuzz: seed {seed}: {execs} executions in {:.1} s (layers: {tar} tar, {gzip} gzip, {zstd} zstd; {archive} archives): refused {refused}, accepted {accepted}; 0 crashes; peak allocation at most {max_ratio:.0} x the input; slowest input {slowest:?} ({} bytes, {retimed:?} when run again)",
        start.elapsed().as_secs_f64(),
        slowest_input.len(),
    );
}
