//! The shipped profiles of programs that use the network (issue 15): wget,
//! pip, npm and yt-dlp, each run through its profile as the unprivileged
//! test user, in the outer namespace of tests/net (the test's own "host",
//! "internet" and "LAN": no packet leaves them). Each downloads something
//! real from the test's "internet" server by name (DNS through the
//! sandbox's generated resolv.conf), its result checked; the LAN address
//! and the host's loopback are refused while the same request from the
//! outer namespace (the negative control) is answered; a file in `~/.ssh`
//! is unreadable inside and readable outside. pip's and npm's cache
//! volumes are shown reused by the next run. (curl's test is in
//! tests/network.rs.)

mod common;
mod net;

use std::path::Path;

use common::*;
use net::*;

/// The test's "internet" server as the sandbox names it.
const INTERNET: &str = "http://203-0-113-10.hutch.test:8082";
/// The same files on the "LAN" and on the host's loopback.
const LAN: &str = "http://10.77.0.10:8082";
const HOST_LO: &str = "http://127.0.0.1:8083";

/// Whether `program` is installed; prints a SKIP line (an error in CI,
/// which installs it) if not.
fn installed(program: &str, package: &str) -> bool {
    if Path::new("/usr/bin").join(program).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI installs {package} (.ci/run)"
    );
    skip(&format!("{program} is not installed (Debian: {package})"));
    false
}

/// The outer namespace with tests/net/packages.py's files in `www/`,
/// served at [`INTERNET`], [`LAN`] and [`HOST_LO`]; a project directory
/// `proj/` (the sandboxes' working directory: the scratch directory
/// itself holds the test's scripts) and `~/.ssh`.
fn outer_with_packages() -> Option<Outer> {
    let outer = Outer::new()?;
    let o = outer.sh(&format!(
        "/usr/bin/python3 packages.py www {INTERNET}\n\
         inet=\"nsenter -t $(cat inet.pid) -n\"\n\
         $inet $PROBE serve-http 203.0.113.10 8082 www > http-internet.out 2>&1 &\n\
         $inet $PROBE serve-http 10.77.0.10 8082 www > http-lan.out 2>&1 &\n\
         $PROBE serve-http 127.0.0.1 8083 www > http-lo.out 2>&1 &\n\
         for i in $(seq 200); do [ \"$(cat http-*.out | grep -c listening)\" = 3 ] && break; sleep 0.05; done\n\
         mkdir -p proj \"$HOME/.ssh\"\n\
         echo \"servers: $(cat http-*.out | grep -c listening)\"\n"
    ));
    assert_eq!(field(&ok(&o), "servers"), "3", "{}", stderr(&o));
    Some(outer)
}

/// `command` with `{url}` replaced by `url` and `{host}` by its host.
fn fill(command: &str, url: &str) -> String {
    let host = url.trim_start_matches("http://").split(':').next().unwrap();
    command.replace("{url}", url).replace("{host}", host)
}

/// The denied actions shared by every profile: the same download from
/// the LAN and from the host's loopback fails inside (`inside` is the
/// command through hutch, `outside` the program itself, `{url}` the
/// server's address, `{host}` its host) and succeeds outside; `secret` (a command reading
/// `~/.ssh/...`) fails inside and succeeds outside. `ok_text` is what
/// a successful run prints (stdout and stderr together).
fn check_denied(outer: &Outer, inside: &str, outside: &str, secret: &str, ok_text: &str) {
    let mut script = String::from("cd proj\n");
    for (name, url) in [("lan", LAN), ("host-lo", HOST_LO)] {
        script += &format!(
            "echo \"{name}-inside: $({} 2>&1 | tr '\\n' ' ')\"\n\
             echo \"{name}-outside: $({} 2>&1 | tr '\\n' ' ')\"\n",
            fill(inside, url),
            fill(outside, url)
        );
    }
    script += &format!(
        "echo \"ssh-inside: $($HUTCH run {secret} 2>&1 | tr '\\n' ' ')\"\n\
         echo \"ssh-outside: $({secret} 2>&1 | tr '\\n' ' ')\"\n"
    );
    let out = ok(&outer.sh(&script));
    for name in ["lan", "host-lo", "ssh"] {
        let inside = field(&out, &format!("{name}-inside"));
        let outside = field(&out, &format!("{name}-outside"));
        assert!(!inside.contains(ok_text), "{name} reached inside:\n{out}");
        assert!(
            outside.contains(ok_text),
            "{name}: the negative control (outside the sandbox) failed:\n{out}"
        );
    }
}

