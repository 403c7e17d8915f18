//! The desktop session, the helper of `[desktop]` (see `plan::desktop`):
//! before clone, the launcher makes `<hutch's runtime dir>/desktop/<pid>` (0700, checked
//! like every directory hutch writes to), writes into it the private
//! Xauthority and the copy of the PulseAudio cookie, and, where the
//! compositor offers it, creates the Wayland security-context socket: it
//! binds and listens on `wayland-0` there and registers it with the
//! compositor together with the read end of a pipe whose write end this
//! session holds. The sandbox's binds take these paths. When the session
//! ends (the sandbox is gone; or hutch is killed, and the kernel closes the
//! pipe), the compositor stops accepting on the socket; the directory is
//! removed when the session finishes (or by its `Drop`, the safety net of
//! a launch that failed half-way), or, after a SIGKILL, by the next
//! desktop launch, which removes the directories of hutch processes that
//! no longer exist.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::{CloneSetup, Helper, HelperError, Started};
use crate::plan::desktop::{
    CookieSource, DesktopPlan, ENGINE, NESTED_AUTH_FILE, NESTED_PROFILE_FILE, NESTED_SOCKET_DIR,
    PROXY_PROFILE_FILE, PULSE_COOKIE_FILE, WAYLAND_LISTENER, XAUTHORITY_FILE,
};
use crate::safe_fs::{self, FsError, Require};
use crate::wayland::{self, Metadata, WaylandError};
use crate::xauth;

/// How long the compositor may take to register the security context.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest cookie file hutch copies (PulseAudio's is 256 bytes).
const MAX_COOKIE: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{what} {}: {}", .path.display(), .errno.desc())]
    Io {
        what: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    #[error("the X11 cookie for display {number} is no longer in {} (hostname {hostname:?})", .file.display())]
    CookieGone {
        file: PathBuf,
        number: String,
        hostname: String,
    },
    #[error(
        "the Wayland compositor offers wp_security_context_v1 but registering the sandbox's socket failed, so hutch does not start it with the compositor's own socket: {0}"
    )]
    SecurityContext(#[source] WaylandError),
}

/// What a desktop launch holds while the sandbox runs.
pub struct Session {
    plan: DesktopPlan,
    /// The directory, once made (removed when the session ends).
    dir: Option<PathBuf>,
    /// The write end of the security context's close pipe.
    close: Option<OwnedFd>,
    /// `[dbus]`'s proxy, listening in the directory.
    proxy: Option<super::dbus::Proxy>,
    /// `x11 = "nested"`'s server.
    nested: Option<super::xephyr::Nested>,
    /// The directories made outside the launch directory (the nested
    /// server's, the proxy's), removed at the end.
    outside: Vec<PathBuf>,
}

impl Session {
    /// The session for `plan`; nothing is made until before clone.
    pub fn new(plan: &DesktopPlan) -> Session {
        Session {
            plan: plan.clone(),
            dir: None,
            close: None,
            proxy: None,
            nested: None,
            outside: Vec::new(),
        }
    }

