//! `[network]` end to end, as the unprivileged test user, with real pasta:
//! hutch runs inside an outer user+network+mount namespace the test makes
//! (tests/net/outer.sh), which plays the host; a second namespace behind a
//! veth pair plays "the internet" (TEST-NET addresses) and a "LAN" (a
//! private address). No packet leaves these namespaces.

mod common;
mod net;

use std::path::Path;

use common::*;
use net::*;

#[test]
fn user_mode_reaches_the_internet_over_tcp_udp_ipv6_and_dns() {
    let Some(outer) = Outer::new() else { return };
    let user = outer.profile("user.toml", "mode = \"user\"");
    let none = outer.profile("none.toml", "mode = \"none\"");
    outer.file(
        "inside.sh",
        "echo \"addr: $(ip -o -4 addr show scope global)\"\n\
         echo \"route: $(ip route show default)\"\n\
         echo \"tcp: $($PROBE tcp 203.0.113.10 8080)\"\n\
         echo \"udp: $($PROBE udp 203.0.113.10 8081)\"\n\
         echo \"tcp6: $($PROBE tcp 2001:db8:2::10 8080)\"\n\
         echo \"dns: $(getent hosts 203-0-113-10.hutch.test)\"\n\
         echo \"resolv: $(grep -v '^#' /etc/resolv.conf)\"\n",
    );
    let run = |profile: &str| outer.sh(&format!("$HUTCH run --profile {profile} -- sh inside.sh"));
    let o = run(&user);
    let out = ok(&o);
    assert!(field(&out, "addr").contains("198.51.100.2/24"), "{out}");
    assert!(
        field(&out, "route").contains("default via 198.51.100.1"),
        "{out}"
    );
    assert_eq!(field(&out, "tcp"), "hello-internet", "{out}");
    assert_eq!(field(&out, "udp"), "udp-internet", "{out}");
    assert_eq!(field(&out, "tcp6"), "hello-internet-v6", "{out}");
    assert!(field(&out, "dns").starts_with("203.0.113.10"), "{out}");
    // The generated resolv.conf names pasta's forwarder, not the host's resolver.
    assert_eq!(field(&out, "resolv"), "nameserver 169.254.1.1", "{out}");
    assert!(!stderr(&o).contains("syslog"), "{}", stderr(&o));

    // The negative control: without user mode, the same requests fail.
    let out = ok(&run(&none));
    assert_eq!(field(&out, "addr"), "", "{out}");
    assert_eq!(field(&out, "tcp"), "ENETUNREACH", "{out}");
    assert_eq!(field(&out, "dns"), "", "{out}");
}

#[test]
fn the_hosts_loopback_and_abstract_sockets_are_unreachable_unless_opened() {
    let Some(outer) = Outer::new() else { return };
    outer.file(
        "inside.sh",
        "echo \"lo-tcp: $($PROBE tcp 127.0.0.1 9090)\"\n\
         echo \"lo-udp: $($PROBE udp 127.0.0.1 9091)\"\n\
         echo \"gw-tcp: $($PROBE tcp 198.51.100.1 9090)\"\n\
         echo \"x11: $($PROBE abstract hutch-test-x11)\"\n",
    );
    let run = |name: &str, network: &str| {
        let profile = outer.profile(name, network);
        let o = outer.sh(&format!("$HUTCH run --profile {profile} -- sh inside.sh"));
        ok(&o)
    };
    // By default: the sandbox's own loopback, where nothing listens; the
    // gateway is the "internet" side's, not the host's loopback.
    let out = run("default.toml", "mode = \"user\"");
    assert_eq!(field(&out, "lo-tcp"), "ECONNREFUSED", "{out}");
    assert_eq!(field(&out, "lo-udp"), "timeout", "{out}");
    // (Debian 12's pasta lets the refused connection time out.)
    assert_ne!(field(&out, "gw-tcp"), "hello-host-loopback", "{out}");
    assert_eq!(field(&out, "x11"), "ECONNREFUSED", "{out}");

    // Opened per port: the same requests reach the host's servers.
    let out = run(
        "ports.toml",
        "mode = \"user\"\nhost_ports = [9090, \"9091/udp\"]",
    );
    assert_eq!(field(&out, "lo-tcp"), "hello-host-loopback", "{out}");
    assert_eq!(field(&out, "lo-udp"), "udp-host-loopback", "{out}");
    assert_ne!(field(&out, "gw-tcp"), "hello-host-loopback", "{out}");

    // Opened wholly: through the gateway's address.
    let out = run("loopback.toml", "mode = \"user\"\nhost_loopback = true");
    assert_eq!(field(&out, "gw-tcp"), "hello-host-loopback", "{out}");
    assert_eq!(field(&out, "lo-tcp"), "ECONNREFUSED", "{out}");

    // The host's network: its abstract sockets are reachable, which is
    // what user mode keeps out (the network namespace, not Landlock's
    // scoping: with it off, user mode still refuses).
    let scope_off = "\n[landlock]\nscope = \"off\"";
    let out = run("host.toml", &format!("mode = \"host\"{scope_off}"));
    assert_eq!(field(&out, "x11"), "connected", "{out}");
    assert_eq!(field(&out, "lo-tcp"), "hello-host-loopback", "{out}");
    let out = run("user-unscoped.toml", &format!("mode = \"user\"{scope_off}"));
    assert_eq!(field(&out, "x11"), "ECONNREFUSED", "{out}");
    assert_eq!(field(&out, "lo-tcp"), "ECONNREFUSED", "{out}");
    // With the host's network, Landlock's scoping alone still refuses.
    let out = run("host-scoped.toml", "mode = \"host\"");
    assert_eq!(field(&out, "x11"), "EPERM", "{out}");
}