#[test]
fn wget_downloads_into_the_working_directory_by_name() {
    if !installed("wget", "wget") {
        return;
    }
    let Some(outer) = outer_with_packages() else {
        return;
    };
    let o = outer.sh(&format!(
        "cd proj\n\
         $HUTCH run wget -nv {INTERNET}/greeting.txt 2> wget.err\n\
         echo \"status: $?\"\n\
         echo \"saved: $(cat greeting.txt)\"\n\
         echo \"hsts: $(ls -A \"$HOME\" | grep -c wget)\"\n"
    ));
    let out = ok(&o);
    assert_eq!(field(&out, "status"), "0", "{out}");
    assert_eq!(field(&out, "saved"), "hello from the internet", "{out}");
    // Its home was the sandbox's: nothing of wget's landed in the real one.
    assert_eq!(field(&out, "hsts"), "0", "{out}");
    std::fs::write(
        outer.scratch.home().join(".ssh/urls"),
        format!("{INTERNET}/greeting.txt\n"),
    )
    .unwrap();
    outer.scratch.chown_all();
    check_denied(
        &outer,
        "$HUTCH run wget -nv -t 1 -T 10 -O - {url}/greeting.txt",
        "wget -nv -t 1 -T 10 -O - {url}/greeting.txt",
        "wget -nv -t 1 -T 10 -O - -i \"$HOME/.ssh/urls\"",
        "hello from the internet",
    );
}

#[test]
fn yt_dlp_downloads_a_media_file_into_the_working_directory() {
    if !installed("yt-dlp", "yt-dlp") {
        return;
    }
    let Some(outer) = outer_with_packages() else {
        return;
    };
    let o = outer.sh(&format!(
        "cd proj\n\
         $HUTCH run yt-dlp --no-progress -o '%(title)s.%(ext)s' {INTERNET}/clip.wav > ytdlp.out 2>&1\n\
         echo \"status: $?\"\n\
         echo \"same: $(cmp clip.wav ../www/clip.wav && echo yes)\"\n"
    ));
    let out = ok(&o);
    let log =
        std::fs::read_to_string(outer.scratch.path().join("proj/ytdlp.out")).unwrap_or_default();
    assert_eq!(field(&out, "status"), "0", "{out}\n{log}");
    assert_eq!(field(&out, "same"), "yes", "{out}\n{log}");
    // Its generic extractor took it: a direct media link.
    assert!(log.contains("[generic]"), "{log}");
    std::fs::write(
        outer.scratch.home().join(".ssh/batch"),
        format!("{INTERNET}/clip.wav\n"),
    )
    .unwrap();
    outer.scratch.chown_all();
    let get = "--no-progress --socket-timeout 10 -o - ";
    check_denied(
        &outer,
        &format!("$HUTCH run yt-dlp {get} {{url}}/clip.wav | wc -c"),
        &format!("yt-dlp {get} {{url}}/clip.wav | wc -c"),
        &format!("yt-dlp {get} -a \"$HOME/.ssh/batch\" | wc -c"),
        "1644",
    );
}

#[test]
fn pip_installs_from_an_index_into_a_venv_and_its_volumes_persist() {
    if !installed("pip", "python3-pip") {
        return;
    }
    let Some(outer) = outer_with_packages() else {
        return;
    };
    let index = format!("--trusted-host 203-0-113-10.hutch.test -i {INTERNET}/simple");
    let o = outer.sh(&format!(
        "cd proj\n\
         $HUTCH run python3 -m venv .venv 2>&1\n\
         echo \"venv: $?\"\n\
         echo \"first: $($HUTCH run .venv/bin/pip install {index} hutchdemo 2>&1 | tr '\\n' ' ')\"\n\
         echo \"import: $(.venv/bin/python -c 'import hutchdemo; print(hutchdemo.GREETING)' 2>&1)\"\n\
         echo \"user: $($HUTCH run pip install --user {index} hutchdemo 2>&1 | tr '\\n' ' ')\"\n\
         echo \"listed: $($HUTCH run pip list --user 2>&1 | grep hutchdemo)\"\n\
         echo \"next-run: $($HUTCH run --profile pip python3 -c 'import hutchdemo; print(hutchdemo.GREETING)' 2>&1)\"\n\
         echo \"host-local: $(ls -A \"$HOME/.local/lib\" 2>/dev/null | wc -l)\"\n\
         echo \"volume: $(ls $($HUTCH volume path pip-user)/lib/python3*/site-packages | grep -cx hutchdemo)\"\n"
    ));
    let out = ok(&o);
    assert_eq!(field(&out, "venv"), "0", "{out}");
    let first = field(&out, "first");
    assert!(
        first.contains("Downloading") && first.contains("Successfully installed hutchdemo-1.0"),
        "{out}"
    );
    assert_eq!(field(&out, "import"), "hello from hutchdemo", "{out}");
    // The second run finds the wheel in the cache volume...
    let user = field(&out, "user");
    assert!(
        user.contains("Using cached") && user.contains("Successfully installed hutchdemo-1.0"),
        "{out}"
    );
    // ...and the --user site survives for the next run, in its volume, not
    // in the host's ~/.local.
    assert!(field(&out, "listed").starts_with("hutchdemo"), "{out}");
    assert_eq!(field(&out, "next-run"), "hello from hutchdemo", "{out}");
    assert_eq!(field(&out, "host-local"), "0", "{out}");
    assert_eq!(field(&out, "volume"), "1", "{out}");

    // The negative control of the cache: a profile with the same network and
    // no volume downloads again.
    let bare = outer.profile("bare.toml", "mode = \"user\"");
    let o = outer.sh(&format!(
        "cd proj\n\
         echo \"bare: $($HUTCH run --profile ../{bare} pip install --target t {index} hutchdemo 2>&1 | tr '\\n' ' ')\"\n"
    ));
    let bare = field(&ok(&o), "bare");
    assert!(
        bare.contains("Downloading") && !bare.contains("Using cached"),
        "{bare}"
    );

    std::fs::copy(
        outer
            .scratch
            .path()
            .join("www/files/hutchdemo-1.0-py3-none-any.whl"),
        outer
            .scratch
            .home()
            .join(".ssh/hutchdemo-1.0-py3-none-any.whl"),
    )
    .unwrap();
    outer.scratch.chown_all();
    let get = "pip install --no-cache-dir --retries 0 --timeout 10 --target";
    check_denied(
        &outer,
        &format!("$HUTCH run {get} in --trusted-host {{host}} -i {{url}}/simple hutchdemo"),
        &format!("{get} out --trusted-host {{host}} -i {{url}}/simple hutchdemo"),
        &format!("{get} ssh --no-index \"$HOME/.ssh/hutchdemo-1.0-py3-none-any.whl\""),
        "Successfully installed hutchdemo-1.0",
    );
}

