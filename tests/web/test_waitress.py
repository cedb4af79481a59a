"""The real server (`python -m Tumor.serve`, what run.sh runs) on 127.0.0.1: the app's own 413 for
any MAX_UPLOAD_MB, and a normal client answered while 200 slow connections are open.

The server uses its own temporary SQLite database: these paths do not touch the database."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
PORTS = iter(range(18114, 18120))


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def serve(tmp_path_factory):
    started = []

    def start(max_upload_mb: int, **extra: str) -> str:
        tmp = tmp_path_factory.mktemp(f"serve{max_upload_mb}")
        port = _free_port()
        env = dict(os.environ, TUMOR_VAR_DIR=str(tmp), DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
                   SECRET_KEY="waitress-test-" + "x" * 40, DEBUG="0", WARM_UP="0", ORPHAN_SWEEP_MINUTES="0",
                   MAX_UPLOAD_MB=str(max_upload_mb), HOST="127.0.0.1", PORT=str(port), **extra)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.pop("MEDIA_ROOT", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=REPO, env=env,
                       check=True, timeout=300)
        proc = subprocess.Popen([sys.executable, "-m", "Tumor.serve"], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"))
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/login/", timeout=5).status_code == 200:
                    return base
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp / "server.log").read_text()[-3000:])
            time.sleep(0.1)

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _post(base: str, path: str, size: int) -> requests.Response:
    return requests.post(f"{base}{path}", files={"file": ("big.dcm", b"\0" * size)}, timeout=120)


def test_upload_over_the_limit_gets_the_apps_413_json_and_page(serve):
    base = serve(1)
    size = 1024 * 1024 + 200 * 1024
    api = _post(base, "/api/analyses/", size)
    assert api.status_code == 413
    body = api.json()
    assert body["status"] == 413 and "limit of 1,048,576 bytes" in body["error"]
    page = _post(base, "/detect/", size)
    assert page.status_code == 413
    assert "Upload too large" in page.text and "limit of 1,048,576 bytes" in page.text


def test_max_upload_mb_above_25_reaches_the_app_and_its_413(serve):
    base = serve(30)
    # 26 MiB: over the old hard-coded 25 MiB waitress limit; the app itself answers (403 JSON:
    # no CSRF token), so waitress let it through.
    within = _post(base, "/api/analyses/", 26 * 1024 * 1024)
    assert within.status_code == 401 and within.json()["status"] == 401
    # Just over 30 MiB: the app's own JSON 413, not waitress's plain one.
    over = _post(base, "/api/analyses/", 30 * 1024 * 1024 + 100 * 1024)
    assert over.status_code == 413 and over.json()["status"] == 413
    assert "31,457,280 bytes" in over.json()["error"]


def test_normal_client_is_answered_while_200_slow_connections_are_open(serve):
    base = serve(20)
    port = int(base.rsplit(":", 1)[1])
    slow = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
            slow.append(s)
        for s in slow:
            s.sendall(b"X-Slow: 1\r\n")
        for _ in range(3):
            answer = requests.get(f"{base}/login/", timeout=10)
            assert answer.status_code == 200
    finally:
        for s in slow:
            s.close()


def test_connection_trickling_header_lines_is_closed_after_the_header_deadline(serve):
    base = serve(20, HEADER_TIMEOUT="2")
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed = False
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not closed:
            time.sleep(1)
            try:
                s.sendall(b"X-Slow: 1\r\n")  # never idle: channel_timeout alone would never fire
                s.settimeout(0.2)
                closed = s.recv(1) == b""
            except socket.timeout:
                continue
            except OSError:
                closed = True
        assert closed
    assert requests.get(f"{base}/login/", timeout=10).status_code == 200
