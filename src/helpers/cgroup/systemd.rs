//! A transient systemd scope over D-Bus: the way an ordinary user gets
//! limits on a systemd host. The user's own manager (`systemd --user`) makes
//! the scope inside its delegated subtree; for root, the system manager.
//!
//! This runs in the launcher after clone, while the child waits on its go
//! pipe, over hutch's own blocking D-Bus client ([`crate::dbus`]). The scope
//! is started with the child's pid, `Delegate=yes` and the limits, and hutch
//! waits for systemd's `JobRemoved` signal with result `done` before it lets
//! the child go on. The whole exchange has one deadline.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CgroupError;
use crate::dbus::{Connection, DbusError, Message, Value};
use crate::host::cgroups;
use crate::plan::limits::{Key, LimitsPlan};

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

/// The D-Bus value of a property (the inside of its variant).
fn variant(p: Prop) -> Value {
    match p {
        Prop::U64(v) => Value::U64(v),
        Prop::Bool(v) => Value::Bool(v),
        Prop::Str(v) => Value::Str(v),
        Prop::Pids(v) => Value::Array("u".into(), v.into_iter().map(Value::U32).collect()),
    }
}

/// The properties as D-Bus `a(sv)`.
fn property_array(props: Vec<(&'static str, Prop)>) -> Value {
    let entries = props
        .into_iter()
        .map(|(k, v)| {
            Value::Struct(vec![
                Value::Str(k.into()),
                Value::Variant(Box::new(variant(v))),
            ])
        })
        .collect();
    Value::Array("(sv)".into(), entries)
}

/// The `StartTransientUnit(ssa(sv)a(sa(sv)))` call: unit, mode `fail`
/// (do not replace a job already queued for the unit), properties, and no
/// auxiliary units.
fn start_transient_unit(
    unit: &str,
    props: Vec<(&'static str, Prop)>,
) -> Result<Message, DbusError> {
    Message::method_call(
        SYSTEMD,
        PATH,
        MANAGER,
        "StartTransientUnit",
        &[
            Value::Str(unit.into()),
            Value::Str("fail".into()),
            property_array(props),
            Value::Array("(sa(sv))".into(), Vec::new()),
        ],
    )
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
    let deadline = Instant::now() + TIMEOUT;
    start(address, system, unit, props, deadline)
        .map_err(|what| CgroupError::Backend(format!("{manager} ({address}): {what}")))
}

fn start(
    address: &str,
    system: bool,
    unit: &str,
    props: Vec<(&'static str, Prop)>,
    deadline: Instant,
) -> Result<(), String> {
    // Every step's error says what failed; running out of time, wherever
    // it happens, is one message.
    let step = |what: String| {
        move |e: DbusError| match e {
            DbusError::Timeout => format!("no answer within {} s about {unit}", TIMEOUT.as_secs()),
            e => format!("{what}: {e}"),
        }
    };
    let mut bus = Connection::open(address, deadline).map_err(step("cannot connect".into()))?;
    // Listen before asking, so the job's end cannot be missed.
    bus.add_match(&format!(
        "type='signal',sender='{SYSTEMD}',path='{PATH}',interface='{MANAGER}',member='JobRemoved'"
    ))
    .map_err(step("cannot listen for systemd's signals".into()))?;
    let subscribe = Message::method_call(SYSTEMD, PATH, MANAGER, "Subscribe", &[])
        .map_err(step("Subscribe failed".into()))?;
    bus.call(&subscribe)
        .map_err(step("Subscribe failed".into()))?;
    let call = start_transient_unit(unit, props).map_err(step(format!("cannot start {unit}")))?;
    let reply = bus
        .call(&call)
        .map_err(step(format!("cannot start {unit}")))?;
    let job = match reply
        .args("o")
        .map_err(step("unexpected reply to StartTransientUnit".into()))?
        .as_slice()
    {
        [Value::ObjectPath(job)] => job.clone(),
        other => return Err(format!("unexpected reply to StartTransientUnit: {other:?}")),
    };
    // The signal must come from the manager that answered, not from any
    // peer that can send signals to hutch's connection.
    let manager = reply.sender.clone();
    loop {
        let signal = match bus.next_signal() {
            Ok(s) => s,
            Err(DbusError::Closed) => {
                return Err("the connection closed before the scope was started".into());
            }
            Err(e) => return Err(step("while waiting for systemd's signal".into())(e)),
        };
        if signal.sender != manager
            || signal.path.as_deref() != Some(PATH)
            || signal.interface.as_deref() != Some(MANAGER)
            || signal.member.as_deref() != Some("JobRemoved")
        {
            continue;
        }
        // JobRemoved(u id, o job, s unit, s result)
        let Ok(args) = signal.args("uoss") else {
            continue;
        };
        let [_, Value::ObjectPath(path), _, Value::Str(result)] = args.as_slice() else {
            continue;
        };
        if *path == job {
            return if result == "done" {
                Ok(())
            } else {
                Err(format!(
                    "the job starting {unit} ended with `{result}` (see `journalctl{} -u {unit}`)",
                    if system { "" } else { " --user" }
                ))
            };
        }
    }
}

/// The scope's cgroup directory, from where the kernel says `pid` is.
pub fn scope_dir(mount: &Path, pid: libc::pid_t, unit: &str) -> Result<PathBuf, CgroupError> {
    let file = format!("/proc/{pid}/cgroup");
    let text =
        std::fs::read_to_string(&file).map_err(|e| CgroupError::io("read", file.clone(), e))?;
    let path = cgroups::parse_proc_cgroup(&text)
        .into_iter()
        .find(|(id, _, _)| *id == 0)
        .map(|(_, _, p)| p)
        .unwrap_or_default();
    if !path.ends_with(&format!("/{unit}")) {
        return Err(CgroupError::Backend(format!(
            "systemd started {unit}, but the sandbox is in cgroup {path:?}"
        )));
    }
    Ok(cgroups::cgroup_path(mount, &path))
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
        assert_eq!(
            crate::plan::limits::unit_name(&plan.name, Some(7)),
            "app-hutch-cli-7.scope"
        );
    }

    #[test]
    fn variants_have_the_dbus_types_systemd_expects() {
        assert_eq!(variant(Prop::U64(1)).signature(), "t");
        assert_eq!(variant(Prop::Bool(true)).signature(), "b");
        assert_eq!(variant(Prop::Str("x".into())).signature(), "s");
        assert_eq!(variant(Prop::Pids(vec![1])).signature(), "au");
        let props = vec![
            ("MemoryMax", Prop::U64(0x0102_0304_0506_0708)),
            ("PIDs", Prop::Pids(vec![7, 8])),
            ("Delegate", Prop::Bool(true)),
            ("CollectMode", Prop::Str("x".into())),
        ];
        let call = start_transient_unit("u.scope", props).unwrap();
        assert_eq!(call.signature, "ssa(sv)a(sa(sv))");
        // The body as systemd must receive it: each (sv) struct at a
        // multiple of 8, each value aligned after its variant's signature.
        let msg = call.encode(1).unwrap();
        #[rustfmt::skip]
        let expected: &[u8] = &[
            7, 0, 0, 0, b'u', b'.', b's', b'c', b'o', b'p', b'e', 0,   // 0: s "u.scope"
            4, 0, 0, 0, b'f', b'a', b'i', b'l', 0, 0, 0, 0,            // 12: s "fail", pad
            114, 0, 0, 0, 0, 0, 0, 0,                                  // 24: a(sv) of 114 bytes, pad
            9, 0, 0, 0, b'M', b'e', b'm', b'o', b'r', b'y', b'M', b'a', b'x', 0, // 32: s
            1, b't', 0, 0, 0, 0, 0, 0, 0, 0,                           // 46: g "t", pad to 56
            8, 7, 6, 5, 4, 3, 2, 1,                                    // 56: t
            4, 0, 0, 0, b'P', b'I', b'D', b's', 0,                     // 64: s
            2, b'a', b'u', 0, 0, 0, 0,                                 // 73: g "au", pad to 4
            8, 0, 0, 0, 7, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0,            // 80: au [7, 8], pad
            8, 0, 0, 0, b'D', b'e', b'l', b'e', b'g', b'a', b't', b'e', 0, // 96: s
            1, b'b', 0, 1, 0, 0, 0, 0, 0, 0, 0,                        // 109: g "b", b true, pad
            11, 0, 0, 0, b'C', b'o', b'l', b'l', b'e', b'c', b't', b'M', b'o', b'd', b'e', 0, // 120: s
            1, b's', 0, 0, 1, 0, 0, 0, b'x', 0,                        // 136: g "s", pad, s "x"
            0, 0, 0, 0, 0, 0,                                          // 146: pad, a(sa(sv)) empty
        ];
        assert_eq!(&msg[msg.len() - expected.len()..], expected);
        // The body's length in the header, and nothing between header and body.
        assert_eq!(msg[4..8], (expected.len() as u32).to_le_bytes());
        assert_eq!(Message::decode(&msg).unwrap().signature, "ssa(sv)a(sa(sv))");
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