#[test]
fn published_ports_reach_the_sandbox_and_nothing_else_is_forwarded() {
    let Some(outer) = Outer::new() else { return };
    // (Debian 12's pasta loses the replies of a UDP forward to another
    // port number: the UDP one keeps its number.)
    let profile = outer.profile(
        "publish.toml",
        "mode = \"user\"\npublish = [\"8080:8000\", \"127.0.0.1:8001:8001/udp\"]",
    );
    outer.file(
        "servers.sh",
        "$PROBE serve-udp 0.0.0.0 8001 udp-sandbox > /dev/null &\n\
         $PROBE serve-udp 0.0.0.0 7071 udp-unpublished > /dev/null &\n\
         $PROBE serve-tcp 0.0.0.0 7070 unpublished > /dev/null &\n\
         $PROBE serve-tcp 0.0.0.0 8000 hello-sandbox > /dev/null &\n\
         sleep 60\n",
    );
    let o = outer.sh(&format!(
        "$HUTCH run --profile {profile} -- sh servers.sh 2> first.err &\n\
         hutch=$!\n\
         echo \"tcp: $($PROBE tcp 127.0.0.1 8080 20)\"\n\
         echo \"udp: $($PROBE udp 127.0.0.1 8001)\"\n\
         echo \"unpublished-tcp: $($PROBE tcp 127.0.0.1 7070)\"\n\
         echo \"unpublished-udp: $($PROBE udp 127.0.0.1 7071)\"\n\
         echo \"pastas: $(our_pastas | wc -l)\"\n\
         $HUTCH run --profile {profile} -- true 2> second.err\n\
         echo \"second: $?\"\n\
         echo \"pastas-after-second: $(our_pastas | wc -l)\"\n\
         kill $hutch; wait $hutch\n\
         echo \"pastas-at-end: $(our_pastas | wc -l)\"\n"
    ));
    let out = ok(&o);
    assert_eq!(field(&out, "tcp"), "hello-sandbox", "{out}");
    assert_eq!(field(&out, "udp"), "udp-sandbox", "{out}");
    // pasta's automatic forwards (-t auto, -u auto) are off.
    assert_eq!(field(&out, "unpublished-tcp"), "ECONNREFUSED", "{out}");
    assert_ne!(field(&out, "unpublished-udp"), "udp-unpublished", "{out}");
    assert_eq!(field(&out, "pastas"), "1", "{out}");
    // The second sandbox cannot bind the port: a clear error, nothing left.
    assert_ne!(field(&out, "second"), "0", "{out}");
    let second = std::fs::read_to_string(outer.scratch.path().join("second.err")).unwrap();
    assert!(
        second.contains("pasta could not connect the sandbox's network")
            && second.contains("8080")
            && !second.contains("syslog"),
        "{second}"
    );
    assert_eq!(field(&out, "pastas-after-second"), "1", "{out}");
    assert_eq!(field(&out, "pastas-at-end"), "0", "{out}");
}

