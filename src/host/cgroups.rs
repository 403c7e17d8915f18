//! What this host offers for cgroup limits, read from /proc and /sys
//! (mount table, our own cgroups, the D-Bus socket of the systemd manager).
//!
//! Only file reads and `access(2)`: probing happens before clone, in the
//! single-threaded launcher, and only for profiles with `[limits]`. The
//! result is plain data, so backend selection is unit-tested on fixtures.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::dbus::{self, Socket};

/// A cgroup directory and what it offers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CgroupDir {
    /// The cgroup's path inside the hierarchy (`/user.slice/...`).
    pub path: String,
    /// `cgroup.controllers`: what its parent lets it use.
    pub controllers: Vec<String>,
    /// `cgroup.subtree_control`: what its children get.
    pub subtree: Vec<String>,
    /// We may create children in it and move processes through it.
    pub writable: bool,
}

/// The cgroup v2 hierarchy as this process sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct V2Host {
    /// Where `cgroup2` is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid hosts).
    pub mount: PathBuf,
    /// No v1 controller hierarchy is mounted: systemd's "unified" layout.
    pub unified: bool,
    /// Our own cgroup (`0::` in /proc/self/cgroup).
    pub own: String,
    /// The parent of our own cgroup, if we are not at the top.
    pub parent: Option<CgroupDir>,
    /// The top of the hierarchy we can see.
    pub top: CgroupDir,
    /// The systemd user manager's cgroup (`user@UID.service`), if it exists.
    pub user_manager: Option<CgroupDir>,
}

/// One mounted cgroup v1 hierarchy with a controller hutch uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct V1Hierarchy {
    pub mount: PathBuf,
    /// Controllers bound to it (`cpu`, `cpuacct`, ...).
    pub controllers: Vec<String>,
    /// Our cgroup in it.
    pub own: String,
    /// We may create a cgroup under ours.
    pub writable: bool,
    /// Files of interest that exist in our cgroup there (swap accounting,
    /// blkio weights), since v1 features depend on kernel options.
    pub files: Vec<String>,
}

/// The systemd manager's bus, when its socket exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bus {
    /// A D-Bus address (`unix:path=/run/user/1000/bus`).
    pub address: String,
    /// The system manager (root) rather than the user's manager.
    pub system: bool,
}

/// Everything backend selection needs to know about the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CgroupHost {
    pub uid: u32,
    pub v2: Option<V2Host>,
    /// Why there is no usable v2 view, when there is none.
    pub v2_missing: Option<String>,
    pub v1: Vec<V1Hierarchy>,
    pub bus: Option<Bus>,
    /// Why there is no bus, when there is none.
    pub bus_missing: Option<String>,
}

/// v1 files whose presence decides what a v1 hierarchy can do.
const V1_FILES: &[&str] = &[
    "memory.memsw.limit_in_bytes",
    "blkio.weight",
    "blkio.bfq.weight",
    "cpu.cfs_quota_us",
    "cpu.shares",
];

/// The controllers hutch can use in v1.
const V1_CONTROLLERS: &[&str] = &["memory", "cpu", "pids", "blkio"];

impl CgroupHost {
    /// Probes the running system for `uid`, whose runtime directory and
    /// D-Bus address come from the caller's environment.
    pub fn probe(uid: u32, env: &dyn Fn(&str) -> Option<String>) -> CgroupHost {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mounts = parse_mountinfo(&mountinfo);
        let own = parse_proc_cgroup(&own);
        let mut host = CgroupHost {
            uid,
            ..Default::default()
        };

        let v1_mounted = mounts
            .iter()
            .any(|m| m.fstype == "cgroup" && m.controllers.iter().any(|c| !c.starts_with("name=")));
        let v2_mount = mounts.iter().find(|m| m.fstype == "cgroup2");
        let v2_own = own.iter().find(|(id, _, _)| *id == 0).map(|(_, _, p)| p);
        match (v2_mount, v2_own) {
            (None, _) => host.v2_missing = Some("no cgroup2 filesystem is mounted".into()),
            (Some(_), None) => {
                host.v2_missing = Some("/proc/self/cgroup has no cgroup v2 entry".into())
            }
            (Some(_), Some(p)) if p.starts_with("/..") || !p.starts_with('/') => {
                host.v2_missing = Some(format!(
                    "hutch's cgroup {p} lies outside the cgroup hierarchy mounted here"
                ))
            }
            (Some(m), Some(p)) => {
                let mount = m.mount_point.clone();
                let dir = |path: &str| read_dir_info(&mount, path);
                let parent = parent_of(p).map(|pp| dir(&pp));
                let user_manager_path = format!("/user.slice/user-{uid}.slice/user@{uid}.service");
                let user_manager = (uid != 0 && cgroup_path(&mount, &user_manager_path).is_dir())
                    .then(|| dir(&user_manager_path));
                host.v2 = Some(V2Host {
                    unified: !v1_mounted,
                    own: p.clone(),
                    parent,
                    top: dir("/"),
                    user_manager,
                    mount,
                });
            }
        }

        for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
            if !m
                .controllers
                .iter()
                .any(|c| V1_CONTROLLERS.contains(&c.as_str()))
            {
                continue;
            }
            let Some((_, _, own_path)) = own
                .iter()
                .find(|(id, ctrls, _)| *id != 0 && ctrls.iter().any(|c| m.controllers.contains(c)))
            else {
                continue;
            };
            let dir = cgroup_path(&m.mount_point, own_path);
            host.v1.push(V1Hierarchy {
                mount: m.mount_point.clone(),
                controllers: m.controllers.clone(),
                own: own_path.clone(),
                writable: writable(&dir) && writable(&dir.join("cgroup.procs")),
                files: V1_FILES
                    .iter()
                    .filter(|f| dir.join(f).exists())
                    .map(|f| f.to_string())
                    .collect(),
            });
        }

