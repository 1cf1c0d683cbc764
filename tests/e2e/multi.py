"""Several real `govfaq serve` processes behind a real nginx (Debian's package), for the
multi-instance tests of issue 16. Nothing is mocked: each instance is its own process with
its own data folder, and nginx balances them round-robin with no stickiness."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, seconds: float = 180.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the process ended with {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} not ready after {seconds:.0f} s")


class Instance:
    """One `govfaq serve` process on a loopback port."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    **env}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Instance":
        cmd = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--forwarded-allow-ips", "127.0.0.1"]
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


NGINX_CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream govfaq {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://govfaq;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx_in_front(ports: list[int], folder: Path):
    """nginx on a free loopback port, round-robin over `ports` (no stickiness); yields its URL.

    nginx appends the peer to X-Forwarded-For, and the instances trust 127.0.0.1 as a proxy: the tests,
    all on loopback, stand for different residents by sending their own X-Forwarded-For."""
    if not Path(NGINX).exists():
        raise RuntimeError("nginx missing: `make test` installs Debian's nginx")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in ports)
    conf = folder / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=folder, servers=servers, port=port))
    proc = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=(folder / "stderr.log").open("ab"))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"nginx ended: {(folder / 'stderr.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
