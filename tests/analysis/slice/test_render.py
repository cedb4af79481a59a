"""TumorApp/analysis/slice/render.py: the pictures show what was found, at the input's size."""
from __future__ import annotations

import cv2
import numpy as np

from TumorApp.analysis.slice import render
from TumorApp.analysis.slice.measure import measure_lesions
from TumorApp.analysis.slice.postprocess import lesion_labels

SPACING = (0.57, 0.57)


def decode(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


def test_annotated_draws_liver_outline_tumour_contour_and_numbered_box(gt_66):
    grey = np.full(gt_66.shape, 100, np.uint8)
    labels = lesion_labels(gt_66 == 2, SPACING)
    lesions = measure_lesions(labels, gt_66 > 0, SPACING)
    image = decode(render.png(render.annotated(grey, gt_66 > 0, labels, lesions)))
    assert image.shape == gt_66.shape + (3,)
    is_colour = lambda bgr: np.all(np.abs(image.astype(int) - bgr) < 30, axis=-1)  # noqa: E731
    assert is_colour(render.LIVER_BGR).sum() > 200
    assert is_colour(render.TUMOR_BGR).sum() > 100
    x, y, w, h = lesions[0].bbox
    assert is_colour(render.BOX_BGR)[max(y - 6, 0):y + h + 6, max(x - 6, 0):x + w + 6].sum() > 2 * (w + h)
    # Inside the liver, away from edges, the slice is untouched.
    assert (image[gt_66 == 0][:, 0] == 100).mean() > 0.95


def test_mask_threshold_and_components_images(gt_66):
    liver, tumor = gt_66 > 0, gt_66 == 2
    mask = decode(render.png(render.mask_image(liver, tumor)))
    assert tuple(mask[tumor][0]) == render.TUMOR_BGR and tuple(mask[liver & ~tumor][0]) == render.LIVER_BGR
    assert not mask[~liver].any()
    thresholds = decode(render.png(render.threshold_image(liver, tumor)))
    assert set(np.unique(thresholds)) == {0, 128, 255}
    components = decode(render.png(render.components_image(liver, lesion_labels(tumor, SPACING))))
    assert components.shape == gt_66.shape + (3,)
    assert len({tuple(c) for c in components[liver]}) >= 2  # liver and lesion differ


def test_probability_image_is_colour_mapped():
    grey = np.zeros((64, 64), np.uint8)
    liver = np.zeros((64, 64), np.float32)
    tumor = np.zeros((64, 64), np.float32)
    liver[10:50, 10:50] = 1.0
    tumor[20:30, 20:30] = 1.0
    image = decode(render.png(render.probability_image(grey, liver, tumor)))
    b, g, r = image[25, 25].astype(int)
    assert r > b  # tumour hot
    b, g, r = image[5, 5].astype(int)
    assert b > r  # background cold


def test_pngs_encodes_each_picture_like_png_in_order():
    rng = np.random.default_rng(3)
    images = {f"p{i}": rng.integers(0, 256, (40 + i, 30, 3), dtype=np.uint8) for i in range(6)}
    encoded = render.pngs(images)
    assert list(encoded) == list(images)
    assert all(encoded[k] == render.png(v) for k, v in images.items())
