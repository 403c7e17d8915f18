//! D-Bus addresses (the specification's "Server Addresses"): which unix
//! socket a bus listens on. The one parser of them in hutch: the client
//! connects to what [`parse`] returns, and the cgroup probe asks it whether
//! there is a bus to connect to, so the two cannot disagree.

use std::fmt;

use super::{DbusError, Result};

/// A unix socket a bus listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Socket {
    /// A socket file.
    Path(Vec<u8>),
    /// A name in the abstract namespace (without the leading NUL).
    Abstract(Vec<u8>),
}

impl fmt::Display for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Socket::Path(p) => write!(f, "{}", String::from_utf8_lossy(p)),
            Socket::Abstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
        }
    }
}

/// The first socket a client can connect to in a D-Bus address: entries
/// are separated by `;`, and are `transport:key=value,key=value`, with
/// bytes escaped as `%XX`. Keys other than `path` and `abstract` (`guid`)
/// are ignored, as are other transports.
pub fn parse(address: &str) -> Result<Socket> {
    for entry in address.split(';') {
        let Some(params) = entry.strip_prefix("unix:") else {
            continue;
        };
        for kv in params.split(',') {
            let socket = match kv.split_once('=') {
                Some(("path", v)) => unescape(v).map(Socket::Path),
                Some(("abstract", v)) => unescape(v).map(Socket::Abstract),
                _ => continue,
            };
            match socket {
                Some(Socket::Path(b) | Socket::Abstract(b)) if b.is_empty() => break,
                Some(s) => return Ok(s),
                // A broken escape: try the next entry.
                None => break,
            }
        }
    }
    Err(DbusError::Address(address.into()))
}

/// Undoes the `%XX` escapes of an address value; `None` for a broken one.
fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            // Two hex digits: `from_str_radix` alone would take a sign.
            let hex = b
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let path = |p: &str| Some(Socket::Path(p.into()));
        assert_eq!(
            parse("unix:path=/run/user/1000/bus").ok(),
            path("/run/user/1000/bus")
        );
        assert_eq!(
            parse("unix:guid=0123,path=/tmp/a%20b").ok(),
            path("/tmp/a b")
        );
        assert_eq!(
            parse("tcp:host=h,port=1;unix:abstract=/tmp/dbus-x,guid=ab;unix:path=/p").ok(),
            Some(Socket::Abstract(b"/tmp/dbus-x".to_vec()))
        );
        // Broken or empty entries are passed over.
        assert_eq!(parse("unix:path=%zz;unix:path=/p").ok(), path("/p"));
        assert_eq!(parse("unix:path=;unix:path=/p").ok(), path("/p"));
        for bad in [
            "",
            "tcp:host=h",
            "unix:tmpdir=/tmp",
            "unix:path=%4",
            // A sign is not a hex digit, although `from_str_radix` takes it.
            "unix:path=%+1",
            "path=/p",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("unsupported D-Bus address"), "{e}");
        }
        assert_eq!(Socket::Abstract(b"x".to_vec()).to_string(), "@x");
    }
}
