"""Affected percentage and a size-based stage from the largest lesion's longest diameter.

Stage I: longest diameter <= 20 mm, II: > 20 and <= 50 mm, III: > 50 mm (the AJCC T-category size
cut-offs, `CONTRACT.stage_cutoffs_mm`).  This is a size-based estimate from one slice, not a
clinical stage: it knows nothing of vascular invasion, nodes or metastases.

No liver on the slice is not "no tumour": nothing was looked at, so the result is inconclusive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..config import CONTRACT
from .measure import Lesion

STAGE_NOTE = "size-based estimate, not a clinical stage"
NO_TUMOR = "No Tumor Detected"
INCONCLUSIVE = "Inconclusive: no liver found on this slice"
INCONCLUSIVE_SERIES = "Inconclusive: no liver found in this series"


@dataclass(frozen=True)
class Staging:
    tumor_detected: bool
    stage: str | None  # "I" / "II" / "III" / None
    affected_percent: float  # tumour area / liver area * 100
    largest_diameter_mm: float | None
    label: str  # what to show: "Stage II (size-based estimate, not a clinical stage)", NO_TUMOR or INCONCLUSIVE
    inconclusive: bool = False  # no liver on the slice: neither tumour nor "no tumour" can be said


def stage_for_diameter(diameter_mm: float) -> str:
    low, high = CONTRACT.stage_cutoffs_mm
    if diameter_mm <= low:
        return "I"
    if diameter_mm <= high:
        return "II"
    return "III"


def affected_percent(tumor_area_px: int, liver_area_px: int) -> float:
    if liver_area_px <= 0:
        return 0.0
    return 100.0 * tumor_area_px / liver_area_px


def stage(lesions: Sequence[Lesion], *, liver_area_px: int, tumor_area_px: int,
          liver_found: bool = True, where: str = "slice") -> Staging:
    """`where`: "slice", or "series" for a whole volume (areas are then voxel counts; only the
    inconclusive label's wording differs)."""
    if not liver_found:
        label = INCONCLUSIVE_SERIES if where == "series" else INCONCLUSIVE
        return Staging(False, None, 0.0, None, label, inconclusive=True)
    percent = affected_percent(tumor_area_px, liver_area_px)
    if not lesions:
        return Staging(False, None, percent, None, NO_TUMOR)
    largest = max(lesion.max_diameter_mm for lesion in lesions)
    grade = stage_for_diameter(largest)
    return Staging(True, grade, percent, largest, f"Stage {grade} ({STAGE_NOTE})")
