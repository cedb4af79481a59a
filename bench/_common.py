"""Shared helpers for the bench scripts: repo path, fixtures, percentiles, the machine's description."""
from __future__ import annotations

import os
import platform
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FIXTURES = REPO / "tests" / "fixtures"
# Real 512 x 512 CT slices (tests/fixtures/README.md has their sources and licences).
DICOM_SLICES = [FIXTURES / "analysis_ircadb01_066.dcm", FIXTURES / "web_ircadb01_image_84.dcm"]
PNG_SLICES = [FIXTURES / "analysis_seed_440.png", FIXTURES / "web_seed_380.png",
              FIXTURES / "analysis_ircadb01_105_w400l40.png", FIXTURES / "analysis_ircadb01_057_hu1024.png"]


def write_ct_slice(template, series_uid: str, k: int, step_mm: float, plane, path: Path) -> None:
    """Slice `k` of a synthetic DICOM series: `template`'s header (a real CT slice's) with its own
    UIDs, its z position k x step_mm and `plane` (int16 HU) as pixels, saved to `path`."""
    import numpy as np
    from pydicom.uid import generate_uid

    ds = template.copy()
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.ImagePositionPatient = [0.0, 0.0, round(k * step_mm, 3)]
    ds.InstanceNumber = k + 1
    ds.PixelRepresentation = 1
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    ds.PixelData = np.ascontiguousarray(plane.astype(np.int16)).tobytes()
    ds.save_as(path, enforce_file_format=True)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank on the sorted values."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[k]


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load average {os.getloadavg()[0]:.2f} at start"
    return f"{cpu}, {cores} cores, no GPU, Python {platform.python_version()}{load}"


def rss_mib(pid: int | str = "self") -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB, from /proc (Linux)."""
    now = peak = float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            now = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return now, peak


def stop_server(proc, scratch=None) -> None:
    """End a server the bench started (SIGTERM, then SIGKILL after 10 s) and remove its scratch folder."""
    import shutil
    import subprocess

    if proc is not None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


# --- a throw-away server for the scripts that measure through HTTP --------------------------------

BENCH_USER, BENCH_PASSWORD = "bench", "bench-Password-9731"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    """`manage.py ARGS` in a child process with `env`; its standard output."""
    import subprocess

    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True,
                          capture_output=True, text=True).stdout


def scratch_env(tmp: Path, **settings: str) -> dict:
    """The environment of a server whose database, media and var/ live in `tmp` (SQLite); the ONNX
    graphs are shared with the checkout (keyed by the weights' hash) unless ONNX_CACHE_DIR says."""
    env = dict(os.environ, DEBUG="0", TUMOR_VAR_DIR=str(tmp), MEDIA_ROOT=str(tmp / "media"),
               DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}", SECRET_KEY="bench-only-" + os.urandom(16).hex(),
               ONNX_CACHE_DIR=os.environ.get("ONNX_CACHE_DIR", str(REPO / "var" / "cache" / "onnx")))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(settings)
    return env


def prepare_site(env: dict, username: str = BENCH_USER, password: str = BENCH_PASSWORD) -> None:
    """Migrate the scratch database and create the bench's user."""
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "-c", "from django.contrib.auth import get_user_model; "
           f"get_user_model().objects.create_user({username!r}, password={password!r})")


def start_server(tmp: Path, timeout: float = 120, **settings: str):
    """`python -m Tumor.serve` (what run.sh runs) on a free loopback port over `tmp`, once it answers
    GET /login/; returns (process, base URL).  `settings` are extra environment variables."""
    import subprocess
    import time

    import requests

    port = free_port()
    env = scratch_env(tmp, HOST="127.0.0.1", PORT=str(port), **settings)
    prepare_site(env)
    server = subprocess.Popen([sys.executable, "-m", "Tumor.serve"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "wb"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{base}/login/", timeout=30).status_code == 200:
                return server, base
        except requests.RequestException:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            stop_server(server)
            raise RuntimeError((tmp / "server.log").read_text()[-2000:])
        time.sleep(0.1)
