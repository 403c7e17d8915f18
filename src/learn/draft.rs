//! From what a run was seen to do to the tightest profile that lets it run
//! again: pure, on the journal, the base profile's plan and the host's
//! directories (tested without a sandbox).
//!
//! - A path the base already shows (a bind at its own path: the system
//!   directories, the working directory) needs nothing; these are listed,
//!   grouped by top-level directory, in a comment.
//! - A path read, executed or connected to (a unix socket) that the base
//!   does not show and that exists on the host gets a read-only bind; more
//!   than [`DIR_THRESHOLD`] files read in one directory bind the directory;
//!   a name that looks made for one run (`build-3f9a1c`, `tmp.XyZ12a`)
//!   stands for its directory.
//! - A write under the working directory makes writable the shallowest
//!   directory the run did not make itself: the working directory (then
//!   `workdir = "read-write"`) or a directory in it.
//! - Anything else written lands in a private directory of the base (/tmp)
//!   or was refused while learning (the rest of the host is read-only
//!   then): said in a comment, not granted.
//! - Paths are written with the variables profiles take: `${CWD}`,
//!   `${XDG_RUNTIME_DIR}`, `${XDG_CONFIG_HOME}` and the other XDG base
//!   directories, `${HOME}`; the longest prefix wins.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::helpers::learn::{Journal, Kind};
use crate::plan::MountOp;
use crate::plan::PlannedMount;

/// More files than this read in one directory bind the directory.
pub const DIR_THRESHOLD: usize = 8;

/// What the draft needs to know of the host and the base.
pub struct Context<'a> {
    /// How the profile names its base in `extends`.
    pub base: String,
    /// The base profile's mounts, planned for this host.
    pub base_mounts: &'a [PlannedMount],
    /// The learning run's mounts: whether an access reached the host.
    pub learn_mounts: &'a [PlannedMount],
    pub cwd: Option<PathBuf>,
    /// Variables and the directories they stand for.
    pub vars: Vec<(&'static str, PathBuf)>,
    /// The command that was learnt, for the header.
    pub command: String,
    /// Whether a path exists on the host (std's `symlink_metadata` outside tests).
    pub exists: &'a dyn Fn(&Path) -> bool,
}

/// What the base shows at a path.
#[derive(Debug, PartialEq, Eq)]
enum Shown {
    /// The host's own path, read-only or writable.
    Host {
        writable: bool,
    },
    /// Something of the sandbox's own (a tmpfs, /proc, /dev, an empty directory).
    Private,
    Nothing,
}

fn shown(mounts: &[PlannedMount], path: &Path) -> Shown {
    shown_at(mounts, path, 0)
}

fn shown_at(mounts: &[PlannedMount], path: &Path, depth: usize) -> Shown {
    let covering = mounts.iter().rev().find(|m| path.starts_with(m.op.dst()));
    match covering.map(|m| &m.op) {
        // `/lib -> usr/lib` on merged-/usr systems: what the link leads to.
        Some(MountOp::Symlink { target, dst }) if dst != path && depth < 8 => {
            let rest = path.strip_prefix(dst).unwrap_or(Path::new(""));
            let to = dst.parent().unwrap_or(Path::new("/")).join(target);
            let to = crate::helpers::learn::normalize(&to.join(rest));
            shown_at(mounts, &to, depth + 1)
        }
        Some(MountOp::Bind {
            src, dst, readonly, ..
        }) if src == dst => Shown::Host {
            writable: !readonly,
        },
        Some(MountOp::Bind { .. } | MountOp::Volume { .. }) => Shown::Private,
        Some(MountOp::Symlink { dst, .. } | MountOp::File { dst, .. }) if dst != path => {
            Shown::Nothing
        }
        Some(_) => Shown::Private,
        None => Shown::Nothing,
    }
}

/// Whether a file name looks made for one run: a run of six or more
/// letters and digits mixing both, or eight hex digits and more.
pub fn looks_per_run(name: &str) -> bool {
    name.split(['.', '-', '_', '+', '~', '#']).any(|part| {
        let alnum = part.len() >= 6 && part.chars().all(|c| c.is_ascii_alphanumeric());
        let digits = part.chars().filter(char::is_ascii_digit).count();
        let letters = part.chars().filter(char::is_ascii_alphabetic).count();
        let hex = part.len() >= 8 && part.chars().all(|c| c.is_ascii_hexdigit());
        (alnum && digits >= 2 && letters >= 2) || (hex && digits >= 2)
    })
}

