//! Every shipped program profile, exercised for real (issue 15, item 2): the
//! program runs through its profile as the unprivileged test user on an
//! input made here (tests/profile-inputs/make.py, Python's standard library,
//! or another program where Python has no encoder), its output is checked;
//! then the same command on a copy of the input in `~/.ssh` fails inside
//! the sandbox and succeeds outside it (the negative control).
//!
//! A profile whose program is not installed prints `SKIP:` with its Debian
//! package; CI installs them all (.ci/run). The README's table of profiles
//! is generated from [`CASES`] and the profiles' descriptions; refresh it
//! with `HUTCH_BLESS=1 cargo test --test profiles`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// One profile's test.
struct Case {
    profile: &'static str,
    /// The Debian package of the program.
    package: &'static str,
    /// What the test does, in words (the README's table).
    action: &'static str,
    /// Shell commands (run as the test user in the working directory) that
    /// make the input; `$GEN` is tests/profile-inputs/make.py.
    setup: &'static str,
    /// The input the command reads, in the working directory.
    input: &'static str,
    /// The command; `{in}` stands for the input.
    args: &'static [&'static str],
    /// Its exit status on success.
    status: i32,
    /// Text its standard output holds on success ("" for none).
    expect: &'static str,
    /// Shell commands (as the test user, in the working directory, after
    /// the run) that fail unless the result is right ("" for none).
    check: &'static str,
}

const fn case(profile: &'static str, package: &'static str, action: &'static str) -> Case {
    Case {
        profile,
        package,
        action,
        setup: "",
        input: "",
        args: &[],
        status: 0,
        expect: "",
        check: "",
    }
}

const WAV_RATE_4000: &str =
    "python3 -c \"import wave; assert wave.open('out.wav').getframerate() == 4000\"";