#[test]
fn sigkill_of_hutch_leaves_no_pasta_and_no_namespace() {
    let Some(outer) = Outer::new() else { return };
    let profile = outer.profile("user.toml", "mode = \"user\"");
    outer.file(
        "payload.sh",
        "readlink /proc/self/ns/net > ns.tmp && mv ns.tmp ns\nsleep 60\n",
    );
    let o = outer.sh(&format!(
        "$HUTCH run --profile {profile} -- sh payload.sh &\n\
         hutch=$!\n\
         for i in $(seq 200); do [ -s ns ] && break; sleep 0.05; done\n\
         ns=$(cat ns)\n\
         echo \"ns: $ns\"\n\
         echo \"pastas: $(our_pastas | wc -l)\"\n\
         kill -KILL $hutch\n\
         holders() {{ for p in /proc/[0-9]*; do [ \"$(readlink $p/ns/net 2>/dev/null)\" = \"$ns\" ] && echo $p; done; true; }}\n\
         for i in $(seq 100); do [ -z \"$(our_pastas)$(holders)\" ] && break; sleep 0.05; done\n\
         echo \"pastas-after: $(our_pastas | wc -l)\"\n\
         echo \"holders-after: $(holders | wc -l)\"\n"
    ));
    let out = ok(&o);
    assert!(field(&out, "ns").starts_with("net:["), "{out}");
    assert_eq!(field(&out, "pastas"), "1", "{out}");
    assert_eq!(field(&out, "pastas-after"), "0", "{out}");
    assert_eq!(field(&out, "holders-after"), "0", "{out}");
}

#[test]
fn without_pasta_required_refuses_and_best_effort_runs_without_network() {
    let Some(outer) = Outer::new() else { return };
    let required = outer.profile("required.toml", "mode = \"user\"");
    let best = outer.profile("best.toml", "mode = \"user\"\nenforce = \"best-effort\"");
    // A PATH where neither pasta nor slirp4netns is found.
    let o = outer.sh(&format!(
        "PATH=/nonexistent $HUTCH run --profile {required} -- /bin/true"
    ));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("cannot be set up here") && err.contains("`passt`"),
        "{err}"
    );
    let o = outer.sh(&format!(
        "PATH=/nonexistent $HUTCH run --profile {best} -- /bin/cat /proc/net/dev"
    ));
    let out = ok(&o);
    assert!(
        stderr(&o).contains("not enforced: [network] mode = \"user\" (best-effort)"),
        "{}",
        stderr(&o)
    );
    assert!(
        out.contains("lo:") && !out.contains("tap0") && out.lines().count() == 3,
        "{out}"
    );
}

#[test]
fn egress_refuses_private_ranges_by_default_and_allow_opens_them() {
    let Some(outer) = Outer::new() else { return };
    outer.file(
        "inside.sh",
        "echo \"lan: $($PROBE tcp 10.77.0.10 8080)\"\n\
         echo \"internet: $($PROBE tcp 203.0.113.10 8080)\"\n\
         echo \"dns: $(getent hosts 203-0-113-10.hutch.test)\"\n",
    );
    let run = |name: &str, network: &str| {
        let profile = outer.profile(name, network);
        ok(&outer.sh(&format!("$HUTCH run --profile {profile} -- sh inside.sh")))
    };
    let out = run("default.toml", "mode = \"user\"");
    assert_eq!(field(&out, "lan"), "ECONNREFUSED", "{out}");
    assert_eq!(field(&out, "internet"), "hello-internet", "{out}");
    assert!(field(&out, "dns").starts_with("203.0.113.10"), "{out}");

    // The negative control: without the rules the LAN answers.
    let out = run("off.toml", "mode = \"user\"\nfilter = \"off\"");
    assert_eq!(field(&out, "lan"), "hello-lan", "{out}");

    // Allowing the range opens it, and only it.
    let out = run(
        "allow-lan.toml",
        "mode = \"user\"\nallow = [\"10.77.0.0/24:8080/tcp\"]",
    );
    assert_eq!(field(&out, "lan"), "hello-lan", "{out}");
    assert_eq!(field(&out, "internet"), "hello-internet", "{out}");

    // An allow list outside the default ranges refuses the rest; DNS stays.
    let out = run(
        "allow-443.toml",
        "mode = \"user\"\nallow = [\"0.0.0.0/0:443\", \"[::]/0:443\"]",
    );
    assert_eq!(field(&out, "internet"), "ECONNREFUSED", "{out}");
    assert_eq!(field(&out, "lan"), "ECONNREFUSED", "{out}");
    assert!(field(&out, "dns").starts_with("203.0.113.10"), "{out}");

    // A deny entry wins over the default allow.
    let out = run("deny.toml", "mode = \"user\"\ndeny = [\"203.0.113.0/24\"]");
    assert_eq!(field(&out, "internet"), "ECONNREFUSED", "{out}");
}

