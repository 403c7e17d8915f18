//! cgroups hutch creates itself: one directory in the cgroup v2 hierarchy
//! (delegated to the user, or anywhere as root), or one per v1 hierarchy
//! (root only). Also the file values both these and the systemd backend are
//! checked against.

use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{CgroupError, Events};
use crate::host::cgroups;
use crate::plan::limits::{CPU_PERIOD_US, Key, LimitsPlan};

/// What each limit writes in cgroup v2, in order: (key, file, value).
pub fn v2_files(plan: &LimitsPlan, skip: &[Key]) -> Vec<(Key, &'static str, String)> {
    let mut out = Vec::new();
    for k in plan.keys() {
        if skip.contains(&k) {
            continue;
        }
        let (file, value) = match k {
            Key::Memory => ("memory.max", plan.memory.unwrap_or(0).to_string()),
            Key::Swap => ("memory.swap.max", plan.swap.unwrap_or(0).to_string()),
            Key::Cpu => (
                "cpu.max",
                format!(
                    "{} {CPU_PERIOD_US}",
                    plan.cpu_quota_per_period().unwrap_or(CPU_PERIOD_US)
                ),
            ),
            Key::CpuWeight => ("cpu.weight", plan.cpu_weight.unwrap_or(100).to_string()),
            Key::Pids => ("pids.max", plan.pids.unwrap_or(0).to_string()),
            Key::IoWeight => (
                "io.weight",
                format!("default {}", plan.io_weight.unwrap_or(100)),
            ),
        };
        out.push((k, file, value));
    }
    out
}

/// cgroup v1's cpu.shares for a v2 cpu weight (100 ↔ 1024, as systemd maps them).
pub fn cpu_shares(weight: u64) -> u64 {
    (weight * 1024 / 100).clamp(2, 262_144)
}

/// cgroup v1's blkio weight for a v2 io weight (100 ↔ 500, as systemd maps them).
pub fn blkio_weight(weight: u64) -> u64 {
    (weight * 500 / 100).clamp(10, 1000)
}

/// What each limit writes in cgroup v1, in order: (hierarchy, file, value).
/// `blkio_file` is the weight file the blkio hierarchy has.
pub fn v1_files(
    plan: &LimitsPlan,
    skip: &[Key],
    blkio_file: &'static str,
) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    for k in plan.keys() {
        if skip.contains(&k) {
            continue;
        }
        match k {
            Key::Memory => out.push((
                "memory",
                "memory.limit_in_bytes",
                plan.memory.unwrap_or(0).to_string(),
            )),
            Key::Swap => {
                // Only with memory (checked when the backend was chosen):
                // v1 limits memory plus swap.
                let total = plan
                    .memory
                    .unwrap_or(0)
                    .saturating_add(plan.swap.unwrap_or(0));
                out.push(("memory", "memory.memsw.limit_in_bytes", total.to_string()));
            }
            Key::Cpu => {
                out.push(("cpu", "cpu.cfs_period_us", CPU_PERIOD_US.to_string()));
                out.push((
                    "cpu",
                    "cpu.cfs_quota_us",
                    plan.cpu_quota_per_period().unwrap_or(0).to_string(),
                ));
            }
            Key::CpuWeight => out.push((
                "cpu",
                "cpu.shares",
                cpu_shares(plan.cpu_weight.unwrap_or(100)).to_string(),
            )),
            Key::Pids => out.push(("pids", "pids.max", plan.pids.unwrap_or(0).to_string())),
            Key::IoWeight => out.push((
                "blkio",
                blkio_file,
                blkio_weight(plan.io_weight.unwrap_or(100)).to_string(),
            )),
        }
    }
    out
}

fn write(what: &'static str, path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|e| CgroupError::io(what, path, e))
}

/// A cgroup (v2) or set of cgroups (v1) hutch created for one sandbox.
#[derive(Debug)]
pub struct FsCgroup {
    dirs: Vec<PathBuf>,
    v2: bool,
}

