"""A normal client's answer time while many slow clients hold connections open (slowloris).

    .venv/bin/python bench/slow_clients.py [--slow 200] [--seconds 40] [--interval 5]

127.0.0.1 only, bounded in time. Starts `python -m Tumor.serve` (what run.sh runs, Tumor/serve.py's
waitress options) on a free port with a temporary SQLite database and WARM_UP=0, then:
1. baseline: a normal client GETs /login/ once a second for a few seconds;
2. opens `--slow` connections that each send a request line and then one header line every
   `--interval` seconds, never finishing the headers (the issue's attack: 105 of them used to
   exhaust waitress's 100 connections for good); meanwhile the normal client keeps GETting /login/
   once a second for `--seconds`. Prints p50/p95/max answer time and failures in both phases, and how
   many slow connections the server had closed by the end.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import REPO, free_port, machine, median, pct, stop_server

import requests  # noqa: E402


def probe(base: str, seconds: float) -> tuple[list[float], int]:
    """GET /login/ once a second for `seconds`; answer times (ms) and failures."""
    times, failures = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        try:
            ok = requests.get(f"{base}/login/", timeout=10).status_code == 200
        except requests.RequestException:
            ok = False
        if ok:
            times.append((time.perf_counter() - t) * 1e3)
        else:
            failures += 1
        time.sleep(max(0.0, 1.0 - (time.perf_counter() - t)))
    return times, failures


def line(title: str, times: list[float], failures: int) -> str:
    if not times:
        return f"{title}: no answer, {failures} failures"
    return (f"{title}: n={len(times)} p50 {median(times):.0f} ms  p95 {pct(times, 95):.0f} ms  "
            f"max {max(times):.0f} ms  failures {failures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=200, help="slow connections (default 200)")
    parser.add_argument("--seconds", type=float, default=40, help="measuring time with them open (default 40)")
    parser.add_argument("--interval", type=float, default=5, help="seconds between a slow client's header lines")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="tumor-slow-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, DEBUG="0", TUMOR_VAR_DIR=str(tmp), DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
               SECRET_KEY="slow-only-" + os.urandom(16).hex(), WARM_UP="0", HOST="127.0.0.1", PORT=str(port))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("MEDIA_ROOT", None)
    server = None
    stop = threading.Event()
    slow: list[socket.socket] = []
    closed = [0]
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=REPO, env=env, check=True)
        server = subprocess.Popen([sys.executable, "-m", "Tumor.serve"], cwd=REPO, env=env,
                                  stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"))
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/login/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp / "server.log").read_text()[-2000:])
                time.sleep(0.1)
        from Tumor.serve import waitress_options

        opts = waitress_options(env)
        print(f"waitress: connection_limit {opts['connection_limit']}, channel_timeout {opts['channel_timeout']} s, "
              f"threads {opts['threads']}")
        print(line("baseline (no slow clients)", *probe(base, 5)))

        for _ in range(args.slow):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(s)

        def trickle() -> None:
            n = 0
            while not stop.wait(args.interval):
                n += 1
                for s in list(slow):
                    try:
                        s.sendall(f"X-Slow-{n}: 1\r\n".encode())
                    except OSError:
                        slow.remove(s)
                        closed[0] += 1

        sender = threading.Thread(target=trickle, daemon=True)
        sender.start()
        print(line(f"with {args.slow} slow connections open", *probe(base, args.seconds)))
        stop.set()
        sender.join(args.interval + 5)
        print(f"slow connections closed by the server during the run: {closed[0]} of {args.slow}")
    finally:
        stop.set()
        for s in slow:
            s.close()
        stop_server(server, tmp)


if __name__ == "__main__":
    main()