#[test]
fn dns_works_where_the_hosts_resolv_conf_is_a_symlink_and_the_host_file_stays_hidden() {
    let Some(outer) = Outer::new() else { return };
    // As on a systemd-resolved host: /etc/resolv.conf is a symlink into a
    // directory the sandbox does not see. /etc is rebuilt on a tmpfs from
    // binds of the original entries, with that symlink among them.
    let o = outer.sh("mkdir -p resolved etc-orig\n\
         printf '# the-hosts-own-file\\nnameserver 203.0.113.10\\n' > resolved/stub-resolv.conf\n\
         mount --bind /etc etc-orig\n\
         mount -t tmpfs -o mode=0755 tmpfs /etc\n\
         for e in etc-orig/* etc-orig/.[!.]*; do\n\
           n=${e#etc-orig/}\n\
           [ -e \"$e\" ] || [ -L \"$e\" ] || continue\n\
           [ \"$n\" = resolv.conf ] && continue\n\
           if [ -L \"$e\" ]; then ln -s \"$(readlink \"$e\")\" \"/etc/$n\"\n\
           elif [ -d \"$e\" ]; then mkdir \"/etc/$n\" && mount --rbind \"$e\" \"/etc/$n\"\n\
           else touch \"/etc/$n\" && mount --bind \"$e\" \"/etc/$n\"; fi\n\
         done\n\
         ln -s \"$PWD/resolved/stub-resolv.conf\" /etc/resolv.conf\n\
         echo \"link: $(readlink /etc/resolv.conf)\"\n");
    assert!(field(&ok(&o), "link").ends_with("/resolved/stub-resolv.conf"));
    outer.file(
        "inside.sh",
        "echo \"dns: $(getent hosts 203-0-113-10.hutch.test)\"\n\
         echo \"resolv: $(grep -v '^#' /etc/resolv.conf)\"\n\
         echo \"stub: $(cat resolved/stub-resolv.conf 2>&1 | grep -c the-hosts-own-file)\"\n",
    );
    let user = outer.profile("user.toml", "mode = \"user\"");
    let out = ok(&outer.sh(&format!("$HUTCH run --profile {user} -- sh inside.sh")));
    assert!(field(&out, "dns").starts_with("203.0.113.10"), "{out}");
    assert_eq!(field(&out, "resolv"), "nameserver 169.254.1.1", "{out}");
    // The scratch directory is bound, so the host's file is there to read
    // by its own path; through /etc/resolv.conf it is not.
    assert_eq!(field(&out, "stub"), "1", "{out}");

    // The negative control: in mode none the symlink is the host's, and
    // leads to the host's file.
    let none = outer.profile("none.toml", "mode = \"none\"");
    outer.file(
        "inside-none.sh",
        "echo \"resolv: $(grep -c the-hosts-own-file /etc/resolv.conf)\"\n",
    );
    let out = ok(&outer.sh(&format!("$HUTCH run --profile {none} -- sh inside-none.sh")));
    assert_eq!(field(&out, "resolv"), "1", "{out}");
}

