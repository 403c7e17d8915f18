//! Tries the installed xdg-dbus-proxy for the holes its published security
//! fixes closed, rather than trusting its version: Debian backports fixes
//! without changing it (bookworm's 0.1.4-3+deb12u1 has 0.1.7's eavesdrop
//! fix, +deb12u2 0.1.8's reply fix).
//!
//! The probe starts a private `dbus-daemon` (its own configuration, a
//! socket in a fresh directory, every eavesdrop allowed, so that only the
//! proxy stands in the way) and the proxy on it with one rule,
//! `--talk=` [`ALLOWED`]. A service connection of hutch's owns
//! [`ALLOWED`] and [`SECRET`] on the bus directly; a client connection goes
//! through the proxy and tries:
//!
//! - **eavesdrop** (GHSA-vjp5-hjfm-7677, fixed in 0.1.7): `AddMatch` with
//!   `eavesdrop ='true'` (a space before `=`), which the proxy's parser
//!   missed and dbus-daemon accepts: the app would receive every message on
//!   the bus, including those between other peers. Accepted: vulnerable.
//!   The plain spelling `eavesdrop='true'` is tried first: every version
//!   refuses it, unless the proxy filters nothing (vulnerable too).
//! - **reply** (GHSA-r7hp-698j-2h6c, CVE-2026-94422, fixed in 0.1.8): the
//!   service calls the client, and the client answers with a *method call*
//!   to [`SECRET`] that quotes the call's serial as its reply serial, then
//!   makes an ordinary call to [`ALLOWED`]. A proxy that takes any message
//!   quoting an expected serial for a reply forwards the first one: a
//!   call to a name the rules do not let the app talk to. The service's
//!   connection sees the messages in the order the bus got them, so no
//!   wait for something that does not come is needed.
//!
//! Both break the filter's promise (what the app may see and call), so a
//! vulnerable proxy stops a `[dbus]` launch unless the profile says
//! best-effort (`helpers::desktop`). The result is cached per proxy
//! binary (device, inode, size, modification and change times) in hutch's
//! runtime directory: a launch pays for the probe once per installed
//! proxy.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use serde::Serialize;

use super::process::{self, HelperProcess, Program};
use crate::dbus::{Connection, DbusError, Kind, Message, Value};

/// The name the probe's rules let the client talk to.
pub const ALLOWED: &str = "org.hutch.Probe.Allowed";
/// A name the client may not talk to.
pub const SECRET: &str = "org.hutch.Probe.Secret";
/// The whole probe's deadline.
const TIMEOUT: Duration = Duration::from_secs(5);
const NAME: &str = "the xdg-dbus-proxy probe";
/// The cache file's first line; a format change gets a new one.
const CACHE_MAGIC: &str = "hutch xdg-dbus-proxy probe 1";

/// One fix, tried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Fixed,
    Vulnerable,
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// GHSA-vjp5-hjfm-7677: `eavesdrop ='true'` through the filter.
    pub eavesdrop: Verdict,
    /// GHSA-r7hp-698j-2h6c: a method call passed off as a reply.
    pub reply: Verdict,
    /// Read from the cache rather than tried now.
    pub cached: bool,
}

impl Report {
    /// The holes found, each in a few words with its advisory.
    pub fn holes(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.eavesdrop == Verdict::Vulnerable {
            out.push("an app can eavesdrop on the whole bus with `eavesdrop ='true'` (GHSA-vjp5-hjfm-7677, fixed in 0.1.7)");
        }
        if self.reply == Verdict::Vulnerable {
            out.push("an app can call any name by passing a method call off as a reply (GHSA-r7hp-698j-2h6c, fixed in 0.1.8)");
        }
        out
    }

    /// One line for `hutch doctor` and `--explain`.
    pub fn summary(&self) -> String {
        let word = |v: &Verdict| match v {
            Verdict::Fixed => "fixed",
            Verdict::Vulnerable => "VULNERABLE",
        };
        format!(
            "eavesdrop-match bypass (GHSA-vjp5-hjfm-7677): {}; method call passed off as a reply (GHSA-r7hp-698j-2h6c): {}",
            word(&self.eavesdrop),
            word(&self.reply)
        )
    }

