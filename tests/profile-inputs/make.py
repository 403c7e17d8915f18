#!/usr/bin/env python3
"""Generates the inputs of tests/profiles.rs with Python's standard library
only, so that no program under test makes its own input:

  make.py png W H PATH [COMMENT]   an RGB PNG (a tEXt Comment if given)
  make.py wav RATE PATH            one second of a 440 Hz tone, 16-bit mono
  make.py pdf PATH TEXT            a one-page PDF showing TEXT (Helvetica)
  make.py zip PATH NAME TEXT       a ZIP archive holding NAME
  make.py tar PATH NAME TEXT       a tar archive holding NAME (gzip if PATH ends .gz)
  make.py xz|gz|bz2 PATH TEXT      TEXT compressed
  make.py sqlite PATH              a database with table t(v) = 1, 2, 3
"""
import bz2, gzip, io, lzma, math, sqlite3, struct, sys, tarfile, wave, zipfile, zlib


def png(w, h, path, comment=None):
    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c))
    raw = b"".join(b"\0" + bytes([200, 30, 30]) * w for _ in range(h))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    if comment:
        out += chunk(b"tEXt", b"Comment\0" + comment.encode())
    out += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(path, "wb").write(out)


def wav(rate, path):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
            for i in range(rate)))


def pdf(path, text):
    content = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    open(path, "wb").write(bytes(out))


def main(kind, *a):
    if kind == "png":
        png(int(a[0]), int(a[1]), a[2], a[3] if len(a) > 3 else None)
    elif kind == "wav":
        wav(int(a[0]), a[1])
    elif kind == "pdf":
        pdf(a[0], a[1])
    elif kind == "zip":
        with zipfile.ZipFile(a[0], "w") as z:
            z.writestr(a[1], a[2])
    elif kind == "tar":
        with tarfile.open(a[0], "w:gz" if a[0].endswith(".gz") else "w") as t:
            data = a[2].encode()
            info = tarfile.TarInfo(a[1])
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    elif kind in ("xz", "gz", "bz2"):
        comp = {"xz": lzma.compress, "gz": gzip.compress, "bz2": bz2.compress}[kind]
        open(a[0], "wb").write(comp(a[1].encode()))
    elif kind == "sqlite":
        db = sqlite3.connect(a[0])
        db.execute("create table t(v)")
        db.executemany("insert into t values (?)", [(1,), (2,), (3,)])
        db.commit()
    else:
        sys.exit(f"make.py: unknown kind {kind}")


main(*sys.argv[1:])
