"""TumorApp/analysis/slice/postprocess.py: liver components, liver constraint, minimum lesion area."""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi

from TumorApp.analysis.config import CONTRACT
from TumorApp.analysis.slice.postprocess import (clean, dilate_mm, fill_holes, keep_liver, lesion_labels, mm2_to_px,
                                                 occupied_box)

SPACING = (0.57, 0.57)


def probs(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (label > 0).astype(np.float32), (label == 2).astype(np.float32)


def test_ground_truth_passes_through_unchanged(gt_66):
    masks = clean(*probs(gt_66), SPACING)
    assert masks.liver_found
    np.testing.assert_array_equal(masks.liver, gt_66 > 0)
    np.testing.assert_array_equal(masks.tumor, gt_66 == 2)
    assert masks.lesion_count == 1


def test_small_false_liver_pieces_are_dropped_and_holes_filled(gt_66):
    liver, tumor = probs(gt_66)
    liver[450:460, 450:460] = 1.0  # a speck far from the liver
    depth = ndi.distance_transform_edt(gt_66 == 1)
    y, x = np.unravel_index(np.argmax(depth), depth.shape)
    liver[y - 2:y + 2, x - 2:x + 2] = 0.0  # a vessel hole deep inside it
    masks = clean(liver, tumor, SPACING)
    assert not masks.liver[450:460, 450:460].any()
    assert masks.liver[y - 2:y + 2, x - 2:x + 2].all()


def test_tumour_outside_the_dilated_liver_is_dropped(gt_66):
    liver, tumor = probs(gt_66)
    tumor[420:460, 400:440] = 1.0  # far outside the liver: e.g. the gallbladder or bowel
    masks = clean(liver, tumor, SPACING)
    assert not masks.tumor[420:460, 400:440].any()
    assert masks.lesion_count == 1


def test_tumour_just_outside_the_liver_edge_is_kept(gt_66):
    liver, tumor = probs(gt_66)
    ring = dilate_mm(gt_66 > 0, CONTRACT.liver_dilation_mm / 2, SPACING) & ~(gt_66 > 0)
    ys, xs = np.nonzero(ring)
    y, x = ys[len(ys) // 2], xs[len(xs) // 2]
    blob = np.zeros_like(tumor)
    cv2.circle(blob, (int(x), int(y)), 6, 1.0, -1)
    masks = clean(liver, np.maximum(tumor, blob), SPACING)
    assert masks.tumor[y, x]
    assert masks.liver[masks.tumor].all()  # tumour counts as liver


def test_lesions_under_the_minimum_area_are_dropped(gt_66):
    liver, tumor = probs(gt_66)
    min_px = mm2_to_px(CONTRACT.min_lesion_area_mm2, SPACING)
    side_small = int(np.floor(np.sqrt(min_px))) - 1
    side_big = int(np.ceil(np.sqrt(min_px))) + 1
    tumor[250:250 + side_small, 120:120 + side_small] = 1.0
    tumor[300:300 + side_big, 120:120 + side_big] = 1.0
    masks = clean(liver, tumor, SPACING)
    assert not masks.tumor[250, 120]
    assert masks.tumor[300, 120]
    assert masks.lesion_count == 2
    # Largest first.
    assert (masks.tumor_labels == 1).sum() > (masks.tumor_labels == 2).sum()


def test_minimum_area_follows_the_spacing(gt_66):
    liver, tumor = probs(gt_66)
    tumor[300:306, 120:126] = 1.0  # 36 px
    assert clean(liver, tumor, (0.57, 0.57)).tumor[300, 120]  # 11.7 mm²: kept
    assert not clean(liver, tumor, (0.4, 0.4)).tumor[300, 120]  # 5.8 mm²: dropped


def test_too_small_a_liver_means_no_liver_and_no_tumour():
    liver = np.zeros((512, 512), np.float32)
    liver[100:110, 100:110] = 1.0
    tumor = liver.copy()
    masks = clean(liver, tumor, SPACING)
    assert not masks.liver_found and not masks.liver.any() and not masks.tumor.any()
    assert masks.liver_threshold.any()  # the raw threshold is still there for display


def test_anisotropic_dilation_is_physical():
    mask = np.zeros((101, 101), bool)
    mask[50, 50] = True
    grown = dilate_mm(mask, 5.0, (1.0, 0.5))  # rows 1 mm, columns 0.5 mm
    ys, xs = np.nonzero(grown)
    assert ys.max() - 50 == 5 and xs.max() - 50 == 10


def test_fill_holes_matches_scipy(gt_66):
    """The flood-fill hole filling gives scipy's binary_fill_holes pixels exactly."""
    rng = np.random.default_rng(7)
    masks = [gt_66 == 1, gt_66 == 0, np.zeros((5, 7), bool), np.ones((6, 4), bool)]
    masks += [cv2.GaussianBlur(rng.random((60 + i, 90)), (0, 0), 1 + i % 3) > 0.5 for i in range(30)]
    masks += [rng.random((40, 50)) > 0.3 + 0.01 * i for i in range(30)]
    for mask in masks:
        np.testing.assert_array_equal(fill_holes(mask), ndi.binary_fill_holes(mask))


def whole_slice_clean(liver_prob, tumor_prob, spacing):
    """The rules of `clean` applied to the whole slice, without its bounding box."""
    liver = keep_liver(liver_prob > CONTRACT.liver_threshold, spacing)
    if not liver.any():
        return liver, np.zeros(liver.shape, bool)
    allowed = dilate_mm(liver, CONTRACT.liver_dilation_mm, spacing)
    tumor = lesion_labels((tumor_prob > CONTRACT.tumor_threshold) & allowed, spacing) > 0
    return liver | tumor, tumor


def test_clean_on_the_occupied_box_gives_the_whole_slice_result(gt_66):
    liver, tumor = probs(gt_66)
    rows, cols = np.nonzero(gt_66)
    shift_x = -int(cols.min())  # the liver against the image's left edge: the box is clipped there
    liver, tumor = np.roll(liver, shift_x, axis=1), np.roll(tumor, shift_x, axis=1)
    liver[:, 0] = np.where(liver[:, 0] > 0, 1.0, liver[:, 0])
    depth = ndi.distance_transform_edt(liver > 0)
    y, x = np.unravel_index(np.argmax(depth), depth.shape)
    liver[y - 3:y + 3, x - 3:x + 3] = 0.0  # a hole (a vessel)
    bottom = int(np.flatnonzero((liver > 0).any(axis=1)).max())
    tumor[bottom + 2:bottom + 6, x - 5:x + 5] = 1.0  # tumour bulging just past the liver's edge
    liver[2:7, 500:505] = 1.0  # a far speck in the top corner: the box spans the slice's width
    for spacing in (SPACING, (0.57, 0.9), (1.2, 0.7)):
        masks = clean(liver, tumor, spacing)
        want_liver, want_tumor = whole_slice_clean(liver, tumor, spacing)
        np.testing.assert_array_equal(masks.liver, want_liver)
        np.testing.assert_array_equal(masks.tumor, want_tumor)
    assert masks.liver_found and masks.tumor.any()


def test_occupied_box_is_the_masks_extent():
    mask = np.zeros((40, 50), bool)
    assert occupied_box(mask) is None
    mask[10:12, 1:5] = True
    mask[20, 7] = True
    assert occupied_box(mask) == (slice(10, 21), slice(1, 8))
