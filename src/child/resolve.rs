//! Resolving destinations inside the new root, without ever leaving it.
//!
//! Paths are walked one component at a time with `O_PATH|O_NOFOLLOW` relative
//! to directory descriptors. A symlink met on the way is read and resolved *in
//! the new root* (an absolute target restarts at the new root, not the host's);
//! a target that climbs above the new root is refused with `EXDEV`. Missing
//! directories can be created on the way. Everything uses fixed buffers: this
//! runs between clone and exec.

use std::os::fd::RawFd;

use nix::errno::Errno;

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

struct Stack {
    fds: [RawFd; MAX_DEPTH],
    depth: usize,
}

impl Stack {
    fn top(&self) -> RawFd {
        self.fds[self.depth]
    }

    fn push(&mut self, fd: RawFd) -> Result<(), Errno> {
        if self.depth + 1 >= MAX_DEPTH {
            crate::sys::close(fd);
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
        crate::sys::close(self.fds[self.depth]);
        self.depth -= 1;
        Ok(())
    }

    fn reset(&mut self) {
        while self.depth > 0 {
            crate::sys::close(self.fds[self.depth]);
            self.depth -= 1;
        }
    }
}

fn openat_path(dir: RawFd, name: &[u8; NAME_BUF]) -> Result<RawFd, Errno> {
    // SAFETY: name is NUL-terminated (the caller writes a NUL after the component).
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr().cast(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
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
                crate::sys::close(fd);
            }
            Ok(())
        }
        Leaf::Nothing => Err(Errno::ENOENT),
    }
}

/// Returns an `O_PATH` descriptor for `path` (absolute, inside `root`),
/// following symlinks inside the root, creating missing intermediate
/// directories and, as `leaf` says, the last component.
pub fn open_in_root(root: RawFd, path: &[u8], leaf: Leaf) -> Result<RawFd, Errno> {
    let mut bufs = [[0u8; PATH_BUF]; 2];
    let mut cur = 0usize;
    if path.len() > PATH_BUF {
        return Err(Errno::ENAMETOOLONG);
    }
    bufs[0][..path.len()].copy_from_slice(path);
    let mut len = path.len();
    let mut pos = 0usize;
    let mut links = 0usize;
    let mut stack = Stack {
        fds: [-1; MAX_DEPTH],
        depth: 0,
    };
    stack.fds[0] = root;
    let mut name = [0u8; NAME_BUF];

    let result = loop {
        let buf = &bufs[cur];
        while pos < len && buf[pos] == b'/' {
            pos += 1;
        }
        if pos >= len {
            // The path named a directory we are in: hand out a descriptor for it.
            // SAFETY: "." is NUL-terminated.
            let fd =
                unsafe { libc::openat(stack.top(), c".".as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
            break if fd < 0 { Err(Errno::last()) } else { Ok(fd) };
        }
        let start = pos;
        while pos < len && buf[pos] != b'/' {
            pos += 1;
        }
        let comp = &buf[start..pos];
        let mut after = pos;
        while after < len && buf[after] == b'/' {
            after += 1;
        }
        let is_last = after >= len;
        if comp == b"." {
            continue;
        }
        if comp == b".." {
            if let Err(e) = stack.pop() {
                break Err(e);
            }
            continue;
        }
        if comp.len() >= NAME_BUF {
            break Err(Errno::ENAMETOOLONG);
        }
        name[..comp.len()].copy_from_slice(comp);
        name[comp.len()] = 0;

        let fd = match openat_path(stack.top(), &name) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                let want = if is_last { leaf } else { Leaf::Dir };
                if let Err(e) = create(stack.top(), &name, want) {
                    break Err(e);
                }
                match openat_path(stack.top(), &name) {
                    Ok(fd) => fd,
                    Err(e) => break Err(e),
                }
            }
            Err(e) => break Err(e),
        };
        let kind = match file_type(fd) {
            Ok(k) => k,
            Err(e) => {
                crate::sys::close(fd);
                break Err(e);
            }
        };
        if kind == libc::S_IFLNK {
            links += 1;
            if links > MAX_LINKS {
                crate::sys::close(fd);
                break Err(Errno::ELOOP);
            }
            let other = 1 - cur;
            let mut target = [0u8; PATH_BUF];
            // SAFETY: readlinkat with an empty path reads the link fd refers
            // to; target is valid for PATH_BUF bytes.
            let n =
                unsafe { libc::readlinkat(fd, c"".as_ptr(), target.as_mut_ptr().cast(), PATH_BUF) };
            crate::sys::close(fd);
            if n < 0 {
                break Err(Errno::last());
            }
            let n = n as usize;
            let rest = len - pos;
            if n == 0 || n + 1 + rest > PATH_BUF {
                break Err(if n == 0 {
                    Errno::ENOENT
                } else {
                    Errno::ENAMETOOLONG
                });
            }
            if target[0] == b'/' {
                // Absolute targets are interpreted in the new root.
                stack.reset();
            }
            let (a, b) = bufs.split_at_mut(1);
            let (src, dst) = if cur == 0 {
                (&a[0], &mut b[0])
            } else {
                (&b[0], &mut a[0])
            };
            dst[..n].copy_from_slice(&target[..n]);
            dst[n] = b'/';
            dst[n + 1..n + 1 + rest].copy_from_slice(&src[pos..len]);
            len = n + 1 + rest;
            pos = 0;
            cur = other;
            continue;
        }
        if kind == libc::S_IFDIR {
            if is_last {
                break Ok(fd);
            }
            if let Err(e) = stack.push(fd) {
                break Err(e);
            }
            continue;
        }
        if is_last {
            break Ok(fd);
        }
        crate::sys::close(fd);
        break Err(Errno::ENOTDIR);
    };
    stack.reset();
    result
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::symlink;

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

    #[test]
    fn creates_missing_directories_and_leaf() {
        let (d, f) = root();
        let fd = open_in_root(f.as_raw_fd(), b"/a/b/c", Leaf::Dir).unwrap();
        assert!(d.path().join("a/b/c").is_dir());
        crate::sys::close(fd);
        let fd = open_in_root(f.as_raw_fd(), b"/a/file", Leaf::File).unwrap();
        assert!(d.path().join("a/file").is_file());
        crate::sys::close(fd);
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
        crate::sys::close(fd);
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
        crate::sys::close(fd);
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
        crate::sys::close(dir);
    }
}
