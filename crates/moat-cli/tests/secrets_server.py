"""HTTPS servers behind moat's secret broker, for the secrets tests.

Usage: secrets_server.py DIR ADDRESS TOKEN

Makes a test certificate authority and a certificate for secret.test,
other.test and git.test (openssl, in DIR: ca.pem is the authority), then
serves HTTPS on ADDRESS, port 443 when it can bind it (else any; the port is
written to DIR/port once listening). By the Host header:
  secret.test  200 "ok" with `Authorization: Bearer TOKEN`, else 401;
               /echo answers with the Authorization header it got
  other.test   200 "other" whatever it is sent
  git.test     git's smart HTTP (git http-backend) for DIR/git/*.git, with
               Basic credentials whose password is TOKEN, else 401 asking
               for them
Every request is logged to DIR/seen.log as one JSON line (host, method,
path, authorization), so a test sees exactly what reached the server.
"""
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import base64
import threading

DIR, ADDRESS, TOKEN = sys.argv[1], sys.argv[2], sys.argv[3]
LOCK = threading.Lock()


def make_certificates():
    ca_key, ca = os.path.join(DIR, "ca.key"), os.path.join(DIR, "ca.pem")
    key, csr, crt = (os.path.join(DIR, n) for n in ("srv.key", "srv.csr", "srv.pem"))
    ext = os.path.join(DIR, "srv.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:secret.test,DNS:other.test,DNS:git.test,IP:%s\n" % ADDRESS)
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=moat test CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", csr, "-subj", "/CN=secret.test")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
        "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
    return crt, key


def log(entry):
    with LOCK, open(os.path.join(DIR, "seen.log"), "a") as f:
        f.write(json.dumps(entry) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body, headers=()):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        auth = self.headers.get("Authorization") or ""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        log({"host": host, "method": self.command, "path": self.path, "authorization": auth})
        if host == "secret.test" and self.path == "/echo":
            self.reply(200, auth)
        elif host == "secret.test":
            if auth == "Bearer " + TOKEN:
                self.reply(200, "ok\n")
            else:
                self.reply(401, "unauthorized\n")
        elif host == "other.test":
            self.reply(200, "other\n")
        elif host == "git.test":
            self.git(auth, body)
        else:
            self.reply(404, "no such host\n")

    def git(self, auth, body):
        password = None
        if auth.startswith("Basic "):
            try:
                password = base64.b64decode(auth[6:]).decode().split(":", 1)[1]
            except Exception:
                password = None
        if password != TOKEN:
            self.reply(401, "credentials, please\n", [("WWW-Authenticate", 'Basic realm="git"')])
            return
        path, _, query = self.path.partition("?")
        env = {
            "GIT_PROJECT_ROOT": os.path.join(DIR, "git"),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type") or "",
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "tester",
            "REMOTE_ADDR": "127.0.0.1",
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        code, headers = 200, []
        for line in head.decode(errors="replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                code = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.reply(code, payload, headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    crt, key = make_certificates()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    try:
        server = Server((ADDRESS, 443), Handler)
    except OSError:
        server = Server((ADDRESS, 0), Handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    with open(os.path.join(DIR, "port.tmp"), "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
    server.serve_forever()


main()
