#!/usr/bin/python3
"""What the network profiles' tests (tests/net_profiles.rs) download, made
here with the standard library only, in the directory DIR (argv[1]):

  DIR/greeting.txt                          wget's download
  DIR/clip.wav                              yt-dlp's media (a 0.1 s tone)
  DIR/simple/hutchdemo/index.html           a PEP 503 index of one wheel
  DIR/files/hutchdemo-1.0-py3-none-any.whl  the wheel (module hutchdemo)
  DIR/hutch-hello                           an npm registry's answer for
                                            package hutch-hello (its packument)
  DIR/tarballs/hutch-hello-1.0.0.tgz        the package's tarball

BASE (argv[2]) is the URL the server of DIR answers at (the packument names
the tarball by it).
"""
import base64
import hashlib
import io
import json
import math
import os
import struct
import sys
import tarfile
import wave
import zipfile

out, base = sys.argv[1], sys.argv[2].rstrip("/")


def put(rel, data):
    path = os.path.join(out, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


put("greeting.txt", b"hello from the internet\n")

frames = b"".join(struct.pack("<h", int(8000 * math.sin(i / 8))) for i in range(800))
buf = io.BytesIO()
with wave.open(buf, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(8000)
    w.writeframes(frames)
put("clip.wav", buf.getvalue())

# A wheel: the module, its metadata and the RECORD of both.
wheel = "hutchdemo-1.0-py3-none-any.whl"
files = {
    "hutchdemo/__init__.py": "GREETING = 'hello from hutchdemo'\n",
    "hutchdemo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: hutchdemo\nVersion: 1.0\n",
    "hutchdemo-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hutch-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    for name, text in files.items():
        z.writestr(name, text)
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text)}")
    record.append("hutchdemo-1.0.dist-info/RECORD,,")
    z.writestr("hutchdemo-1.0.dist-info/RECORD", "\n".join(record) + "\n")
put(f"files/{wheel}", buf.getvalue())
put("simple/hutchdemo/index.html", f'<a href="../../files/{wheel}">{wheel}</a>\n'.encode())

# An npm package: package/package.json and package/index.js, gzipped tar.
pkg = {"name": "hutch-hello", "version": "1.0.0", "main": "index.js"}
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:gz") as t:
    for name, text in [
        ("package/package.json", json.dumps(pkg)),
        ("package/index.js", "module.exports = 'hello from hutch-hello';\n"),
    ]:
        info = tarfile.TarInfo(name)
        info.size = len(text)
        info.mode = 0o644
        t.addfile(info, io.BytesIO(text.encode()))
tgz = buf.getvalue()
put("tarballs/hutch-hello-1.0.0.tgz", tgz)
integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
packument = {
    "name": "hutch-hello",
    "dist-tags": {"latest": "1.0.0"},
    "versions": {
        "1.0.0": dict(
            pkg,
            dist={
                "tarball": f"{base}/tarballs/hutch-hello-1.0.0.tgz",
                "shasum": hashlib.sha1(tgz).hexdigest(),
                "integrity": integrity,
            },
        )
    },
}
put("hutch-hello", json.dumps(packument).encode())
