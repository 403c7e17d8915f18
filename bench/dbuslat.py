# bench/desktop.sh: `python3 -c "$(cat bench/dbuslat.py)" MODE ...`
#
#   call N NAME    N method calls to NAME (any method: dbus-test-tool's
#                  `echo` service answers them all) on $DBUS_SESSION_BUS_ADDRESS,
#                  one at a time; prints the median and p95 round trip in us
#   ready N ADDR   starts `xdg-dbus-proxy --fd=W ADDR PATH --filter` N times and
#                  times each until it writes its readiness byte on W (its
#                  `--fd` protocol, as hutch and Flatpak wait for it); prints
#                  the median and p95 in ms
#
# Passed as an argument rather than a path, so that it runs inside sandboxes
# that do not see bench/. Plain D-Bus wire protocol (SASL EXTERNAL, then
# little-endian messages), standard library only.
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time


def connect(address):
    for part in address.split(";"):
        kind, _, rest = part.partition(":")
        kv = dict(x.split("=", 1) for x in rest.split(",") if "=" in x)
        if kind == "unix" and "path" in kv:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(kv["path"])
            return s
    sys.exit("dbuslat: no unix:path= in the bus address " + address)


def read_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            sys.exit("dbuslat: the bus closed the connection")
        out += chunk
    return out


def align(b, n):
    return b + b"\0" * (-len(b) % n)


def message(serial, dest, path, iface, member):
    fields = b""
    for code, sig, value in ((1, b"o", path), (6, b"s", dest), (2, b"s", iface), (3, b"s", member)):
        fields = align(fields, 8)
        v = value.encode()
        fields += struct.pack("<BB", code, 1) + sig + b"\0"
        fields = align(fields, 4) + struct.pack("<I", len(v)) + v + b"\0"
    head = struct.pack("<cBBBIII", b"l", 1, 0, 1, 0, serial, len(fields))
    return align(head + fields, 8)


def reply(s):
    """The next method return or error (signals skipped): True for a return."""
    while True:
        head = read_exact(s, 16)
        body, _, fields = struct.unpack_from("<III", head, 4)
        read_exact(s, fields + (-(16 + fields) % 8) + body)
        if head[1] in (2, 3):
            return head[1] == 2


def call(n, name):
    s = connect(os.environ["DBUS_SESSION_BUS_ADDRESS"])
    s.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
    line = b""
    while not line.endswith(b"\r\n"):
        line += s.recv(1)
    if not line.startswith(b"OK"):
        sys.exit("dbuslat: authentication refused: " + line.decode(errors="replace"))
    s.sendall(b"BEGIN\r\n")
    s.sendall(message(1, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello"))
    if not reply(s):
        sys.exit("dbuslat: Hello failed")
    times = []
    for i in range(n + 20):
        t0 = time.perf_counter()
        s.sendall(message(i + 2, name, "/", "org.example.Bench", "Ping"))
        ok = reply(s)
        t1 = time.perf_counter()
        if not ok:
            sys.exit("dbuslat: the call to %s failed (an error reply)" % name)
        if i >= 20:
            times.append((t1 - t0) * 1e6)
    report(times, "us")


def ready(n, address):
    times = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(n):
            r, w = os.pipe()
            path = os.path.join(d, "bus-%d" % i)
            t0 = time.perf_counter()
            p = subprocess.Popen(["xdg-dbus-proxy", "--fd=%d" % w, address, path, "--filter"],
                                 pass_fds=[w], stderr=subprocess.DEVNULL)
            os.close(w)
            got = os.read(r, 1)
            t1 = time.perf_counter()
            os.close(r)
            p.wait()
            if got != b"x":
                sys.exit("dbuslat: xdg-dbus-proxy did not become ready")
            times.append((t1 - t0) * 1e3)
    report(times, "ms")


def report(times, unit):
    times.sort()
    median = times[len(times) // 2] if len(times) % 2 else (times[len(times) // 2 - 1] + times[len(times) // 2]) / 2
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    print("%.1f %.1f %s %d" % (median, p95, unit, len(times)))


if sys.argv[1] == "call":
    call(int(sys.argv[2]), sys.argv[3])
elif sys.argv[1] == "ready":
    ready(int(sys.argv[2]), sys.argv[3])
else:
    sys.exit("dbuslat: call N NAME | ready N ADDRESS")