/// `path` with the longest variable prefix replaced.
pub fn generalise(path: &Path, ctx: &Context<'_>) -> String {
    let best = ctx
        .vars
        .iter()
        .filter(|(_, dir)| path.starts_with(dir))
        .max_by_key(|(_, dir)| dir.components().count());
    match best {
        Some((var, dir)) => {
            let rest = path.strip_prefix(dir).unwrap_or(Path::new(""));
            if rest.as_os_str().is_empty() {
                format!("${{{var}}}")
            } else {
                format!("${{{var}}}/{}", rest.display())
            }
        }
        None => path.display().to_string(),
    }
}

pub fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// One bind the profile needs, with why.
#[derive(Debug, Default)]
struct Need {
    kinds: BTreeSet<&'static str>,
    /// Files read in it, when it is a directory that stands for them.
    files: usize,
}

/// What the run did, sorted by what the profile must do about it.
#[derive(Default)]
struct Seen {
    /// Reads the base shows already, by top-level directory.
    system: BTreeMap<String, usize>,
    /// Uses of the sandbox's own directories, by top-level directory.
    private: BTreeMap<String, usize>,
    reads: BTreeMap<PathBuf, Need>,
    absent: BTreeSet<PathBuf>,
    sockets: BTreeSet<PathBuf>,
    abstract_sockets: BTreeSet<String>,
    network: BTreeSet<String>,
    writes_cwd: BTreeSet<PathBuf>,
    refused_writes: BTreeSet<PathBuf>,
    /// Names a profile cannot hold (not UTF-8, or with `${`, which would
    /// be read as a variable).
    unwritable: BTreeSet<String>,
}

/// The draft profile, as TOML text.
pub fn draft(journal: &Journal, ctx: &Context<'_>) -> String {
    let created: BTreeSet<&Path> = journal
        .accesses
        .keys()
        .filter(|(_, k)| *k == Kind::Create)
        .map(|(p, _)| p.as_path())
        .collect();
    let mut seen = classify(journal, ctx, &created);
    group_reads(&mut seen.reads);
    let (workdir_rw, writable) = writable_dirs(&seen.writes_cwd, &created, ctx);
    // A directory the run writes to is read there too.
    seen.reads
        .retain(|p, _| !writable.iter().any(|d| p.starts_with(d)));
    render(journal, ctx, &seen, workdir_rw, &writable)
}

fn classify(journal: &Journal, ctx: &Context<'_>, created: &BTreeSet<&Path>) -> Seen {
    let mut seen = Seen::default();
    let top = |p: &Path| {
        p.components().nth(1).map_or("/".to_string(), |c| {
            format!("/{}", c.as_os_str().to_string_lossy())
        })
    };

    for (path, kind) in journal.accesses.keys() {
        if *kind != Kind::Network && path.to_str().is_none_or(|p| p.contains("${")) {
            seen.unwritable
                .insert(path.to_string_lossy().escape_debug().to_string());
            continue;
        }
        match kind {
            Kind::Network => {
                seen.network.insert(path.display().to_string());
                continue;
            }
            Kind::Connect if path.to_string_lossy().starts_with('@') => {
                seen.abstract_sockets.insert(path.display().to_string());
                continue;
            }
            _ => {}
        }
        // Where the access went while learning: the host, or something of
        // the sandbox's own (its /tmp, /proc, /dev).
        if !matches!(shown(ctx.learn_mounts, path), Shown::Host { .. }) {
            *seen.private.entry(top(path)).or_default() += 1;
            continue;
        }
        let state = shown(ctx.base_mounts, path);
        let in_cwd = ctx.cwd.as_deref().is_some_and(|c| path.starts_with(c));
        match kind {
            Kind::Write | Kind::Create | Kind::Remove => {
                if state == (Shown::Host { writable: true }) {
                    continue;
                }
                if in_cwd {
                    seen.writes_cwd.insert(path.clone());
                } else {
                    seen.refused_writes.insert(path.clone());
                }
            }
            Kind::Read | Kind::Exec | Kind::Connect => {
                if let Shown::Host { .. } = state {
                    if !in_cwd {
                        *seen.system.entry(top(path)).or_default() += 1;
                    }
                    continue;
                }
                if created.contains(path.as_path()) {
                    continue;
                }
                if !(ctx.exists)(path) {
                    seen.absent.insert(path.clone());
                    continue;
                }
                if *kind == Kind::Connect {
                    seen.sockets.insert(path.clone());
                    continue;
                }
                // A name made for one run stands for its directory.
                let mut p = path.clone();
                while p
                    .file_name()
                    .is_some_and(|n| looks_per_run(&n.to_string_lossy()))
                    && p.parent().is_some_and(|d| d != Path::new("/"))
                {
                    p.pop();
                }
                let need = seen.reads.entry(p).or_default();
                need.kinds.insert(if *kind == Kind::Exec {
                    "executed"
                } else {
                    "read"
                });
            }
            Kind::Network => {}
        }
    }

    seen
}

