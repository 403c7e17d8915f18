//! What must hold for any bytes a bus sends (shared by the corpus replay
//! and the fuzz drivers: tests/dbus_fuzz.rs and fuzz/afl/).
//!
//! A panic here is a finding: the decoder panicked, or it accepted a
//! message that hutch's own encoder does not write back the same way.

use hutch::dbus::{MAX_MESSAGE, Message};

/// How far the decoder got with one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// `Message::decode` refused it.
    Refused,
    /// The header was read; the body did not match its signature.
    HeaderOnly,
    /// The whole message was read, body included.
    Read,
}

/// Feeds `bytes` to the decoder the way a connection does, then checks
/// that what it accepted re-encodes to the same message.
pub fn check(bytes: &[u8]) -> Outcome {
    // The connection reads the first 16 bytes, asks for the frame's
    // length, then decodes exactly that many.
    if let Some(head) = bytes.first_chunk::<16>()
        && let Ok(len) = Message::frame_len(head)
    {
        assert!(len <= MAX_MESSAGE, "frame_len {len} over the limit");
    }
    let Ok(read) = Message::decode(bytes) else {
        return Outcome::Refused;
    };
    assert!(bytes.len() <= MAX_MESSAGE);
    // Error replies are read for their message whatever their signature.
    let _ = read.to_error();
    let Ok(args) = read.args(&read.signature) else {
        return Outcome::HeaderOnly;
    };
    round_trip(&read, &args, bytes[0] == b'B');
    Outcome::Read
}

/// The reader accepts only what the writer writes: the values of a
/// message that was read encode back to the same header fields and, for a
/// little-endian message, to the same body bytes (`Message`'s equality
/// compares bodies as bytes, so a NaN compares equal to itself).
fn round_trip(read: &Message, args: &[hutch::dbus::Value], big_endian: bool) {
    let mut again = Message::new(read.kind, args)
        .unwrap_or_else(|e| panic!("values read from a bus do not encode: {e}: {args:?}"));
    again.flags = read.flags;
    again.serial = read.serial;
    again.path.clone_from(&read.path);
    again.interface.clone_from(&read.interface);
    again.member.clone_from(&read.member);
    again.error_name.clone_from(&read.error_name);
    again.reply_serial = read.reply_serial;
    again.destination.clone_from(&read.destination);
    again.sender.clone_from(&read.sender);
    assert_eq!(again.signature, read.signature, "the values' signature");
    let bytes = again
        .encode(read.serial)
        .unwrap_or_else(|e| panic!("a message read from a bus does not encode: {e}: {read:?}"));
    let reread = Message::decode(&bytes)
        .unwrap_or_else(|e| panic!("hutch's own encoding does not decode: {e}: {again:?}"));
    // Not assert_eq!: the input is saved, and a dump of it says little.
    assert!(reread == again, "encode then decode changed the message");
    if !big_endian {
        assert!(
            *read == again,
            "a message read that is not written back the same"
        );
    }
}
