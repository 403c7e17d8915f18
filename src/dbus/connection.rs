//! A connection to a bus: connect, authenticate (SASL `EXTERNAL`), `Hello`,
//! then method calls, their replies and signals, one message at a time on
//! the calling thread. Every wait is a `poll()` bounded by one deadline for
//! the whole exchange; a bus that floods hutch with messages is stopped by
//! the same deadline and by the bound on queued signals.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr, connect, recv, send, setsockopt, socket,
    sockopt,
};
use nix::sys::time::{TimeVal, TimeValLike};

use super::address::{self, Socket};
use super::wire::{Kind, Message, Value};
use super::{DbusError, Result, malformed};

/// Bytes of signals kept while waiting for a method's reply, each counted
/// as its body plus [`QUEUED_OVERHEAD`] for its header fields.
const MAX_QUEUED: usize = 1 << 20;
const QUEUED_OVERHEAD: usize = 256;
/// The longest line hutch accepts from the bus while authenticating.
const MAX_AUTH_LINE: usize = 512;

/// The bus daemon itself.
pub const BUS_NAME: &str = "org.freedesktop.DBus";
const BUS_PATH: &str = "/org/freedesktop/DBus";

/// A connection to a message bus, authenticated and registered (`Hello`).
pub struct Connection {
    fd: OwnedFd,
    deadline: Instant,
    last_serial: u32,
    unique_name: String,
    /// Bytes read and not yet made into messages.
    input: Vec<u8>,
    /// Signals that arrived while a reply was awaited, and their size.
    signals: VecDeque<Message>,
    queued: usize,
}

impl Connection {
    /// Connects to the bus at `address`. The deadline bounds this and every
    /// later wait on the connection.
    pub fn open(address: &str, deadline: Instant) -> Result<Connection> {
        let socket = address::parse(address)?;
        let fd = connect_to(&socket, deadline)?;
        Connection::start(fd, deadline)
    }

    /// Authenticates on `fd`, a connected unix stream socket, and says
    /// `Hello`; `deadline` bounds this and every later wait.
    pub fn start(fd: OwnedFd, deadline: Instant) -> Result<Connection> {
        let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(io)?;
        let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
        fcntl(&fd, FcntlArg::F_SETFL(flags)).map_err(io)?;
        let mut c = Connection {
            fd,
            deadline,
            last_serial: 0,
            unique_name: String::new(),
            input: Vec::new(),
            signals: VecDeque::new(),
            queued: 0,
        };
        c.authenticate(nix::unistd::geteuid().as_raw())?;
        let hello = Message::method_call(BUS_NAME, BUS_PATH, BUS_NAME, "Hello", &[])?;
        let reply = c.call(&hello)?;
        match reply.args("s")?.pop() {
            Some(Value::Str(name)) => c.unique_name = name,
            other => return malformed(format!("Hello answered {other:?}")),
        }
        Ok(c)
    }

    /// The name the bus gave this connection (`:1.42`).
    pub fn unique_name(&self) -> &str {
        &self.unique_name
    }

    /// SASL: a NUL byte, `AUTH EXTERNAL` with the uid's decimal digits in
    /// hex, `OK <server guid>` back, then `BEGIN`. The bus checks the uid
    /// against the socket's peer credentials.
    fn authenticate(&mut self, uid: u32) -> Result<()> {
        let hex: String = uid
            .to_string()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let line = self.read_line()?;
        match line.strip_prefix("OK ") {
            Some(guid) if !guid.is_empty() && guid.bytes().all(|b| b.is_ascii_hexdigit()) => {}
            _ if line.starts_with("OK") => return malformed(format!("auth reply {line:?}")),
            _ => return Err(DbusError::Auth { uid, reply: line }),
        }
        self.write_all(b"BEGIN\r\n")
    }

