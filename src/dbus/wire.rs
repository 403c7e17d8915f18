//! The D-Bus wire format (the specification's "Message Protocol"): the
//! value model and signatures, marshalling, and whole messages.
//!
//! hutch writes little-endian messages and reads both byte orders (the bus
//! daemon forwards messages in their sender's order). Values are aligned to
//! their natural boundary counted from the start of the message; the body
//! starts at a multiple of 8, so a body can be encoded on its own.
//!
//! Everything a bus sends is checked against what is there before it is
//! used: lengths against the bytes read, nesting against [`MAX_DEPTH`],
//! messages against [`MAX_MESSAGE`].

use super::{DbusError, Result, invalid, malformed};

/// The largest message hutch reads or writes. The specification allows
/// 128 MiB; systemd's answers to hutch are a few hundred bytes.
pub const MAX_MESSAGE: usize = 1 << 20;
/// The deepest nesting of arrays, structs, dict entries and variants
/// (the specification's limit for arrays plus structs).
const MAX_DEPTH: usize = 64;
/// The longest signature the specification allows.
const MAX_SIGNATURE: usize = 255;

// Header field codes.
const PATH: u8 = 1;
const INTERFACE: u8 = 2;
const MEMBER: u8 = 3;
const ERROR_NAME: u8 = 4;
const REPLY_SERIAL: u8 = 5;
const DESTINATION: u8 = 6;
const SENDER: u8 = 7;
const SIGNATURE: u8 = 8;
const UNIX_FDS: u8 = 9;

// ---------------------------------------------------------------- values

/// A D-Bus value. Arrays carry their element signature, so that an empty
/// array has a type too.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Double(f64),
    /// An index into the message's file descriptors (hutch passes none).
    UnixFd(u32),
    Str(String),
    ObjectPath(String),
    Signature(String),
    /// Element signature, elements.
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    DictEntry(Box<Value>, Box<Value>),
    Variant(Box<Value>),
}

impl Value {
    /// The value's type as a signature (one complete type).
    pub fn signature(&self) -> String {
        let mut s = String::new();
        self.push_signature(&mut s);
        s
    }

    fn push_signature(&self, s: &mut String) {
        let code = match self {
            Value::Byte(_) => 'y',
            Value::Bool(_) => 'b',
            Value::I16(_) => 'n',
            Value::U16(_) => 'q',
            Value::I32(_) => 'i',
            Value::U32(_) => 'u',
            Value::I64(_) => 'x',
            Value::U64(_) => 't',
            Value::Double(_) => 'd',
            Value::UnixFd(_) => 'h',
            Value::Str(_) => 's',
            Value::ObjectPath(_) => 'o',
            Value::Signature(_) => 'g',
            Value::Variant(_) => 'v',
            Value::Array(elem, _) => {
                s.push('a');
                s.push_str(elem);
                return;
            }
            Value::Struct(items) => {
                s.push('(');
                items.iter().for_each(|i| i.push_signature(s));
                s.push(')');
                return;
            }
            Value::DictEntry(k, v) => {
                s.push('{');
                k.push_signature(s);
                v.push_signature(s);
                s.push('}');
                return;
            }
        };
        s.push(code);
    }

