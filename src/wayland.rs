//! A small, blocking Wayland client: what hutch needs to give a sandbox a
//! `wp_security_context_v1` socket, and nothing more. A bottom module: it
//! imports nothing of hutch's.
//!
//! The exchange (staging/security-context/security-context-v1.xml):
//! `wl_display.get_registry` and a `sync` round trip list the globals; if
//! `wp_security_context_manager_v1` is among them, hutch binds it, sends
//! `create_listener` with a socket it bound and listens on and the read end
//! of a pipe it holds for the sandbox's life (the compositor stops
//! accepting when that pipe hangs up), sets the sandbox engine, app id and
//! instance id, commits, and waits for a last `sync` so that a protocol
//! error the compositor sends for any of it is seen before the sandbox
//! starts.
//!
//! Written by hand (about 400 lines with its tests) rather than with
//! wayland-client (a binding of libwayland-client.so: a C library hutch's
//! static binary would have to link or `dlopen`) or wayrs-client (pure
//! Rust, but with its protocol scanner, proc macros and a generated
//! `wayrs-protocols` crate for six requests): the messages are fixed-size
//! words and strings, and the few hutch sends and reads fit in one file
//! whose every read is bounded. Every wait is a `poll()` bounded by one
//! deadline; a message longer than libwayland's own limit (4096 bytes), a
//! size that is not a whole number of words or a string that overruns its
//! message is an error, never a panic.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr, connect, recv, sendmsg,
    socket,
};

/// libwayland's limit on one message, header included.
pub const MAX_MESSAGE: usize = 4096;

/// The global a sandbox engine binds to attach a security context.
pub const SECURITY_CONTEXT_MANAGER: &str = "wp_security_context_manager_v1";

const DISPLAY_ID: u32 = 1;

// Requests and events, by opcode (wayland.xml, security-context-v1.xml).
const DISPLAY_SYNC: u16 = 0;
const DISPLAY_GET_REGISTRY: u16 = 1;
const DISPLAY_ERROR: u16 = 0;
const REGISTRY_BIND: u16 = 0;
const REGISTRY_GLOBAL: u16 = 0;
const REGISTRY_GLOBAL_REMOVE: u16 = 1;
const CALLBACK_DONE: u16 = 0;
const MANAGER_DESTROY: u16 = 0;
const MANAGER_CREATE_LISTENER: u16 = 1;
const CONTEXT_DESTROY: u16 = 0;
const CONTEXT_SET_SANDBOX_ENGINE: u16 = 1;
const CONTEXT_SET_APP_ID: u16 = 2;
const CONTEXT_SET_INSTANCE_ID: u16 = 3;
const CONTEXT_COMMIT: u16 = 4;

/// What went wrong talking to a compositor.
#[derive(Debug, thiserror::Error)]
pub enum WaylandError {
    #[error("cannot connect to the Wayland socket {path}: {source}")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("Wayland socket: {0}")]
    Io(#[source] std::io::Error),
    #[error("no answer from the compositor in time")]
    Timeout,
    #[error("the compositor closed the connection")]
    Closed,
    #[error("the compositor sent malformed data: {0}")]
    Malformed(String),
    /// A `wl_display.error` event: the compositor refused a request.
    #[error("the compositor reported error {code} on {interface} (object {object}): {message}")]
    Protocol {
        object: u32,
        interface: &'static str,
        code: u32,
        message: String,
    },
    /// The global went away between listing and binding it, or was never there.
    #[error("the compositor does not offer {0}")]
    Missing(&'static str),
}

type Result<T> = std::result::Result<T, WaylandError>;

/// A global the compositor advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    pub name: u32,
    pub interface: String,
    pub version: u32,
}

/// Who the sandboxed connections belong to (each set once, then committed).
#[derive(Debug, Clone, Copy)]
pub struct Metadata<'a> {
    pub engine: &'a str,
    pub app_id: &'a str,
    pub instance_id: &'a str,
}

