//! sha256 digests and a hashing reader.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use super::error::ImageError;

/// A validated `sha256:<64 lowercase hex>` content digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<hex>`; anything else (other algorithms, upper case,
    /// wrong length) is refused, so the hex part is always safe to use as a
    /// file name.
    pub(crate) fn parse(s: &str) -> Result<Digest, ImageError> {
        let bad = || ImageError::UnsupportedDigest {
            digest: super::error::clip(s),
        };
        let hex = s.strip_prefix("sha256:").ok_or_else(bad)?;
        if Self::is_hex64(hex) {
            Ok(Digest {
                hex: hex.to_owned(),
            })
        } else {
            Err(bad())
        }
    }

    /// Builds a digest from a bare 64-hex-digit string (file names in the store).
    pub(crate) fn from_hex(hex: &str) -> Option<Digest> {
        Self::is_hex64(hex).then(|| Digest {
            hex: hex.to_owned(),
        })
    }

    fn is_hex64(hex: &str) -> bool {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// The 64 hex digits.
    pub(crate) fn hex(&self) -> &str {
        &self.hex
    }

    /// A short form for messages: `sha256:0123456789ab`.
    pub(crate) fn short(&self) -> String {
        format!("sha256:{}", &self.hex[..12])
    }

    /// The digest of a byte string.
    pub(crate) fn of(bytes: &[u8]) -> Digest {
        Digest {
            hex: to_hex(&Sha256::digest(bytes)),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// A reader that hashes and counts everything read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads the rest of the stream (so the digest covers all of it) and
    /// returns the digest and total length.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            Digest {
                hex: to_hex(&self.hasher.finalize()),
            },
            self.count,
        ))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_sha256_lowercase_hex() {
        let ok = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(Digest::parse(&ok).unwrap().to_string(), ok);
        for bad in [
            "sha512:00".to_owned(),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}", "ab".repeat(31)),
            format!("sha256:{}/..", "ab".repeat(31)),
            "ab".repeat(32),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn hashing_reader_matches_known_digest() {
        let r = HashingReader::new(&b"abc"[..]);
        let (d, n) = r.finish().unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d, Digest::of(b"abc"));
    }
}