/// Many files of one directory: the directory; nothing inside a
/// directory that is bound.
fn group_reads(reads: &mut BTreeMap<PathBuf, Need>) {
    // Many files of one directory: the directory.
    let mut by_dir: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for p in reads.keys() {
        if let Some(d) = p.parent() {
            by_dir.entry(d.to_path_buf()).or_default().push(p.clone());
        }
    }
    for (dir, files) in by_dir {
        if files.len() > DIR_THRESHOLD {
            let mut need = Need {
                files: files.len(),
                ..Need::default()
            };
            for f in files {
                if let Some(n) = reads.remove(&f) {
                    need.kinds.extend(n.kinds);
                }
            }
            reads.insert(dir, need);
        }
    }
    // Nothing inside a directory already bound.
    let dirs: Vec<PathBuf> = reads.keys().cloned().collect();
    reads.retain(|p, _| !dirs.iter().any(|d| d != p && p.starts_with(d)));
}

/// Writes in the working directory: the shallowest directory the run did
/// not make itself. Whether that is the working directory, and the others.
fn writable_dirs(
    writes_cwd: &BTreeSet<PathBuf>,
    created: &BTreeSet<&Path>,
    ctx: &Context<'_>,
) -> (bool, BTreeSet<PathBuf>) {
    let mut writable: BTreeSet<PathBuf> = BTreeSet::new();
    if let Some(cwd) = &ctx.cwd {
        for p in writes_cwd {
            let mut d = p.parent().map(Path::to_path_buf).unwrap_or_default();
            while d != *cwd && d.starts_with(cwd) && created.contains(d.as_path()) {
                d.pop();
            }
            writable.insert(d);
        }
        let all: Vec<PathBuf> = writable.iter().cloned().collect();
        writable.retain(|p| !all.iter().any(|d| d != p && p.starts_with(d)));
    }
    let workdir_rw = ctx.cwd.as_ref().is_some_and(|c| writable.contains(c));
    writable.retain(|d| Some(d) != ctx.cwd.as_ref());
    (workdir_rw, writable)
}

fn render(
    journal: &Journal,
    ctx: &Context<'_>,
    seen: &Seen,
    workdir_rw: bool,
    writable: &BTreeSet<PathBuf>,
) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# Learnt by `hutch learn` from one run of: {}\n",
        ctx.command.replace('\n', " ")
    ));
    out.push_str(
        "# Only what that run touched is granted; check it before relying on it, and\n\
         # run `hutch learn` again if the program needs more on other input.\n",
    );
    out.push_str("version = 1\n");
    out.push_str(&format!("extends = [{}]\n", quote(&ctx.base)));
    if workdir_rw {
        out.push_str("# Files were created or changed in the working directory itself.\n");
        out.push_str("workdir = \"read-write\"\n");
    }
    if !seen.system.is_empty() {
        let list: Vec<String> = seen
            .system
            .iter()
            .map(|(d, n)| format!("{d} ({n})"))
            .collect();
        out.push_str(&format!(
            "\n# Read from paths {} already shows, by top-level directory (paths seen):\n#   {}\n",
            ctx.base,
            list.join(", ")
        ));
    }
    if !seen.private.is_empty() {
        let list: Vec<String> = seen
            .private
            .iter()
            .map(|(d, n)| format!("{d} ({n})"))
            .collect();
        out.push_str(&format!(
            "# Used in the sandbox's own directories (not the host's; nothing to grant):\n#   {}\n",
            list.join(", ")
        ));
    }
    let mut section = |title: &str, entries: Vec<(String, &'static str, String)>| {
        if entries.is_empty() {
            return;
        }
        out.push_str(&format!("\n# {title}\n"));
        for (comment, kind, path) in entries {
            out.push_str(&format!(
                "# {comment}\n[[mount]]\ntype = \"{kind}\"\nsrc = {q}\ndst = {q}\n",
                q = quote(&path)
            ));
        }
    };
    section(
        "Files and directories read or executed",
        seen.reads
            .iter()
            .map(|(p, need)| {
                let what = need.kinds.iter().copied().collect::<Vec<_>>().join(" and ");
                let comment = if need.files > 0 {
                    format!("{what}: {} files in this directory", need.files)
                } else {
                    what
                };
                (comment, "ro-bind", generalise(p, ctx))
            })
            .collect(),
    );
    section(
        "Unix sockets connected to",
        seen.sockets
            .iter()
            .map(|p| ("connected".to_string(), "ro-bind", generalise(p, ctx)))
            .collect(),
    );
    section(
        "Directories written to (in the working directory)",
        writable
            .iter()
            .map(|p| ("written".to_string(), "bind", generalise(p, ctx)))
            .collect(),
    );
    notes(&mut out, journal, ctx, seen);
    out
}