        let (address, system) = if uid == 0 {
            (
                env("DBUS_SYSTEM_BUS_ADDRESS")
                    .unwrap_or_else(|| "unix:path=/run/dbus/system_bus_socket".into()),
                true,
            )
        } else {
            let runtime = env("XDG_RUNTIME_DIR")
                .filter(|d| d.starts_with('/'))
                .unwrap_or_else(|| format!("/run/user/{uid}"));
            (
                env("DBUS_SESSION_BUS_ADDRESS")
                    .filter(|a| !a.is_empty())
                    .unwrap_or_else(|| format!("unix:path={runtime}/bus")),
                false,
            )
        };
        if let Some(missing) = bus_missing(&address, system) {
            host.bus_missing = Some(missing);
        } else {
            host.bus = Some(Bus { address, system });
        }
        host
    }
}

/// Why the bus at `address` cannot be reached, if the probe can tell
/// without connecting: the client ([`dbus::Connection::open`]) would not
/// know where to connect, or the socket file it would connect to is not
/// there. An abstract socket cannot be checked without connecting.
fn bus_missing(address: &str, system: bool) -> Option<String> {
    let path = match dbus::address::parse(address) {
        Err(e) => return Some(e.to_string()),
        Ok(Socket::Abstract(_)) => return None,
        Ok(Socket::Path(path)) => path,
    };
    if Path::new(OsStr::from_bytes(&path)).exists() {
        return None;
    }
    let path = String::from_utf8_lossy(&path);
    Some(if system {
        format!("no D-Bus socket at {path}: the system bus is not running")
    } else {
        format!(
            "no D-Bus socket at {path}: no systemd user manager runs for you (it starts with a login session through pam_systemd, or at boot after `loginctl enable-linger`)"
        )
    })
}

/// `mount` joined with a cgroup path (`/a/b`).
pub fn cgroup_path(mount: &Path, path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        mount.to_path_buf()
    } else {
        mount.join(rel)
    }
}

/// The parent of a cgroup path; `None` for the top.
pub fn parent_of(path: &str) -> Option<String> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return None;
    }
    match trimmed.rfind('/') {
        Some(0) => Some("/".into()),
        Some(i) => Some(trimmed[..i].to_string()),
        None => None,
    }
}

fn read_dir_info(mount: &Path, path: &str) -> CgroupDir {
    let dir = cgroup_path(mount, path);
    let list = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    CgroupDir {
        path: path.to_string(),
        controllers: list("cgroup.controllers"),
        subtree: list("cgroup.subtree_control"),
        writable: writable(&dir)
            && writable(&dir.join("cgroup.procs"))
            && writable(&dir.join("cgroup.subtree_control")),
    }
}

fn writable(p: &Path) -> bool {
    nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok()
}

#[derive(Debug, PartialEq)]
struct Mount {
    mount_point: PathBuf,
    fstype: String,
    /// For `cgroup` (v1): the controllers from the super options.
    controllers: Vec<String>,
}

