//! A transient systemd scope over D-Bus: the way an ordinary user gets
//! limits on a systemd host. The user's own manager (`systemd --user`) makes
//! the scope inside its delegated subtree; for root, the system manager.
//!
//! This runs in the launcher **after clone** (zbus may start threads; the
//! launcher must be single-threaded when it clones), while the child waits on
//! its go pipe. The scope is started with the child's pid, `Delegate=yes` and
//! the limits, and hutch waits for systemd's `JobRemoved` signal with result
//! `done` before it lets the child go on.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use zbus::export::futures_core::Stream;
use zbus::{MatchRule, MessageStream, OwnedObjectPath, Variant};

use super::{CgroupError, Key, LimitsPlan, probe};

const SYSTEMD: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long hutch waits for systemd before giving up on this backend.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A unit property value, kept free of D-Bus types so it can be tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prop {
    U64(u64),
    Bool(bool),
    Str(String),
    Pids(Vec<u32>),
}

/// The scope's name: `app-hutch-NAME-PID.scope`, after systemd's
/// `app-<launcher>-<id>-<random>.scope` convention for applications.
pub fn unit_name(base: &str, pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("app-{base}-{p}.scope"),
        None => format!("app-{base}-PID.scope"),
    }
}

/// The properties of the scope: the sandbox's pid, delegation, garbage
/// collection, and one property per limit (skipping `skip`).
pub fn properties(plan: &LimitsPlan, skip: &[Key], pid: u32) -> Vec<(&'static str, Prop)> {
    let mut p = vec![
        (
            "Description",
            Prop::Str(format!("hutch sandbox ({})", plan.name)),
        ),
        ("PIDs", Prop::Pids(vec![pid])),
        ("Delegate", Prop::Bool(true)),
        // Removed as soon as it is empty, even when it failed (an OOM kill).
        ("CollectMode", Prop::Str("inactive-or-failed".into())),
    ];
    for k in plan.keys() {
        if skip.contains(&k) {
            continue;
        }
        p.push(match k {
            Key::Memory => ("MemoryMax", Prop::U64(plan.memory.unwrap_or(0))),
            Key::Swap => ("MemorySwapMax", Prop::U64(plan.swap.unwrap_or(0))),
            // Per second; systemd turns it back into the same quota per
            // 100 ms period that cgroup v2 and v1 get from hutch itself.
            Key::Cpu => (
                "CPUQuotaPerSecUSec",
                Prop::U64(plan.cpu_quota_per_period().unwrap_or(0) * 10),
            ),
            Key::CpuWeight => ("CPUWeight", Prop::U64(plan.cpu_weight.unwrap_or(100))),
            Key::Pids => ("TasksMax", Prop::U64(plan.pids.unwrap_or(0))),
            Key::IoWeight => ("IOWeight", Prop::U64(plan.io_weight.unwrap_or(100))),
        });
    }
    p
}

fn variant(p: Prop) -> Variant<'static> {
    match p {
        Prop::U64(v) => Variant::from(v),
        Prop::Bool(v) => Variant::from(v),
        Prop::Str(v) => Variant::from(v),
        Prop::Pids(v) => Variant::from(v),
    }
}