#[test]
fn without_pasta_slirp4netns_connects_the_sandbox_unless_the_profile_forwards_ports() {
    let Some(outer) = Outer::new() else { return };
    if !Path::new("/usr/bin/slirp4netns").exists() {
        assert!(std::env::var_os("CI").is_none(), "CI installs slirp4netns");
        skip("slirp4netns is not installed");
        return;
    }
    // A PATH with slirp4netns and without pasta.
    let o = outer.sh(
        "mkdir -p nopasta && ln -sf /usr/bin/slirp4netns nopasta/slirp4netns && echo made: yes",
    );
    assert_eq!(field(&ok(&o), "made"), "yes");
    outer.file(
        "inside.sh",
        "export PATH=/usr/bin:/bin\n\
         echo \"addr: $(ip -o -4 addr show scope global)\"\n\
         echo \"tcp: $($PROBE tcp 203.0.113.10 8080)\"\n\
         echo \"udp: $($PROBE udp 203.0.113.10 8081)\"\n\
         echo \"dns: $(getent hosts 203-0-113-10.hutch.test)\"\n\
         echo \"resolv: $(grep -v '^#' /etc/resolv.conf)\"\n\
         echo \"lan: $($PROBE tcp 10.77.0.10 8080)\"\n\
         echo \"host-lo: $($PROBE tcp 10.0.2.2 9090)\"\n\
",
    );
    let user = outer.profile("user.toml", "mode = \"user\"");
    let o = outer.sh(&format!(
        "PATH=$PWD/nopasta $HUTCH run --profile {user} -- /bin/sh inside.sh"
    ));
    let out = ok(&o);
    assert!(field(&out, "addr").contains("10.0.2.100/24"), "{out}");
    assert_eq!(field(&out, "tcp"), "hello-internet", "{out}");
    assert_eq!(field(&out, "udp"), "udp-internet", "{out}");
    assert!(field(&out, "dns").starts_with("203.0.113.10"), "{out}");
    assert_eq!(field(&out, "resolv"), "nameserver 10.0.2.3", "{out}");
    // The egress rules hold with it too, and its host-loopback address is off.
    assert_eq!(field(&out, "lan"), "ECONNREFUSED", "{out}");
    assert_ne!(field(&out, "host-lo"), "hello-host-loopback", "{out}");
    // The negative control for the last: opened, the gateway reaches the
    // host's loopback.
    let open = outer.profile(
        "open.toml",
        "mode = \"user\"\nhost_loopback = true\nallow = [\"10.0.2.2/32\"]",
    );
    let out = ok(&outer.sh(&format!(
        "PATH=$PWD/nopasta $HUTCH run --profile {open} -- /bin/sh inside.sh"
    )));
    assert_eq!(field(&out, "host-lo"), "hello-host-loopback", "{out}");

    // What it cannot honour: single forwarded ports. Refused, naming pasta.
    let ports = outer.profile("ports.toml", "mode = \"user\"\nhost_ports = [9090]");
    let o = outer.sh(&format!(
        "PATH=$PWD/nopasta $HUTCH run --profile {ports} -- /bin/true"
    ));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("`passt`"), "{}", stderr(&o));
}

#[test]
fn doctor_tries_pasta_and_slirp4netns_for_real() {
    let Some(outer) = Outer::new() else { return };
    let line = |out: &str, name: &str| -> String {
        out.lines()
            .find(|l| {
                l.get(5..)
                    .is_some_and(|r| r.starts_with(&format!("{name} ")))
            })
            .unwrap_or_else(|| panic!("no `{name}` line in:\n{out}"))
            .to_string()
    };
    let out = ok(&outer.sh("$HUTCH doctor; true"));
    for name in ["pasta", "slirp4netns", "/dev/net/tun"] {
        assert!(line(&out, name).starts_with("ok "), "{out}");
    }
    assert!(line(&out, "pasta").contains("TCP round trip"), "{out}");

    // Missing: the package is named. A program that does not connect: its
    // failure is reported, with what it said.
    let o = outer.sh(
        "mkdir -p fake && printf '#!/bin/sh\\necho cannot do it >&2\\nexit 1\\n' > fake/pasta && chmod 755 fake/pasta\n\
         ln -sf /usr/bin/slirp4netns fake/slirp4netns\n\
         PATH=/nonexistent $HUTCH doctor > missing.txt; PATH=$PWD/fake $HUTCH doctor; true",
    );
    let out = ok(&o);
    let pasta = line(&out, "pasta");
    assert!(
        pasta.starts_with("WARN") && pasta.contains("cannot do it"),
        "{out}"
    );
    assert!(line(&out, "slirp4netns").starts_with("ok "), "{out}");
    let missing = std::fs::read_to_string(outer.scratch.path().join("missing.txt")).unwrap();
    let pasta = line(&missing, "pasta");
    assert!(
        pasta.starts_with("WARN") && pasta.contains("not installed"),
        "{missing}"
    );
    assert!(missing.contains("`passt`"), "{missing}");
}

