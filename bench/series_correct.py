"""Recompute a corrected series (issue 20): what a series save costs, without the network.

    .venv/bin/python bench/series_correct.py [--slices 150] [--runs 5]

A 150-slice 512 x 512 label volume built from a real label slice (IRCADb-01 slice 66's ground
truth repeated on the middle 114 slices, so its tumours are tall 3-D lesions, plus 40 one-voxel specks like
the network's scattered false lesions).  Times the steps a save runs: `recompute_series` (3-D
lesions, volumes, diameters, burden, stage: `measure_volume`, the network's own stage), and
writing the version (compressed .npz) and the viewer's .npy.  Goal: < 2 s in total on two cores.
"""
from __future__ import annotations

import argparse
import io
import time

from _common import FIXTURES, machine, median, pct

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from TumorApp.analysis.series.correct import recompute_series  # noqa: E402
from TumorApp.analysis.series.volume import SeriesVolume  # noqa: E402


def label_volume(slices: int) -> np.ndarray:
    label = cv2.imread(str(FIXTURES / "analysis_ircadb01_066_label.png"), cv2.IMREAD_UNCHANGED)
    labels = np.zeros((slices, *label.shape), np.uint8)
    first, last = slices // 8, slices - slices // 8
    for k in range(first, last):
        labels[k] = label
    rng = np.random.default_rng(0)
    liver = np.argwhere(labels == 1)
    for z, y, x in liver[rng.choice(len(liver), 40, replace=False)]:
        labels[z, y, x] = 2  # specks: one-voxel "lesions"
    return labels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=150)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    labels = label_volume(args.slices)
    volume = SeriesVolume(hu=np.zeros(labels.shape, np.int16), spacing_mm=(1.6, 0.57, 0.57), kind="dicom")
    steps: dict[str, list[float]] = {"recompute": [], "write version": [], "total": []}
    for i in range(args.runs + 1):
        t0 = time.perf_counter()
        result = recompute_series(volume, labels)
        stored = result.label_volume()
        t1 = time.perf_counter()
        for save in (lambda b: np.savez_compressed(b, labels=stored), lambda b: np.save(b, stored)):
            save(io.BytesIO())
        t2 = time.perf_counter()
        if i >= 1:  # the first run warms imports and caches
            for key, value in zip(steps, (t1 - t0, t2 - t1, t2 - t0)):
                steps[key].append(value * 1000)
    print(f"\n{args.slices} slices of {labels.shape[2]}x{labels.shape[1]}: liver {result.liver_volume_ml:.0f} mL, "
          f"{len(result.lesions)} lesion(s), stage {result.stage}; {args.runs} runs")
    for key, values in steps.items():
        print(f"  {key:14s} median {median(values):7.1f} ms   p95 {pct(values, 95):7.1f} ms")


if __name__ == "__main__":
    main()