    /// One `\r\n`-terminated line of the authentication exchange.
    fn read_line(&mut self) -> Result<String> {
        loop {
            if let Some(i) = self.input.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.input.drain(..i + 2).take(i).collect();
                return String::from_utf8(line).or_else(|_| malformed("a non-UTF-8 auth line"));
            }
            if self.input.len() > MAX_AUTH_LINE {
                return malformed("an over-long line during authentication");
            }
            self.fill()?;
        }
    }

    /// Sends `msg` with the next serial, which it returns.
    pub fn send(&mut self, msg: &Message) -> Result<u32> {
        self.last_serial = self.last_serial.wrapping_add(1).max(1);
        let bytes = msg.encode(self.last_serial)?;
        self.write_all(&bytes)?;
        Ok(self.last_serial)
    }

    /// Waits for the reply to the call with serial `serial`: its message,
    /// or its error as [`DbusError::Reply`]. Signals that arrive meanwhile
    /// are kept for [`Connection::next_signal`]; other messages are dropped.
    pub fn wait_reply(&mut self, serial: u32) -> Result<Message> {
        loop {
            let m = self.read_message()?;
            match m.kind {
                Kind::Return if m.reply_serial == Some(serial) => return Ok(m),
                Kind::Error if m.reply_serial == Some(serial) => return Err(m.to_error()),
                Kind::Signal => {
                    self.queued += m.body_len() + QUEUED_OVERHEAD;
                    if self.queued > MAX_QUEUED {
                        return malformed("more than 1 MiB of signals while waiting for a reply");
                    }
                    self.signals.push_back(m);
                }
                _ => {}
            }
        }
    }

    /// Calls a method and waits for its reply.
    pub fn call(&mut self, msg: &Message) -> Result<Message> {
        let serial = self.send(msg)?;
        self.wait_reply(serial)
    }

    /// Asks the bus to route signals matching `rule` here (`AddMatch`).
    pub fn add_match(&mut self, rule: &str) -> Result<()> {
        let m = Message::method_call(
            BUS_NAME,
            BUS_PATH,
            BUS_NAME,
            "AddMatch",
            &[Value::Str(rule.into())],
        )?;
        self.call(&m).map(drop)
    }

    /// The next signal, kept or new.
    pub fn next_signal(&mut self) -> Result<Message> {
        if let Some(m) = self.signals.pop_front() {
            self.queued -= m.body_len() + QUEUED_OVERHEAD;
            return Ok(m);
        }
        loop {
            let m = self.read_message()?;
            if m.kind == Kind::Signal {
                return Ok(m);
            }
        }
    }

    /// The next message of any kind from the socket.
    pub fn read_message(&mut self) -> Result<Message> {
        loop {
            if let Some(head) = self.input.first_chunk::<16>() {
                let len = Message::frame_len(head)?;
                if self.input.len() >= len {
                    let m = Message::decode(&self.input[..len]);
                    self.input.drain(..len);
                    return m;
                }
            }
            self.fill()?;
        }
    }

    /// Reads what the socket has, waiting for it until the deadline.
    fn fill(&mut self) -> Result<()> {
        // Checked here too, not only when poll() waits: a bus that never
        // lets the socket run dry must not keep hutch past its deadline.
        remaining(self.deadline)?;
        let mut buf = [0u8; 4096];
        loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_CMSG_CLOEXEC) {
                Ok(0) => return Err(DbusError::Closed),
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    return Ok(());
                }
                Err(Errno::EAGAIN) => self.wait(PollFlags::POLLIN)?,
                Err(Errno::EINTR) => {}
                Err(Errno::ECONNRESET) => return Err(DbusError::Closed),
                Err(e) => return Err(io(e)),
            }
        }
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            // MSG_NOSIGNAL: a closed bus must be an error, not a SIGPIPE
            // (hutch skips the Rust runtime that would ignore it).
            match send(self.fd.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => bytes = &bytes[n..],
                Err(Errno::EAGAIN) => self.wait(PollFlags::POLLOUT)?,
                Err(Errno::EINTR) => {}
                Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(DbusError::Closed),
                Err(e) => return Err(io(e)),
            }
        }
        Ok(())
    }

    /// Waits until the socket is ready for `events` or the deadline passes.
    fn wait(&self, events: PollFlags) -> Result<()> {
        loop {
            let timeout = poll_timeout(self.deadline)?;
            let mut fds = [PollFd::new(self.fd.as_fd(), events)];
            match poll(&mut fds, timeout) {
                Ok(0) | Err(Errno::EINTR) => {} // the deadline is checked again
                Ok(_) => return Ok(()),
                Err(e) => return Err(io(e)),
            }
        }
    }
}

fn io(e: Errno) -> DbusError {
    DbusError::Io(e.into())
}

/// What is left until `deadline`; an error once it has passed.
fn remaining(deadline: Instant) -> Result<Duration> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(DbusError::Timeout),
    }
}

/// What is left until `deadline`, rounded up to whole milliseconds.
fn poll_timeout(deadline: Instant) -> Result<PollTimeout> {
    let left = remaining(deadline)? + Duration::from_micros(999);
    Ok(PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX))
}

