//! The descriptors the child opens before it mounts anything, as a typed
//! table.
//!
//! `prepare` adds a slot for every host path or pinned directory the child
//! must open first (a bind source, /dev/null for a /proc mask, a volume, an
//! overlay layer, …) and gets back a handle, [`Slot`], that only this table
//! makes. An instruction holds handles, never numbers. The launcher
//! allocates the child's descriptor array from the table before clone
//! ([`SlotTable::descriptors`]: the child must not allocate); the child
//! opens every slot in order (`child::slots`) and reads them back through
//! [`Descriptors`], which answers a slot that is empty or not of this
//! table with [`SlotError`] — a named failure, never a `-1` that the
//! kernel would turn into `EBADF`.
//!
//! A handle's type says what the child does with the descriptor: a
//! [`Slot<Mount>`] is a detached mount tree to attach, a [`Slot<Dir>`] a
//! directory to name to overlayfs. Using one for the other does not
//! compile:
//!
//! ```compile_fail
//! use hutch::prepare::slots::SlotTable;
//! let mut table = SlotTable::default();
//! let layer = table.layer(c"/layers/0".into());
//! let descriptors = table.descriptors();
//! // A layer directory is no mount tree.
//! let _ = descriptors.mount(layer);
//! ```
//!
//! ```
//! use hutch::prepare::slots::SlotTable;
//! let mut table = SlotTable::default();
//! let layer = table.layer(c"/layers/0".into());
//! let descriptors = table.descriptors();
//! assert!(descriptors.dir(layer).is_err(), "nothing is opened yet");
//! ```

use std::ffi::CString;
use std::marker::PhantomData;
use std::os::fd::RawFd;

use super::PinnedDir;

/// What a slot holds, and so how the child opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// A host path to bind: a detached copy of its mount tree.
    BindSource,
    /// The host's /proc, for a sandbox without a pid namespace of its own.
    HostProc,
    /// /dev/null, to cover a /proc entry with.
    ProcMask,
    /// A device node of the minimal /dev.
    DevNode,
    /// A directory that is the sandbox's root, bound read-only.
    RootDir,
    /// A volume the launcher holds: a detached copy of the pinned directory.
    Volume,
    /// A lower layer of the overlay root: an `O_PATH` directory.
    Layer,
    /// A persistent upper layer's `upper` directory, pinned.
    Upper,
    /// A persistent upper layer's `work` directory, pinned.
    Work,
}

impl SlotKind {
    /// What the slot is, in a failure message.
    pub fn name(self) -> &'static str {
        match self {
            SlotKind::BindSource => "bind source",
            SlotKind::HostProc => "host /proc",
            SlotKind::ProcMask => "/proc mask",
            SlotKind::DevNode => "device node",
            SlotKind::RootDir => "root directory",
            SlotKind::Volume => "volume",
            SlotKind::Layer => "overlay layer",
            SlotKind::Upper => "upper directory",
            SlotKind::Work => "work directory",
        }
    }
}

/// Slots whose descriptor is a detached mount tree, to attach.
#[derive(Debug, Clone, Copy)]
pub struct Mount;

/// Slots whose descriptor is an `O_PATH` directory, to name to overlayfs.
#[derive(Debug, Clone, Copy)]
pub struct Dir;

/// A handle to one slot of a [`SlotTable`]; only the table makes them.
#[derive(Debug)]
pub struct Slot<T> {
    index: usize,
    opened: PhantomData<T>,
}

// By hand: a derive would ask `T: Copy` of the marker.
impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Slot<T> {}

/// How the child opens a slot.
#[derive(Debug)]
pub enum Opening {
    /// `open_tree(path, OPEN_TREE_CLONE | AT_RECURSIVE)`.
    Tree(CString),
    /// The pinned directory, then a detached copy of it.
    PinnedTree(PinnedDir),
    /// `open(path, O_PATH | O_DIRECTORY)`.
    Dir(CString),
    /// The pinned directory itself (`O_PATH`).
    PinnedDir(PinnedDir),
}

