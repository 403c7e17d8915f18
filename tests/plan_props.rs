//! Properties of every plan `plan::build` makes, checked on random profiles
//! (proptest; a failure is shrunk to a small profile and printed).
//!
//! The profiles are generated as TOML text: a base, a profile extending it
//! (or `base/system`) and sometimes its `.local.toml` override, with mount
//! entries of every kind whose paths are drawn from `..`, `.`, empty
//! segments, variables, symlinks (into the volume store, above it,
//! dangling) and the real directories of a world made for the test (a home
//! with a volume store and an image store, a runtime directory holding the
//! registry, a root directory), volumes, `root`, `writable`, namespaces
//! switched off, Landlock settings, `remove`; sometimes with an image. On
//! every plan that builds:
//!
//! 1. every mount destination is absolute, normalised (no `.`, `..`, empty
//!    or trailing segment) and not `/`; every symlink planned stays inside
//!    the sandbox root; the working directory is absolute without `..`;
//! 2. no bind, root directory or writable layer shows hutch's registry of
//!    running sandboxes, its volume store or its image store to the
//!    sandbox: a source at or below one is refused, and one above one is
//!    followed by an
//!    empty tmpfs over it at the matching place;
//! 3. every Landlock rule derived from the mounts is at the destination of
//!    the mount that is visible there (not one a later mount hides) and
//!    grants no more than that kind of mount gives (read-only binds and
//!    volumes: read; writable ones and tmpfs: no device ioctls; /proc,
//!    /dev and files: their fixed sets); the root rule no more than the
//!    root gives;
//! 4. the plan renders (`--explain`) and its JSON reads back to the same
//!    JSON (the registry stores plans so);
//!
//! and on every profile that fails, the error is a diagnostic pointing
//! inside one of the files written (or one of the few errors about the
//! command or image, which have no file). `build` never panics (proptest
//! reports a panic as a failure).
//!
//! `cargo test` runs 1024 cases (about 2 s). A longer run, outside CI:
//!
//! ```sh
//! HUTCH_PROPTEST_CASES=100000 cargo test --release --test plan_props -- --nocapture
//! ```
//!
//! (`HUTCH_PROPTEST_ERRORS=1` prints why each refused profile was refused,
//! to see what the generator mostly makes.)

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use hutch::host::Host;
use hutch::host::cgroups::CgroupHost;
use hutch::image::{ImageInfo, ImageRunConfig};
use hutch::landlock::access;
use hutch::plan::rootfs::{RootSource, Upper};
use hutch::plan::{self, ImageRequest, MountOp, Plan, Request, explain};
use hutch::profile::{self, ProfileRef, SearchPath};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

// ------------------------------------------------------------ the world

/// Real directories the profiles point into, under a temporary directory:
/// the caller's home with a volume store (`v`, `.tmp`) and an image store,
/// the runtime directory with the registry, a root directory, symlinks.
struct World {
    _dir: tempfile::TempDir,
    /// The temporary directory, symlinks resolved.
    top: PathBuf,
    home: PathBuf,
    runtime: PathBuf,
    registry: PathBuf,
    store: PathBuf,
    images: PathBuf,
    profiles: PathBuf,
    uid: u32,
}

