//! Inputs for the D-Bus decoder: seed messages, messages generated from
//! `arbitrary` choices, and mutations of valid encoded messages.
//!
//! Every choice is read from an [`Unstructured`], so the same generator
//! runs on random bytes (the stable driver in tests/dbus_fuzz.rs) and on
//! a coverage-guided fuzzer's bytes.

use arbitrary::{Result, Unstructured};
use hutch::dbus::{Kind, MAX_MESSAGE, Message, Value};

use super::check::Outcome;

/// Basic type codes, then the container codes a signature may hold.
const BASIC: &[u8] = b"ybnqiuxtdhsog";
const SIGNATURE_CODES: &[u8] = b"ybnqiuxtdhsogva(){}";
/// How deep a generated type nests, unless it is a deep one on purpose.
const DEPTH: usize = 5;

/// The seeds of the corpus, by name, with how far the decoder must get:
/// valid messages of the kinds hutch exchanges with systemd and the bus,
/// then hostile ones.
pub fn seeds() -> Vec<(&'static str, Vec<u8>, Outcome)> {
    let mut out = valid_seeds();
    out.extend(hostile_seeds());
    out
}

/// Messages that the decoder refuses, or whose body it refuses.
fn hostile_seeds() -> Vec<(&'static str, Vec<u8>, Outcome)> {
    let good = raw_reply(b"o", b"\x02\x00\x00\x00/a\x00");
    let with = |at: usize, v: &[u8]| {
        let mut b = good.clone();
        b[at..at + v.len()].copy_from_slice(v);
        b
    };
    let deep_variants = [b"\x01v\x00".repeat(70), b"\x01y\x00\x05".to_vec()].concat();
    let refused = [
        ("refused-truncated", good[..good.len() - 1].to_vec()),
        (
            "refused-frame-of-4-gib",
            with(4, &0xffff_fff0u32.to_le_bytes()),
        ),
        ("refused-byte-order", with(0, b"X")),
        ("refused-serial-0", with(8, &[0; 4])),
        ("refused-signature-without-body", raw_reply(b"", b"\x01")),
        ("refused-unclosed-struct", raw_reply(b"(y", b"\x01")),
        (
            "refused-65-nested-arrays",
            raw_reply(&[b"a".repeat(65), b"y".to_vec()].concat(), &[0; 4]),
        ),
    ];
    let header_only = [
        (
            "header-only-array-past-its-end",
            raw_reply(b"ay", b"\xff\x00\x00\x00\x01"),
        ),
        (
            "header-only-boolean-2",
            raw_reply(b"b", b"\x02\x00\x00\x00"),
        ),
        (
            "header-only-non-zero-padding",
            raw_reply(b"yu", b"\x01\x01\x00\x00\x07\x00\x00\x00"),
        ),
        (
            "header-only-string-not-utf8",
            raw_reply(b"s", b"\x01\x00\x00\x00\xff\x00"),
        ),
        (
            "header-only-bad-object-path",
            raw_reply(b"o", b"\x02\x00\x00\x00a/\x00"),
        ),
        (
            "header-only-variants-too-deep",
            raw_reply(b"v", &deep_variants),
        ),
    ];
    let mut out: Vec<_> = refused
        .into_iter()
        .map(|(n, b)| (n, b, Outcome::Refused))
        .collect();
    out.extend(
        header_only
            .into_iter()
            .map(|(n, b)| (n, b, Outcome::HeaderOnly)),
    );
    out
}

