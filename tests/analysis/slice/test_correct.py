"""Recompute from corrected masks (TumorApp/analysis/slice/correct.py) on a real DICOM slice and its ground truth."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from TumorApp.analysis.slice import correct
from TumorApp.analysis.errors import InputError
from TumorApp.analysis.io.loading import load
from TumorApp.analysis.slice.measure import measure_lesions
from TumorApp.analysis.slice.postprocess import lesion_labels
from TumorApp.analysis.slice.staging import stage

from ..conftest import DICOM_66, read_label

SPACING = (0.57, 0.57)


@pytest.fixture(scope="module")
def ct():
    return load(DICOM_66)


@pytest.fixture(scope="module")
def truth():
    return read_label("analysis_ircadb01_066_label.png")


def png_bytes(array: np.ndarray, mode: str = "L") -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).convert(mode).save(out, format="PNG")
    return out.getvalue()


def test_ground_truth_masks_give_the_measure_and_stage_stages_results(ct, truth):
    liver, tumor = truth >= 1, truth == 2
    result = correct.recompute(ct, liver, tumor, spacing_mm=SPACING, spacing_source="dicom")
    labels = lesion_labels(tumor, SPACING)
    expected = measure_lesions(labels, liver, SPACING)
    assert result.tumors == expected and result.tumors
    staged = stage(expected, liver_area_px=int(liver.sum()), tumor_area_px=int(tumor.sum()))
    assert (result.stage, result.tumor_detected) == (staged.stage, True)
    assert result.affected_percent == pytest.approx(100 * tumor.sum() / liver.sum())
    assert result.notes == []
    assert set(result.images) == {"original", "annotated", "mask", "components"}
    annotated = cv2.imdecode(np.frombuffer(result.images["annotated"], np.uint8), cv2.IMREAD_COLOR)
    assert annotated.shape[:2] == ct.shape


def test_removing_the_tumour_gives_no_tumour(ct, truth):
    result = correct.recompute(ct, truth >= 1, np.zeros(ct.shape, bool), spacing_mm=SPACING,
                               spacing_source="dicom")
    assert not result.tumor_detected and result.stage is None and result.affected_percent == 0
    assert result.tumors == []


def test_tumour_outside_the_liver_is_counted_and_noted(ct, truth):
    liver = truth == 1
    tumor = np.zeros(ct.shape, bool)
    tumor[20:60, 400:440] = True  # far from the liver, on the image right
    result = correct.recompute(ct, liver, tumor, spacing_mm=SPACING, spacing_source="dicom")
    assert result.tumor_area_px == 1600 and len(result.tumors) == 1
    assert result.liver_area_px == int(liver.sum()) + 1600
    assert any("outside the corrected liver" in n for n in result.notes)


def test_brush_specks_under_the_minimum_lesion_area_are_dropped_with_a_note(ct, truth):
    tumor = np.zeros(ct.shape, bool)
    tumor[200, 200] = True
    result = correct.recompute(ct, truth >= 1, tumor, spacing_mm=SPACING, spacing_source="dicom")
    assert not result.tumor_detected and any("brush noise" in n for n in result.notes)


def test_mirrored_flag_swaps_the_side(ct, truth):
    a = correct.recompute(ct, truth >= 1, truth == 2, spacing_mm=SPACING, spacing_source="dicom",
                          render_images=False)
    b = correct.recompute(ct, truth >= 1, truth == 2, spacing_mm=SPACING, spacing_source="dicom",
                          mirrored=True, render_images=False)
    assert [t.side for t in a.tumors] != [t.side for t in b.tumors]


def test_mask_png_rules(ct):
    shape = ct.shape
    inside = np.zeros(shape, np.uint8)
    inside[10:20, 10:20] = 200  # > 127 counts as inside
    assert correct.mask_from_png(png_bytes(inside), shape, "liver").sum() == 100
    assert correct.mask_from_png(png_bytes(inside, "RGBA"), shape, "liver").sum() == 100
    with pytest.raises(InputError, match="must be the image's own size"):
        correct.mask_from_png(png_bytes(np.zeros((100, 80), np.uint8)), shape, "liver")
    with pytest.raises(InputError, match="must be a PNG"):
        correct.mask_from_png(b"\xff\xd8\xff not a png", shape, "tumor")
    with pytest.raises(InputError, match="8-bit"):
        correct.mask_from_png(png_bytes(inside.astype(np.uint16) * 200, "I;16"), shape, "tumor")
    with pytest.raises(InputError, match="not a readable PNG"):
        correct.mask_from_png(b"\x89PNG\r\n\x1a\n" + b"\0" * 40, shape, "tumor")


def test_masks_round_trip_through_the_rendered_mask_picture(truth):
    from TumorApp.analysis.slice import render

    liver, tumor = truth >= 1, truth == 2
    liver2, tumor2 = correct.masks_from_mask_image(render.png(render.mask_image(liver, tumor)))
    assert np.array_equal(liver, liver2) and np.array_equal(tumor, tumor2)