/// A connection to a compositor.
pub struct Connection {
    fd: OwnedFd,
    deadline: Instant,
    next_id: u32,
    /// Bytes read and not yet made into messages.
    input: Vec<u8>,
    /// The objects hutch made, for naming them in errors.
    objects: Vec<(u32, &'static str)>,
    registry: Option<u32>,
    globals: Vec<Global>,
}

impl Connection {
    /// Connects to the compositor's socket at `path`; `deadline` bounds
    /// this and every later wait.
    pub fn open(path: &Path, deadline: Instant) -> Result<Connection> {
        let err = |source: std::io::Error| WaylandError::Connect {
            path: path.display().to_string(),
            source,
        };
        let addr = UnixAddr::new(path.as_os_str().as_bytes()).map_err(|e| err(e.into()))?;
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(io)?;
        match connect(fd.as_raw_fd(), &addr) {
            // A local stream socket connects at once or fails; EAGAIN means
            // the compositor's backlog is full.
            Ok(()) => Ok(Connection::start(fd, deadline)),
            Err(Errno::EAGAIN) => Err(WaylandError::Timeout),
            Err(e) => Err(err(e.into())),
        }
    }

    /// Wraps a connected, non-blocking unix stream socket.
    pub fn start(fd: OwnedFd, deadline: Instant) -> Connection {
        Connection {
            fd,
            deadline,
            next_id: 2,
            input: Vec::new(),
            objects: vec![(DISPLAY_ID, "wl_display")],
            registry: None,
            globals: Vec::new(),
        }
    }

    /// The compositor's globals (`get_registry` and a round trip).
    pub fn globals(&mut self) -> Result<&[Global]> {
        if self.registry.is_none() {
            let registry = self.new_object("wl_registry");
            self.send(DISPLAY_ID, DISPLAY_GET_REGISTRY, &words([registry]), &[])?;
            self.registry = Some(registry);
            self.roundtrip()?;
        }
        Ok(&self.globals)
    }

    /// Whether the compositor offers `interface`.
    pub fn offers(&mut self, interface: &str) -> Result<bool> {
        Ok(self.globals()?.iter().any(|g| g.interface == interface))
    }

    /// Attaches a security context to the listening socket `listen`: the
    /// compositor accepts clients on it, with `metadata`, until every
    /// writer of the pipe whose read end is `close` has closed it.
    pub fn create_security_context(
        &mut self,
        listen: BorrowedFd<'_>,
        close: BorrowedFd<'_>,
        metadata: &Metadata<'_>,
    ) -> Result<()> {
        let global = self
            .globals()?
            .iter()
            .find(|g| g.interface == SECURITY_CONTEXT_MANAGER)
            .cloned()
            .ok_or(WaylandError::Missing(SECURITY_CONTEXT_MANAGER))?;
        let registry = self.registry.expect("listed above");
        let manager = self.new_object(SECURITY_CONTEXT_MANAGER);
        let mut bind = words([global.name]);
        put_string(&mut bind, SECURITY_CONTEXT_MANAGER);
        bind.extend_from_slice(&words([global.version.min(1), manager]));
        self.send(registry, REGISTRY_BIND, &bind, &[])?;
        let context = self.new_object("wp_security_context_v1");
        self.send(
            manager,
            MANAGER_CREATE_LISTENER,
            &words([context]),
            &[listen.as_raw_fd(), close.as_raw_fd()],
        )?;
        for (opcode, value) in [
            (CONTEXT_SET_SANDBOX_ENGINE, metadata.engine),
            (CONTEXT_SET_APP_ID, metadata.app_id),
            (CONTEXT_SET_INSTANCE_ID, metadata.instance_id),
        ] {
            let mut body = Vec::new();
            put_string(&mut body, value);
            self.send(context, opcode, &body, &[])?;
        }
        self.send(context, CONTEXT_COMMIT, &[], &[])?;
        // The listener lives on without these objects (the protocol says
        // so); destroying them keeps the compositor's table clean.
        self.send(context, CONTEXT_DESTROY, &[], &[])?;
        self.send(manager, MANAGER_DESTROY, &[], &[])?;
        self.roundtrip()
    }

    fn new_object(&mut self, interface: &'static str) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.objects.push((id, interface));
        id
    }

    fn interface_of(&self, id: u32) -> &'static str {
        self.objects
            .iter()
            .find(|(o, _)| *o == id)
            .map_or("an unknown object", |(_, i)| i)
    }

