//! What an import may write: a budget of unpacked bytes (`hutch image
//! import --max-size`, [`DEFAULT_MAX_SIZE`] by default), charged for every
//! byte of a layer's uncompressed stream as it is read and before anything
//! of it is written; and a guard that stops an import before it leaves the
//! store's filesystem with less than [`KEEP_FREE_BYTES`] or
//! [`KEEP_FREE_INODES`] (a layer of a million empty files costs inodes, not
//! bytes).
//!
//! Charging the uncompressed stream bounds more than the disk: the time an
//! import takes (a gzip or zstd stream that inflates to a terabyte is cut
//! off at the budget), and with the tar reader's limits, its memory.

use std::fmt;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use super::error::ImageError;

/// The budget of an import when `--max-size` is not given: more than the
/// images in common use unpack to, and a stop for a decompression bomb.
pub const DEFAULT_MAX_SIZE: u64 = 32 << 30;
/// What an import leaves free on the store's filesystem (for unprivileged
/// users: the blocks statvfs calls available; root's reserve is not used).
pub const KEEP_FREE_BYTES: u64 = 16 << 20;
/// The inodes an import leaves free, where the filesystem counts them.
pub const KEEP_FREE_INODES: u64 = 1024;
/// How often the free space is looked at: after this many bytes written...
const CHECK_EVERY_BYTES: u64 = 1 << 20;
/// ...or this many entries made.
const CHECK_EVERY_ENTRIES: u64 = 256;

/// The unpacked bytes an import may still read.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    used: u64,
    /// Whether the caller chose the limit (else: the default, and the
    /// message says how to raise it).
    chosen: bool,
}

/// The error a [`Metered`] reader returns when the budget is spent.
#[derive(Debug)]
struct Exceeded {
    limit: u64,
    chosen: bool,
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "more than {} bytes unpacked", self.limit)
    }
}

impl std::error::Error for Exceeded {}

impl Budget {
    /// A budget of `limit` bytes; `chosen`: given by the user.
    pub(crate) fn new(limit: u64, chosen: bool) -> Budget {
        Budget {
            limit,
            used: 0,
            chosen,
        }
    }

    /// Bytes charged so far.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// The import's error for `e`, if `e` says the budget was spent
    /// (wherever in the chain of readers it came from).
    pub(crate) fn exceeded(e: &io::Error) -> Option<ImageError> {
        let spent = e.get_ref()?.downcast_ref::<Exceeded>()?;
        Some(ImageError::TooLarge {
            limit: spent.limit,
            hint: if spent.chosen {
                ""
            } else {
                "; if the image is meant to be that large, import it with `--max-size SIZE` (e.g. 64G)"
            },
        })
    }
}

/// A reader that charges what it reads to a [`Budget`] and fails, before
/// handing the bytes over, once they would exceed it.
pub(crate) struct Metered<'b, R> {
    inner: R,
    budget: &'b mut Budget,
}

impl<'b, R: Read> Metered<'b, R> {
    pub(crate) fn new(inner: R, budget: &'b mut Budget) -> Self {
        Metered { inner, budget }
    }
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.budget.limit - self.budget.used;
        // One byte more than is left tells a stream that ends exactly at
        // the limit from one that goes on.
        let want = buf
            .len()
            .min(usize::try_from(left.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > left {
            return Err(io::Error::other(Exceeded {
                limit: self.budget.limit,
                chosen: self.budget.chosen,
            }));
        }
        self.budget.used += n as u64;
        Ok(n)
    }
}

/// Looks at the free space of the store's filesystem every
/// [`CHECK_EVERY_BYTES`] written and [`CHECK_EVERY_ENTRIES`] made, and
/// stops the import while enough is left for the next stretch.
pub(crate) struct SpaceGuard {
    dir: OwnedFd,
    store: PathBuf,
    bytes: u64,
    entries: u64,
}

impl SpaceGuard {
    /// A guard for the filesystem of `dir` (a directory of the store at
    /// `store`), which is looked at once now.
    pub(crate) fn new(dir: OwnedFd, store: &Path) -> Result<SpaceGuard, ImageError> {
        let guard = SpaceGuard {
            dir,
            store: store.to_path_buf(),
            bytes: 0,
            entries: 0,
        };
        guard.check()?;
        Ok(guard)
    }

    /// Before writing `n` bytes.
    pub(crate) fn wrote(&mut self, n: u64) -> Result<(), ImageError> {
        self.bytes += n;
        if self.bytes >= CHECK_EVERY_BYTES {
            self.bytes = 0;
            self.check()?;
        }
        Ok(())
    }

    /// Before making an entry (an inode, most of the time).
    pub(crate) fn entry(&mut self) -> Result<(), ImageError> {
        self.entries += 1;
        if self.entries >= CHECK_EVERY_ENTRIES {
            self.entries = 0;
            self.check()?;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), ImageError> {
        let st = nix::sys::statvfs::fstatvfs(&self.dir)
            .map_err(ImageError::io("inspect the filesystem of", &self.store))?;
        let free = st.blocks_available() * st.fragment_size();
        let no_space = |free: String, keep: String| ImageError::NoSpace {
            path: self.store.clone(),
            free,
            keep,
        };
        if free < KEEP_FREE_BYTES + CHECK_EVERY_BYTES {
            return Err(no_space(
                format!("{} KiB", free >> 10),
                format!("{} MiB", KEEP_FREE_BYTES >> 20),
            ));
        }
        let inodes = st.files_available();
        if st.files() > 0 && inodes < KEEP_FREE_INODES + CHECK_EVERY_ENTRIES {
            return Err(no_space(
                format!("{inodes} inodes"),
                format!("{KEEP_FREE_INODES} inodes"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_stops_a_stream_before_handing_over_what_exceeds_it() {
        let mut budget = Budget::new(10, false);
        let mut out = Vec::new();
        let e = Metered::new(&[7u8; 11][..], &mut budget)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(out.len() <= 10, "{} bytes handed over", out.len());
        let msg = Budget::exceeded(&e).unwrap().to_string();
        assert!(
            msg.contains("more than 10 bytes") && msg.contains("--max-size"),
            "{msg}"
        );
        // Exactly the budget is fine, and is charged.
        let mut budget = Budget::new(10, true);
        Metered::new(&[7u8; 10][..], &mut budget)
            .read_to_end(&mut Vec::new())
            .unwrap();
        assert_eq!(budget.used(), 10);
        assert!(Budget::exceeded(&io::Error::other("x")).is_none());
    }
}