    /// Makes the launch directory and everything in it, for the caller
    /// `uid` (who owns hutch's runtime directory).
    fn make(&mut self, uid: u32) -> Result<(), DesktopError> {
        let plan = &self.plan;
        let parent_path = plan.launch_dir.parent().unwrap_or(Path::new("/"));
        let parent = safe_fs::open_dir_for_writing(parent_path, uid, true)?;
        sweep_stale(&parent);
        let name = plan
            .launch_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("0");
        // A directory of this pid is a dead launcher's (the pid was reused).
        let _ = std::fs::remove_dir_all(&plan.launch_dir);
        let dir = parent
            .sub(name, Some(0o700), Require::writable_only_by(uid))?
            .ok_or_else(|| FsError::NotADirectory(plan.launch_dir.clone()))?;
        // From here on, finish or Drop removes what was made, also on an error.
        self.dir = Some(plan.launch_dir.clone());
        if let Some(x11) = &plan.x11
            && let Some(nested) = &x11.nested
        {
            // A fresh cookie, for the nested server and the app alone.
            let mut cookie = [0u8; 16];
            crate::sys::getrandom(&mut cookie).map_err(|errno| DesktopError::Io {
                what: "cannot make a cookie for",
                path: plan.launch_dir.clone(),
                errno,
            })?;
            let file = xauth::encode_wild(&x11.display.to_string(), &cookie);
            write_private(&dir, XAUTHORITY_FILE, &file, uid)?;
            let profile = super::xephyr::profile(&nested.dir, &nested.xephyr);
            write_private(&dir, NESTED_PROFILE_FILE, profile.as_bytes(), uid)?;
            let nested_dir = private_dir(&nested.dir, uid)?;
            self.outside.push(nested.dir.clone());
            write_private(&nested_dir, NESTED_AUTH_FILE, &file, uid)?;
            nested_dir.sub(
                NESTED_SOCKET_DIR,
                Some(0o700),
                Require::writable_only_by(uid),
            )?;
        } else if let Some(x11) = &plan.x11
            && let Some(source) = &x11.cookie
        {
            let cookie = read_cookie(source)?;
            let file = xauth::encode_wild(&x11.display.to_string(), &cookie);
            write_private(&dir, XAUTHORITY_FILE, &file, uid)?;
        }
        if let Some(source) = plan.audio.as_ref().and_then(|a| a.pulse_cookie.as_ref()) {
            let bytes = read_bounded(source, MAX_COOKIE)?;
            write_private(&dir, PULSE_COOKIE_FILE, &bytes, uid)?;
        }
        if let Some(dbus) = &plan.dbus {
            let profile = super::dbus::profile(dbus);
            write_private(&dir, PROXY_PROFILE_FILE, profile.as_bytes(), uid)?;
            private_dir(&dbus.dir, uid)?;
            self.outside.push(dbus.dir.clone());
        }
        if let Some(w) = &plan.wayland
            && let Some(listener) = &w.security_context
        {
            self.close = Some(register(&w.compositor, listener, plan)?);
        }
        Ok(())
    }