    /// The string inside a `Str`, `ObjectPath` or `Signature`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => Some(s),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- signatures

/// The alignment of values of the type starting with `code`.
fn alignment(code: u8) -> usize {
    match code {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b'h' | b's' | b'o' | b'a' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1, // y g v
    }
}

fn is_basic(code: u8) -> bool {
    b"ybnqiuxtdhsog".contains(&code)
}

/// The length of the complete type at the start of `sig`, checking it.
fn complete_type_len(sig: &[u8], depth: usize) -> Result<usize> {
    if depth > MAX_DEPTH {
        return malformed("types nested too deeply");
    }
    let bad = || malformed(format!("bad signature {:?}", String::from_utf8_lossy(sig)));
    match sig.first() {
        Some(&c) if is_basic(c) || c == b'v' => Ok(1),
        Some(b'a') if sig.get(1) == Some(&b'{') => {
            // A dict entry: a basic key, one value, and only in an array.
            match sig.get(2) {
                Some(&k) if is_basic(k) => {}
                _ => return bad(),
            }
            let value = complete_type_len(&sig[3..], depth + 2)?;
            match sig.get(3 + value) {
                Some(b'}') => Ok(4 + value),
                _ => bad(),
            }
        }
        Some(b'a') => Ok(1 + complete_type_len(&sig[1..], depth + 1)?),
        Some(b'(') => {
            let mut i = 1;
            loop {
                match sig.get(i) {
                    Some(b')') if i > 1 => return Ok(i + 1),
                    Some(b')') | None => return bad(),
                    Some(_) => i += complete_type_len(&sig[i..], depth + 1)?,
                }
            }
        }
        _ => bad(),
    }
}

/// Splits a signature into its complete types, checking it.
pub fn split_signature(sig: &str) -> Result<Vec<&str>> {
    if sig.len() > MAX_SIGNATURE {
        return malformed(format!("a signature of {} bytes", sig.len()));
    }
    let mut types = Vec::new();
    let mut rest = sig;
    while !rest.is_empty() {
        let n = complete_type_len(rest.as_bytes(), 0)?;
        // Signatures are ASCII when valid, so `n` is a char boundary.
        let (t, r) = rest.split_at(n);
        types.push(t);
        rest = r;
    }
    Ok(types)
}

/// Whether `sig` is exactly one complete type.
fn single_type(sig: &str) -> Result<()> {
    match split_signature(sig)?.len() {
        1 => Ok(()),
        _ => malformed(format!("{sig:?} is not a single complete type")),
    }
}

/// Whether `p` is a valid object path: `/`, or `/`-separated non-empty
/// elements of `[A-Za-z0-9_]`.
fn valid_object_path(p: &str) -> bool {
    p == "/"
        || (p.starts_with('/')
            && p[1..].split('/').all(|e| {
                !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }))
}

// ---------------------------------------------------------------- writing

/// Appends values to a buffer in little-endian wire format. Alignment is
/// counted from the buffer's start, which is a multiple of 8 in the message.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn string(&mut self, s: &str) -> Result<()> {
        if s.contains('\0') {
            return invalid(format!("string {s:?} contains a NUL byte"));
        }
        let len = u32::try_from(s.len()).or_else(|_| invalid("a string over 4 GiB"))?;
        self.u32(len);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    fn signature(&mut self, s: &str) -> Result<()> {
        split_signature(s).or_else(|_| invalid(format!("bad signature {s:?}")))?;
        self.buf.push(s.len() as u8); // at most MAX_SIGNATURE
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    fn put(&mut self, v: &Value) -> Result<()> {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::I16(n) => self.fixed(2, &n.to_le_bytes()),
            Value::U16(n) => self.fixed(2, &n.to_le_bytes()),
            Value::I32(n) => self.fixed(4, &n.to_le_bytes()),
            Value::U32(n) | Value::UnixFd(n) => self.u32(*n),
            Value::I64(n) => self.fixed(8, &n.to_le_bytes()),
            Value::U64(n) => self.fixed(8, &n.to_le_bytes()),
            Value::Double(n) => self.fixed(8, &n.to_le_bytes()),
            Value::Str(s) => self.string(s)?,
            Value::ObjectPath(p) => {
                if !valid_object_path(p) {
                    return invalid(format!("{p:?} is not an object path"));
                }
                self.string(p)?
            }
            Value::Signature(s) => self.signature(s)?,
            Value::Array(elem, items) => {
                single_type(&format!("a{elem}"))
                    .or_else(|_| invalid(format!("bad element type {elem:?}")))?;
                self.u32(0);
                let len_at = self.buf.len() - 4;
                // The padding to the first element is there even when
                // there is no element, and is not counted in the length.
                self.pad(alignment(elem.as_bytes()[0]));
                let start = self.buf.len();
                for item in items {
                    if item.signature() != *elem {
                        return invalid(format!(
                            "an element of type {} in an array of {elem}",
                            item.signature()
                        ));
                    }
                    self.put(item)?;
                }
                let len = u32::try_from(self.buf.len() - start)
                    .or_else(|_| invalid("an array over 4 GiB"))?;
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(items) => {
                if items.is_empty() {
                    return invalid("an empty struct");
                }
                self.pad(8);
                for item in items {
                    self.put(item)?;
                }
            }
            Value::DictEntry(k, v) => {
                self.pad(8);
                self.put(k)?;
                self.put(v)?;
            }
            Value::Variant(inner) => {
                self.signature(&inner.signature())?;
                self.put(inner)?;
            }
        }
        Ok(())
    }

    fn fixed(&mut self, align: usize, bytes: &[u8]) {
        self.pad(align);
        self.buf.extend_from_slice(bytes);
    }
}

// ---------------------------------------------------------------- reading

/// Reads values from a message in either byte order, checking every
/// length against what is there. Alignment is counted from the start of
/// `buf`, which must be a multiple of 8 in the message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], big_endian: bool) -> Self {
        Reader {
            buf,
            pos: 0,
            big_endian,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return malformed("a value runs past the end of its message");
        };
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    /// Skips the padding to `align`, which must be zero bytes.
    fn align(&mut self, align: usize) -> Result<()> {
        let n = (align - self.pos % align) % align;
        if self.take(n)?.iter().any(|&b| b != 0) {
            return malformed("non-zero padding");
        }
        Ok(())
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.align(N)?;
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        if self.big_endian {
            b.reverse();
        }
        Ok(b) // now little-endian
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    fn string(&mut self) -> Result<String> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        if self.take(1)? != [0] {
            return malformed("a string without its terminating NUL");
        }
        if bytes.contains(&0) {
            return malformed("a string with a NUL byte inside");
        }
        String::from_utf8(bytes.to_vec()).or_else(|_| malformed("a string that is not UTF-8"))
    }

