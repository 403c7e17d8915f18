//! Who a process is, as `/proc` says: its parent and start time (which
//! tell a reused pid apart), its owner and its executable.

use std::os::unix::fs::MetadataExt;

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use nix::time::{ClockId, clock_gettime};
use nix::unistd::{SysconfVar, read, sysconf};

use serde::{Deserialize, Serialize};

/// A process, identified beyond its pid: the start time (field 22 of
/// `/proc/PID/stat`, in clock ticks since boot) tells a reused pid apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: i32,
    pub start: u64,
}

/// `(ppid, start time)` of a process, from `/proc/PID/stat`.
pub fn proc_stat(pid: i32) -> Option<(i32, u64)> {
    // One read into a fixed buffer: the line is well under 1 KiB unless
    // the command name is absurd, and then it is cut after the fields
    // needed... or parse_stat fails and the process counts as gone.
    let path = format!("/proc/{pid}/stat");
    let fd = open(
        path.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = [0u8; 1024];
    let n = read(&fd, &mut buf).ok().filter(|&n| n > 0)?;
    parse_stat(&buf[..n])
}

pub(super) fn parse_stat(text: &[u8]) -> Option<(i32, u64)> {
    // The command name (field 2) may contain spaces and parentheses: the
    // fields after it start after its last `)`.
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&text[close + 1..]).ok()?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): field N is fields[N - 3].
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start))
}

/// The real uid of a process as the host sees it.
pub(super) fn proc_uid(pid: i32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Device and inode of the executable of `pid` (a number, or `self`).
pub(super) fn exe_id(pid: &str) -> Option<(u64, u64)> {
    let m = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((m.dev(), m.ino()))
}

/// Whether a process still is the one a `ProcId` names.
pub(super) fn alive(p: &ProcId) -> bool {
    proc_stat(p.pid).is_some_and(|(_, start)| start == p.start)
}

/// Now, in the clock ticks of `/proc/PID/stat` start times (CLOCK_BOOTTIME
/// in units of `_SC_CLK_TCK`).
pub(super) fn boot_ticks() -> u64 {
    let (Ok(now), Ok(Some(hz))) = (
        clock_gettime(ClockId::CLOCK_BOOTTIME),
        sysconf(SysconfVar::CLK_TCK),
    ) else {
        return u64::MAX;
    };
    let hz = match u64::try_from(hz) {
        Ok(hz) if hz > 0 => hz,
        _ => return u64::MAX,
    };
    now.tv_sec() as u64 * hz + now.tv_nsec() as u64 * hz / 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let mut line = String::from("1234 (a) b (c) d) S 77");
        for i in 5..=21 {
            line.push_str(&format!(" {i}"));
        }
        line.push_str(" 987654 23 24\n");
        assert_eq!(parse_stat(line.as_bytes()), Some((77, 987654)));
        let me = std::process::id() as i32;
        let (ppid, start) = proc_stat(me).unwrap();
        assert_eq!(ppid, nix::unistd::getppid().as_raw());
        assert!(start > 0);
        // This process started before now.
        assert!(start <= boot_ticks());
    }
}