/// Messages of the kinds hutch exchanges with systemd and the bus.
fn valid_seeds() -> Vec<(&'static str, Vec<u8>, Outcome)> {
    let mut out = Vec::new();
    let mut add = |name, m: Message, serial| {
        out.push((name, m.encode(serial).unwrap(), Outcome::Read));
    };
    let call = |member: &str, args: &[Value]| {
        let path = "/org/freedesktop/systemd1";
        let manager = "org.freedesktop.systemd1.Manager";
        Message::method_call("org.freedesktop.systemd1", path, manager, member, args).unwrap()
    };
    let props = Value::Array(
        "(sv)".into(),
        vec![
            prop("PIDs", Value::Array("u".into(), vec![Value::U32(7)])),
            prop("Delegate", Value::Bool(true)),
            prop("MemoryMax", Value::U64(50 << 20)),
            prop("CollectMode", Value::Str("inactive-or-failed".into())),
        ],
    );
    let unit = [
        Value::Str("app-hutch-t-1.scope".into()),
        Value::Str("fail".into()),
        props,
        Value::Array("(sa(sv))".into(), Vec::new()),
    ];
    add("start-transient-unit", call("StartTransientUnit", &unit), 5);
    add("subscribe", call("Subscribe", &[]), 2);

    let job = Value::ObjectPath("/org/freedesktop/systemd1/job/42".into());
    add("job-reply", reply(10, 5, std::slice::from_ref(&job)), 10);
    add("hello-reply", reply(1, 1, &[Value::Str(":1.42".into())]), 1);
    let mut err = Message::new(Kind::Error, &[Value::Str("it failed".into())]).unwrap();
    err.error_name = Some("org.freedesktop.DBus.Error.ServiceUnknown".into());
    err.reply_serial = Some(6);
    add("error-reply", err, 11);

    let done = [
        Value::U32(42),
        job,
        Value::Str("app-hutch-t-1.scope".into()),
        Value::Str("done".into()),
    ];
    let mut removed = call("JobRemoved", &done);
    removed.kind = Kind::Signal;
    removed.destination = None;
    removed.sender = Some(":1.7".into());
    add("job-removed", removed, 256);

    // Every basic type, a dictionary and nested variants, in one body.
    let all = [
        Value::Byte(1),
        Value::Bool(false),
        Value::I16(-2),
        Value::U16(3),
        Value::I32(-4),
        Value::U32(5),
        Value::I64(-6),
        Value::U64(7),
        Value::Double(0.5),
        Value::UnixFd(0),
        Value::Signature("a{sv}(yv)".into()),
        Value::Array(
            "{sv}".into(),
            vec![Value::DictEntry(
                Box::new(Value::Str("k".into())),
                Box::new(Value::Variant(Box::new(Value::Variant(Box::new(
                    Value::Struct(vec![Value::Byte(9), Value::Double(-0.0)]),
                ))))),
            )],
        ),
    ];
    add("every-type", reply(3, 2, &all), 3);
    let big_endian = JOB_REMOVED_BIG_ENDIAN.concat();
    out.push(("job-removed-big-endian", big_endian, Outcome::Read));
    out
}

/// systemd's JobRemoved signal in big-endian order, as a bus forwards it
/// from a big-endian sender.
#[rustfmt::skip]
const JOB_REMOVED_BIG_ENDIAN: &[&[u8]] = &[
    b"B\x04\x00\x01", b"\x00\x00\x00\x4d", b"\x00\x00\x01\x00", b"\x00\x00\x00\x8a",
    b"\x01\x01o\x00\x00\x00\x00\x19/org/freedesktop/systemd1\x00", &[0; 6],
    b"\x02\x01s\x00\x00\x00\x00\x20org.freedesktop.systemd1.Manager\x00", &[0; 7],
    b"\x03\x01s\x00\x00\x00\x00\x0aJobRemoved\x00", &[0; 5],
    b"\x07\x01s\x00\x00\x00\x00\x04:1.7\x00", &[0; 3],
    b"\x08\x01g\x00\x04uoss\x00", &[0; 6],
    b"\x00\x00\x00\x2a",
    b"\x00\x00\x00\x20/org/freedesktop/systemd1/job/42\x00", &[0; 3],
    b"\x00\x00\x00\x13app-hutch-t-1.scope\x00",
    b"\x00\x00\x00\x04done\x00",
];

fn prop(name: &str, v: Value) -> Value {
    Value::Struct(vec![Value::Str(name.into()), Value::Variant(Box::new(v))])
}

fn reply(serial: u32, to: u32, args: &[Value]) -> Message {
    let mut m = Message::new(Kind::Return, args).unwrap();
    m.serial = serial;
    m.reply_serial = Some(to);
    m.sender = Some(":1.7".into());
    m
}

/// One input: a generated message, a mutated one (from `bases`, valid
/// messages), or a header with an arbitrary signature over arbitrary body
/// bytes.
pub fn input(u: &mut Unstructured, bases: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut bytes = match u.choose_index(8)? {
        0..=2 => generated_message(u)?,
        3..=5 => u.choose(bases)?.clone(),
        6 => raw_body(u)?,
        _ => u.arbitrary::<Vec<u8>>()?,
    };
    for _ in 0..u.int_in_range(0..=4)? {
        mutate(u, &mut bytes)?;
    }
    if u.ratio(3, 4)? {
        fix_lengths(&mut bytes);
    }
    Ok(bytes)
}