impl Opening {
    /// The path it opens, for failure messages.
    pub fn path(&self) -> &CString {
        match self {
            Opening::Tree(p) | Opening::Dir(p) => p,
            Opening::PinnedTree(d) | Opening::PinnedDir(d) => &d.path,
        }
    }
}

/// One slot: what it is and how the child opens it.
#[derive(Debug)]
pub struct Entry {
    pub kind: SlotKind,
    pub opening: Opening,
}

/// Every descriptor the child opens before it mounts anything, in the
/// order it opens them.
#[derive(Debug, Default)]
pub struct SlotTable {
    entries: Vec<Entry>,
}

impl SlotTable {
    fn push<T>(&mut self, kind: SlotKind, opening: Opening) -> Slot<T> {
        self.entries.push(Entry { kind, opening });
        Slot {
            index: self.entries.len() - 1,
            opened: PhantomData,
        }
    }

    /// A host path to bind.
    pub fn bind_source(&mut self, path: CString) -> Slot<Mount> {
        self.push(SlotKind::BindSource, Opening::Tree(path))
    }

    /// The host's /proc.
    pub fn host_proc(&mut self) -> Slot<Mount> {
        self.push(SlotKind::HostProc, Opening::Tree(c"/proc".into()))
    }

    /// /dev/null, to cover one /proc entry.
    pub fn proc_mask(&mut self) -> Slot<Mount> {
        self.push(SlotKind::ProcMask, Opening::Tree(c"/dev/null".into()))
    }

    /// A host device node (`/dev/null`, …).
    pub fn dev_node(&mut self, path: CString) -> Slot<Mount> {
        self.push(SlotKind::DevNode, Opening::Tree(path))
    }

    /// A directory root.
    pub fn root_dir(&mut self, path: CString) -> Slot<Mount> {
        self.push(SlotKind::RootDir, Opening::Tree(path))
    }

    /// A volume the launcher holds.
    pub fn volume(&mut self, dir: PinnedDir) -> Slot<Mount> {
        self.push(SlotKind::Volume, Opening::PinnedTree(dir))
    }

    /// A lower layer of the overlay root.
    pub fn layer(&mut self, path: CString) -> Slot<Dir> {
        self.push(SlotKind::Layer, Opening::Dir(path))
    }

    /// A persistent upper layer the launcher holds: `upper` and `work`.
    pub fn upper(&mut self, [upper, work]: [PinnedDir; 2]) -> [Slot<Dir>; 2] {
        [
            self.push(SlotKind::Upper, Opening::PinnedDir(upper)),
            self.push(SlotKind::Work, Opening::PinnedDir(work)),
        ]
    }

    /// The slots in the order the child opens them.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The slot's entry (`None` for a handle of another table).
    pub fn entry<T>(&self, slot: Slot<T>) -> Option<&Entry> {
        self.entries.get(slot.index)
    }

    /// The child's descriptor array for this table, every slot empty:
    /// allocated by the launcher before clone.
    pub fn descriptors(&self) -> Descriptors {
        Descriptors {
            fds: vec![EMPTY; self.entries.len()],
            kinds: self.entries.iter().map(|e| e.kind).collect(),
        }
    }
}

const EMPTY: RawFd = -1;

/// A slot the child asked for was not opened (`kind`: what it is), or
/// is not of this table (`kind` is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotError {
    pub index: usize,
    pub kind: Option<SlotKind>,
}

/// The child's descriptors, one per slot of the table they were made from.
#[derive(Debug)]
pub struct Descriptors {
    fds: Vec<RawFd>,
    kinds: Vec<SlotKind>,
}

impl Descriptors {
    fn error(&self, index: usize) -> SlotError {
        SlotError {
            index,
            kind: self.kinds.get(index).copied(),
        }
    }

    fn get(&self, index: usize) -> Result<RawFd, SlotError> {
        match self.fds.get(index) {
            Some(&fd) if fd != EMPTY => Ok(fd),
            _ => Err(self.error(index)),
        }
    }

