"""The input check (TumorApp/analysis/slice/plausibility.py) over every slice of ../shared/data and over
things that are not CT: how many real slices it refuses or warns about, and what it catches.

    .venv/bin/python bench/plausibility.py [--data ../shared/data] [--stats]

Each slice goes through `loading.load()` as a user would upload it: the seed PNGs as they are;
3D-IRCADb volumes as 8-bit W400/L40 PNGs and as 16-bit HU+1024 PNGs; their DICOMs; MSD slices as
8-bit PNGs (HU clipped 0..255); the LiTS-117 crop (128 px around the liver) windowed.  Then:
vertically flipped volume slices (the upside-down warning's catch rate), noise, blanks and photos.
Prints, per set: slices, refused, each warning, and with --stats the 1st percentile of each
statistic.
"""
from __future__ import annotations

import argparse
import io
import time
from collections import Counter
from pathlib import Path

from _common import REPO

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from TumorApp.analysis.slice import plausibility  # noqa: E402
from TumorApp.analysis.errors import InputError  # noqa: E402
from TumorApp.analysis.io.loading import load  # noqa: E402


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def jpeg(array: np.ndarray, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def windowed(hu: np.ndarray) -> np.ndarray:
    return np.round(np.clip((hu.astype(np.float32) + 160) / 400, 0, 1) * 255).astype(np.uint8)


def hu16(hu: np.ndarray) -> np.ndarray:
    return np.clip(hu.astype(np.int32) + 1024, 0, 65535).astype(np.uint16)


def real_sets(data: Path):
    yield "seed PNG", (p.read_bytes() for p in sorted((data / "seed" / "images").glob("*.png")))
    for name in ("ircadb-01", "ircadb-07"):
        ct = np.load(data / name / "volume.npz")["ct"]
        yield f"{name} W400/L40 PNG", (png(windowed(s)) for s in ct)
        yield f"{name} 16-bit HU PNG", (png(hu16(s)) for s in ct)
    yield "ircadb-01 DICOM", (p.read_bytes() for p in sorted((data / "ircadb-01" / "dicom").glob("*.dcm")))
    msd = np.load(data / "msd-slices" / "slices.npz")["image"]
    yield "msd-slices PNG (0..255 HU)", (png(s) for s in msd)
    lits = np.load(data / "lits-117" / "volume.npz")["ct"]
    yield "lits-117 crop W400/L40 PNG", (png(windowed(lits[:, :, k])) for k in range(lits.shape[2]))


def odd_sets(data: Path):
    ct = np.load(data / "ircadb-01" / "volume.npz")["ct"]
    yield "ircadb-01 upside down (PNG)", (png(windowed(s[::-1])) for s in ct)
    yield "ircadb-01 upside down (HU)", (png(hu16(s[::-1])) for s in ct)
    yield "ircadb-01 central 200 px crop", (png(windowed(s[156:356, 156:356])) for s in ct)


def not_ct_sets():
    import skimage.data

    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (512, 512), dtype=np.uint8) for _ in range(10)]
    yield "uniform noise PNG", (png(n) for n in noise)
    yield "uniform noise JPEG q75", (jpeg(n, 75) for n in noise)
    yield "gaussian noise PNG", (png(np.clip(rng.normal(128, 40, (512, 512)), 0, 255).astype(np.uint8))
                                  for _ in range(10))
    yield "colour noise JPEG", (jpeg(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)) for _ in range(10))
    yield "blank (0, 128, 255, gradient)", (png(a) for a in (
        np.zeros((512, 512), np.uint8), np.full((512, 512), 128, np.uint8),
        np.full((512, 512), 255, np.uint8), np.tile(np.linspace(100, 110, 512).astype(np.uint8), (512, 1))))
    photos = ["astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "retina"]
    yield "colour photos (skimage.data)", (jpeg(getattr(skimage.data, n)()) for n in photos)
    yield "grey photo (camera)", (png(skimage.data.camera()) for _ in range(1))


def run(name, items, stats_wanted):
    refused, warned, stats = Counter(), Counter(), []
    count = 0
    started = time.perf_counter()
    for raw in items:
        count += 1
        try:
            ct = load(raw)
            found = plausibility.measure(ct)
            stats.append(found)
            plausibility.check(ct)
        except InputError as exc:
            refused[str(exc).split(".")[0][:50]] += 1
            continue
        for w in found.warnings:
            warned[w.split(":")[0].split("(")[0][:40]] += 1
    ms = 1000 * (time.perf_counter() - started) / max(count, 1)
    total_refused = sum(refused.values())
    print(f"{name:34} {count:5} slices  refused {total_refused:4} ({100 * total_refused / count:5.1f} %)  "
          f"{ms:5.1f} ms/slice (load + check)")
    for reason, n in refused.items():
        print(f"{'':36}refused {n:4}: {reason}")
    for reason, n in warned.items():
        print(f"{'':36}warned  {n:4}: {reason}")
    if stats_wanted and stats:
        def p1(values):
            return np.percentile(values, 1) if values else float("nan")
        spine = [s.posterior_bone for s in stats if s.posterior_bone is not None]
        print(f"{'':36}p1/min spread {p1([s.spread for s in stats]):.3f}/{min(s.spread for s in stats):.3f}"
              f"  corr {p1([s.neighbour_corr for s in stats]):.3f}/{min(s.neighbour_corr for s in stats):.3f}"
              f"  colour max {max(s.coloured_share for s in stats):.3f}"
              f"  air p1 {p1([s.air_border_share for s in stats]):.2f}"
              f"  body p1/min {p1([s.body_share for s in stats]):.3f}/{min(s.body_share for s in stats):.3f}"
              f"  posterior-bone p1/max {p1(spine):.2f}/{max(spine, default=float('nan')):.2f}")
    return count, total_refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--stats", action="store_true")
    parser.add_argument("--only", default="", help="run only the sets whose name contains this")
    args = parser.parse_args()
    if not args.data.is_dir():
        args.data = Path("/work/shared/data")
    print("Real CT (every refusal is a false refusal):")
    total = refused = 0
    for name, items in real_sets(args.data):
        if args.only not in name:
            continue
        n, r = run(name, items, args.stats)
        total, refused = total + n, refused + r
    print(f"false refusals: {refused} of {total} real slices ({100 * refused / max(total, 1):.2f} %)\n")
    print("Odd but possible (should warn, not refuse):")
    for name, items in odd_sets(args.data):
        if args.only not in name:
            continue
        run(name, items, args.stats)
    print("\nNot CT (should be refused):")
    for name, items in not_ct_sets():
        if args.only not in name:
            continue
        run(name, items, args.stats)
    for fixture in ("analysis_ircadb01_066.dcm", "web_seed_440.png"):
        ct = load(REPO / "tests" / "fixtures" / fixture)
        times = []
        for _ in range(20):
            started = time.perf_counter()
            plausibility.check(ct)
            times.append(time.perf_counter() - started)
        print(f"check() alone on {fixture}: median {1000 * float(np.median(times)):.1f} ms of 20")


if __name__ == "__main__":
    main()