    fn encode(&self, key: &str) -> String {
        let v = |v: &Verdict| match v {
            Verdict::Fixed => "fixed",
            Verdict::Vulnerable => "vulnerable",
        };
        format!(
            "{CACHE_MAGIC}\n{key}\neavesdrop {}\nreply {}\n",
            v(&self.eavesdrop),
            v(&self.reply)
        )
    }

    fn decode(text: &str, key: &str) -> Option<Report> {
        let mut lines = text.lines();
        if lines.next()? != CACHE_MAGIC || lines.next()? != key {
            return None;
        }
        let mut verdict = |name: &str| match lines.next()?.strip_prefix(name)? {
            " fixed" => Some(Verdict::Fixed),
            " vulnerable" => Some(Verdict::Vulnerable),
            _ => None,
        };
        Some(Report {
            eavesdrop: verdict("eavesdrop")?,
            reply: verdict("reply")?,
            cached: true,
        })
    }
}

/// What identifies one installed proxy binary.
fn cache_key(proxy: &Path) -> Result<String, String> {
    let m = std::fs::metadata(proxy).map_err(|e| format!("{}: {e}", proxy.display()))?;
    Ok(format!(
        "{} dev {} ino {} size {} mtime {}.{} ctime {}.{}",
        proxy.display(),
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

/// The report for `proxy`: from `cache` when it was made for this very
/// binary, else tried now (with `daemon`, a dbus-daemon) and written there.
pub fn cached(proxy: &Path, daemon: &Path, cache: &Path) -> Result<Report, String> {
    let key = cache_key(proxy)?;
    if let Some(r) = std::fs::read_to_string(cache)
        .ok()
        .and_then(|t| Report::decode(&t, &key))
    {
        return Ok(r);
    }
    let report = probe(proxy, daemon)?;
    // A cache that cannot be written only costs the next launch a probe.
    if let Some(dir) = cache.parent() {
        let _ = std::fs::create_dir_all(dir);
        let tmp = cache.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, report.encode(&key)).is_ok() {
            let _ = std::fs::rename(&tmp, cache);
        }
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(report)
}

/// A directory of the probe's, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Processes of the probe, killed when dropped.
struct Running(Vec<HelperProcess>);

impl Drop for Running {
    fn drop(&mut self) {
        for p in &mut self.0 {
            p.wait_or_kill(Duration::ZERO);
        }
    }
}

/// Tries `proxy` now, on a private bus of `daemon`.
pub fn probe(proxy: &Path, daemon: &Path) -> Result<Report, String> {
    let deadline = Instant::now() + TIMEOUT;
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute() && d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let dir = nix::unistd::mkdtemp(&base.join("hutch-proxy-probe-XXXXXX")).map_err(|e| {
        format!(
            "cannot make a directory in {}: {}",
            base.display(),
            e.desc()
        )
    })?;
    let scratch = Scratch(dir);
    let bus_socket = scratch.0.join("bus");
    let proxy_socket = scratch.0.join("proxy");
    let config = scratch.0.join("bus.conf");
    std::fs::write(
        &config,
        format!(
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig><type>session</type><listen>unix:path={}</listen><auth>EXTERNAL</auth><policy context=\"default\"><allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/><allow own=\"*\"/></policy></busconfig>\n",
            bus_socket.display()
        ),
    )
    .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("/dev/null: {e}"))?;
    let mut running = Running(Vec::new());

    // The bus: ready once it prints its address.
    let (addr_r, addr_w) = pipe()?;
    let config_arg = format!("--config-file={}", config.display());
    let argv = [
        daemon.as_os_str(),
        config_arg.as_ref(),
        "--nofork".as_ref(),
        "--nopidfile".as_ref(),
        "--print-address=1".as_ref(),
    ];
    running.0.push(start(
        Program::new(&argv, &[])
            .map_err(|e| e.to_string())?
            .pass_fd(&null, 0)
            .pass_owned(addr_w, 1)
            .pass_fd(&null, 2),
    )?);
    wait_byte(addr_r, deadline, "dbus-daemon")?;
    let address = format!("unix:path={}", bus_socket.display());

    // The service: both names, on the bus directly.
    let mut service = Connection::open(&address, deadline).map_err(bus_error("the private bus"))?;
    for name in [ALLOWED, SECRET] {
        let call = Message::method_call(
            crate::dbus::BUS_NAME,
            "/org/freedesktop/DBus",
            crate::dbus::BUS_NAME,
            "RequestName",
            &[Value::Str(name.into()), Value::U32(4)],
        )
        .map_err(bus_error("RequestName"))?;
        service.call(&call).map_err(bus_error("RequestName"))?;
    }

    // The proxy, ready once it writes to its --fd.
    let (ready_r, ready_w) = pipe()?;
    let proxy_arg = proxy_socket.display().to_string();
    let talk = format!("--talk={ALLOWED}");
    let argv = [
        proxy.as_os_str(),
        "--fd=3".as_ref(),
        address.as_ref(),
        proxy_arg.as_ref(),
        "--filter".as_ref(),
        talk.as_ref(),
    ];
    running.0.push(start(
        Program::new(&argv, &[])
            .map_err(|e| e.to_string())?
            .pass_fd(&null, 0)
            .pass_fd(&null, 1)
            .pass_fd(&null, 2)
            .pass_owned(ready_w, 3),
    )?);
    // Keep the read end open while probing: closing it stops the proxy.
    let ready_r = wait_ready(ready_r, deadline).map_err(|why| {
        match running.0.last_mut().and_then(HelperProcess::finish) {
            Some(status) => format!("{why} (status {})", crate::sys::exit_code(status)),
            None => why,
        }
    })?;
    let mut client = Connection::open(&format!("unix:path={proxy_arg}"), deadline)
        .map_err(bus_error("the proxy"))?;

    let eavesdrop = try_eavesdrop(&mut client)?;
    let reply = try_reply(&mut service, &mut client)?;
    drop(client);
    drop(ready_r);
    drop(running);
    drop(scratch);
    Ok(Report {
        eavesdrop,
        reply,
        cached: false,
    })
}

/// The eavesdrop probe on `client`, a connection through the proxy.
fn try_eavesdrop(client: &mut Connection) -> Result<Verdict, String> {
    let add_match = |c: &mut Connection, rule: &str| -> Result<bool, String> {
        let call = Message::method_call(
            crate::dbus::BUS_NAME,
            "/org/freedesktop/DBus",
            crate::dbus::BUS_NAME,
            "AddMatch",
            &[Value::Str(rule.into())],
        )
        .map_err(bus_error("AddMatch"))?;
        match c.call(&call) {
            Ok(_) => Ok(true),
            Err(DbusError::Reply { .. }) => Ok(false),
            Err(e) => Err(bus_error("AddMatch")(e)),
        }
    };
    // The plain spelling first: every version refuses it, unless it
    // filters nothing at all.
    Ok(
        if add_match(client, "eavesdrop='true',type='method_call'")?
            || add_match(client, "eavesdrop ='true',type='method_call'")?
        {
            Verdict::Vulnerable
        } else {
            Verdict::Fixed
        },
    )
}

/// The reply probe: `service` on the bus directly, `client` through the
/// proxy.
fn try_reply(service: &mut Connection, client: &mut Connection) -> Result<Verdict, String> {
    // The reply probe. The service calls the client (no reply awaited by
    // hutch's blocking client; the proxy expects one all the same).
    let ping = Message::method_call(
        client.unique_name(),
        "/probe",
        "org.hutch.Probe",
        "Ping",
        &[],
    )
    .map_err(bus_error("Ping"))?;
    let ping_serial = service.send(&ping).map_err(bus_error("Ping"))?;
    let got = loop {
        let m = client.read_message().map_err(bus_error("the proxy"))?;
        if m.kind == Kind::MethodCall && m.member.as_deref() == Some("Ping") {
            break m;
        }
    };
    debug_assert_eq!(got.serial, ping_serial);
    let mut spoof = Message::method_call(SECRET, "/probe", "org.hutch.Probe", "Spoofed", &[])
        .map_err(bus_error("the spoofed call"))?;
    spoof.reply_serial = Some(got.serial);
    spoof.flags |= 1; // NO_REPLY_EXPECTED
    let spoof_sent = client.send(&spoof).is_ok();
    let mut marker = Message::method_call(ALLOWED, "/probe", "org.hutch.Probe", "Marker", &[])
        .map_err(bus_error("the marker call"))?;
    marker.flags |= 1;
    if spoof_sent {
        // A proxy that drops the client for the attempt is fixed too;
        // then the marker never comes, and the deadline ends the wait.
        let _ = client.send(&marker);
    }
    Ok(loop {
        match service.read_message() {
            Ok(m) if m.member.as_deref() == Some("Spoofed") => break Verdict::Vulnerable,
            Ok(m) if m.member.as_deref() == Some("Marker") => break Verdict::Fixed,
            Ok(_) => continue,
            // Nothing came: not forwarded.
            Err(DbusError::Timeout) => break Verdict::Fixed,
            Err(e) => return Err(bus_error("the private bus")(e)),
        }
    })
}

fn start(program: Program) -> Result<HelperProcess, String> {
    process::spawn_program(NAME, &program).map_err(|e| e.to_string())
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {}", e.desc()))
}

fn bus_error(what: &'static str) -> impl Fn(DbusError) -> String {
    move |e| format!("{what}: {e}")
}

/// Waits until `fd` is readable before `deadline`.
fn readable(fd: &OwnedFd, deadline: Instant, who: &str) -> Result<(), String> {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("waiting for {who}: {}", e.desc())),
            Ok(0) if left.is_zero() => {
                return Err(format!(
                    "{who} was not ready within {} s",
                    TIMEOUT.as_secs()
                ));
            }
            Ok(0) => continue,
            Ok(_) => return Ok(()),
        }
    }
}

