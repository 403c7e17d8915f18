# bench/desktop.sh: `python3 -c "$(cat bench/mapwait.py)" PROGRAM ARGS...`
#
# Times an X11 app's first window on the display the app itself sees (the
# host's, or a nested server's that only the sandbox can reach): connects
# to $DISPLAY (with the MIT-MAGIC-COOKIE-1 of $XAUTHORITY, as libxcb would),
# asks for SubstructureNotify on the root window and waits for the server to
# confirm it (a GetInputFocus round trip), then forks: this process becomes
# PROGRAM (so a signal to it stops the app), the child prints "mapped" on
# stdout at the first MapNotify of a top-level window and exits. It is
# passed as an argument rather than a path so that it runs inside sandboxes
# that do not see bench/. Plain X11 protocol, no modules beyond the standard
# library (python3-xlib is not installed on CI).
import os
import socket
import struct
import sys


def display():
    d = os.environ.get("DISPLAY", "")
    if d.startswith("unix:"):
        d = d[len("unix:"):]
    if d.startswith("/"):
        path, _, num = d.rpartition(":")
        return path, num.split(".")[0]
    num = d.rpartition(":")[2].split(".")[0]
    return "/tmp/.X11-unix/X" + num, num


def cookie(num):
    path = os.environ.get("XAUTHORITY") or os.path.expanduser("~/.Xauthority")
    try:
        data = open(path, "rb").read()
    except OSError:
        return b"", b""
    i = 0

    def field():
        nonlocal i
        (n,) = struct.unpack_from(">H", data, i)
        v = data[i + 2:i + 2 + n]
        i += 2 + n
        return v

    while i + 2 <= len(data):
        family = struct.unpack_from(">H", data, i)[0]
        i += 2
        _addr, number, name, value = field(), field(), field(), field()
        if family in (256, 65535) and number.decode() == num and name == b"MIT-MAGIC-COOKIE-1":
            return name, value
    return b"", b""


def pad(b):
    return b + b"\0" * (-len(b) % 4)


def read_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            sys.exit("mapwait: the X server closed the connection")
        out += chunk
    return out


def main():
    path, num = display()
    name, value = cookie(num)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(struct.pack("<BxHHHHxx", 0x6C, 11, 0, len(name), len(value)) + pad(name) + pad(value))
    head = read_exact(s, 8)
    more = read_exact(s, struct.unpack_from("<H", head, 6)[0] * 4)
    if head[0] != 1:
        sys.exit("mapwait: the X server refused the connection: " + more[: head[1]].decode(errors="replace"))
    vendor_len = struct.unpack_from("<H", more, 16)[0]
    formats = more[21]
    root = struct.unpack_from("<I", more, 32 + len(pad(b"x" * vendor_len)) + 8 * formats)[0]
    # ChangeWindowAttributes(root, event-mask = SubstructureNotify), then
    # GetInputFocus: its reply means the selection is in place.
    s.sendall(struct.pack("<BxHIII", 2, 4, root, 0x800, 1 << 19) + struct.pack("<BxH", 43, 1))
    while True:
        ev = read_exact(s, 32)
        if ev[0] == 0:
            sys.exit("mapwait: X error %d selecting events on the root" % ev[1])
        if ev[0] == 1:
            read_exact(s, struct.unpack_from("<I", ev, 4)[0] * 4)
            break
    if os.fork() == 0:
        while True:
            ev = read_exact(s, 32)
            if ev[0] & 0x7F == 19:
                os.write(1, b"mapped\n")
                os._exit(0)
    s.close()
    os.execvp(sys.argv[1], sys.argv[1:])


main()
