//! A small, blocking D-Bus client: what hutch needs to ask systemd for a
//! transient scope (`cgroup::systemd`), and nothing more. A bottom module:
//! it imports nothing of hutch's.
//!
//! - [`address`]: which unix socket a bus address names (the one parser,
//!   also used by the cgroup probe to tell whether a bus is there).
//! - `wire`: the value model, signatures, marshalling and [`Message`]
//!   encode/decode. Everything read from a bus goes through
//!   [`Message::frame_len`] and [`Message::decode`]; a bus that sends
//!   nonsense gets an error, never a panic, an unbounded allocation or an
//!   endless loop (fuzzed: `tests/dbus_fuzz.rs`).
//! - `connection`: connect, SASL `EXTERNAL`, `Hello`, then method calls,
//!   replies and signals, one message at a time on the calling thread.
//!   Every wait is a `poll()` bounded by one deadline for the whole
//!   exchange, so a bus that stops answering costs at most that long.
//!
//! Not supported, because hutch does not need them: other transports (tcp,
//! launchd, autolaunch), other authentication mechanisms, passing file
//! descriptors, and serving method calls (calls addressed to hutch are
//! ignored; the bus does not wait for their replies).

pub mod address;
mod connection;
mod wire;

pub use address::Socket;
pub use connection::{BUS_NAME, Connection};
pub use wire::{Kind, MAX_MESSAGE, Message, Value, split_signature};

/// What went wrong talking to a bus.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error(
        "unsupported D-Bus address {0:?}: hutch connects only to `unix:path=...` and `unix:abstract=...` addresses"
    )]
    Address(String),
    #[error("{socket}: {source}")]
    Connect {
        socket: String,
        #[source]
        source: std::io::Error,
    },
    #[error("D-Bus socket: {0}")]
    Io(#[source] std::io::Error),
    #[error(
        "the bus refused authentication as uid {uid} (it answered {reply:?}); is it a bus of another user?"
    )]
    Auth { uid: u32, reply: String },
    #[error("no answer from the bus in time")]
    Timeout,
    #[error("the bus closed the connection")]
    Closed,
    #[error("the bus sent malformed data: {0}")]
    Protocol(String),
    /// An error reply: its name, and its message when it has one.
    #[error("{name}: {message}")]
    Reply { name: String, message: String },
    /// A message hutch built does not follow the specification (a bug).
    #[error("hutch built an invalid D-Bus message: {0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, DbusError>;

/// The bus sent something the specification does not allow.
fn malformed<T>(what: impl Into<String>) -> Result<T> {
    Err(DbusError::Protocol(what.into()))
}

/// hutch built something the specification does not allow.
fn invalid<T>(what: impl Into<String>) -> Result<T> {
    Err(DbusError::Invalid(what.into()))
}
