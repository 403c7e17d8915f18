//! `hutch import firejail` on the whole installed firejail corpus
//! (Debian's `firejail-profiles` in /etc/firejail), for a synthetic user
//! whose home holds every path the corpus names there:
//!
//! - every profile imports, and the result passes hutch's own check (the
//!   planner `hutch check` runs);
//! - the result never grants more than firejail did: in the plan of each
//!   imported profile, no path firejail's blacklists (or firejail itself)
//!   hide is shown anywhere, every bound location is one firejail shows,
//!   and nothing is writable that firejail makes read-only;
//! - the share of directive lines translated as they are or stricter is
//!   measured (printed, and held to at least 95%).
//!
//! Running imported CLI profiles on real input is in the second half.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use common::*;
use hutch::host::Host;
use hutch::import::firejail::{self, Env, Fs, macros, report::Verdict, source::Fate, view::View};
use hutch::plan::MountOp;

const CORPUS: &str = "/etc/firejail";
const PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
const UID: u32 = 1000;

fn corpus() -> Option<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "profile"))
        .collect();
    v.sort();
    (v.len() > 100).then_some(v)
}

/// A home directory holding every literal path the corpus names in it
/// (directories, each with a file inside; `mkfile` targets as files), the
/// XDG user directories and their `user-dirs.dirs`.
fn synthetic_home(dir: &Path) -> PathBuf {
    let home = dir.join("home/user");
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for e in std::fs::read_dir(CORPUS).unwrap().flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        for line in text.lines() {
            let line = firejail::source::normalize(line);
            let line = line.split_once(": ").map_or(line.as_str(), |(c, l)| {
                if c.starts_with('?') { l } else { line.as_str() }
            });
            let Some((k, arg)) = line.split_once(' ') else {
                continue;
            };
            let Some(rel) = arg.strip_prefix("${HOME}/") else {
                continue;
            };
            if rel.contains(['*', '?', '[']) || rel.contains("..") || rel.is_empty() {
                continue;
            }
            // A name with an extension (`user-dirs.dirs`, `x.db`) is made a
            // file, anything else a directory with a file inside.
            let leaf = rel.rsplit('/').next().unwrap_or("");
            let looks_like_file = leaf.get(1..).is_some_and(|t| t.contains('.'));
            match k {
                "mkfile" => files.push(rel.to_string()),
                "mkdir" => dirs.push(rel.to_string()),
                _ if looks_like_file => files.push(rel.to_string()),
                "blacklist" | "noblacklist" | "whitelist" | "nowhitelist" | "whitelist-ro"
                | "read-only" | "read-write" | "noexec" => dirs.push(rel.to_string()),
                _ => {}
            }
        }
    }
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        let p = home.join(d);
        if std::fs::create_dir_all(&p).is_ok() {
            let _ = std::fs::write(p.join("data"), "x");
        }
    }
    for f in &files {
        let p = home.join(f);
        if !p.exists() {
            let _ = std::fs::create_dir_all(p.parent().unwrap());
            let _ = std::fs::write(&p, "x");
        }
    }
    let mut user_dirs = String::new();
    for (key, name) in [
        ("DESKTOP", "Desktop"),
        ("DOWNLOAD", "Downloads"),
        ("DOCUMENTS", "Documents"),
        ("MUSIC", "Music"),
        ("PICTURES", "Pictures"),
        ("VIDEOS", "Videos"),
    ] {
        std::fs::create_dir_all(home.join(name)).unwrap();
        std::fs::write(home.join(name).join("file"), "x").unwrap();
        user_dirs.push_str(&format!("XDG_{key}_DIR=\"$HOME/{name}\"\n"));
    }
    let _ = std::fs::remove_dir_all(home.join(".config/user-dirs.dirs"));
    std::fs::create_dir_all(home.join(".config")).unwrap();
    std::fs::write(home.join(".config/user-dirs.dirs"), user_dirs).unwrap();
    home
}

/// The plan's mounts by destination and by source: what a location shows,
/// and where a host path is shown.
struct Shown<'a> {
    mounts: &'a [MountOp],
    by_dst: HashMap<&'a Path, usize>,
    by_src: HashMap<PathBuf, Vec<usize>>,
}

