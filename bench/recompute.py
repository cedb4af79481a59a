"""Recompute from corrected masks (issue 10): what a mask save costs, without the network.

    .venv/bin/python bench/recompute.py [--runs 40]

Per real 512 x 512 slice with its ground-truth label as the "correction", times the steps a save
runs before writing files: read the stored upload (`load`), decode the two mask PNGs the browser
sends (`mask_from_png`), and `recompute` (lesion rules, measure, stage, render and PNG-encode the
pictures).  Prints median / p95 per step and in total; the goal is < 300 ms in total.
"""
from __future__ import annotations

import argparse
import time

from _common import FIXTURES, machine, median, pct

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from TumorApp.analysis.slice.correct import mask_from_png, recompute  # noqa: E402
from TumorApp.analysis.io.loading import load  # noqa: E402

CASES = [("analysis_ircadb01_066.dcm", "analysis_ircadb01_066_label.png"),
         ("analysis_ircadb01_057_hu1024.png", "analysis_ircadb01_057_label.png")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    print(machine())
    for image_name, label_name in CASES:
        raw = (FIXTURES / image_name).read_bytes()
        label = cv2.imread(str(FIXTURES / label_name), cv2.IMREAD_UNCHANGED)
        pngs = [cv2.imencode(".png", (m * 255).astype(np.uint8))[1].tobytes() for m in (label >= 1, label == 2)]
        steps: dict[str, list[float]] = {"load": [], "decode masks": [], "recompute+render": [], "total": []}
        for i in range(args.runs + 3):
            t0 = time.perf_counter()
            ct = load(raw, filename=image_name)
            t1 = time.perf_counter()
            liver, tumor = (mask_from_png(p, ct.shape, n) for p, n in zip(pngs, ("liver", "tumor")))
            t2 = time.perf_counter()
            result = recompute(ct, liver, tumor, spacing_mm=(0.57, 0.57), spacing_source="dicom")
            t3 = time.perf_counter()
            if i >= 3:  # warm-up runs (imports, thread pool) are not counted
                for key, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t3 - t0)):
                    value *= 1000
                    steps[key].append(value)
        print(f"\n{image_name} ({ct.shape[1]}x{ct.shape[0]}, {len(result.tumors)} lesion(s)), {args.runs} runs")
        for key, values in steps.items():
            print(f"  {key:18s} median {median(values):6.1f} ms   p95 {pct(values, 95):6.1f} ms")


if __name__ == "__main__":
    main()