    /// `wl_display.sync`, then every event until its `done`.
    fn roundtrip(&mut self) -> Result<()> {
        let callback = self.new_object("wl_callback");
        self.send(DISPLAY_ID, DISPLAY_SYNC, &words([callback]), &[])?;
        loop {
            let (object, opcode, body) = self.read_message()?;
            if object == callback && opcode == CALLBACK_DONE {
                return Ok(());
            }
            self.handle(object, opcode, &body)?;
        }
    }

    fn handle(&mut self, object: u32, opcode: u16, body: &[u8]) -> Result<()> {
        let mut args = Args { body, at: 0 };
        if object == DISPLAY_ID && opcode == DISPLAY_ERROR {
            let failed = args.word()?;
            let code = args.word()?;
            let message = args.string()?;
            return Err(WaylandError::Protocol {
                object: failed,
                interface: self.interface_of(failed),
                code,
                message,
            });
        }
        if Some(object) == self.registry {
            match opcode {
                REGISTRY_GLOBAL => {
                    let name = args.word()?;
                    let interface = args.string()?;
                    let version = args.word()?;
                    // A compositor that floods the registry is stopped by
                    // the deadline; this keeps memory bounded meanwhile.
                    if self.globals.len() >= 4096 {
                        return Err(WaylandError::Malformed("more than 4096 globals".into()));
                    }
                    self.globals.push(Global {
                        name,
                        interface,
                        version,
                    });
                }
                REGISTRY_GLOBAL_REMOVE => {
                    let name = args.word()?;
                    self.globals.retain(|g| g.name != name);
                }
                _ => {}
            }
        }
        // delete_id and events of objects hutch does not use: nothing to do.
        Ok(())
    }

    fn send(&mut self, object: u32, opcode: u16, body: &[u8], fds: &[RawFd]) -> Result<()> {
        let size = 8 + body.len();
        if size > MAX_MESSAGE {
            return Err(WaylandError::Malformed(format!(
                "a request of {size} bytes (the limit is {MAX_MESSAGE})"
            )));
        }
        let mut msg = Vec::with_capacity(size);
        msg.extend_from_slice(&object.to_ne_bytes());
        msg.extend_from_slice(&(((size as u32) << 16) | u32::from(opcode)).to_ne_bytes());
        msg.extend_from_slice(body);
        let mut sent = 0;
        while sent < msg.len() {
            let iov = [IoSlice::new(&msg[sent..])];
            // The descriptors travel with the first byte only.
            let rights = [ControlMessage::ScmRights(fds)];
            let cmsgs: &[ControlMessage] = if sent == 0 && !fds.is_empty() {
                &rights
            } else {
                &[]
            };
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => self.wait(PollFlags::POLLOUT)?,
                Err(Errno::EINTR) => {}
                Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(WaylandError::Closed),
                Err(e) => return Err(io(e)),
            }
        }
        Ok(())
    }

    /// The next whole event: (object, opcode, arguments).
    fn read_message(&mut self) -> Result<(u32, u16, Vec<u8>)> {
        loop {
            if self.input.len() >= 8 {
                let object = word_at(&self.input, 0);
                let second = word_at(&self.input, 4);
                let size = (second >> 16) as usize;
                if size < 8 || !size.is_multiple_of(4) || size > MAX_MESSAGE {
                    return Err(WaylandError::Malformed(format!("an event of {size} bytes")));
                }
                if self.input.len() >= size {
                    let body = self.input[8..size].to_vec();
                    self.input.drain(..size);
                    return Ok((object, (second & 0xffff) as u16, body));
                }
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> Result<()> {
        // Checked here too: a compositor that never lets the socket run dry
        // must not keep hutch past its deadline.
        remaining(self.deadline)?;
        let mut buf = [0u8; MAX_MESSAGE];
        loop {
            // Without a control buffer, descriptors a compositor might
            // attach are closed by the kernel, never received.
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return Err(WaylandError::Closed),
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    return Ok(());
                }
                Err(Errno::EAGAIN) => self.wait(PollFlags::POLLIN)?,
                Err(Errno::EINTR) => {}
                Err(Errno::ECONNRESET) => return Err(WaylandError::Closed),
                Err(e) => return Err(io(e)),
            }
        }
    }

    fn wait(&self, events: PollFlags) -> Result<()> {
        loop {
            let left = remaining(self.deadline)?;
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), events)];
            match poll(&mut fds, timeout) {
                Ok(0) | Err(Errno::EINTR) => {} // the deadline is checked again
                Ok(_) => return Ok(()),
                Err(e) => return Err(io(e)),
            }
        }
    }
}