/// Asks the manager at `address` for scope `unit` and waits until its job
/// is done: from then on the process is in the scope's cgroup.
pub fn start_scope(
    address: &str,
    system: bool,
    unit: &str,
    props: Vec<(&'static str, Prop)>,
) -> Result<(), CgroupError> {
    let manager = if system {
        "the systemd system manager"
    } else {
        "your systemd user manager"
    };
    let fail = |what: String| CgroupError::Backend(format!("{manager} ({address}): {what}"));
    zbus::block_on(async {
        let rt = zruntime::SharedRuntime::current()
            .map_err(|e| fail(format!("cannot start the D-Bus client: {e}")))?;
        match rt.timeout(TIMEOUT, start(address, unit, props)).await {
            Ok(r) => r.map_err(fail),
            Err(_) => Err(fail(format!(
                "no answer within {} s about {unit}",
                TIMEOUT.as_secs()
            ))),
        }
    })
}

async fn next(s: &mut MessageStream) -> Option<zbus::Result<zbus::Message>> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

async fn start(address: &str, unit: &str, props: Vec<(&'static str, Prop)>) -> Result<(), String> {
    let conn = zbus::connection::Builder::address(address)
        .method_timeout(TIMEOUT)
        .build()
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(SYSTEMD)
        .interface(MANAGER)
        .member("JobRemoved")
        .path(PATH)
        .build()
        .map_err(|e| e.to_string())?;
    // Listen before asking, so the job's end cannot be missed.
    let mut stream = MessageStream::for_match_rule(rule, &conn, None)
        .await
        .map_err(|e| format!("cannot listen for systemd's signals: {e}"))?;
    conn.call_method(Some(SYSTEMD), PATH, Some(MANAGER), "Subscribe", &())
        .await
        .map_err(|e| format!("Subscribe failed: {e}"))?;
    let props: Vec<(&str, Variant<'static>)> =
        props.into_iter().map(|(k, v)| (k, variant(v))).collect();
    let aux: Vec<(&str, Vec<(&str, Variant<'static>)>)> = Vec::new();
    let reply = conn
        .call_method(
            Some(SYSTEMD),
            PATH,
            Some(MANAGER),
            "StartTransientUnit",
            &(unit, "fail", props, aux),
        )
        .await
        .map_err(|e| format!("cannot start {unit}: {e}"))?;
    let job: OwnedObjectPath = reply
        .body()
        .deserialize()
        .map_err(|e| format!("unexpected reply to StartTransientUnit: {e}"))?;
    while let Some(msg) = next(&mut stream).await {
        let msg = msg.map_err(|e| e.to_string())?;
        let Ok((_id, path, _unit, result)) = msg
            .body()
            .deserialize::<(u32, OwnedObjectPath, String, String)>()
        else {
            continue;
        };
        if path == job {
            return if result == "done" {
                Ok(())
            } else {
                Err(format!(
                    "the job starting {unit} ended with `{result}` (see `journalctl{} -u {unit}`)",
                    if address.contains("system_bus") {
                        ""
                    } else {
                        " --user"
                    }
                ))
            };
        }
    }
    Err("the connection closed before the scope was started".into())
}

/// The scope's cgroup directory, from where the kernel says `pid` is.
pub fn scope_dir(mount: &Path, pid: libc::pid_t, unit: &str) -> Result<PathBuf, CgroupError> {
    let file = format!("/proc/{pid}/cgroup");
    let text =
        std::fs::read_to_string(&file).map_err(|e| CgroupError::io("read", file.clone(), e))?;
    let path = probe::parse_proc_cgroup(&text)
        .into_iter()
        .find(|(id, _, _)| *id == 0)
        .map(|(_, _, p)| p)
        .unwrap_or_default();
    if !path.ends_with(&format!("/{unit}")) {
        return Err(CgroupError::Backend(format!(
            "systemd started {unit}, but the sandbox is in cgroup {path:?}"
        )));
    }
    Ok(probe::cgroup_path(mount, &path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::schema::Enforce;

    #[test]
    fn scope_properties() {
        let plan = LimitsPlan {
            enforce: Enforce::Required,
            memory: Some(50 << 20),
            swap: Some(0),
            cpu: Some(0.25),
            cpu_weight: None,
            pids: Some(20),
            io_weight: Some(300),
            from: Default::default(),
            name: "hutch-cli".into(),
            backends: Vec::new(),
            unusable: Vec::new(),
        };
        let p = properties(&plan, &[Key::IoWeight], 4242);
        let get = |n: &str| p.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone());
        assert_eq!(get("PIDs"), Some(Prop::Pids(vec![4242])));
        assert_eq!(get("Delegate"), Some(Prop::Bool(true)));
        assert_eq!(
            get("CollectMode"),
            Some(Prop::Str("inactive-or-failed".into()))
        );
        assert_eq!(get("MemoryMax"), Some(Prop::U64(50 << 20)));
        assert_eq!(get("MemorySwapMax"), Some(Prop::U64(0)));
        // 0.25 CPUs: 250 ms per second, i.e. cpu.max "25000 100000".
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(Prop::U64(250_000)));
        assert_eq!(get("TasksMax"), Some(Prop::U64(20)));
        assert_eq!(get("IOWeight"), None);
        assert_eq!(get("CPUWeight"), None);
        assert_eq!(unit_name(&plan.name, Some(7)), "app-hutch-cli-7.scope");
    }

    #[test]
    fn variants_have_the_dbus_types_systemd_expects() {
        assert_eq!(variant(Prop::U64(1)).value_signature(), "t");
        assert_eq!(variant(Prop::Bool(true)).value_signature(), "b");
        assert_eq!(variant(Prop::Str("x".into())).value_signature(), "s");
        assert_eq!(variant(Prop::Pids(vec![1])).value_signature(), "au");
    }

    #[test]
    fn an_unreachable_bus_is_an_error_not_a_hang() {
        let e = start_scope(
            "unix:path=/nonexistent/bus",
            false,
            "app-hutch-t-1.scope",
            Vec::new(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("your systemd user manager (unix:path=/nonexistent/bus): cannot connect"),
            "{e}"
        );
    }
}