impl World {
    fn new() -> World {
        let dir = tempfile::Builder::new()
            .prefix("hutch-props-")
            .tempdir()
            .unwrap();
        let top = std::fs::canonicalize(dir.path()).unwrap();
        let home = top.join("home");
        let runtime = top.join("run");
        let store = home.join(".local/share/hutch/volumes");
        for d in [
            store.join("v"),
            store.join(".tmp"),
            home.join(".local/share/hutch/images"),
            home.join("project/src"),
            home.join("docs"),
            runtime.join("hutch/sandboxes"),
            top.join("rootfs/etc"),
            top.join("srv/data"),
            top.join("profiles"),
            top.join("layers/1/etc"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(home.join("docs/notes.txt"), "notes\n").unwrap();
        std::fs::write(
            top.join("layers/1/etc/passwd"),
            "root:x:0:0::/root:/bin/sh\n",
        )
        .unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        symlink(&store, home.join("link-store")).unwrap();
        symlink(".local/share", home.join("link-share")).unwrap();
        symlink(top.join("run"), home.join("link-run")).unwrap();
        symlink("nowhere", home.join("link-dangling")).unwrap();
        World {
            registry: runtime.join("hutch"),
            profiles: top.join("profiles"),
            uid: nix::unistd::geteuid().as_raw(),
            _dir: dir,
            top,
            home,
            runtime,
            images: store.with_file_name("images"),
            store,
        }
    }

    /// The caller: this process's uid (so that it owns the runtime
    /// directory, where the registry then is), the world's home and
    /// runtime directory, Landlock ABI 7, no terminal, no cgroups.
    fn host(&self) -> Host {
        let s = |p: &Path| p.to_str().unwrap().to_string();
        Host::fixed(
            self.uid,
            self.uid,
            &[
                ("HOME", &s(&self.home)),
                ("USER", "u"),
                ("TERM", "xterm"),
                ("XDG_RUNTIME_DIR", &s(&self.runtime)),
                ("HUTCH_PROFILE_PATH", &s(&self.profiles)),
            ],
            &s(&self.home.join("project")),
        )
        .with_landlock_abi(7)
        .with_stdin_tty(false)
        .with_cgroups(CgroupHost {
            uid: self.uid,
            ..CgroupHost::default()
        })
    }

    /// Paths a profile may name: the world's directories and symlinks,
    /// and some of the real machine's.
    fn known_paths(&self) -> Vec<String> {
        let mut v: Vec<String> = [
            "",
            "home",
            "home/project",
            "home/project/src",
            "home/docs",
            "home/docs/notes.txt",
            "home/.local",
            "home/.local/share",
            "home/.local/share/hutch",
            "home/.local/share/hutch/volumes",
            "home/.local/share/hutch/volumes/v",
            "home/.local/share/hutch/images",
            "home/link-store",
            "home/link-store/v",
            "home/link-share",
            "home/link-share/hutch",
            "home/link-run",
            "home/link-dangling",
            "run",
            "run/hutch",
            "run/hutch/sandboxes",
            "rootfs",
            "srv",
            "srv/data",
            "missing",
        ]
        .iter()
        .map(|p| self.top.join(p).to_str().unwrap().to_string())
        .collect();
        v.extend(["/usr", "/etc", "/", "/proc", "/sys", "/dev", "/nonexistent"].map(String::from));
        v
    }

    fn image(&self, working_dir: &str, from_cli: bool) -> ImageRequest {
        ImageRequest {
            info: ImageInfo {
                name: "app:latest".into(),
                manifest_digest: None,
                config_digest: format!("sha256:{}", "cd".repeat(32)),
                architecture: "amd64".into(),
                os: "linux".into(),
                variant: None,
                created: None,
                imported_at: 0,
                size: 0,
                unpacked_size: None,
                layer_digests: Vec::new(),
                layers: vec![self.top.join("layers/1")],
                config: ImageRunConfig {
                    entrypoint: vec!["/bin/sh".into()],
                    cmd: Vec::new(),
                    env: vec!["PATH=/bin".into()],
                    working_dir: (!working_dir.is_empty()).then(|| working_dir.to_string()),
                    user: None,
                },
            },
            from_cli,
        }
    }
}

// ------------------------------------------------------------ profiles

/// One generated case: the profile files and how the command line asks.
#[derive(Debug, Clone)]
struct Case {
    base: String,
    top: String,
    local: Option<String>,
    /// An image's WorkingDir and whether it came with `--image`.
    image: Option<(String, bool)>,
}

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A path as a profile might write one: mostly absolute or from a
/// variable, now and then relative, with `..`, `.` or an empty segment.
fn path(known: Vec<String>) -> BoxedStrategy<String> {
    let prefix = prop_oneof![
        4 => Just("/"),
        3 => Just("~/"),
        2 => Just("${HOME}/"),
        2 => Just("${CWD}/"),
        1 => Just("${XDG_RUNTIME_DIR}/"),
        1 => Just("${XDG_DATA_HOME}/"),
        1 => Just("/home/"),
        1 => Just("~"),
        1 => Just(""),
    ];
    let prefix = prop_oneof![30 => prefix, 1 => Just("")];
    let segment = prop_oneof![
        12 => prop::sample::select(vec![
            "a", "b", "usr", "etc", "tmp", "srv", "hutch", "volumes", "sandboxes", ".local",
            "share", "link-store", "link-share", "link-run", "project", "proc", "dev", "sys",
            "shm", "v", "$$x", "${UID}",
        ]),
        1 => prop::sample::select(vec!["..", ".", ""]),
    ];
    let segment = prop_oneof![
        4 => segment,
        1 => prop::sample::select(vec!["a", "b", "srv"]),
    ];
    let generated = (prefix, prop::collection::vec(segment, 1..4), 0u8..8).prop_map(
        |(prefix, segs, trailing)| {
            let mut s = format!("{prefix}{}", segs.join("/"));
            if trailing == 0 {
                s.push('/');
            }
            s
        },
    );
    let known = prop::sample::select(known);
    let tail = prop::sample::select(vec!["/a", "/.", "/v", "//x", "/", "/a/.."]);
    prop_oneof![
        3 => generated,
        3 => known.clone(),
        1 => (known, tail).prop_map(|(k, t)| format!("{k}{t}")),
    ]
    .boxed()
}

fn mount(known: Vec<String>) -> BoxedStrategy<String> {
    let kind = prop::sample::select(vec![
        "ro-bind", "bind", "dev-bind", "tmpfs", "proc", "dev", "dir", "symlink", "file",
    ]);
    let target = prop::sample::select(vec!["usr/bin", "../..", "/etc", "a/../../..", "x", ""]);
    let mode = prop::sample::select(vec!["0755", "0700", "1777", "0", "777"]);
    (
        kind,
        path(known.clone()),
        prop_oneof![4 => prop::sample::select(known.clone()), 1 => path(known)],
        target,
        mode,
        prop::option::weighted(0.2, any::<bool>()),
        prop::option::weighted(0.2, any::<bool>()),
        0u8..40,
    )
        .prop_map(
            |(kind, dst, src, target, mode, optional, keep_symlink, extra)| {
                let mut lines = vec![
                    "[[mount]]".to_string(),
                    format!("type = {}", q(kind)),
                    format!("dst = {}", q(&dst)),
                ];
                let bind = kind.ends_with("bind");
                // Usually the keys the kind takes, sometimes one it does not.
                if bind || extra == 0 {
                    lines.push(format!("src = {}", q(&src)));
                }
                if kind == "symlink" || extra == 1 {
                    lines.push(format!("target = {}", q(target)));
                }
                if kind == "file" || extra == 2 {
                    lines.push("content = \"x = 1\\n\"".into());
                }
                if matches!(kind, "tmpfs" | "dir" | "file") && extra < 20 || extra == 3 {
                    lines.push(format!("mode = {}", q(mode)));
                }
                if kind == "tmpfs" && extra > 30 {
                    lines.push("size = \"1M\"".into());
                }
                if let Some(o) = optional {
                    lines.push(format!("optional = {o}"));
                }
                if let Some(k) = keep_symlink.filter(|_| bind || extra == 4) {
                    lines.push(format!("keep_symlink = {k}"));
                }
                lines.join("\n") + "\n"
            },
        )
        .boxed()
}

fn volume(known: Vec<String>) -> BoxedStrategy<String> {
    (
        prop_oneof![
            8 => prop::sample::select(vec!["v", "w", "data"]),
            1 => prop::sample::select(vec!["bad name", ".tmp"]),
        ],
        prop::option::weighted(0.9, path(known)),
        prop::option::of(prop::sample::select(vec!["ro", "rw"])),
        prop::option::weighted(0.2, any::<bool>()),
        prop::option::weighted(0.2, any::<bool>()),
    )
        .prop_map(|(name, dst, mode, shared, tmp)| {
            let mut s = format!("[volumes.{}]\n", q(name));
            if let Some(d) = dst {
                s += &format!("dst = {}\n", q(&d));
            }
            if let Some(m) = mode {
                s += &format!("mode = {}\n", q(m));
            }
            if let Some(b) = shared {
                s += &format!("shared = {b}\n");
            }
            if let Some(b) = tmp {
                s += &format!("tmp = {b}\n");
            }
            s
        })
        .boxed()
}

/// The `[namespaces]` table: each namespace now and then off.
fn namespaces() -> BoxedStrategy<String> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["user", "mount", "pid", "uts", "ipc", "net", "cgroup"]),
            any::<bool>(),
        ),
        0..3,
    )
    .prop_map(|keys| {
        let mut seen = Vec::new();
        let mut s = String::from("[namespaces]\n");
        for (k, v) in keys {
            if !seen.contains(&k) {
                seen.push(k);
                s += &format!("{k} = {v}\n");
            }
        }
        s
    })
    .boxed()
}