/// The arguments of one event, read in order.
struct Args<'a> {
    body: &'a [u8],
    at: usize,
}

impl Args<'_> {
    fn word(&mut self) -> Result<u32> {
        if self.at + 4 > self.body.len() {
            return Err(WaylandError::Malformed(
                "an event shorter than its arguments".into(),
            ));
        }
        let w = word_at(self.body, self.at);
        self.at += 4;
        Ok(w)
    }

    /// A string: its length with the NUL, the bytes, the NUL, padding.
    fn string(&mut self) -> Result<String> {
        let len = self.word()? as usize;
        let padded = len.div_ceil(4) * 4;
        if len == 0 || self.at + padded > self.body.len() {
            return Err(WaylandError::Malformed(
                "a string overruns its event".into(),
            ));
        }
        let bytes = &self.body[self.at..self.at + len];
        self.at += padded;
        let (text, nul) = bytes.split_at(len - 1);
        if nul != [0] || text.contains(&0) {
            return Err(WaylandError::Malformed("a string without its NUL".into()));
        }
        Ok(String::from_utf8_lossy(text).into_owned())
    }
}

fn word_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn words<const N: usize>(values: [u32; N]) -> Vec<u8> {
    values.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32 + 1).to_ne_bytes());
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn remaining(deadline: Instant) -> Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or(WaylandError::Timeout)
}

