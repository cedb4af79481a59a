"""TumorApp/analysis/slice/measure.py: regionprops figures in pixels and mm, lesion location."""
from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import regionprops

from TumorApp.analysis.slice.measure import measure_lesions
from TumorApp.analysis.slice.postprocess import lesion_labels

from ..conftest import read_label, seed_label

SPACING = (0.57, 0.57)


def test_mm_figures_follow_the_spacing(gt_66):
    labels = lesion_labels(gt_66 == 2, SPACING)
    (lesion,) = measure_lesions(labels, gt_66 > 0, SPACING)
    assert lesion.area_px == int((gt_66 == 2).sum())
    assert lesion.area_mm2 == pytest.approx(lesion.area_px * 0.57 * 0.57)
    assert lesion.perimeter_mm == pytest.approx(lesion.perimeter_px * 0.57)
    feret_px = regionprops(labels)[0].feret_diameter_max
    assert lesion.max_diameter_mm == pytest.approx(feret_px * 0.57)
    assert 60 < lesion.max_diameter_mm < 90  # a large tumour, about 7.7 cm across
    assert 0 < lesion.eccentricity < 1


def test_bbox_and_centroid_are_x_y_in_input_pixels(gt_66):
    labels = lesion_labels(gt_66 == 2, SPACING)
    (lesion,) = measure_lesions(labels, gt_66 > 0, SPACING)
    ys, xs = np.nonzero(gt_66 == 2)
    assert lesion.bbox == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    assert lesion.centroid == pytest.approx((xs.mean(), ys.mean()))


def test_anisotropic_spacing_is_measured_physically():
    mask = np.zeros((100, 100), np.int32)
    mask[20:60, 30:50] = 1  # 40 rows x 20 columns
    (lesion,) = measure_lesions(mask, mask > 0, (1.0, 0.5))  # 40 mm tall, 10 mm wide
    assert lesion.area_mm2 == pytest.approx(800 * 0.5)
    assert lesion.max_diameter_mm == pytest.approx(np.hypot(40, 10), rel=0.03)
    assert lesion.perimeter_mm == pytest.approx(2 * (40 + 10), rel=0.05)
    # Physically 4:1, so eccentricity is that of a 4:1 shape, not of the 2:1 pixel shape.
    assert lesion.eccentricity == pytest.approx(np.sqrt(1 - (1 / 4) ** 2), abs=0.01)


def test_side_and_part_of_a_real_tumour(gt_66):
    # ircadb-01 slice 66: the tumour lies in the front of the right lobe (image left of the
    # middle of the liver, in its upper half).
    labels = lesion_labels(gt_66 == 2, SPACING)
    (lesion,) = measure_lesions(labels, gt_66 > 0, SPACING)
    assert (lesion.side, lesion.part) == ("right", "anterior")


def test_side_flips_with_a_mirrored_input(gt_66):
    mirrored = np.ascontiguousarray(gt_66[:, ::-1])
    labels = lesion_labels(mirrored == 2, SPACING)
    (lesion,) = measure_lesions(labels, mirrored > 0, SPACING, mirrored=True)
    assert (lesion.side, lesion.part) == ("right", "anterior")


def test_seed_slice_lesions_are_located_in_the_patients_anatomy():
    label = seed_label()  # mirrored: the liver (patient's right) is on the image right
    labels = lesion_labels(label == 2, (0.75, 0.75))
    lesions = measure_lesions(labels, label > 0, (0.75, 0.75), mirrored=True)
    xs = np.flatnonzero((label > 0).any(axis=0))
    middle = (xs[0] + xs[-1]) / 2
    for lesion in lesions:
        assert lesion.side == ("right" if lesion.centroid[0] > middle else "left")
    assert {lesion.part for lesion in lesions} == {"anterior"}


def test_posterior_lesion():
    label = read_label("analysis_ircadb01_066_label.png")
    liver = label > 0
    ys, xs = np.nonzero(liver)
    mask = np.zeros(label.shape, np.int32)
    y = ys.max() - 15
    x = int(np.median(xs[ys == y]))
    mask[y - 4:y + 4, x - 4:x + 4] = 1
    (lesion,) = measure_lesions(mask, liver, SPACING)
    assert lesion.part == "posterior"


def test_no_lesions_gives_empty_list(gt_66):
    assert measure_lesions(np.zeros_like(gt_66, np.int32), gt_66 > 0, SPACING) == []
