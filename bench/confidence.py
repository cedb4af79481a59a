"""Does the confidence (TumorApp/analysis/slice/confidence.py) tell right findings from wrong ones, and
what would a test-time vertical flip add?

    .venv/bin/python bench/confidence.py [--data ../shared/data] [--sets ircadb-01,ircadb-07]

On patients the shipped weights never saw (3D-IRCADb-01 patients 1 and 7 by default; the weights'
.json lists the training patients), every slice goes through the pipeline's own stages (16-bit
HU PNG upload).  Prints:
  lesions  how many found lesions touch a true tumour (true) or not (false); ROC AUC for true vs
           false of the shipped lesion confidence and of the alternatives measured beside it;
           how many true and false lesions fall below CONTRACT.low_confidence.
  slices   slices with a liver whose verdict (tumour / no tumour) is right or wrong; ROC AUC of the
           slice confidence for right vs wrong; error rate above and below the threshold.
  flip     tumour Dice of the whole-slice pass as is and of a vertically flipped pass (flipped
           back), and the time of one extra forward pass against the whole analysis.
"""
from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

from _common import REPO

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from TumorApp.analysis.slice.confidence import assess  # noqa: E402
from TumorApp.analysis.config import CONTRACT  # noqa: E402
from TumorApp.analysis.io.loading import load  # noqa: E402
from TumorApp.analysis.model.runtime import get_segmenter  # noqa: E402
from TumorApp.analysis.slice.pipeline import analyze  # noqa: E402
from TumorApp.analysis.slice.postprocess import clean, mm2_to_px  # noqa: E402
from TumorApp.analysis.slice.preprocess import from_network_output, network_unit, to_network_input  # noqa: E402
from TumorApp.analysis.slice.segment import segment_many  # noqa: E402


def auc(positive: list[float], negative: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not positive or not negative:
        return float("nan")
    p, n = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


def hu_png(hu: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.clip(hu.astype(np.int32) + 1024, 0, 65535).astype(np.uint16)).save(out, format="PNG")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--sets", default="ircadb-01,ircadb-07")
    args = parser.parse_args()
    if not args.data.is_dir():
        args.data = Path("/work/shared/data")
    model = get_segmenter()
    lesions = {"shipped: tumour prob x liver ring": ([], []), "tumour prob alone": ([], []),
               "liver ring alone": ([], []), "mean with whole-slice pass": ([], [])}
    slices: tuple[list[float], list[float]] = ([], [])
    flip_dice: tuple[list[float], list[float]] = ([], [])
    for name in args.sets.split(","):
        volume = np.load(args.data / name / "volume.npz")
        spacing = tuple(float(v) for v in volume["spacing"][1:])
        for hu, label in zip(volume["ct"], volume["label"]):
            ct = load(hu_png(hu))
            unit = network_unit(ct)
            seg = segment_many([unit], model, check_mirror=[False])[0]
            masks = clean(seg.liver_prob, seg.tumor_prob, spacing)
            sure = assess(seg, masks, spacing)
            truth = label == 2
            for k, value in enumerate(sure.lesions, start=1):
                region = masks.tumor_labels == k
                right = bool((region & truth).any())
                inside = float(seg.tumor_prob[region].mean())
                views = dict(zip(lesions, (value, inside, value / max(inside, 1e-6),
                                           (inside + float(seg.first_tumor_prob[region].mean())) / 2)))
                for key, v in views.items():
                    lesions[key][0 if right else 1].append(v)
            if masks.liver_found:
                has_tumour = truth.sum() >= mm2_to_px(CONTRACT.min_lesion_area_mm2, spacing)
                right = (masks.lesion_count > 0) == bool(has_tumour)
                slices[0 if right else 1].append(sure.slice)
            if truth.sum() > 200:  # a vertically flipped whole-slice pass, flipped back
                x = to_network_input(unit)
                out = model.predict(np.stack([x, x[::-1]]))
                for j, probs in enumerate((out[0], out[1][::-1])):
                    pred = from_network_output(probs, unit.shape)[..., 1] > CONTRACT.tumor_threshold
                    flip_dice[j].append(2 * float((pred & truth).sum()) / float(pred.sum() + truth.sum()))
    limit = CONTRACT.low_confidence
    true_l, false_l = next(iter(lesions.values()))
    print(f"lesions: {len(true_l)} true, {len(false_l)} false (touch no true tumour)")
    for key, (t, f) in lesions.items():
        print(f"  ROC AUC {key:34} {auc(t, f):.3f}")
    for cut in sorted({0.5, 0.6, limit, 0.8}):
        t, f = sum(v < cut for v in true_l), sum(v < cut for v in false_l)
        print(f"  below {cut}: {t} of {len(true_l)} true, {f} of {len(false_l)} false lesions"
              + ("  <- CONTRACT.low_confidence" if cut == limit else ""))
    right, wrong = slices
    print(f"slices with a liver: {len(right)} verdicts right, {len(wrong)} wrong; ROC AUC {auc(right, wrong):.3f}")
    for side, pick in (("at or above", lambda v: v >= limit), ("below", lambda v: v < limit)):
        r, w = sum(map(pick, right)), sum(map(pick, wrong))
        print(f"  {side} {limit}: {r + w} slices, {w / max(r + w, 1):.0%} wrong")
    print(f"flip: tumour Dice as is {np.mean(flip_dice[0]):.3f}, vertically flipped pass "
          f"{np.mean(flip_dice[1]):.3f} ({len(flip_dice[0])} tumour slices)")
    dicom = REPO / "tests" / "fixtures" / "analysis_ircadb01_066.dcm"
    x = to_network_input(network_unit(load(dicom)))[None]
    passes, whole = [], []
    for _ in range(20):
        t = time.perf_counter()
        model.predict(x)
        passes.append(time.perf_counter() - t)
        t = time.perf_counter()
        analyze(dicom, segmenter=model)
        whole.append(time.perf_counter() - t)
    print(f"extra pass {1000 * np.median(passes):.0f} ms vs analyze() {1000 * np.median(whole):.0f} ms "
          f"(+{100 * np.median(passes) / np.median(whole):.0f} %), median of 20, DICOM fixture")


if __name__ == "__main__":
    main()
