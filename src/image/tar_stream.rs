//! A tar reader for untrusted archives (image layers and `oci-archive` or
//! `docker save` files) that never holds more than a bounded amount of an
//! archive in memory: every header is checked against a limit *before*
//! its content is read.
//!
//! The `tar` crate reads a GNU long name, long link or PAX extended header
//! whole into memory before handing the entry over (1 GiB of PAX header
//! cost 1 GiB of memory), and expands a GNU sparse entry's holes into
//! zeros that an unpacker writes as real blocks. This reader:
//!
//! - reads a GNU long name or long link (`L`, `K`) of at most
//!   [`MAX_LONG_NAME`] bytes (`PATH_MAX` and its NUL), and a PAX extended
//!   header (`x`, `g`) of at most [`MAX_PAX`] bytes; a larger one is
//!   refused from its header alone, nothing of it read;
//! - applies a PAX header's `path`, `linkpath`, `size` and `mtime` to the
//!   entry after it, and ignores its other keys and global (`g`) headers,
//!   as the unpacker ignores ownership and extended attributes;
//! - refuses sparse files (GNU `S` entries and PAX `GNU.sparse.*`): no
//!   image builder writes them (Go's `archive/tar`, which docker, buildkit
//!   and podman use, cannot), and a few bytes of one can claim a terabyte
//!   of holes;
//! - hands out an entry's data as a reader bounded by its size, and skips
//!   what the caller leaves unread (by reading it through, so that a
//!   hashing reader below sees every byte, or by seeking in a file).
//!
//! Header fields are parsed as ustar, GNU and PAX writers fill them:
//! octal or base-256 numbers, the ustar `prefix` joined to the name, the
//! checksum over the header with its own field as spaces (signed or
//! unsigned, as GNU tar accepts).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// One tar block.
pub(crate) const BLOCK: u64 = 512;
/// Longest GNU long name or long link read: `PATH_MAX` (4096) and a NUL.
pub(crate) const MAX_LONG_NAME: u64 = 4097;
/// Largest PAX extended header read (its records: paths, times, extended
/// attributes, which hutch ignores but images may carry).
pub(crate) const MAX_PAX: u64 = 1 << 20;

/// What an entry is, by its type flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `0`, NUL (old archives) and `7` (contiguous file).
    Regular,
    /// `1`.
    Hardlink,
    /// `2`.
    Symlink,
    /// `3`.
    Char,
    /// `4`.
    Block,
    /// `5`.
    Directory,
    /// `6`.
    Fifo,
    /// Any other type flag (GNU volume headers, dump directories, ...).
    Other(u8),
}

/// An entry's header, with the extension headers before it applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The path as written (bytes, not validated: the caller does that).
    pub path: Vec<u8>,
    /// The link target of a symlink or hardlink (empty for others).
    pub link: Vec<u8>,
    pub kind: Kind,
    /// Permission bits as written (the caller strips what it must).
    pub mode: u32,
    /// Seconds since the epoch; `None` if the field is unreadable.
    pub mtime: Option<u64>,
    /// Bytes of data that follow the header.
    pub size: u64,
    /// Device numbers of a character or block device.
    pub device: (u64, u64),
}

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TarError {
    /// Reading failed, or the archive is malformed or truncated.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// An entry or header is refused: `entry` is the path when known.
    #[error("{reason}")]
    Refused {
        entry: Option<Vec<u8>>,
        reason: String,
    },
}

fn corrupt(what: impl Into<String>) -> TarError {
    TarError::Io(io::Error::new(io::ErrorKind::InvalidData, what.into()))
}

fn refused(entry: Option<&[u8]>, reason: impl Into<String>) -> TarError {
    TarError::Refused {
        entry: entry.map(<[u8]>::to_vec),
        reason: reason.into(),
    }
}

/// A source of archive bytes that can pass over data it does not need.
pub(crate) trait Input: Read {
    /// Moves `n` bytes forward; an archive that ends sooner is truncated.
    fn skip(&mut self, n: u64) -> io::Result<()>;
    /// Bytes read (or skipped) so far.
    fn position(&self) -> u64;
}

