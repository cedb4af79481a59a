"""The hostile series corpus through the real server: status, seconds and the server's peak RSS per upload.

    .venv/bin/python bench/series_hostile.py [--only NAME ...] [--max-seconds 120]

Builds tests/fixtures/bad/make_series_hostile.py's uploads in a temporary folder, starts
`python -m Tumor.serve` (as run.sh) on 127.0.0.1 with a temporary SQLite database and media
folder, logs in, and POSTs each upload to /api/series/.  Before each upload the server's peak-RSS
counter is reset (/proc/PID/clear_refs), so the peak printed is that upload's; meanwhile another
client keeps loading /login/, and the slowest of those answers shows whether the server still
served other users.  Prints figures; asserts nothing (tests/web/series/test_series_hostile.py does).
Linux only (/proc).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import FIXTURES, machine, rss_mib, start_server, stop_server


class Bystander(threading.Thread):
    """Another user loading a page over and over; records the slowest answer."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base, self.stop, self.slowest, self.failures = base, threading.Event(), 0.0, 0

    def run(self):
        import requests

        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                ok = requests.get(f"{self.base}/login/", timeout=60).status_code == 200
            except requests.RequestException:
                ok = False
            self.failures += not ok
            self.slowest = max(self.slowest, time.perf_counter() - started)
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="case names (default: all)")
    parser.add_argument("--max-seconds", type=float, default=120, help="per upload (default 120)")
    args = parser.parse_args()
    sys.path.insert(0, str(FIXTURES / "bad"))
    from make_series_hostile import CASES, build
    from request import log_in

    print(f"machine: {machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="tumor-series-hostile-"))
    server = None
    try:
        folders = build(tmp / "corpus", args.only)
        (tmp / "server").mkdir()
        server, base = start_server(tmp / "server", SERIES_WORKER="0")
        session = log_in(base)
        rss_base, _ = rss_mib(server.pid)
        print(f"server baseline RSS {rss_base:.0f} MiB\n")
        print(f"{'upload':<24} {'files':>5} {'sent MiB':>8} {'status':>6} {'s':>6} {'peak MiB':>8} "
              f"{'+MiB':>6} {'other user s':>12}  answer")
        for case in CASES:
            if case.name not in folders:
                continue
            paths = sorted(folders[case.name].iterdir())
            files = [("file", (p.name, p.read_bytes())) for p in paths]
            Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # peak RSS from here on
            now, _ = rss_mib(server.pid)
            other = Bystander(base)
            other.start()
            started = time.perf_counter()
            try:
                r = session.post(f"{base}/api/series/", files=files, timeout=args.max_seconds,
                                 headers={"X-CSRFToken": session.cookies["csrftoken"]})
                status, answer = r.status_code, (r.json().get("error", "") if r.headers.get(
                    "Content-Type", "").startswith("application/json") else r.text[:80])
            except Exception as exc:  # a timeout or a dropped connection is a figure too
                status, answer = "-", type(exc).__name__
            seconds = time.perf_counter() - started
            other.stop.set()
            other.join()
            _, peak = rss_mib(server.pid)
            sent = sum(p.stat().st_size for p in paths) / 2**20
            print(f"{case.name:<24} {len(paths):>5} {sent:>8.2f} {status:>6} {seconds:>6.2f} {peak:>8.0f} "
                  f"{peak - now:>6.0f} {other.slowest:>12.2f}  {str(answer)[:90]}"
                  + (f" ({other.failures} bystander failures)" if other.failures else ""))
    finally:
        stop_server(server, tmp)


if __name__ == "__main__":
    main()