/// Connects a stream socket to `socket`. A blocking connect to a unix
/// socket whose listener is not accepting waits as long as the send
/// timeout allows, which is set to what is left until the deadline.
fn connect_to(target: &Socket, deadline: Instant) -> Result<OwnedFd> {
    let err = |source: std::io::Error| DbusError::Connect {
        socket: target.to_string(),
        source,
    };
    let addr = match target {
        Socket::Path(p) => UnixAddr::new(OsStr::from_bytes(p)),
        Socket::Abstract(n) => UnixAddr::new_abstract(n),
    }
    .map_err(|e| err(e.into()))?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io)?;
    // At least 1 µs: a zero timeout would mean none.
    let micros = remaining(deadline)?.as_micros().clamp(1, 1 << 40) as i64;
    setsockopt(&fd, sockopt::SendTimeout, &TimeVal::microseconds(micros)).map_err(io)?;
    match connect(fd.as_raw_fd(), &addr) {
        Ok(()) => Ok(fd),
        Err(Errno::EAGAIN) => Err(DbusError::Timeout),
        Err(e) => Err(err(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dbus::wire::tests::JOB_REPLY;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::net::UnixStream;
    use std::thread::JoinHandle;

    /// Runs `peer` as the bus on the other end of a socket pair.
    fn fake_bus(peer: impl FnOnce(UnixStream) + Send + 'static) -> (OwnedFd, JoinHandle<()>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (ours.into(), std::thread::spawn(move || peer(theirs)))
    }

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    /// The line hutch must send: uid 1000 is "AUTH EXTERNAL 31303030".
    fn auth_line() -> String {
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        format!("\0AUTH EXTERNAL {hex}\r\n")
    }

    fn read_line(r: &mut BufReader<UnixStream>) -> String {
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line).unwrap();
        String::from_utf8(line).unwrap()
    }

    fn read_msg(r: &mut BufReader<UnixStream>) -> Message {
        let mut head = [0u8; 16];
        r.read_exact(&mut head).unwrap();
        let mut all = vec![0u8; Message::frame_len(&head).unwrap()];
        all[..16].copy_from_slice(&head);
        r.read_exact(&mut all[16..]).unwrap();
        Message::decode(&all).unwrap()
    }

    /// Accepts hutch's authentication and Hello, naming it `:1.42`.
    fn greet(s: UnixStream) -> BufReader<UnixStream> {
        let mut r = BufReader::new(s);
        assert_eq!(read_line(&mut r), auth_line());
        r.get_mut()
            .write_all(b"OK 0123456789abcdef0123456789abcdef\r\n")
            .unwrap();
        assert_eq!(read_line(&mut r), "BEGIN\r\n");
        let hello = read_msg(&mut r);
        assert_eq!(hello.member.as_deref(), Some("Hello"));
        assert_eq!(hello.destination.as_deref(), Some(BUS_NAME));
        assert_eq!(hello.signature, "");
        let mut reply = Message::new(Kind::Return, &[Value::Str(":1.42".into())]).unwrap();
        reply.reply_serial = Some(hello.serial);
        reply.sender = Some(BUS_NAME.into());
        r.get_mut().write_all(&reply.encode(1).unwrap()).unwrap();
        r
    }

    #[test]
    fn sasl_external_hello_and_replies_matched_by_serial() {
        let (fd, peer) = fake_bus(|s| {
            let mut r = greet(s);
            let call = read_msg(&mut r);
            assert_eq!(call.member.as_deref(), Some("GetId"));
            let w = r.get_mut();
            // A signal, a reply to some other call, then the error reply.
            let mut sig = Message::new(Kind::Signal, &[Value::Str("s1".into())]).unwrap();
            sig.path = Some("/a".into());
            sig.interface = Some("x.Y".into());
            sig.member = Some("Z".into());
            w.write_all(&sig.encode(2).unwrap()).unwrap();
            let mut other = Message::new(Kind::Return, &[]).unwrap();
            other.reply_serial = Some(call.serial + 100);
            w.write_all(&other.encode(3).unwrap()).unwrap();
            let mut err = Message::new(Kind::Error, &[Value::Str("no id".into())]).unwrap();
            err.reply_serial = Some(call.serial);
            err.error_name = Some("x.Error.NoId".into());
            // Split across writes, to be reassembled.
            let bytes = err.encode(4).unwrap();
            w.write_all(&bytes[..7]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            w.write_all(&bytes[7..]).unwrap();
        });
        let mut c = Connection::start(fd, soon(5000)).unwrap();
        assert_eq!(c.unique_name(), ":1.42");
        let get_id = Message::method_call(BUS_NAME, BUS_PATH, BUS_NAME, "GetId", &[]).unwrap();
        let e = c.call(&get_id).unwrap_err();
        assert_eq!(e.to_string(), "x.Error.NoId: no id");
        let sig = c.next_signal().unwrap();
        assert_eq!(sig.member.as_deref(), Some("Z"));
        assert_eq!(sig.args("s").unwrap(), [Value::Str("s1".into())]);
        peer.join().unwrap();
        // The peer is gone.
        assert!(matches!(c.next_signal(), Err(DbusError::Closed)));
    }

    #[test]
    fn a_rejected_authentication_is_an_error() {
        let (fd, peer) = fake_bus(|s| {
            let mut r = BufReader::new(s);
            assert_eq!(read_line(&mut r), auth_line());
            r.get_mut().write_all(b"REJECTED EXTERNAL\r\n").unwrap();
        });
        let e = Connection::start(fd, soon(5000)).err().unwrap();
        assert!(
            e.to_string().contains("refused authentication")
                && e.to_string().contains("REJECTED EXTERNAL"),
            "{e}"
        );
        peer.join().unwrap();
    }

    #[test]
    fn a_silent_bus_is_a_timeout_not_a_hang() {
        let (fd, peer) = fake_bus(|mut s| {
            // Read everything until hutch gives up and closes.
            let mut sink = Vec::new();
            s.read_to_end(&mut sink).unwrap();
        });
        let t = Instant::now();
        let e = Connection::start(fd, soon(300)).err().unwrap();
        assert!(matches!(e, DbusError::Timeout), "{e:?}");
        assert!(t.elapsed() >= Duration::from_millis(300));
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        peer.join().unwrap();
    }

    #[test]
    fn a_flooding_bus_is_a_timeout_not_a_hang() {
        // Replies to calls hutch never made, for as long as hutch reads:
        // the socket never runs dry, so poll() alone would never time out.
        let (fd, peer) = fake_bus(|s| {
            let mut r = greet(s);
            read_msg(&mut r);
            let mut other = Message::new(Kind::Return, &[]).unwrap();
            other.reply_serial = Some(999);
            let bytes = other.encode(2).unwrap().repeat(64);
            while r.get_mut().write_all(&bytes).is_ok() {}
        });
        let mut c = Connection::start(fd, soon(300)).unwrap();
        let t = Instant::now();
        let ping = Message::method_call(BUS_NAME, BUS_PATH, BUS_NAME, "GetId", &[]).unwrap();
        assert!(matches!(c.call(&ping), Err(DbusError::Timeout)));
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        drop(c);
        peer.join().unwrap();
    }

    #[test]
    fn a_bus_that_hangs_up_is_an_error() {
        let (fd, peer) = fake_bus(drop);
        let e = Connection::start(fd, soon(5000)).err().unwrap();
        assert!(matches!(e, DbusError::Closed), "{e:?}");
        peer.join().unwrap();

        // In the middle of a message.
        let (fd, peer) = fake_bus(|s| {
            let mut r = greet(s);
            read_msg(&mut r);
            r.get_mut().write_all(&JOB_REPLY.concat()[..40]).unwrap();
        });
        let mut c = Connection::start(fd, soon(5000)).unwrap();
        let ping = Message::method_call(BUS_NAME, BUS_PATH, BUS_NAME, "GetId", &[]).unwrap();
        assert!(matches!(c.call(&ping), Err(DbusError::Closed)));
        peer.join().unwrap();
    }

    #[test]
    fn a_bus_that_talks_nonsense_is_an_error() {
        // An endless authentication line.
        let (fd, peer) = fake_bus(|mut s| {
            let _ = s.write_all(&[b'A'; 4096]);
            let _ = s.read_to_end(&mut Vec::new());
        });
        let e = Connection::start(fd, soon(5000)).err().unwrap();
        assert!(e.to_string().contains("over-long line"), "{e}");
        peer.join().unwrap();

        // An OK without a guid.
        let (fd, peer) = fake_bus(|mut s| {
            let _ = s.write_all(b"OK\r\n");
            let _ = s.read_to_end(&mut Vec::new());
        });
        let e = Connection::start(fd, soon(5000)).err().unwrap();
        assert!(matches!(e, DbusError::Protocol(_)), "{e:?}");
        peer.join().unwrap();

        // A message that claims 4 GiB: refused from its first 16 bytes.
        let (fd, peer) = fake_bus(|s| {
            let mut r = greet(s);
            read_msg(&mut r);
            let mut head = JOB_REPLY.concat()[..16].to_vec();
            head[4..8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
            let _ = r.get_mut().write_all(&head);
            let _ = r.read_to_end(&mut Vec::new());
        });
        let mut c = Connection::start(fd, soon(5000)).unwrap();
        let ping = Message::method_call(BUS_NAME, BUS_PATH, BUS_NAME, "GetId", &[]).unwrap();
        let e = c.call(&ping).unwrap_err();
        assert!(e.to_string().contains("hutch accepts at most"), "{e}");
        drop(c);
        peer.join().unwrap();
    }

    #[test]
    fn connecting_to_nothing_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("unix:path={}/none", dir.path().display());
        let e = Connection::open(&address, soon(5000)).err().unwrap();
        assert_eq!(
            e.to_string(),
            format!(
                "{}/none: No such file or directory (os error 2)",
                dir.path().display()
            )
        );
        let e = Connection::open("unix:abstract=hutch-test-nothing-here", soon(5000))
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .starts_with("@hutch-test-nothing-here: Connection refused"),
            "{e}"
        );
    }
}
