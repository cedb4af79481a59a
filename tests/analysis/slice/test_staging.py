"""TumorApp/analysis/slice/staging.py: size cut-offs and affected percentage."""
from __future__ import annotations

import pytest

from TumorApp.analysis.config import CONTRACT
from TumorApp.analysis.slice.measure import Lesion
from TumorApp.analysis.slice.staging import NO_TUMOR, STAGE_NOTE, affected_percent, stage, stage_for_diameter


def lesion(diameter: float) -> Lesion:
    return Lesion(area_px=100, area_mm2=50.0, perimeter_px=40.0, perimeter_mm=20.0, eccentricity=0.5,
                  max_diameter_mm=diameter, bbox=(0, 0, 10, 10), centroid=(5.0, 5.0), side="right",
                  part="anterior")


@pytest.mark.parametrize("diameter, expected", [
    (5.0, "I"), (20.0, "I"), (20.01, "II"), (35.0, "II"), (50.0, "II"), (50.01, "III"), (120.0, "III"),
])
def test_stage_cut_offs(diameter, expected):
    assert CONTRACT.stage_cutoffs_mm == (20.0, 50.0)
    assert stage_for_diameter(diameter) == expected


def test_stage_comes_from_the_largest_lesion():
    result = stage([lesion(12.0), lesion(61.0), lesion(30.0)], liver_area_px=1000, tumor_area_px=250)
    assert result.tumor_detected and result.stage == "III"
    assert result.largest_diameter_mm == 61.0
    assert result.affected_percent == pytest.approx(25.0)
    assert STAGE_NOTE in result.label and "not a clinical stage" in result.label


def test_no_lesion_is_no_tumor_detected():
    result = stage([], liver_area_px=1000, tumor_area_px=0)
    assert not result.tumor_detected and result.stage is None
    assert result.label == NO_TUMOR == "No Tumor Detected"
    assert result.affected_percent == 0.0


def test_affected_percent_without_liver_is_zero():
    assert affected_percent(10, 0) == 0.0
