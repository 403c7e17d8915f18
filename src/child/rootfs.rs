//! Building the sandbox's root filesystem and switching to it.
//!
//! Bind sources are cloned as detached mount trees *before* anything is
//! mounted (so a source under /tmp is still reachable), flags are set on the
//! detached copy (so a read-only bind is never writable, not even briefly, and
//! covers every submount), then each is attached at its destination resolved
//! inside the new root.

use std::ffi::CStr;
use std::os::fd::RawFd;

use nix::errno::Errno;

use super::resolve::{self, Leaf};
use super::{Fail, overlay, slots, terminal};
use crate::prepare::report::Step;
use crate::prepare::slots::{Descriptors, Mount, Slot};
use crate::prepare::{MountInstr, Prepared, PtyInstr, RootInstr};
use crate::sys;
use crate::sys::terminal::PtyPair;

/// Where the new root's tmpfs is attached in the (private) mount namespace
/// until pivot_root; any existing directory would do.
const STAGING: &CStr = c"/tmp";

/// Builds the root and switches to it; returns the payload's
/// pseudo-terminal if the plan asked for one (opened in the new /dev).
pub fn build<'a>(
    prepared: &'a Prepared,
    fds: &mut Descriptors,
    report: RawFd,
) -> Result<Option<PtyPair>, Fail<'a>> {
    sys::make_mounts_slave().map_err(|e| Fail::new(Step::MountPropagation, e))?;
    slots::open_all(&prepared.slots, fds)?;
    // The root: an empty tmpfs, a directory bound read-only, or an overlay;
    // the first and the last are made read-only once the entries are in.
    let (root, readonly_at_end, root_is_slot) = match &prepared.root {
        None => {
            let fd = new_tmpfs(c"755", None, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV)
                .map_err(|e| Fail::new(Step::RootTmpfs, e))?;
            (fd, true, false)
        }
        Some(RootInstr::Bind { source }) => {
            let fd = fds.mount(*source)?;
            let attrs = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
            sys::mount_setattr(fd, attrs, true)
                .map_err(|e| Fail::with(Step::Bind, e, slot_path(prepared, *source)))?;
            (fd, false, true)
        }
        Some(RootInstr::Overlay(o)) => {
            (overlay::mount(o, fds, STAGING, report)?, o.readonly, false)
        }
    };
    sys::move_mount_to_path(root, STAGING)
        .map_err(|e| Fail::with(Step::AttachRoot, e, STAGING.to_bytes()))?;
    let mut pty = Terminal {
        instr: prepared.pty.as_ref(),
        opened: None,
    };
    for instr in &prepared.mounts {
        apply(root, instr, fds, &mut pty)?;
    }
    if readonly_at_end {
        sys::mount_setattr(root, sys::MOUNT_ATTR_RDONLY, false)
            .map_err(|e| Fail::new(Step::RootReadOnly, e))?;
    }
    // SAFETY: root is a valid directory descriptor.
    if unsafe { libc::fchdir(root) } < 0 {
        return Err(Fail::new(Step::PivotRoot, Errno::last()));
    }
    // pivot_root(".", ".") stacks the old root on top of the new one, so it
    // can be detached without a directory to park it in.
    sys::pivot_root(c".", c".").map_err(|e| Fail::new(Step::PivotRoot, e))?;
    // SAFETY: "." is NUL-terminated; MNT_DETACH unmounts lazily.
    if unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) } < 0 {
        return Err(Fail::new(Step::DetachOldRoot, Errno::last()));
    }
    // SAFETY: "/" is NUL-terminated.
    if unsafe { libc::chdir(c"/".as_ptr()) } < 0 {
        return Err(Fail::new(Step::DetachOldRoot, Errno::last()));
    }
    fds.take_all(sys::close);
    if !root_is_slot {
        sys::close(root);
    }
    Ok(pty.opened)
}

/// The payload's pseudo-terminal: what to open, and what was opened.
struct Terminal<'p> {
    instr: Option<&'p PtyInstr>,
    opened: Option<PtyPair>,
}

/// The host path of `slot`, for a failure message.
fn slot_path(prepared: &Prepared, slot: Slot<Mount>) -> &[u8] {
    prepared
        .slots
        .entry(slot)
        .map_or(&b""[..], |e| e.opening.path().to_bytes())
}

