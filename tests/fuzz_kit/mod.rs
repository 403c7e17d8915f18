//! What the three fuzz test binaries (dbus_fuzz, image_fuzz, profile_fuzz)
//! share: an allocator that measures an input's peak allocation, the
//! committed corpus and its seeds, and the fuzzer's loop machinery (a
//! seedable byte source, the input being checked saved on a panic or when
//! it takes too long). Each binary keeps what is its own: the checks, the
//! generator and the allocation bound.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    // Memory freed on a thread other than the one that allocated it.
    let _ = HELD.try_with(|h| h.set(h.get().saturating_sub(n)));
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f`, returning what it returned, the most it allocated at once
/// on this thread beyond what was held before, and its time.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, Duration) {
    let base = HELD.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let started = Instant::now();
    let value = f();
    let took = started.elapsed();
    (value, PEAK.with(Cell::get) - base, took)
}

// ------------------------------------------------------------ corpus

pub fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// tests/fuzz-corpus/NAME.
pub fn corpus_dir(name: &str) -> PathBuf {
    manifest().join("tests/fuzz-corpus").join(name)
}

/// The files of `dir` (not below it) whose name passes `keep`, sorted.
pub fn files_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_string();
            keep(&name).then(|| (name, std::fs::read(&path).unwrap()))
        })
        .collect();
    files.sort();
    files
}

/// The seed `name` is committed in `dir` as `seed-NAME` exactly as the
/// generator builds it today (`HUTCH_BLESS=1` writes it first).
#[track_caller]
pub fn assert_seed_committed(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(format!("seed-{name}"));
    if std::env::var_os("HUTCH_BLESS").is_some() {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == bytes,
        "{} differs from the seed generate.rs builds: rerun with HUTCH_BLESS=1",
        path.display()
    );
}

// ------------------------------------------------------------ the fuzzer

/// splitmix64: a fast, seedable source of the bytes `arbitrary` reads.
pub struct SplitMix(pub u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
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

/// Writes the input being checked to target/NAME-fuzz-crashes/.
fn save_current(fuzzer: &str, why: &str) {
    let dir = manifest().join(format!("target/{fuzzer}-fuzz-crashes"));
    let bytes = CURRENT.lock().map(|b| b.clone()).unwrap_or_default();
    let name = format!("{why}-{:016x}", fnv1a(&bytes));
    let _ = std::fs::create_dir_all(&dir);
    if std::fs::write(dir.join(&name), &bytes).is_ok() {
        eprintln!("{fuzzer} fuzz: input saved as {}", dir.join(name).display());
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// One fuzzing session: how many executions from which seed
/// (`HUTCH_FUZZ_EXECS`, `HUTCH_FUZZ_SEED`), with the input being checked
/// saved when it panics or takes over 10 s, and what was seen so far.
pub struct Fuzzer {
    pub name: &'static str,
    pub execs: u64,
    pub seed: u64,
    start: Instant,
    max_ratio: f64,
    slowest: Duration,
    slowest_input: Vec<u8>,
}

impl Fuzzer {
    /// Installs the panic hook and the watchdog.
    pub fn start(name: &'static str) -> Fuzzer {
        let execs = env_number("HUTCH_FUZZ_EXECS").unwrap_or(100_000);
        let seed = env_number("HUTCH_FUZZ_SEED").unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            save_current(name, "crash");
            default_hook(info);
        }));
        let start = Instant::now();
        watchdog(name, start);
        Fuzzer {
            name,
            execs,
            seed,
            start,
            max_ratio: 0.0,
            slowest: Duration::ZERO,
            slowest_input: Vec::new(),
        }
    }

    /// Runs `check` (which returns its result, peak allocation and time)
    /// on `input`, keeping the input where a panic or the watchdog can
    /// save it, and the input's ratio and time.
    pub fn check<T>(
        &mut self,
        input: Vec<u8>,
        check: impl FnOnce(&[u8]) -> (T, usize, Duration),
    ) -> T {
        CURRENT.lock().unwrap().clone_from(&input);
        STARTED_NS.store(self.start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let (outcome, peak, took) = check(&input);
        STARTED_NS.store(0, Ordering::Relaxed);
        self.max_ratio = self.max_ratio.max(peak as f64 / input.len().max(1) as f64);
        if took > self.slowest {
            (self.slowest, self.slowest_input) = (took, input);
        }
        outcome
    }

    /// The summary line's common part: executions, time, peak ratio and
    /// the slowest input, timed once more by `retime` (the least of a few
    /// runs, to tell a slow input from a preempted one).
    pub fn summary(&self, counts: &str, retime: impl Fn(&[u8]) -> Duration) -> String {
        let retimed = (0..3).map(|_| retime(&self.slowest_input)).min().unwrap();
        format!(
            "{} fuzz: seed {}: {} executions in {:.1} s: {counts}; 0 crashes; peak allocation at most {:.0} x the input; slowest input {:?} ({} bytes, {retimed:?} when run again)",
            self.name,
            self.seed,
            self.execs,
            self.start.elapsed().as_secs_f64(),
            self.max_ratio,
            self.slowest,
            self.slowest_input.len(),
        )
    }
}

/// Aborts with the input saved when one input takes too long.
fn watchdog(name: &'static str, start: Instant) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let since = STARTED_NS.load(Ordering::Relaxed);
            if since != 0 && start.elapsed().as_nanos() as u64 - since > TOO_SLOW.as_nanos() as u64
            {
                save_current(name, "slow");
                eprintln!("{name} fuzz: one input took over {TOO_SLOW:?}");
                std::process::abort();
            }
        }
    });
}
