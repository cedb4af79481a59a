"""TumorApp/analysis/slice/segment.py: orientation choice, second pass, mapping back, batching."""
from __future__ import annotations

import numpy as np

from TumorApp.analysis.config import CONTRACT
from TumorApp.analysis.io.loading import load
from TumorApp.analysis.slice.preprocess import network_unit
from TumorApp.analysis.slice.segment import segment, segment_many

from ..conftest import DICOM_66, SEED_440, EmptySegmenter, GroundTruthSegmenter, IntensitySegmenter, dice, seed_label


def test_radiological_slice_is_not_mirrored_and_maps_back_to_input_grid(gt_66):
    unit = network_unit(load(DICOM_66))
    seg = segment(unit, GroundTruthSegmenter(DICOM_66, gt_66), second_pass=False)
    assert not seg.mirrored
    assert seg.liver_prob.shape == seg.tumor_prob.shape == unit.shape
    assert dice(seg.liver_prob > 0.5, gt_66 > 0) > 0.97
    assert dice(seg.tumor_prob > 0.5, gt_66 == 2) > 0.95


def test_mirrored_seed_slice_is_analysed_flipped_and_mapped_back():
    label = seed_label()
    unit = network_unit(load(SEED_440))
    seg = segment(unit, GroundTruthSegmenter(SEED_440, label, radiological=False), second_pass=False)
    assert seg.mirrored
    # Probabilities come back in the input's own (mirrored) grid, on top of its labels.
    assert dice(seg.liver_prob > 0.5, label > 0) > 0.97
    assert dice(seg.tumor_prob > 0.5, label == 2) > 0.9


def test_one_batch_of_two_per_slice_then_one_crop_each():
    units = [network_unit(load(DICOM_66)), network_unit(load(SEED_440)), network_unit(load(DICOM_66))[:, ::-1]]
    fake = IntensitySegmenter()
    results = segment_many(units, fake, batch_size=16)
    assert [len(b) for b in fake.batches] == [6, 3]
    assert all(r.crop is not None for r in results)


def test_second_pass_agrees_with_first_for_a_pixelwise_network():
    unit = network_unit(load(DICOM_66))
    one = segment(unit, IntensitySegmenter(), second_pass=False)
    two = segment(unit, IntensitySegmenter(), second_pass=True)
    assert two.crop is not None and one.crop is None
    assert dice(one.liver_prob > 0.5, two.liver_prob > 0.5) > 0.85
    # Outside the crop the first pass is kept unchanged.
    x, y, w, h = two.crop
    outside = np.ones(unit.shape, bool)
    outside[y:y + h, x:x + w] = False
    np.testing.assert_array_equal(one.liver_prob[outside], two.liver_prob[outside])


def label_coded(label: np.ndarray) -> np.ndarray:
    """An image whose intensities encode the ground truth, for the pixel-wise fake network."""
    tumour, liver = (sum(IntensitySegmenter().tumor) / 2, sum(IntensitySegmenter().liver) / 2)  # band centres
    return np.select([label == 2, label == 1], [tumour, liver], 0.02).astype(np.float32)


def test_second_pass_crops_the_liver_with_margin(gt_66):
    fake = IntensitySegmenter()
    seg = segment(label_coded(gt_66), fake)
    x, y, w, h = seg.crop
    ys, xs = np.nonzero(gt_66 > 0)
    box_w, box_h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert w == h
    assert abs(w - max(box_w, box_h) * (1 + 2 * CONTRACT.crop_margin)) <= 6  # first pass is at 128²
    assert x <= xs.min() and xs.max() < x + w and y <= ys.min() and ys.max() < y + h
    assert w < gt_66.shape[1]  # zoomed: the network sees the liver larger than in the first pass
    assert fake.batches[1].shape == (1, CONTRACT.input_size, CONTRACT.input_size)
    # The pasted second-pass result still matches the truth.
    assert dice(seg.liver_prob > 0.5, gt_66 > 0) > 0.97
    assert dice(seg.tumor_prob > 0.5, gt_66 == 2) > 0.95


def test_crop_is_reported_in_input_coordinates_for_mirrored_input(gt_66):
    unit = label_coded(gt_66)  # the true liver, on the image left, and nothing else liver-like
    flipped = np.ascontiguousarray(unit[:, ::-1])

    class Biased(IntensitySegmenter):
        """Pixel-wise, but only 'believes' the liver on the image left (radiological)."""

        def predict(self, batch):
            out = super().predict(batch)
            out[:, :, CONTRACT.input_size // 2:, :] *= 0.02
            return out

    straight = segment(unit, Biased())
    mirrored = segment(flipped, Biased())
    assert not straight.mirrored and mirrored.mirrored
    x, y, w, h = straight.crop
    mx, my, mw, mh = mirrored.crop
    assert (my, mw, mh) == (y, w, h) and abs(mx - (unit.shape[1] - x - w)) <= 1
    np.testing.assert_allclose(mirrored.liver_prob, straight.liver_prob[:, ::-1], atol=1e-5)


def test_no_liver_means_no_second_pass():
    seg = segment(network_unit(load(DICOM_66)), EmptySegmenter())
    assert seg.crop is None and not seg.mirrored and seg.liver_prob.max() == 0