static CASES: &[Case] = &[
    Case {
        setup: "printf '{\"a\": [1, 2, 3]}' > in.json",
        input: "in.json",
        args: &["jq", ".a | add", "{in}"],
        expect: "6",
        ..case("jq", "jq", "sums an array in a JSON file")
    },
    Case {
        setup: "printf 'a: [1, 2, 3]\\n' > in.yaml",
        input: "in.yaml",
        args: &["yq", ".a | add", "{in}"],
        expect: "6",
        ..case("yq", "yq", "sums an array in a YAML file")
    },
    Case {
        setup: "printf 'other\\nneedle here\\n' > in.txt",
        input: "in.txt",
        args: &["rg", "-n", "needle", "{in}"],
        expect: "2:needle here",
        ..case("rg", "ripgrep", "finds a line in a file")
    },
    Case {
        setup: "python3 \"$GEN\" gz in.gz hello",
        input: "in.gz",
        args: &["file", "{in}"],
        expect: "gzip compressed data",
        ..case("file", "file", "identifies a gzip file")
    },
    Case {
        setup: "printf '<a><b>1</b><b>2</b></a>' > in.xml",
        input: "in.xml",
        args: &["xmllint", "--xpath", "sum(//b)", "{in}"],
        expect: "3",
        ..case(
            "xmllint",
            "libxml2-utils",
            "evaluates an XPath sum over an XML file",
        )
    },
    Case {
        setup: "printf '#!/bin/sh\\necho $1\\n' > in.sh",
        input: "in.sh",
        args: &["shellcheck", "-f", "gcc", "{in}"],
        status: 1,
        expect: "SC2086",
        ..case(
            "shellcheck",
            "shellcheck",
            "finds the unquoted `$1` in a script",
        )
    },
    Case {
        setup: "python3 \"$GEN\" pdf in.pdf 'hello pdf'",
        input: "in.pdf",
        args: &["pdfinfo", "{in}"],
        expect: "Pages:           1",
        ..case("pdfinfo", "poppler-utils", "counts the pages of a PDF")
    },
    Case {
        setup: "python3 \"$GEN\" png 7 5 in.png 'hello exif'",
        input: "in.png",
        args: &["exiftool", "-Comment", "{in}"],
        expect: "hello exif",
        ..case(
            "exiftool",
            "libimage-exiftool-perl",
            "reads the comment of a PNG",
        )
    },
    Case {
        setup: "python3 \"$GEN\" wav 8000 in.wav",
        input: "in.wav",
        args: &[
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=sample_rate",
            "-of",
            "csv=p=0",
            "{in}",
        ],
        expect: "8000",
        ..case("ffprobe", "ffmpeg", "reads the sample rate of a WAV file")
    },
    Case {
        setup: "python3 \"$GEN\" png 7 5 in.png",
        input: "in.png",
        args: &["identify", "{in}"],
        expect: "PNG 7x5",
        ..case("identify", "imagemagick", "reads the size of a PNG")
    },
    Case {
        setup: "python3 \"$GEN\" wav 8000 in.wav",
        input: "in.wav",
        args: &["mediainfo", "{in}"],
        expect: "PcmWaveformat",
        ..case("mediainfo", "mediainfo", "describes a WAV file")
    },
    Case {
        setup: "python3 \"$GEN\" zip in.zip d/hello.txt 'hi zip'",
        input: "in.zip",
        args: &["unzip", "-o", "-q", "{in}"],
        check: "grep -qx 'hi zip' d/hello.txt",
        ..case("unzip", "unzip", "extracts a ZIP archive")
    },
    Case {
        setup: "printf 'hi zip' > hello.txt",
        input: "hello.txt",
        args: &["zip", "-q", "out.zip", "{in}"],
        check: "python3 -c \"import zipfile; assert zipfile.ZipFile('out.zip').read('hello.txt') == b'hi zip'\"",
        ..case("zip", "zip", "makes a ZIP archive")
    },
    Case {
        setup: "python3 \"$GEN\" zip in.zip s/hello.txt 'hi 7z'",
        input: "in.zip",
        args: &["7z", "x", "-y", "{in}"],
        expect: "Everything is Ok",
        check: "grep -qx 'hi 7z' s/hello.txt",
        ..case("7z", "p7zip-full", "extracts a ZIP archive")
    },
    Case {
        setup: "python3 \"$GEN\" tar in.tar t/hello.txt 'hi tar'",
        input: "in.tar",
        args: &["tar", "-xf", "{in}"],
        check: "grep -qx 'hi tar' t/hello.txt",
        ..case("tar", "tar", "extracts a tar archive")
    },
    Case {
        setup: "python3 \"$GEN\" tar in.tar.gz b/hello.txt 'hi bsdtar'",
        input: "in.tar.gz",
        args: &["bsdtar", "-xf", "{in}"],
        check: "grep -qx 'hi bsdtar' b/hello.txt",
        ..case(
            "bsdtar",
            "libarchive-tools",
            "extracts a gzipped tar archive",
        )
    },
    Case {
        setup: "mkdir src && printf 'hi cpio' > src/c.txt && (cd src && echo c.txt | cpio --quiet -o -H newc > ../in.cpio) && rm -r src",
        input: "in.cpio",
        args: &["cpio", "--quiet", "-idu", "-F", "{in}"],
        check: "grep -qx 'hi cpio' c.txt",
        ..case("cpio", "cpio", "extracts a cpio archive")
    },
    Case {
        setup: "python3 \"$GEN\" xz in.txt.xz 'hi xz'",
        input: "in.txt.xz",
        args: &["xz", "-d", "{in}"],
        check: "grep -qx 'hi xz' in.txt",
        ..case("xz", "xz-utils", "decompresses a .xz file")
    },
    Case {
        setup: "printf 'hi zstd' > z.txt && zstd -q --rm -o in.txt.zst z.txt",
        input: "in.txt.zst",
        args: &["zstd", "-q", "-d", "{in}"],
        check: "grep -qx 'hi zstd' in.txt",
        ..case("zstd", "zstd", "decompresses a .zst file")
    },
    Case {
        setup: "python3 \"$GEN\" gz in.txt.gz 'hi gzip'",
        input: "in.txt.gz",
        args: &["gzip", "-d", "{in}"],
        check: "grep -qx 'hi gzip' in.txt",
        ..case("gzip", "gzip", "decompresses a .gz file")
    },
    Case {
        setup: "python3 \"$GEN\" bz2 in.txt.bz2 'hi bzip2'",
        input: "in.txt.bz2",
        args: &["bzip2", "-d", "{in}"],
        check: "grep -qx 'hi bzip2' in.txt",
        ..case("bzip2", "bzip2", "decompresses a .bz2 file")
    },
    Case {
        setup: "printf 'hi lz4' > l.txt && lz4 -q l.txt in.lz4 && rm l.txt",
        input: "in.lz4",
        args: &["lz4", "-q", "-f", "-d", "{in}", "out.txt"],
        check: "grep -qx 'hi lz4' out.txt",
        ..case("lz4", "lz4", "decompresses a .lz4 file")
    },
    Case {
        setup: "printf 'hi lzip' > in.txt && lzip in.txt",
        input: "in.txt.lz",
        args: &["lzip", "-d", "{in}"],
        check: "grep -qx 'hi lzip' in.txt",
        ..case("lzip", "lzip", "decompresses a .lz file")
    },
    Case {
        setup: "python3 \"$GEN\" wav 8000 in.wav",
        input: "in.wav",
        args: &[
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            "{in}",
            "-ar",
            "4000",
            "out.wav",
        ],
        check: WAV_RATE_4000,
        ..case("ffmpeg", "ffmpeg", "resamples a WAV file from 8 to 4 kHz")
    },
    Case {
        setup: "python3 \"$GEN\" png 7 5 in.png",
        input: "in.png",
        args: &["convert", "{in}", "-resize", "14x10", "out.gif"],
        check: "python3 -c \"import struct; b = open('out.gif', 'rb').read(); assert b[:3] == b'GIF' and struct.unpack('<HH', b[6:10]) == (14, 10)\"",
        ..case("convert", "imagemagick", "turns a 7x5 PNG into a 14x10 GIF")
    },
    Case {
        setup: "python3 \"$GEN\" wav 8000 in.wav",
        input: "in.wav",
        args: &["sox", "{in}", "-r", "4000", "out.wav"],
        check: WAV_RATE_4000,
        ..case("sox", "sox", "resamples a WAV file from 8 to 4 kHz")
    },
    Case {
        setup: "python3 \"$GEN\" png 7 5 in.png",
        input: "in.png",
        args: &["optipng", "-quiet", "-clobber", "-out", "out.png", "{in}"],
        check: "python3 -c \"import struct; b = open('out.png', 'rb').read(); assert b[:8] == b'\\x89PNG\\r\\n\\x1a\\n' and struct.unpack('>II', b[16:24]) == (7, 5)\"",
        ..case("optipng", "optipng", "recompresses a PNG")
    },
    Case {
        setup: "/usr/bin/convert -size 16x16 xc:red -set comment 'hello jpeg' in.jpg",
        input: "in.jpg",
        args: &["jpegoptim", "--strip-all", "{in}"],
        expect: "[OK]",
        check: "! grep -q 'hello jpeg' in.jpg && head -c 2 in.jpg | od -An -tx1 | grep -q 'ff d8'",
        ..case(
            "jpegoptim",
            "jpegoptim",
            "strips the comment of a JPEG in place",
        )
    },
    Case {
        setup: "printf '# Title\\n\\nSome *text*.\\n' > in.md",
        input: "in.md",
        args: &["pandoc", "-o", "out.html", "{in}"],
        check: "grep -q '<em>text</em>' out.html",
        ..case("pandoc", "pandoc", "converts Markdown to HTML")
    },
    Case {
        setup: "python3 \"$GEN\" pdf in.pdf 'hello pdf'",
        input: "in.pdf",
        args: &["pdftotext", "{in}"],
        check: "grep -q 'hello pdf' in.txt",
        ..case("pdftotext", "poppler-utils", "extracts the text of a PDF")
    },
    Case {
        setup: "python3 \"$GEN\" pdf in.pdf 'hello pdf'",
        input: "in.pdf",
        args: &[
            "qpdf",
            "--qdf",
            "--object-streams=disable",
            "{in}",
            "out.pdf",
        ],
        check: "grep -aq '%QDF-1.0' out.pdf",
        ..case("qpdf", "qpdf", "rewrites a PDF in QDF form")
    },
    Case {
        setup: "printf '<a><b>xslt</b></a>' > in.xml && printf '<xsl:stylesheet version=\"1.0\" xmlns:xsl=\"http://www.w3.org/1999/XSL/Transform\"><xsl:output method=\"text\"/><xsl:template match=\"/\">hi <xsl:value-of select=\"/a/b\"/></xsl:template></xsl:stylesheet>' > style.xsl",
        input: "in.xml",
        args: &["xsltproc", "-o", "out.txt", "style.xsl", "{in}"],
        check: "grep -qx 'hi xslt' out.txt",
        ..case(
            "xsltproc",
            "xsltproc",
            "applies a stylesheet to an XML file",
        )
    },
    Case {
        setup: "python3 \"$GEN\" sqlite in.db",
        input: "in.db",
        args: &["sqlite3", "{in}", "select sum(v) from t"],
        expect: "6",
        ..case("sqlite3", "sqlite3", "sums a column of a database")
    },
    Case {
        setup: "printf 'print(sum(range(10)))\\nopen(\"out.txt\", \"w\").write(\"py\")\\n' > in.py",
        input: "in.py",
        args: &["python3", "{in}"],
        expect: "45",
        check: "grep -qx py out.txt",
        ..case(
            "python3",
            "python3",
            "runs a script that prints and writes a file",
        )
    },
    Case {
        setup: "printf 'console.log([1, 2, 3].reduce((a, b) => a + b));\\nrequire(\"fs\").writeFileSync(\"out.txt\", \"js\");\\n' > in.js",
        input: "in.js",
        args: &["node", "{in}"],
        expect: "6",
        check: "grep -qx js out.txt",
        ..case(
            "node",
            "nodejs",
            "runs a script that prints and writes a file",
        )
    },
    Case {
        setup: "printf 'all:\\n\\techo built > out.txt\\n' > in.mk",
        input: "in.mk",
        args: &["make", "-f", "{in}"],
        expect: "echo built",
        check: "grep -qx built out.txt",
        ..case("make", "make", "runs a Makefile's recipe")
    },
    Case {
        setup: "printf 'int puts(const char *);\\nint main(void) { puts(\"hello gcc\"); return 0; }\\n' > in.c",
        input: "in.c",
        args: &["gcc", "-o", "prog", "{in}"],
        check: "./prog | grep -qx 'hello gcc'",
        ..case("gcc", "gcc", "compiles a C program (run outside)")
    },
    Case {
        setup: "mkdir r && cd r && git init -q && echo hi > f && git add f && \
                git -c user.name=t -c user.email=t@example.org commit -qm 'hello git' && \
                git bundle create -q ../in.bundle HEAD && cd .. && rm -rf r",
        input: "in.bundle",
        args: &["git", "clone", "-q", "{in}", "out"],
        // The clone is checked, then removed: the negative control clones
        // again.
        check: "git -C out log --format=%s | grep -qx 'hello git' && grep -qx hi out/f && rm -rf out",
        ..case("git", "git", "clones a local bundle and checks its commit")
    },
    // Its network is tested in tests/network.rs (an "internet" of the
    // test's own); here, what it reads: a file it uploads to a file:// URL,
    // printing how many bytes it sent.
    Case {
        setup: "printf 'hello curl, 25 bytes long' > in.txt",
        input: "in.txt",
        args: &[
            "curl",
            "-sS",
            "-w",
            "sent %{size_upload}",
            "-T",
            "{in}",
            "file:///dev/null",
        ],
        expect: "sent 25",
        ..case("curl", "curl", "uploads a file to a file:// URL")
    },
];

