//! X11 test toolkit shared by the desktop tests: an Xvfb display of the
//! test user with cookie authentication, X clients on it, screenshots read
//! pixel by pixel, and the shipped viewer profiles' common check (the
//! file shown in a nested server's window, not writable, the rest of the
//! home absent).

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::*;

pub fn bin(name: &str) -> PathBuf {
    PathBuf::from("/usr/bin").join(name)
}

/// A server process of the test user, stopped when dropped: SIGTERM, so
/// that it removes its sockets (Xvfb's in /tmp/.X11-unix), then SIGKILL
/// if it is still there after 5 s.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn hostname() -> String {
    nix::unistd::gethostname().unwrap().into_string().unwrap()
}

pub fn random_hex() -> String {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An Xvfb display of the test user with cookie authentication: its
/// cookie is in the user's ~/.Xauthority under the host's name (as a
/// display manager writes it), and the server accepts nobody without it.
pub struct XDisplay {
    pub _server: Server,
    pub number: u32,
    pub xauthority: PathBuf,
}

pub fn xvfb_sized(s: &Scratch, screen: &str) -> XDisplay {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    if is_root() && !Path::new("/tmp/.X11-unix").exists() {
        std::fs::create_dir_all("/tmp/.X11-unix").unwrap();
        std::fs::set_permissions(
            "/tmp/.X11-unix",
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
    }
    let xauthority = s.home().join(".Xauthority");
    let base = 150 + std::process::id() % 500;
    for _ in 0..40 {
        let n = base + NEXT.fetch_add(1, Ordering::Relaxed);
        if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
            continue;
        }
        let st = s
            .as_user(&bin("xauth"))
            .arg("-f")
            .arg(&xauthority)
            .args([
                "add",
                &format!("{}/unix:{n}", hostname()),
                "MIT-MAGIC-COOKIE-1",
                &random_hex(),
            ])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        // The server says its number on this pipe once it accepts clients.
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let w_fd = w.as_raw_fd();
        let mut cmd = s.as_user(&bin("Xvfb"));
        cmd.arg(format!(":{n}"))
            .args(["-displayfd", &w_fd.to_string(), "-auth"])
            .arg(&xauthority)
            .args(["-nolisten", "tcp", "-screen", "0", screen, "-br"])
            .args(["-noreset"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let inherit = move || {
            // SAFETY: clears close-on-exec on a descriptor this process owns.
            if unsafe { libc::fcntl(w_fd, libc::F_SETFD, 0) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        };
        // SAFETY: between fork and exec the closure makes one fcntl call,
        // which is async-signal-safe: the server inherits the write end only.
        unsafe { cmd.pre_exec(inherit) };
        let server = Server(cmd.spawn().unwrap());
        drop(w);
        let mut said = String::new();
        let _ = std::fs::File::from(r).read_to_string(&mut said);
        if said.trim() == n.to_string() {
            return XDisplay {
                _server: server,
                number: n,
                xauthority,
            };
        }
    }
    panic!("no free X display number for Xvfb");
}

/// An X client of the test user on `d`, with the user's own cookie.
pub fn x_client(s: &Scratch, d: &XDisplay, program: &str) -> Command {
    let mut c = s.as_user(&bin(program));
    c.env("DISPLAY", format!(":{}", d.number))
        .env("XAUTHORITY", &d.xauthority);
    c
}

/// A screenshot of a display's root window (xwd's format, ZPixmap).
pub struct Image {
    width: u32,
    height: u32,
    bytes_per_line: u32,
    bytes_per_pixel: u32,
    lsb_first: bool,
    masks: [u32; 3],
    data: Vec<u8>,
}

impl Image {
    pub fn take(s: &Scratch, d: &XDisplay) -> Image {
        let out = x_client(s, d, "xwd")
            .args(["-root", "-silent"])
            .output()
            .unwrap();
        assert!(out.status.success(), "xwd: {}", stderr(&out));
        Image::parse(out.stdout)
    }

    pub fn parse(bytes: Vec<u8>) -> Image {
        let word = |i: usize| u32::from_be_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap());
        let (header, format, bpp) = (word(0), word(2), word(11));
        assert_eq!(format, 2, "a ZPixmap");
        assert!(bpp == 32 || bpp == 24, "{bpp} bits per pixel");
        let colors = word(19);
        let start = (header + colors * 12) as usize;
        Image {
            width: word(4),
            height: word(5),
            bytes_per_line: word(12),
            bytes_per_pixel: bpp / 8,
            lsb_first: word(7) == 0,
            masks: [word(14), word(15), word(16)],
            data: bytes[start..].to_vec(),
        }
    }

    /// (red, green, blue) at a point.
    pub fn rgb(&self, x: u32, y: u32) -> (u8, u8, u8) {
        assert!(x < self.width && y < self.height);
        let at = (y * self.bytes_per_line + x * self.bytes_per_pixel) as usize;
        let mut px = [0u8; 4];
        px[..self.bytes_per_pixel as usize]
            .copy_from_slice(&self.data[at..at + self.bytes_per_pixel as usize]);
        let v = if self.lsb_first {
            u32::from_le_bytes(px)
        } else {
            u32::from_be_bytes(px) >> (8 * (4 - self.bytes_per_pixel))
        };
        let channel = |m: u32| ((v & m) >> m.trailing_zeros()) as u8;
        (
            channel(self.masks[0]),
            channel(self.masks[1]),
            channel(self.masks[2]),
        )
    }
}

pub fn is_red((r, g, b): (u8, u8, u8)) -> bool {
    r > 200 && g < 60 && b < 60
}

pub fn is_black((r, g, b): (u8, u8, u8)) -> bool {
    r < 30 && g < 30 && b < 30
}

#[track_caller]
pub fn wait_until(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what} never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn is_blue((r, g, b): (u8, u8, u8)) -> bool {
    r < 60 && g < 60 && b > 200
}

/// Whether any pixel of `image` is blue.
pub fn any_blue(image: &Image) -> bool {
    (0..image.height).any(|y| (0..image.width).any(|x| is_blue(image.rgb(x, y))))
}

/// Whether any pixel of `image` is red.
pub fn any_red(image: &Image) -> bool {
    (0..image.height).any(|y| (0..image.width).any(|x| is_red(image.rgb(x, y))))
}

/// The pids of the Xephyr processes whose title is `title`.
pub fn xephyrs_titled(title: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|&b| b == 0).collect();
                args.first().is_some_and(|a| a.ends_with(b"Xephyr"))
                    && args.contains(&title.as_bytes())
            })
        })
        .collect()
}

