//! hutch's D-Bus client (src/dbus/) against a real `dbus-daemon`
//! (Debian package `dbus-daemon`), started here on a private bus: the
//! daemon checks every message hutch sends, so a marshalling mistake shows
//! up as a disconnection. Then `systemd::start_scope` runs end to end
//! against a fake systemd served on that bus. Prints `SKIP:` when there is
//! no dbus-daemon. (The real systemd is tests/cgroup_vm.rs.)

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hutch::dbus::{BUS_NAME, Connection, DbusError, Kind, Message, Value};
use hutch::helpers::cgroup::systemd::{self, Prop};
use hutch::host::cgroups::CgroupHost;

/// A dbus-daemon of this test, listening on a socket file and on an
/// abstract socket; killed when dropped.
struct Daemon {
    child: Child,
    /// What it printed: both addresses, `;`-separated, with their guid.
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dbus_daemon() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("dbus-daemon"))
        .find(|p| p.exists())
}

fn start_daemon() -> Option<Daemon> {
    let Some(bin) = dbus_daemon() else {
        skip("no dbus-daemon in PATH (Debian package dbus-daemon)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let abstract_name = format!(
        "hutch-test-{}-{}",
        std::process::id(),
        dir.path().file_name().unwrap().to_string_lossy()
    );
    let config = dir.path().join("bus.conf");
    std::fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}/bus</listen>
  <listen>unix:abstract={abstract_name}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            dir.path().display()
        ),
    )
    .unwrap();
    let child = Command::new(&bin)
        .arg(format!("--config-file={}", config.display()))
        .args(["--nofork", "--print-address"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Its warnings (an fd limit it cannot raise) are not this test's.
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Owned from here on, so that it is killed even if the test fails.
    let mut daemon = Daemon {
        child,
        address: String::new(),
        _dir: dir,
    };
    let mut line = String::new();
    BufReader::new(daemon.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    daemon.address = line.trim().to_owned();
    assert!(
        daemon.address.contains("unix:path=") && daemon.address.contains("unix:abstract="),
        "{} printed {line:?}",
        bin.display()
    );
    Some(daemon)
}

/// The entry of the daemon's address that starts with `prefix`.
fn entry<'a>(daemon: &'a Daemon, prefix: &str) -> &'a str {
    daemon
        .address
        .split(';')
        .find(|a| a.starts_with(prefix))
        .unwrap()
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn bus_call(member: &str, args: &[Value]) -> Message {
    Message::method_call(BUS_NAME, "/org/freedesktop/DBus", BUS_NAME, member, args).unwrap()
}

#[test]
fn talking_to_a_real_dbus_daemon() {
    let Some(daemon) = start_daemon() else {
        return;
    };
    // The whole address (two entries, each with its guid) and each entry.
    let mut c = Connection::open(&daemon.address, soon()).unwrap();
    assert!(c.unique_name().starts_with(":1."), "{}", c.unique_name());
    let by_path = Connection::open(entry(&daemon, "unix:path="), soon()).unwrap();
    let by_name = Connection::open(entry(&daemon, "unix:abstract="), soon()).unwrap();
    assert_ne!(by_path.unique_name(), by_name.unique_name());

    let id = c.call(&bus_call("GetId", &[])).unwrap();
    match id.args("s").unwrap().as_slice() {
        [Value::Str(id)] => assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        ),
        other => panic!("{other:?}"),
    }
    let names = c.call(&bus_call("ListNames", &[])).unwrap();
    match names.args("as").unwrap().as_slice() {
        [Value::Array(_, names)] => {
            let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
            assert!(names.contains(&BUS_NAME), "{names:?}");
            assert!(names.contains(&c.unique_name()), "{names:?}");
        }
        other => panic!("{other:?}"),
    }

    // An error reply: its name and its message.
    let e = c.call(&bus_call("NoSuchMethod", &[])).unwrap_err();
    assert!(matches!(e, DbusError::Reply { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("org.freedesktop.DBus.Error.UnknownMethod: ")
            && text.contains("NoSuchMethod"),
        "{text}"
    );
    // The connection goes on after an error.
    c.call(&bus_call("GetId", &[])).unwrap();
}

/// The cgroup probe and the client read an address alike: the probe says
/// there is a bus exactly where the client connects (before both used one
/// parser, the probe called the last two addresses here missing), and
/// says why not where the client cannot.
#[test]
fn the_probe_finds_the_bus_the_client_connects_to() {
    let Some(daemon) = start_daemon() else {
        return;
    };
    let by_path = entry(&daemon, "unix:path=");
    let by_name = entry(&daemon, "unix:abstract=");
    let probe = |address: &str| {
        let address = address.to_owned();
        // Any uid but root's reads the session bus's variable.
        CgroupHost::probe(4242, &move |key| {
            (key == "DBUS_SESSION_BUS_ADDRESS").then(|| address.clone())
        })
    };
    for address in [
        daemon.address.clone(),
        by_path.to_owned(),
        by_name.to_owned(),
        format!("tcp:host=127.0.0.1,port=1;{by_name}"),
        format!("unix:path=;{by_path}"),
        format!("unix:path=%zz;{by_name}"),
    ] {
        let host = probe(&address);
        assert_eq!(host.bus_missing, None, "{address}");
        assert_eq!(host.bus.unwrap().address, address);
        Connection::open(&address, soon()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    for (address, why) in [
        (
            format!("unix:path={}/none", dir.path().display()),
            "no D-Bus socket at",
        ),
        (
            "tcp:host=127.0.0.1,port=1".to_owned(),
            "unsupported D-Bus address",
        ),
    ] {
        let host = probe(&address);
        assert!(host.bus.is_none(), "{address}");
        let missing = host.bus_missing.unwrap();
        assert!(missing.starts_with(why), "{address}: {missing}");
        assert!(Connection::open(&address, soon()).is_err(), "{address}");
    }
}

/// The daemon validates what it forwards: a StartTransientUnit call with
/// every property type hutch sends arrives intact at another connection.
#[test]
fn messages_cross_the_daemon_intact() {
    let Some(daemon) = start_daemon() else {
        return;
    };
    let mut a = Connection::open(&daemon.address, soon()).unwrap();
    let mut b = Connection::open(&daemon.address, soon()).unwrap();
    let args = [
        Value::Str("app-hutch-t-1.scope".into()),
        Value::Str("fail".into()),
        Value::Array(
            "(sv)".into(),
            vec![
                Value::Struct(vec![
                    Value::Str("MemoryMax".into()),
                    Value::Variant(Box::new(Value::U64(u64::MAX - 1))),
                ]),
                Value::Struct(vec![
                    Value::Str("PIDs".into()),
                    Value::Variant(Box::new(Value::Array(
                        "u".into(),
                        vec![Value::U32(1), Value::U32(2)],
                    ))),
                ]),
                Value::Struct(vec![
                    Value::Str("Delegate".into()),
                    Value::Variant(Box::new(Value::Bool(true))),
                ]),
                Value::Struct(vec![
                    Value::Str("Description".into()),
                    Value::Variant(Box::new(Value::Str("x y".into()))),
                ]),
            ],
        ),
        Value::Array("(sa(sv))".into(), Vec::new()),
    ];
    let call = Message::method_call(
        b.unique_name(),
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "StartTransientUnit",
        &args,
    )
    .unwrap();
    let serial = a.send(&call).unwrap();
    let got = loop {
        let m = b.read_message().unwrap();
        if m.kind == Kind::MethodCall {
            break m;
        }
    };
    assert_eq!(got.sender.as_deref(), Some(a.unique_name()));
    assert_eq!(got.args("ssa(sv)a(sa(sv))").unwrap(), args);

    let mut err = Message::new(Kind::Error, &[Value::Str("not today".into())]).unwrap();
    err.error_name = Some("org.example.Error.Nope".into());
    err.reply_serial = Some(got.serial);
    err.destination = got.sender.clone();
    b.send(&err).unwrap();
    let e = a.wait_reply(serial).unwrap_err();
    assert_eq!(e.to_string(), "org.example.Error.Nope: not today");
}

/// systemd, as far as hutch sees it: owns org.freedesktop.systemd1,
/// answers Subscribe and StartTransientUnit, and then emits JobRemoved with
/// `result`. Before that, another connection sends hutch a forged JobRemoved
/// saying `done`, which hutch must ignore.
fn fake_systemd(address: String, result: &'static str) -> std::thread::JoinHandle<Vec<Value>> {
    let mut sd = Connection::open(&address, soon()).unwrap();
    let mut forger = Connection::open(&address, soon()).unwrap();
    // ALLOW_REPLACEMENT | REPLACE_EXISTING | DO_NOT_QUEUE: the fake of an
    // earlier call may not be gone from the bus yet (the daemon handles its
    // disconnection asynchronously); this one takes the name over.
    let owned = sd
        .call(&bus_call(
            "RequestName",
            &[Value::Str("org.freedesktop.systemd1".into()), Value::U32(7)],
        ))
        .unwrap();
    assert_eq!(owned.args("u").unwrap(), [Value::U32(1)], "primary owner");
    std::thread::spawn(move || {
        let job = "/org/freedesktop/systemd1/job/42";
        let reply = |sd: &mut Connection, call: &Message, args: &[Value]| {
            let mut r = Message::new(Kind::Return, args).unwrap();
            r.reply_serial = Some(call.serial);
            r.destination = call.sender.clone();
            sd.send(&r).unwrap();
        };
        let job_removed = |result: &str| {
            let mut s = Message::new(
                Kind::Signal,
                &[
                    Value::U32(42),
                    Value::ObjectPath(job.into()),
                    Value::Str("app-hutch-t-1.scope".into()),
                    Value::Str(result.into()),
                ],
            )
            .unwrap();
            s.path = Some("/org/freedesktop/systemd1".into());
            s.interface = Some("org.freedesktop.systemd1.Manager".into());
            s.member = Some("JobRemoved".into());
            s
        };
        loop {
            let call = sd.read_message().unwrap();
            if call.kind != Kind::MethodCall {
                continue;
            }
            match call.member.as_deref() {
                Some("Subscribe") => reply(&mut sd, &call, &[]),
                Some("StartTransientUnit") => {
                    let args = call.args("ssa(sv)a(sa(sv))").unwrap();
                    reply(&mut sd, &call, &[Value::ObjectPath(job.into())]);
                    let mut forged = job_removed("done");
                    forged.destination = call.sender.clone();
                    forger.send(&forged).unwrap();
                    // A round trip: the daemon has passed the forgery on
                    // before the real signal is sent.
                    forger.call(&bus_call("GetId", &[])).unwrap();
                    sd.send(&job_removed(result)).unwrap();
                    return args;
                }
                other => panic!("unexpected call {other:?}"),
            }
        }
    })
}

/// Waits (up to 10 s) until nobody owns `name` on the bus.
fn wait_until_unowned(address: &str, name: &str) {
    let mut c = Connection::open(address, soon()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let owned = c
            .call(&bus_call("NameHasOwner", &[Value::Str(name.into())]))
            .unwrap();
        if owned.args("b").unwrap() == [Value::Bool(false)] {
            return;
        }
        assert!(Instant::now() < deadline, "{name} stays owned");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn start_scope_against_a_fake_systemd() {
    let Some(daemon) = start_daemon() else {
        return;
    };
    let props = || {
        vec![
            ("PIDs", Prop::Pids(vec![4242])),
            ("Delegate", Prop::Bool(true)),
            ("MemoryMax", Prop::U64(50 << 20)),
            ("CollectMode", Prop::Str("inactive-or-failed".into())),
        ]
    };

    let sd = fake_systemd(daemon.address.clone(), "done");
    systemd::start_scope(&daemon.address, false, "app-hutch-t-1.scope", props()).unwrap();
    let args = sd.join().unwrap();
    assert_eq!(args[0], Value::Str("app-hutch-t-1.scope".into()));
    assert_eq!(args[1], Value::Str("fail".into()));
    let Value::Array(_, props_sent) = &args[2] else {
        panic!("{args:?}")
    };
    assert_eq!(
        props_sent[0],
        Value::Struct(vec![
            Value::Str("PIDs".into()),
            Value::Variant(Box::new(Value::Array("u".into(), vec![Value::U32(4242)])))
        ])
    );
    assert_eq!(props_sent.len(), 4);

    // The forged `done` is ignored; the real `failed` is the answer.
    let sd = fake_systemd(daemon.address.clone(), "failed");
    let e = systemd::start_scope(&daemon.address, false, "app-hutch-t-1.scope", props())
        .unwrap_err()
        .to_string();
    sd.join().unwrap();
    assert_eq!(
        e,
        format!(
            "your systemd user manager ({}): the job starting app-hutch-t-1.scope ended with `failed` (see `journalctl --user -u app-hutch-t-1.scope`)",
            daemon.address
        )
    );

    // Nobody owns the name any more: the bus's error, and what failed. (The
    // daemon drops the fake's ownership when it has handled its
    // disconnection, which may come after the fake's thread has ended.)
    wait_until_unowned(&daemon.address, "org.freedesktop.systemd1");
    let e = systemd::start_scope(&daemon.address, true, "app-hutch-t-1.scope", props())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "the systemd system manager ({}): Subscribe failed: org.freedesktop.DBus.Error.ServiceUnknown: ",
            daemon.address
        )),
        "{e}"
    );
}

/// Prints a skip notice that shows in a plain `cargo test` run: libtest
/// captures only the print macros, so this writes to stderr directly.
fn skip(reason: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
}