fn landlock(known: Vec<String>) -> BoxedStrategy<String> {
    let enforce = prop::sample::select(vec!["required", "best-effort", "off"]);
    (
        prop::option::weighted(0.3, any::<bool>()),
        prop::option::weighted(0.2, enforce),
        prop::option::weighted(0.2, prop::collection::vec(path(known.clone()), 0..3)),
        prop::option::weighted(0.2, prop::collection::vec(path(known), 0..3)),
    )
        .prop_map(|(from_mounts, fs, read, write)| {
            let mut s = String::from("[landlock]\n");
            if let Some(b) = from_mounts {
                s += &format!("from_mounts = {b}\n");
            }
            if let Some(e) = fs {
                s += &format!("fs = {}\n", q(e));
            }
            let list = |v: Vec<String>| v.iter().map(|p| q(p)).collect::<Vec<_>>().join(", ");
            if let Some(r) = read {
                s += &format!("read = [{}]\n", list(r));
            }
            if let Some(w) = write {
                s += &format!("write = [{}]\n", list(w));
            }
            s
        })
        .boxed()
}

/// One profile file: top-level keys, then tables.
fn layer(known: Vec<String>, extends: Option<&'static str>) -> BoxedStrategy<String> {
    let writable = prop::sample::select(vec![
        "false".to_string(),
        q("tmpfs"),
        q("volume:v"),
        q("volume:bad name"),
    ]);
    let root = prop_oneof![
        4 => prop::sample::select(known.clone()),
        1 => path(known.clone()),
    ];
    let root_or_writable = prop_oneof![
        16 => Just(String::new()),
        2 => root.clone().prop_map(|p| format!("root = {}\n", q(&p))),
        1 => (root.clone(), writable.clone())
            .prop_map(|(p, w)| format!("root = {}\nwritable = {w}\n", q(&p))),
        1 => (root, path(known.clone()))
            .prop_map(|(p, w)| format!("root = {}\nwritable = {}\n", q(&p), q(&w))),
        1 => writable.prop_map(|w| format!("writable = {w}\n")),
        1 => Just("image = \"app\"\n".to_string()),
    ];
    (
        root_or_writable,
        prop::option::weighted(0.2, path(known.clone())),
        prop::option::weighted(0.02, prop::collection::vec(path(known.clone()), 1..3)),
        prop::option::weighted(0.2, namespaces()),
        prop::option::weighted(0.3, landlock(known.clone())),
        prop::collection::vec(mount(known.clone()), 0..5),
        prop::collection::vec(volume(known), 0..3),
    )
        .prop_map(move |(root, cwd, remove, ns, ll, mounts, volumes)| {
            let mut s = String::from("version = 1\n");
            if let Some(e) = extends {
                s += &format!("extends = [{}]\n", q(e));
            }
            s += &root;
            if let Some(c) = cwd {
                s += &format!("cwd = {}\n", q(&c));
            }
            if let Some(r) = remove {
                let list: Vec<String> = r.iter().map(|p| q(p)).collect();
                s += &format!("remove = [{}]\n", list.join(", "));
            }
            // One table per volume name (a second is a TOML error).
            let mut named: Vec<String> = Vec::new();
            let volumes = volumes.into_iter().filter(|v| {
                let head = v.lines().next().unwrap_or_default().to_string();
                let new = !named.contains(&head);
                named.push(head);
                new
            });
            for table in ns.into_iter().chain(ll).chain(mounts).chain(volumes) {
                s.push('\n');
                s += &table;
            }
            s
        })
        .boxed()
}