/// A one-page PDF, 200x200 points, filled red: its offsets counted, so
/// that mupdf reads it without repairing it.
pub fn red_pdf() -> Vec<u8> {
    let content = "1 0 0 rg 0 0 200 200 re f\n";
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>".to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

/// A 120x120 binary PPM, all blue.
pub fn blue_ppm() -> Vec<u8> {
    let mut ppm = b"P6\n120 120\n255\n".to_vec();
    for _ in 0..120 * 120 {
        ppm.extend_from_slice(&[0, 0, 255]);
    }
    ppm
}

/// A two-second 160x120 clip at 25 frames a second, all blue: raw
/// YUV4MPEG2 (4:2:0), which mpv reads without a demuxer library's help
/// and a test can write without an encoder.
pub fn blue_y4m() -> Vec<u8> {
    let (w, h) = (160, 120);
    let mut clip = format!("YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg\n").into_bytes();
    for _ in 0..50 {
        clip.extend_from_slice(b"FRAME\n");
        // Blue in BT.601 full range: Y 29, Cb 255, Cr 107.
        clip.extend(std::iter::repeat_n(29u8, w * h));
        clip.extend(std::iter::repeat_n(255u8, w * h / 4));
        clip.extend(std::iter::repeat_n(107u8, w * h / 4));
    }
    clip
}

/// Writes `bytes` at `rel` under the scratch home, owned by the test user.
pub fn home_file(s: &Scratch, rel: &str, bytes: &[u8]) -> PathBuf {
    let path = s.home().join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    s.chown_all();
    path
}

/// A shipped viewer profile, from its window to what it must not do:
/// `hutch run NAME [OPTIONS] FILE` (the profile named after the command,
/// and its command) shows `file` in a nested X server's window on the host
/// display, whose screenshot starts black and then has the file's
/// pixels (`shown`); in the same profile, the file (bound read-only as a
/// file argument) cannot be changed, nothing written beside it reaches
/// the real directory, and the rest of the home is not there, while the
/// same probes succeed outside the sandbox.
pub fn a_viewer_shows_its_file_and_cannot_change_it(
    name: &str,
    options: &[&str],
    file: &str,
    content: &[u8],
    shown: impl Fn(&Image) -> bool,
) {
    let s = Scratch::new();
    let file = home_file(&s, file, content);
    home_file(&s, ".ssh/id_ed25519", b"secret\n");
    let d = xvfb(&s);
    let display = format!(":{}", d.number);
    let env = [
        ("DISPLAY", display.as_str()),
        ("XAUTHORITY", d.xauthority.to_str().unwrap()),
    ];
    assert!(
        !shown(&Image::take(&s, &d)),
        "the host display starts blank"
    );
    let mut app = s.hutch(&["run", name]);
    app.args(options).arg(&file);
    for (k, v) in env {
        app.env(k, v);
    }
    let app = Server(
        app.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(
        || shown(&Image::take(&s, &d)),
        &format!("{name}'s window with the file on the host display"),
    );
    // The window is the nested server's, titled with the app id.
    let tree = stdout(
        &x_client(&s, &d, "xwininfo")
            .args(["-root", "-tree"])
            .output()
            .unwrap(),
    );
    assert!(
        tree.contains(&format!("\"hutch.{name} (hutch)\"")),
        "{tree}"
    );
    drop(app);

    // The file is the probe's argument, as it is the viewer's: bound
    // (file_arguments) the same way.
    let probe = "test -f \"$1\" || echo missing; \
                 printf x >> \"$1\" 2>/dev/null && echo changed || echo kept; \
                 touch \"$(dirname \"$1\")/new\" 2>/dev/null && echo written || echo read-only; \
                 cat ~/.ssh/id_ed25519 2>/dev/null || echo no-key";
    let file_arg = file.to_str().unwrap();
    let mut inside = s.hutch(&[
        "run",
        "--profile",
        name,
        "--",
        "sh",
        "-c",
        probe,
        "sh",
        file_arg,
    ]);
    for (k, v) in env {
        inside.env(k, v);
    }
    let said = ok(&inside.output().unwrap());
    let lines: Vec<&str> = said.lines().collect();
    // Beside the file, a write fails or lands in the sandbox's own /tmp
    // (where the test's home is): never in the real directory.
    assert!(
        lines.len() == 3 && lines[0] == "kept" && lines[2] == "no-key",
        "{said}"
    );
    let beside = file.parent().unwrap().join("new");
    assert!(!beside.exists(), "{said}");
    assert_eq!(std::fs::read(&file).unwrap(), content, "the file changed");
    // The control: the same probe outside the sandbox.
    let outside = s
        .as_user(Path::new("/bin/sh"))
        .args(["-c", probe, "sh", file_arg])
        .output()
        .unwrap();
    assert_eq!(ok(&outside), "changed\nwritten\nsecret\n");
    assert!(beside.exists());
}

/// An Xvfb display of 320x240 pixels (see [`xvfb_sized`]).
pub fn xvfb(s: &Scratch) -> XDisplay {
    xvfb_sized(s, "320x240x24")
}

impl Image {
    /// How many pixels satisfy `pred`: a drawn area, told from an app's
    /// own icons and swatches of the same colour by its size.
    pub fn count(&self, pred: impl Fn((u8, u8, u8)) -> bool) -> usize {
        (0..self.height)
            .map(|y| (0..self.width).filter(|&x| pred(self.rgb(x, y))).count())
            .sum()
    }

    /// How many pixels the image has.
    pub fn pixels(&self) -> usize {
        (self.width * self.height) as usize
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }
}

/// [`wait_until`] with a deadline of `secs` seconds, for apps that take
/// long to start (a browser or an office suite on a loaded machine).
#[track_caller]
pub fn wait_until_within(secs: u64, mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} never appeared within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
