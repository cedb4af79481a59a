"""Upload -> result through the real server: waitress serving Tumor.wsgi as run.sh does, on 127.0.0.1.

    .venv/bin/python bench/request.py [--requests 40] [--concurrent-requests 80] [--max-seconds 60]

Starts `python -m Tumor.serve` (what run.sh runs) on a free 127.0.0.1 port with its own temporary
SQLite database and media folder, creates a user, logs in through the real login form (CSRF
token from the page), then POSTs real 512 x 512 CT slices (DICOM and PNG from tests/fixtures) to
/detect/ and follows the redirect to the result page: that round trip is one "upload -> result".
Phases: 1 client, then 4 concurrent clients, each bounded by a request count and a time limit.
Prints p50/p95 latency (overall and per file type), throughput, errors, the server's RSS after
warm-up and its peak RSS, and the time from starting the server to its first answer.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import (BENCH_PASSWORD, BENCH_USER, DICOM_SLICES, PNG_SLICES, REPO, free_port, machine, median, pct,
                     prepare_site, rss_mib, scratch_env, stop_server)

import requests  # noqa: E402

USERNAME, PASSWORD = BENCH_USER, BENCH_PASSWORD
RESULT_URL = re.compile(r"/analyses/(\d+)/$")
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def log_in(base: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{base}/login/", timeout=30)
    token = CSRF_INPUT.search(page.text).group(1)
    answer = session.post(f"{base}/login/", timeout=30, headers={"Referer": f"{base}/login/"},
                          data={"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": token})
    if answer.status_code != 200 or answer.url.rstrip("/").endswith("/login"):
        raise RuntimeError(f"login failed: {answer.status_code} {answer.url}")
    return session


def upload(session: requests.Session, base: str, path: Path) -> float:
    """POST one slice and follow the redirect to its result page; the time in ms, or raise."""
    token = session.cookies.get("csrftoken")
    data = path.read_bytes()
    t = time.perf_counter()
    answer = session.post(f"{base}/detect/", files={"file": (path.name, data)}, timeout=120,
                          data={"csrfmiddlewaretoken": token}, headers={"Referer": f"{base}/detect/"})
    elapsed = (time.perf_counter() - t) * 1e3
    if answer.status_code != 200 or not RESULT_URL.search(answer.url) or "Tumor" not in answer.text:
        raise RuntimeError(f"{path.name}: {answer.status_code} {answer.url}")
    return elapsed


def run_phase(base: str, clients: int, count: int, max_seconds: float, files: list[Path]):
    """`clients` threads, each with its own logged-in session, share `count` uploads."""
    sessions = [log_in(base) for _ in range(clients)]
    latencies: list[tuple[str, float]] = []
    errors: list[str] = []
    lock = threading.Lock()
    issued = [0]
    deadline = time.perf_counter() + max_seconds

    def client(session: requests.Session) -> None:
        while time.perf_counter() < deadline:
            with lock:
                if issued[0] >= count:
                    return
                path = files[issued[0] % len(files)]
                issued[0] += 1
            try:
                ms = upload(session, base, path)
            except Exception as exc:  # counted and reported, the run goes on
                with lock:
                    errors.append(str(exc)[:200])
                continue
            with lock:
                latencies.append((path.suffix.lstrip(".").lower(), ms))

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(s,)) for s in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return latencies, errors, wall


def report(title: str, latencies, errors, wall) -> None:
    ms = [v for _, v in latencies]
    print(f"\n{title}: {len(ms)} uploads in {wall:.1f} s, errors {len(errors)}")
    if ms:
        print(f"  upload -> result  p50 {median(ms):6.0f} ms   p95 {pct(ms, 95):6.0f} ms")
        for kind in sorted({k for k, _ in latencies}):
            sub = [v for k, v in latencies if k == kind]
            print(f"    {kind:<5} n={len(sub):<4} p50 {median(sub):6.0f} ms   p95 {pct(sub, 95):6.0f} ms")
        print(f"  throughput {len(ms) / wall:.1f} analyses/s")
    for e in errors[:5]:
        print(f"  error: {e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="uploads with 1 client (default 40)")
    parser.add_argument("--concurrent-requests", type=int, default=80, help="uploads with 4 clients (default 80)")
    parser.add_argument("--max-seconds", type=float, default=60, help="time limit per phase (default 60)")
    parser.add_argument("--threads", default=os.environ.get("THREADS", "8"), help="waitress threads (run.sh default 8)")
    parser.add_argument("--warm", type=int, default=6, help="uploads before measuring (default 6)")
    parser.add_argument("--files", choices=["mixed", "dicom", "png"], default="mixed")
    parser.add_argument("--cold-cache", action="store_true",
                        help="empty ONNX cache: the server exports the graph from the HDF5 at start (once per weights)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    from TumorApp.analysis.model.runtime import backend_from_env

    print(f"inference backend: {backend_from_env()} (INFERENCE_BACKEND=onnx for the fp32 graph)")

    files = {"dicom": DICOM_SLICES, "png": PNG_SLICES[:2], "mixed": [DICOM_SLICES[0], PNG_SLICES[0],
                                                                      DICOM_SLICES[1], PNG_SLICES[1]]}[args.files]
    tmp = Path(tempfile.mkdtemp(prefix="tumor-bench-"))
    # The exported ONNX graph is shared with the checkout unless --cold-cache.
    env = scratch_env(tmp, **({"ONNX_CACHE_DIR": str(tmp / "onnx")} if args.cold_cache else {}))
    server = None
    try:
        prepare_site(env)

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        # What run.sh runs (Tumor/serve.py holds waitress's options).
        command = [sys.executable, "-m", "Tumor.serve"]
        env.update(HOST="127.0.0.1", PORT=str(port), THREADS=str(args.threads))
        started = time.perf_counter()
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                  stderr=open(tmp / "server.log", "wb"))
        first_answer = None
        while time.perf_counter() - started < 60:
            if server.poll() is not None:
                raise RuntimeError(f"server exited: {(tmp / 'server.log').read_text()[-2000:]}")
            try:
                if requests.get(f"{base}/login/", timeout=5).status_code == 200:
                    first_answer = time.perf_counter() - started
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        if first_answer is None:
            raise RuntimeError("server did not answer within 60 s")
        session = log_in(base)
        first_upload = upload(session, base, files[0])
        print(f"server start -> first answer (GET /login/ 200): {first_answer:.2f} s")
        print(f"first upload after start (includes any model loading left): {first_upload:.0f} ms, "
              f"done {time.perf_counter() - started:.1f} s after start")
        for i in range(args.warm):
            upload(session, base, files[i % len(files)])
        rss_warm, _ = rss_mib(server.pid)
        print(f"server RSS after warm-up: {rss_warm:.0f} MiB   (waitress --threads={args.threads})")

        one = run_phase(base, 1, args.requests, args.max_seconds, files)
        report("1 client", *one)
        four = run_phase(base, 4, args.concurrent_requests, args.max_seconds, files)
        report("4 concurrent clients", *four)

        rss_now, rss_peak = rss_mib(server.pid)
        print(f"\nserver RSS now {rss_now:.0f} MiB, peak {rss_peak:.0f} MiB")
        total_errors = len(one[1]) + len(four[1])
        print(f"errors in total: {total_errors}")
        sys.exit(1 if total_errors else 0)
    finally:
        stop_server(server, tmp)


if __name__ == "__main__":
    main()