/// A stream read through: skipped bytes are read too (a hashing reader
/// below must see them), in a fixed buffer.
pub(crate) struct Stream<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Stream<R> {
    pub(crate) fn new(inner: R) -> Self {
        Stream { inner, pos: 0 }
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read> Input for Stream<R> {
    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
            match self.read(&mut buf[..want]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(got) => n -= got as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn position(&self) -> u64 {
        self.pos
    }
}

/// A file read by position: skipping seeks (an archive's index does not
/// read the blobs it passes).
pub(crate) struct FileAt<'a> {
    file: &'a File,
    pos: u64,
    len: u64,
}

impl<'a> FileAt<'a> {
    pub(crate) fn new(file: &'a File, len: u64) -> Self {
        FileAt { file, pos: 0, len }
    }
}

impl Read for FileAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Input for FileAt<'_> {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let to = self.pos.checked_add(n).filter(|&to| to <= self.len);
        self.pos = to.ok_or(io::ErrorKind::UnexpectedEof)?;
        Ok(())
    }

    fn position(&self) -> u64 {
        self.pos
    }
}

/// What the extension headers before an entry said about it.
#[derive(Default)]
struct Extensions {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Pax>,
}

impl Extensions {
    fn any(&self) -> bool {
        self.long_name.is_some() || self.long_link.is_some() || self.pax.is_some()
    }
}

/// The PAX keys hutch uses.
#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    mtime: Option<u64>,
    sparse: bool,
}

/// Reads the entries of an archive one at a time.
pub(crate) struct TarReader<I> {
    input: I,
    /// Data of the current entry not yet read, and the padding after it.
    left: u64,
    padding: u64,
    done: bool,
}

/// Rounds `n` up to whole blocks, minus `n`: the padding after `n` bytes.
fn padding(n: u64) -> u64 {
    (BLOCK - n % BLOCK) % BLOCK
}

impl<I: Input> TarReader<I> {
    pub(crate) fn new(input: I) -> Self {
        TarReader {
            input,
            left: 0,
            padding: 0,
            done: false,
        }
    }

    /// The input, for what follows the archive (a hashing reader's rest).
    pub(crate) fn into_inner(self) -> I {
        self.input
    }

    /// Where the current entry's unread data starts in the archive.
    pub(crate) fn position(&self) -> u64 {
        self.input.position()
    }