fn new_tmpfs(mode: &CStr, size: Option<&CStr>, attrs: u64) -> Result<RawFd, Errno> {
    let fs = sys::fsopen(c"tmpfs")?;
    let r = (|| {
        sys::fsconfig_string(fs, c"mode", mode)?;
        if let Some(size) = size {
            sys::fsconfig_string(fs, c"size", size)?;
        }
        sys::fsconfig_create(fs)?;
        sys::fsmount(fs, attrs)
    })();
    sys::close(fs);
    r
}

fn is_dir(fd: RawFd) -> bool {
    // SAFETY: an all-zero stat is valid to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into st.
    unsafe { libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR }
}

/// Attaches the detached mount `mnt` at `dst` inside `root`.
fn attach<'a>(
    root: RawFd,
    mnt: RawFd,
    dst: &'a CStr,
    step: Step,
    leaf: Leaf,
) -> Result<(), Fail<'a>> {
    let target = resolve::open_in_root(root, dst.to_bytes(), leaf)
        .map_err(|e| Fail::with(Step::ResolveDestination, e, dst.to_bytes()))?;
    let r = sys::move_mount(mnt, target);
    sys::close(target);
    r.map_err(|e| Fail::with(step, e, dst.to_bytes()))
}

fn apply<'a>(
    root: RawFd,
    instr: &'a MountInstr,
    fds: &Descriptors,
    pty: &mut Terminal<'_>,
) -> Result<(), Fail<'a>> {
    match instr {
        MountInstr::Bind { source, dst, attrs } => {
            let fd = fds.mount(*source)?;
            sys::mount_setattr(fd, *attrs, true)
                .map_err(|e| Fail::with(Step::Bind, e, dst.to_bytes()))?;
            let leaf = if is_dir(fd) { Leaf::Dir } else { Leaf::File };
            attach(root, fd, dst, Step::Bind, leaf)
        }
        MountInstr::Tmpfs { dst, mode, size } => {
            let mnt = new_tmpfs(
                mode,
                size.as_deref(),
                sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
            )
            .map_err(|e| Fail::with(Step::Tmpfs, e, dst.to_bytes()))?;
            let r = attach(root, mnt, dst, Step::Tmpfs, Leaf::Dir);
            sys::close(mnt);
            r
        }
        MountInstr::Proc {
            dst,
            host_source,
            readonly,
            masked,
        } => {
            let fail = |e| Fail::with(Step::Proc, e, dst.to_bytes());
            let flags = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC;
            let mnt = match host_source {
                // Without a pid namespace of its own the sandbox may not mount
                // a new procfs: it gets the host's, hardened the same way.
                Some(host) => {
                    let fd = fds.mount(*host)?;
                    sys::mount_setattr(fd, flags, true).map_err(fail)?;
                    fd
                }
                None => new_proc(flags).map_err(fail)?,
            };
            let r = attach(root, mnt, dst, Step::Proc, Leaf::Dir).and_then(|()| {
                // Entries are looked up in the new procfs itself: its names
                // are the kernel's, with no symlinks to follow on the way.
                for (name, path) in readonly {
                    harden_proc_entry(mnt, name, None)
                        .map_err(|e| Fail::with(Step::Proc, e, path.to_bytes()))?;
                }
                for (name, path, null) in masked {
                    harden_proc_entry(mnt, name, Some(fds.mount(*null)?))
                        .map_err(|e| Fail::with(Step::Proc, e, path.to_bytes()))?;
                }
                Ok(())
            });
            if host_source.is_none() {
                sys::close(mnt);
            }
            r
        }
        MountInstr::Dev {
            dst,
            nodes,
            terminal,
        } => {
            let fail = |e| Fail::with(Step::Dev, e, dst.to_bytes());
            let dev = new_tmpfs(
                c"755",
                Some(c"1m"),
                sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC,
            )
            .map_err(fail)?;
            let r = attach(root, dev, dst, Step::Dev, Leaf::Dir).and_then(|()| {
                for (name, node) in nodes {
                    bind_dev_node(dev, name, fds.mount(*node)?).map_err(fail)?;
                }
                populate_dev(dev).map_err(fail)?;
                if let Some(instr) = pty.instr.filter(|_| *terminal) {
                    let pair = terminal::open(dev, instr)
                        .map_err(|e| Fail::with(Step::Terminal, e, dst.to_bytes()))?;
                    pty.opened = Some(pair);
                }
                Ok(())
            });
            sys::close(dev);
            r
        }
        MountInstr::Dir { dst, mode } => {
            let (dir, leaf) = resolve::open_parent(root, dst.to_bytes())
                .map_err(|e| Fail::with(Step::ResolveDestination, e, dst.to_bytes()))?;
            let r = make_dir(dir, leaf, *mode);
            sys::close(dir);
            r.map_err(|e| Fail::with(Step::Dir, e, dst.to_bytes()))
        }
        MountInstr::Symlink { target, dst } => {
            let (dir, leaf) = resolve::open_parent(root, dst.to_bytes())
                .map_err(|e| Fail::with(Step::ResolveDestination, e, dst.to_bytes()))?;
            let r = make_symlink(dir, leaf, target);
            sys::close(dir);
            r.map_err(|e| Fail::with(Step::Symlink, e, dst.to_bytes()))
        }
        MountInstr::File {
            dst,
            content,
            mode,
            cover,
        } => {
            let (dir, leaf) = resolve::open_parent(root, dst.to_bytes())
                .map_err(|e| Fail::with(Step::ResolveDestination, e, dst.to_bytes()))?;
            let r = if *cover {
                cover_file(dir, leaf, content, *mode)
            } else {
                make_file(dir, leaf, content, *mode)
            };
            sys::close(dir);
            r.map_err(|e| Fail::with(Step::File, e, dst.to_bytes()))
        }
    }
}