/// Waits for `who` to write a byte to `fd` (then closes it).
fn wait_byte(fd: OwnedFd, deadline: Instant, who: &str) -> Result<(), String> {
    readable(&fd, deadline, who)?;
    let mut byte = [0u8; 1];
    match std::fs::File::from(fd).read(&mut byte) {
        Ok(1) => Ok(()),
        _ => Err(format!("{who} exited before it was ready")),
    }
}

/// Waits for the proxy's byte on its `--fd`; returns the read end, which
/// must stay open while the proxy is needed.
fn wait_ready(fd: OwnedFd, deadline: Instant) -> Result<OwnedFd, String> {
    readable(&fd, deadline, "xdg-dbus-proxy")?;
    let mut byte = [0u8; 1];
    match nix::unistd::read(&fd, &mut byte) {
        Ok(1) => Ok(fd),
        _ => Err("xdg-dbus-proxy exited before it was listening".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_holds_for_one_binary_only() {
        let r = Report {
            eavesdrop: Verdict::Fixed,
            reply: Verdict::Vulnerable,
            cached: false,
        };
        let text = r.encode("key A");
        assert_eq!(
            Report::decode(&text, "key A"),
            Some(Report {
                cached: true,
                ..r.clone()
            })
        );
        assert_eq!(Report::decode(&text, "key B"), None);
        assert_eq!(Report::decode("garbage", "key A"), None);
        assert_eq!(r.holes().len(), 1);
        assert!(
            r.summary()
                .contains("reply (GHSA-r7hp-698j-2h6c): VULNERABLE")
        );
    }
}
