"""Peak memory (RSS) of one analysis per kind of upload, and of the server under concurrent uploads.

    .venv/bin/python bench/memory.py [--concurrent 8] [--skip-server]

Part 1, one analysis: for each input (a real 512 x 512 DICOM, synthetic slices at the pixel budget's
edges: 2048², 4096² 8-bit, 4096² 16-bit HU, 4096 x 1024, 4096² RGB JPEG, and the hostile corpus
of tests/fixtures/bad/make_hostile.py) a fresh child process loads the network, runs one warm-up
analysis, resets its peak-RSS counter (/proc/self/clear_refs) and runs `analyze()` with rendering,
as the web does. Prints the peak RSS and the peak above the warm baseline.

Part 2, the server: `python -m Tumor.serve` (as run.sh) on 127.0.0.1 with a temporary SQLite
database; `--concurrent` clients each POST the largest accepted slice (4096² 16-bit) at once, a few
times; prints the server's baseline and peak RSS and how the uploads were answered (201, or 503
when every analysis slot was busy longer than the queue wait). Linux only (/proc). Bounded: each
phase stops after --max-seconds.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import DICOM_SLICES, FIXTURES, REPO, machine, rss_mib, stop_server

CHILD = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from TumorApp.analysis.errors import InputError
from TumorApp.analysis.slice.pipeline import analyze
from _common import rss_mib
analyze(Path(sys.argv[2]).read_bytes(), filename="warm.dcm")
base, _ = rss_mib()
Path("/proc/self/clear_refs").write_text("5")
data = Path(sys.argv[3]).read_bytes()
t = time.perf_counter()
try:
    analyze(data, filename=Path(sys.argv[3]).name)
    outcome = "analysed"
except InputError as e:
    outcome = "refused: " + str(e)[:70]
ms = (time.perf_counter() - t) * 1e3
_, peak = rss_mib()
print(f"{base:.0f} {peak:.0f} {ms:.0f} {outcome}")
"""


def synthetic_inputs(folder: Path) -> list[Path]:
    import numpy as np
    from PIL import Image

    def disc(h, w, dtype=np.uint8, inside=120, outside=0):
        yy, xx = np.mgrid[:h, :w]
        r = min(h, w) * 0.4
        return np.where((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < r * r, inside, outside).astype(dtype)

    made = []
    for name, array, fmt in [
        ("png_2048x2048.png", disc(2048, 2048), "PNG"),
        ("png_4096x4096.png", disc(4096, 4096), "PNG"),
        ("png16_hu_4096x4096.png", disc(4096, 4096, np.uint16, 1024 + 60, 24), "PNG"),
        ("png_4096x1024.png", disc(1024, 4096), "PNG"),
    ]:
        path = folder / name
        Image.fromarray(array).save(path, fmt)
        made.append(path)
    rgb = folder / "jpeg_rgb_4096x4096.jpg"
    Image.fromarray(disc(4096, 4096)).convert("RGB").save(rgb, "JPEG", quality=90)
    made.append(rgb)
    return made


def one_analysis(inputs: list[Path]) -> None:
    print(f"\n{'input':<34} {'size':>9} {'base':>6} {'peak':>6} {'+peak':>6} {'ms':>6}  outcome (MiB)")
    worst = 0.0
    for path in inputs:
        out = subprocess.run([sys.executable, "-c", CHILD, str(REPO / "bench"), str(DICOM_SLICES[0]), str(path)],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            print(f"{path.name:<34} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        base, peak, ms, outcome = out.stdout.strip().split(" ", 3)
        worst = max(worst, float(peak))
        print(f"{path.name:<34} {path.stat().st_size:>9} {base:>6} {peak:>6} {float(peak) - float(base):>6.0f} "
              f"{ms:>6}  {outcome}")
    print(f"worst peak RSS of one analysis process: {worst:.0f} MiB")


def server_phase(upload: Path, concurrent: int, rounds: int, max_seconds: float) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from _common import start_server
    from request import log_in

    tmp = Path(tempfile.mkdtemp(prefix="tumor-mem-"))
    server = None
    try:
        server, base = start_server(tmp)
        sessions = [log_in(base) for _ in range(concurrent)]
        data = upload.read_bytes()

        def post(session, answers):
            r = session.post(f"{base}/api/analyses/", files={"file": (upload.name, data)}, timeout=max_seconds,
                             headers={"X-CSRFToken": session.cookies["csrftoken"]})
            answers.append(r.status_code)

        warm: list[int] = []
        post(sessions[0], warm)
        rss_base, _ = rss_mib(server.pid)
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")
        answers: list[int] = []
        started = time.monotonic()
        for _ in range(rounds):
            threads = [threading.Thread(target=post, args=(s, answers)) for s in sessions]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if time.monotonic() - started > max_seconds:
                break
        _, rss_peak = rss_mib(server.pid)
        counts = {code: answers.count(code) for code in sorted(set(answers))}
        print(f"\nserver, {concurrent} clients x {rounds} rounds posting {upload.name} at once "
              f"({time.monotonic() - started:.0f} s): answers {counts}")
        print(f"server RSS after one warm upload {rss_base:.0f} MiB, peak under concurrency {rss_peak:.0f} MiB "
              f"(+{rss_peak - rss_base:.0f})")
    finally:
        stop_server(server, tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=8, help="clients uploading at once (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of concurrent uploads (default 2)")
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--skip-single", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="tumor-mem-inputs-"))
    try:
        inputs = [DICOM_SLICES[0], *synthetic_inputs(tmp)]
        if not args.skip_single:
            sys.path.insert(0, str(FIXTURES / "bad"))
            from make_hostile import build

            hostile = sorted(build(tmp / "hostile").iterdir())
            one_analysis(inputs + hostile)
        if not args.skip_server:
            server_phase(tmp / "png16_hu_4096x4096.png", args.concurrent, args.rounds, args.max_seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
