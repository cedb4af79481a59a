"""Whole held-out HU patients through the product's slice path, for weights side by side.

    .venv/bin/python bench/heldout.py --data ../shared/data --weights model/cnn_weights.hdf5 \
        --weights var/train/holdout/checkpoint_ema.hdf5 [--patient ircadb-01 --patient ircadb-07] \
        [--out var/heldout]

Each slice of each patient (native 512 px, HU) goes through segment (two passes, the contract's
window) -> clean -> measure -> stage, on the weights' Keras model (fp32).  Printed per weights and
patient: the issue's figures (tumour Dice over tumour slices, liver Dice over liver slices,
sensitivity, specificity on tumour-free slices that show liver, stage agreement, affected-% error,
liver / tumour volume against the truth) and, with --slices, the per-slice table (liver and tumour
Dice, true / predicted / false tumour px, false liver px).  A weights file whose metadata says it
was trained on the patient is marked "TRAINED ON": its figures there are not held-out.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import _common  # noqa: F401  (puts the repository on sys.path)


def evaluate(weights: Path, data: Path, patient: str) -> dict:
    from TumorApp.analysis.config import CONTRACT
    from TumorApp.analysis.model.network import build_unet, load_weights, weights_metadata
    from TumorApp.analysis.slice.postprocess import clean
    from TumorApp.analysis.slice.preprocess import window_hu
    from TumorApp.analysis.slice.segment import segment_many
    from TumorApp.training.campaign import KerasSegmenter
    from TumorApp.training.cv import _stage
    from TumorApp.training.metrics import dice

    model = build_unet()
    load_weights(model, weights)
    meta = weights_metadata(weights)
    trained = patient in meta.get("trained_on", []) or patient in meta.get("trained_on_patients", [])
    volume = np.load(data / patient / "volume.npz")
    ct, labels, spacing = volume["ct"], volume["label"], [float(v) for v in volume["spacing"]]
    yx = (spacing[1], spacing[2])
    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0
    segmenter = KerasSegmenter(model)
    rows = []
    liver_ml = tumour_ml = true_liver_ml = true_tumour_ml = 0.0
    for start in range(0, len(ct), 32):
        idx = range(start, min(start + 32, len(ct)))
        segs = segment_many([window_hu(ct[i].astype(np.float32)) for i in idx], segmenter, batch_size=16,
                            check_mirror=[False] * len(idx))
        for i, seg in zip(idx, segs):
            gt_liver, gt_tumour = labels[i] > 0, labels[i] == 2
            m = clean(seg.liver_prob, seg.tumor_prob, yx)
            stage_true, aff_true = _stage(gt_tumour, gt_liver, yx)
            stage_pred, aff_pred = _stage(m.tumor, m.liver, yx)
            liver_ml += m.liver.sum() * voxel_ml
            tumour_ml += m.tumor.sum() * voxel_ml
            true_liver_ml += gt_liver.sum() * voxel_ml
            true_tumour_ml += gt_tumour.sum() * voxel_ml
            rows.append({
                "slice": i, "has_liver": bool(gt_liver.any()), "has_tumour": bool(gt_tumour.any()),
                "liver_dice": round(dice(gt_liver, m.liver), 3), "tumour_dice": round(dice(gt_tumour, m.tumor), 3),
                "true_tumour_px": int(gt_tumour.sum()), "pred_tumour_px": int(m.tumor.sum()),
                "false_tumour_px": int((m.tumor & ~gt_tumour).sum()),
                "true_liver_px": int(gt_liver.sum()), "false_liver_px": int((m.liver & ~gt_liver).sum()),
                "stage_true": stage_true, "stage_pred": stage_pred,
                "affected_true": round(aff_true, 1), "affected_pred": round(aff_pred, 1)})

    def mean(values):
        values = list(values)
        return round(float(np.mean(values)), 3) if values else None

    pos = [r for r in rows if r["has_tumour"]]
    free_liver = [r for r in rows if r["has_liver"] and not r["has_tumour"]]
    return {
        "weights": str(weights), "patient": patient, "trained_on_patient": trained,
        "views_total": meta.get("views_total"), "window": [CONTRACT.window_center, CONTRACT.window_width],
        "slices": len(rows), "tumour_slices": len(pos), "tumour_free_liver_slices": len(free_liver),
        "tumour_dice": mean(r["tumour_dice"] for r in pos),
        "liver_dice": mean(r["liver_dice"] for r in rows if r["has_liver"]),
        "sensitivity": mean(r["pred_tumour_px"] > 0 for r in pos),
        "specificity": mean(r["pred_tumour_px"] == 0 for r in free_liver),
        "stage_agreement": mean(r["stage_pred"] == r["stage_true"] for r in pos),
        "affected_mae": mean(abs(r["affected_pred"] - r["affected_true"]) for r in pos),
        "liver_ml": round(liver_ml, 1), "true_liver_ml": round(true_liver_ml, 1),
        "tumour_ml": round(tumour_ml, 1), "true_tumour_ml": round(true_tumour_ml, 1),
        "rows": rows,
    }


FIGURES = ("tumour_dice", "liver_dice", "sensitivity", "specificity", "stage_agreement", "affected_mae")


def show(result: dict, slices: bool) -> None:
    mark = "  TRAINED ON this patient: not held-out" if result["trained_on_patient"] else ""
    print(f"\n{result['patient']}  {result['weights']}  (views {result['views_total']}){mark}")
    print("  " + "  ".join(f"{k} {result[k]}" for k in FIGURES))
    print(f"  liver {result['liver_ml']} mL (truth {result['true_liver_ml']}), tumour {result['tumour_ml']} mL "
          f"(truth {result['true_tumour_ml']}); {result['tumour_slices']} tumour slices, "
          f"{result['tumour_free_liver_slices']} tumour-free liver slices")
    if slices:
        print("  slice | liver Dice | tumour Dice | true / pred / false tumour px | false liver px | stage")
        for r in result["rows"]:
            if r["has_liver"] or r["pred_tumour_px"] or r["false_liver_px"]:
                print(f"  {r['slice']:5d} | {r['liver_dice']:.3f} | {r['tumour_dice']:.3f} | "
                      f"{r['true_tumour_px']} / {r['pred_tumour_px']} / {r['false_tumour_px']} | "
                      f"{r['false_liver_px']} | {r['stage_true']} -> {r['stage_pred']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--weights", action="append", required=True)
    p.add_argument("--patient", action="append", default=None)
    p.add_argument("--slices", action="store_true", help="print the per-slice table")
    p.add_argument("--out", default=None, help="a folder for heldout.json (every figure and row)")
    a = p.parse_args()
    results = [evaluate(Path(w), Path(a.data), patient) for patient in (a.patient or ["ircadb-01", "ircadb-07"])
               for w in a.weights]
    for r in results:
        show(r, a.slices)
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "heldout.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
