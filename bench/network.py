#!/usr/bin/python3
"""[network] costs in one run: pasta's own start, hutch's launch in mode
"user" (pasta, slirp4netns, with and without egress rules) against mode
"none", bulk TCP throughput (iperf3) and request round trips through pasta
and slirp4netns against the bare "host", and 1,000 launches with random
SIGKILLs of hutch, counting orphaned pasta processes and namespaces.

    bench/network.py [HUTCH]        (as an ordinary user; see bench/README.md)

It re-runs itself in an outer user+network+mount namespace (`unshare
-Urnm`) that plays the host, with a veth pair to a second namespace that
plays the internet (198.51.100.0/24, 203.0.113.10; a "LAN" 10.77.0.10), as
tests/network.rs does: no packet leaves the machine. Settings:
BENCH_NET_RUNS (launches per row, default 100), BENCH_NET_KILLS (default
1000), BENCH_NET_SECONDS (per iperf3 transfer, default 3).
"""
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("BENCH_NET_RUNS", "100"))
KILLS = int(os.environ.get("BENCH_NET_KILLS", "1000"))
SECONDS = int(os.environ.get("BENCH_NET_SECONDS", "3"))
INTERNET = "203.0.113.10"
LAN = "10.77.0.10"
ECHO_PORT = 7001
TRIPS = 2000
# The system's python (the sandbox sees /usr), and this script's copy in
# the work directory, which the `cli` profile binds.
PY = "/usr/bin/python3"
SCRIPT = os.path.abspath(__file__)


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def setup():
    """The outer namespace as the host, a second one as the internet."""
    sh("ip link set lo up")
    r, w = os.pipe()
    inet = subprocess.Popen(
        ["unshare", "-n", "sh", "-c", f"echo > /proc/self/fd/{w}; exec sleep infinity"],
        pass_fds=[w],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.close(w)
    os.read(r, 1)
    os.close(r)
    pid = inet.pid
    sh(f"ip link add veth0 type veth peer name veth1 netns /proc/{pid}/ns/net")
    sh("ip addr add 198.51.100.2/24 dev veth0 && ip link set veth0 up")
    sh(
        f"nsenter -t {pid} -n sh -eu -c 'ip link set lo up; ip addr add 198.51.100.1/24 dev veth1; "
        f"ip addr add {INTERNET}/32 dev veth1; ip addr add {LAN}/32 dev veth1; ip link set veth1 up'"
    )
    sh("ip route add default via 198.51.100.1")
    global SCRIPT
    work = tempfile.mkdtemp(prefix="hutch-netbench-")
    os.chmod(work, 0o755)
    shutil.copy(SCRIPT, f"{work}/network.py")
    SCRIPT = f"{work}/network.py"
    # hutch's runtime directory (this namespace's root is the caller): a
    # directory of its own beside the work directory, never inside it, as
    # hutch refuses to bind a working directory that holds the runtime
    # directory (the sockets of tmux, ssh-agent, X11 and the session bus).
    run = tempfile.mkdtemp(prefix="hutch-netbench-run-")
    os.environ["XDG_RUNTIME_DIR"] = run
    with open(f"{work}/resolv.conf", "w") as f:
        f.write(f"nameserver {INTERNET}\n")
    sh(f"mount --bind {work}/resolv.conf /etc/resolv.conf")
    servers = [inet]
    inet_run = ["nsenter", "-t", str(pid), "-n"]
    for cmd in (
        inet_run + ["iperf3", "-s", "-B", INTERNET, "-p", "5201"],
        ["iperf3", "-s", "-B", "127.0.0.1", "-p", "5202"],
        inet_run + [PY, SCRIPT, "--echo", INTERNET],
        [PY, SCRIPT, "--echo", "127.0.0.1"],
    ):
        servers.append(
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        )
    for addr, port in ((INTERNET, 5201), ("127.0.0.1", 5202), (INTERNET, ECHO_PORT), ("127.0.0.1", ECHO_PORT)):
        for _ in range(200):
            try:
                socket.create_connection((addr, port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
    return work, run, pid, servers


def echo_server(addr):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, ECHO_PORT))
    s.listen(16)

    def serve(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with c:
            while True:
                b = c.recv(64)
                if not b:
                    return
                c.sendall(b)

    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def rr_client(addr, port, trips):
    """Prints the median round trip of a 1-byte request, in microseconds."""
    c = socket.create_connection((addr, int(port)), timeout=5)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(int(trips)):
        t = time.perf_counter_ns()
        c.sendall(b"x")
        c.recv(64)
        times.append(time.perf_counter_ns() - t)
    print(statistics.median(times) / 1000)


def profile(work, name, network):
    path = f"{work}/{name}.toml"
    with open(path, "w") as f:
        f.write(f'version = 1\nextends = ["cli"]\n[network]\n{network}\n')
    return path


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def pasta_start(n, userns=False):
    """pasta's own start (spawn to PID file, against a fresh namespace),
    and its end (SIGKILL to reaped: the kernel removes its tap device).
    Without `userns` the namespace is held by a process without
    capabilities in this user namespace: pasta, which keeps only a few,
    may not open the namespace of one holding more (the kernel's ptrace
    check), and would fail at once."""
    times, teardown = [], []
    for _ in range(n):
        holder = subprocess.Popen(
            (["unshare", "-Urn"] if userns else ["unshare", "-n", "setpriv", "--bounding-set=-all"])
            + ["sh", "-c", "echo; exec sleep 60"], stdout=subprocess.PIPE)
        holder.stdout.readline()  # in its namespace, without capabilities
        t = time.perf_counter()
        p = subprocess.Popen(
            ["pasta", "--config-net", "--foreground", "--quiet", "--pid", "/proc/self/fd/1",
             "--netns", f"/proc/{holder.pid}/ns/net", "--no-netns-quit", "--no-map-gw",
             # root here (the outer namespace), as hutch does: not nobody
             *(["--runas", "0"] if os.getuid() == 0 else []), *(
                 ["--userns", f"/proc/{holder.pid}/ns/user"] if userns else []),
             "-t", "none", "-u", "none", "-T", "none", "-U", "none"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        if not p.stdout.read(1):  # end of file: pasta failed, nothing to time
            p.wait()
            holder.kill()
            holder.wait()
            sys.exit(f"pasta alone failed: {p.stderr.read().decode().strip()}")
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        p.kill()
        p.wait()
        teardown.append(time.perf_counter() - t)
        holder.kill()
        holder.wait()
    return times, teardown


def launches(hutch, work, rows, n):
    """Interleaved rounds of `hutch run --profile P -- /bin/true`."""
    times = {name: [] for name, _ in rows}
    for name, prof in rows:  # warm-up, and a check that each row runs
        r = subprocess.run([hutch, "run", "--profile", prof, "--", "/bin/true"], cwd=work,
                           stderr=subprocess.PIPE)
        if r.returncode != 0:
            sys.exit(f"{name}: hutch failed: {r.stderr.decode().strip()}")
    for _ in range(n):
        for name, prof in rows:
            t = time.perf_counter()
            subprocess.run([hutch, "run", "--profile", prof, "--", "/bin/true"], cwd=work, check=True)
            times[name].append(time.perf_counter() - t)
    return times


def egress_batch(hutch, work, prof, n):
    """The egress rules' installation itself: how long the kernel takes
    over the one nfnetlink batch the sandbox's first process sends (the
    `sendto` that carries it, timed by strace -T, which adds its own stop
    to each call: an upper bound), over `n` launches; and how many rules
    the batch holds."""
    times, rules = [], 0
    logs = tempfile.mkdtemp(prefix="egress-strace-", dir=work)
    for _ in range(n):
        # -ff: a file per process, so that no call is split in two lines.
        subprocess.run(["strace", "-ff", "-T", "-s", "512", "--seccomp-bpf", "-e", "trace=sendto",
                        "-e", "signal=none", "-o", f"{logs}/trace", hutch, "run", "--profile", prof,
                        "--", "/bin/true"], cwd=work, check=True, stderr=subprocess.DEVNULL)
        for name in os.listdir(logs):
            with open(f"{logs}/{name}") as f:
                # The batch's messages: nf_tables' NEWTABLE is type 0x0a00
                # (subsystem 10, message 0), NEWRULE 0x0a06; pasta's own
                # netlink is rtnetlink. (-s: strace lists up to that many.)
                for ln in f:
                    ln = ln.rstrip()
                    if "nlmsg_type=0xa00" in ln and ln.endswith(">"):
                        times.append(float(ln.rsplit("<", 1)[1][:-1]))
                        rules = ln.count("nlmsg_type=0xa06")
            os.unlink(f"{logs}/{name}")
    os.rmdir(logs)
    return times, rules


def iperf(prefix, addr, port, streams=1, reverse=False):
    cmd = prefix + ["iperf3", "-c", addr, "-p", str(port), "-t", str(SECONDS), "-J", "-P", str(streams)]
    if reverse:
        cmd.append("-R")
    for _ in range(3):
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if r.returncode == 0:
            break
        time.sleep(0.5)  # the server was still busy with the last client
    out = json.loads(r.stdout)
    if "error" in out:
        return float("nan")
    return out["end"]["sum_received"]["bits_per_second"] / 1e9


def rr(prefix, addr):
    out = subprocess.run(
        prefix + [PY, SCRIPT, "--rr", addr, str(ECHO_PORT), str(TRIPS)],
        stdout=subprocess.PIPE, check=True,
    ).stdout
    return float(out)


def net_namespaces(keep):
    seen = set()
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                seen.add(os.readlink(f"/proc/{p}/ns/net"))
            except OSError:
                pass
    return seen - keep


def our_pastas():
    me = os.readlink("/proc/self/ns/net")
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/comm") as f:
                comm = f.read().strip()
            if comm.startswith(("pasta", "passt")) and os.readlink(f"/proc/{p}/ns/net") == me:
                out.append(p)
        except OSError:
            pass
    return out


def kill_loop(hutch, work, prof, n, keep):
    killed = 0
    for i in range(n):
        p = subprocess.Popen([hutch, "run", "--profile", prof, "--", "/bin/sleep", "0.02"], cwd=work,
                             stderr=subprocess.DEVNULL)
        if random.random() < 0.5:
            time.sleep(random.uniform(0, 0.03))
            p.send_signal(signal.SIGKILL)
            killed += 1
        p.wait()
    deadline = time.time() + 5
    while time.time() < deadline and (our_pastas() or net_namespaces(keep)):
        time.sleep(0.05)
    return killed, len(our_pastas()), len(net_namespaces(keep))


def line(label, value, unit, extra=""):
    print(f"  {label:<44} {value:>10} {unit:<6} {extra}")


def inside(hutch):
    sys.stdout.reconfigure(line_buffering=True)
    work, run, inet_pid, servers = setup()
    try:
        return measure(hutch, work, inet_pid)
    finally:
        for s in servers:
            try:
                os.killpg(s.pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)


def measure(hutch, work, inet_pid):
    os.chdir(work)
    keep = {os.readlink("/proc/self/ns/net"), os.readlink(f"/proc/{inet_pid}/ns/net")}
    none = profile(work, "none", 'mode = "none"')
    pasta = profile(work, "pasta", 'mode = "user"\nbackend = "pasta"')
    pasta_off = profile(work, "pasta-nofilter", 'mode = "user"\nbackend = "pasta"\nfilter = "off"')
    slirp = profile(work, "slirp", 'mode = "user"\nbackend = "slirp4netns"')
    pasta_ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "passt"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL).stdout.decode() or "?"
    slirp_ver = subprocess.run(["slirp4netns", "--version"], stdout=subprocess.PIPE).stdout.decode().split("\n")[0]
    print(f"hutch network benchmark — {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"machine:  {os.uname().release}, {os.cpu_count()} CPUs, load {open('/proc/loadavg').read().split()[0]}")
    print(f"hutch:    {hutch}")
    print(f"pasta:    passt {pasta_ver}; {slirp_ver}")

    print(f"\n== pasta alone, against a fresh namespace ({RUNS} runs) ==")
    ps, pe = pasta_start(RUNS)
    line("pasta --config-net, start, median", f"{statistics.median(ps) * 1e3:.2f}", "ms", f"p95 {pct(ps, 0.95) * 1e3:.2f} ms")
    line("pasta, SIGKILL → reaped, median", f"{statistics.median(pe) * 1e3:.2f}", "ms", f"p95 {pct(pe, 0.95) * 1e3:.2f} ms")
    ps, pe = pasta_start(RUNS, userns=True)
    line("same, joining a new user namespace (--userns)", f"{statistics.median(ps) * 1e3:.2f}", "ms",
         f"p95 {pct(ps, 0.95) * 1e3:.2f} ms (what hutch does)")

    print(f"\n== launch: hutch run --profile P -- /bin/true ({RUNS} interleaved rounds) ==")
    rows = [("mode none", none), ("mode user, pasta, egress rules", pasta),
            ("mode user, pasta, filter off", pasta_off), ("mode user, slirp4netns, egress rules", slirp)]
    t = launches(hutch, work, rows, RUNS)
    base = statistics.median(t["mode none"])
    for name, _ in rows:
        m = statistics.median(t[name])
        line(name, f"{m * 1e3:.2f}", "ms", f"p95 {pct(t[name], 0.95) * 1e3:.2f} ms, +{(m - base) * 1e3:.2f} ms vs none")
    rules = statistics.median(t["mode user, pasta, egress rules"]) - statistics.median(t["mode user, pasta, filter off"])
    line("egress rules' cost on launch (difference)", f"{rules * 1e3:.2f}", "ms", "(of two noisy medians)")
    bt, nrules = egress_batch(hutch, work, pasta, min(RUNS, 30))
    if len(bt) == 0:
        sys.exit("egress rules: no nf_tables batch seen in the sandbox's system calls")
    line(f"egress batch ({nrules} rules), kernel time, median", f"{statistics.median(bt) * 1e3:.3f}", "ms",
         f"p95 {pct(bt, 0.95) * 1e3:.3f} ms, {len(bt)} launches (strace -T of its sendto)")

    run = lambda prof: [hutch, "run", "--profile", prof, "--"]  # noqa: E731
    print(f"\n== bulk TCP, iperf3 {SECONDS} s, sandbox → internet namespace (Gbit/s) ==")
    res = {}
    for name, prefix, addr, port in (
        ("host (outer namespace, veth)", [], INTERNET, 5201),
        ("host loopback (127.0.0.1)", [], "127.0.0.1", 5202),
        ("pasta", run(pasta), INTERNET, 5201),
        ("pasta, filter off", run(pasta_off), INTERNET, 5201),
        ("slirp4netns", run(slirp), INTERNET, 5201),
    ):
        res[name] = iperf(prefix, addr, port)
        line(name, f"{res[name]:.2f}", "Gbit/s")
    line("pasta / slirp4netns", f"{res['pasta'] / res['slirp4netns']:.2f}", "x")
    line("pasta / host veth", f"{res['pasta'] / res['host (outer namespace, veth)']:.2f}", "x")
    line("pasta / host loopback", f"{res['pasta'] / res['host loopback (127.0.0.1)']:.2f}", "x")
    print("  -- 4 parallel streams:")
    for name, prefix in (("host", []), ("pasta", run(pasta)), ("slirp4netns", run(slirp))):
        line(f"{name}, -P 4", f"{iperf(prefix, INTERNET, 5201, streams=4):.2f}", "Gbit/s")
    print("  -- internet → sandbox (iperf3 -R):")
    for name, prefix in (("pasta", run(pasta)), ("slirp4netns", run(slirp))):
        line(f"{name}, -R", f"{iperf(prefix, INTERNET, 5201, reverse=True):.2f}", "Gbit/s")

    print(f"\n== request round trip, 1 byte, TCP_NODELAY, median of {TRIPS} (µs) ==")
    host_rr = rr([], INTERNET)
    line("host (outer namespace, veth)", f"{host_rr:.1f}", "µs")
    for name, prefix in (("pasta", run(pasta)), ("slirp4netns", run(slirp))):
        v = rr(prefix, INTERNET)
        line(name, f"{v:.1f}", "µs", f"+{v - host_rr:.1f} µs vs host")

    print(f"\n== lifecycle: {KILLS} launches in mode user (pasta), about half SIGKILLed at a random moment ==")
    killed, pastas, namespaces = kill_loop(hutch, work, pasta, KILLS, keep)
    line("SIGKILLed", killed, "")
    line("orphaned pasta processes afterwards", pastas, "")
    line("leftover network namespaces afterwards", namespaces, "")

    return 0 if pastas == 0 and namespaces == 0 else 1


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--echo":
        return echo_server(sys.argv[2])
    if len(sys.argv) > 1 and sys.argv[1] == "--rr":
        return rr_client(*sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "--inside":
        return inside(sys.argv[2])
    hutch = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else f"{ROOT}/target/release/hutch")
    os.execvp("unshare", ["unshare", "-Urnm", "--propagation", "private",
                          PY, SCRIPT, "--inside", hutch])


if __name__ == "__main__":
    sys.exit(main())
