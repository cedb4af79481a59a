"""`manage.py analyze` throughput over many slices (batched forward passes, progress bar on stderr).

    .venv/bin/python bench/analyze_cli.py [--slices 200] [--batch-size 8]

Copies real 512 x 512 fixture slices (DICOM and PNG, alternating) to a temporary folder until
there are --slices files, runs `manage.py analyze --json` on all of them once, as a user would,
and prints slices/s for the whole command (process start and model loading included) and for the
analysis alone (the command's wall time minus that of a 1-file run, which is mostly start-up).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DICOM_SLICES, PNG_SLICES, REPO, machine


def run(files: list[Path], batch_size: int) -> tuple[float, list[dict]]:
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "manage.py", "analyze", "--json", "--batch-size", str(batch_size),
                           *map(str, files)], cwd=REPO, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t
    if done.returncode not in (0, 1):
        raise RuntimeError(done.stderr[-2000:])
    return wall, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    from TumorApp.analysis.model.runtime import backend_from_env

    print(f"inference backend: {backend_from_env()} (INFERENCE_BACKEND=onnx for the fp32 graph)")

    sources = [DICOM_SLICES[0], PNG_SLICES[0], DICOM_SLICES[1], PNG_SLICES[1], PNG_SLICES[2], PNG_SLICES[3]]
    tmp = Path(tempfile.mkdtemp(prefix="tumor-cli-bench-"))
    try:
        files = []
        for i in range(args.slices):
            src = sources[i % len(sources)]
            dst = tmp / f"{i:04d}_{src.name}"
            shutil.copyfile(src, dst)
            files.append(dst)
        start_up, _ = run(files[:1], args.batch_size)
        wall, records = run(files, args.batch_size)
        errors = [r for r in records if "error" in r]
        kinds = sorted({f.suffix for f in files})
        print(f"{len(files)} slices ({', '.join(kinds)}), --batch-size {args.batch_size}: {wall:.1f} s for the command, "
              f"{len(files) / wall:.1f} slices/s")
        print(f"1-slice run (start-up, model load, one analysis): {start_up:.1f} s")
        print(f"analysis alone: {(len(files) - 1) / max(wall - start_up, 1e-9):.1f} slices/s")
        print(f"errors: {len(errors)}")
        sys.exit(1 if errors else 0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
