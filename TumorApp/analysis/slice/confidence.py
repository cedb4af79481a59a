"""How sure the network is: a confidence in [0, 1] per lesion and per slice, from what it already output.

No extra forward pass.  Chosen on patients the shipped weights never saw (bench/confidence.py,
figures in bench/README.md):

* lesion: the mean tumour probability inside the outline times the mean liver probability in a
  ring of `RING_MM` around it.  A tumour is a confident blob inside the liver; most false
  lesions sit at the liver's edge or outside it (stomach, gallbladder, kidney), where the ring is
  not liver.  (ROC AUC true vs false lesions: 0.80, against 0.65 for the probability alone and 0.50
  for its average with the whole-slice pass.)
* slice, tumour detected: the most confident lesion (the verdict is as sure as its surest lesion).
* slice, liver but no tumour: 1 - the highest tumour probability inside the liver (grown by
  `liver_dilation_mm`, where a tumour would count), in the final output or the whole-slice pass
  (whose near-misses the gate hides): a near-miss below the threshold lowers it.
* no liver (inconclusive): 0; nothing was concluded.

Below `CONTRACT.low_confidence` a finding is marked "low confidence".  A test-time vertical flip
as a second opinion was measured and not used: the network was trained without flips, so its
flipped pass is mostly wrong (tumour Dice 0.03 against 0.12 as is) and costs one more forward pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import CONTRACT
from .postprocess import Masks, dilate_mm
from .segment import Segmentation

# Width of the ring around a lesion whose liver probability says "inside the liver".
RING_MM = 5.0


@dataclass(frozen=True)
class Confidence:
    lesions: tuple[float, ...]  # one per lesion label 1..n, in label order
    slice: float


def assess(seg: Segmentation, masks: Masks, spacing_mm: tuple[float, float]) -> Confidence:
    if not masks.liver_found:
        return Confidence(lesions=(), slice=0.0)
    lesions = tuple(lesion_confidence(masks.tumor_labels == k, seg, spacing_mm)
                    for k in range(1, masks.lesion_count + 1))  # label order = measure_lesions order
    if lesions:
        return Confidence(lesions=lesions, slice=max(lesions))
    region = dilate_mm(masks.liver, CONTRACT.liver_dilation_mm, spacing_mm)
    first = seg.first_tumor_prob if seg.first_tumor_prob is not None else seg.tumor_prob
    nearest = max(float(seg.tumor_prob[region].max(initial=0.0)), float(first[region].max(initial=0.0)))
    return Confidence(lesions=(), slice=float(np.clip(1.0 - nearest, 0.0, 1.0)))


def lesion_confidence(region: np.ndarray, seg: Segmentation, spacing_mm: tuple[float, float]) -> float:
    """Mean tumour probability inside `region` x mean liver probability in the ring around it."""
    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return 0.0
    # Work in the lesion's box grown by the ring: one small dilation per lesion, not a whole slice.
    my, mx = (int(np.ceil(RING_MM / s)) + 1 for s in spacing_mm)
    box = (slice(max(ys.min() - my, 0), ys.max() + my + 1), slice(max(xs.min() - mx, 0), xs.max() + mx + 1))
    inside_mask = region[box]
    inside = float(seg.tumor_prob[box][inside_mask].mean())
    ring = dilate_mm(inside_mask, RING_MM, spacing_mm) & ~inside_mask
    around = float(seg.liver_prob[box][ring].mean()) if ring.any() else 0.0
    return float(np.clip(inside * around, 0.0, 1.0))