    fn signature(&mut self) -> Result<String> {
        let len = self.take(1)?[0] as usize;
        let bytes = self.take(len)?;
        if self.take(1)? != [0] {
            return malformed("a signature without its terminating NUL");
        }
        let s =
            std::str::from_utf8(bytes).or_else(|_| malformed("a signature that is not ASCII"))?;
        split_signature(s)?;
        Ok(s.to_owned())
    }

    /// Reads a value of the complete type `ty` (checked by the caller).
    fn value(&mut self, ty: &str, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return malformed("values nested too deeply");
        }
        let t = ty.as_bytes();
        Ok(match t[0] {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => return malformed(format!("boolean {n}")),
            },
            b'n' => Value::I16(i16::from_le_bytes(self.fixed()?)),
            b'q' => Value::U16(u16::from_le_bytes(self.fixed()?)),
            b'i' => Value::I32(i32::from_le_bytes(self.fixed()?)),
            b'u' => Value::U32(self.u32()?),
            b'h' => Value::UnixFd(self.u32()?),
            b'x' => Value::I64(i64::from_le_bytes(self.fixed()?)),
            b't' => Value::U64(u64::from_le_bytes(self.fixed()?)),
            b'd' => Value::Double(f64::from_le_bytes(self.fixed()?)),
            b's' => Value::Str(self.string()?),
            b'o' => {
                let p = self.string()?;
                if !valid_object_path(&p) {
                    return malformed(format!("{p:?} is not an object path"));
                }
                Value::ObjectPath(p)
            }
            b'g' => Value::Signature(self.signature()?),
            b'v' => {
                let sig = self.signature()?;
                single_type(&sig)?;
                Value::Variant(Box::new(self.value(&sig, depth + 1)?))
            }
            b'a' => {
                let elem = &ty[1..];
                let end = self.array_end(elem)?;
                let mut items = Vec::new();
                // Every element takes at least one byte, so this ends.
                while self.pos < end {
                    items.push(self.value(elem, depth + 1)?);
                }
                if self.pos != end {
                    return malformed("an array element runs past the array's end");
                }
                Value::Array(elem.to_owned(), items)
            }
            b'(' => {
                self.align(8)?;
                let mut items = Vec::new();
                for t in split_signature(&ty[1..ty.len() - 1])? {
                    items.push(self.value(t, depth + 1)?);
                }
                Value::Struct(items)
            }
            b'{' => {
                self.align(8)?;
                let k = self.value(&ty[1..2], depth + 1)?;
                let v = self.value(&ty[2..ty.len() - 1], depth + 1)?;
                Value::DictEntry(Box::new(k), Box::new(v))
            }
            c => return malformed(format!("type code {:?}", c as char)),
        })
    }

    /// Reads an array's length and the padding before its first element;
    /// returns where the array ends.
    fn array_end(&mut self, elem: &str) -> Result<usize> {
        let len = self.u32()? as usize;
        self.align(alignment(elem.as_bytes()[0]))?;
        match self.pos.checked_add(len) {
            Some(end) if end <= self.buf.len() => Ok(end),
            _ => malformed(format!("an array of {len} bytes runs past its message")),
        }
    }

    /// Skips a value of the complete type `ty` without keeping it.
    fn skip(&mut self, ty: &str, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return malformed("values nested too deeply");
        }
        match ty.as_bytes()[0] {
            b'a' => {
                let end = self.array_end(&ty[1..])?;
                self.pos = end;
            }
            b'(' => {
                self.align(8)?;
                for t in split_signature(&ty[1..ty.len() - 1])? {
                    self.skip(t, depth + 1)?;
                }
            }
            b'v' => {
                let sig = self.signature()?;
                single_type(&sig)?;
                self.skip(&sig, depth + 1)?;
            }
            _ => {
                self.value(ty, depth)?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- messages

/// The type of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    #[default]
    MethodCall,
    Return,
    Error,
    Signal,
    /// A type newer than this client; such messages are ignored.
    Other(u8),
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::MethodCall => 1,
            Kind::Return => 2,
            Kind::Error => 3,
            Kind::Signal => 4,
            Kind::Other(c) => c,
        }
    }

    fn from_code(c: u8) -> Kind {
        match c {
            1 => Kind::MethodCall,
            2 => Kind::Return,
            3 => Kind::Error,
            4 => Kind::Signal,
            c => Kind::Other(c),
        }
    }
}

/// A D-Bus message: its header fields, and its body kept encoded until
/// [`Message::args`] reads it with the signature the caller expects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub kind: Kind,
    pub flags: u8,
    /// Set when the message is sent or read.
    pub serial: u32,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub reply_serial: Option<u32>,
    pub destination: Option<String>,
    pub sender: Option<String>,
    /// The body's signature ("" when there is no body).
    pub signature: String,
    body: Vec<u8>,
    big_endian: bool,
}

impl Message {
    /// A message of `kind` carrying `args`; the caller sets the header
    /// fields its kind needs.
    pub fn new(kind: Kind, args: &[Value]) -> Result<Message> {
        let mut w = Writer::default();
        let mut signature = String::new();
        for a in args {
            a.push_signature(&mut signature);
            w.put(a)?;
        }
        split_signature(&signature).or_else(|e| invalid(format!("arguments: {e}")))?;
        Ok(Message {
            kind,
            signature,
            body: w.buf,
            ..Message::default()
        })
    }

