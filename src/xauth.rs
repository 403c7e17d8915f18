//! The Xauthority file format (libXau's `XauReadAuth`/`XauWriteAuth`), for
//! the one thing hutch does with it: find the cookie a client of display N
//! on this host would use, and write it back as the only entry of a private
//! file, with the wildcard family so that it matches whatever hostname the
//! sandbox has. A bottom module: it imports nothing of hutch's.
//!
//! Each entry is five fields: a big-endian u16 family, then four byte
//! strings (address, display number, authorization name, data), each a
//! big-endian u16 length and the bytes.

/// `FamilyLocal`: a unix-socket display, the address is the hostname.
pub const FAMILY_LOCAL: u16 = 256;
/// `FamilyWild`: matches any family and address.
pub const FAMILY_WILD: u16 = 0xffff;
/// The authorization protocol hutch copies (the only one Xorg, Xvfb,
/// Xwayland and Xephyr hand out by default).
pub const MIT_MAGIC_COOKIE: &[u8] = b"MIT-MAGIC-COOKIE-1";

/// Larger files are not Xauthority files hutch should be reading.
pub const MAX_FILE: usize = 1 << 20;

/// One entry of an Xauthority file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub family: u16,
    pub address: Vec<u8>,
    pub number: Vec<u8>,
    pub name: Vec<u8>,
    pub data: Vec<u8>,
}

/// The file ended inside an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the file ends inside an entry (at byte {0}): it is not an Xauthority file")]
pub struct Truncated(pub usize);

/// Every entry of `bytes`, in order.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, Truncated> {
    let mut at = 0;
    let mut entries = Vec::new();
    while at < bytes.len() {
        let family = u16_at(bytes, &mut at)?;
        let mut field = || -> Result<Vec<u8>, Truncated> {
            let len = usize::from(u16_at(bytes, &mut at)?);
            let v = bytes.get(at..at + len).ok_or(Truncated(at))?.to_vec();
            at += len;
            Ok(v)
        };
        entries.push(Entry {
            family,
            address: field()?,
            number: field()?,
            name: field()?,
            data: field()?,
        });
    }
    Ok(entries)
}

fn u16_at(bytes: &[u8], at: &mut usize) -> Result<u16, Truncated> {
    let b = bytes.get(*at..*at + 2).ok_or(Truncated(*at))?;
    *at += 2;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

/// The MIT-MAGIC-COOKIE-1 entry a client on host `hostname` would use for
/// display `number` over its unix socket: the first one whose family is
/// wild, or local with that hostname, and whose number is that one or
/// empty (libXau's `XauGetBestAuthByAddr`, asked for this protocol only).
pub fn cookie_for<'a>(entries: &'a [Entry], hostname: &[u8], number: &str) -> Option<&'a Entry> {
    entries.iter().find(|e| {
        let family = e.family == FAMILY_WILD || (e.family == FAMILY_LOCAL && e.address == hostname);
        let display = e.number.is_empty() || e.number == number.as_bytes();
        family && display && e.name == MIT_MAGIC_COOKIE
    })
}

/// A file with one entry: `cookie` for display `number`, any host.
pub fn encode_wild(number: &str, cookie: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + number.len() + MIT_MAGIC_COOKIE.len() + cookie.len());
    out.extend_from_slice(&FAMILY_WILD.to_be_bytes());
    for field in [&b""[..], number.as_bytes(), MIT_MAGIC_COOKIE, cookie] {
        // Fields longer than a u16 do not occur: display numbers are
        // short, and the cookie came from a field of this same format.
        let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&field[..usize::from(len)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(family: u16, address: &str, number: &str, name: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = family.to_be_bytes().to_vec();
        for f in [address.as_bytes(), number.as_bytes(), name, data] {
            out.extend_from_slice(&(f.len() as u16).to_be_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    #[test]
    fn finds_the_entry_a_client_would_use() {
        let mut file = entry(FAMILY_LOCAL, "other", "0", MIT_MAGIC_COOKIE, b"a");
        file.extend(entry(FAMILY_LOCAL, "box", "1", MIT_MAGIC_COOKIE, b"b"));
        file.extend(entry(
            FAMILY_LOCAL,
            "box",
            "0",
            b"XDM-AUTHORIZATION-1",
            b"c",
        ));
        file.extend(entry(FAMILY_LOCAL, "box", "0", MIT_MAGIC_COOKIE, b"d"));
        file.extend(entry(FAMILY_WILD, "", "", MIT_MAGIC_COOKIE, b"e"));
        let entries = parse(&file).unwrap();
        assert_eq!(entries.len(), 5);
        assert_eq!(cookie_for(&entries, b"box", "0").unwrap().data, b"d");
        assert_eq!(cookie_for(&entries, b"box", "1").unwrap().data, b"b");
        // Only the wildcard entry serves another display or host.
        assert_eq!(cookie_for(&entries, b"box", "7").unwrap().data, b"e");
        assert_eq!(cookie_for(&entries, b"hutch", "0").unwrap().data, b"e");
        assert_eq!(cookie_for(&entries[..4], b"hutch", "0"), None);
    }

    #[test]
    fn the_private_file_matches_any_hostname() {
        let file = encode_wild("99", b"\x01\x02\xff");
        let entries = parse(&file).unwrap();
        assert_eq!(
            entries,
            [Entry {
                family: FAMILY_WILD,
                address: Vec::new(),
                number: b"99".to_vec(),
                name: MIT_MAGIC_COOKIE.to_vec(),
                data: vec![1, 2, 255],
            }]
        );
        assert!(cookie_for(&entries, b"hutch", "99").is_some());
        assert!(cookie_for(&entries, b"anything", "99").is_some());
        assert!(cookie_for(&entries, b"hutch", "0").is_none());
    }

    #[test]
    fn truncated_files_are_refused() {
        let file = entry(
            FAMILY_LOCAL,
            "box",
            "0",
            MIT_MAGIC_COOKIE,
            b"0123456789abcdef",
        );
        assert_eq!(parse(&file[..1]), Err(Truncated(0)));
        for cut in 2..file.len() {
            assert!(parse(&file[..cut]).is_err(), "{cut}");
        }
        assert_eq!(parse(b"").unwrap(), []);
    }
}
