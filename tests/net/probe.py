#!/usr/bin/python3
"""Servers and clients of tests/network.rs (standard library only).

Servers: serve-tcp ADDR PORT TEXT, serve-udp ADDR PORT TEXT (each reply is
TEXT then what the peer's request said of its address), serve-dns ADDR
(answers NAME.hutch.test A with the address in its first label,
`203-0-113-10.hutch.test` -> 203.0.113.10, every other name NXDOMAIN),
serve-abstract NAME, serve-http ADDR PORT DIR (DIR's files, with
`Cache-Control: max-age=600` as a package index's file host sends, so that
a client's HTTP cache keeps them). A server prints "listening" once it listens.

Clients print what they got, or the error's name: tcp ADDR PORT [SECONDS]
(retries until it reads something or SECONDS pass, for a server that may
not listen yet), udp ADDR PORT, abstract NAME.
"""
import errno
import functools
import http.server
import socket
import sys
import threading
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def listening():
    print("listening", flush=True)


def serve_tcp(addr, port, text):
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(64)
    listening()

    def answer(c):
        with c:
            c.settimeout(5)
            try:
                req = c.recv(4096)
            except OSError:
                req = b""
            body = text.encode() + b"\n"
            if req.startswith(b"GET "):
                c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            else:
                c.sendall(body)

    while True:
        c, _ = s.accept()
        threading.Thread(target=answer, args=(c,), daemon=True).start()


def serve_udp(addr, port, text):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.bind((addr, int(port)))
    listening()
    while True:
        _, peer = s.recvfrom(4096)
        s.sendto(text.encode() + b"\n", peer)


def serve_dns(addr):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.bind((addr, 53))
    listening()
    while True:
        q, peer = s.recvfrom(4096)
        if len(q) < 12:
            continue
        # The question: labels up to a zero byte, then type and class.
        at, labels = 12, []
        while at < len(q) and q[at]:
            labels.append(q[at + 1:at + 1 + q[at]].decode("ascii", "replace"))
            at += 1 + q[at]
        question = q[12:at + 5]
        qtype = int.from_bytes(q[at + 1:at + 3], "big")
        name = ".".join(labels).lower()
        first = labels[0].split("-") if labels else []
        ok = name.endswith(".hutch.test") and len(first) == 4 and all(p.isdigit() for p in first)
        flags = 0x8180 if ok else 0x8183
        answers = 1 if ok and qtype == 1 else 0
        reply = q[:2] + flags.to_bytes(2, "big") + b"\x00\x01" + answers.to_bytes(2, "big") + b"\x00\x00\x00\x00" + question
        if answers:
            reply += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes(int(p) for p in first)
        s.sendto(reply, peer)


def serve_abstract(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\0" + name)
    s.listen(8)
    listening()
    while True:
        c, _ = s.accept()
        c.close()


def serve_http(addr, port, directory):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def end_headers(self):
            self.send_header("Cache-Control", "max-age=600")
            super().end_headers()

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        address_family = family(addr)

    server = Server((addr, int(port)), functools.partial(Handler, directory=directory))
    listening()
    server.serve_forever()


def error_name(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    return errno.errorcode.get(e.errno, str(e))


def tcp(addr, port, seconds="0"):
    deadline = time.monotonic() + float(seconds)
    while True:
        try:
            with socket.create_connection((addr, int(port)), timeout=3) as c:
                c.sendall(b"hello\n")
                data = c.recv(4096)
                if data or time.monotonic() >= deadline:
                    print(data.decode().strip() or "empty")
                    return
        except OSError as e:
            if time.monotonic() >= deadline:
                print(error_name(e))
                return
        time.sleep(0.05)


def udp(addr, port):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(b"hello\n", (addr, int(port)))
        print(s.recvfrom(4096)[0].decode().strip())
    except OSError as e:
        print(error_name(e))


def abstract(name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect("\0" + name)
        print("connected")
    except OSError as e:
        print(error_name(e))


COMMANDS = {
    "serve-tcp": serve_tcp,
    "serve-udp": serve_udp,
    "serve-dns": serve_dns,
    "serve-abstract": serve_abstract,
    "serve-http": serve_http,
    "tcp": tcp,
    "udp": udp,
    "abstract": abstract,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