/// The comments on what the profile does not grant.
fn notes(out: &mut String, journal: &Journal, ctx: &Context<'_>, seen: &Seen) {
    let mut notes = |title: &str, items: Vec<String>| {
        if items.is_empty() {
            return;
        }
        out.push_str(&format!("\n# {title}\n"));
        for i in items.iter().take(20) {
            out.push_str(&format!("#   {}\n", i.replace('\n', "?")));
        }
        if items.len() > 20 {
            out.push_str(&format!("#   ... and {} more\n", items.len() - 20));
        }
    };
    notes(
        "Written outside the working directory, refused while learning (the host is\n# read-only then) and not granted; add a `bind` of the directory to allow it:",
        seen.refused_writes
            .iter()
            .map(|p| generalise(p, ctx))
            .collect(),
    );
    notes(
        "Names a profile cannot hold (not UTF-8, or with `${`), not granted:",
        seen.unwritable.iter().cloned().collect(),
    );
    notes(
        "Looked for but absent on the host (nothing to bind):",
        seen.absent.iter().map(|p| generalise(p, ctx)).collect(),
    );
    notes(
        "Internet addresses connected to: the network stays off here; `[namespaces] net = false` and a look at why would be needed:",
        seen.network.iter().cloned().collect(),
    );
    notes(
        "Abstract unix sockets connected to (they belong to the network namespace, which stays private):",
        seen.abstract_sockets.iter().cloned().collect(),
    );
    notes(
        &format!(
            "System calls {}'s filter refused during the run (times); `[seccomp] allow` lifts one:",
            ctx.base
        ),
        journal
            .refused
            .iter()
            .map(|(s, n)| format!("{s} ({n})"))
            .collect(),
    );
    if journal.unread > 0 {
        out.push_str(&format!(
            "\n# {} calls could not be read (their process ended first).\n",
            journal.unread
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(src: &str, ro: bool) -> PlannedMount {
        PlannedMount {
            op: MountOp::Bind {
                src: src.into(),
                dst: src.into(),
                readonly: ro,
                devices: false,
            },
            from: String::new(),
            lands: None,
        }
    }

    /// The learning run's mounts: the host, its own /tmp, the working
    /// directory writable.
    fn learning() -> Vec<PlannedMount> {
        vec![
            bind("/", true),
            PlannedMount {
                op: MountOp::Tmpfs {
                    dst: "/tmp".into(),
                    size: None,
                    mode: 0o1777,
                },
                from: String::new(),
                lands: None,
            },
            bind("/home/u/work", false),
        ]
    }

    fn journal(items: &[(&str, Kind)]) -> Journal {
        let mut j = Journal::default();
        for (p, k) in items {
            j.accesses.insert((PathBuf::from(p), *k), 1);
        }
        j
    }

    fn ctx<'a>(
        mounts: &'a [PlannedMount],
        learn_mounts: &'a [PlannedMount],
        exists: &'a dyn Fn(&Path) -> bool,
    ) -> Context<'a> {
        Context {
            base: "default".into(),
            base_mounts: mounts,
            learn_mounts,
            cwd: Some("/home/u/work".into()),
            vars: vec![
                ("HOME", "/home/u".into()),
                ("XDG_CONFIG_HOME", "/home/u/.config".into()),
                ("CWD", "/home/u/work".into()),
                ("XDG_RUNTIME_DIR", "/run/user/1000".into()),
            ],
            command: "prog".into(),
            exists,
        }
    }

    #[test]
    fn reads_writes_and_sockets_become_binds_generalised() {
        let mounts = [
            bind("/usr", true),
            bind("/etc", true),
            PlannedMount {
                op: MountOp::Tmpfs {
                    dst: "/tmp".into(),
                    size: None,
                    mode: 0o1777,
                },
                from: String::new(),
                lands: None,
            },
            bind("/home/u/work", true),
            PlannedMount {
                op: MountOp::Symlink {
                    target: "usr/lib".into(),
                    dst: "/lib".into(),
                },
                from: String::new(),
                lands: None,
            },
        ];
        let exists = |p: &Path| !p.ends_with("missing.conf");
        let j = journal(&[
            ("/usr/lib/libc.so.6", Kind::Read),
            ("/lib/libm.so.6", Kind::Read),
            ("/etc/passwd", Kind::Read),
            ("/home/u/.config/app/app.conf", Kind::Read),
            ("/home/u/.config/app/missing.conf", Kind::Read),
            ("/home/u/bin/helper", Kind::Exec),
            ("/home/u/work/out/result.txt", Kind::Write),
            ("/home/u/work/input.txt", Kind::Read),
            ("/run/user/1000/app.sock", Kind::Connect),
            ("/tmp/tmp.a8Zk29", Kind::Write),
            ("/home/u/.cache/x", Kind::Write),
            ("127.0.0.1:80", Kind::Network),
            ("/home/u/${HOME}", Kind::Read),
        ]);
        let text = draft(&j, &ctx(&mounts, &learning(), &exists));
        assert!(text.contains("extends = [\"default\"]"), "{text}");
        assert!(
            text.contains("src = \"${XDG_CONFIG_HOME}/app/app.conf\""),
            "{text}"
        );
        assert!(text.contains("src = \"${HOME}/bin/helper\""), "{text}");
        assert!(
            text.contains("type = \"bind\"\nsrc = \"${CWD}/out\""),
            "{text}"
        );
        assert!(
            text.contains("src = \"${XDG_RUNTIME_DIR}/app.sock\""),
            "{text}"
        );
        assert!(!text.contains("missing.conf\"\n"), "{text}");
        assert!(
            text.contains("#   ${XDG_CONFIG_HOME}/app/missing.conf"),
            "{text}"
        );
        assert!(text.contains("#   ${HOME}/.cache/x"), "{text}");
        assert!(
            text.contains("/usr (1)") && text.contains("/lib (1)") && text.contains("/etc (1)"),
            "{text}"
        );
        assert!(text.contains("/tmp (1)"), "{text}");
        assert!(text.contains("127.0.0.1:80"), "{text}");
        assert!(
            text.contains("not granted:\n#   /home/u/${HOME}\n"),
            "{text}"
        );
        assert!(!text.contains("workdir"), "{text}");
        assert!(!text.contains("input.txt"), "{text}");
    }

    #[test]
    fn a_directory_the_run_made_makes_its_parent_writable() {
        let mounts = [bind("/home/u/work", true)];
        let exists = |_: &Path| true;
        let j = journal(&[
            ("/home/u/work/build", Kind::Create),
            ("/home/u/work/build/a.o", Kind::Write),
        ]);
        let text = draft(&j, &ctx(&mounts, &learning(), &exists));
        assert!(text.contains("workdir = \"read-write\""), "{text}");
        assert!(!text.contains("type = \"bind\""), "{text}");
    }

    #[test]
    fn many_files_of_one_directory_bind_the_directory() {
        let exists = |_: &Path| true;
        let names: Vec<String> = (0..12).map(|i| format!("/opt/app/lib/m{i}.py")).collect();
        let items: Vec<(&str, Kind)> = names.iter().map(|n| (n.as_str(), Kind::Read)).collect();
        let text = draft(&journal(&items), &ctx(&[], &learning(), &exists));
        assert!(text.contains("src = \"/opt/app/lib\""), "{text}");
        assert!(text.contains("12 files"), "{text}");
        assert!(!text.contains("m3.py"), "{text}");
    }

    #[test]
    fn per_run_names() {
        assert!(looks_per_run("tmp.a8Zk29"));
        assert!(looks_per_run("build-3f9a1c07"));
        assert!(!looks_per_run("app.conf"));
        assert!(!looks_per_run("libc.so.6"));
        assert!(!looks_per_run("python3"));
        assert!(!looks_per_run("deadbeef"));
    }
}