#[test]
fn host_mode_is_warned_by_explain_and_by_each_run() {
    let s = Scratch::new();
    s.write(
        "host.toml",
        "version = 1\nextends = [\"cli\"]\n[network]\nmode = \"host\"\n",
    );
    s.write("none.toml", "version = 1\nextends = [\"cli\"]\n");
    let warning =
        "the host's network is shared: services on the host's localhost, its abstract unix sockets";
    let o = s.run(&["--explain", "--profile", "./host.toml"], &["true"]);
    assert!(ok(&o).contains(warning), "{}", stdout(&o));
    let o = s.run(&["-v", "--profile", "./host.toml"], &["true"]);
    ok(&o);
    assert!(stderr(&o).contains(warning), "{}", stderr(&o));
    // The negative control: the default network says nothing of the kind.
    let o = s.run(&["--explain", "--profile", "./none.toml"], &["true"]);
    assert!(!ok(&o).contains("host's network"), "{}", stdout(&o));
    let o = s.run(&["-v", "--profile", "./none.toml"], &["true"]);
    ok(&o);
    assert!(!stderr(&o).contains("host's network"), "{}", stderr(&o));
}

#[test]
fn the_shipped_curl_profile_fetches_from_the_internet_and_not_from_the_lan() {
    let Some(outer) = Outer::new() else { return };
    let o = outer.sh(
        "alias curl=\"$HUTCH run curl\"\n\
         echo \"internet: $(curl -sS --max-time 10 http://203-0-113-10.hutch.test:8080/ 2>&1)\"\n\
         echo \"saved: $(curl -sS --max-time 10 -o page.txt http://203.0.113.10:8080/ 2>&1; cat page.txt)\"\n\
         echo \"lan: $(curl -sS --max-time 10 http://10.77.0.10:8080/ 2>&1)\"\n\
         echo \"host-lo: $(curl -sS --max-time 10 http://127.0.0.1:9090/ 2>&1)\"\n\
         echo \"cli: $($HUTCH run --profile cli curl -sS --max-time 10 http://203.0.113.10:8080/ 2>&1)\"\n",
    );
    let out = ok(&o);
    assert_eq!(field(&out, "internet"), "hello-internet", "{out}");
    assert_eq!(field(&out, "saved"), "hello-internet", "{out}");
    assert!(field(&out, "lan").contains("Failed to connect"), "{out}");
    assert!(
        field(&out, "host-lo").contains("Failed to connect"),
        "{out}"
    );
    // The negative control: `cli` has no network.
    assert!(field(&out, "cli").contains("Failed to connect"), "{out}");
}

