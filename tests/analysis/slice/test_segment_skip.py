"""segment.py's `skip_tumour_free_crops`: no second pass where the first pass saw no tumour.

The gate (`CONTRACT.first_pass_gate`) would zero the crop's tumour on such slices, so skipping
the crop must give exactly the same tumour output (all zero) and one forward pass fewer.
"""
from __future__ import annotations

import numpy as np

from TumorApp.analysis.config import CONTRACT
from TumorApp.analysis.io.loading import load
from TumorApp.analysis.slice.preprocess import to_unit
from TumorApp.analysis.slice.segment import SKIP_TUMOUR_FREE_CROPS, segment, segment_many

from ..conftest import DICOM_66, IntensitySegmenter


class WeakTumour(IntensitySegmenter):
    """Liver by intensity; tumour probability just under the gate wherever there is liver."""

    def predict(self, batch):
        out = super().predict(batch)
        out[..., 1] = out[..., 0] * (CONTRACT.first_pass_gate - 0.05)
        return out


def test_skipping_is_the_default():
    assert SKIP_TUMOUR_FREE_CROPS is True


def test_tumour_free_slice_gets_no_second_pass_and_the_same_tumour_output():
    unit = to_unit(load(DICOM_66))
    skip_fake, crop_fake = WeakTumour(), WeakTumour()
    skipped = segment(unit, skip_fake, skip_tumour_free_crops=True)
    cropped = segment(unit, crop_fake, skip_tumour_free_crops=False)
    assert [len(b) for b in skip_fake.batches] == [2]  # as is + mirrored, no crop
    assert [len(b) for b in crop_fake.batches] == [2, 1]
    assert skipped.crop is None and cropped.crop is not None
    # The first pass's sub-gate tumour is cleared exactly as the gated crop clears it.
    assert skipped.tumor_prob.max() == 0.0 and cropped.tumor_prob.max() == 0.0
    assert skipped.liver_prob.max() > 0.5  # the liver comes from the first pass


def test_slices_with_tumour_still_get_their_crop():
    units = [to_unit(load(DICOM_66)), to_unit(load(DICOM_66))]
    tumour, weak = IntensitySegmenter(), WeakTumour()
    with_tumour = segment_many(units[:1], tumour, skip_tumour_free_crops=True)[0]
    assert with_tumour.crop is not None and with_tumour.tumor_prob.max() > CONTRACT.first_pass_gate
    assert [len(b) for b in tumour.batches] == [2, 1]

    class Mixed:  # slice 0 with tumour, slice 1 without, in one batch
        def __init__(self):
            self.batches = []

        def predict(self, batch):
            self.batches.append(len(batch))
            out = tumour.predict(batch)
            if len(batch) == 4:  # the first pass: slice 1 and its mirror see no tumour
                out[2:] = weak.predict(batch[2:])
            return out

    mixed = Mixed()
    results = segment_many(units, mixed, skip_tumour_free_crops=True)
    assert mixed.batches == [4, 1]
    assert results[0].crop is not None and results[1].crop is None
    assert np.all(results[1].tumor_prob == 0)
