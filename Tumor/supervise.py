"""Keep the app serving: `python -m Tumor.supervise` (what run.sh runs) starts the web server
(`python -m Tumor.serve`) and, unless SERIES_WORKER=0 or SERIES_QUEUE=celery, the series worker
(`manage.py series_worker`), and restarts either one when it dies (killed by the kernel for
memory, a crash): a crash is not an outage.  Restarts back off from 1 s to 30 s while a process
keeps dying within a minute of its start.  SIGINT / SIGTERM stop both and exit.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKOFF_S = (1.0, 30.0)  # first and longest wait before a restart
STABLE_S = 60.0          # a process that ran this long restarts at once (the backoff is reset)


@dataclass
class Child:
    """One supervised process: its command, the running process, when it started, its backoff."""

    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    started: float = 0.0
    wait_s: float = BACKOFF_S[0]
    restart_at: float = 0.0

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, cwd=ROOT)
        self.started = time.monotonic()
        log(f"{self.name} started (pid {self.process.pid})")

    def check(self, now: float) -> None:
        """Restart the process when it has exited and its backoff has passed."""
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                return
            ran = now - self.started
            self.wait_s = BACKOFF_S[0] if ran >= STABLE_S else min(self.wait_s * 2, BACKOFF_S[1])
            self.restart_at = now + (0.0 if ran >= STABLE_S else self.wait_s)
            log(f"{self.name} (pid {self.process.pid}) exited with {describe(code)} after {ran:.0f} s; "
                f"restarting in {self.restart_at - now:.0f} s")
            self.process = None
        if now >= self.restart_at:
            self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def log(message: str) -> None:
    print(f"[supervise] {time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)


def children(environ=os.environ) -> list[Child]:
    python = sys.executable
    out = [Child("web server", [python, "-m", "Tumor.serve"])]
    queue = environ.get("SERIES_QUEUE", "database").strip().lower()
    if queue != "celery" and environ.get("SERIES_WORKER", "1") != "0":
        out.append(Child("series worker", [python, "manage.py", "series_worker"]))
    return out


def main() -> None:
    running = children()
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    for child in running:
        child.start()
    while not stopping:
        time.sleep(0.5)
        now = time.monotonic()
        for child in running:
            if not stopping:
                child.check(now)
    log("stopping")
    for child in running:
        child.stop()


if __name__ == "__main__":
    main()
