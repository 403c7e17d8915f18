//! The child's one path walker (between clone and exec: fixed buffers,
//! raw system calls, no allocation). Two kinds of path go through it:
//!
//! - destinations inside the new root ([`open_in_root`], [`open_parent`]):
//!   a symlink met on the way is read and resolved *in the new root* (an
//!   absolute target restarts at the new root, not the host's); a target
//!   that climbs above the new root is refused with `EXDEV`; missing
//!   directories can be created on the way;
//! - host directories the launcher checked and pinned
//!   ([`open_pinned_dir`]): an absolute path with no symlink at all, and
//!   only if it is still the inode the launcher holds (see
//!   `safe_fs::Pinned`).
//!
//! Both are walked one component at a time with `O_PATH|O_NOFOLLOW`
//! relative to directory descriptors, by the same routine ([`walk`]): they
//! differ in what a symlink means ([`Symlinks`]) and in what is created.
//! The pinned directories first try `openat2(RESOLVE_NO_SYMLINKS)`, one
//! system call for the whole path, and walk only where it is missing.

use std::ffi::CStr;
use std::os::fd::RawFd;

use nix::errno::Errno;

use crate::sys;

const MAX_DEPTH: usize = 128;
const MAX_LINKS: usize = 40;
const PATH_BUF: usize = 4096;
const NAME_BUF: usize = 256;

/// What to create when the last component is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    Dir,
    File,
    /// Do not create: a missing last component is `ENOENT`.
    Nothing,
}

/// What a walk does with a symlink it meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Symlinks {
    /// Follows it inside the root the walk started from (`..` may not
    /// climb above that root: `EXDEV`).
    InRoot,
    /// Refuses it (`ELOOP`), and `..` too (`EINVAL`): the path must be
    /// the directory's own, as the launcher recorded it.
    Refuse,
    /// Follows it as [`Symlinks::InRoot`] only where it lies on a
    /// read-only mount, where the sandbox cannot have put it; refuses one
    /// on a writable mount (`ELOOP`). Creates nothing.
    OnReadOnlyMounts,
}

/// The directories walked through, the root at the bottom: `..` goes back
/// down the stack (the root's own descriptor is the caller's).
struct Stack {
    fds: [RawFd; MAX_DEPTH],
    depth: usize,
}

impl Stack {
    fn new(root: RawFd) -> Stack {
        let mut fds = [-1; MAX_DEPTH];
        fds[0] = root;
        Stack { fds, depth: 0 }
    }

    fn top(&self) -> RawFd {
        self.fds[self.depth]
    }

    fn push(&mut self, fd: RawFd) -> Result<(), Errno> {
        if self.depth + 1 >= MAX_DEPTH {
            sys::close(fd);
            return Err(Errno::ENAMETOOLONG);
        }
        self.depth += 1;
        self.fds[self.depth] = fd;
        Ok(())
    }

    fn pop(&mut self) -> Result<(), Errno> {
        if self.depth == 0 {
            // `..` at the new root: a symlink leads out of the sandbox.
            return Err(Errno::EXDEV);
        }
        sys::close(self.fds[self.depth]);
        self.depth -= 1;
        Ok(())
    }

    fn reset(&mut self) {
        while self.depth > 0 {
            sys::close(self.fds[self.depth]);
            self.depth -= 1;
        }
    }
}

/// What comes next on the way.
enum Step {
    /// Nothing: the walk is where the path leads.
    Arrived,
    Dot,
    DotDot,
    /// A name, copied NUL-terminated; whether it is the last one.
    Name {
        last: bool,
    },
}

/// The part of a path still to walk. Two buffers: a symlink's target is
/// written in front of what is left, into the one not in use.
struct Remaining {
    bufs: [[u8; PATH_BUF]; 2],
    cur: usize,
    pos: usize,
    len: usize,
}