    /// A method call to `member` of `interface` on object `path` of
    /// `destination`.
    pub fn method_call(
        destination: &str,
        path: &str,
        interface: &str,
        member: &str,
        args: &[Value],
    ) -> Result<Message> {
        let mut m = Message::new(Kind::MethodCall, args)?;
        m.destination = Some(destination.into());
        m.path = Some(path.into());
        m.interface = Some(interface.into());
        m.member = Some(member.into());
        Ok(m)
    }

    /// The message in wire format, with serial `serial`.
    pub fn encode(&self, serial: u32) -> Result<Vec<u8>> {
        if self.big_endian {
            return invalid("a big-endian message read from the bus cannot be sent on");
        }
        if serial == 0 {
            return invalid("serial 0");
        }
        let mut fields = Vec::new();
        let mut field = |code: u8, v: Value| {
            fields.push(Value::Struct(vec![
                Value::Byte(code),
                Value::Variant(Box::new(v)),
            ]))
        };
        let strings = [
            (PATH, &self.path),
            (INTERFACE, &self.interface),
            (MEMBER, &self.member),
            (ERROR_NAME, &self.error_name),
            (DESTINATION, &self.destination),
            (SENDER, &self.sender),
        ];
        for (code, v) in strings {
            if let Some(s) = v {
                field(
                    code,
                    if code == PATH {
                        Value::ObjectPath(s.clone())
                    } else {
                        Value::Str(s.clone())
                    },
                );
            }
        }
        if let Some(r) = self.reply_serial {
            field(REPLY_SERIAL, Value::U32(r));
        }
        if !self.signature.is_empty() {
            field(SIGNATURE, Value::Signature(self.signature.clone()));
        }
        let body_len = u32::try_from(self.body.len()).or_else(|_| invalid("a body over 4 GiB"))?;
        let mut w = Writer::default();
        w.buf
            .extend_from_slice(&[b'l', self.kind.code(), self.flags, 1]);
        w.u32(body_len);
        w.u32(serial);
        w.put(&Value::Array("(yv)".into(), fields))?;
        w.pad(8);
        w.buf.extend_from_slice(&self.body);
        if w.buf.len() > MAX_MESSAGE {
            return invalid(format!("a message of {} bytes", w.buf.len()));
        }
        Ok(w.buf)
    }

    /// The length of the message whose first 16 bytes are `head`.
    pub fn frame_len(head: &[u8; 16]) -> Result<usize> {
        let big_endian = match head[0] {
            b'l' => false,
            b'B' => true,
            c => return malformed(format!("byte order mark {c:#04x}")),
        };
        let word = |at: usize| {
            let mut b: [u8; 4] = head[at..at + 4].try_into().expect("4 bytes");
            if big_endian {
                b.reverse();
            }
            u32::from_le_bytes(b) as u64
        };
        if head[3] != 1 {
            return malformed(format!("protocol version {}", head[3]));
        }
        let (body, fields) = (word(4), word(12));
        let total = (16 + fields).next_multiple_of(8) + body;
        if total > MAX_MESSAGE as u64 {
            return malformed(format!(
                "a message of {total} bytes (hutch accepts at most {MAX_MESSAGE})"
            ));
        }
        Ok(total as usize)
    }

    /// Reads one whole message (exactly [`Message::frame_len`] bytes).
    pub fn decode(bytes: &[u8]) -> Result<Message> {
        let Some(head) = bytes.first_chunk::<16>() else {
            return malformed("a message shorter than its header");
        };
        if Message::frame_len(head)? != bytes.len() {
            return malformed("a message whose length is not what its header says");
        }
        let big_endian = head[0] == b'B';
        let mut r = Reader::new(bytes, big_endian);
        r.take(4)?;
        let body_len = r.u32()? as usize;
        let mut m = Message {
            kind: Kind::from_code(head[1]),
            flags: head[2],
            serial: r.u32()?,
            big_endian,
            ..Message::default()
        };
        if m.serial == 0 {
            return malformed("serial 0");
        }
        let end = r.array_end("(yv)")?;
        while r.pos < end {
            r.align(8)?;
            let code = r.take(1)?[0];
            let sig = r.signature()?;
            single_type(&sig)?;
            let expected = match code {
                PATH => "o",
                INTERFACE | MEMBER | ERROR_NAME | DESTINATION | SENDER => "s",
                REPLY_SERIAL | UNIX_FDS => "u",
                SIGNATURE => "g",
                _ => {
                    // Unknown fields must be ignored.
                    r.skip(&sig, 1)?;
                    continue;
                }
            };
            if sig != expected {
                return malformed(format!("header field {code} of type {sig:?}"));
            }
            match (code, r.value(&sig, 1)?) {
                (PATH, Value::ObjectPath(s)) => m.path = Some(s),
                (INTERFACE, Value::Str(s)) => m.interface = Some(s),
                (MEMBER, Value::Str(s)) => m.member = Some(s),
                (ERROR_NAME, Value::Str(s)) => m.error_name = Some(s),
                (DESTINATION, Value::Str(s)) => m.destination = Some(s),
                (SENDER, Value::Str(s)) => m.sender = Some(s),
                (SIGNATURE, Value::Signature(s)) => m.signature = s,
                (REPLY_SERIAL, Value::U32(n)) => m.reply_serial = Some(n),
                (UNIX_FDS, Value::U32(0)) => {}
                (UNIX_FDS, _) => return malformed("file descriptors hutch did not ask for"),
                (code, v) => return malformed(format!("header field {code} holding {v:?}")),
            }
        }
        if r.pos != end {
            return malformed("a header field runs past the header");
        }
        r.align(8)?;
        if bytes.len() - r.pos != body_len {
            return malformed("the body's length is not what the header says");
        }
        m.body = bytes[r.pos..].to_vec();
        let missing = match m.kind {
            Kind::MethodCall => m.path.is_none() || m.member.is_none(),
            Kind::Signal => m.path.is_none() || m.interface.is_none() || m.member.is_none(),
            Kind::Return => m.reply_serial.is_none(),
            Kind::Error => m.reply_serial.is_none() || m.error_name.is_none(),
            Kind::Other(_) => false,
        };
        if missing {
            return malformed(format!("a {:?} message without a required field", m.kind));
        }
        split_signature(&m.signature)?;
        if m.signature.is_empty() && !m.body.is_empty() {
            return malformed("a body without a signature");
        }
        Ok(m)
    }