#[test]
fn npm_installs_from_a_registry_and_its_cache_volume_persists() {
    if !installed("npm", "npm") {
        return;
    }
    let Some(outer) = outer_with_packages() else {
        return;
    };
    let npm = "npm --no-audit --no-fund --no-update-notifier";
    let o = outer.sh(&format!(
        "mkdir -p proj/a proj/b proj/c\n\
         cd proj/a\n\
         echo \"install: $($HUTCH run {npm} install --registry {INTERNET}/ hutch-hello 2>&1 | tr '\\n' ' ')\"\n\
         echo \"require: $(node -e 'console.log(require(\"hutch-hello\"))' 2>&1)\"\n\
         echo \"lock: $(grep -c '\"resolved\": \"{INTERNET}/tarballs/hutch-hello-1.0.0.tgz\"' package-lock.json)\"\n\
         cd ../b\n\
         echo \"offline: $($HUTCH run {npm} install --offline --registry {INTERNET}/ hutch-hello 2>&1 | tr '\\n' ' ')\"\n\
         echo \"require-b: $(node -e 'console.log(require(\"hutch-hello\"))' 2>&1)\"\n\
         echo \"host-npm: $(ls -A \"$HOME\" | grep -c npm)\"\n"
    ));
    let out = ok(&o);
    assert!(field(&out, "install").contains("added 1 package"), "{out}");
    assert_eq!(field(&out, "require"), "hello from hutch-hello", "{out}");
    assert_eq!(field(&out, "lock"), "1", "{out}");
    // The next run installs from the cache volume alone (--offline).
    assert!(field(&out, "offline").contains("added 1 package"), "{out}");
    assert_eq!(field(&out, "require-b"), "hello from hutch-hello", "{out}");
    assert_eq!(field(&out, "host-npm"), "0", "{out}");

    // The negative control of the cache: without the volume, --offline
    // finds nothing.
    let bare = outer.profile("bare.toml", "mode = \"user\"");
    let o = outer.sh(&format!(
        "cd proj/c\n\
         echo \"bare: $($HUTCH run --profile ../../{bare} {npm} install --offline --registry {INTERNET}/ hutch-hello 2>&1 | tr '\\n' ' ')\"\n"
    ));
    let bare = field(&ok(&o), "bare");
    assert!(bare.contains("ENOTCACHED"), "{bare}");

    std::fs::copy(
        outer
            .scratch
            .path()
            .join("www/tarballs/hutch-hello-1.0.0.tgz"),
        outer.scratch.home().join(".ssh/hutch-hello-1.0.0.tgz"),
    )
    .unwrap();
    outer.scratch.chown_all();
    let get = format!("{npm} --fetch-retries 0 --fetch-timeout 10000 install --prefix");
    check_denied(
        &outer,
        &format!("$HUTCH run {get} in --registry {{url}}/ hutch-hello"),
        &format!("{get} out-{{host}} --registry {{url}}/ hutch-hello"),
        &format!("{get} ssh \"$HOME/.ssh/hutch-hello-1.0.0.tgz\""),
        "added 1 package",
    );
}
