//! Init's note at exit: what the payload wrote to a temporary home, which
//! the end of the sandbox throws away (see `crate::plan::home_note`).
//!
//! Only system calls and stack buffers: init runs between clone and exec.
//! The names come from the payload's files, so every byte that is not
//! printable ASCII is shown as `?`: a file name cannot send escape
//! sequences to the caller's terminal.

use std::os::fd::RawFd;

use crate::prepare::home_note::HomeNoteInstr;
use crate::sys;

/// Entries named at most; the rest are counted.
const MAX_NAMED: usize = 10;

/// The names gathered, in a fixed buffer.
struct Names {
    buf: [u8; 2048],
    len: usize,
    named: usize,
    more: usize,
}

impl Names {
    fn add(&mut self, shown: &[u8], name: &[u8]) {
        let sep: &[u8] = if self.named > 0 { b", " } else { b"" };
        let need = sep.len() + shown.len() + name.len();
        if self.named == MAX_NAMED || self.len + need > self.buf.len() {
            self.more += 1;
            return;
        }
        for &b in sep.iter().chain(shown).chain(name) {
            self.buf[self.len] = if (0x20..0x7f).contains(&b) { b } else { b'?' };
            self.len += 1;
        }
        self.named += 1;
    }
}

/// Lists the home and, if anything in it is not the plan's, says so on
/// stderr. Errors end the note silently: it is a courtesy, not a check.
pub fn report(instr: &HomeNoteInstr) {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: the path is NUL-terminated.
    let home = unsafe { libc::open(instr.home.as_ptr(), flags | libc::O_NOFOLLOW) };
    if home < 0 {
        return;
    }
    let mut names = Names {
        buf: [0; 2048],
        len: 0,
        named: 0,
        more: 0,
    };
    for dir in &instr.dirs {
        // Beneath the home, no symlink, no other mount: a directory the
        // payload replaced by a symlink is itself what it wrote.
        let resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_XDEV;
        let fd = match sys::openat2(home, &dir.rel, flags, 0, resolve) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR) => {
                let shown = &dir.shown[..dir.shown.len() - 1];
                names.add(shown, b"");
                continue;
            }
            Err(_) => continue,
        };
        list(fd, &dir.shown, &dir.expected, &mut names);
        sys::close(fd);
    }
    sys::close(home);
    if names.named == 0 {
        return;
    }
    let _ = sys::write_all(2, &instr.intro);
    let _ = sys::write_all(2, &names.buf[..names.len]);
    if names.more > 0 {
        let _ = sys::write_all(2, b" and ");
        let mut digits = [0u8; 20];
        let _ = sys::write_all(2, decimal(names.more, &mut digits));
        let _ = sys::write_all(2, b" more");
    }
    let _ = sys::write_all(2, &instr.outro);
}

/// Adds the entries of directory `fd` that are not `expected`.
fn list(fd: RawFd, shown: &[u8], expected: &[Vec<u8>], names: &mut Names) {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        if n <= 0 {
            return;
        }
        let mut at = 0;
        while at + 19 < n as usize {
            // struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2),
            // d_type (1), d_name (NUL-terminated).
            let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
            if reclen == 0 {
                return;
            }
            let raw = &buf[at + 19..at + reclen];
            let name = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
            if name != b"." && name != b".." && !expected.iter().any(|e| e == name) {
                names.add(shown, name);
            }
            at += reclen;
        }
    }
}

/// `n` in decimal, in `digits`.
fn decimal(mut n: usize, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[at..];
        }
    }
}
