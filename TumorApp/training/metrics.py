"""Slice-level evaluation figures: Dice, detection sensitivity/specificity, ROC AUC."""
from __future__ import annotations

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    denom = a.sum() + b.sum()
    return 1.0 if denom == 0 else float(2.0 * (a & b).sum() / denom)


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties counted half."""
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def summarise(gt_liver, gt_tumour, pred_liver, pred_tumour, scores) -> dict:
    """Figures over a stack of slices (N, H, W) of one held-out patient.

    Tumour Dice is the mean over slices whose ground truth has tumour; liver Dice the mean over
    slices whose ground truth has liver. A slice counts as detected when the prediction keeps at
    least one lesion after post-processing; `scores` rank slices for the ROC curve.
    """
    has_t = gt_tumour.reshape(len(gt_tumour), -1).any(1)
    has_l = gt_liver.reshape(len(gt_liver), -1).any(1)
    det = pred_tumour.reshape(len(pred_tumour), -1).any(1)
    tp, fn = int((det & has_t).sum()), int((~det & has_t).sum())
    fp, tn = int((det & ~has_t).sum()), int((~det & ~has_t).sum())
    return {
        "slices": int(len(has_t)),
        "tumour_slices": int(has_t.sum()),
        "liver_slices": int(has_l.sum()),
        "tumour_dice_mean": float(np.mean([dice(gt_tumour[i], pred_tumour[i]) for i in np.flatnonzero(has_t)]))
        if has_t.any() else None,
        "tumour_dice_pooled": dice(gt_tumour[has_t], pred_tumour[has_t]) if has_t.any() else None,
        "liver_dice_mean": float(np.mean([dice(gt_liver[i], pred_liver[i]) for i in np.flatnonzero(has_l)]))
        if has_l.any() else None,
        "liver_dice_pooled": dice(gt_liver, pred_liver),
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "specificity": tn / (tn + fp) if tn + fp else None,
        # The harder negatives: tumour-free slices that do show liver.
        "specificity_liver_slices": (lambda neg: float((~det[neg]).mean()) if neg.any() else None)(has_l & ~has_t),
        "roc_auc": roc_auc(np.asarray(scores, dtype=float), has_t),
        "confusion": {"tp": tp, "fn": fn, "fp": fp, "tn": tn},
    }