/// Whether `program` is installed where the sandbox's PATH finds it.
fn installed(program: &str) -> bool {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .any(|d| Path::new(d).join(program).exists())
}

fn shell(s: &Scratch, script: &str, what: &str) {
    let out = s
        .as_user(Path::new("/bin/sh"))
        .args(["-c", script])
        .env("GEN", s.home().join("make.py"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {script}\n{}",
        stderr(&out)
    );
}

fn with_input(c: &Case, input: &str) -> Vec<String> {
    c.args.iter().map(|a| a.replace("{in}", input)).collect()
}

/// Whether `out` is the success `c` expects.
fn succeeded(c: &Case, out: &Output) -> bool {
    out.status.code() == Some(c.status) && stdout(out).contains(c.expect)
}

fn run_case(c: &Case) {
    if !installed(c.args[0]) {
        skip(&format!(
            "profile {}: {} is not installed (Debian: {})",
            c.profile, c.args[0], c.package
        ));
        return;
    }
    let s = Scratch::new();
    std::fs::write(
        s.home().join("make.py"),
        include_str!("profile-inputs/make.py"),
    )
    .unwrap();
    s.chown_all();
    shell(&s, c.setup, "making the input");
    // A copy for the denied run, made before the command consumes it.
    let ssh = s.home().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::copy(s.path().join(c.input), ssh.join(c.input)).unwrap();
    s.chown_all();
    let args = with_input(c, c.input);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.run(&["--profile", c.profile], &argv);
    assert!(
        succeeded(c, &out),
        "{}: {args:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
        c.profile,
        out.status,
        stdout(&out),
        stderr(&out)
    );
    if !c.check.is_empty() {
        shell(&s, c.check, &format!("{}: checking the result", c.profile));
    }
    denied(c, &s);
}

/// The same command on a copy of the input in `~/.ssh`: refused inside,
/// done outside.
fn denied(c: &Case, s: &Scratch) {
    let secret = s.home().join(".ssh").join(c.input).display().to_string();
    let args = with_input(c, &secret);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s.run(&["--profile", c.profile], &argv);
    assert!(
        !succeeded(c, &out),
        "{}: the input in ~/.ssh was reachable: {args:?}\n{}",
        c.profile,
        stdout(&out)
    );
    let mut control: Command = s.as_user(Path::new(argv[0]));
    let control = control.args(&argv[1..]).output().unwrap();
    assert!(
        succeeded(c, &control),
        "{}: the negative control (the same command outside the sandbox) failed: {}",
        c.profile,
        stderr(&control)
    );
}

fn find(profile: &str) -> &'static Case {
    CASES
        .iter()
        .find(|c| c.profile == profile)
        .unwrap_or_else(|| panic!("no case for {profile}"))
}