fn case(world: &World) -> impl Strategy<Value = Case> {
    let known = world.known_paths();
    let working_dir = prop::sample::select(vec![
        "/srv/app",
        "/srv//app/.",
        "relative",
        "/a/../b",
        "/",
        "",
    ]);
    (
        layer(known.clone(), None),
        prop_oneof![Just("base"), Just("base/system")]
            .prop_flat_map(move |e| layer(known.clone(), Some(e))),
        prop::option::weighted(0.15, layer(world.known_paths(), None)),
        prop::option::weighted(0.2, (working_dir, any::<bool>())),
    )
        .prop_map(|(base, top, local, image)| Case {
            base,
            top,
            local,
            image: image.map(|(w, cli)| (w.to_string(), cli)),
        })
}

// ------------------------------------------------------------ the properties

/// Writes the case's files, loads `top` and plans it.
fn plan_case(world: &World, c: &Case) -> Result<Plan, Box<hutch::diag::Diagnostic>> {
    let local = world.profiles.join("top.local.toml");
    std::fs::write(world.profiles.join("base.toml"), &c.base).unwrap();
    std::fs::write(world.profiles.join("top.toml"), &c.top).unwrap();
    match &c.local {
        Some(text) => std::fs::write(&local, text).unwrap(),
        None => {
            let _ = std::fs::remove_file(&local);
        }
    }
    let host = world.host();
    let profile = profile::load(
        &ProfileRef::Name("top".into()),
        &SearchPath::standard(&host),
    )
    .map_err(|e| e.0)?;
    // As `hutch run` does, an image the profile names is leased first.
    let names_image = [Some(&c.base), Some(&c.top), c.local.as_ref()]
        .iter()
        .flatten()
        .any(|t| t.contains("image = "));
    let image = match &c.image {
        Some((w, cli)) => Some(world.image(w, *cli)),
        None if names_image => Some(world.image("/srv/app", false)),
        None => None,
    };
    let request = Request {
        command: vec!["/bin/true".into()],
        command_optional: false,
        image,
    };
    plan::build(&profile, &host, &request).map_err(|e| e.0)
}

