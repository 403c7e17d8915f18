# A portal client with no library but Python's own, run in the sandbox by
# tests/portals.rs: asks org.freedesktop.portal.FileChooser.OpenFile on the
# session bus ($DBUS_SESSION_BUS_ADDRESS, a unix:path= address), prints
# `asked` once it has the request's handle, then waits for the request's
# Response signal on the same connection (the portal sends it to the
# caller alone) and prints `response N`. An error reply prints its name.
import os
import socket
import struct
import sys

TITLE = sys.argv[1]


def pad(b, n):
    return b + b"\0" * ((-len(b)) % n)


class W:
    def __init__(self):
        self.b = b""

    def align(self, n):
        self.b = pad(self.b, n)

    def u(self, v):
        self.align(4)
        self.b += struct.pack("<I", v)

    def s(self, v):
        e = v.encode()
        self.u(len(e))
        self.b += e + b"\0"

    def g(self, v):
        e = v.encode()
        self.b += bytes([len(e)]) + e + b"\0"


def message(serial, dest, path, iface, member, sig="", body=b""):
    f = W()  # the header fields start at offset 16, 8-aligned
    for code, kind, value in (
        (1, "o", path),
        (2, "s", iface),
        (3, "s", member),
        (6, "s", dest),
        (8, "g", sig),
    ):
        if code == 8 and not sig:
            continue
        f.align(8)
        f.b += bytes([code])
        f.g(kind)
        f.g(value) if kind == "g" else f.s(value)
    head = b"l\x01\x00\x01" + struct.pack("<III", len(body), serial, len(f.b))
    return pad(head + f.b, 8) + body


sock = socket.socket(socket.AF_UNIX)
sock.settimeout(30)
sock.connect(os.environ["DBUS_SESSION_BUS_ADDRESS"].split("unix:path=")[1].split(",")[0])
sock.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
line = b""
while b"\r\n" not in line:
    line += sock.recv(1)
assert line.startswith(b"OK"), line
sock.sendall(b"BEGIN\r\n")
data = b""


def read_exact(n):
    global data
    while len(data) < n:
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit("the bus closed the connection")
        data += chunk
    out, data = data[:n], data[n:]
    return out


def read_message():
    head = read_exact(16)
    kind = head[1]
    body_len, serial, fields_len = struct.unpack("<III", head[4:16])
    rest = read_exact(len(pad(b"\0" * (16 + fields_len), 8)) - 16 + body_len)
    fields, body = rest[:fields_len], rest[len(rest) - body_len:]
    info, i = {}, 0
    while i < len(fields):
        i += (-i) % 8
        code, sig_len = fields[i], fields[i + 1]
        sig = fields[i + 2:i + 2 + sig_len].decode()
        i += 3 + sig_len
        if sig in ("s", "o"):
            i += (-(i + 16)) % 4
            (n,) = struct.unpack("<I", fields[i:i + 4])
            info[code] = fields[i + 4:i + 4 + n].decode()
            i += 5 + n
        elif sig == "u":
            i += (-(i + 16)) % 4
            (info[code],) = struct.unpack("<I", fields[i:i + 4])
            i += 4
        elif sig == "g":
            n = fields[i]
            info[code] = fields[i + 1:i + 1 + n].decode()
            i += 2 + n
        else:
            sys.exit("unexpected header field signature " + sig)
    return kind, info, body


def call(serial, *args, **kw):
    sock.sendall(message(serial, *args, **kw))
    while True:
        kind, info, body = read_message()
        if info.get(5) == serial and kind == 2:
            return body
        if info.get(5) == serial and kind == 3:
            print(info.get(4))
            sys.exit(0)


BUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
call(1, *BUS, "Hello")
rule = W()
rule.s("type='signal',interface='org.freedesktop.portal.Request',member='Response'")
call(2, *BUS, "AddMatch", sig="s", body=rule.b)
args = W()
args.s("")
args.s(TITLE)
args.u(0)  # an empty a{sv}
args.align(8)
reply = call(
    3,
    "org.freedesktop.portal.Desktop",
    "/org/freedesktop/portal/desktop",
    "org.freedesktop.portal.FileChooser",
    "OpenFile",
    sig="ssa{sv}",
    body=args.b,
)
(n,) = struct.unpack("<I", reply[:4])
handle = reply[4:4 + n].decode()
print("asked", flush=True)
while True:
    kind, info, body = read_message()
    if kind == 4 and info.get(3) == "Response" and info.get(1) == handle:
        print("response", struct.unpack("<I", body[:4])[0], flush=True)
        break
