//! The shipped desktop profiles for documents, images and archives
//! (evince, zathura, eog, xarchiver, mousepad, LibreOffice, GIMP,
//! Inkscape), each run for real through its profile as the unprivileged
//! test user: the app's window appears on a host Xvfb display through the
//! nested X server, a screenshot shows the input's known pixels (a red PDF,
//! a blue image, a red drawing or paragraph) or, for the text editor and the
//! archiver, a window that is not blank; mousepad saves a line typed into
//! its window and Inkscape a drawing whose shape was clicked and deleted,
//! input sent to the host's Xephyr window with xdotool. Then the denied actions with their controls: a viewer's file
//! cannot be changed, an editor's can but nothing can be created beside
//! it, and ~/.ssh is unreadable inside, while the same probe succeeds
//! outside the sandbox.
//!
//! The input files live in a directory under /var/tmp, not in the test's
//! home under /tmp: /tmp is the sandbox's own writable tmpfs, so there the
//! directories hutch makes around a file argument would be writable, which
//! they are not for a real file in /home (an editor's save by a temporary
//! file and a rename then fails with EBUSY instead of writing in place).
//!
//! Tools or apps that are missing (`.ci/run` installs them) make a test
//! print `SKIP: <reason>`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::x11::*;
use common::*;

/// The host display: large enough for the apps' whole windows (the nested
/// server's screen is 1024x768 too).
const SCREEN: &str = "1024x768x24";

/// How long a heavy app (LibreOffice, GIMP, Inkscape) may take to show its
/// window on a loaded two-core machine; light ones show it in 1-3 s.
const HEAVY_START: u64 = 120;
const LIGHT_START: u64 = 60;

fn tools(app: &str) -> bool {
    installed(&["Xvfb", "xauth", "xwd", "xwininfo", "Xephyr", app])
}

/// A directory outside /tmp, owned by the test user, with `name` in it.
struct Input {
    dir: tempfile::TempDir,
    file: PathBuf,
}

