//! The profile loader and the planner against hostile profiles.
//!
//! `cargo test` replays, through the checks of tests/profile_fuzz/check.rs,
//! every shipped profile, every file of tests/bad-profiles/ and the
//! committed corpus (tests/fuzz-corpus/profile/: the composed seeds of
//! tests/profile_fuzz/generate.rs, inputs that once failed, and inputs a
//! coverage-guided fuzzer kept). The fuzzer itself runs outside CI, on the
//! stable toolchain:
//!
//! ```sh
//! TMPDIR=/dev/shm HUTCH_FUZZ_EXECS=1000000 cargo test --release --test profile_fuzz -- --ignored --nocapture
//! ```
//!
//! (Every execution writes the input's files into the synthetic machine,
//! which lives in `$TMPDIR`: on a busy disk, a tmpfs is five times faster.)
//!
//! It feeds profiles generated key by key, mutations of real ones (lines,
//! values, bytes, long and deeply nested values) and several of them as
//! the files of one profile (extends, override) to the loader and the
//! planner, and fails on a panic, a broken check, an allocation out of
//! proportion to the input, or an input that takes over 10 s; the input is
//! then written to `target/profile-fuzz-crashes/`, to be added to the
//! corpus once fixed. fuzz/afl/ runs the same checks under AFL++.
//! `HUTCH_BLESS=1 cargo test --test profile_fuzz` rewrites the seed files.

#[path = "profile_fuzz/check.rs"]
mod check;
#[path = "profile_fuzz/generate.rs"]
mod generate;
#[path = "synthetic/mod.rs"]
mod synthetic;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use check::{Outcome, check};
use synthetic::Machine;

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

/// The most loading and planning a profile of `len` bytes may cost: a
/// fixed part (the built-in profiles it may extend, the default seccomp
/// rules, the plan and its JSON twice) and a part in proportion to the
/// text (its copies, the parsed values with their spans, the messages
/// that quote it).
fn allocation_bound(len: usize) -> usize {
    64 * len + (4 << 20)
}

/// Runs `check` on `bytes`, measuring its peak allocation and its time.
fn measured(machine: &Machine, bytes: &[u8]) -> (Outcome, usize, Duration) {
    let base = HELD.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let started = Instant::now();
    let outcome = check(machine, bytes);
    let took = started.elapsed();
    let peak = PEAK.with(Cell::get) - base;
    assert!(
        peak <= allocation_bound(bytes.len()),
        "{peak} bytes allocated to load and plan {} bytes",
        bytes.len()
    );
    (outcome, peak, took)
}

// ------------------------------------------------------------ corpus

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn corpus_dir() -> PathBuf {
    manifest().join("tests/fuzz-corpus/profile")
}