    /// The arguments, which must have the signature `expected`.
    pub fn args(&self, expected: &str) -> Result<Vec<Value>> {
        if self.signature != expected {
            return malformed(format!(
                "arguments of type ({}) where ({expected}) was expected",
                self.signature
            ));
        }
        let mut r = Reader::new(&self.body, self.big_endian);
        let mut args = Vec::new();
        for t in split_signature(expected)? {
            args.push(r.value(t, 0)?);
        }
        if r.pos != self.body.len() {
            return malformed("bytes after the arguments");
        }
        Ok(args)
    }

    /// The length of the encoded body (what a queued message costs).
    pub(super) fn body_len(&self) -> usize {
        self.body.len()
    }

    /// An error reply as an error: its name and the string that usually
    /// is its first argument.
    pub fn to_error(&self) -> DbusError {
        let name = self.error_name.clone().unwrap_or_default();
        let message = match self.signature.as_bytes().first() {
            Some(b's') => Reader::new(&self.body, self.big_endian).string().ok(),
            _ => None,
        };
        DbusError::Reply {
            name,
            message: message.unwrap_or_else(|| "(no message)".into()),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::fmt;

    /// A StartTransientUnit call, byte for byte (the D-Bus specification's
    /// layout, worked out by hand).
    #[test]
    fn a_start_transient_unit_call_in_wire_format() {
        let call = Message::method_call(
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
            &[
                Value::Str("a.scope".into()),
                Value::Str("fail".into()),
                Value::Array(
                    "(sv)".into(),
                    vec![
                        Value::Struct(vec![
                            Value::Str("PIDs".into()),
                            Value::Variant(Box::new(Value::Array("u".into(), vec![Value::U32(7)]))),
                        ]),
                        Value::Struct(vec![
                            Value::Str("Delegate".into()),
                            Value::Variant(Box::new(Value::Bool(true))),
                        ]),
                    ],
                ),
                Value::Array("(sa(sv))".into(), Vec::new()),
            ],
        )
        .unwrap();
        #[rustfmt::skip]
        let parts: &[&[u8]] = &[
            b"l\x01\x00\x01",               // little-endian, method call, no flags, version 1
            b"\x50\x00\x00\x00",            // body: 80 bytes
            b"\x05\x00\x00\x00",            // serial 5
            b"\xb6\x00\x00\x00",            // header fields: 182 bytes
            // 16: (PATH, <o>), padded to 56
            b"\x01\x01o\x00\x19\x00\x00\x00/org/freedesktop/systemd1\x00", &[0; 6],
            // 56: (INTERFACE, <s>), padded to 104
            b"\x02\x01s\x00\x20\x00\x00\x00org.freedesktop.systemd1.Manager\x00", &[0; 7],
            // 104: (MEMBER, <s>), padded to 136
            b"\x03\x01s\x00\x12\x00\x00\x00StartTransientUnit\x00", &[0; 5],
            // 136: (DESTINATION, <s>), padded to 176
            b"\x06\x01s\x00\x18\x00\x00\x00org.freedesktop.systemd1\x00", &[0; 7],
            // 176: (SIGNATURE, <g>), then padding: the body starts at 200
            b"\x08\x01g\x00\x10ssa(sv)a(sa(sv))\x00", &[0; 2],
            // body 0: s, s, padding to 4
            b"\x07\x00\x00\x00a.scope\x00",
            b"\x04\x00\x00\x00fail\x00", &[0; 3],
            // 24: a(sv) of 44 bytes, padding to 8 before the first struct
            b"\x2c\x00\x00\x00", &[0; 4],
            // 32: ("PIDs", <au [7]>): the array's length at 48 after padding
            b"\x04\x00\x00\x00PIDs\x00\x02au\x00", &[0; 3], b"\x04\x00\x00\x00\x07\x00\x00\x00",
            // 56: ("Delegate", <b true>)
            b"\x08\x00\x00\x00Delegate\x00\x01b\x00\x01\x00\x00\x00",
            // 76: an empty a(sa(sv)); its first element would be at 80
            b"\x00\x00\x00\x00",
        ];
        let expected = parts.concat();
        assert_eq!(expected.len(), 280);
        assert_eq!(call.encode(5).unwrap(), expected);
        // And read back.
        let m = Message::decode(&expected).unwrap();
        assert_eq!(m.kind, Kind::MethodCall);
        assert_eq!(m.serial, 5);
        assert_eq!(m.member.as_deref(), Some("StartTransientUnit"));
        assert_eq!(m.args("ssa(sv)a(sa(sv))").unwrap(), {
            let mut c = call.clone();
            c.serial = 5;
            c.args("ssa(sv)a(sa(sv))").unwrap()
        });
    }

    fn encode_body(values: &[Value]) -> Vec<u8> {
        let mut w = Writer::default();
        for v in values {
            w.put(v).unwrap();
        }
        w.buf
    }

    fn decode_body(sig: &str, body: &[u8]) -> Result<Vec<Value>> {
        let mut m = Message::new(Kind::Return, &[]).unwrap();
        m.signature = sig.into();
        m.body = body.to_vec();
        m.args(sig)
    }

    #[test]
    fn values_are_aligned_to_their_natural_boundary() {
        let cases: Vec<(Vec<Value>, &[u8])> = vec![
            // A struct starts at a multiple of 8.
            (
                vec![Value::Byte(1), Value::Struct(vec![Value::Byte(2)])],
                b"\x01\x00\x00\x00\x00\x00\x00\x00\x02",
            ),
            // A variant's signature is not aligned; its value is.
            (
                vec![Value::Byte(1), Value::Variant(Box::new(Value::U64(3)))],
                b"\x01\x01t\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00",
            ),
            // An empty array of 8-aligned elements: the length, then the
            // padding to the first element, which is not counted.
            (
                vec![Value::Byte(1), Value::Array("t".into(), vec![])],
                b"\x01\x00\x00\x00\x00\x00\x00\x00",
            ),
            // 16-bit values at even offsets, booleans as 32 bits.
            (
                vec![Value::Byte(1), Value::I16(-2), Value::Bool(true)],
                b"\x01\x00\xfe\xff\x01\x00\x00\x00",
            ),
            // A dictionary a{sv}: each entry at a multiple of 8.
            (
                vec![Value::Array(
                    "{sv}".into(),
                    vec![
                        Value::DictEntry(
                            Box::new(Value::Str("a".into())),
                            Box::new(Value::Variant(Box::new(Value::Byte(9)))),
                        ),
                        Value::DictEntry(
                            Box::new(Value::Str("b".into())),
                            Box::new(Value::Variant(Box::new(Value::Signature("as".into())))),
                        ),
                    ],
                )],
                b"\x1d\x00\x00\x00\x00\x00\x00\x00\
                  \x01\x00\x00\x00a\x00\x01y\x00\x09\x00\x00\x00\x00\x00\x00\
                  \x01\x00\x00\x00b\x00\x01g\x00\x02as\x00",
            ),
        ];
        for (values, bytes) in cases {
            assert_eq!(encode_body(&values), bytes, "{values:?}");
            let sig: String = values.iter().map(Value::signature).collect();
            assert_eq!(decode_body(&sig, bytes).unwrap(), values, "{sig}");
        }
    }

    /// A method return from systemd, as the bus delivers it.
    pub(in crate::dbus) const JOB_REPLY: &[&[u8]] = &[
        b"l\x02\x00\x01",
        b"\x25\x00\x00\x00", // body: 37 bytes
        b"\x0a\x00\x00\x00", // serial 10
        b"\x1f\x00\x00\x00", // header fields: 31 bytes
        b"\x05\x01u\x00\x05\x00\x00\x00",
        b"\x07\x01s\x00\x04\x00\x00\x00:1.7\x00\x00\x00\x00",
        b"\x08\x01g\x00\x01o\x00\x00",
        b"\x20\x00\x00\x00/org/freedesktop/systemd1/job/42\x00",
    ];

    #[test]
    fn parsing_a_reply() {
        let bytes = JOB_REPLY.concat();
        assert_eq!(
            Message::frame_len(bytes.first_chunk().unwrap()).unwrap(),
            85
        );
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(m.kind, Kind::Return);
        assert_eq!(m.serial, 10);
        assert_eq!(m.reply_serial, Some(5));
        assert_eq!(m.sender.as_deref(), Some(":1.7"));
        assert_eq!(
            m.args("o").unwrap(),
            [Value::ObjectPath("/org/freedesktop/systemd1/job/42".into())]
        );
        let e = m.args("s").unwrap_err().to_string();
        assert!(
            e.contains("arguments of type (o) where (s) was expected"),
            "{e}"
        );
    }

    #[test]
    fn parsing_an_error() {
        #[rustfmt::skip]
        let bytes = [
            &b"l\x03\x00\x01"[..],
            b"\x0e\x00\x00\x00",  // body: 14 bytes
            b"\x0b\x00\x00\x00",  // serial 11
            b"\x27\x00\x00\x00",  // header fields: 39 bytes
            b"\x04\x01s\x00\x0c\x00\x00\x00x.Error.Nope\x00\x00\x00\x00",
            b"\x05\x01u\x00\x06\x00\x00\x00",
            b"\x08\x01g\x00\x01s\x00\x00",
            b"\x09\x00\x00\x00it failed\x00",
        ]
        .concat();
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(m.kind, Kind::Error);
        assert_eq!(m.reply_serial, Some(6));
        assert_eq!(m.to_error().to_string(), "x.Error.Nope: it failed");
    }

    #[test]
    fn parsing_a_big_endian_job_removed_signal() {
        #[rustfmt::skip]
        let bytes = [
            &b"B\x04\x00\x01"[..],
            b"\x00\x00\x00\x4d",  // body: 77 bytes
            b"\x00\x00\x01\x00",  // serial 256
            b"\x00\x00\x00\x8a",  // header fields: 138 bytes
            b"\x01\x01o\x00\x00\x00\x00\x19/org/freedesktop/systemd1\x00", &[0; 6],
            b"\x02\x01s\x00\x00\x00\x00\x20org.freedesktop.systemd1.Manager\x00", &[0; 7],
            b"\x03\x01s\x00\x00\x00\x00\x0aJobRemoved\x00", &[0; 5],
            b"\x07\x01s\x00\x00\x00\x00\x04:1.7\x00", &[0; 3],
            b"\x08\x01g\x00\x04uoss\x00", &[0; 6],
            b"\x00\x00\x00\x2a",
            b"\x00\x00\x00\x20/org/freedesktop/systemd1/job/42\x00", &[0; 3],
            b"\x00\x00\x00\x13app-hutch-t-1.scope\x00",
            b"\x00\x00\x00\x04done\x00",
        ]
        .concat();
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(m.kind, Kind::Signal);
        assert_eq!(m.serial, 256);
        assert_eq!(m.path.as_deref(), Some("/org/freedesktop/systemd1"));
        assert_eq!(
            m.interface.as_deref(),
            Some("org.freedesktop.systemd1.Manager")
        );
        assert_eq!(m.member.as_deref(), Some("JobRemoved"));
        assert_eq!(m.sender.as_deref(), Some(":1.7"));
        assert_eq!(
            m.args("uoss").unwrap(),
            [
                Value::U32(42),
                Value::ObjectPath("/org/freedesktop/systemd1/job/42".into()),
                Value::Str("app-hutch-t-1.scope".into()),
                Value::Str("done".into()),
            ]
        );
        // A message read in big-endian order is not sent on as it is.
        assert!(matches!(m.encode(1), Err(DbusError::Invalid(_))));
    }

    /// A message with the given header fields and body, built by hand;
    /// the signature field is written unchecked.
    fn raw_message(kind: u8, fields: Vec<Value>, sig: &str, body: &[u8]) -> Vec<u8> {
        // The fields start at 16 in the message: aligned as at 0 here.
        let mut f = Writer::default();
        for v in &fields {
            f.put(v).unwrap();
        }
        if !sig.is_empty() {
            f.pad(8);
            f.buf
                .extend_from_slice(&[SIGNATURE, 1, b'g', 0, sig.len() as u8]);
            f.buf.extend_from_slice(sig.as_bytes());
            f.buf.push(0);
        }
        let mut w = Writer::default();
        w.buf.extend_from_slice(&[b'l', kind, 0, 1]);
        w.u32(body.len() as u32);
        w.u32(1);
        w.u32(f.buf.len() as u32);
        w.buf.extend_from_slice(&f.buf);
        w.pad(8);
        w.buf.extend_from_slice(body);
        w.buf
    }

    fn field(code: u8, v: Value) -> Value {
        Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))])
    }

    fn reply_to(serial: u32, sig: &str, body: &[u8]) -> Vec<u8> {
        raw_message(2, vec![field(REPLY_SERIAL, Value::U32(serial))], sig, body)
    }

    fn protocol_error(r: Result<impl fmt::Debug>) -> String {
        match r {
            Err(DbusError::Protocol(why)) => why,
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    #[test]
    fn unknown_header_fields_are_skipped() {
        let bytes = raw_message(
            2,
            vec![
                field(200, Value::Array("s".into(), vec![Value::Str("x".into())])),
                field(REPLY_SERIAL, Value::U32(3)),
                field(201, Value::Variant(Box::new(Value::U64(1)))),
            ],
            "",
            b"",
        );
        let m = Message::decode(&bytes).unwrap();
        assert_eq!(m.reply_serial, Some(3));
        assert_eq!(m.args("").unwrap(), []);
    }

    #[test]
    fn hostile_messages_are_errors() {
        // Lengths beyond what hutch accepts, without reading further.
        let mut head = *JOB_REPLY.concat().first_chunk::<16>().unwrap();
        head[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(protocol_error(Message::frame_len(&head)).contains("hutch accepts at most"));
        head[4..8].copy_from_slice(&0u32.to_le_bytes());
        head[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(protocol_error(Message::frame_len(&head)).contains("hutch accepts at most"));
        head[0] = b'X';
        assert!(protocol_error(Message::frame_len(&head)).contains("byte order"));

        // Truncated, or longer than the header says.
        let good = JOB_REPLY.concat();
        protocol_error(Message::decode(&good[..good.len() - 1]));
        protocol_error(Message::decode(&[&good[..], b"\0"].concat()));
        protocol_error(Message::decode(&good[..10]));

        // An array that claims more bytes than the body has.
        let body = b"\xff\x00\x00\x00\x01";
        let m = Message::decode(&reply_to(1, "ay", body)).unwrap();
        assert!(protocol_error(m.args("ay")).contains("runs past"));

        // Variants inside variants, deeper than D-Bus allows: an error,
        // not a stack overflow.
        let mut body = b"\x01v\x00".repeat(100_000);
        body.extend_from_slice(b"\x01y\x00\x05");
        let m = Message::decode(&reply_to(1, "v", &body)).unwrap();
        assert!(protocol_error(m.args("v")).contains("nested too deeply"));

        let bad_bodies: &[(&str, &[u8], &str)] = &[
            ("b", b"\x02\x00\x00\x00", "boolean 2"),
            (
                "yu",
                b"\x01\x01\x00\x00\x07\x00\x00\x00",
                "non-zero padding",
            ),
            ("s", b"\x01\x00\x00\x00ab", "terminating NUL"),
            ("s", b"\x02\x00\x00\x00a\x00\x00", "NUL byte inside"),
            ("s", b"\x01\x00\x00\x00\xff\x00", "not UTF-8"),
            ("o", b"\x02\x00\x00\x00a/\x00", "not an object path"),
            ("g", b"\x01(\x00", "bad signature"),
            ("v", b"\x02yy\x00\x01\x01", "not a single complete type"),
        ];
        for (sig, body, why) in bad_bodies {
            let m = Message::decode(&reply_to(1, sig, body)).unwrap();
            let e = protocol_error(m.args(sig));
            assert!(e.contains(why), "{sig} {body:?}: {e}");
        }

        // Header problems.
        for (bytes, why) in [
            (raw_message(2, vec![], "", b""), "without a required field"),
            (reply_to(1, "()", b""), "bad signature"),
            (reply_to(1, "a", b""), "bad signature"),
            (reply_to(1, "", b"\x01"), "without a signature"),
            (
                raw_message(
                    2,
                    vec![field(REPLY_SERIAL, Value::Str("x".into()))],
                    "",
                    b"",
                ),
                "header field 5",
            ),
            (
                raw_message(
                    2,
                    vec![
                        field(REPLY_SERIAL, Value::U32(1)),
                        field(UNIX_FDS, Value::U32(1)),
                    ],
                    "",
                    b"",
                ),
                "file descriptors",
            ),
        ] {
            let e = protocol_error(Message::decode(&bytes));
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn signatures() {
        assert_eq!(
            split_signature("ssa(sv)a(sa(sv))").unwrap(),
            ["s", "s", "a(sv)", "a(sa(sv))"]
        );
        assert_eq!(split_signature("a{sv}uv").unwrap(), ["a{sv}", "u", "v"]);
        assert_eq!(split_signature("").unwrap(), Vec::<&str>::new());
        for bad in [
            "(", ")", "()", "a", "{sv}", "a{vs}", "a{s}", "a{svs}", "z", "(s",
        ] {
            assert!(split_signature(bad).is_err(), "{bad}");
        }
        // Nested 65 deep; longer than 255 bytes.
        assert!(split_signature(&format!("{}y", "a".repeat(65))).is_err());
        assert!(split_signature(&format!("{}y", "a".repeat(64))).is_ok());
        assert!(split_signature(&"y".repeat(256)).is_err());
    }

    #[test]
    fn invalid_values_are_refused_before_sending() {
        let bad = [
            Value::Str("a\0b".into()),
            Value::ObjectPath("relative".into()),
            Value::ObjectPath("/trailing/".into()),
            Value::Struct(vec![]),
            Value::Array("u".into(), vec![Value::Str("x".into())]),
            Value::Array("".into(), vec![]),
        ];
        for v in bad {
            assert!(
                matches!(
                    Message::new(Kind::MethodCall, std::slice::from_ref(&v)),
                    Err(DbusError::Invalid(_))
                ),
                "{v:?}"
            );
        }
        let m = Message::new(Kind::MethodCall, &[]).unwrap();
        assert!(matches!(m.encode(0), Err(DbusError::Invalid(_))));
    }
}