#[test]
fn ps_shows_the_network_and_exec_joins_it() {
    let Some(outer) = Outer::new() else { return };
    let profile = outer.profile(
        "publish.toml",
        "mode = \"user\"\npublish = [\"8080:8000\"]\nhost_ports = [9090]",
    );
    outer.file(
        "serve.sh",
        "exec $PROBE serve-tcp 0.0.0.0 8000 hello-sandbox\n",
    );
    let o = outer.sh(&format!(
        "$HUTCH run --name netbox --profile {profile} -- sh serve.sh > /dev/null 2> run.err &\n\
         hutch=$!\n\
         echo \"tcp: $($PROBE tcp 127.0.0.1 8080 20)\"\n\
         echo \"ps: $($HUTCH ps --json | tr -d '\\n ')\"\n\
         echo \"exec-addr: $($HUTCH exec netbox ip -o -4 addr show scope global)\"\n\
         echo \"exec-lo: $($HUTCH exec netbox $PROBE tcp 127.0.0.1 8000)\"\n\
         echo \"exec-host: $($HUTCH exec netbox $PROBE tcp 127.0.0.1 9090)\"\n\
         kill $hutch; wait $hutch; true\n"
    ));
    let out = ok(&o);
    assert_eq!(field(&out, "tcp"), "hello-sandbox", "{out}");
    let ps = field(&out, "ps");
    assert!(
        ps.contains(r#""network":{"mode":"user","backend":"pasta","publish":["127.0.0.1:8080->8000/tcp"],"host_ports":["9090/tcp"],"host_loopback":false"#),
        "{ps}"
    );
    // exec joins the sandbox's network: its address, its own loopback
    // service, and the host port the profile opened.
    assert!(
        field(&out, "exec-addr").contains("198.51.100.2/24"),
        "{out}"
    );
    assert_eq!(field(&out, "exec-lo"), "hello-sandbox", "{out}");
    assert_eq!(field(&out, "exec-host"), "hello-host-loopback", "{out}");
}

#[test]
fn the_network_flag_connects_one_run_of_a_profile_without_a_network() {
    let Some(outer) = Outer::new() else { return };
    let o = outer.sh(
        "echo \"flag: $($HUTCH run --profile cli --network user -- $PROBE tcp 203.0.113.10 8080 2>&1)\"\n\
         for i in $(seq 100); do [ -z \"$(our_pastas)\" ] && break; sleep 0.05; done\n\
         echo \"pastas-after: $(our_pastas | wc -l)\"\n\
         echo \"flag-none: $($HUTCH run --profile cli --network none -- $PROBE tcp 203.0.113.10 8080 2>&1)\"\n\
         echo \"profile: $($HUTCH run --profile cli -- $PROBE tcp 203.0.113.10 8080 2>&1)\"\n",
    );
    let out = ok(&o);
    assert_eq!(field(&out, "flag"), "hello-internet", "{out}");
    // pasta does not outlive the run (hutch kills it at exit).
    assert_eq!(field(&out, "pastas-after"), "0", "{out}");
    // The negative controls: `--network none`, and cli's own network.
    assert_eq!(field(&out, "flag-none"), "ENETUNREACH", "{out}");
    assert_eq!(field(&out, "profile"), "ENETUNREACH", "{out}");
}

#[test]
fn the_network_flags_errors_point_at_the_flag_and_host_is_warned() {
    let s = Scratch::new();
    let o = s.run(&["--profile", "cli", "--network", "usr"], &["true"]);
    fails_with(
        &o,
        125,
        "error: `--network` takes none, host or user, not \"usr\"",
    );
    assert!(
        stderr(&o).contains("--> command line:1:11"),
        "{}",
        stderr(&o)
    );
    // `--publish` needs user mode, from the profile or the flag.
    let o = s.run(&["--profile", "cli", "--publish", "8080:80"], &["true"]);
    fails_with(
        &o,
        125,
        "key `network.publish` applies only to `mode = \"user\"`",
    );
    assert!(
        stderr(&o).contains("help: add `--network user`, or leave the flag out"),
        "{}",
        stderr(&o)
    );
    let o = s.run(
        &[
            "--profile",
            "cli",
            "--network",
            "user",
            "--publish",
            "8080:",
        ],
        &["true"],
    );
    fails_with(&o, 125, "--publish 8080:");
    let warning =
        "the host's network is shared: services on the host's localhost, its abstract unix sockets";
    let o = s.run(
        &["--explain", "--profile", "cli", "--network", "host"],
        &["true"],
    );
    let out = ok(&o);
    assert!(out.contains(warning), "{out}");
    assert!(out.contains("(from command line:1:11)"), "{out}");
    let o = s.run(&["-v", "--profile", "cli", "--network", "host"], &["true"]);
    ok(&o);
    assert!(stderr(&o).contains(warning), "{}", stderr(&o));
    // The control: the same profile without the flag is not warned about.
    let o = s.run(&["-v", "--profile", "cli"], &["true"]);
    ok(&o);
    assert!(!stderr(&o).contains("host's network"), "{}", stderr(&o));
}