macro_rules! profile_tests {
    ($($test:ident => $profile:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                run_case(find($profile));
            }
        )*
        /// The profiles that have a test function above.
        const TESTED: &[&str] = &[$($profile),*];
    };
}

profile_tests! {
    jq => "jq", yq => "yq", rg => "rg", file => "file", xmllint => "xmllint",
    shellcheck => "shellcheck", pdfinfo => "pdfinfo", exiftool => "exiftool",
    ffprobe => "ffprobe", identify => "identify", mediainfo => "mediainfo",
    unzip => "unzip", zip => "zip", seven_z => "7z", tar => "tar", bsdtar => "bsdtar",
    cpio => "cpio", xz => "xz", zstd => "zstd", gzip => "gzip", bzip2 => "bzip2",
    lz4 => "lz4", lzip => "lzip", ffmpeg => "ffmpeg", convert => "convert", sox => "sox",
    optipng => "optipng", jpegoptim => "jpegoptim", pandoc => "pandoc",
    pdftotext => "pdftotext", qpdf => "qpdf", xsltproc => "xsltproc", sqlite3 => "sqlite3",
    python3 => "python3", node => "node", make => "make", gcc => "gcc", git => "git",
    curl => "curl",
}

/// The git profile shows the user's ~/.gitconfig (identity, aliases) and
/// keeps it read-only: an alias or `core.fsmonitor` written there would run
/// on the host's next git command. The control: the same write outside.
#[test]
fn git_reads_the_gitconfig_and_cannot_change_it() {
    if !installed("git") {
        skip("profile git: git is not installed (Debian: git)");
        return;
    }
    let s = Scratch::new();
    let gitconfig = s.home().join(".gitconfig");
    let before = "[user]\n\tname = Hutch Tester\n";
    std::fs::write(&gitconfig, before).unwrap();
    s.chown_all();
    let read = s.run(
        &["--profile", "git"],
        &["git", "config", "--global", "user.name"],
    );
    assert_eq!(ok(&read).trim(), "Hutch Tester");
    let write = ["git", "config", "--global", "alias.st", "!touch planted"];
    let out = s.run(&["--profile", "git"], &write);
    assert!(!out.status.success(), "the write succeeded inside");
    assert_eq!(std::fs::read_to_string(&gitconfig).unwrap(), before);
    let control = s
        .as_user(Path::new(write[0]))
        .args(&write[1..])
        .output()
        .unwrap();
    assert!(control.status.success(), "{}", stderr(&control));
    assert!(
        std::fs::read_to_string(&gitconfig)
            .unwrap()
            .contains("alias")
    );
}