/// The cgroup mounts in /proc/self/mountinfo.
fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(mount_point), Some(fstype)) = (left.get(4), right.first()) else {
            continue;
        };
        if *fstype != "cgroup" && *fstype != "cgroup2" {
            continue;
        }
        let controllers = if *fstype == "cgroup" {
            right
                .get(2)
                .map(|opts| {
                    opts.split(',')
                        .filter(|o| {
                            V1_CONTROLLERS.contains(o) || o.starts_with("name=") || *o == "cpuacct"
                        })
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mount_point = PathBuf::from(unescape_octal(mount_point));
        // A later mount on the same point hides an earlier one.
        out.retain(|m: &Mount| m.mount_point != mount_point);
        out.push(Mount {
            mount_point,
            fstype: fstype.to_string(),
            controllers,
        });
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` (three
/// octal digits); anything else is kept as it is.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(v) = octal_byte(b.get(i + 1..i + 4))
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A byte written as three octal digits (at most `\377`).
fn octal_byte(digits: Option<&[u8]>) -> Option<u8> {
    let digits = digits.filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))?;
    u8::from_str_radix(std::str::from_utf8(digits).ok()?, 8).ok()
}

/// `/proc/PID/cgroup` lines: (hierarchy id, controllers, path).
pub fn parse_proc_cgroup(text: &str) -> Vec<(u32, Vec<String>, String)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let id = parts.next()?.parse().ok()?;
            let ctrls = parts
                .next()?
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Some((id, ctrls, parts.next()?.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 22 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory
32 25 0:30 / /sys/fs/cgroup/pids rw,nosuid shared:16 - cgroup cgroup rw,pids
";

    #[test]
    fn mountinfo_finds_v1_and_v2() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].fstype, "cgroup2");
        assert_eq!(m[0].mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(m[2].controllers, ["cpu", "cpuacct"]);
        assert_eq!(m[1].controllers, ["name=systemd"]);
        let escaped = parse_mountinfo("1 0 0:1 / /a\\040b rw - cgroup2 cgroup2 rw\n");
        assert_eq!(escaped[0].mount_point, PathBuf::from("/a b"));
        // Only three octal digits make an escape.
        assert_eq!(unescape_octal(r"/a\134b\+77\8\04"), r"/a\b\+77\8\04");
    }

    #[test]
    fn proc_cgroup_lines() {
        let c = parse_proc_cgroup("4:memory:/a/b\n1:cpu,cpuacct:/\n0::/user.slice/x.scope\n");
        assert_eq!(c[0], (4, vec!["memory".into()], "/a/b".into()));
        assert_eq!(c[1].1, ["cpu", "cpuacct"]);
        assert_eq!(c[2], (0, vec![], "/user.slice/x.scope".into()));
    }

    #[test]
    fn paths() {
        assert_eq!(parent_of("/a/b"), Some("/a".into()));
        assert_eq!(parent_of("/a"), Some("/".into()));
        assert_eq!(parent_of("/"), None);
        assert_eq!(
            cgroup_path(Path::new("/sys/fs/cgroup"), "/"),
            PathBuf::from("/sys/fs/cgroup")
        );
        assert_eq!(
            cgroup_path(Path::new("/sys/fs/cgroup"), "/a/b"),
            PathBuf::from("/sys/fs/cgroup/a/b")
        );
    }

    /// The probe reads addresses with the client's parser: it accepts what
    /// the client connects to and refuses what the client cannot use.
    #[test]
    fn bus_addresses_as_the_client_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let bus = dir.path().join("bus");
        std::fs::write(&bus, "").unwrap();
        let bus = bus.display();
        // Accepted: an abstract socket (which it cannot check), and
        // addresses whose first usable entry is there. The old parser took
        // the first entry's `path=` only, and called the last two missing.
        for ok in [
            "unix:abstract=/tmp/dbus-x".to_string(),
            format!("unix:guid=ab,path={bus}"),
            format!("tcp:host=h,port=1;unix:path={bus}"),
            format!("unix:path=%zz;unix:path={bus}"),
            "unix:path=;unix:abstract=x;unix:path=/nonexistent".to_string(),
        ] {
            assert_eq!(bus_missing(&ok, false), None, "{ok}");
        }
        // Missing: the socket file the client would connect to, escapes
        // undone; or no entry the client can connect to at all.
        let e = bus_missing("unix:guid=x,path=/nonexistent/a%20b;tcp:host=h", false).unwrap();
        assert!(
            e.starts_with("no D-Bus socket at /nonexistent/a b: no systemd user manager"),
            "{e}"
        );
        let e = bus_missing("unix:path=/nonexistent", true).unwrap();
        assert!(e.ends_with("the system bus is not running"), "{e}");
        for unusable in ["tcp:host=h,port=1", "unix:tmpdir=/tmp", "unix:path=%4"] {
            let e = bus_missing(unusable, false).unwrap();
            assert!(e.starts_with("unsupported D-Bus address"), "{e}");
        }
    }

    #[test]
    fn probing_this_machine_does_not_fail() {
        let h = CgroupHost::probe(nix::unistd::getuid().as_raw(), &|_| None);
        assert!(h.v2.is_some() || h.v2_missing.is_some());
        assert!(h.bus.is_some() || h.bus_missing.is_some());
    }
}