impl FsCgroup {
    /// Creates `parent/name` in the v2 hierarchy at `mount`, gives it the
    /// controllers (enabling them in `parent` if needed) and writes the limits.
    pub fn create_v2(
        mount: &Path,
        parent: &str,
        name: &str,
        plan: &LimitsPlan,
        skip: &[Key],
    ) -> Result<FsCgroup, CgroupError> {
        let parent_dir = cgroups::cgroup_path(mount, parent);
        let enabled =
            std::fs::read_to_string(parent_dir.join("cgroup.subtree_control")).unwrap_or_default();
        let enable: Vec<String> = plan
            .controllers(skip)
            .into_iter()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .map(|c| format!("+{c}"))
            .collect();
        if !enable.is_empty() {
            let path = parent_dir.join("cgroup.subtree_control");
            std::fs::write(&path, enable.join(" ")).map_err(|e| {
                let why = match e.raw_os_error() {
                    Some(libc::EBUSY) => format!(
                        "{} has processes of its own, and cgroup v2 gives controllers only to the children of cgroups without processes",
                        parent_dir.display()
                    ),
                    Some(libc::ENOENT) | Some(libc::EINVAL) => format!(
                        "{} cannot pass on {} ({e})",
                        parent_dir.display(),
                        enable.join(" ")
                    ),
                    _ => format!("cannot write {:?} to {}: {e}", enable.join(" "), path.display()),
                };
                CgroupError::Backend(why)
            })?;
        }
        let dir = parent_dir.join(name);
        make_dir(&dir)?;
        let cg = FsCgroup {
            dirs: vec![dir.clone()],
            v2: true,
        };
        for (_, file, value) in v2_files(plan, skip) {
            if let Err(e) = write("set the limit in", &dir.join(file), &value) {
                cg.remove();
                return Err(e);
            }
        }
        Ok(cg)
    }

    /// Creates `name` under each v1 `(hierarchy, parent directory)` and
    /// writes the limits.
    pub fn create_v1(
        dirs: &[(String, PathBuf)],
        name: &str,
        plan: &LimitsPlan,
        skip: &[Key],
    ) -> Result<FsCgroup, CgroupError> {
        let mut cg = FsCgroup {
            dirs: Vec::new(),
            v2: false,
        };
        let blkio_file = dirs
            .iter()
            .find(|(c, _)| c == "blkio")
            .map(|(_, d)| {
                if d.join("blkio.weight").exists() {
                    "blkio.weight"
                } else {
                    "blkio.bfq.weight"
                }
            })
            .unwrap_or("blkio.weight");
        let files = v1_files(plan, skip, blkio_file);
        let fill = |cg: &mut FsCgroup| -> Result<(), CgroupError> {
            for (controller, parent) in dirs {
                let dir = parent.join(name);
                make_dir(&dir)?;
                cg.dirs.push(dir.clone());
                for (_, file, value) in files.iter().filter(|(c, _, _)| c == controller) {
                    write("set the limit in", &dir.join(file), value)?;
                }
            }
            Ok(())
        };
        match fill(&mut cg) {
            Ok(()) => Ok(cg),
            Err(e) => {
                cg.remove();
                Err(e)
            }
        }
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    pub fn is_v2(&self) -> bool {
        self.v2
    }

    /// The v2 directory opened for clone3's CLONE_INTO_CGROUP.
    pub fn clone_fd(&self) -> Result<Option<OwnedFd>, CgroupError> {
        if !self.v2 {
            return Ok(None);
        }
        let dir = &self.dirs[0];
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(dir)
            .map(|f| Some(f.into()))
            .map_err(|e| CgroupError::io("open the cgroup", dir, e))
    }

    /// Moves process `pid` (and its threads) into the cgroup(s).
    pub fn attach(&self, pid: libc::pid_t) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            write(
                "move the sandbox into",
                &dir.join("cgroup.procs"),
                &pid.to_string(),
            )?;
        }
        Ok(())
    }

    /// The event counters' files and their text, read now.
    pub fn event_files(&self) -> Vec<(PathBuf, String)> {
        let names: &[&str] = if self.v2 {
            &["memory.events", "pids.events"]
        } else {
            &["memory.oom_control", "pids.events"]
        };
        let mut out = Vec::new();
        for dir in &self.dirs {
            for n in names {
                let p = dir.join(n);
                if let Ok(text) = std::fs::read_to_string(&p) {
                    out.push((p, text));
                }
            }
        }
        out
    }

    /// Ends whatever is left in the cgroup(s) and removes them.
    pub fn remove(&self) {
        for dir in self.dirs.iter().rev() {
            remove_dir(dir, self.v2);
        }
    }
}