/// The shipped program profiles: every profile in profiles/ but the
/// building blocks, the general ones and the desktop apps' (a `[desktop]`
/// table: tests/desktop.rs runs each and checks its window's pixels).
fn program_profiles() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            !std::fs::read_to_string(e.path())
                .is_ok_and(|text| text.lines().any(|l| l.trim() == "[desktop]"))
        })
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".toml")
                .map(String::from)
        })
        .filter(|n| !["cli", "default", "container"].contains(&n.as_str()))
        .collect();
    out.sort();
    out
}

/// The profiles of programs that need the network to do their work,
/// tested in tests/net_profiles.rs (in a network of the test's own):
/// (profile, Debian package, tested action, test function).
const NETWORK_TESTED: &[(&str, &str, &str, &str)] = &[
    (
        "wget",
        "wget",
        "downloads a file by name into the working directory",
        "wget_downloads_into_the_working_directory_by_name",
    ),
    (
        "pip",
        "python3-pip",
        "installs a wheel from a PEP 503 index into a venv, then into the --user site from its cache",
        "pip_installs_from_an_index_into_a_venv_and_its_volumes_persist",
    ),
    (
        "npm",
        "npm",
        "installs a package from a registry, then offline from its cache",
        "npm_installs_from_a_registry_and_its_cache_volume_persists",
    ),
    (
        "yt-dlp",
        "yt-dlp",
        "downloads a WAV file with its generic extractor",
        "yt_dlp_downloads_a_media_file_into_the_working_directory",
    ),
];