    /// The detached mount tree of `slot`.
    pub fn mount(&self, slot: Slot<Mount>) -> Result<RawFd, SlotError> {
        self.get(slot.index)
    }

    /// The directory of `slot`.
    pub fn dir(&self, slot: Slot<Dir>) -> Result<RawFd, SlotError> {
        self.get(slot.index)
    }

    /// Records the descriptor the child opened for the `index`-th entry
    /// of the table.
    pub fn fill(&mut self, index: usize, fd: RawFd) -> Result<(), SlotError> {
        match self.fds.get_mut(index) {
            Some(slot) => {
                *slot = fd;
                Ok(())
            }
            None => Err(self.error(index)),
        }
    }

    /// Empties `slot`, handing its descriptor to the caller (to close).
    pub fn take<T>(&mut self, slot: Slot<T>) -> Option<RawFd> {
        let fd = self.fds.get_mut(slot.index)?;
        let taken = std::mem::replace(fd, EMPTY);
        (taken != EMPTY).then_some(taken)
    }

    /// Empties every slot, handing the open descriptors to `close`.
    pub fn take_all(&mut self, mut close: impl FnMut(RawFd)) {
        for fd in &mut self.fds {
            let taken = std::mem::replace(fd, EMPTY);
            if taken != EMPTY {
                close(taken);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pinned(path: &std::ffi::CStr) -> PinnedDir {
        PinnedDir {
            path: path.into(),
            dev: 1,
            ino: 2,
        }
    }

    #[test]
    fn slots_are_opened_in_the_order_they_were_made() {
        let mut table = SlotTable::default();
        let bind = table.bind_source(c"/usr".into());
        let volume = table.volume(pinned(c"/v"));
        let layer = table.layer(c"/l".into());
        let [upper, work] = table.upper([pinned(c"/u/upper"), pinned(c"/u/work")]);
        let kinds: Vec<SlotKind> = table.entries().iter().map(|e| e.kind).collect();
        use SlotKind::*;
        assert_eq!(kinds, [BindSource, Volume, Layer, Upper, Work]);
        assert_eq!(
            table.entry(volume).unwrap().opening.path(),
            &c"/v".to_owned()
        );
        assert_eq!(table.entry(work).unwrap().kind, Work);

        let mut fds = table.descriptors();
        // Nothing opened yet: every slot is a named error, not -1.
        let empty = |index, kind| {
            Err(SlotError {
                index,
                kind: Some(kind),
            })
        };
        assert_eq!(fds.mount(bind), empty(0, BindSource));
        assert_eq!(fds.dir(upper), empty(3, Upper));
        for (i, _) in table.entries().iter().enumerate() {
            fds.fill(i, 10 + i as RawFd).unwrap();
        }
        assert_eq!(fds.mount(bind), Ok(10));
        assert_eq!(fds.mount(volume), Ok(11));
        assert_eq!(fds.dir(layer), Ok(12));
        assert_eq!(fds.take(layer), Some(12));
        assert_eq!(fds.dir(layer), empty(2, Layer));
        assert_eq!(fds.take(layer), None);
        let mut closed = Vec::new();
        fds.take_all(|fd| closed.push(fd));
        assert_eq!(closed, [10, 11, 13, 14]);
        assert!(fds.mount(bind).is_err());
    }

    #[test]
    fn a_handle_of_a_bigger_table_is_an_error_not_a_descriptor() {
        let mut big = SlotTable::default();
        big.bind_source(c"/a".into());
        let second = big.bind_source(c"/b".into());
        let mut small = SlotTable::default();
        small.bind_source(c"/a".into());
        let mut fds = small.descriptors();
        fds.fill(0, 5).unwrap();
        let foreign = SlotError {
            index: 1,
            kind: None,
        };
        assert_eq!(fds.mount(second), Err(foreign));
        assert_eq!(fds.fill(1, 6), Err(foreign));
        assert!(small.entry(second).is_none());
    }
}