fn new_proc(attrs: u64) -> Result<RawFd, Errno> {
    let fs = sys::fsopen(c"proc")?;
    let r = sys::fsconfig_create(fs).and_then(|()| sys::fsmount(fs, attrs));
    sys::close(fs);
    r
}

/// Makes a /proc entry read-only in place (`cover` = None) or covers it with
/// the read-only mount `cover` (a /dev/null). Entries this kernel does not
/// have are left alone.
fn harden_proc_entry(proc_mnt: RawFd, name: &CStr, cover: Option<RawFd>) -> Result<(), Errno> {
    // SAFETY: name is NUL-terminated.
    let target = unsafe {
        libc::openat(
            proc_mnt,
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if target < 0 {
        return match Errno::last() {
            Errno::ENOENT => Ok(()),
            e => Err(e),
        };
    }
    let ro = sys::MOUNT_ATTR_RDONLY
        | sys::MOUNT_ATTR_NOSUID
        | sys::MOUNT_ATTR_NODEV
        | sys::MOUNT_ATTR_NOEXEC;
    let r = (|| {
        let (mnt, owned) = match cover {
            Some(fd) => (fd, false),
            None => (sys::open_tree_clone_fd(target)?, true),
        };
        let attrs = if owned {
            ro
        } else {
            ro & !sys::MOUNT_ATTR_NODEV
        };
        let r = sys::mount_setattr(mnt, attrs, true).and_then(|()| sys::move_mount(mnt, target));
        if owned {
            sys::close(mnt);
        }
        r
    })();
    sys::close(target);
    r
}

fn make_dir(dir: RawFd, leaf: &[u8], mode: u32) -> Result<(), Errno> {
    let name = resolve::c_name(leaf)?;
    // SAFETY: name is NUL-terminated.
    if unsafe { libc::mkdirat(dir, name.as_ptr().cast(), mode) } == 0 {
        return Ok(());
    }
    let e = Errno::last();
    // An existing directory is fine: the entry only asks that it exists.
    if e == Errno::EEXIST {
        let fd = resolve::open_in_root(dir, leaf, Leaf::Nothing)?;
        let ok = is_dir(fd);
        sys::close(fd);
        if ok {
            return Ok(());
        }
    }
    Err(e)
}

fn make_symlink(dir: RawFd, leaf: &[u8], target: &CStr) -> Result<(), Errno> {
    let name = resolve::c_name(leaf)?;
    // SAFETY: target and name are NUL-terminated.
    if unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr().cast()) } == 0 {
        return Ok(());
    }
    let e = Errno::last();
    if e == Errno::EEXIST {
        // The same link already there (e.g. from a bound directory) is fine.
        let mut buf = [0u8; 4096];
        // SAFETY: name is NUL-terminated; buf is valid for its length.
        let n = unsafe {
            libc::readlinkat(
                dir,
                name.as_ptr().cast(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 && &buf[..n as usize] == target.to_bytes() {
            return Ok(());
        }
    }
    Err(e)
}

fn make_file(dir: RawFd, leaf: &[u8], content: &[u8], mode: u32) -> Result<(), Errno> {
    let name = resolve::c_name(leaf)?;
    // SAFETY: name is NUL-terminated.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr().cast(),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    let r = sys::write_all(fd, content);
    sys::close(fd);
    r
}

/// A read-only file with `content` at `leaf` in `dir`: created where
/// nothing is, else mounted over what is there (a file in a read-only
/// bind, or a symlink, which the mount covers without following it).
fn cover_file(dir: RawFd, leaf: &[u8], content: &[u8], mode: u32) -> Result<(), Errno> {
    match make_file(dir, leaf, content, mode) {
        Err(Errno::EEXIST | Errno::EROFS) => {}
        r => return r,
    }
    let name = resolve::c_name(leaf)?;
    // SAFETY: name is NUL-terminated.
    let target = unsafe {
        libc::openat(
            dir,
            name.as_ptr().cast(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if target < 0 {
        return Err(Errno::last());
    }
    let r = file_mount(content, mode).and_then(|file| {
        let r = sys::move_mount(file, target);
        sys::close(file);
        r
    });
    sys::close(target);
    r
}

/// A detached, read-only mount of a file holding `content`, on a tmpfs
/// of its own.
fn file_mount(content: &[u8], mode: u32) -> Result<RawFd, Errno> {
    let ro = sys::MOUNT_ATTR_RDONLY
        | sys::MOUNT_ATTR_NOSUID
        | sys::MOUNT_ATTR_NODEV
        | sys::MOUNT_ATTR_NOEXEC;
    let tmp = new_tmpfs(
        c"755",
        Some(c"64k"),
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
    )?;
    let r = make_file(tmp, b"file", content, mode).and_then(|()| {
        let file = resolve::open_in_root(tmp, b"file", Leaf::Nothing)?;
        let tree = sys::open_tree_clone_fd(file);
        sys::close(file);
        let tree = tree?;
        match sys::mount_setattr(tree, ro, false) {
            Ok(()) => Ok(tree),
            Err(e) => {
                sys::close(tree);
                Err(e)
            }
        }
    });
    sys::close(tmp);
    r
}

/// Binds the host's device node `node` at `name` on the fresh tmpfs `dev`.
fn bind_dev_node(dev: RawFd, name: &CStr, node: RawFd) -> Result<(), Errno> {
    sys::mount_setattr(node, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC, false)?;
    // A fresh tmpfs: the mount point can be created and used in one call.
    // SAFETY: name is NUL-terminated.
    let target = unsafe {
        libc::openat(
            dev,
            name.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o666 as libc::c_uint,
        )
    };
    if target < 0 {
        return Err(Errno::last());
    }
    let r = sys::move_mount(node, target);
    sys::close(target);
    r
}

/// Completes a fresh tmpfs (already attached, its device nodes bound)
/// as the minimal /dev: links, a private devpts and shm; then makes it
/// read-only.
fn populate_dev(dev: RawFd) -> Result<(), Errno> {
    for (target, link) in [
        (c"/proc/self/fd", c"fd"),
        (c"/proc/self/fd/0", c"stdin"),
        (c"/proc/self/fd/1", c"stdout"),
        (c"/proc/self/fd/2", c"stderr"),
        (c"pts/ptmx", c"ptmx"),
    ] {
        // SAFETY: both strings are NUL-terminated.
        if unsafe { libc::symlinkat(target.as_ptr(), dev, link.as_ptr()) } < 0 {
            return Err(Errno::last());
        }
    }
    for (dir, mode) in [(c"pts", 0o755), (c"shm", 0o1777)] {
        // SAFETY: dir is NUL-terminated.
        if unsafe { libc::mkdirat(dev, dir.as_ptr(), mode) } < 0 {
            return Err(Errno::last());
        }
    }
    let fs = sys::fsopen(c"devpts")?;
    let pts = (|| {
        sys::fsconfig_string(fs, c"ptmxmode", c"0666")?;
        sys::fsconfig_string(fs, c"mode", c"0620")?;
        sys::fsconfig_create(fs)?;
        sys::fsmount(fs, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC)
    })();
    sys::close(fs);
    let pts = pts?;
    let r = resolve::open_in_root(dev, b"pts", Leaf::Nothing).and_then(|t| {
        let r = sys::move_mount(pts, t);
        sys::close(t);
        r
    });
    sys::close(pts);
    r?;
    let shm = new_tmpfs(
        c"1777",
        None,
        sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
    )?;
    let r = resolve::open_in_root(dev, b"shm", Leaf::Nothing).and_then(|t| {
        let r = sys::move_mount(shm, t);
        sys::close(t);
        r
    });
    sys::close(shm);
    r?;
    sys::mount_setattr(dev, sys::MOUNT_ATTR_RDONLY, false)
}