fn check(world: &World, c: &Case) -> Result<bool, TestCaseError> {
    match plan_case(world, c) {
        Ok(plan) => {
            destinations_are_inside_the_root(&plan)?;
            hutch_state_stays_hidden(world, &plan)?;
            landlock_rules_follow_the_mounts(&plan)?;
            plan_renders_and_reads_back(&plan)?;
            Ok(true)
        }
        Err(d) => {
            if std::env::var_os("HUTCH_PROPTEST_ERRORS").is_some() {
                eprintln!("refused: {}", d.message);
            }
            error_points_into_a_file(world, &d)?;
            Ok(false)
        }
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)*)));
        }
    };
}

/// `p` is absolute and written the way its components spell it.
fn normalised(p: &Path) -> bool {
    let mut rebuilt = String::new();
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => {
                rebuilt.push('/');
                rebuilt.push_str(n.to_str().unwrap_or("\u{fffd}"));
            }
            _ => return false,
        }
    }
    p.is_absolute() && p.to_str() == Some(rebuilt.as_str())
}

/// Where a symlink at `dst` to `target` leads, resolved lexically; `None`
/// if it climbs above the root.
fn link_inside(dst: &Path, target: &Path) -> bool {
    let joined = if target.is_absolute() {
        target.to_path_buf()
    } else {
        dst.parent().unwrap_or(Path::new("/")).join(target)
    };
    let mut depth = 0usize;
    for c in joined.components() {
        match c {
            Component::ParentDir if depth == 0 => return false,
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    true
}

fn destinations_are_inside_the_root(plan: &Plan) -> Result<(), TestCaseError> {
    for m in &plan.mounts {
        let dst = m.op.dst();
        ensure!(
            normalised(dst) && dst != Path::new("/"),
            "destination {} ({}) is not a normalised path below /",
            dst.display(),
            m.from
        );
        if let MountOp::Symlink { target, dst } = &m.op {
            ensure!(
                link_inside(dst, target),
                "symlink {} → {} leads out of the root",
                dst.display(),
                target.display()
            );
        }
    }
    ensure!(
        plan.cwd.is_absolute() && !plan.cwd.components().any(|c| c == Component::ParentDir),
        "cwd {}",
        plan.cwd.display()
    );
    Ok(())
}

/// A host path as the kernel resolves it (as written if it does not exist).
fn resolved(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Checks that what the sandbox sees of the host directory `src` at `dst`
/// (from mount `index` on) does not show `protected`.
fn not_exposed(
    plan: &Plan,
    what: &str,
    src: &Path,
    dst: &Path,
    index: usize,
    protected: &Path,
) -> Result<(), TestCaseError> {
    let src = resolved(src);
    ensure!(
        !src.starts_with(protected),
        "{what} of {} shows {} to the sandbox at {}",
        src.display(),
        protected.display(),
        dst.display()
    );
    if let Ok(rest) = protected.strip_prefix(&src) {
        let inside = dst.join(rest);
        let masked = plan.mounts[index..]
            .iter()
            .any(|m| matches!(&m.op, MountOp::Tmpfs { dst, mode: 0, .. } if *dst == inside));
        ensure!(
            masked,
            "{what} of {} shows {} at {} with no empty tmpfs over it",
            src.display(),
            protected.display(),
            inside.display()
        );
    }
    Ok(())
}

fn hutch_state_stays_hidden(world: &World, plan: &Plan) -> Result<(), TestCaseError> {
    for protected in [&world.registry, &world.store, &world.images] {
        for (i, m) in plan.mounts.iter().enumerate() {
            if let MountOp::Bind { src, dst, .. } = &m.op {
                not_exposed(plan, "the bind", src, dst, i, protected)?;
            }
        }
        let Some(root) = &plan.root else { continue };
        if let RootSource::Dir { path } = &root.source {
            not_exposed(plan, "the root", path, Path::new("/"), 0, protected)?;
        }
        if let Upper::Dir { path } = &root.writable {
            // The sandbox writes into `upper` and sees what it holds.
            ensure!(
                !resolved(path).starts_with(protected),
                "the writable layer {} is inside {}",
                path.display(),
                protected.display()
            );
            not_exposed(
                plan,
                "the writable layer",
                &path.join("upper"),
                Path::new("/"),
                0,
                protected,
            )?;
        }
    }
    Ok(())
}

/// What the mount `op` lets the payload do where it is mounted; `extra`:
/// a second mount point it makes (/dev's shm), with its rights.
fn rights_of(op: &MountOp, handled: u64) -> (u64, Option<(PathBuf, u64)>) {
    let writable = handled & !access::IOCTL_DEV;
    match op {
        MountOp::Bind { readonly: true, .. } | MountOp::Volume { readonly: true, .. } => {
            (access::READ, None)
        }
        MountOp::Bind { devices: true, .. } => (handled, None),
        MountOp::Bind { .. } | MountOp::Tmpfs { .. } | MountOp::Volume { .. } => (writable, None),
        MountOp::Proc { .. } => (
            access::READ_FILE | access::READ_DIR | access::WRITE_FILE,
            None,
        ),
        MountOp::Dev { dst } => (
            access::READ_FILE
                | access::READ_DIR
                | access::WRITE_FILE
                | access::TRUNCATE
                | access::IOCTL_DEV,
            Some((dst.join("shm"), writable)),
        ),
        MountOp::File { .. } => (access::READ_FILE, None),
        MountOp::Dir { .. } | MountOp::Symlink { .. } => (0, None),
    }
}

fn landlock_rules_follow_the_mounts(plan: &Plan) -> Result<(), TestCaseError> {
    let ll = &plan.security.landlock;
    let handled = ll.handled_fs;
    // Mount points in the order they are mounted, with their rights.
    let mut points: Vec<(PathBuf, u64)> = Vec::new();
    for m in &plan.mounts {
        if matches!(m.op, MountOp::Dir { .. } | MountOp::Symlink { .. }) {
            continue;
        }
        let (rights, extra) = rights_of(&m.op, handled);
        points.push((m.op.dst().to_path_buf(), rights));
        points.extend(extra);
    }
    let root_rights = match &plan.root {
        None => access::READ_DIR,
        Some(r) if r.writable == Upper::ReadOnly => access::READ,
        Some(_) => handled & !access::IOCTL_DEV,
    };
    for rule in ll.fs_rules.iter().filter(|r| r.derived) {
        ensure!(
            rule.access & !handled == 0,
            "rule {} grants rights the plan does not handle",
            rule.path.display()
        );
        let allowed = if rule.path == Path::new("/") {
            root_rights
        } else {
            // The mount visible at the rule's path: the last one at it or
            // above it.
            let visible = points.iter().rev().find(|(p, _)| rule.path.starts_with(p));
            match visible {
                Some((p, rights)) if *p == rule.path => *rights,
                Some((p, _)) => {
                    return Err(TestCaseError::fail(format!(
                        "rule {} is for a mount hidden by the later mount at {}",
                        rule.path.display(),
                        p.display()
                    )));
                }
                None => {
                    return Err(TestCaseError::fail(format!(
                        "rule {} is at no mount destination",
                        rule.path.display()
                    )));
                }
            }
        };
        ensure!(
            rule.access & !allowed == 0,
            "rule {} grants {:#x}, more than its mount gives ({allowed:#x})",
            rule.path.display(),
            rule.access
        );
    }
    Ok(())
}

fn plan_renders_and_reads_back(plan: &Plan) -> Result<(), TestCaseError> {
    let _ = explain::render(plan);
    let json = serde_json::to_string(plan).unwrap();
    let again: Plan = serde_json::from_str(&json)
        .map_err(|e| TestCaseError::fail(format!("the plan's JSON does not read back: {e}")))?;
    ensure!(
        serde_json::to_string(&again).unwrap() == json,
        "the plan's JSON changes when read back"
    );
    Ok(())
}

/// Errors that are about the command line or the image, not a file.
const NOT_ABOUT_A_FILE: &[&str] = &["image app:latest: WorkingDir"];

fn error_points_into_a_file(
    world: &World,
    d: &hutch::diag::Diagnostic,
) -> Result<(), TestCaseError> {
    let _ = d.render();
    let Some(file) = &d.file else {
        ensure!(
            NOT_ABOUT_A_FILE.iter().any(|m| d.message.starts_with(m)),
            "an error without a position: {}",
            d.message
        );
        return Ok(());
    };
    let ours = file
        .path
        .as_ref()
        .is_some_and(|p| p.starts_with(&world.profiles))
        || file.name.starts_with("builtin:");
    ensure!(ours, "an error in a file not written: {}", file.name);
    let span = d.span.clone();
    ensure!(
        span.as_ref()
            .is_some_and(|s| s.start <= s.end && s.end <= file.text.len()),
        "{}: span {span:?} is not inside the file ({} bytes): {}",
        file.name,
        file.text.len(),
        d.message
    );
    Ok(())
}

// ------------------------------------------------------------ the runner

#[test]
fn every_plan_keeps_the_invariants() {
    let cases = std::env::var("HUTCH_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1024);
    let world = World::new();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let started = Instant::now();
    let planned = std::cell::Cell::new(0u32);
    let result = runner.run(&case(&world), |c| {
        if check(&world, &c)? {
            planned.set(planned.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = result {
        match e {
            TestError::Fail(why, c) => panic!(
                "{why}\n--- base.toml\n{}--- top.toml\n{}--- top.local.toml\n{}--- image: {:?}",
                c.base,
                c.top,
                c.local.as_deref().unwrap_or("(none)\n"),
                c.image
            ),
            TestError::Abort(why) => panic!("aborted: {why}"),
        }
    }
    eprintln!(
        "plan properties: {cases} profiles in {:.1} s, {} planned, the others refused",
        started.elapsed().as_secs_f64(),
        planned.get()
    );
    // Not vacuous: a fair share of the profiles must plan.
    assert!(
        planned.get() * 10 >= cases,
        "only {} of {cases} profiles planned",
        planned.get()
    );
}
