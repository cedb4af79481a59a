"""TumorApp/analysis/slice/preprocess.py: the network's input convention."""
from __future__ import annotations

import numpy as np
import pytest

from TumorApp.analysis.config import CONTRACT
from TumorApp.analysis.io.loading import load
from TumorApp.analysis.slice.preprocess import (DISPLAY_WINDOW, display_to_network, display_to_unit,
                                                from_network_output, network_unit, to_network_input, to_uint8, to_unit,
                                                window_hu)

from ..conftest import DICOM_66, SEED_440


def test_window_hu_maps_the_network_window_to_unit_range():
    low = CONTRACT.window_center - CONTRACT.window_width / 2
    high = CONTRACT.window_center + CONTRACT.window_width / 2
    out = window_hu(np.array([-1000.0, low, CONTRACT.window_center, high, 3000.0]))
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0])
    assert out.dtype == np.float32


def test_network_window_is_the_msd_slices_0_to_255_hu():
    # msd-slices store HU clipped to 0..255: through the network's window they are the identity / 255
    hu = np.array([0.0, 51.0, 255.0], np.float32)
    np.testing.assert_allclose(window_hu(hu), hu / 255.0, atol=1e-6)


def test_pictures_are_read_as_w400_l40_then_put_in_the_network_window():
    # grey 0 is -160 HU (below the window: 0), grey 255 is 240 HU
    grey = np.array([0.0, 0.4, 0.4 + 127.5 / 400, 1.0], np.float32)
    np.testing.assert_allclose(display_to_network(grey), [0.0, 0.0, 0.5, 240 / 255], atol=1e-5)
    # a W400/L40 picture of an HU slice gives the network what the HU slice itself gives it
    hu = np.linspace(-300, 400, 50, dtype=np.float32)
    as_picture = np.round(window_hu(hu, *DISPLAY_WINDOW) * 255) / 255
    np.testing.assert_allclose(display_to_network(as_picture), np.clip(window_hu(hu), 0, 240 / 255), atol=0.01)


def test_hu_slices_are_shown_in_w400_l40_but_enter_the_network_in_its_window():
    ct = load(DICOM_66)
    np.testing.assert_allclose(to_unit(ct), window_hu(ct.pixels, *DISPLAY_WINDOW))
    np.testing.assert_allclose(network_unit(ct), window_hu(ct.pixels))


def test_display_images_are_divided_by_255():
    np.testing.assert_allclose(display_to_unit(np.array([0, 51, 255], np.uint8)), [0.0, 0.2, 1.0])


def test_dicom_and_seed_become_unit_images_of_their_own_size():
    for path in (DICOM_66, SEED_440):
        unit = to_unit(load(path))
        assert unit.shape == (512, 512) and unit.dtype == np.float32
        assert 0.0 <= unit.min() and unit.max() <= 1.0


def test_network_input_is_square_and_area_averaged():
    unit = to_unit(load(DICOM_66))
    x = to_network_input(unit)
    assert x.shape == (CONTRACT.input_size, CONTRACT.input_size)
    # Area averaging keeps the mean intensity.
    assert x.mean() == pytest.approx(unit.mean(), abs=2e-3)


def test_non_square_input_is_padded_not_stretched_and_maps_back():
    image = np.zeros((200, 400), np.float32)
    image[50:150, 100:200] = 1.0  # a 100x100 square
    x = to_network_input(image)
    ys, xs = np.nonzero(x > 0.5)
    assert (ys.max() - ys.min()) == pytest.approx(xs.max() - xs.min(), abs=1)  # still square
    back = from_network_output(np.stack([x, x], -1), image.shape)
    assert back.shape == (200, 400, 2)
    assert ((back[..., 0] > 0.5) == (image > 0.5)).mean() > 0.99


def test_from_network_output_single_channel_keeps_channel_axis():
    assert from_network_output(np.zeros((128, 128, 1), np.float32), (300, 300)).shape == (300, 300, 1)


def test_to_uint8_rounds_and_clips():
    np.testing.assert_array_equal(to_uint8(np.array([-1.0, 0.5, 2.0])), [0, 128, 255])
