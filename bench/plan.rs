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

fn host() -> Host {
    Host::fixed(
        1000,
        1000,
        &[("HOME", "/home/u"), ("TERM", "xterm"), ("LANG", "C.UTF-8")],
        "/tmp",
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
