//! A command's arguments as the kernel hands them over: bytes, not text.
//!
//! The payload's command line goes from `main`'s `argv` to the sandbox's
//! `execve` as [`OsString`]s and is never converted on the way, so that a
//! sandboxed tool can be given any file name (`cat $'\xff'`). Where it has
//! to be written down — the plan (`--explain --json`, the registry's
//! records) — it takes the JSON form of [`json`]; where it is shown to a
//! person, the shell form of [`shell_words`].
//!
//! A bottom module: it imports nothing of hutch's, so the CLI, the plan,
//! the registry and the shims can all share it.

use std::ffi::{OsStr, OsString};
use std::fmt::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// The JSON form of a command line (`#[serde(with = "crate::argv::json")]`).
///
/// An argument that is UTF-8 is a JSON string, as it always was, so records
/// written before stay readable and readers that know nothing of this see
/// what they expect. One that is not is an object, `{"hex": "ff41", "text":
/// "\u{fffd}A"}`: `hex` gives every byte, `text` a readable approximation
/// (ignored when read back). A string and an object cannot be confused, so
/// the form is lossless.
pub mod json {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};

    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Arg<'a> {
        Text(std::borrow::Cow<'a, str>),
        Bytes {
            hex: String,
            #[serde(default, skip_deserializing)]
            text: String,
        },
    }

    fn to_repr(arg: &OsString) -> Arg<'_> {
        match arg.to_str() {
            Some(s) => Arg::Text(s.into()),
            None => Arg::Bytes {
                hex: arg.as_bytes().iter().map(|b| format!("{b:02x}")).collect(),
                text: arg.to_string_lossy().into_owned(),
            },
        }
    }

    fn from_hex(hex: &str) -> Option<Vec<u8>> {
        if !hex.len().is_multiple_of(2) {
            return None;
        }
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect()
    }

    fn from_repr<E: serde::de::Error>(a: Arg<'_>) -> Result<OsString, E> {
        match a {
            Arg::Text(s) => Ok(OsString::from(s.into_owned())),
            Arg::Bytes { hex, .. } => from_hex(&hex)
                .map(OsString::from_vec)
                .ok_or_else(|| E::custom(format!("`hex` is not hexadecimal: {hex:?}"))),
        }
    }

    pub fn serialize<S: Serializer>(args: &[OsString], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(args.len()))?;
        for a in args {
            seq.serialize_element(&to_repr(a))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<OsString>, D::Error> {
        Vec::<Arg<'de>>::deserialize(d)?
            .into_iter()
            .map(from_repr)
            .collect()
    }

    /// One path in the same form (`#[serde(with = "crate::argv::json::path")]`).
    pub mod path {
        use std::path::PathBuf;

        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        pub fn serialize<S: Serializer>(p: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
            super::to_repr(&p.as_os_str().to_os_string()).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
            super::from_repr(super::Arg::deserialize(d)?).map(PathBuf::from)
        }
    }
}

/// Whether the shell reads `b` as itself, unquoted.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b)
}

/// One argument as a POSIX shell would need it typed: bare when it is
/// plain; in single quotes when it is printable UTF-8; else in `$'...'`
/// with `\xNN` for every byte that is not printable UTF-8 (control
/// characters, bytes of no character), so nothing reaches a terminal raw
/// and every byte can be read off.
pub fn shell_quote(arg: &OsStr) -> String {
    let bytes = arg.as_bytes();
    if !bytes.is_empty() && bytes.iter().all(|&b| plain(b)) {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    if let Some(s) = arg.to_str().filter(|s| !s.chars().any(char::is_control)) {
        return format!("'{}'", s.replace('\'', "'\\''"));
    }
    let mut out = String::from("$'");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' | '\'' => {
                    out.push('\\');
                    out.push(c);
                }
                c if c.is_control() => {
                    for b in c.to_string().bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('\'');
    out
}

/// A name or path for a message: as it is when it is printable UTF-8, else
/// in the `$'...'` form of [`shell_quote`] (never lossy, never raw control
/// characters).
pub fn shown(name: &OsStr) -> String {
    match name.to_str() {
        Some(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => shell_quote(name),
    }
}

/// A command line as one line a shell would read back the same.
pub fn shell_words<A: AsRef<OsStr>>(args: &[A]) -> String {
    args.iter()
        .map(|a| shell_quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `args` from plain strings (tests, the image's `Entrypoint` and `Cmd`,
/// a profile's `command`).
pub fn from_strs<S: AsRef<str>>(args: &[S]) -> Vec<OsString> {
    args.iter().map(|a| OsString::from(a.as_ref())).collect()
}

/// Bytes as an argument.
pub fn from_bytes(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Rec {
        #[serde(with = "json")]
        argv: Vec<OsString>,
    }

    #[test]
    fn json_is_lossless_and_reads_the_old_form() {
        let argv = vec![
            OsString::from("cat"),
            from_bytes(b"\xffA"),
            OsString::from("{\"hex\": \"41\"}"),
            OsString::new(),
        ];
        let rec = Rec { argv };
        let text = serde_json::to_string(&rec).unwrap();
        assert_eq!(
            text,
            r#"{"argv":["cat",{"hex":"ff41","text":"�A"},"{\"hex\": \"41\"}",""]}"#
        );
        assert_eq!(serde_json::from_str::<Rec>(&text).unwrap(), rec);
        // Records written when arguments were strings only.
        let old: Rec = serde_json::from_str(r#"{"argv":["sh","-c","echo é"]}"#).unwrap();
        assert_eq!(old.argv, from_strs(&["sh", "-c", "echo é"]));
        let bad = serde_json::from_str::<Rec>(r#"{"argv":[{"hex":"f"}]}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn a_path_takes_the_same_form() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct P {
            #[serde(with = "json::path")]
            cwd: std::path::PathBuf,
        }
        for (cwd, text) in [
            (
                from_bytes(b"/w/\xff"),
                r#"{"cwd":{"hex":"2f772fff","text":"/w/�"}}"#,
            ),
            (OsString::from("/w"), r#"{"cwd":"/w"}"#),
        ] {
            let p = P { cwd: cwd.into() };
            assert_eq!(serde_json::to_string(&p).unwrap(), text);
            assert_eq!(serde_json::from_str::<P>(text).unwrap(), p);
        }
    }

    #[test]
    fn shell_form_escapes_what_a_terminal_would_act_on() {
        assert_eq!(shell_quote(OsStr::new("ls")), "ls");
        assert_eq!(shell_quote(OsStr::new("")), "''");
        assert_eq!(shell_quote(OsStr::new("it's")), "'it'\\''s'");
        assert_eq!(shell_quote(OsStr::new("é b")), "'é b'");
        assert_eq!(shell_quote(&from_bytes(b"\xff")), "$'\\xff'");
        assert_eq!(
            shell_quote(OsStr::new("a\n\x1b[31m'\\")),
            "$'a\\x0a\\x1b[31m\\'\\\\'"
        );
        assert_eq!(
            shell_words(&[OsString::from("cat"), from_bytes(b"x\xffy")]),
            "cat $'x\\xffy'"
        );
    }
}