impl Remaining {
    fn new(path: &[u8]) -> Result<Remaining, Errno> {
        if path.len() > PATH_BUF {
            return Err(Errno::ENAMETOOLONG);
        }
        let mut bufs = [[0u8; PATH_BUF]; 2];
        bufs[0][..path.len()].copy_from_slice(path);
        Ok(Remaining {
            bufs,
            cur: 0,
            pos: 0,
            len: path.len(),
        })
    }

    fn skip_slashes(&self, mut at: usize) -> usize {
        while at < self.len && self.bufs[self.cur][at] == b'/' {
            at += 1;
        }
        at
    }

    /// Takes the next component; a name is copied into `name`.
    fn next(&mut self, name: &mut [u8; NAME_BUF]) -> Result<Step, Errno> {
        let start = self.skip_slashes(self.pos);
        let buf = &self.bufs[self.cur];
        let mut end = start;
        while end < self.len && buf[end] != b'/' {
            end += 1;
        }
        self.pos = end;
        let comp = &buf[start..end];
        match comp {
            b"" => return Ok(Step::Arrived),
            b"." => return Ok(Step::Dot),
            b".." => return Ok(Step::DotDot),
            _ if comp.len() >= NAME_BUF => return Err(Errno::ENAMETOOLONG),
            _ => {}
        }
        name[..comp.len()].copy_from_slice(comp);
        name[comp.len()] = 0;
        Ok(Step::Name {
            last: self.skip_slashes(end) >= self.len,
        })
    }

    /// Puts `target` (a symlink's) in front of what is left to walk.
    fn splice(&mut self, target: &[u8]) -> Result<(), Errno> {
        let rest = self.len - self.pos;
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        if target.len() + 1 + rest > PATH_BUF {
            return Err(Errno::ENAMETOOLONG);
        }
        let (a, b) = self.bufs.split_at_mut(1);
        let (src, dst) = if self.cur == 0 {
            (&a[0], &mut b[0])
        } else {
            (&b[0], &mut a[0])
        };
        dst[..target.len()].copy_from_slice(target);
        dst[target.len()] = b'/';
        dst[target.len() + 1..target.len() + 1 + rest].copy_from_slice(&src[self.pos..self.len]);
        self.len = target.len() + 1 + rest;
        self.pos = 0;
        self.cur = 1 - self.cur;
        Ok(())
    }
}

