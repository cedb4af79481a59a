"""TumorApp/analysis/slice/confidence.py and the inconclusive state, through analyze() on real slices."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from TumorApp.analysis.config import CONTRACT
from TumorApp.analysis.slice.confidence import RING_MM, assess, lesion_confidence
from TumorApp.analysis.slice.pipeline import analyze, analyze_many
from TumorApp.analysis.slice.postprocess import clean, dilate_mm
from TumorApp.analysis.slice.segment import Segmentation
from TumorApp.analysis.slice.staging import INCONCLUSIVE

from ..conftest import (DICOM_66, FREE_105, JPEG_103, PNG16_57, SEED_440, EmptySegmenter, GroundTruthSegmenter,
                        IntensitySegmenter, read_label)


class ScaledTumour(GroundTruthSegmenter):
    """The ground truth, with the tumour channel scaled: a network that is less sure of the tumour."""

    def __init__(self, path, label, scale: float):
        super().__init__(path, label)
        for out in self.outputs:
            out[..., 1] *= scale


@pytest.mark.parametrize("path", [DICOM_66, PNG16_57, JPEG_103, FREE_105, SEED_440], ids=lambda p: p.name)
def test_confidences_are_in_0_1_with_one_per_tumour(path):
    result = analyze(path, segmenter=IntensitySegmenter(), render_images=False)
    data = result.to_dict()
    assert 0.0 <= data["confidence"] <= 1.0
    assert len(result.lesion_confidence) == len(result.tumors)
    for tumour in data["tumors"]:
        assert 0.0 <= tumour["confidence"] <= 1.0
        assert tumour["low_confidence"] == (tumour["confidence"] < CONTRACT.low_confidence)
    assert data["low_confidence"] == (data["confidence"] < CONTRACT.low_confidence)
    json.dumps(data)


def liver_with_a_lesion_inside() -> np.ndarray:
    """The tumour-free slice's true label with a 15 mm-radius disc of tumour deep inside its liver."""
    label = read_label("analysis_ircadb01_105_label.png").copy()
    depth = cv2.distanceTransform((label > 0).astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    assert depth[y, x] > 30
    cv2.circle(label, (int(x), int(y)), 20, 2, thickness=-1)
    return label


def test_a_clear_tumour_inside_the_liver_is_confident():
    label = liver_with_a_lesion_inside()
    result = analyze(FREE_105, segmenter=GroundTruthSegmenter(FREE_105, label), second_pass=False)
    (value,) = result.lesion_confidence
    assert value > 0.85 and result.confidence == value
    data = result.to_dict()
    assert data["tumors"][0]["low_confidence"] is False and data["low_confidence"] is False


def test_a_doubtful_tumour_is_marked_low_confidence():
    fake = ScaledTumour(FREE_105, liver_with_a_lesion_inside(), scale=0.6)  # just above the threshold
    result = analyze(FREE_105, segmenter=fake, second_pass=False)
    assert result.tumor_detected
    (value,) = result.lesion_confidence
    assert 0.5 < value < CONTRACT.low_confidence
    data = result.to_dict()
    assert data["tumors"][0]["low_confidence"] is True and data["low_confidence"] is True


def test_a_tumour_at_the_liver_edge_counts_the_ring_outside_the_liver(gt_66):
    """Slice 66's tumour reaches the liver surface: part of its ring is not liver, so its
    confidence is its probability times the liver share around it (a known cost of the rule)."""
    result = analyze(DICOM_66, segmenter=GroundTruthSegmenter(DICOM_66, gt_66), second_pass=False)
    (value,) = result.lesion_confidence
    region = result.tumor_mask > 0
    ring = dilate_mm(region, RING_MM, result.pixel_spacing_mm) & ~region
    expected = float(result.tumor_prob[region].mean()) * float(result.liver_prob[ring].mean())
    assert value == pytest.approx(expected, rel=1e-5)
    assert 0.5 < value < 0.9


def test_a_lesion_outside_the_liver_scores_zero_and_one_inside_its_probability():
    label = liver_with_a_lesion_inside()
    liver = (label > 0).astype(np.float32)
    inside = label == 2
    outside = np.zeros(label.shape, bool)
    outside[20:60, 20:60] = True  # in the air at the image corner, no liver around it
    tumour = np.where(inside | outside, 0.9, 0.0).astype(np.float32)
    seg = Segmentation(liver_prob=liver, tumor_prob=tumour, mirrored=False, crop=None)
    assert lesion_confidence(inside, seg, (0.75, 0.75)) == pytest.approx(0.9)
    assert lesion_confidence(outside, seg, (0.75, 0.75)) == 0.0


def test_tumour_free_slice_is_confidently_clear():
    label = read_label("analysis_ircadb01_105_label.png")
    result = analyze(FREE_105, segmenter=GroundTruthSegmenter(FREE_105, label), second_pass=False)
    assert not result.tumor_detected and not result.inconclusive
    assert result.confidence == pytest.approx(1.0)


def test_a_near_miss_lowers_the_confidence_of_a_clear_slice():
    label = read_label("analysis_ircadb01_105_label.png")
    liver = (label > 0).astype(np.float32)
    tumour = np.zeros_like(liver)
    ys, xs = np.nonzero(label)
    tumour[ys[len(ys) // 2] - 5:ys[len(ys) // 2] + 5, xs[len(xs) // 2] - 5:xs[len(xs) // 2] + 5] = 0.45
    seg = Segmentation(liver_prob=liver, tumor_prob=tumour, mirrored=False, crop=None, first_tumor_prob=tumour)
    masks = clean(liver, tumour, (0.75, 0.75))
    assert masks.lesion_count == 0
    assert assess(seg, masks, (0.75, 0.75)).slice == pytest.approx(0.55)


def test_no_liver_is_inconclusive_never_no_tumour():
    result = analyze(DICOM_66, segmenter=EmptySegmenter())
    assert result.inconclusive and not result.tumor_detected
    assert result.stage_label == INCONCLUSIVE == "Inconclusive: no liver found on this slice"
    data = result.to_dict()
    assert data["inconclusive"] is True and data["confidence"] == 0.0 and data["low_confidence"] is True
    assert data["tumors"] == [] and data["stage"] is None


def test_a_liver_without_tumour_is_not_inconclusive():
    (result,) = analyze_many([FREE_105], segmenter=IntensitySegmenter(tumor=(2.0, 2.0)))
    assert result.liver_area_px > 0 and not result.inconclusive and not result.tumor_detected