/// The desktop apps' profiles (a `[desktop]` table), each tested by a
/// window on an Xvfb display with the input's known pixels and a denied
/// action: (profile, Debian package, tested action, test file, test
/// function).
const DESKTOP_TESTED: &[(&str, &str, &str, &str, &str)] = &[
    (
        "xterm",
        "xterm",
        "maps its window through the nested server, with the sound server and only the notification bus",
        "desktop",
        "the_shipped_xterm_profile_maps_its_window_with_sound_and_a_filtered_bus",
    ),
    (
        "mupdf",
        "mupdf",
        "shows a red PDF; the PDF cannot be changed",
        "desktop",
        "the_shipped_mupdf_profile_shows_a_pdf_and_cannot_change_it",
    ),
    (
        "feh",
        "feh",
        "shows a blue image; the image cannot be changed",
        "desktop",
        "the_shipped_feh_profile_shows_an_image_and_cannot_change_it",
    ),
    (
        "mpv",
        "mpv",
        "plays a blue clip; the clip cannot be changed",
        "desktop",
        "the_shipped_mpv_profile_plays_a_clip_and_cannot_change_it",
    ),
    (
        "evince",
        "evince",
        "shows a red PDF; the PDF cannot be changed",
        "desktop_docs",
        "the_shipped_evince_profile_shows_a_pdf_and_cannot_change_it",
    ),
    (
        "zathura",
        "zathura",
        "shows a red PDF; the PDF cannot be changed",
        "desktop_docs",
        "the_shipped_zathura_profile_shows_a_pdf_and_cannot_change_it",
    ),
    (
        "eog",
        "eog",
        "shows a blue image; the image cannot be changed",
        "desktop_docs",
        "the_shipped_eog_profile_shows_an_image_and_cannot_change_it",
    ),
    (
        "xarchiver",
        "xarchiver",
        "extracts an archive into its volume, nothing else",
        "desktop_docs",
        "the_shipped_xarchiver_profile_extracts_into_its_volume_only",
    ),
    (
        "mousepad",
        "mousepad",
        "saves a line typed into its window into its file, nothing beside it",
        "desktop_docs",
        "the_shipped_mousepad_profile_saves_a_typed_line_into_its_file_only",
    ),
    (
        "libreoffice",
        "libreoffice-writer",
        "converts a read-only document into its volume, nothing beside it",
        "desktop_docs",
        "the_shipped_libreoffice_profile_saves_copies_into_its_volume_only",
    ),
    (
        "gimp",
        "gimp",
        "shows a blue image, which only it may change",
        "desktop_docs",
        "the_shipped_gimp_profile_shows_an_image_and_may_change_only_it",
    ),
    (
        "inkscape",
        "inkscape",
        "deletes a red shape and saves its file, nothing beside it",
        "desktop_docs",
        "the_shipped_inkscape_profile_deletes_a_shape_and_saves_its_file_only",
    ),
    (
        "firefox-esr",
        "firefox-esr",
        "shows a red page; its profile is kept in its volume",
        "desktop_web",
        "the_shipped_firefox_profile_shows_a_page_and_keeps_its_profile",
    ),
    (
        "chromium",
        "chromium",
        "shows a red page; its profile is kept in its volume",
        "desktop_web",
        "the_shipped_chromium_profile_shows_a_page_and_keeps_its_profile",
    ),
    (
        "dillo",
        "dillo",
        "shows a red page; its settings are kept in its volume",
        "desktop_web",
        "the_shipped_dillo_profile_shows_a_page_and_keeps_its_settings",
    ),
    (
        "thunderbird",
        "thunderbird",
        "shows a red message; its profile is kept in its volume",
        "desktop_web",
        "the_shipped_thunderbird_profile_shows_a_message_and_keeps_its_profile",
    ),
    (
        "hexchat",
        "hexchat",
        "starts with the colours of the settings in its volume",
        "desktop_web",
        "the_shipped_hexchat_profile_starts_with_the_settings_of_its_volume",
    ),
    (
        "pidgin",
        "pidgin",
        "starts with the colours of the settings in its volume",
        "desktop_web",
        "the_shipped_pidgin_profile_starts_with_the_settings_of_its_volume",
    ),
];