/// Removes the empty cgroups that hutch processes which no longer exist
/// left in `parent` (`hutch-NAME-PID`; a hutch killed with SIGKILL cannot
/// clean up). A cgroup with processes cannot be removed, so only empty ones go.
fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str().filter(|n| n.starts_with("hutch-")) else {
            continue;
        };
        let Some(pid) = name
            .rsplit('-')
            .next()
            .and_then(|p| p.parse::<libc::pid_t>().ok())
            .filter(|p| *p > 0)
        else {
            continue;
        };
        let gone = kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH);
        if gone {
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

fn make_dir(dir: &Path) -> Result<(), CgroupError> {
    if let Some(parent) = dir.parent() {
        sweep_stale(parent);
    }
    let mut b = std::fs::DirBuilder::new();
    b.mode(0o755);
    match b.create(dir) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            // Left by an earlier hutch with the same pid that was killed:
            // empty cgroups can go.
            let _ = std::fs::remove_dir(dir);
            b.create(dir)
        }
        other => other,
    }
    .map_err(|e| CgroupError::io("create the cgroup", dir, e))
}

fn remove_dir(dir: &Path, v2: bool) {
    let mut killed = false;
    for _ in 0..200 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == ErrorKind::NotFound => return,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if !killed {
                    // Processes that outlived the sandbox's init (no pid
                    // namespace): the sandbox is over, so they end too.
                    killed = true;
                    if !(v2 && std::fs::write(dir.join("cgroup.kill"), "1").is_ok()) {
                        kill_all(dir);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                crate::diag::warning(format_args!("cannot remove cgroup {}: {e}", dir.display()));
                return;
            }
        }
    }
    crate::diag::warning(format_args!(
        "cannot remove cgroup {}: it still has processes",
        dir.display()
    ));
}

fn kill_all(dir: &Path) {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Reads the whole of a small file from offset 0 (the event files must be
/// read from the start for poll() to report the next change).
pub fn pread_all(file: &std::fs::File) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 1024];
    let n = file.read_at(&mut buf, 0).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// `key value` lines: the value of `key`.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Takes the counters from one event file (memory.events, memory.oom_control,
/// pids.events); they only grow, so the largest reading wins.
pub fn merge_events(ev: &mut Events, path: &Path, text: &str) {
    match path.file_name().and_then(|n| n.to_str()) {
        Some("memory.events") | Some("memory.oom_control") => {
            if let Some(v) = field(text, "oom_kill") {
                ev.oom_kills = ev.oom_kills.max(v);
            }
        }
        Some("pids.events") => {
            if let Some(v) = field(text, "max") {
                ev.pids_max = ev.pids_max.max(v);
            }
        }
        _ => {}
    }
}

fn page_size() -> u64 {
    use nix::unistd::{SysconfVar, sysconf};
    match sysconf(SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) if n > 0 => n as u64,
        _ => 4096,
    }
}

