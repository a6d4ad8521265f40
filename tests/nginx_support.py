"""A throwaway nginx in front of the app for the hosting tests: Debian's nginx binary, run with its own prefix in a
temporary folder, serving the SHIPPED site file deploy/nginx/imglab.conf with only the deployment values (listen
port, upstream address, password file) replaced. `make test` installs nginx when it is missing and it runs as
root; without it this module is skipped, unless REQUIRE_NGINX=1 (CI), which makes that an error."""
from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NGINX = "/usr/sbin/nginx"
SITE = ROOT / "deploy" / "nginx" / "imglab.conf"
USERS = {"alice": "alice-pw", "bob": "bob-pw", "teacher": "teacher-pw"}

# The values the shipped file carries, as written there (a deployment changes exactly these).
SHIPPED_LISTEN = "listen 80;"
SHIPPED_UPSTREAM = "proxy_pass http://127.0.0.1:8501;"
SHIPPED_HTPASSWD = "auth_basic_user_file /etc/nginx/imglab.htpasswd;"

if not Path(NGINX).exists():
    if os.environ.get("REQUIRE_NGINX") == "1":
        raise RuntimeError("REQUIRE_NGINX=1 but /usr/sbin/nginx is missing (apt-get install -y nginx)")
    pytest.skip("Debian nginx is not installed; `make test` installs it when run as root", allow_module_level=True)


def htpasswd(users: dict[str, str]) -> str:
    """The password file as the README tells a teacher to make it: `openssl passwd -apr1` per user."""
    lines = []
    for name, password in users.items():
        hashed = subprocess.run(["openssl", "passwd", "-apr1", "-stdin"], input=password, capture_output=True,
                                text=True, check=True).stdout.strip()
        lines.append(f"{name}:{hashed}\n")
    return "".join(lines)


def site_config(app_port: int, listen_port: int, password_file: Path, proxy_bind: str | None = None) -> str:
    """The shipped site file with the deployment values replaced by plain string replacement."""
    text = SITE.read_text()
    for shipped in (SHIPPED_LISTEN, SHIPPED_UPSTREAM, SHIPPED_HTPASSWD):
        assert text.count(shipped) == 1, f"{SITE} no longer has exactly one {shipped!r}"
    upstream = f"proxy_pass http://127.0.0.1:{app_port};"
    if proxy_bind:  # test-only: nginx's connections to the app come from this address
        upstream += f" proxy_bind {proxy_bind};"
    return (text.replace(SHIPPED_LISTEN, f"listen 127.0.0.1:{listen_port};")
                .replace(SHIPPED_UPSTREAM, upstream)
                .replace(SHIPPED_HTPASSWD, f"auth_basic_user_file {password_file};"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
    except urllib.error.HTTPError:
        return True  # 401: nginx is up and asking for a password
    except OSError:
        return False
    return True


@dataclass
class NginxProxy:
    url: str
    access_log: Path

    def log(self) -> str:
        return self.access_log.read_text() if self.access_log.exists() else ""

    def errors(self) -> str:
        """nginx's own log (info level: it says when and why a client connection ended)."""
        error_log = self.access_log.with_name("error.log")
        return error_log.read_text() if error_log.exists() else ""


@contextmanager
def nginx_proxy(app_url: str, proxy_bind: str | None = None, users: dict[str, str] = USERS):
    """nginx on a free loopback port in front of `app_url` (http://127.0.0.1:PORT); yields its URL and log."""
    app_port = int(app_url.rsplit(":", 1)[1])
    prefix = Path(tempfile.mkdtemp(prefix="imglab-nginx-"))
    # When we are root, nginx's worker processes run as `nobody` (as Debian's run as www-data) and read the password
    # file at request time: it must be readable by them, as it must be on a real server.
    prefix.chmod(0o755)
    password_file = prefix / "imglab.htpasswd"
    password_file.write_text(htpasswd(users))
    password_file.chmod(0o644)
    port = _free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log info;\n"
        + "events { worker_connections 256; }\n"
        + "http {\n"
        + "    include /etc/nginx/mime.types;\n"
        # Test-only log line: which user nginx let in and which X-Remote-User the browser itself sent.
        + "    log_format imglab '$remote_user \"$request\" $status sent_user=\"$http_x_remote_user\"';\n"
        + f"    access_log {prefix}/access.log imglab;\n"
        + "".join(f"    {kind}_temp_path {prefix}/{kind}_temp;\n"
                  for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + site_config(app_port, port, password_file, proxy_bind)
        + "\n}\n")
    run = dict(capture_output=True, text=True, timeout=30)
    check = subprocess.run([NGINX, "-t", "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)], **run)
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t refused the config:\n{check.stderr}")
    proc = subprocess.Popen([NGINX, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf),
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while not _answers(url + "/_stcore/health"):
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("nginx did not start: " + (prefix / "error.log").read_text()[-2000:])
            time.sleep(0.2)
        yield NginxProxy(url, prefix / "access.log")
    finally:
        proc.terminate()  # SIGTERM: nginx's fast shutdown
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(prefix, ignore_errors=True)


@contextmanager
def forging_relay(target_url: str, forged: dict[str, str]):
    """A relay on a free loopback port that adds `forged` headers to every request it passes to `target_url`,
    replacing any the browser sent, the websocket hand-shake included (Chromium's extra_http_headers do not reach
    that request). It stands for someone with a shell on the server who talks to a port directly. Yields its URL
    and the request lines it forged headers into."""
    target_port = int(target_url.rsplit(":", 1)[1])
    names = {name.lower().encode() for name in forged}
    extra = [f"{name}: {value}".encode() for name, value in forged.items()]
    forged_lines: list[str] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()
    open_sockets: list[socket.socket] = []  # both ends of every connection: ended when the relay stops

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def relay(client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", target_port)) as upstream:
            open_sockets.append(upstream)
            back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
            back.start()
            buffer = b""
            try:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        chunk = client.recv(65536)
                        if not chunk:
                            return
                        buffer += chunk
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    request_line, *fields = head.split(b"\r\n")
                    kept = [f for f in fields if f.split(b":", 1)[0].strip().lower() not in names]
                    upstream.sendall(b"\r\n".join([request_line, *kept, *extra]) + b"\r\n\r\n")
                    forged_lines.append(request_line.decode("latin-1"))
                    lowered = {f.split(b":", 1)[0].strip().lower(): f.split(b":", 1)[-1].strip().lower()
                               for f in kept}
                    if b"upgrade" in lowered or b"chunked" in lowered.get(b"transfer-encoding", b""):
                        upstream.sendall(buffer)  # a websocket (or a body we do not parse): bytes as they come
                        pump(client, upstream)
                        return
                    length = int(lowered.get(b"content-length", b"0") or 0)
                    while len(buffer) < length:
                        chunk = client.recv(65536)
                        if not chunk:
                            return
                        buffer += chunk
                    upstream.sendall(buffer[:length])
                    buffer = buffer[length:]
            except OSError:
                return
            finally:
                back.join(5)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            open_sockets.append(client)
            threading.Thread(target=relay, args=(client,), daemon=True).start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", forged_lines
    finally:
        stop.set()
        server.join(5)
        listener.close()
        # A websocket is logged by nginx only once it ends: end every connection now, not whenever the browser's
        # close has made its way through a loaded machine, and end it with a reset (linger 0), which nginx cannot
        # miss even while it waits to write to us (a plain close once went unlogged for 45 s on CI).
        for sock in open_sockets:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)  # wakes the relay's threads, which then close both ends
            except OSError:
                pass