fn io(e: Errno) -> WaylandError {
    WaylandError::Io(e.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// One request as the compositor reads it.
    struct Request {
        object: u32,
        opcode: u16,
        body: Vec<u8>,
    }

    /// The compositor's end: reads one request. Descriptors that arrive
    /// are queued in `fds` (the kernel may deliver them with the bytes of
    /// an earlier request); the request that has fd arguments takes them,
    /// as libwayland does.
    fn read_request(s: &UnixStream, pending: &mut Vec<u8>, fds: &mut Vec<OwnedFd>) -> Request {
        loop {
            if pending.len() >= 8 {
                let size = (word_at(pending, 4) >> 16) as usize;
                if pending.len() >= size {
                    let r = Request {
                        object: word_at(pending, 0),
                        opcode: (word_at(pending, 4) & 0xffff) as u16,
                        body: pending[8..size].to_vec(),
                    };
                    pending.drain(..size);
                    return r;
                }
            }
            let mut buf = [0u8; 4096];
            let (n, got) = crate::sys::recv_with_fds(s.as_raw_fd(), &mut buf, 0).unwrap();
            fds.extend(got);
            assert!(n > 0, "hutch hung up");
            pending.extend_from_slice(&buf[..n]);
        }
    }

    fn event(object: u32, opcode: u16, body: &[u8]) -> Vec<u8> {
        let mut m = words([
            object,
            (((8 + body.len()) as u32) << 16) | u32::from(opcode),
        ]);
        m.extend_from_slice(body);
        m
    }

    fn global(name: u32, interface: &str, version: u32) -> Vec<u8> {
        let mut b = words([name]);
        put_string(&mut b, interface);
        b.extend_from_slice(&words([version]));
        b
    }

    fn string_of(body: &[u8]) -> String {
        Args { body, at: 0 }.string().unwrap()
    }

    fn pair() -> (Connection, UnixStream) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        (Connection::start(ours.into(), deadline), theirs)
    }

    /// Answers get_registry and the sync after it with `globals`.
    fn serve_registry(s: &mut UnixStream, pending: &mut Vec<u8>, globals: &[Vec<u8>]) -> u32 {
        let mut fds = Vec::new();
        let get = read_request(s, pending, &mut fds);
        assert_eq!((get.object, get.opcode), (DISPLAY_ID, DISPLAY_GET_REGISTRY));
        let registry = word_at(&get.body, 0);
        let sync = read_request(s, pending, &mut fds);
        assert_eq!((sync.object, sync.opcode), (DISPLAY_ID, DISPLAY_SYNC));
        for g in globals {
            s.write_all(&event(registry, REGISTRY_GLOBAL, g)).unwrap();
        }
        s.write_all(&event(word_at(&sync.body, 0), CALLBACK_DONE, &words([7])))
            .unwrap();
        registry
    }

    #[test]
    fn lists_globals_and_sees_removals() {
        let (mut c, mut s) = pair();
        let server = std::thread::spawn(move || {
            let mut pending = Vec::new();
            let registry = serve_registry(
                &mut s,
                &mut pending,
                &[global(1, "wl_compositor", 4), global(2, "wl_shm", 1)],
            );
            // Sent before the callback's done was read: seen on a later read.
            s.write_all(&event(registry, REGISTRY_GLOBAL_REMOVE, &words([2])))
                .unwrap();
            s
        });
        let listed: Vec<String> = c
            .globals()
            .unwrap()
            .iter()
            .map(|g| g.interface.clone())
            .collect();
        assert_eq!(listed, ["wl_compositor", "wl_shm"]);
        assert!(!c.offers(SECURITY_CONTEXT_MANAGER).unwrap());
        drop(server.join().unwrap());
    }

    #[test]
    fn creates_a_security_context_with_the_exact_requests() {
        let (mut c, mut s) = pair();
        let listener =
            std::os::unix::net::UnixListener::bind(tempfile::tempdir().unwrap().path().join("l"))
                .unwrap();
        let (close_r, close_w) = nix::unistd::pipe().unwrap();
        let server = std::thread::spawn(move || {
            let mut pending = Vec::new();
            let registry = serve_registry(
                &mut s,
                &mut pending,
                &[
                    global(9, "wl_compositor", 4),
                    global(12, SECURITY_CONTEXT_MANAGER, 3),
                ],
            );
            let mut fds = Vec::new();
            let bind = read_request(&s, &mut pending, &mut fds);
            assert_eq!((bind.object, bind.opcode), (registry, REGISTRY_BIND));
            assert_eq!(word_at(&bind.body, 0), 12, "the global's name");
            let mut args = Args {
                body: &bind.body,
                at: 4,
            };
            assert_eq!(args.string().unwrap(), SECURITY_CONTEXT_MANAGER);
            assert_eq!(args.word().unwrap(), 1, "version 1, the one hutch speaks");
            let manager = args.word().unwrap();
            let create = read_request(&s, &mut pending, &mut fds);
            assert_eq!(
                (create.object, create.opcode),
                (manager, MANAGER_CREATE_LISTENER)
            );
            let got = std::mem::take(&mut fds);
            assert_eq!(got.len(), 2, "listen_fd and close_fd");
            // The first is a listening socket, the second a pipe.
            let listening: bool =
                nix::sys::socket::getsockopt(&got[0], nix::sys::socket::sockopt::AcceptConn)
                    .unwrap();
            assert!(listening);
            let st = nix::sys::stat::fstat(&got[1]).unwrap();
            assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFIFO);
            let context = word_at(&create.body, 0);
            let mut seen = Vec::new();
            loop {
                let r = read_request(&s, &mut pending, &mut fds);
                if r.object == DISPLAY_ID {
                    assert_eq!(r.opcode, DISPLAY_SYNC);
                    s.write_all(&event(word_at(&r.body, 0), CALLBACK_DONE, &words([0])))
                        .unwrap();
                    break;
                }
                let text = (!r.body.is_empty()).then(|| string_of(&r.body));
                seen.push((r.object, r.opcode, text));
            }
            assert_eq!(
                seen,
                [
                    (
                        context,
                        CONTEXT_SET_SANDBOX_ENGINE,
                        Some("hutch".to_string())
                    ),
                    (
                        context,
                        CONTEXT_SET_APP_ID,
                        Some("hutch.editor".to_string())
                    ),
                    (context, CONTEXT_SET_INSTANCE_ID, Some("4242".to_string())),
                    (context, CONTEXT_COMMIT, None),
                    (context, CONTEXT_DESTROY, None),
                    (manager, MANAGER_DESTROY, None),
                ]
            );
            got
        });
        c.create_security_context(
            listener.as_fd(),
            close_r.as_fd(),
            &Metadata {
                engine: "hutch",
                app_id: "hutch.editor",
                instance_id: "4242",
            },
        )
        .unwrap();
        let fds = server.join().unwrap();
        // The compositor's copy of close_fd sees the hang-up when hutch's
        // write end closes: how it knows to stop accepting.
        drop(close_w);
        let mut pfd = [PollFd::new(fds[1].as_fd(), PollFlags::POLLIN)];
        poll(&mut pfd, PollTimeout::from(1000u16)).unwrap();
        assert!(pfd[0].revents().unwrap().contains(PollFlags::POLLHUP));
    }

    #[test]
    fn a_protocol_error_names_the_object() {
        let (mut c, mut s) = pair();
        let listener =
            std::os::unix::net::UnixListener::bind(tempfile::tempdir().unwrap().path().join("l"))
                .unwrap();
        let (close_r, _close_w) = nix::unistd::pipe().unwrap();
        let server = std::thread::spawn(move || {
            let mut pending = Vec::new();
            serve_registry(
                &mut s,
                &mut pending,
                &[global(3, SECURITY_CONTEXT_MANAGER, 1)],
            );
            let mut fds = Vec::new();
            let _bind = read_request(&s, &mut pending, &mut fds);
            let create = read_request(&s, &mut pending, &mut fds);
            let context = word_at(&create.body, 0);
            let mut body = words([context, 3]);
            put_string(&mut body, "invalid app id");
            s.write_all(&event(DISPLAY_ID, DISPLAY_ERROR, &body))
                .unwrap();
            s
        });
        let e = c
            .create_security_context(
                listener.as_fd(),
                close_r.as_fd(),
                &Metadata {
                    engine: "hutch",
                    app_id: "x",
                    instance_id: "1",
                },
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the compositor reported error 3 on wp_security_context_v1 (object 5): invalid app id"
        );
        drop(server.join().unwrap());
    }

    #[test]
    fn malformed_events_and_silence_are_errors() {
        for bad in [
            event(DISPLAY_ID, 1, &[])
                .iter()
                .take(4)
                .copied()
                .chain(words([4 << 16]))
                .collect::<Vec<u8>>(),
            words([DISPLAY_ID, (9000 << 16) | 1]),
            words([DISPLAY_ID, (10 << 16) | 1, 0]),
        ] {
            let (mut c, mut s) = pair();
            s.write_all(&bad).unwrap();
            assert!(
                matches!(c.globals(), Err(WaylandError::Malformed(_))),
                "{bad:?}"
            );
        }
        // A global whose string overruns the event.
        let (mut c, mut s) = pair();
        let server = std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut fds = Vec::new();
            let get = read_request(&s, &mut pending, &mut fds);
            let registry = word_at(&get.body, 0);
            s.write_all(&event(registry, REGISTRY_GLOBAL, &words([1, 200, 0])))
                .unwrap();
            s
        });
        assert!(matches!(c.globals(), Err(WaylandError::Malformed(_))));
        drop(server.join().unwrap());

        let (ours, _theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut c = Connection::start(ours.into(), Instant::now() + Duration::from_millis(50));
        assert!(matches!(c.globals(), Err(WaylandError::Timeout)));

        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        drop(theirs);
        let mut c = Connection::start(ours.into(), Instant::now() + Duration::from_secs(5));
        assert!(matches!(
            c.globals(),
            Err(WaylandError::Closed | WaylandError::Io(_))
        ));
    }

    #[test]
    fn strings_are_padded_to_words() {
        let mut b = Vec::new();
        put_string(&mut b, "abc");
        assert_eq!(b, [4, 0, 0, 0, b'a', b'b', b'c', 0]);
        let mut b = Vec::new();
        put_string(&mut b, "abcd");
        assert_eq!(b.len(), 4 + 8);
        assert_eq!(string_of(&b), "abcd");
    }
}