/// Every profile with a `[desktop]` table has its row above, and the test
/// the row names exists.
#[test]
fn every_desktop_profile_has_a_test() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut desktop: Vec<String> = std::fs::read_dir(dir.join("profiles"))
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path())
                .is_ok_and(|text| text.lines().any(|l| l.trim() == "[desktop]"))
        })
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".toml")
                .map(String::from)
        })
        .collect();
    desktop.sort();
    let mut rows: Vec<String> = DESKTOP_TESTED.iter().map(|r| r.0.to_string()).collect();
    rows.sort();
    assert_eq!(desktop, rows);
    for (profile, _, _, file, test) in DESKTOP_TESTED {
        let text = std::fs::read_to_string(dir.join(format!("tests/{file}.rs"))).unwrap();
        assert!(
            text.contains(&format!("#[test]\nfn {test}()")),
            "tests/{file}.rs has no test {test} for profile {profile}"
        );
    }
}

#[test]
fn every_program_profile_has_a_test() {
    let mut tested: Vec<String> = TESTED.iter().map(|s| s.to_string()).collect();
    let mut cases: Vec<String> = CASES.iter().map(|c| c.profile.to_string()).collect();
    let net = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/net_profiles.rs"),
    )
    .unwrap();
    for (profile, _, _, test) in NETWORK_TESTED {
        assert!(
            net.contains(&format!("#[test]\nfn {test}()")),
            "tests/net_profiles.rs has no test {test} for profile {profile}"
        );
        tested.push(profile.to_string());
        cases.push(profile.to_string());
    }
    tested.sort();
    cases.sort();
    assert_eq!(program_profiles(), tested);
    assert_eq!(cases, tested);
}

