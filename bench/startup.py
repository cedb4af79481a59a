"""Start-up as a user meets it: `./run.sh` on a fresh checkout (empty var/, no cached graphs), then a restart.

    .venv/bin/python bench/startup.py [--warm-cache]

Runs the real `./run.sh` (same steps a user runs: pip check, migrate, collectstatic, ensure_admin,
prepare_model, waitress) with its own temporary var/ folder and ONNX cache (`--warm-cache` keeps the
checkout's cache) on a free 127.0.0.1 port. A user and an API token are made first, so uploads go
through the JSON API with `Authorization: Bearer`. Prints, for the first start and for a restart:
run.sh -> "Serving on", "Serving on" -> first answer, and the first and second uploads (a real
512 x 512 DICOM slice), each timed from the moment the request is sent.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from _common import DICOM_SLICES, REPO, free_port, machine, manage

import requests  # noqa: E402


class Server:
    """`./run.sh` in its own process group, its output lines timestamped."""

    def __init__(self, env: dict):
        self.lines: list[tuple[float, str]] = []
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(["./run.sh"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.perf_counter(), line.rstrip()))

    def wait_for(self, text: str, timeout: float = 900) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for t, line in list(self.lines):
                if text in line:
                    return t
            if self.proc.poll() is not None:
                raise RuntimeError("run.sh exited:\n" + "\n".join(l for _, l in self.lines[-30:]))
            time.sleep(0.01)
        raise TimeoutError(text)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def first_answer(base: str, since: float) -> float:
    while True:
        try:
            if requests.get(f"{base}/", timeout=5).status_code == 200:
                return time.perf_counter() - since
        except requests.ConnectionError:
            pass
        time.sleep(0.005)


def upload(base: str, token: str) -> float:
    path = DICOM_SLICES[0]
    t = time.perf_counter()
    answer = requests.post(f"{base}/api/analyses/", headers={"Authorization": f"Bearer {token}"},
                           files={"file": (path.name, path.read_bytes())}, timeout=600)
    elapsed = time.perf_counter() - t
    if answer.status_code != 201:
        raise RuntimeError(f"upload: {answer.status_code} {answer.text[:300]}")
    return elapsed


def one_start(env: dict, base: str, token: str, label: str) -> None:
    server = Server(env)
    try:
        serving = server.wait_for("Serving on http")
        answer = first_answer(base, serving)
        first = upload(base, token)
        second = upload(base, token)
        prepare = [l for _, l in server.lines if l.startswith("inference:")]
        print(f"[{label}] run.sh -> 'Serving on': {serving - server.started:.1f} s")
        print(f"[{label}]   {prepare[0] if prepare else '(no prepare line)'}")
        print(f"[{label}] 'Serving on' -> first answer (GET / 200): {answer:.2f} s")
        print(f"[{label}] first upload (DICOM, API): {first:.2f} s; second: {second:.2f} s; "
              f"'Serving on' -> first upload answered: {time.perf_counter() - serving - second:.2f} s")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-cache", action="store_true", help="keep the checkout's cached ONNX graphs")
    args = parser.parse_args()
    print(machine())
    var = tempfile.mkdtemp(prefix="tumor-startup-")
    port = free_port()
    env = dict(os.environ, TUMOR_VAR_DIR=var, PORT=str(port), DEBUG="0", DATABASE_URL="",
               PYTHONUNBUFFERED="1")
    env.pop("DATABASE_URL")
    # The checkout's cache (var/cache/onnx) or an empty one in the temporary var/.
    env["ONNX_CACHE_DIR"] = str(REPO / "var" / "cache" / "onnx") if args.warm_cache else os.path.join(var, "cache", "onnx")
    try:
        manage(env, "migrate", "--noinput")
        manage(env, "shell", "-c", "from django.contrib.auth import get_user_model as g; "
                                   "g().objects.create_user('bench', password='bench-Password-9731')")
        token = manage(env, "create_api_token", "bench").strip()
        base = f"http://127.0.0.1:{port}"
        one_start(env, base, token, "first start" + ("" if args.warm_cache else ", empty graph cache"))
        one_start(env, base, token, "restart")
    finally:
        shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