/// A valid message of arbitrary kind, header fields and arguments.
fn generated_message(u: &mut Unstructured) -> Result<Vec<u8>> {
    let mut args = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let ty = complete_type(u, 0)?;
        args.push(value(u, &ty, 0)?);
    }
    let kind = match u.int_in_range(0..=5u8)? {
        0 => Kind::MethodCall,
        1 => Kind::Return,
        2 => Kind::Error,
        3 => Kind::Signal,
        c => Kind::Other(u.int_in_range(c..=255)?),
    };
    let Ok(mut m) = Message::new(kind, &args) else {
        return Ok(Vec::new()); // over the size limits: nothing to send
    };
    m.flags = u.arbitrary()?;
    m.path = Some(object_path(u)?);
    m.interface = u
        .arbitrary::<bool>()?
        .then(|| "org.freedesktop.systemd1.Manager".into());
    m.member = Some(string(u)?);
    m.error_name = u.arbitrary::<bool>()?.then(|| "org.example.Error".into());
    m.reply_serial = u.arbitrary()?;
    m.destination = u.arbitrary::<bool>()?.then(|| ":1.42".into());
    m.sender = u
        .arbitrary::<bool>()?
        .then(|| "org.freedesktop.systemd1".into());
    let serial = u.int_in_range(1..=u32::MAX)?;
    Ok(m.encode(serial).unwrap_or_default())
}

/// A complete type nested at most [`DEPTH`] deep.
fn complete_type(u: &mut Unstructured, depth: usize) -> Result<String> {
    let leaf = depth >= DEPTH;
    Ok(match u.choose_index(if leaf { 2 } else { 6 })? {
        0 => (*u.choose(BASIC)? as char).to_string(),
        1 => "v".into(),
        2 | 3 => format!("a{}", complete_type(u, depth + 1)?),
        4 => {
            let mut s = String::from("(");
            for _ in 0..u.int_in_range(1..=3)? {
                s += &complete_type(u, depth + 1)?;
            }
            s + ")"
        }
        _ => format!(
            "a{{{}{}}}",
            *u.choose(BASIC)? as char,
            complete_type(u, depth + 2)?
        ),
    })
}

/// A value of the complete type `ty`.
fn value(u: &mut Unstructured, ty: &str, depth: usize) -> Result<Value> {
    let t = ty.as_bytes();
    Ok(match t[0] {
        b'y' => Value::Byte(u.arbitrary()?),
        b'b' => Value::Bool(u.arbitrary()?),
        b'n' => Value::I16(u.arbitrary()?),
        b'q' => Value::U16(u.arbitrary()?),
        b'i' => Value::I32(u.arbitrary()?),
        b'u' => Value::U32(u.arbitrary()?),
        b'h' => Value::UnixFd(u.arbitrary()?),
        b'x' => Value::I64(u.arbitrary()?),
        b't' => Value::U64(u.arbitrary()?),
        b'd' => Value::Double(u.arbitrary()?),
        b's' => Value::Str(string(u)?),
        b'o' => Value::ObjectPath(object_path(u)?),
        b'g' => Value::Signature(signature(u)?),
        b'v' if u.ratio(1, 32)? => {
            // Variants in variants, as deep as the decoder allows or deeper.
            let mut v = Value::Byte(0);
            for _ in 0..u.int_in_range(60..=70)? {
                v = Value::Variant(Box::new(v));
            }
            v
        }
        b'v' => {
            let inner = match depth < 2 * DEPTH {
                true => complete_type(u, 0)?,
                false => "y".into(),
            };
            Value::Variant(Box::new(value(u, &inner, depth + 1)?))
        }
        b'a' => {
            let elem = &ty[1..];
            let mut items = Vec::new();
            for _ in 0..u.int_in_range(0..=4)? {
                items.push(value(u, elem, depth + 1)?);
            }
            Value::Array(elem.into(), items)
        }
        b'(' => {
            let inner = hutch::dbus::split_signature(&ty[1..ty.len() - 1]).unwrap();
            let mut items = Vec::new();
            for t in inner {
                items.push(value(u, t, depth + 1)?);
            }
            Value::Struct(items)
        }
        _ => Value::DictEntry(
            Box::new(value(u, &ty[1..2], depth + 1)?),
            Box::new(value(u, &ty[2..ty.len() - 1], depth + 1)?),
        ),
    })
}

fn string(u: &mut Unstructured) -> Result<String> {
    Ok(u.arbitrary::<String>()?.replace('\0', ""))
}

fn object_path(u: &mut Unstructured) -> Result<String> {
    let mut p = String::new();
    for _ in 0..u.int_in_range(0..=3)? {
        p.push('/');
        for _ in 0..u.int_in_range(1..=6)? {
            p.push(*u.choose(b"az_09AZ")? as char);
        }
    }
    Ok(if p.is_empty() { "/".into() } else { p })
}

/// A valid signature of up to three complete types.
fn signature(u: &mut Unstructured) -> Result<String> {
    let mut s = String::new();
    for _ in 0..u.int_in_range(0..=3)? {
        s += &complete_type(u, 0)?;
    }
    Ok(if s.len() > 255 { String::new() } else { s })
}

