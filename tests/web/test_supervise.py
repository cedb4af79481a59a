"""A crash is not an outage: the supervised start (`python -m Tumor.supervise`, what run.sh runs)
restarts a web server or series worker killed with SIGKILL (as the kernel's OOM killer does), and
stops both on SIGTERM."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from .test_waitress import REPO, _free_port


def _pids(log: Path, name: str) -> list[int]:
    return [int(p) for p in re.findall(rf"{name} started \(pid (\d+)\)", log.read_text())]


def _wait(condition, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def _serving(base: str) -> bool:
    try:
        return requests.get(f"{base}/login/", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def test_a_killed_server_and_worker_are_restarted_and_sigterm_stops_both(tmp_path):
    port = _free_port()
    env = dict(os.environ, TUMOR_VAR_DIR=str(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
               SECRET_KEY="supervise-test-" + "x" * 40, DEBUG="0", WARM_UP="0", ORPHAN_SWEEP_MINUTES="0",
               HOST="127.0.0.1", PORT=str(port), SERIES_WORKER="1")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("MEDIA_ROOT", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=REPO, env=env, check=True,
                   timeout=300)
    log = tmp_path / "supervise.log"
    proc = subprocess.Popen([sys.executable, "-m", "Tumor.supervise"], cwd=REPO, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _serving(base), 90, "the first start", log)
        _wait(lambda: _pids(log, "series worker"), 30, "the worker", log)
        server, worker = _pids(log, "web server")[0], _pids(log, "series worker")[0]

        os.kill(server, signal.SIGKILL)
        os.kill(worker, signal.SIGKILL)
        _wait(lambda: len(_pids(log, "web server")) == 2 and _serving(base), 90, "the server's restart", log)
        _wait(lambda: len(_pids(log, "series worker")) == 2, 30, "the worker's restart", log)
        assert "web server (pid %d) exited with signal SIGKILL" % server in log.read_text()
        assert _pids(log, "web server")[1] != server

        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        assert proc.returncode == 0 and not _serving(base)
        for pid in _pids(log, "web server") + _pids(log, "series worker"):
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
