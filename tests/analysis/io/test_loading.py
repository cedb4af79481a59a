"""TumorApp/analysis/io/loading.py: every supported kind of upload, and the ones we refuse."""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image

from TumorApp.analysis.errors import InputError
from TumorApp.analysis.io.loading import MAX_PIXELS, load

from ..conftest import DICOM_66, FREE_105, JPEG_103, PNG16_57, SEED_440, read_label


def _dicom_bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def _png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_dicom_gives_hu_and_spacing():
    ct = load(DICOM_66)
    assert ct.source == "dicom" and ct.is_hu
    assert ct.spacing_mm == pytest.approx((0.57, 0.57))
    assert ct.shape == (512, 512)
    label = read_label("analysis_ircadb01_066_label.png")
    liver_hu = np.median(ct.pixels[label == 1])
    assert 40 < liver_hu < 200  # enhanced liver parenchyma
    assert ct.pixels.min() <= -1000  # air / padding


def test_dicom_without_extension_or_filename_is_recognised():
    ct = load(DICOM_66.read_bytes(), filename="upload")
    assert ct.source == "dicom" and ct.is_hu


def test_dicom_without_preamble_is_recognised():
    raw = DICOM_66.read_bytes()
    assert raw[128:132] == b"DICM"
    ct = load(raw[132:])  # no preamble, no "DICM": an old-style file
    assert ct.source == "dicom" and ct.is_hu


def test_monochrome1_stored_inverted_is_turned_back():
    ds = pydicom.dcmread(DICOM_66)
    original = load(DICOM_66).pixels
    bits = int(ds.BitsStored)
    stored = ds.pixel_array.astype(np.int32)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if ds.PixelRepresentation else (0, 2 ** bits - 1)
    ds.PixelData = (lo + hi - stored).astype(ds.pixel_array.dtype).tobytes()
    ds.PhotometricInterpretation = "MONOCHROME1"
    ct = load(_dicom_bytes(ds))
    np.testing.assert_allclose(ct.pixels, original)
    assert any("MONOCHROME1" in n for n in ct.notes)


def test_monochrome1_ct_already_in_hu_is_left_alone():
    ds = pydicom.dcmread(DICOM_66)
    ds.PhotometricInterpretation = "MONOCHROME1"
    np.testing.assert_allclose(load(_dicom_bytes(ds)).pixels, load(DICOM_66).pixels)


def test_monochrome1_non_ct_is_inverted():
    ds = pydicom.dcmread(DICOM_66)
    ds.Modality = "OT"
    normal = load(_dicom_bytes(ds)).pixels
    ds.PhotometricInterpretation = "MONOCHROME1"
    inverted = load(_dicom_bytes(ds)).pixels
    np.testing.assert_allclose(inverted, 1.0 - normal, atol=1e-5)


def test_non_ct_modality_is_rejected():
    ds = pydicom.dcmread(DICOM_66)
    ds.Modality = "MR"
    with pytest.raises(InputError, match="MR"):
        load(_dicom_bytes(ds))


def test_unknown_modality_is_a_display_image_with_a_note():
    ds = pydicom.dcmread(DICOM_66)
    ds.Modality = "OT"
    ct = load(_dicom_bytes(ds))
    assert not ct.is_hu and 0 <= ct.pixels.min() and ct.pixels.max() <= 1
    assert ct.spacing_mm == pytest.approx((0.57, 0.57))
    assert any("not marked as CT" in n for n in ct.notes)


def test_dicom_without_pixel_data_is_rejected():
    ds = pydicom.dcmread(DICOM_66)
    del ds.PixelData
    with pytest.raises(InputError, match="no image"):
        load(_dicom_bytes(ds))