    /// The current entry's data (what is left of it).
    pub(crate) fn data(&mut self) -> Data<'_, I> {
        Data { reader: self }
    }

    /// The next entry, after skipping what is left of the current one;
    /// `Ok(None)` at the end of the archive.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        if self.done {
            return Ok(None);
        }
        let rest = self.left.checked_add(self.padding);
        self.input
            .skip(rest.ok_or_else(|| corrupt("an entry's size overflows"))?)?;
        (self.left, self.padding) = (0, 0);
        let mut ext = Extensions::default();
        loop {
            let Some(block) = self.read_block()? else {
                self.done = true;
                if ext.any() {
                    return Err(corrupt("an extension header is not followed by its entry"));
                }
                return Ok(None);
            };
            let header = Header(&block);
            header.check_sum()?;
            let size = header.size()?;
            match header.type_flag() {
                b'L' => {
                    let name = self.read_long_name(&ext.long_name, size, "long name")?;
                    ext.long_name = Some(name);
                }
                b'K' => {
                    let link = self.read_long_name(&ext.long_link, size, "long link")?;
                    ext.long_link = Some(link);
                }
                b'x' => {
                    if ext.pax.is_some() {
                        return Err(corrupt("two PAX headers describe one entry"));
                    }
                    ext.pax = Some(parse_pax(&self.read_extension(size, "PAX extended")?)?);
                }
                b'g' => {
                    self.read_extension(size, "PAX global")?;
                }
                _ => return self.entry(&header, size, ext).map(Some),
            }
        }
    }

    /// One header block; `None` at the end of the archive (a zero block,
    /// or the end of the input at a block boundary).
    fn read_block(&mut self) -> Result<Option<[u8; BLOCK as usize]>, TarError> {
        let mut block = [0u8; BLOCK as usize];
        let mut got = 0;
        while got < block.len() {
            match self.input.read(&mut block[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(corrupt("the archive ends inside a header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(block.iter().any(|&b| b != 0).then_some(block))
    }

    /// The content of an extension header of `size` bytes, refused unless
    /// it fits [`MAX_PAX`] (GNU long names have their own limit).
    fn read_extension(&mut self, size: u64, what: &str) -> Result<Vec<u8>, TarError> {
        if size > MAX_PAX {
            return Err(refused(
                None,
                format!(
                    "a {what} header of {size} bytes (at most {MAX_PAX} are read); no image builder writes one that large"
                ),
            ));
        }
        self.read_content(size)
    }

    fn read_long_name(
        &mut self,
        seen: &Option<Vec<u8>>,
        size: u64,
        what: &str,
    ) -> Result<Vec<u8>, TarError> {
        if seen.is_some() {
            return Err(corrupt(format!(
                "two GNU {what} headers describe one entry"
            )));
        }
        if size > MAX_LONG_NAME {
            return Err(refused(
                None,
                format!(
                    "a GNU {what} of {size} bytes (a path has at most {} bytes)",
                    MAX_LONG_NAME - 1
                ),
            ));
        }
        let mut name = self.read_content(size)?;
        while name.last() == Some(&0) {
            name.pop();
        }
        Ok(name)
    }

    /// Reads `size` bytes (already bounded by the caller) and the padding.
    fn read_content(&mut self, size: u64) -> Result<Vec<u8>, TarError> {
        let len = usize::try_from(size).map_err(|_| corrupt("header too large"))?;
        let mut buf = vec![0u8; len];
        self.input
            .read_exact(&mut buf)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => {
                    corrupt("the archive ends inside an extension header")
                }
                _ => e.into(),
            })?;
        self.input.skip(padding(size))?;
        Ok(buf)
    }

    fn entry(&mut self, h: &Header<'_>, size: u64, ext: Extensions) -> Result<Entry, TarError> {
        let pax = ext.pax.unwrap_or_default();
        let path = pax.path.or(ext.long_name).unwrap_or_else(|| h.path());
        if h.type_flag() == b'S' || pax.sparse {
            return Err(refused(
                Some(&path),
                "sparse files are not supported in image layers (no image builder writes them, and their holes could claim any size)",
            ));
        }
        let size = pax.size.unwrap_or(size);
        let kind = match h.type_flag() {
            b'0' | 0 | b'7' => Kind::Regular,
            b'1' => Kind::Hardlink,
            b'2' => Kind::Symlink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'5' => Kind::Directory,
            b'6' => Kind::Fifo,
            other => Kind::Other(other),
        };
        let entry = Entry {
            link: pax.linkpath.or(ext.long_link).unwrap_or_else(|| h.link()),
            kind,
            mode: u32::try_from(h.number(100..108)?)
                .map_err(|_| corrupt("the mode field is out of range"))?,
            mtime: pax.mtime.or_else(|| h.number(136..148).ok()),
            size,
            device: (
                h.number(329..337).unwrap_or(0),
                h.number(337..345).unwrap_or(0),
            ),
            path,
        };
        (self.left, self.padding) = (size, padding(size));
        Ok(entry)
    }
}

/// The data of the current entry: at most its size, then end of file.
pub(crate) struct Data<'a, I> {
    reader: &'a mut TarReader<I>,
}

impl<I: Input> Read for Data<'_, I> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.reader.left;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.reader.input.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside an entry's data",
            ));
        }
        self.reader.left -= n as u64;
        Ok(n)
    }
}

/// One 512-byte header.
struct Header<'a>(&'a [u8; BLOCK as usize]);