impl<'a> Shown<'a> {
    fn new(mounts: &'a [MountOp]) -> Shown<'a> {
        let mut by_dst = HashMap::new();
        let mut by_src: HashMap<PathBuf, Vec<usize>> = HashMap::new();
        for (i, m) in mounts.iter().enumerate() {
            by_dst.insert(m.dst(), i);
            if let Some(src) = Self::source(m) {
                by_src.entry(src).or_default().push(i);
            }
        }
        Shown {
            mounts,
            by_dst,
            by_src,
        }
    }

    /// The host path a bind (or /proc: the sandbox's own, with the host's
    /// global entries) shows at its destination.
    fn source(m: &MountOp) -> Option<PathBuf> {
        match m {
            MountOp::Bind { src, .. } => Some(src.clone()),
            MountOp::Proc { dst } if dst == Path::new("/proc") => Some(PathBuf::from("/proc")),
            _ => None,
        }
    }

    /// The host path the plan shows at `loc`: the last mount at or above
    /// it, if that is a bind.
    fn at(&self, loc: &Path) -> Option<PathBuf> {
        let i = loc.ancestors().filter_map(|a| self.by_dst.get(a)).max()?;
        let m = &self.mounts[*i];
        let src = Self::source(m)?;
        let rel = loc.strip_prefix(m.dst()).ok()?;
        Some(if rel.as_os_str().is_empty() {
            src
        } else {
            src.join(rel)
        })
    }

    /// Where the plan shows the host path `h`, if anywhere.
    fn exposed(&self, h: &Path) -> Option<PathBuf> {
        for a in h.ancestors() {
            for i in self.by_src.get(a).into_iter().flatten() {
                let rel = h.strip_prefix(a).unwrap();
                let dst = self.mounts[*i].dst();
                let loc = if rel.as_os_str().is_empty() {
                    dst.to_path_buf()
                } else {
                    dst.join(rel)
                };
                if self.at(&loc).as_deref() == Some(h) {
                    return Some(loc);
                }
            }
        }
        None
    }
}

/// What hutch itself masks in /proc, and entries of single processes.
fn hutch_hides(h: &Path) -> bool {
    if let Ok(rel) = h.strip_prefix("/proc") {
        let first = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        return hutch::plan::mounts::PROC_MASKED.contains(&first.as_str())
            || first == "self"
            || first == "thread-self"
            || first.chars().all(|c| c.is_ascii_digit());
    }
    false
}

/// The never-more-than-firejail invariants on one plan; the violations.
fn violations(view: &View, mounts: &[MountOp], machine_id: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut hidden: Vec<PathBuf> = view.hidden.keys().cloned().collect();
    hidden.extend(view.always_hidden.iter().cloned());
    if machine_id {
        // firejail replaces it with a random one: the host's must not show.
        hidden.extend(
            ["/etc/machine-id", "/var/lib/dbus/machine-id"]
                .iter()
                .filter_map(|p| std::fs::canonicalize(p).ok()),
        );
    }
    let shown = Shown::new(mounts);
    for h in &hidden {
        if hutch_hides(h) {
            continue;
        }
        if let Some(loc) = shown.exposed(h) {
            out.push(format!(
                "{} (hidden by firejail) is shown at {}",
                h.display(),
                loc.display()
            ));
        }
    }
    for m in mounts {
        let MountOp::Bind {
            src, dst, readonly, ..
        } = m
        else {
            continue;
        };
        if src == Path::new("/dev/null") {
            continue;
        }
        if !view.visible(dst) {
            out.push(format!("{} is bound but firejail hides it", dst.display()));
        }
        if src != dst && hidden.iter().any(|h| src.starts_with(h)) {
            out.push(format!(
                "{} shows {}, which firejail hides",
                dst.display(),
                src.display()
            ));
        }
        if !readonly {
            let user_area = dst.starts_with(&view.home)
                || dst.starts_with(&view.runuser)
                || dst.starts_with("/tmp");
            if !user_area || view.readonly(dst).is_some_and(|(ro, _)| ro) {
                out.push(format!(
                    "{} is writable; firejail keeps it read-only",
                    dst.display()
                ));
            }
        }
    }
    out
}

#[derive(Default)]
struct Tally {
    by_verdict: BTreeMap<Verdict, usize>,
    by_directive: BTreeMap<(Verdict, String), usize>,
}

impl Tally {
    fn add(&mut self, v: Verdict, text: &str) {
        *self.by_verdict.entry(v).or_default() += 1;
        let k = text.split(' ').next().unwrap_or("").to_string();
        *self.by_directive.entry((v, k)).or_default() += 1;
    }

