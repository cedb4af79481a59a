"""Stress with a crash: several clients upload while the server is SIGKILLed once and restarted; nothing reported stored is lost.

    .venv/bin/python bench/stress.py [--uploads 240] [--clients 4] [--max-seconds 240]

127.0.0.1 only. Starts waitress (as run.sh does) on a temporary SQLite database and media folder,
creates one user per client, and has each client POST real CT slices to /api/analyses/ until the
upload count or the time limit is reached. When half the uploads have been sent the server is
killed with SIGKILL (mid-request) and started again on the same port; clients see connection
errors meanwhile and carry on. Afterwards every upload that got 201 is checked: its row exists,
owned by its client, its stored upload is byte-identical to what was sent, every result image
exists, and it reopens (GET /api/analyses/<id>/ 200 and GET /analyses/<id>/ 200). Prints sent,
succeeded, failed cleanly (a 4xx/5xx answer or a connection error: the client knows it failed),
lost (answered 201 but missing or damaged afterwards: must be 0), and the orphan files the kill
left (files with no row; `manage.py clean_media` removes them). Exit status 1 if anything was lost.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import DICOM_SLICES, PNG_SLICES, REPO, free_port, machine, manage

import requests  # noqa: E402

PASSWORD = "stress-Password-5521"


class Server:
    def __init__(self, env: dict, port: int, log: Path):
        self.env, self.port, self.log, self.proc = env, port, log, None

    def start(self, timeout: float = 90) -> None:
        # What run.sh runs (Tumor/serve.py holds waitress's options).
        command = [sys.executable, "-m", "Tumor.serve"]
        env = dict(self.env, HOST="127.0.0.1", PORT=str(self.port), THREADS="8")
        self.proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/login/", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("server did not answer in time")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def log_in(base: str, username: str, deadline: float) -> requests.Session:
    while True:
        try:
            s = requests.Session()
            s.get(f"{base}/login/", timeout=30)
            r = s.post(f"{base}/login/", timeout=30, allow_redirects=False, headers={"Referer": f"{base}/login/"},
                       data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": s.cookies["csrftoken"]})
            if r.status_code == 302:
                return s
            raise RuntimeError(f"login {username}: {r.status_code}")
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=240, help="uploads in total (default 240)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients, one user each (default 4)")
    parser.add_argument("--max-seconds", type=float, default=240, help="stop sending after this (default 240)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    print(f"machine: {machine()}")

    files = [(p.name, p.read_bytes()) for p in (DICOM_SLICES[0], PNG_SLICES[0], DICOM_SLICES[1], PNG_SLICES[1])]
    tmp = Path(tempfile.mkdtemp(prefix="tumor-stress-"))
    env = dict(os.environ, DEBUG="0", TUMOR_VAR_DIR=str(tmp), MEDIA_ROOT=str(tmp / "media"),
               DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}", SECRET_KEY="stress-only-" + os.urandom(16).hex(),
               ONNX_CACHE_DIR=os.environ.get("ONNX_CACHE_DIR", str(REPO / "var" / "cache" / "onnx")))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    users = [f"client{i}" for i in range(args.clients)]
    server = Server(env, free_port(), tmp / "server.log")
    base = f"http://127.0.0.1:{server.port}"
    lock = threading.Lock()
    sent = 0
    successes: list[tuple[str, int, str, str]] = []  # (user, id, name, sha256)
    failures: dict[str, int] = {}
    kill_at = args.uploads // 2
    killed = threading.Event()
    started = time.monotonic()
    stop_at = started + args.max_seconds
    try:
        manage(env, "migrate", "--noinput")
        manage(env, "shell", "-c", "from django.contrib.auth import get_user_model; U = get_user_model(); "
               + "; ".join(f"U.objects.create_user({u!r}, password={PASSWORD!r})" for u in users))
        server.start()
        sessions = {u: log_in(base, u, stop_at) for u in users}

        def client(user: str) -> None:
            nonlocal sent
            session = sessions[user]
            while True:
                with lock:
                    if sent >= args.uploads or time.monotonic() > stop_at:
                        return
                    n = sent
                    sent += 1
                name, data = files[n % len(files)]
                name = f"{user}-{n}-{name}"
                try:
                    r = session.post(f"{base}/api/analyses/", files={"file": (name, data)}, timeout=120,
                                     headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{base}/"})
                    outcome = "201" if r.status_code == 201 else f"HTTP {r.status_code}"
                except requests.RequestException as exc:
                    outcome = type(exc).__name__
                    r = None
                with lock:
                    if outcome == "201":
                        successes.append((user, r.json()["id"], name, hashlib.sha256(data).hexdigest()))
                    else:
                        failures[outcome] = failures.get(outcome, 0) + 1
                if r is None:
                    time.sleep(0.2)  # the server is down: do not spin

        threads = [threading.Thread(target=client, args=(u,)) for u in users]
        for t in threads:
            t.start()
        while not killed.is_set() and any(t.is_alive() for t in threads):
            with lock:
                due = sent >= kill_at
            if due:
                server.kill()
                killed.set()
                t_kill = time.monotonic()
                print(f"SIGKILL after {kill_at} uploads sent ({t_kill - started:.1f} s); restarting")
                server.start()
                print(f"server back after {time.monotonic() - t_kill:.1f} s")
            time.sleep(0.02)
        for t in threads:
            t.join()
        wall = time.monotonic() - started

        lost = verify(env, base, sessions, successes)
        orphans = manage(env, "clean_media", "--min-age-minutes", "0").strip()
        failed = sum(failures.values())
        print(f"\nsent {sent}   succeeded {len(successes)}   failed cleanly {failed} {dict(sorted(failures.items()))}"
              f"   lost {len(lost)}   in {wall:.1f} s ({args.clients} clients, killed once: {killed.is_set()})")
        print(f"orphan files left by the kill: {orphans}")
        for item in lost:
            print("LOST:", item)
        sys.exit(1 if lost or not killed.is_set() else 0)
    finally:
        server.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def verify(env: dict, base: str, sessions: dict, successes: list) -> list[str]:
    """Every 201: row with the right owner and name, stored upload byte-identical, images present, reopens."""
    os.environ.update({k: env[k] for k in ("TUMOR_VAR_DIR", "MEDIA_ROOT", "DATABASE_URL", "SECRET_KEY", "DEBUG")})
    os.environ["DJANGO_SETTINGS_MODULE"] = "Tumor.settings"
    import django

    django.setup()
    from django.core.files.storage import default_storage

    from TumorApp.models import Analysis

    lost = []
    rows = {a.pk: a for a in Analysis.objects.select_related("owner").filter(pk__in=[s[1] for s in successes])}
    for user, pk, name, digest in successes:
        a = rows.get(pk)
        if a is None or a.owner.username != user or a.original_name != name:
            lost.append(f"{user} #{pk} {name}: row missing or wrong")
            continue
        try:
            with default_storage.open(a.upload.name) as fh:
                ok = hashlib.sha256(fh.read()).hexdigest() == digest
            ok = ok and all(default_storage.exists(p) for p in a.images.values())
        except OSError:
            ok = False
        if not ok:
            lost.append(f"{user} #{pk} {name}: stored files missing or damaged")
            continue
        api = sessions[user].get(f"{base}/api/analyses/{pk}/", timeout=30)
        page = sessions[user].get(f"{base}/analyses/{pk}/", timeout=30)
        if api.status_code != 200 or api.json().get("id") != pk or page.status_code != 200:
            lost.append(f"{user} #{pk} {name}: does not reopen ({api.status_code}, {page.status_code})")
    return lost


if __name__ == "__main__":
    main()