/// A reply whose signature is a string of type codes (valid or not) over
/// arbitrary body bytes: what the value reader makes of nonsense.
fn raw_body(u: &mut Unstructured) -> Result<Vec<u8>> {
    let mut sig = Vec::new();
    for _ in 0..u.int_in_range(1..=12)? {
        sig.push(*u.choose(SIGNATURE_CODES)?);
    }
    match u.choose_index(8)? {
        // Often a valid one, so that the body is what is wrong.
        0..=3 => sig = signature(u)?.into_bytes(),
        // Arrays nested around the decoder's limit of 64.
        4 => sig = format!("{}y", "a".repeat(u.int_in_range(60..=70)?)).into_bytes(),
        _ => {}
    }
    let body: Vec<u8> = u.arbitrary()?;
    Ok(raw_reply(&sig, &body))
}

/// A little-endian method return (to serial 1) with signature `sig`,
/// unchecked, and `body`.
fn raw_reply(sig: &[u8], body: &[u8]) -> Vec<u8> {
    let mut fields = vec![5, 1, b'u', 0, 1, 0, 0, 0]; // REPLY_SERIAL 1
    if !sig.is_empty() {
        fields.extend_from_slice(&[8, 1, b'g', 0, sig.len() as u8]); // SIGNATURE
        fields.extend_from_slice(sig);
        fields.push(0);
    }
    let mut m = vec![b'l', 2, 0, 1];
    m.extend_from_slice(&(body.len() as u32).to_le_bytes());
    m.extend_from_slice(&7u32.to_le_bytes());
    m.extend_from_slice(&(fields.len() as u32).to_le_bytes());
    m.extend_from_slice(&fields);
    m.resize(m.len().next_multiple_of(8), 0);
    m.extend_from_slice(body);
    m
}

/// Values that sit on the edges of lengths and counts.
const INTERESTING_U32: &[u32] = &[
    0,
    1,
    3,
    4,
    7,
    8,
    0x7f,
    0x80,
    0xff,
    0x100,
    0xffff,
    0x1_0000,
    MAX_MESSAGE as u32 - 1,
    MAX_MESSAGE as u32,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fff0,
    u32::MAX,
];

/// One change to the bytes of a message.
fn mutate(u: &mut Unstructured, bytes: &mut Vec<u8>) -> Result<()> {
    if bytes.is_empty() {
        bytes.extend_from_slice(&u.arbitrary::<[u8; 16]>()?);
    }
    let at = u.choose_index(bytes.len())?;
    match u.choose_index(9)? {
        0 => bytes[at] ^= 1 << u.int_in_range(0..=7)?,
        1 => bytes[at] = *u.choose(b"\x00\x01\x7f\x80\xff()a{}vsgoy")?,
        2 => {
            let at = at & !3;
            let v = *u.choose(INTERESTING_U32)?;
            let v = if bytes[0] == b'B' {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            let end = (at + 4).min(bytes.len());
            bytes[at..end].copy_from_slice(&v[..end - at]);
        }
        3 => {
            let extra: Vec<u8> = (0..u.int_in_range(1..=8)?)
                .map(|_| u.arbitrary())
                .collect::<Result<_>>()?;
            bytes.splice(at..at, extra);
        }
        4 => {
            let end = (at + u.int_in_range(1..=16)?).min(bytes.len());
            bytes.drain(at..end);
        }
        5 => {
            // Copy a stretch of the message over another place in it.
            let len = u.int_in_range(1..=32)?.min(bytes.len() - at);
            let chunk = bytes[at..at + len].to_vec();
            let to = u.choose_index(bytes.len())?;
            bytes.splice(to..to, chunk);
        }
        6 => bytes.truncate(at),
        7 => bytes[0] = if bytes[0] == b'l' { b'B' } else { b'l' },
        _ => bytes[at] = u.arbitrary()?,
    }
    Ok(())
}

/// Rewrites the body length so the header agrees with the bytes there, so
/// that a mutation gets past the frame check into the decoder proper.
fn fix_lengths(bytes: &mut [u8]) {
    if bytes.len() < 16 {
        return;
    }
    let big_endian = bytes[0] == b'B';
    let word = |b: &[u8]| {
        let b: [u8; 4] = b.try_into().unwrap();
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let fields = u64::from(word(&bytes[12..16]));
    let body_start = (16 + fields).next_multiple_of(8);
    if let Some(body) = (bytes.len() as u64).checked_sub(body_start) {
        let body = body as u32;
        let v = if big_endian {
            body.to_be_bytes()
        } else {
            body.to_le_bytes()
        };
        bytes[4..8].copy_from_slice(&v);
    }
}