/// The files of `dir` (not below it) whose name passes `keep`, sorted.
fn files_in(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<(String, Vec<u8>)> {
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

/// The committed corpus, the shipped profiles and tests/bad-profiles/.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let toml = |n: &str| n.ends_with(".toml");
    let mut all = files_in(&corpus_dir(), |_| true);
    all.extend(files_in(&manifest().join("profiles"), toml));
    all.extend(files_in(&manifest().join("profiles/base"), toml));
    all.extend(files_in(&manifest().join("tests/bad-profiles"), toml));
    all
}

/// Every input of the corpus passes the checks; the corpus holds the seeds
/// as generate.rs builds them today; the shipped profiles plan, and the
/// bad profiles are refused.
#[test]
fn the_corpus_replays_cleanly() {
    let machine = Machine::new();
    let bless = std::env::var_os("HUTCH_BLESS").is_some();
    for (name, bytes) in generate::seeds() {
        let path = corpus_dir().join(format!("seed-{name}"));
        if bless {
            std::fs::create_dir_all(corpus_dir()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == bytes,
            "{} differs from the seed generate.rs builds: rerun with HUTCH_BLESS=1",
            path.display()
        );
    }
    let mut outcomes = Vec::new();
    for (name, bytes) in corpus() {
        match std::panic::catch_unwind(|| measured(&machine, &bytes)) {
            Ok((outcome, _, _)) => outcomes.push((name, outcome)),
            Err(_) => panic!("{name}: the finding above"),
        }
    }
    let outcome_of = |n: &str| outcomes.iter().find(|(name, _)| name == n).map(|o| o.1);
    for shipped in ["default.toml", "cli.toml", "container.toml", "system.toml"] {
        assert_eq!(outcome_of(shipped), Some(Outcome::Planned), "{shipped}");
    }
    let bad = files_in(&manifest().join("tests/bad-profiles"), |n| {
        n.ends_with(".toml")
    });
    // Nearly all are refused here too (a few need the real machine: the
    // image store, the caller's own runtime directory).
    let refused = bad
        .iter()
        .filter(|(n, _)| outcome_of(n) != Some(Outcome::Planned))
        .count();
    assert!(
        refused * 10 >= bad.len() * 9,
        "only {refused} of {} bad profiles refused",
        bad.len()
    );
    let planned = outcomes
        .iter()
        .filter(|(n, o)| n.starts_with("seed-") && *o == Outcome::Planned)
        .count();
    assert!(planned >= 4, "only {planned} composed seeds plan");
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
    let dir = manifest().join("target/profile-fuzz-crashes");
    let bytes = CURRENT.lock().map(|b| b.clone()).unwrap_or_default();
    let name = format!("{why}-{:016x}", fnv1a(&bytes));
    let _ = std::fs::create_dir_all(&dir);
    if std::fs::write(dir.join(&name), &bytes).is_ok() {
        eprintln!("profile fuzz: input saved as {}", dir.join(name).display());
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
                eprintln!("profile fuzz: one input took over {TOO_SLOW:?}");
                std::process::abort();
            }
        }
    });
}

#[test]
#[ignore = "the fuzzer: run it outside CI (see the module doc)"]
fn fuzz_the_loader_and_planner() {
    let execs = env_number("HUTCH_FUZZ_EXECS").unwrap_or(100_000);
    let seed = env_number("HUTCH_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let machine = Machine::new();
    let bases: Vec<Vec<u8>> = corpus().into_iter().map(|(_, b)| b).collect();
    // Those that plan: mutations of them reach the planner more often.
    let good: Vec<Vec<u8>> = bases
        .iter()
        .filter(|b| check(&machine, b) == Outcome::Planned)
        .cloned()
        .collect();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        save_current("crash");
        default_hook(info);
    }));
    let start = Instant::now();
    watchdog(start);
    let mut rng = SplitMix(seed);
    let mut choices = vec![0u8; 4096];
    let mut counts = [0u64; 3];
    let (mut max_ratio, mut slowest, mut slowest_input) = (0f64, Duration::ZERO, Vec::new());
    for _ in 0..execs {
        rng.fill(&mut choices);
        let input = generate::input(&mut Unstructured::new(&choices), &good, &bases).unwrap();
        CURRENT.lock().unwrap().clone_from(&input);
        STARTED_NS.store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let (outcome, peak, took) = measured(&machine, &input);
        STARTED_NS.store(0, Ordering::Relaxed);
        counts[outcome as usize] += 1;
        max_ratio = max_ratio.max(peak as f64 / input.len().max(1) as f64);
        if took > slowest {
            (slowest, slowest_input) = (took, input);
        }
    }
    // Once more, to tell a slow input from a preempted one.
    let retimed = (0..5)
        .map(|_| measured(&machine, &slowest_input).2)
        .min()
        .unwrap();
    let [refused, unplanned, planned] = counts;
    eprintln!(
        "profile fuzz: seed {seed}: {execs} executions in {:.1} s: refused {refused}, loaded but not planned {unplanned}, planned {planned}; 0 crashes; peak allocation at most {max_ratio:.0} x the input; slowest input {slowest:?} ({} bytes, {retimed:?} when run again)",
        start.elapsed().as_secs_f64(),
        slowest_input.len(),
    );
}