/// Checks that cgroup v2 directory `dir` really has the controllers and
/// values for the limits (systemd silently skips limits whose controller it
/// was not delegated). Returns the limits that are not in force, and why.
pub fn verify(dir: &Path, plan: &LimitsPlan, skip: &[Key]) -> Vec<(Key, String)> {
    let have = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    let have: Vec<&str> = have.split_whitespace().collect();
    let mut out = Vec::new();
    for (k, file, want) in v2_files(plan, skip) {
        let c = k.controller();
        if !have.contains(&c) {
            out.push((
                k,
                format!(
                    "controller `{c}` is not enabled for {} (it has: {}), so systemd did not apply the limit",
                    dir.display(),
                    if have.is_empty() { "none".into() } else { have.join(" ") }
                ),
            ));
            continue;
        }
        let got = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        let got = got.lines().next().unwrap_or("").trim().to_string();
        let ok = match k {
            Key::Memory | Key::Swap => {
                let page = page_size();
                let want: u64 = want.parse().unwrap_or(0);
                got.parse::<u64>().ok() == Some(want / page * page)
            }
            _ => got == want,
        };
        if !ok {
            out.push((
                k,
                format!("{}/{file} is {got:?}, not {want:?}", dir.display()),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::schema::Enforce;

    fn plan() -> LimitsPlan {
        LimitsPlan {
            enforce: Enforce::Required,
            memory: Some(512 << 20),
            swap: Some(0),
            cpu: Some(0.5),
            cpu_weight: Some(200),
            pids: Some(64),
            io_weight: Some(50),
            from: Default::default(),
            name: "hutch-t".into(),
            backends: Vec::new(),
            unusable: Vec::new(),
        }
    }

    #[test]
    fn v2_values() {
        let files: Vec<(&str, String)> = v2_files(&plan(), &[])
            .into_iter()
            .map(|(_, f, v)| (f, v))
            .collect();
        assert_eq!(
            files,
            [
                ("memory.max", "536870912".to_string()),
                ("memory.swap.max", "0".into()),
                ("cpu.max", "50000 100000".into()),
                ("cpu.weight", "200".into()),
                ("pids.max", "64".into()),
                ("io.weight", "default 50".into()),
            ]
        );
        let skipped = v2_files(&plan(), &[Key::IoWeight, Key::Swap]);
        assert_eq!(skipped.len(), 4);
    }

    #[test]
    fn v1_values() {
        let files = v1_files(&plan(), &[], "blkio.bfq.weight");
        let find = |f: &str| {
            files
                .iter()
                .find(|(_, n, _)| *n == f)
                .map(|(c, _, v)| (*c, v.as_str()))
        };
        assert_eq!(find("memory.limit_in_bytes"), Some(("memory", "536870912")));
        assert_eq!(
            find("memory.memsw.limit_in_bytes"),
            Some(("memory", "536870912"))
        );
        assert_eq!(find("cpu.cfs_quota_us"), Some(("cpu", "50000")));
        assert_eq!(find("cpu.cfs_period_us"), Some(("cpu", "100000")));
        assert_eq!(find("cpu.shares"), Some(("cpu", "2048")));
        assert_eq!(find("pids.max"), Some(("pids", "64")));
        assert_eq!(find("blkio.bfq.weight"), Some(("blkio", "250")));
        // memory.limit_in_bytes must come before memsw (memsw ≥ memory).
        let pos = |f: &str| files.iter().position(|(_, n, _)| *n == f).unwrap();
        assert!(pos("memory.limit_in_bytes") < pos("memory.memsw.limit_in_bytes"));
        assert_eq!(cpu_shares(1), 10);
        assert_eq!(cpu_shares(10000), 102_400);
        assert_eq!(blkio_weight(1), 10);
        assert_eq!(blkio_weight(10000), 1000);
    }

    #[test]
    fn event_counters() {
        let mut ev = Events::default();
        merge_events(
            &mut ev,
            Path::new("/x/memory.events"),
            "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
        );
        merge_events(&mut ev, Path::new("/x/pids.events"), "max 82\n");
        assert_eq!(
            ev,
            Events {
                oom_kills: 1,
                pids_max: 82
            }
        );
        merge_events(
            &mut ev,
            Path::new("/y/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
        );
        merge_events(&mut ev, Path::new("/x/pids.events"), "max 0\n");
        assert_eq!(
            ev,
            Events {
                oom_kills: 3,
                pids_max: 82
            }
        );
    }

    #[test]
    fn stale_cgroups_of_dead_launchers_are_swept() {
        let d = tempfile::tempdir().unwrap();
        // A pid that does not exist (checked), and our own.
        let dead = (4_000_000..4_100_000)
            .find(|p| kill(Pid::from_raw(*p), None).is_err())
            .unwrap();
        let stale = d.path().join(format!("hutch-x-{dead}"));
        let live = d.path().join(format!("hutch-x-{}", std::process::id()));
        let other = d.path().join("other-1");
        for p in [&stale, &live, &other] {
            std::fs::create_dir(p).unwrap();
        }
        make_dir(&d.path().join("hutch-new-1")).unwrap();
        assert!(!stale.exists());
        assert!(live.exists() && other.exists());
        assert!(d.path().join("hutch-new-1").is_dir());
    }

    #[test]
    fn verify_reads_back_what_the_kernel_has() {
        let d = tempfile::tempdir().unwrap();
        let w = |f: &str, v: &str| std::fs::write(d.path().join(f), v).unwrap();
        w("cgroup.controllers", "cpu memory pids\n");
        let page = page_size();
        w("memory.max", &format!("{}\n", (512u64 << 20) / page * page));
        w("memory.swap.max", "0\n");
        w("cpu.max", "50000 100000\n");
        w("cpu.weight", "200\n");
        w("pids.max", "max\n");
        let bad = verify(d.path(), &plan(), &[]);
        let keys: Vec<Key> = bad.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [Key::Pids, Key::IoWeight], "{bad:?}");
        assert!(
            bad[1].1.contains("controller `io` is not enabled"),
            "{bad:?}"
        );
        assert!(bad[0].1.contains("is \"max\", not \"64\""), "{bad:?}");
    }
}