    /// Ends the security context and removes the directory.
    fn end(&mut self) {
        // The servers' sockets are in the directory: they go first, both
        // asked at once, then each waited for.
        if let Some(proxy) = self.proxy.as_mut() {
            proxy.ask_stop();
        }
        if let Some(nested) = self.nested.as_mut() {
            nested.ask_stop();
        }
        if let Some(mut proxy) = self.proxy.take() {
            proxy.wait();
        }
        if let Some(mut nested) = self.nested.take() {
            nested.wait();
        }
        for dir in self.outside.drain(..) {
            let _ = std::fs::remove_dir_all(dir);
        }
        // The compositor stops accepting on the socket once this is closed.
        self.close = None;
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Helper for Session {
    fn name(&self) -> &'static str {
        "the desktop session"
    }

    /// The files and sockets the sandbox's binds take must exist before
    /// the child opens its bind sources.
    fn before_clone(&mut self, _setup: &mut CloneSetup<'_>) -> Result<(), HelperError> {
        self.make(nix::unistd::getuid().as_raw())?;
        // Both servers start at once, each in a sandbox of its own, and
        // are then waited for in turn: the launch waits for the slower,
        // not for the sum. One that fails ends the other (dropped).
        if let Some(dbus) = &self.plan.dbus {
            super::dbus::check_fixes(dbus)?;
        }
        let proxy = match &self.plan.dbus {
            Some(dbus) => Some(super::dbus::Proxy::spawn(dbus, &self.plan.launch_dir)?),
            None => None,
        };
        let nested = match self.plan.x11.as_ref().filter(|x| x.nested.is_some()) {
            Some(x11) => {
                let title = format!("{} (hutch)", self.plan.app_id);
                Some(super::xephyr::Nested::spawn(
                    x11,
                    &self.plan.launch_dir,
                    &title,
                )?)
            }
            None => None,
        };
        if let Some(proxy) = proxy {
            let mut proxy = proxy.ready()?;
            if let Some(scope) = self
                .plan
                .dbus
                .as_ref()
                .and_then(|d| d.portal_scope.as_ref())
            {
                proxy.place_in(scope);
            }
            self.proxy = Some(proxy);
        }
        if let Some(nested) = nested {
            self.nested = Some(nested.ready()?);
        }
        Ok(())
    }

    fn start(&mut self, _child: &Started) -> Result<(), HelperError> {
        Ok(())
    }

    fn describe(&self) -> Option<String> {
        let dir = self.dir.as_ref()?;
        Some(format!(
            "desktop: launch directory {} (removed when the sandbox ends){}{}{}",
            dir.display(),
            if self.close.is_some() {
                "; Wayland security context registered"
            } else {
                ""
            },
            match &self.proxy {
                Some(p) => format!("; D-Bus proxy running (pid {})", p.pid()),
                None => String::new(),
            },
            match &self.nested {
                Some(n) => format!("; nested X server running (pid {})", n.pid()),
                None => String::new(),
            }
        ))
    }

    fn finish(&mut self, code: i32) -> i32 {
        self.end();
        code
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.end();
    }
}

/// Creates the listening socket and registers it as a security context;
/// returns the pipe end whose closing ends it.
fn register(
    compositor: &Path,
    listener: &Path,
    plan: &DesktopPlan,
) -> Result<OwnedFd, DesktopError> {
    debug_assert!(listener.ends_with(WAYLAND_LISTENER));
    let socket =
        std::os::unix::net::UnixListener::bind(listener).map_err(|e| DesktopError::Io {
            what: "cannot create the Wayland socket",
            path: listener.to_path_buf(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
    let (close_r, close_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|errno| DesktopError::Io {
            what: "cannot create a pipe for",
            path: listener.to_path_buf(),
            errno,
        })?;
    let deadline = Instant::now() + REGISTER_TIMEOUT;
    let mut c =
        wayland::Connection::open(compositor, deadline).map_err(DesktopError::SecurityContext)?;
    c.create_security_context(
        socket.as_fd(),
        close_r.as_fd(),
        &Metadata {
            engine: ENGINE,
            app_id: &plan.app_id,
            instance_id: &plan.instance_id,
        },
    )
    .map_err(DesktopError::SecurityContext)?;
    // The compositor holds its own copies of the socket and the read end.
    Ok(close_w)
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, DesktopError> {
    let io = |e: std::io::Error| DesktopError::Io {
        what: "cannot read",
        path: path.to_path_buf(),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, max + 1), &mut bytes).map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(DesktopError::Io {
            what: "refusing to copy the oversized file",
            path: path.to_path_buf(),
            errno: Errno::EFBIG,
        });
    }
    Ok(bytes)
}

/// The cookie the plan found, read again now.
fn read_cookie(source: &CookieSource) -> Result<Vec<u8>, DesktopError> {
    let bytes = read_bounded(&source.file, xauth::MAX_FILE as u64)?;
    let gone = || DesktopError::CookieGone {
        file: source.file.clone(),
        number: source.number.clone(),
        hostname: source.hostname.clone(),
    };
    let entries = xauth::parse(&bytes).map_err(|_| gone())?;
    xauth::cookie_for(&entries, source.hostname.as_bytes(), &source.number)
        .map(|e| e.data.clone())
        .ok_or_else(gone)
}

fn write_private(
    dir: &safe_fs::Dir,
    name: &str,
    content: &[u8],
    uid: u32,
) -> Result<(), DesktopError> {
    let fd = dir.open_file(name, 0o600, uid)?;
    let mut file = std::fs::File::from(fd);
    let path = dir.path().join(name);
    let io = |e: std::io::Error| DesktopError::Io {
        what: "cannot write",
        path: path.clone(),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    };
    file.set_len(0).map_err(io)?;
    file.write_all(content).map_err(io)
}

/// Removes the launch directories of hutch processes that are gone (a
/// launcher killed with SIGKILL cannot remove its own).
/// Makes `path` (0700, for `uid`) in its parent (made too if missing),
/// after removing its parent's entries of launchers that are gone.
fn private_dir(path: &Path, uid: u32) -> Result<safe_fs::Dir, DesktopError> {
    let parent = safe_fs::open_dir_for_writing(path.parent().unwrap_or(Path::new("/")), uid, true)?;
    sweep_stale(&parent);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("0");
    let _ = std::fs::remove_dir_all(path);
    Ok(parent
        .sub(name, Some(0o700), Require::writable_only_by(uid))?
        .ok_or_else(|| FsError::NotADirectory(path.to_path_buf()))?)
}

fn sweep_stale(parent: &safe_fs::Dir) {
    let Ok(entries) = std::fs::read_dir(parent.path()) else {
        return;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let gone =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(Errno::ESRCH);
        if gone && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