/// A profile's description.
fn description(profile: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("profiles/{profile}.toml"));
    let v: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["description"].as_str().unwrap().to_string()
}

/// What a profile gets: its description after `PROGRAM: ` (a desktop
/// app's says first where its window goes and what network it has, kept).
fn grants(profile: &str) -> String {
    let d = description(profile);
    if DESKTOP_TESTED.iter().any(|r| r.0 == profile) {
        return d;
    }
    d.split_once(": ")
        .map_or(d.as_str(), |(_, rest)| rest)
        .to_string()
}

const BEGIN: &str = "<!-- profiles: generated by tests/profiles.rs -->\n";
const END: &str = "<!-- end of profiles -->\n";

fn table() -> String {
    let mut t = String::from(
        "| program | profile | Debian package | what it gets | tested action |\n|---|---|---|---|---|\n",
    );
    let mut rows: Vec<(&str, &str, &str, &str)> = CASES
        .iter()
        .map(|c| (c.profile, c.args[0], c.package, c.action))
        .chain(
            NETWORK_TESTED
                .iter()
                .map(|&(profile, package, action, _)| (profile, profile, package, action)),
        )
        .chain(
            DESKTOP_TESTED
                .iter()
                .map(|&(profile, package, action, _, _)| (profile, profile, package, action)),
        )
        .collect();
    rows.sort_by_key(|r| r.0);
    for (profile, program, package, action) in rows {
        t += &format!(
            "| `{program}` | `{profile}` | {package} | {} | {action} |\n",
            grants(profile),
        );
    }
    t
}

#[test]
fn the_readme_table_lists_every_profile_and_its_test() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (Some(b), Some(e)) = (readme.find(BEGIN), readme.find(END)) else {
        panic!("README.md lacks the markers {BEGIN:?} and {END:?}");
    };
    let current = &readme[b + BEGIN.len()..e];
    let wanted = table();
    if current != wanted {
        if std::env::var_os("HUTCH_BLESS").is_some() {
            let new = format!("{}{wanted}{}", &readme[..b + BEGIN.len()], &readme[e..]);
            std::fs::write(&path, new).unwrap();
        } else {
            panic!(
                "README.md's table of profiles is out of date; run `HUTCH_BLESS=1 cargo test --test profiles`"
            );
        }
    }
}