def test_truncated_dicom_is_rejected():
    raw = DICOM_66.read_bytes()
    with pytest.raises(InputError):
        load(raw[: len(raw) // 2], filename="cut.dcm")


def test_sixteen_bit_png_is_read_as_hu_plus_1024():
    ct = load(PNG16_57)
    assert ct.is_hu and ct.bit_depth == 16 and ct.spacing_mm is None
    label = read_label("analysis_ircadb01_057_label.png")
    assert 40 < np.median(ct.pixels[label == 1]) < 200
    assert any("HU + 1024" in n for n in ct.notes)


def test_sixteen_bit_png_full_range_is_min_max_normalised():
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (256, 1))
    ramp[:, :10] = 30000  # no air: not plausible as HU + 1024
    ct = load(_png_bytes(Image.fromarray(ramp)))
    assert not ct.is_hu
    assert ct.pixels.min() == 0.0 and ct.pixels.max() == 1.0
    assert any("min-max" in n for n in ct.notes)


def test_rgb_jpeg_becomes_grey_display_image():
    ct = load(JPEG_103)
    assert ct.source == "jpeg" and not ct.is_hu and ct.pixels.ndim == 2
    assert ct.shape == (512, 512)
    label = read_label("analysis_ircadb01_103_label.png")
    # W400/L40: liver (about 60-120 HU) sits around 0.55-0.7.
    assert 0.5 < np.median(ct.pixels[label == 1]) < 0.75


def test_rgba_and_palette_images_load_as_grey():
    grey = (load(FREE_105).pixels * 255).round().astype(np.uint8)
    rgba = Image.fromarray(np.dstack([grey, grey, grey, np.full_like(grey, 255)]), "RGBA")
    np.testing.assert_allclose(load(_png_bytes(rgba)).pixels * 255, grey, atol=1)
    palette = Image.fromarray(grey).convert("P")
    assert load(_png_bytes(palette)).shape == grey.shape


def test_exif_orientation_is_applied():
    img = Image.fromarray(np.zeros((40, 80), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    ct = load(_png_bytes(img, "JPEG", exif=exif))
    assert ct.shape == (80, 40)


def test_seed_png_is_an_eight_bit_display_image():
    ct = load(SEED_440)
    assert not ct.is_hu and ct.bit_depth == 8 and ct.shape == (512, 512)
    assert 0.0 <= ct.pixels.min() and ct.pixels.max() <= 1.0


@pytest.mark.parametrize("raw, message", [
    (b"", "empty"),
    (b"hello, this is not an image at all" * 10, "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "damaged"),
])
def test_garbage_is_rejected_with_a_clear_message(raw, message):
    with pytest.raises(InputError, match=message):
        load(raw)


def test_truncated_png_is_rejected():
    raw = FREE_105.read_bytes()
    with pytest.raises(InputError):
        load(raw[: len(raw) // 3])


def test_tiny_image_is_rejected():
    with pytest.raises(InputError, match="too small"):
        load(_png_bytes(Image.fromarray(np.zeros((16, 64), np.uint8))))


def test_decompression_bomb_is_rejected():
    side = int(MAX_PIXELS ** 0.5) + 100
    bomb = _png_bytes(Image.new("1", (side, side)))
    assert len(bomb) < 200_000  # small file, huge image
    with pytest.raises(InputError, match="too large"):
        load(bomb)


def test_missing_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="Could not read"):
        load(tmp_path / "nope.png")


def test_sixteen_bit_png_holding_8_bit_values_is_a_display_image():
    grey = (load(FREE_105).pixels * 255).round().astype(np.uint16)
    ct = load(_png_bytes(Image.fromarray(grey)))
    assert not ct.is_hu
    np.testing.assert_allclose(ct.pixels, grey / 255.0, atol=1e-6)


def test_ct_dicom_without_rescale_tags_stored_as_hu_plus_1024():
    ds = pydicom.dcmread(DICOM_66)
    hu = ds.pixel_array.astype(np.int32)  # ircadb: stored value = HU
    ds.PixelData = (hu + 1024).clip(0, None).astype(np.uint16).tobytes()
    ds.PixelRepresentation = 0
    del ds.RescaleIntercept
    del ds.RescaleSlope
    ct = load(_dicom_bytes(ds))
    assert ct.is_hu
    np.testing.assert_allclose(ct.pixels, np.maximum(hu, -1024))
