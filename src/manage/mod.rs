//! The commands that manage what outlives a single `hutch run`: running
//! sandboxes (`ps`, `exec`, `stop`), volumes (`volume ...`) and images
//! ([`image`]: `image ...`, and the lease a run or an export takes).

pub mod image;

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::Serialize;

use crate::cli::{ExecArgs, VolumeCommand};
use crate::diag::sanitize;
use crate::host::Host;
use crate::launch::{self, EXIT_LAUNCH_FAILED};
use crate::registry::{Record, Registry, RegistryError, State};
use crate::{sys, volume};

fn out(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

/// `90` → `1m30s`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

#[derive(Serialize)]
struct Listed {
    name: String,
    state: State,
    /// Host pid of the sandbox's first process (hutch's init, or the
    /// payload with `init = false`); absent while starting.
    pid: Option<i32>,
    /// The hutch that runs it (what `stop` signals).
    launcher_pid: i32,
    profile: String,
    #[serde(with = "crate::argv::json")]
    command: Vec<std::ffi::OsString>,
    /// Seconds since the epoch.
    started: u64,
    uptime_seconds: u64,
    volumes: Vec<String>,
    /// Its `[network]`, from the plan it runs; absent while starting.
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<ListedNetwork>,
    /// For a helper's sandbox (the D-Bus proxy, the nested X server):
    /// what it is and which sandbox started it.
    #[serde(skip_serializing_if = "Option::is_none")]
    helper: Option<ListedHelper>,
    /// The helpers' sandboxes this one started, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    helpers: Vec<String>,
}

#[derive(Serialize)]
struct ListedHelper {
    /// `dbus-proxy`, `nested-x11`.
    kind: &'static str,
    of: String,
}

/// A sandbox that the launcher of another started as one of its helpers:
/// its launcher is a child of the other's (hutch starts the D-Bus proxy
/// and the nested X server each in a hutch sandbox of its own, from a
/// profile in its launch directory).
struct HelperOf {
    /// `dbus-proxy`, `nested-x11`, or `helper` for one this hutch does
    /// not know.
    kind: &'static str,
    /// What it is, in messages.
    what: &'static str,
    parent: String,
}

/// The helpers among `records`, by name.
fn helpers_of(records: &[Record]) -> std::collections::HashMap<String, HelperOf> {
    use crate::plan::desktop::{NESTED_PROFILE_FILE, PROXY_PROFILE_FILE};
    let mut out = std::collections::HashMap::new();
    for r in records {
        let Some((ppid, _)) = crate::registry::proc_stat(r.launcher.pid) else {
            continue;
        };
        let Some(parent) = records
            .iter()
            .find(|p| p.launcher.pid == ppid && p.name != r.name)
        else {
            continue;
        };
        let file = std::path::Path::new(&r.profile)
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default();
        let (kind, what) = match file {
            f if f == PROXY_PROFILE_FILE => ("dbus-proxy", "the D-Bus proxy"),
            f if f == NESTED_PROFILE_FILE => ("nested-x11", "the nested X server"),
            _ => ("helper", "a helper"),
        };
        out.insert(
            r.name.clone(),
            HelperOf {
                kind,
                what,
                parent: parent.name.clone(),
            },
        );
    }
    out
}

/// Why `exec` or `stop` (`verb`) does not take `name`, when it is a
/// helper's sandbox.
fn refuse_helper(host: &Host, name: &str, verb: &str) -> Option<String> {
    let records = Registry::open(host, false).ok()??.records();
    let links = helpers_of(&records);
    let h = links.get(name)?;
    Some(match verb {
        "exec" => format!(
            "`{name}` is {} of sandbox `{}` (a helper in a sandbox of its own, which the app talks to): hutch exec does not enter helpers; `hutch exec {}` enters the app's sandbox",
            h.what, h.parent, h.parent
        ),
        _ => format!(
            "`{name}` is {} of sandbox `{}`, and ends with it: stopping it alone would cut the app off; `hutch stop {}` stops both",
            h.what, h.parent, h.parent
        ),
    })
}

/// A sandbox's network in `hutch ps --json`: the mode, and in `user` mode
/// the program and the forwards.
#[derive(Serialize)]
struct ListedNetwork {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<&'static str>,
    /// Host → sandbox: `ADDR:HOST->SANDBOX/PROTO`.
    publish: Vec<String>,
    /// Host loopback ports reachable inside: `PORT/PROTO`.
    host_ports: Vec<String>,
    host_loopback: bool,
    egress_rules: usize,
}

impl ListedNetwork {
    /// From the plan a launcher recorded (`None` if it has none, or one
    /// this hutch cannot read).
    fn of(plan: Option<&serde_json::value::RawValue>) -> Option<ListedNetwork> {
        let plan: serde_json::Value = serde_json::from_str(plan?.get()).ok()?;
        let net: crate::plan::network::NetworkPlan =
            serde_json::from_value(plan.get("network")?.clone()).ok()?;
        let user = net.user.as_ref();
        Some(ListedNetwork {
            mode: net.mode.name(),
            backend: user.map(|u| u.backend.name()),
            publish: user
                .map(|u| {
                    u.publish
                        .iter()
                        .map(|p| {
                            let addr = match p.address {
                                std::net::IpAddr::V6(a) => format!("[{a}]"),
                                a => a.to_string(),
                            };
                            format!(
                                "{addr}:{}->{}/{}",
                                p.host_port,
                                p.sandbox_port,
                                p.proto.name()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            host_ports: user
                .map(|u| {
                    u.host_ports
                        .iter()
                        .map(|f| format!("{}/{}", f.port, f.proto.name()))
                        .collect()
                })
                .unwrap_or_default(),
            host_loopback: user.is_some_and(|u| u.host_loopback),
            egress_rules: user.map_or(0, |u| u.egress.len()),
        })
    }
}

pub fn ps(as_json: bool) -> i32 {
    let host = Host::current();
    let records = match Registry::open(&host, false) {
        Ok(Some(reg)) => reg.records(),
        Ok(None) => Vec::new(),
        Err(e) => {
            crate::diag::error(&e);
            return EXIT_LAUNCH_FAILED;
        }
    };
    let links = helpers_of(&records);
    let mut listed: Vec<Listed> = records
        .into_iter()
        // Running, or still starting; not those whose payload has ended
        // while their hutch cleans up.
        .filter(|r| r.state == State::Starting || r.is_running())
        .map(|r| Listed {
            helper: links.get(&r.name).map(|h| ListedHelper {
                kind: h.kind,
                of: h.parent.clone(),
            }),
            helpers: {
                let mut names: Vec<String> = links
                    .iter()
                    .filter(|(_, h)| h.parent == r.name)
                    .map(|(n, _)| n.clone())
                    .collect();
                names.sort();
                names
            },
            network: ListedNetwork::of(r.plan.as_deref()),
            uptime_seconds: r.uptime(),
            pid: r.init.map(|i| i.pid),
            launcher_pid: r.launcher.pid,
            volumes: r.volumes.iter().map(|v| v.name.clone()).collect(),
            name: r.name,
            state: r.state,
            profile: r.profile,
            command: r.command,
            started: r.started,
        })
        .collect();
    // Each helper right after the sandbox that started it.
    let order = |l: &Listed| match &l.helper {
        Some(h) => (h.of.clone(), 1, l.name.clone()),
        None => (l.name.clone(), 0, String::new()),
    };
    listed.sort_by_key(order);
    if as_json {
        out(&json(&listed));
        return 0;
    }
    let rows: Vec<[String; 5]> = listed
        .iter()
        .map(|l| {
            [
                match &l.helper {
                    Some(_) => format!("`- {}", l.name),
                    None => l.name.clone(),
                },
                l.pid.map_or("-".into(), |p| p.to_string()),
                match &l.helper {
                    Some(h) => format!("({} of {})", h.kind, h.of),
                    None => sanitize(&l.profile),
                },
                match l.state {
                    State::Starting => "starting".into(),
                    State::Running => duration(l.uptime_seconds),
                },
                crate::argv::shell_words(&l.command),
            ]
        })
        .collect();
    let header = ["NAME", "PID", "PROFILE", "UPTIME", "COMMAND"].map(String::from);
    let mut width = [0usize; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:w0$}  {:>w1$}  {:w2$}  {:>w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = width[0],
            w1 = width[1],
            w2 = width[2],
            w3 = width[3]
        );
        text.push_str(line.trim_end());
        text.push('\n');
    }
    out(&text);
    0
}

fn open_registry(host: &Host, name: &str) -> Result<Registry, RegistryError> {
    Registry::open(host, false)?.ok_or_else(|| RegistryError::NotFound(name.to_string()))
}

pub fn exec(args: ExecArgs) -> i32 {
    let host = Host::current();
    if let Some(why) = refuse_helper(&host, &args.name, "exec") {
        crate::diag::error(format_args!("{why}"));
        return EXIT_LAUNCH_FAILED;
    }
    let target = match open_registry(&host, &args.name).and_then(|r| r.target(&args.name)) {
        Ok(t) => t,
        Err(e) => {
            crate::diag::error(&e);
            return EXIT_LAUNCH_FAILED;
        }
    };
    match launch::join::exec(target, args.command, &host) {
        Ok(code) => code,
        Err(e) => {
            crate::diag::error(&e);
            e.exit_code()
        }
    }
}

/// Waits up to `limit` for the process behind `pidfd` to end.
fn wait_exit(pidfd: &OwnedFd, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
            .unwrap_or(PollTimeout::MAX);
        match poll(&mut pfd, ms) {
            Ok(n) if n > 0 => return true,
            Ok(_) if left.is_zero() => return false,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return false,
        }
    }
}

pub fn stop(name: &str, timeout: f64) -> i32 {
    if !timeout.is_finite() || timeout < 0.0 {
        crate::diag::error(format_args!(
            "--timeout must be a number of seconds, 0 or more"
        ));
        return EXIT_LAUNCH_FAILED;
    }
    let host = Host::current();
    if let Some(why) = refuse_helper(&host, name, "stop") {
        crate::diag::error(format_args!("{why}"));
        return EXIT_LAUNCH_FAILED;
    }
    let registry = match open_registry(&host, name) {
        Ok(r) => r,
        Err(e) => {
            crate::diag::error(&e);
            return EXIT_LAUNCH_FAILED;
        }
    };
    let (_, pidfd) = match registry.launcher(name) {
        Ok(found) => found,
        Err(e) => {
            crate::diag::error(&e);
            return EXIT_LAUNCH_FAILED;
        }
    };
    let started = Instant::now();
    if let Err(e) = sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGTERM) {
        crate::diag::error(format_args!(
            "cannot send SIGTERM to sandbox `{name}`: {}",
            e.desc()
        ));
        return EXIT_LAUNCH_FAILED;
    }
    if wait_exit(&pidfd, Duration::from_secs_f64(timeout)) {
        out(&format!(
            "stopped {name}: it ended {:.1}s after SIGTERM\n",
            started.elapsed().as_secs_f64()
        ));
        return 0;
    }
    if let Err(e) = sys::pidfd_send_signal(pidfd.as_raw_fd(), libc::SIGKILL) {
        crate::diag::error(format_args!(
            "cannot send SIGKILL to sandbox `{name}`: {}",
            e.desc()
        ));
        return EXIT_LAUNCH_FAILED;
    }
    if !wait_exit(&pidfd, Duration::from_secs(5)) {
        crate::diag::error(format_args!(
            "sandbox `{name}` did not end even after SIGKILL"
        ));
        return EXIT_LAUNCH_FAILED;
    }
    // Its hutch could not clean up after itself.
    registry.remove_stale(name);
    for w in volume::clean_stale(&host) {
        crate::diag::warning(&w);
    }
    out(&format!(
        "stopped {name}: it did not end within {timeout}s of SIGTERM, so it was killed (SIGKILL)\n"
    ));
    0
}

pub fn volume(command: VolumeCommand) -> i32 {
    let host = Host::current();
    let result = match command {
        VolumeCommand::List { json: as_json } => volume::list(&host).map(|(list, warnings)| {
            for w in warnings {
                crate::diag::warning(&w);
            }
            if as_json {
                json(&list)
            } else {
                let mut text = String::new();
                let w = list.iter().map(|v| v.name.len()).max().unwrap_or(4).max(4);
                text.push_str(&format!("{:w$}  {:10}  {:20}  PATH\n", "NAME", "KIND", "IN USE BY"));
                for v in &list {
                    let users = if v.in_use_by.is_empty() {
                        "-".to_string()
                    } else {
                        v.in_use_by.join(",")
                    };
                    text.push_str(&format!(
                        "{:w$}  {:10}  {:20}  {}\n",
                        v.name,
                        v.kind,
                        users,
                        sanitize(&v.path.display().to_string())
                    ));
                }
                text
            }
        }),
        VolumeCommand::Inspect {
            name,
            json: as_json,
        } => volume::inspect(&host, &name).map(|v| {
            if as_json {
                json(&v)
            } else {
                format!(
                    "name        {}\npath        {}\nmode        {}\nmodified    {}\ndisk usage  {} bytes in {} entries\nin use by   {}\n",
                    v.name,
                    sanitize(&v.path.display().to_string()),
                    v.mode.as_deref().unwrap_or("-"),
                    v.modified.map_or("-".into(), |m| m.to_string()),
                    v.disk_usage.unwrap_or(0),
                    v.files.unwrap_or(0),
                    if v.in_use_by.is_empty() {
                        "-".to_string()
                    } else {
                        v.in_use_by.join(", ")
                    }
                )
            }
        }),
        VolumeCommand::Path { name } => {
            volume::path(&host, &name).map(|p| format!("{}\n", p.display()))
        }
        VolumeCommand::Rm { name, force } => {
            volume::remove(&host, &name, force).map(|()| format!("removed volume `{name}`\n"))
        }
    };
    match result {
        Ok(text) => {
            out(&text);
            0
        }
        Err(e) => {
            crate::diag::error(&e);
            EXIT_LAUNCH_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(90), "1m30s");
        assert_eq!(duration(3 * 3600 + 60), "3h01m");
        assert_eq!(duration(2 * 86400 + 3600), "2d01h");
    }
}
