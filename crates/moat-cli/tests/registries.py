"""Local package registries for moat's tests: no test touches the internet.

Usage: registries.py PORTFILE
Serves on 127.0.0.1 (the port is written to PORTFILE once listening):
  /cargo/index/...          a cargo sparse registry index (config.json and
                            one crate, moat-leaf 1.0.0)
  /cargo/dl/NAME/VER/download  the .crate file
  /npm/NAME, /npm/NAME/-/FILE  an npm registry (one package, moat-leaf)
  /pip/simple/NAME/, /pip/files/FILE  a PEP 503 index (one wheel)
  /_count                   how many package files were served (downloads
                            of a .crate, a .tgz or a .whl), as text
The base URL in the metadata is built from the request's Host header, so
the registry answers to whatever name the client pinned for it. Package
pages carry Cache-Control so clients may cache them as usual.
"""
import base64
import hashlib
import http.server
import io
import json
import sys
import tarfile
import threading
import zipfile

NAME = "moat-leaf"
VERSION = "1.0.0"


def tgz(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


CRATE = tgz(
    [
        (
            f"{NAME}-{VERSION}/Cargo.toml",
            f'[package]\nname = "{NAME}"\nversion = "{VERSION}"\nedition = "2021"\n'.encode(),
        ),
        (f"{NAME}-{VERSION}/src/lib.rs", b"pub fn leaf() -> u32 { 7 }\n"),
    ]
)
CRATE_SUM = hashlib.sha256(CRATE).hexdigest()

NPM_TGZ = tgz(
    [
        (
            "package/package.json",
            json.dumps({"name": NAME, "version": VERSION, "main": "index.js"}).encode(),
        ),
        ("package/index.js", b"module.exports = 7;\n"),
    ]
)


def wheel():
    dist = "moat_leaf-1.0.0.dist-info"
    files = {
        "moat_leaf/__init__.py": b"LEAF = 7\n",
        f"{dist}/METADATA": b"Metadata-Version: 2.1\nName: moat-leaf\nVersion: 1.0.0\n",
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: moat-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


WHEEL = wheel()
WHEEL_NAME = "moat_leaf-1.0.0-py3-none-any.whl"
served = 0
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, body, kind="application/octet-stream", package=False):
        global served
        if package:
            with lock:
                served += 1
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "public, max-age=86400")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        base = f"http://{self.headers.get('Host', '127.0.0.1')}"
        path = self.path.split("?")[0]
        if path == "/_count":
            return self.send(str(served).encode(), "text/plain")
        # cargo's sparse index: names of four or more letters live under
        # their first two pairs.
        if path == "/cargo/index/config.json":
            return self.send(json.dumps({"dl": f"{base}/cargo/dl"}).encode(), "application/json")
        if path == f"/cargo/index/{NAME[:2]}/{NAME[2:4]}/{NAME}":
            line = {"name": NAME, "vers": VERSION, "deps": [], "cksum": CRATE_SUM,
                    "features": {}, "yanked": False}
            return self.send((json.dumps(line) + "\n").encode(), "text/plain")
        if path == f"/cargo/dl/{NAME}/{VERSION}/download":
            return self.send(CRATE, package=True)
        if path == f"/npm/{NAME}":
            tarball = f"{base}/npm/{NAME}/-/{NAME}-{VERSION}.tgz"
            integrity = "sha512-" + base64.b64encode(hashlib.sha512(NPM_TGZ).digest()).decode()
            doc = {
                "name": NAME,
                "dist-tags": {"latest": VERSION},
                "versions": {VERSION: {
                    "name": NAME, "version": VERSION,
                    "dist": {"tarball": tarball, "shasum": hashlib.sha1(NPM_TGZ).hexdigest(),
                             "integrity": integrity},
                }},
            }
            return self.send(json.dumps(doc).encode(), "application/json")
        if path == f"/npm/{NAME}/-/{NAME}-{VERSION}.tgz":
            return self.send(NPM_TGZ, package=True)
        if path in (f"/pip/simple/{NAME}/", f"/pip/simple/{NAME}"):
            digest = hashlib.sha256(WHEEL).hexdigest()
            html = (f'<!DOCTYPE html><html><body><a href="{base}/pip/files/{WHEEL_NAME}'
                    f'#sha256={digest}">{WHEEL_NAME}</a></body></html>')
            return self.send(html.encode(), "text/html")
        if path == f"/pip/files/{WHEEL_NAME}":
            return self.send(WHEEL, package=True)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os  # noqa: E402

os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