impl Header<'_> {
    fn type_flag(&self) -> u8 {
        self.0[156]
    }

    /// POSIX ustar (not the old GNU layout, whose prefix area holds times).
    fn is_ustar(&self) -> bool {
        &self.0[257..263] == b"ustar\0"
    }

    fn check_sum(&self) -> Result<(), TarError> {
        let stored = self.number(148..156)?;
        let (mut unsigned, mut signed) = (0u64, 0i64);
        for (i, &b) in self.0.iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += u64::from(b);
            signed += i64::from(b as i8);
        }
        if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
            Ok(())
        } else {
            Err(corrupt("a header's checksum does not match"))
        }
    }

    fn size(&self) -> Result<u64, TarError> {
        self.number(124..136)
    }

    fn path(&self) -> Vec<u8> {
        let name = until_nul(&self.0[..100]);
        let prefix = if self.is_ustar() {
            until_nul(&self.0[345..500])
        } else {
            &[]
        };
        if prefix.is_empty() {
            return name.to_vec();
        }
        let mut path = prefix.to_vec();
        path.push(b'/');
        path.extend_from_slice(name);
        path
    }

    fn link(&self) -> Vec<u8> {
        until_nul(&self.0[157..257]).to_vec()
    }

    /// A numeric field: octal text (spaces and NULs around it), or
    /// base-256 when its first byte has the high bit (GNU, for values
    /// octal cannot hold).
    fn number(&self, field: std::ops::Range<usize>) -> Result<u64, TarError> {
        let bytes = &self.0[field];
        if bytes[0] & 0x80 != 0 {
            if bytes[0] != 0x80 {
                return Err(corrupt("a negative or oversized base-256 number"));
            }
            return bytes[1..].iter().try_fold(0u64, |acc, &b| {
                acc.checked_mul(256)
                    .map(|v| v + u64::from(b))
                    .ok_or_else(|| corrupt("a base-256 number overflows"))
            });
        }
        let text = until_nul(bytes);
        let text = std::str::from_utf8(text)
            .map_err(|_| corrupt("a numeric field is not text"))?
            .trim_matches(' ');
        u64::from_str_radix(text, 8).map_err(|_| corrupt("a numeric field is not an octal number"))
    }
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// Parses PAX records (`LEN key=value\n`, LEN counting the whole record).
fn parse_pax(mut data: &[u8]) -> Result<Pax, TarError> {
    let mut pax = Pax::default();
    while !data.is_empty() {
        let bad = || corrupt("a malformed PAX record");
        let space = data.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&len| len > space + 1 && len <= data.len())
            .ok_or_else(bad)?;
        let record = &data[space + 1..len];
        data = &data[len..];
        let record = record.strip_suffix(b"\n").ok_or_else(bad)?;
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" => pax.path = Some(value.to_vec()),
            b"linkpath" => pax.linkpath = Some(value.to_vec()),
            b"size" => pax.size = Some(decimal(value).ok_or_else(bad)?),
            // Fractions of a second are dropped; a time before 1970 is
            // left to the header's field.
            b"mtime" => pax.mtime = value.split(|&b| b == b'.').next().and_then(decimal),
            k if k.starts_with(b"GNU.sparse.") => pax.sparse = true,
            _ => {}
        }
    }
    Ok(pax)
}