fn input(name: &str, content: &[u8]) -> Input {
    let dir = tempfile::Builder::new()
        .prefix("hutch-test-docs-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, content).unwrap();
    if is_root() {
        for p in [dir.path(), file.as_path()] {
            std::os::unix::fs::chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
    }
    Input { dir, file }
}

/// `hutch run NAME OPTIONS FILE` (the profile named after the command) on
/// the display `d`: waits up to `secs` seconds until a screenshot of the
/// host display satisfies `shown` (it must not before), and checks that
/// the window there is the nested server's, titled with the app id.
fn launch(
    s: &Scratch,
    d: &XDisplay,
    name: &str,
    options: &[&str],
    file: &Path,
    shown: impl Fn(&Image) -> bool,
    secs: u64,
) -> Server {
    assert!(
        !shown(&Image::take(s, d)),
        "the host display starts without the file's pixels"
    );
    let mut app = s.hutch(&["run", name]);
    app.args(options)
        .arg(file)
        .env("DISPLAY", format!(":{}", d.number))
        .env("XAUTHORITY", &d.xauthority);
    // Its stderr in a file, shown if it exits before its window appears.
    let log = s.path().join(format!("{name}.stderr"));
    let mut app = Server(
        app.stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until_within(
        secs,
        || {
            if let Some(status) = app.0.try_wait().unwrap() {
                panic!(
                    "{name} exited ({status}) before its window appeared: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            shown(&Image::take(s, d))
        },
        &format!("{name}'s window with the file on the host display"),
    );
    let tree = stdout(
        &x_client(s, d, "xwininfo")
            .args(["-root", "-tree"])
            .output()
            .unwrap(),
    );
    assert!(
        tree.contains(&format!("\"hutch.{name} (hutch)\"")),
        "{tree}"
    );
    app
}

/// Tries to append to the file, to create a file beside it and to read
/// ~/.ssh, as the profile's payload would (the file given as an argument,
/// so bound the same way), then the same outside; the file's content is
/// then `content` (read-only) or `content` and the appended `x`.
fn denied(s: &Scratch, d: &XDisplay, name: &str, input: &Input, content: &[u8], writable: bool) {
    let probe = "printf x >> \"$1\" 2>/dev/null && echo changed || echo kept; \
                 touch \"$(dirname \"$1\")/new\" 2>/dev/null && echo written || echo read-only; \
                 cat ~/.ssh/id_ed25519 2>/dev/null || echo no-key";
    let file = input.file.to_str().unwrap();
    let out = s
        .hutch(&[
            "run",
            "--profile",
            name,
            "--",
            "sh",
            "-c",
            probe,
            "sh",
            file,
        ])
        .env("DISPLAY", format!(":{}", d.number))
        .env("XAUTHORITY", &d.xauthority)
        .output()
        .unwrap();
    let expected = if writable { "changed" } else { "kept" };
    assert_eq!(ok(&out), format!("{expected}\nread-only\nno-key\n"));
    let beside = input.dir.path().join("new");
    assert!(!beside.exists());
    let mut now = content.to_vec();
    if writable {
        now.push(b'x');
    }
    assert_eq!(std::fs::read(&input.file).unwrap(), now);
    // The control: the same probe outside the sandbox.
    let outside = s
        .as_user(Path::new("/bin/sh"))
        .args(["-c", probe, "sh", file])
        .output()
        .unwrap();
    assert_eq!(ok(&outside), "changed\nwritten\nsecret\n");
    assert!(beside.exists());
}

/// The whole check of a shipped profile whose window shows its file.
fn shows_its_file(
    name: &str,
    options: &[&str],
    file_name: &str,
    content: &[u8],
    shown: impl Fn(&Image) -> bool,
    secs: u64,
    writable: bool,
) {
    let s = Scratch::new();
    home_file(&s, ".ssh/id_ed25519", b"secret\n");
    let input = input(file_name, content);
    let d = xvfb_sized(&s, SCREEN);
    let app = launch(&s, &d, name, options, &input.file, shown, secs);
    drop(app);
    denied(&s, &d, name, &input, content, writable);
}

/// An area of at least 100x100 pixels of the colour: the file's, not an
/// icon's or a palette swatch's.
fn area(colour: fn((u8, u8, u8)) -> bool) -> impl Fn(&Image) -> bool {
    move |image| image.count(colour) >= 10_000
}

fn is_light((r, g, b): (u8, u8, u8)) -> bool {
    r > 220 && g > 220 && b > 220
}

/// A 200x200 SVG drawing, a red square.
fn red_svg() -> Vec<u8> {
    b"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"200\" height=\"200\">\
      <rect width=\"200\" height=\"200\" fill=\"#ff0000\"/></svg>\n"
        .to_vec()
}

/// A flat OpenDocument text: one paragraph on a red background, 2 cm of
/// padding around its word.
fn red_fodt() -> Vec<u8> {
    br##"<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0"
 office:version="1.2" office:mimetype="application/vnd.oasis.opendocument.text">
 <office:automatic-styles>
  <style:style style:name="P1" style:family="paragraph">
   <style:paragraph-properties fo:background-color="#ff0000" fo:padding="2cm"/>
  </style:style>
 </office:automatic-styles>
 <office:body><office:text><text:p text:style-name="P1">red</text:p></office:text></office:body>
</office:document>
"##
    .to_vec()
}

/// A ZIP archive (stored, no compression) of one file, `notes.txt`.
fn zip_of_notes() -> Vec<u8> {
    let name = b"notes.txt";
    let data = b"hello from the archive\n";
    let crc = crc32(data);
    let mut zip = Vec::new();
    let le16 = |v: u16| v.to_le_bytes();
    let le32 = |v: u32| v.to_le_bytes();
    // Local file header.
    zip.extend_from_slice(&le32(0x0403_4b50));
    for v in [20u16, 0, 0, 0, 0] {
        zip.extend_from_slice(&le16(v));
    }
    zip.extend_from_slice(&le32(crc));
    zip.extend_from_slice(&le32(data.len() as u32));
    zip.extend_from_slice(&le32(data.len() as u32));
    zip.extend_from_slice(&le16(name.len() as u16));
    zip.extend_from_slice(&le16(0));
    zip.extend_from_slice(name);
    zip.extend_from_slice(data);
    // Central directory.
    let central = zip.len() as u32;
    zip.extend_from_slice(&le32(0x0201_4b50));
    for v in [20u16, 20, 0, 0, 0, 0] {
        zip.extend_from_slice(&le16(v));
    }
    zip.extend_from_slice(&le32(crc));
    zip.extend_from_slice(&le32(data.len() as u32));
    zip.extend_from_slice(&le32(data.len() as u32));
    for v in [name.len() as u16, 0, 0, 0, 0] {
        zip.extend_from_slice(&le16(v));
    }
    zip.extend_from_slice(&le32(0o100644 << 16));
    zip.extend_from_slice(&le32(0));
    zip.extend_from_slice(name);
    let size = zip.len() as u32 - central;
    // End of central directory.
    zip.extend_from_slice(&le32(0x0605_4b50));
    for v in [0u16, 0, 1, 1] {
        zip.extend_from_slice(&le16(v));
    }
    zip.extend_from_slice(&le32(size));
    zip.extend_from_slice(&le32(central));
    zip.extend_from_slice(&le16(0));
    zip
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

// ---- Viewers: the file shown, not writable ------------------------------------

#[test]
fn the_shipped_evince_profile_shows_a_pdf_and_cannot_change_it() {
    if !tools("evince") {
        return;
    }
    let pdf = red_pdf();
    shows_its_file(
        "evince",
        &[],
        "paper.pdf",
        &pdf,
        area(is_red),
        LIGHT_START,
        false,
    );
}

#[test]
fn the_shipped_zathura_profile_shows_a_pdf_and_cannot_change_it() {
    if !tools("zathura") {
        return;
    }
    if !Path::new("/usr/lib/x86_64-linux-gnu/zathura/libpdf-poppler.so").exists()
        && !Path::new("/usr/lib/aarch64-linux-gnu/zathura/libpdf-poppler.so").exists()
    {
        skip("zathura-pdf-poppler is not installed (.ci/run installs it)");
        return;
    }
    let pdf = red_pdf();
    shows_its_file(
        "zathura",
        &[],
        "paper.pdf",
        &pdf,
        area(is_red),
        LIGHT_START,
        false,
    );
}

#[test]
fn the_shipped_eog_profile_shows_an_image_and_cannot_change_it() {
    if !tools("eog") {
        return;
    }
    shows_its_file(
        "eog",
        &[],
        "photo.ppm",
        &blue_ppm(),
        area(is_blue),
        LIGHT_START,
        false,
    );
}

#[test]
fn the_shipped_xarchiver_profile_lists_an_archive_and_cannot_change_it() {
    if !tools("xarchiver") {
        return;
    }
    // The window, not blank: the host display's root is black.
    shows_its_file(
        "xarchiver",
        &[],
        "files.zip",
        &zip_of_notes(),
        |image| image.count(is_light) >= 50_000,
        LIGHT_START,
        false,
    );
}

// ---- Editors: the file written in place, nothing beside it --------------------

#[test]
fn the_shipped_mousepad_profile_saves_a_typed_line_into_its_file_only() {
    if !tools("mousepad") || !installed(&["xdotool"]) {
        return;
    }
    let s = Scratch::new();
    home_file(&s, ".ssh/id_ed25519", b"secret\n");
    let content = b"hello from the test\n";
    let input = input("notes.txt", content);
    let d = xvfb_sized(&s, SCREEN);
    // The text area, white on the black root.
    let app = launch(
        &s,
        &d,
        "mousepad",
        &[],
        &input.file,
        |image| image.count(is_light) >= 50_000,
        LIGHT_START,
    );
    // Typed into the host's Xephyr window, which passes it on to the
    // nested server's focused window; Ctrl+S saves.
    xdotool(&s, &d, &["mousemove", "300", "200"]);
    xdotool(&s, &d, &["type", "--delay", "50", "typed "]);
    xdotool(&s, &d, &["key", "ctrl+s"]);
    let saved = b"typed hello from the test\n";
    wait_until_within(
        LIGHT_START,
        || std::fs::read(&input.file).unwrap() == saved,
        "the typed line saved in the file",
    );
    drop(app);
    // Only the file: nothing else appeared in its directory.
    assert_eq!(names_in(input.dir.path()), ["notes.txt"]);
    denied(&s, &d, "mousepad", &input, saved, true);
}

#[test]
fn the_shipped_libreoffice_profile_shows_a_document_and_cannot_change_it() {
    if !tools("libreoffice") {
        return;
    }
    shows_its_file(
        "libreoffice",
        &[],
        "report.fodt",
        &red_fodt(),
        area(is_red),
        HEAVY_START,
        false,
    );
}

#[test]
fn the_shipped_gimp_profile_shows_an_image_and_may_change_only_it() {
    if !tools("gimp") {
        return;
    }
    shows_its_file(
        "gimp",
        &[],
        "photo.ppm",
        &blue_ppm(),
        area(is_blue),
        HEAVY_START,
        true,
    );
}

#[test]
fn the_shipped_inkscape_profile_deletes_a_shape_and_saves_its_file_only() {
    if !tools("inkscape") || !installed(&["xdotool"]) {
        return;
    }
    let s = Scratch::new();
    home_file(&s, ".ssh/id_ed25519", b"secret\n");
    let input = input("logo.svg", &red_svg());
    let d = xvfb_sized(&s, SCREEN);
    let app = launch(
        &s,
        &d,
        "inkscape",
        &[],
        &input.file,
        area(is_red),
        HEAVY_START,
    );
    // A click on the red square selects it, Delete removes it, Ctrl+S
    // saves: the drawing in the file no longer has it.
    let (x, y) = centre(&Image::take(&s, &d), is_red);
    xdotool(
        &s,
        &d,
        &["mousemove", &x.to_string(), &y.to_string(), "click", "1"],
    );
    xdotool(&s, &d, &["key", "Delete"]);
    xdotool(&s, &d, &["key", "ctrl+s"]);
    wait_until_within(
        HEAVY_START,
        || {
            let svg = std::fs::read_to_string(&input.file).unwrap();
            svg.contains("inkscape:") && !svg.contains("<rect")
        },
        "the drawing saved without its square",
    );
    drop(app);
    assert_eq!(names_in(input.dir.path()), ["logo.svg"]);
    let saved = std::fs::read(&input.file).unwrap();
    denied(&s, &d, "inkscape", &input, &saved, true);
}

/// `xdotool ARGS` on the host display: what it types or clicks reaches the
/// nested server's windows through the Xephyr window under the pointer.
fn xdotool(s: &Scratch, d: &XDisplay, args: &[&str]) {
    let out = x_client(s, d, "xdotool").args(args).output().unwrap();
    assert!(out.status.success(), "xdotool {args:?}: {}", stderr(&out));
}

/// The file names in a directory.
fn names_in(dir: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

/// The centre of the pixels of a colour.
fn centre(image: &Image, colour: fn((u8, u8, u8)) -> bool) -> (u32, u32) {
    let (mut sx, mut sy, mut n) = (0u64, 0u64, 0u64);
    for y in 0..image.height() {
        for x in 0..image.width() {
            if colour(image.rgb(x, y)) {
                (sx, sy, n) = (sx + u64::from(x), sy + u64::from(y), n + 1);
            }
        }
    }
    assert!(n > 0, "no pixel of the colour");
    ((sx / n) as u32, (sy / n) as u32)
}

#[test]
fn the_shipped_xarchiver_profile_extracts_into_its_volume_only() {
    if !tools("xarchiver") || !installed(&["unzip"]) {
        return;
    }
    let s = Scratch::new();
    let input = input("files.zip", &zip_of_notes());
    let d = xvfb_sized(&s, SCREEN);
    // `-x DIR`: extract into DIR and quit (xarchiver runs unzip, inside
    // the same sandbox). Into the volume at ~/Extracted, the files land
    // in the volume's directory on the host.
    let extracted = s.home().join("Extracted");
    let mut app = Server(
        s.hutch(&["run", "xarchiver", "-x", extracted.to_str().unwrap()])
            .arg(&input.file)
            .env("DISPLAY", format!(":{}", d.number))
            .env("XAUTHORITY", &d.xauthority)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // An error would wait in a dialog: a deadline, not a plain wait.
    let mut status = None;
    wait_until_within(
        LIGHT_START,
        || {
            status = app.0.try_wait().unwrap();
            status.is_some()
        },
        "xarchiver's exit after extracting",
    );
    assert!(status.unwrap().success());
    let volume = s.home().join(".local/share/hutch/volumes/xarchiver");
    assert_eq!(
        std::fs::read(volume.join("notes.txt")).unwrap(),
        b"hello from the archive\n"
    );
    // Nothing in the home's own ~/Extracted (the volume is bound over
    // it), nothing beside the archive.
    assert!(!extracted.join("notes.txt").exists());
    assert_eq!(names_in(input.dir.path()), ["files.zip"]);
}

#[test]
fn the_shipped_libreoffice_profile_saves_copies_into_its_volume_only() {
    if !tools("libreoffice") {
        return;
    }
    let s = Scratch::new();
    let input = input("report.fodt", &red_fodt());
    let d = xvfb_sized(&s, SCREEN);
    // A copy of the read-only document, converted to .odt by LibreOffice
    // itself (headless) into ~/LibreOffice: it lands in the volume's
    // directory on the host, and nothing beside the original.
    let outdir = s.home().join("LibreOffice");
    let mut app = Server(
        s.hutch(&["run", "libreoffice", "--headless", "--convert-to", "odt"])
            .arg("--outdir")
            .arg(&outdir)
            .arg(&input.file)
            .env("DISPLAY", format!(":{}", d.number))
            .env("XAUTHORITY", &d.xauthority)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut status = None;
    wait_until_within(
        HEAVY_START,
        || {
            status = app.0.try_wait().unwrap();
            status.is_some()
        },
        "LibreOffice's exit after converting",
    );
    assert!(status.unwrap().success());
    let volume = s
        .home()
        .join(".local/share/hutch/volumes/libreoffice-documents");
    let odt = std::fs::read(volume.join("report.odt")).unwrap();
    assert!(odt.starts_with(b"PK"), "an OpenDocument (ZIP) file");
    assert!(!outdir.join("report.odt").exists());
    assert_eq!(names_in(input.dir.path()), ["report.fodt"]);
    assert_eq!(std::fs::read(&input.file).unwrap(), red_fodt());
}