    fn get(&self, v: Verdict) -> usize {
        self.by_verdict.get(&v).copied().unwrap_or(0)
    }

    fn line(&self, what: &str) -> (String, f64, f64) {
        let t = self.get(Verdict::Translated);
        let s = self.get(Verdict::Stricter);
        let n = self.get(Verdict::NotTranslatable);
        let r = self.get(Verdict::RootOnly);
        let share = (t + s) as f64 / (t + s + n) as f64 * 100.0;
        let share_all = (t + s) as f64 / (t + s + n + r) as f64 * 100.0;
        (
            format!(
                "{what}: {} lines: {t} translated, {s} stricter, {n} not translatable, {r} root-only\n  translated or stricter: {share:.2}% of the lines hutch could apply (root-only refused and left out), {share_all:.2}% counting root-only as not translated",
                t + s + n + r
            ),
            share,
            share_all,
        )
    }

    fn worst(&self, v: Verdict) -> String {
        let mut items: Vec<(&String, &usize)> = self
            .by_directive
            .iter()
            .filter(|((vv, _), _)| *vv == v)
            .map(|((_, k), n)| (k, n))
            .collect();
        items.sort_by(|a, b| b.1.cmp(a.1));
        items
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What importing a share of the corpus found.
#[derive(Default)]
struct Results {
    failures: Vec<String>,
    firejail_refuses: Vec<String>,
    accepted: usize,
    aliases: usize,
    effective: Tally,
    /// The worst verdict each line of the corpus files gets in any profile.
    physical: BTreeMap<(String, usize), (Verdict, String)>,
    seconds: [f64; 3],
}

impl Results {
    fn merge(&mut self, o: Results) {
        self.failures.extend(o.failures);
        self.firejail_refuses.extend(o.firejail_refuses);
        self.accepted += o.accepted;
        self.aliases += o.aliases;
        for (k, n) in o.effective.by_verdict {
            *self.effective.by_verdict.entry(k).or_default() += n;
        }
        for (k, n) in o.effective.by_directive {
            *self.effective.by_directive.entry(k).or_default() += n;
        }
        for (k, (v, t)) in o.physical {
            let e = self.physical.entry(k).or_insert((v, t));
            e.0 = e.0.max(v);
        }
        for i in 0..3 {
            self.seconds[i] += o.seconds[i];
        }
    }
}

/// Imports, checks and verifies `profiles` for the user whose home is
/// `home`.
fn import_all(profiles: &[PathBuf], home: &Path) -> Results {
    let env = Env::new(home.to_path_buf(), UID, PATH, Path::new(CORPUS));
    let host = Host::fixed(
        UID,
        UID,
        &[
            ("HOME", home.to_str().unwrap()),
            ("PATH", PATH),
            ("USER", "user"),
        ],
        home.to_str().unwrap(),
    );
    let fs = Fs::new();
    let mut r = Results::default();
    for path in profiles {
        let t0 = std::time::Instant::now();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let imported = match firejail::import(path, &env, &fs) {
            Ok(i) => i,
            // A profile firejail itself cannot read (Debian ships one whose
            // include is missing) is refused, as firejail refuses it.
            Err(e @ firejail::source::ReadError::Include { .. }) => {
                r.firejail_refuses.push(format!("{name}: {e}"));
                continue;
            }
            Err(e) => {
                r.failures.push(format!("{name}: cannot import: {e}"));
                continue;
            }
        };
        let text = imported.draft.render(&|p| macros::to_hutch(p, &env));
        let t1 = std::time::Instant::now();
        let plan = match hutch::import::command::check(&text, &name, &host) {
            Ok(p) => p,
            Err(e) => {
                r.failures
                    .push(format!("{name}: hutch check refuses it:\n{}", e.0.render()));
                continue;
            }
        };
        r.accepted += 1;
        let t2 = std::time::Instant::now();
        let ops: Vec<MountOp> = plan.mounts.iter().map(|m| m.op.clone()).collect();
        let machine_id = imported
            .profile
            .directives
            .iter()
            .any(|d| d.text == "machine-id");
        for v in violations(&imported.view, &ops, machine_id) {
            r.failures.push(format!("{name}: {v}"));
        }
        r.seconds[0] += (t1 - t0).as_secs_f64();
        r.seconds[1] += (t2 - t1).as_secs_f64();
        r.seconds[2] += t2.elapsed().as_secs_f64();
        // A profile whose own file has no directive only redirects to
        // another: its lines are counted with that one.
        let own = imported
            .profile
            .lines
            .iter()
            .any(|l| *l.origin.file == *path.as_path() && matches!(l.fate, Fate::Active(_)));
        if !own {
            r.aliases += 1;
            continue;
        }
        for l in &imported.report.lines {
            if l.verdict == Verdict::Composition {
                continue;
            }
            r.effective.add(l.verdict, &l.text);
            let e = r
                .physical
                .entry((l.file.clone(), l.line))
                .or_insert((l.verdict, l.text.clone()));
            e.0 = e.0.max(l.verdict);
        }
    }
    r
}

#[test]
fn the_whole_corpus_imports_checks_and_never_grants_more() {
    let Some(profiles) = corpus() else {
        skip("no firejail profiles in /etc/firejail (install firejail-profiles)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let home = synthetic_home(dir.path());
    let started = std::time::Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let chunk = profiles.len().div_ceil(threads);
    let mut r = Results::default();
    std::thread::scope(|scope| {
        let handles: Vec<_> = profiles
            .chunks(chunk)
            .map(|c| scope.spawn(|| import_all(c, &home)))
            .collect();
        for h in handles {
            r.merge(h.join().unwrap());
        }
    });
    let mut per_line = Tally::default();
    for (v, text) in r.physical.values() {
        per_line.add(*v, text);
    }
    let (eff_text, eff_share, _) = r
        .effective
        .line("Directive lines in force, summed over the profiles");
    let (phys_text, _, _) = per_line.line("Distinct lines of the corpus files");
    let [t_import, t_check, t_verify] = r.seconds;
    eprintln!(
        "firejail corpus ({CORPUS}): {} profiles, {} of them only redirect to another\n\
         firejail itself refuses {}: {}\n\
         hutch check accepts {} of the {} imported ({:.1} s on {threads} threads; in all, import {t_import:.1} s, check {t_check:.1} s, invariants {t_verify:.1} s)\n{eff_text}\n{phys_text}\n\
         not translatable: {}\nroot-only: {}",
        profiles.len(),
        r.aliases,
        r.firejail_refuses.len(),
        r.firejail_refuses.join("; "),
        r.accepted,
        profiles.len() - r.firejail_refuses.len(),
        started.elapsed().as_secs_f64(),
        per_line.worst(Verdict::NotTranslatable),
        per_line.worst(Verdict::RootOnly),
    );
    assert!(
        r.failures.is_empty(),
        "{} problems:\n{}",
        r.failures.len(),
        r.failures.join("\n")
    );
    assert_eq!(r.accepted + r.firejail_refuses.len(), profiles.len());
    assert!(r.firejail_refuses.len() <= 1, "{:?}", r.firejail_refuses);
    assert!(eff_share >= 95.0, "{eff_share:.2}% < 95%");
}

// ---- imported profiles, run on real input --------------------------------

/// The test user's world: a Downloads directory (an XDG user directory,
/// which the imported profiles of firejail's archivers bind) with a text
/// file and archives of it made on the host, and a secret in ~/.ssh.
fn user_world() -> (Scratch, PathBuf) {
    let s = Scratch::new();
    let dl = s.home().join("Downloads");
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::write(dl.join("data.txt"), "hello from the host\n".repeat(50)).unwrap();
    std::fs::create_dir_all(s.home().join(".ssh")).unwrap();
    std::fs::write(s.home().join(".ssh/id_ed25519"), "SECRET KEY\n").unwrap();
    for (tool, args) in [
        ("zip", vec!["-q", "data.zip", "data.txt"]),
        ("tar", vec!["-cf", "data.tar", "data.txt"]),
        (
            "sh",
            vec!["-c", "echo data.txt | cpio -o --quiet > data.cpio"],
        ),
        ("ar", vec!["rc", "data.a", "data.txt"]),
    ] {
        let ok = std::process::Command::new(tool)
            .args(&args)
            .current_dir(&dl)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{tool} {args:?} failed on the host");
    }
    s.chown_all();
    (s, dl)
}

/// `hutch import firejail NAME -o NAME.toml` as the test user, checked.
fn import_as_user(s: &Scratch, name: &str) -> PathBuf {
    let out = s.path().join(format!("{name}.toml"));
    let o = s
        .hutch(&["import", "firejail", name, "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "import {name}: {}", stderr(&o));
    ok(&s.hutch(&["check", out.to_str().unwrap()]).output().unwrap());
    out
}

fn run_in(s: &Scratch, profile: &Path, command: &[&str]) -> std::process::Output {
    s.run(&["--profile", profile.to_str().unwrap()], command)
}

/// Tools whose Debian package is small and which firejail has a profile
/// for; each runs under its imported profile on a file of the test user's.
/// (Not `strings` and the like: their profiles have `private-tmp`, and the
/// test user's home is in /tmp, where firejail would hide it too.)
#[test]
fn imported_cli_profiles_run_their_program_on_real_input() {
    if corpus().is_none() {
        skip("no firejail profiles in /etc/firejail (install firejail-profiles)");
        return;
    }
    let (s, dl) = user_world();
    let d = dl.to_str().unwrap();
    let text = std::fs::read_to_string(dl.join("data.txt")).unwrap();
    // (profile, command, what must hold afterwards)
    type Check = Box<dyn Fn(&std::process::Output) -> Result<(), String>>;
    let exists = |p: String| -> Check {
        Box::new(move |_| {
            std::fs::metadata(&p)
                .map(|_| ())
                .map_err(|e| format!("{p}: {e}"))
        })
    };
    let prints = |needle: &'static str| -> Check {
        Box::new(move |o| {
            let out = String::from_utf8_lossy(&o.stdout);
            out.contains(needle)
                .then_some(())
                .ok_or(format!("{needle:?} not in {out:?}"))
        })
    };
    let cases: Vec<(&str, Vec<String>, Check)> = vec![
        (
            "gzip",
            vec!["gzip".into(), "-k".into(), format!("{d}/data.txt")],
            exists(format!("{d}/data.txt.gz")),
        ),
        (
            "xz",
            vec!["xz".into(), "-k".into(), format!("{d}/data.txt")],
            exists(format!("{d}/data.txt.xz")),
        ),
        (
            "bzip2",
            vec!["bzip2".into(), "-k".into(), format!("{d}/data.txt")],
            exists(format!("{d}/data.txt.bz2")),
        ),
        (
            "zstd",
            vec![
                "zstd".into(),
                "-q".into(),
                format!("{d}/data.txt"),
                "-o".into(),
                format!("{d}/data.txt.zst"),
            ],
            exists(format!("{d}/data.txt.zst")),
        ),
        (
            "unzip",
            vec![
                "unzip".into(),
                "-o".into(),
                "-q".into(),
                format!("{d}/data.zip"),
                "-d".into(),
                format!("{d}/unzipped"),
            ],
            exists(format!("{d}/unzipped/data.txt")),
        ),
        (
            "tar",
            vec!["tar".into(), "-tf".into(), format!("{d}/data.tar")],
            prints("data.txt"),
        ),
        (
            "bsdtar",
            vec!["bsdtar".into(), "-tf".into(), format!("{d}/data.tar")],
            prints("data.txt"),
        ),
        (
            "cpio",
            vec![
                "cpio".into(),
                "-it".into(),
                "--quiet".into(),
                "-F".into(),
                format!("{d}/data.cpio"),
            ],
            prints("data.txt"),
        ),
        (
            "file",
            vec!["file".into(), format!("{d}/data.txt")],
            prints("ASCII text"),
        ),
        (
            "ar",
            vec!["ar".into(), "t".into(), format!("{d}/data.a")],
            prints("data.txt"),
        ),
    ];
    let mut ran = 0;
    for (name, command, check) in cases {
        let Some(program) = which(&command[0]) else {
            skip(&format!("{} is not installed", command[0]));
            continue;
        };
        let _ = program;
        let profile = import_as_user(&s, name);
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let o = run_in(&s, &profile, &args);
        assert!(
            o.status.success(),
            "{name} under its imported profile: {}\n{}",
            o.status,
            stderr(&o)
        );
        check(&o).unwrap_or_else(|e| panic!("{name}: {e}"));
        ran += 1;
    }
    assert!(ran >= 8, "only {ran} programs ran");
    // What gzip wrote is the input, compressed.
    let back = std::process::Command::new("gzip")
        .args(["-dc", &format!("{d}/data.txt.gz")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&back.stdout), text);
}

fn which(program: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
}

/// What firejail's archiver profiles hide stays hidden under the imported
/// ones, and is there under hutch's `cli` profile (the negative control):
/// a shell (disable-shell.inc) and the user's SSH key (the home directory
/// holds only what the profile names).
#[test]
fn imported_profiles_hide_what_firejail_hides() {
    if corpus().is_none() {
        skip("no firejail profiles in /etc/firejail (install firejail-profiles)");
        return;
    }
    let (s, dl) = user_world();
    let key = s.home().join(".ssh/id_ed25519");
    let gzip = import_as_user(&s, "gzip");
    // The shell: covered by an empty file, so exec fails (126).
    let o = run_in(&s, &gzip, &["sh", "-c", "echo reached"]);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    let o = s.run(&["--profile", "cli"], &["sh", "-c", "echo reached"]);
    assert_eq!(
        stdout(&o).trim(),
        "reached",
        "negative control: {}",
        stderr(&o)
    );
    // The key: gzip cannot read it under the imported profile.
    let o = run_in(&s, &gzip, &["gzip", "-c", key.to_str().unwrap()]);
    assert!(!o.status.success(), "gzip read the key: {}", stdout(&o));
    // Negative control: a profile that binds the home directory shows it.
    let home_rw = s.write(
        "home.toml",
        &format!(
            "version = 1\nextends = [\"base/system\"]\n[[mount]]\ntype = \"ro-bind\"\nsrc = \"{h}\"\ndst = \"{h}\"\n",
            h = s.home().display()
        ),
    );
    let o = run_in(&s, &home_rw, &["gzip", "-c", key.to_str().unwrap()]);
    assert!(o.status.success() && !o.stdout.is_empty(), "{}", stderr(&o));
    // The downloads the profile does bind are writable.
    let o = run_in(
        &s,
        &gzip,
        &["gzip", "-kf", dl.join("data.txt").to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

// ---- the view against firejail itself -------------------------------------

/// A firejail sandbox of `profile` running `sleep`, as root (firejail
/// refuses `nobody`); its files are read through /proc/PID/root.
struct Firejail {
    child: std::process::Child,
    sleeper: u32,
}

impl Drop for Firejail {
    fn drop(&mut self) {
        // Only the sleeper found (never pid 0: that would be our group).
        if self.sleeper > 1 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.sleeper as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn firejail_sandbox(profile: &Path, tag: u64) -> Result<Firejail, String> {
    let child = std::process::Command::new("firejail")
        .arg("--quiet")
        .arg(format!("--profile={}", profile.display()))
        .args(["--", "sleep", &tag.to_string()])
        .env("PATH", PATH)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run firejail: {e}"))?;
    let mut fj = Firejail { child, sleeper: 0 };
    let wanted = format!("sleep\0{tag}\0");
    for _ in 0..200 {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted.as_bytes()) {
                fj.sleeper = pid;
                return Ok(fj);
            }
        }
        if let Ok(Some(status)) = fj.child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            let _ = fj.child.stderr.take().unwrap().read_to_string(&mut err);
            return Err(format!("firejail exited ({status}): {err}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err("firejail's sandbox did not start in 10 s".into())
}

/// The first bytes of a file, if it can be read.
fn head(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// `View::visible` is firejail's behaviour, not a model of it: for
/// profiles written to exercise each rule (noblacklist before and after,
/// globs matching dotfiles, ignore, whitelist with nowhitelist and globs,
/// blacklists inside whitelists, private-etc, private-bin) and a sample of
/// the corpus, every probe file is shown by firejail itself (same content
/// through /proc/PID/root of its sandbox) exactly when the view says so.
/// Root only: firejail is setuid and refuses `nobody`.
#[test]
fn the_view_agrees_with_firejail_itself() {
    if !is_root() {
        skip("firejail is run as root here (it refuses the `nobody` test user)");
        return;
    }
    let Some(profiles) = corpus() else {
        skip("no firejail profiles in /etc/firejail (install firejail-profiles)");
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("fjview")
        .tempdir_in("/tmp")
        .unwrap();
    let t = dir.path().canonicalize().unwrap();
    let r = t.display().to_string();
    let tree = [
        "a/keep1",
        "a/drop",
        "b/x",
        "b/y",
        "c/y",
        "d/.hidden1",
        "d/shown",
        "w/yes/ok",
        "w/yes/secret",
        "w/no/f",
        "w/glob1/f",
        "w/other/f",
        "w/link-target/f",
    ];
    for f in tree {
        let p = t.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("content of {f}\n")).unwrap();
    }
    let written: Vec<(String, String)> = vec![
        (
            "rules".into(),
            format!(
                "noblacklist {r}/a/keep*\nblacklist {r}/a/*\nblacklist {r}/b/x\nnoblacklist {r}/b/x\n\
                 ignore blacklist {r}/c\nblacklist {r}/c/y\nblacklist {r}/d/.hidden*\n"
            ),
        ),
        (
            "whitelist".into(),
            format!(
                "nowhitelist {r}/w/no\nwhitelist {r}/w/yes\nwhitelist {r}/w/no\nwhitelist {r}/w/glob*\n\
                 blacklist {r}/w/yes/secret\n"
            ),
        ),
        (
            "private".into(),
            "private-etc hosts,passwd\nprivate-bin ls,sh,sleep,bash\n".into(),
        ),
    ];
    let mut cases: Vec<PathBuf> = Vec::new();
    for (name, text) in &written {
        let p = t.join(format!("{name}.profile"));
        std::fs::write(&p, text).unwrap();
        cases.push(p);
    }
    let sample = [
        "gzip",
        "file",
        "unzip",
        "pandoc",
        "firefox",
        "vlc",
        "gimp",
        "transmission-gtk",
    ];
    cases.extend(
        profiles
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                i % 60 == 0
                    || sample
                        .iter()
                        .any(|s| p.file_stem().is_some_and(|f| f == *s))
            })
            .map(|(_, p)| p.clone()),
    );
    let system = [
        "/usr/bin/gcc",
        "/usr/bin/python3",
        "/usr/bin/perl",
        "/usr/bin/dash",
        "/usr/bin/bash",
        "/usr/bin/ls",
        "/usr/bin/cat",
        "/usr/bin/unzip",
        "/usr/bin/sudo",
        "/usr/bin/openssl",
        "/usr/include/stdio.h",
        "/etc/hosts",
        "/etc/passwd",
        "/etc/group",
        "/etc/fstab",
        "/var/lib/dpkg/status",
        "/usr/share/misc/magic.mgc",
        "/usr/lib/os-release",
        "/usr/share/zoneinfo/UTC",
        "/usr/share/doc/bash/copyright",
    ];
    let mut probes: Vec<PathBuf> = system
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    probes.extend(tree.iter().map(|f| t.join(f)));
    let fs = Fs::new();
    let env = Env::new(PathBuf::from("/root"), 0, PATH, Path::new(CORPUS));
    let mut mismatches = Vec::new();
    let (mut compared, mut hidden) = (0, 0);
    for (n, case) in cases.iter().enumerate() {
        // As root, firejail starts the program through root's shell: keep the
        // shells, and add sleep to a private-bin list (read the same way by
        // both sides).
        let wrapper = t.join(format!("wrap{n}.profile"));
        let private_bin = firejail::source::read(case, &env, &fs)
            .map(|p| p.directives.iter().any(|d| d.split().0 == "private-bin"))
            .unwrap_or(false);
        std::fs::write(
            &wrapper,
            format!(
                // The D-Bus filters need a session bus (firejail refuses to
                // start without one) and do not change the file view.
                "ignore include disable-shell.inc\nignore dbus-user filter\nignore dbus-system filter\ninclude {}\n{}",
                case.display(),
                if private_bin {
                    "private-bin sleep,bash\n"
                } else {
                    ""
                }
            ),
        )
        .unwrap();
        let Ok(profile) = firejail::source::read(&wrapper, &env, &fs) else {
            continue; // firejail refuses it too
        };
        let view = View::compute(&profile, &env, &fs);
        let sandbox = match firejail_sandbox(&wrapper, 7_000_000 + n as u64) {
            Ok(s) => s,
            Err(e) if n == 0 => {
                skip(&format!("firejail cannot run here: {e}"));
                return;
            }
            Err(e) => panic!("{}: {e}", case.display()),
        };
        let root = PathBuf::from(format!("/proc/{}/root", sandbox.sleeper));
        // `hostname` makes firejail rewrite /etc/hosts and /etc/hostname:
        // shown, with other contents.
        let hostname = profile.directives.iter().any(|d| d.split().0 == "hostname");
        for probe in &probes {
            if hostname && probe.to_string_lossy().starts_with("/etc/host") {
                continue;
            }
            let inside = head(&root.join(probe.strip_prefix("/").unwrap()));
            let shown = inside.is_some() && inside == head(probe);
            hidden += usize::from(!shown);
            if shown != view.visible(probe) {
                mismatches.push(format!(
                    "{}: {}: firejail {}, the view {}",
                    case.display(),
                    probe.display(),
                    if shown { "shows it" } else { "hides it" },
                    if shown { "hides it" } else { "shows it" },
                ));
            }
            compared += 1;
        }
        drop(sandbox);
    }
    eprintln!(
        "the view against firejail: {compared} probes in {} profiles ({hidden} hidden by firejail), {} mismatches",
        cases.len(),
        mismatches.len()
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // Both answers occur, many times: the comparison cannot pass vacuously.
    assert!(
        hidden > 100 && compared - hidden > 100,
        "{hidden} of {compared}"
    );
}

// ---- the command line ---------------------------------------------------

/// Errors are one line and write nothing; --report gives a verdict for
/// every line, with its file and line number.
#[test]
fn the_command_reports_each_line_and_fails_cleanly() {
    let s = Scratch::new();
    let out = s.path().join("out.toml");
    let o = s
        .hutch(&[
            "import",
            "firejail",
            "no-such-profile-x",
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    fails_with(&o, 125, "no firejail profile `no-such-profile-x`");
    assert!(!out.exists());
    let broken = s.write("broken.profile", "include no-such-file.inc\n");
    let o = s
        .hutch(&[
            "import",
            "firejail",
            broken.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    fails_with(&o, 125, "broken.profile:1: cannot read no-such-file.inc");
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(!out.exists());
    let mine = s.write(
        "mine.profile",
        "# mine\ninclude mine.local\nnet none\nnetfilter\nprotocol unix\ndbus-user filter\nblacklist ${HOME}/.ssh\nnosound\n",
    );
    let o = s
        .hutch(&["import", "firejail", mine.to_str().unwrap(), "--report"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    for (line, verdict) in [
        ("mine.profile:2", "composition"),
        ("mine.profile:3", "translated"),
        ("mine.profile:4", "root-only"),
        ("mine.profile:5", "not translatable"),
        ("mine.profile:6", "stricter"),
        ("mine.profile:7", "translated"),
    ] {
        let at = err
            .find(line)
            .unwrap_or_else(|| panic!("{line} missing:\n{err}"));
        let next = &err[at..];
        let shown = next.lines().nth(1).unwrap_or("");
        assert!(shown.contains(&format!("→ {verdict}")), "{line}: {shown}");
    }
    assert!(
        err.contains(
            "6 directive lines: 3 translated, 1 stricter, 1 not translatable, 1 root-only"
        ),
        "{err}"
    );
    // The profile went to stdout and passes the check.
    let written = s.write("mine.toml", &stdout(&o));
    ok(&s
        .hutch(&["check", written.to_str().unwrap()])
        .output()
        .unwrap());
}