fn decimal(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn octal(field: &mut [u8], value: u64) {
        let width = field.len() - 1;
        let s = format!("{value:0width$o}");
        field[..width].copy_from_slice(s.as_bytes());
    }

    fn header(name: &[u8], flag: u8, size: u64) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name);
        octal(&mut h[100..108], 0o644);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], 1_700_000_000);
        h[156] = flag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h.to_vec()
    }

    fn with_data(mut h: Vec<u8>, data: &[u8]) -> Vec<u8> {
        h.extend_from_slice(data);
        h.resize(h.len() + padding(data.len() as u64) as usize, 0);
        h
    }

    fn entries(archive: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>, TarError> {
        let mut r = TarReader::new(Stream::new(archive));
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let mut data = Vec::new();
            r.data().read_to_end(&mut data)?;
            out.push((e, data));
        }
        Ok(out)
    }

    #[test]
    fn plain_entries_and_their_data() {
        let mut a = with_data(header(b"a/file", b'0', 5), b"hello");
        a.extend(header(b"a/", b'5', 0));
        a.extend([0u8; 1024]);
        let got = entries(&a).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.path, b"a/file");
        assert_eq!(got[0].0.kind, Kind::Regular);
        assert_eq!(got[0].0.mode, 0o644);
        assert_eq!(got[0].0.mtime, Some(1_700_000_000));
        assert_eq!(got[0].1, b"hello");
        assert_eq!(got[1].0.kind, Kind::Directory);
    }

    #[test]
    fn long_names_and_pax_records_apply_to_the_next_entry() {
        let long = vec![b'n'; 300];
        let mut named = long.clone();
        named.push(0);
        let mut a = with_data(header(b"././@LongLink", b'L', named.len() as u64), &named);
        a.extend(with_data(header(b"short", b'0', 1), b"x"));
        let pax = b"17 path=pax/name\n10 size=2\n";
        a.extend(with_data(header(b"PaxHeader", b'x', pax.len() as u64), pax));
        // The header says 0 bytes; the PAX record's 2 win.
        a.extend(with_data(header(b"ignored", b'0', 0), b"yz"));
        a.extend([0u8; 1024]);
        let got = entries(&a).unwrap();
        assert_eq!(got[0].0.path, long);
        assert_eq!(got[1].0.path, b"pax/name");
        assert_eq!(got[1].1, b"yz");
    }

    #[test]
    fn oversized_extension_headers_are_refused_before_they_are_read() {
        // Only the header is there: reading its content would fail.
        for (flag, limit) in [
            (b'L', MAX_LONG_NAME),
            (b'K', MAX_LONG_NAME),
            (b'x', MAX_PAX),
        ] {
            let a = header(b"ext", flag, limit + 1);
            assert!(
                matches!(entries(&a), Err(TarError::Refused { .. })),
                "{}",
                flag as char
            );
        }
        let a = header(b"g", b'g', 1 << 30);
        assert!(matches!(entries(&a), Err(TarError::Refused { .. })));
    }

    #[test]
    fn sparse_entries_are_refused_with_their_name() {
        let a = header(b"sparse", b'S', 0);
        match entries(&a) {
            Err(TarError::Refused { entry, reason }) => {
                assert_eq!(entry.as_deref(), Some(&b"sparse"[..]));
                assert!(reason.contains("sparse"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let pax = b"22 GNU.sparse.major=1\n";
        let mut a = with_data(header(b"p", b'x', pax.len() as u64), pax);
        a.extend(header(b"GNUSparseFile.0/f", b'0', 0));
        assert!(matches!(entries(&a), Err(TarError::Refused { .. })));
    }

    #[test]
    fn damaged_archives_are_errors_not_panics() {
        let mut bad_sum = header(b"f", b'0', 0);
        bad_sum[0] = b'g';
        assert!(matches!(entries(&bad_sum), Err(TarError::Io(_))));
        let truncated = header(b"f", b'0', 100);
        assert!(matches!(entries(&truncated), Err(TarError::Io(_))));
        let half = &header(b"f", b'0', 0)[..100];
        assert!(matches!(entries(half), Err(TarError::Io(_))));
        let dangling = with_data(header(b"L", b'L', 2), b"x\0");
        assert!(matches!(entries(&dangling), Err(TarError::Io(_))));
        for record in [&b"5 x\n"[..], b"99 path=a\n", b"abc", b"7 path\n"] {
            assert!(parse_pax(record).is_err(), "{record:?}");
        }
    }

    #[test]
    fn base256_numbers_and_both_checksums() {
        let mut h = [0u8; 512];
        h[124] = 0x80;
        h[135] = 2;
        h[134] = 1;
        assert_eq!(Header(&h).size().unwrap(), 258);
        h[124] = 0xff;
        assert!(Header(&h).size().is_err());
        // A name byte above 127 sums differently signed and unsigned.
        let mut signed = header(b"\xe9", b'0', 0);
        signed[148..156].copy_from_slice(b"        ");
        let sum: i64 = signed.iter().map(|&b| i64::from(b as i8)).sum();
        signed[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        assert_eq!(entries(&signed).unwrap()[0].0.path, b"\xe9");
    }
}
