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