fn openat_path(dir: RawFd, name: &[u8; NAME_BUF]) -> Result<RawFd, Errno> {
    // SAFETY: name is NUL-terminated (Remaining::next writes a NUL after
    // the component).
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr().cast(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 { Err(Errno::last()) } else { Ok(fd) }
}

/// A new `O_PATH` descriptor of the directory `dir` itself.
fn open_dot(dir: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: "." is NUL-terminated.
    let fd = unsafe { libc::openat(dir, c".".as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 { Err(Errno::last()) } else { Ok(fd) }
}

fn file_type(fd: RawFd) -> Result<libc::mode_t, Errno> {
    // SAFETY: an all-zero stat is valid to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into st; fd is an O_PATH descriptor, which fstat accepts.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(Errno::last());
    }
    Ok(st.st_mode & libc::S_IFMT)
}

fn create(dir: RawFd, name: &[u8; NAME_BUF], leaf: Leaf) -> Result<(), Errno> {
    match leaf {
        Leaf::Dir => {
            // SAFETY: name is NUL-terminated.
            if unsafe { libc::mkdirat(dir, name.as_ptr().cast(), 0o755) } < 0 {
                let e = Errno::last();
                if e != Errno::EEXIST {
                    return Err(e);
                }
            }
            Ok(())
        }
        Leaf::File => {
            // SAFETY: name is NUL-terminated.
            let fd = unsafe {
                libc::openat(
                    dir,
                    name.as_ptr().cast(),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_WRONLY
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o644 as libc::c_uint,
                )
            };
            if fd < 0 {
                let e = Errno::last();
                if e != Errno::EEXIST {
                    return Err(e);
                }
            } else {
                sys::close(fd);
            }
            Ok(())
        }
        Leaf::Nothing => Err(Errno::ENOENT),
    }
}

/// Opens the component `name` below `dir`, creating it as `leaf` says
/// when it is missing.
fn open_or_create(dir: RawFd, name: &[u8; NAME_BUF], leaf: Leaf) -> Result<RawFd, Errno> {
    match openat_path(dir, name) {
        Err(Errno::ENOENT) => {
            create(dir, name, leaf)?;
            openat_path(dir, name)
        }
        other => other,
    }
}

/// Reads the symlink `link` (and closes it) and puts its target in front
/// of what is left to walk; an absolute target starts again at the root.
fn follow(
    link: RawFd,
    rest: &mut Remaining,
    stack: &mut Stack,
    links: &mut usize,
) -> Result<(), Errno> {
    *links += 1;
    if *links > MAX_LINKS {
        sys::close(link);
        return Err(Errno::ELOOP);
    }
    let mut target = [0u8; PATH_BUF];
    // SAFETY: readlinkat with an empty path reads the link `link` refers
    // to; target is valid for PATH_BUF bytes.
    let n = unsafe { libc::readlinkat(link, c"".as_ptr(), target.as_mut_ptr().cast(), PATH_BUF) };
    sys::close(link);
    if n < 0 {
        return Err(Errno::last());
    }
    let target = &target[..n as usize];
    if target.first() == Some(&b'/') {
        // Absolute targets are interpreted in the root.
        stack.reset();
    }
    rest.splice(target)
}

/// Walks `path` from the root at the bottom of `stack` (see [`walk`]).
fn walk_from(
    stack: &mut Stack,
    path: &[u8],
    leaf: Leaf,
    symlinks: Symlinks,
) -> Result<RawFd, Errno> {
    let mut rest = Remaining::new(path)?;
    let mut name = [0u8; NAME_BUF];
    let mut links = 0usize;
    loop {
        let last = match rest.next(&mut name)? {
            // The path named a directory we are in: hand out a descriptor.
            Step::Arrived => return open_dot(stack.top()),
            Step::Dot => continue,
            Step::DotDot if symlinks == Symlinks::Refuse => return Err(Errno::EINVAL),
            Step::DotDot => {
                stack.pop()?;
                continue;
            }
            Step::Name { last } => last,
        };
        let between = if symlinks == Symlinks::OnReadOnlyMounts {
            Leaf::Nothing
        } else {
            Leaf::Dir
        };
        let fd = open_or_create(stack.top(), &name, if last { leaf } else { between })?;
        let kind = match file_type(fd) {
            Ok(kind) => kind,
            Err(e) => {
                sys::close(fd);
                return Err(e);
            }
        };
        match kind {
            libc::S_IFLNK if symlinks == Symlinks::Refuse => {
                sys::close(fd);
                return Err(Errno::ELOOP);
            }
            libc::S_IFLNK
                if symlinks == Symlinks::OnReadOnlyMounts
                    && !sys::on_read_only_mount(stack.top()).unwrap_or(false) =>
            {
                sys::close(fd);
                return Err(Errno::ELOOP);
            }
            libc::S_IFLNK => follow(fd, &mut rest, stack, &mut links)?,
            _ if last => return Ok(fd),
            libc::S_IFDIR => stack.push(fd)?,
            _ => {
                sys::close(fd);
                return Err(Errno::ENOTDIR);
            }
        }
    }
}

/// Walks `path` from the directory `root` (which stays the caller's), one
/// component at a time, never following a symlink but as `symlinks` says;
/// missing directories on the way are made, and the last component as
/// `leaf` says. Returns an `O_PATH` descriptor of what the path names.
fn walk(root: RawFd, path: &[u8], leaf: Leaf, symlinks: Symlinks) -> Result<RawFd, Errno> {
    let mut stack = Stack::new(root);
    let result = walk_from(&mut stack, path, leaf, symlinks);
    stack.reset();
    result
}

/// Returns an `O_PATH` descriptor for `path` (absolute, inside `root`),
/// following symlinks inside the root, creating missing intermediate
/// directories and, as `leaf` says, the last component.
pub fn open_in_root(root: RawFd, path: &[u8], leaf: Leaf) -> Result<RawFd, Errno> {
    walk(root, path, leaf, Symlinks::InRoot)
}

/// Returns an `O_PATH` descriptor for the path of a Landlock rule
/// (absolute, inside `root`), creating nothing and following only the
/// symlinks that lie on read-only mounts: a symlink on a writable mount
/// may be the payload's, put in place of the rule's path to point the rule
/// at a wider directory (`hutch exec` applies the rules long after the
/// payload started), so it fails with `ELOOP`.
pub fn open_rule_path(root: RawFd, path: &[u8]) -> Result<RawFd, Errno> {
    walk(root, path, Leaf::Nothing, Symlinks::OnReadOnlyMounts)
}

/// Returns a directory descriptor for the parent of `path` (created if
/// missing) and the last component, which is not followed.
pub fn open_parent(root: RawFd, path: &[u8]) -> Result<(RawFd, &[u8]), Errno> {
    let trimmed = trim_trailing_slashes(path);
    let split = trimmed.iter().rposition(|&c| c == b'/').unwrap_or(0);
    let (parent, leaf) = (&trimmed[..split], &trimmed[split + 1..]);
    if leaf.is_empty() || leaf == b"." || leaf == b".." {
        return Err(Errno::EINVAL);
    }
    let dir = open_in_root(root, parent, Leaf::Dir)?;
    Ok((dir, leaf))
}

fn trim_trailing_slashes(p: &[u8]) -> &[u8] {
    let mut end = p.len();
    while end > 1 && p[end - 1] == b'/' {
        end -= 1;
    }
    &p[..end]
}

/// Copies `name` into a NUL-terminated buffer.
pub fn c_name(name: &[u8]) -> Result<[u8; NAME_BUF], Errno> {
    if name.len() >= NAME_BUF || name.contains(&0) {
        return Err(Errno::ENAMETOOLONG);
    }
    let mut out = [0u8; NAME_BUF];
    out[..name.len()].copy_from_slice(name);
    Ok(out)
}

/// Opens the absolute `path` as an `O_PATH` directory without following
/// any symlink (or magic link) on the way: a symlink in any component
/// fails with `ELOOP`, a `..` with `EINVAL`.
fn open_dir_no_symlinks(path: &CStr) -> Result<RawFd, Errno> {
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
    let resolve = sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS;
    match sys::openat2(libc::AT_FDCWD, path, flags, 0, resolve) {
        // No openat2 (or a seccomp policy around hutch refuses it): walk
        // the path one component at a time instead.
        Err(Errno::ENOSYS) | Err(Errno::EPERM) => {}
        other => return other,
    }
    if path.to_bytes().first() != Some(&b'/') {
        return Err(Errno::EINVAL);
    }
    // SAFETY: "/" is NUL-terminated.
    let root = unsafe { libc::open(c"/".as_ptr(), flags) };
    if root < 0 {
        return Err(Errno::last());
    }
    let found = walk(root, path.to_bytes(), Leaf::Nothing, Symlinks::Refuse);
    sys::close(root);
    let fd = found?;
    match file_type(fd) {
        Ok(libc::S_IFDIR) => Ok(fd),
        other => {
            sys::close(fd);
            Err(other.err().unwrap_or(Errno::ENOTDIR))
        }
    }
}

/// Opens the directory the launcher checked and pins (see
/// `safe_fs::Pinned`): `path` without following any symlink, and only if
/// it is still the inode `(dev, ino)`; `ESTALE` if something else took its
/// place.
pub fn open_pinned_dir(path: &CStr, dev: u64, ino: u64) -> Result<RawFd, Errno> {
    let fd = open_dir_no_symlinks(path)?;
    match sys::dev_ino(fd) {
        Ok(id) if id == (dev, ino) => Ok(fd),
        other => {
            sys::close(fd);
            Err(other.err().unwrap_or(Errno::ESTALE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{MetadataExt, symlink};
    use std::path::Path;

    fn root() -> (tempfile::TempDir, std::fs::File) {
        let d = tempfile::tempdir().unwrap();
        let f = std::fs::File::open(d.path()).unwrap();
        (d, f)
    }

    fn path_of(fd: RawFd) -> String {
        std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .unwrap()
            .display()
            .to_string()
    }

    fn c(p: &Path) -> std::ffi::CString {
        std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
    }

    #[test]
    fn a_rule_path_follows_no_symlink_on_a_writable_mount_and_creates_nothing() {
        let (d, f) = root();
        std::fs::create_dir_all(d.path().join("work/out")).unwrap();
        let fd = open_rule_path(f.as_raw_fd(), b"/work/out").unwrap();
        assert_eq!(path_of(fd), d.path().join("work/out").display().to_string());
        sys::close(fd);
        // The temporary directory is on a writable mount: a symlink there,
        // last or on the way, is refused (the control: the same path is
        // followed by the destination walker).
        std::fs::remove_dir(d.path().join("work/out")).unwrap();
        symlink("/", d.path().join("work/out")).unwrap();
        symlink("work", d.path().join("link")).unwrap();
        for path in [&b"/work/out"[..], b"/link/out", b"/work/out/work"] {
            assert_eq!(open_rule_path(f.as_raw_fd(), path), Err(Errno::ELOOP));
            let fd = open_in_root(f.as_raw_fd(), path, Leaf::Nothing).unwrap();
            sys::close(fd);
        }
        assert_eq!(
            open_rule_path(f.as_raw_fd(), b"/missing/dir"),
            Err(Errno::ENOENT)
        );
        assert!(!d.path().join("missing").exists(), "nothing is created");
    }

    #[test]
    fn creates_missing_directories_and_leaf() {
        let (d, f) = root();
        let fd = open_in_root(f.as_raw_fd(), b"/a/b/c", Leaf::Dir).unwrap();
        assert!(d.path().join("a/b/c").is_dir());
        sys::close(fd);
        let fd = open_in_root(f.as_raw_fd(), b"/a/file", Leaf::File).unwrap();
        assert!(d.path().join("a/file").is_file());
        sys::close(fd);
    }

    #[test]
    fn absolute_symlinks_resolve_inside_the_root() {
        let (d, f) = root();
        std::fs::create_dir_all(d.path().join("usr/bin")).unwrap();
        symlink("/usr/bin", d.path().join("bin")).unwrap();
        let fd = open_in_root(f.as_raw_fd(), b"/bin/x", Leaf::Dir).unwrap();
        assert_eq!(
            path_of(fd),
            d.path().join("usr/bin/x").display().to_string()
        );
        sys::close(fd);
    }

    #[test]
    fn symlinks_climbing_out_are_refused() {
        let (d, f) = root();
        std::fs::create_dir_all(d.path().join("a")).unwrap();
        symlink("../../../../etc", d.path().join("a/up")).unwrap();
        assert_eq!(
            open_in_root(f.as_raw_fd(), b"/a/up/passwd", Leaf::Nothing),
            Err(Errno::EXDEV)
        );
        symlink("..", d.path().join("dots")).unwrap();
        assert_eq!(
            open_in_root(f.as_raw_fd(), b"/dots", Leaf::Nothing),
            Err(Errno::EXDEV)
        );
    }

    #[test]
    fn relative_symlinks_within_the_root_work() {
        let (d, f) = root();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        symlink("../a/b", d.path().join("a/link")).unwrap();
        let fd = open_in_root(f.as_raw_fd(), b"/a/link", Leaf::Nothing).unwrap();
        assert_eq!(path_of(fd), d.path().join("a/b").display().to_string());
        sys::close(fd);
    }

    #[test]
    fn loops_and_files_in_the_way() {
        let (d, f) = root();
        symlink("/loop", d.path().join("loop")).unwrap();
        assert_eq!(
            open_in_root(f.as_raw_fd(), b"/loop/x", Leaf::Dir),
            Err(Errno::ELOOP)
        );
        std::fs::write(d.path().join("file"), "x").unwrap();
        assert_eq!(
            open_in_root(f.as_raw_fd(), b"/file/x", Leaf::Dir),
            Err(Errno::ENOTDIR)
        );
    }

    #[test]
    fn parent_and_leaf() {
        let (d, f) = root();
        let (dir, leaf) = open_parent(f.as_raw_fd(), b"/x/y/z").unwrap();
        assert_eq!(leaf, b"z");
        assert_eq!(path_of(dir), d.path().join("x/y").display().to_string());
        sys::close(dir);
    }

    /// The walk `open_pinned_dir` falls back to without openat2: the same
    /// answers as openat2 gives, from the same routine as `open_in_root`.
    #[test]
    fn without_openat2_a_host_path_is_walked_refusing_every_symlink() {
        let (d, _) = root();
        std::fs::create_dir_all(d.path().join("real/vol")).unwrap();
        symlink(d.path().join("real"), d.path().join("link")).unwrap();
        let walk_host = |p: &Path| {
            let slash = std::fs::File::open("/").unwrap();
            walk(
                slash.as_raw_fd(),
                p.as_os_str().as_bytes(),
                Leaf::Nothing,
                Symlinks::Refuse,
            )
        };
        let fd = walk_host(&d.path().join("real/vol")).unwrap();
        assert_eq!(path_of(fd), d.path().join("real/vol").display().to_string());
        sys::close(fd);
        assert_eq!(walk_host(&d.path().join("link/vol")), Err(Errno::ELOOP));
        assert_eq!(
            walk_host(&d.path().join("real/../real")),
            Err(Errno::EINVAL)
        );
        assert_eq!(walk_host(&d.path().join("real/none")), Err(Errno::ENOENT));
        // Nothing is made on the way.
        assert!(!d.path().join("real/none").exists());
        // The same path through the kernel's openat2.
        let e = open_dir_no_symlinks(&c(&d.path().join("link/vol"))).unwrap_err();
        assert_eq!(e, Errno::ELOOP);
    }

    /// A pinned directory is opened only if it is the same inode: a
    /// directory swapped in after the check (as a race between the
    /// launcher and the child would) or a symlink is refused.
    #[test]
    fn a_pinned_directory_is_opened_only_if_it_is_the_same_inode() {
        let d = tempfile::tempdir().unwrap();
        let upper = d.path().join("upper");
        std::fs::create_dir(&upper).unwrap();
        let m = std::fs::metadata(&upper).unwrap();
        let (dev, ino) = (m.dev(), m.ino());
        let fd = open_pinned_dir(&c(&upper), dev, ino).unwrap();
        assert_eq!(sys::dev_ino(fd).unwrap(), (dev, ino));
        sys::close(fd);
        // Swapped: the checked directory moved away, another in its place.
        // (The launcher's pin keeps the old inode, so its number is not
        // reused: emulated here by keeping the moved directory.)
        std::fs::rename(&upper, d.path().join("moved")).unwrap();
        std::fs::create_dir(&upper).unwrap();
        assert_eq!(open_pinned_dir(&c(&upper), dev, ino), Err(Errno::ESTALE));
        // A symlink to the checked directory is not followed.
        std::fs::remove_dir(&upper).unwrap();
        symlink(d.path().join("moved"), &upper).unwrap();
        assert_eq!(open_pinned_dir(&c(&upper), dev, ino), Err(Errno::ELOOP));
        // Control: by its own path, the moved directory is still the one.
        let fd = open_pinned_dir(&c(&d.path().join("moved")), dev, ino).unwrap();
        sys::close(fd);
    }
}
