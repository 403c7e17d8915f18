//! Micro-benchmarks of the pure stages for every shipped profile: parsing a
//! profile file, loading it with everything it extends, building the plan,
//! and preparing the child's instructions (including compiling the seccomp
//! filter). Run with `cargo bench --bench plan`.

use hutch::diag::SourceFile;
use hutch::host::Host;
use hutch::plan::{Request, build};
use hutch::prepare::{Held, prepare};
use hutch::profile::load::BUILTIN;
use hutch::profile::{ProfileRef, SearchPath, load, parse};

fn main() {
    divan::main();
}

/// The shipped profiles that plan on the fixed host (the desktop building
/// blocks need a display, a sound server or a GPU it does not have).
fn names() -> Vec<&'static str> {
    let host = host();
    let search = SearchPath::standard(&host);
    BUILTIN
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| {
            load(&ProfileRef::Name((*n).into()), &search)
                .and_then(|p| build(&p, &host, &request()))
                .is_ok()
        })
        .collect()
}

/// The working directory of the planned launch: a project directory
/// (`cli` and the programs that write beside their input refuse /tmp
/// itself, which holds the sockets of the session).
const PROJECT: &str = "/tmp/hutch-bench-project";

fn host() -> Host {
    let _ = std::fs::create_dir_all(PROJECT);
    Host::fixed(
        1000,
        1000,
        &[("HOME", "/home/u"), ("TERM", "xterm"), ("LANG", "C.UTF-8")],
        PROJECT,
    )
}

fn request() -> Request {
    Request {
        command: vec!["/bin/true".into()],
        command_optional: false,
        image: None,
    }
}

#[divan::bench(args = names())]
fn parse_file(name: &str) {
    let text = BUILTIN.iter().find(|(n, _)| *n == name).unwrap().1;
    let file = SourceFile::new(name, None, text);
    divan::black_box(parse(&file).unwrap());
}

#[divan::bench(args = names())]
fn load_with_extends(name: &str) {
    let host = host();
    let search = SearchPath::standard(&host);
    divan::black_box(load(&ProfileRef::Name(name.into()), &search).unwrap());
}

#[divan::bench(args = names())]
fn plan(bencher: divan::Bencher, name: &str) {
    let host = host();
    let search = SearchPath::standard(&host);
    let profile = load(&ProfileRef::Name(name.into()), &search).unwrap();
    let request = request();
    bencher.bench_local(|| divan::black_box(build(&profile, &host, &request).unwrap()));
}

#[divan::bench(args = names())]
fn prepare_for_the_child(bencher: divan::Bencher, name: &str) {
    let host = host();
    let search = SearchPath::standard(&host);
    let profile = load(&ProfileRef::Name(name.into()), &search).unwrap();
    let plan = build(&profile, &host, &request()).unwrap();
    bencher.bench_local(|| divan::black_box(prepare(&plan, Held::default()).unwrap()));
}

/// What a shim does before it is `hutch run`: hutch's own identity, the
/// walk of PATH past the shims (a shim directory first, then two
/// directories without the program), and the user's record of shims,
/// read for the profile `hutch shim install --profile` gave.
#[divan::bench]
fn shim_dispatch(bencher: divan::Bencher) {
    use std::ffi::OsString;
    use std::os::unix::fs::{PermissionsExt, symlink};
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let home = dir.path().join("home");
    let (shims, state, bin) = (
        home.join(".local/bin"),
        home.join(".local/share/hutch"),
        dir.path().join("bin"),
    );
    for d in [
        &shims,
        &state,
        &bin,
        &dir.path().join("empty1"),
        &dir.path().join("empty2"),
    ] {
        std::fs::create_dir_all(d).unwrap();
    }
    // The bench binary plays hutch: /proc/self/exe is what a shim leads to.
    symlink(std::env::current_exe().unwrap(), shims.join("jq")).unwrap();
    std::fs::write(bin.join("jq"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(bin.join("jq"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        state.join("shims.json"),
        format!(
            r#"{{"version": 1, "shims": [{{"name": "jq", "profile": "cli", "link": {{"path": "{}", "target": "/usr/bin/hutch"}}, "desktop": []}}], "created_dirs": []}}"#,
            shims.join("jq").display()
        ),
    )
    .unwrap();
    let host = Host::fixed(
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
        &[("HOME", home.to_str().unwrap())],
        "/tmp",
    );
    let path = OsString::from(format!(
        "{}:{}/empty1:{}/empty2:{}",
        shims.display(),
        dir.path().display(),
        dir.path().display(),
        bin.display()
    ));
    let args = || vec![OsString::from("jq"), OsString::from("--version")];
    let got = hutch::shim::dispatch::run_args(args(), &host, &path).unwrap();
    assert_eq!(got.profile.as_deref(), Some("cli"));
    bencher.bench_local(|| {
        divan::black_box(hutch::shim::dispatch::run_args(args(), &host, &path).unwrap())
    });
}

/// A generated project tree of `files` files, 100 to a directory, two
/// levels deep, with one unix socket in its last directory.
fn socket_tree(files: usize) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("hutch-bench-tree-")
        .tempdir()
        .unwrap();
    for d in 0..files.div_ceil(100) {
        let sub = dir.path().join(format!("g{}/d{d}", d / 100));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..100.min(files - d * 100) {
            std::fs::write(sub.join(format!("f{f}.rs")), "").unwrap();
        }
    }
    let last = dir.path().join(format!(
        "g{}/d{}",
        (files.div_ceil(100) - 1) / 100,
        files.div_ceil(100) - 1
    ));
    let _ = std::os::unix::net::UnixListener::bind(last.join("ls.sock")).unwrap();
    dir
}

/// What masking the sockets of the working directory costs a launch from
/// a tree of that many files (the walk stops at its budget of 4,096
/// entries; beyond it /proc/net/unix is read).
#[divan::bench(args = [1_000, 10_000, 100_000], sample_count = 20)]
fn workdir_socket_masks(bencher: divan::Bencher, files: usize) {
    let tree = socket_tree(files);
    let host = Host::fixed(1000, 1000, &[], "/");
    bencher.bench_local(|| {
        divan::black_box(hutch::plan::workdir_sockets::masks(tree.path(), &host, "bench").unwrap())
    });
}

/// The same walk without its bound, for comparison.
#[divan::bench(args = [1_000, 10_000, 100_000], sample_count = 20)]
fn workdir_socket_walk_unbounded(bencher: divan::Bencher, files: usize) {
    let tree = socket_tree(files);
    let host = Host::fixed(1000, 1000, &[], "/");
    bencher.bench_local(|| {
        let scan = hutch::plan::workdir_sockets::scan(tree.path(), &host, usize::MAX);
        assert_eq!(scan.sockets.len(), 1);
        divan::black_box(scan)
    });
}
