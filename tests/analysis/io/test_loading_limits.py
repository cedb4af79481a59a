"""TumorApp/analysis/io/loading.py: declared sizes are checked before decoding, one frame is decoded,
and the encodings that pass those checks still load (deflated, RLE, JPEG 2000, multi-frame)."""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from TumorApp.analysis.errors import InputError
from TumorApp.analysis.io.loading import MAX_ASPECT, MAX_SIDE, codestream_size, load

from ..conftest import DICOM_66


def _bytes(ds, **kw) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True, **kw)
    return buf.getvalue()


def test_deflated_dicom_within_the_limit_loads_like_the_plain_one():
    ds = pydicom.dcmread(DICOM_66)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    raw = _bytes(ds)
    assert len(raw) < DICOM_66.stat().st_size  # really deflated
    np.testing.assert_array_equal(load(raw).pixels, load(DICOM_66).pixels)


def test_rle_dicom_loads():
    ds = pydicom.dcmread(DICOM_66)
    ds.compress(RLELossless)
    np.testing.assert_array_equal(load(_bytes(ds)).pixels, load(DICOM_66).pixels)


def test_jpeg2000_dicom_loads_and_its_codestream_size_is_read():
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(DICOM_66)
    stored = (ds.pixel_array.astype(np.int32) + 1024).clip(0, 4095).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, "JPEG2000", no_jp2=True, irreversible=False)
    assert codestream_size(buf.getvalue()) == (512, 512)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept = -1024
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    expected = np.clip(load(DICOM_66).pixels, -1024, 3071)
    np.testing.assert_allclose(load(_bytes(ds)).pixels, expected)


def test_multi_frame_dicom_decodes_the_middle_frame():
    ds = pydicom.dcmread(DICOM_66)
    base = ds.pixel_array
    frames = np.stack([base, base + 100, base + 200])  # middle frame: +100 HU
    ds.NumberOfFrames = 3
    ds.PixelData = frames.astype(base.dtype).tobytes()
    ct = load(_bytes(ds))
    np.testing.assert_allclose(ct.pixels, load(DICOM_66).pixels + 100)
    assert any("frame 2 of 3" in note for note in ct.notes)


@pytest.mark.parametrize("size, message", [
    ((MAX_SIDE + 8, 1100), "longest side"),
    ((int(64 * MAX_ASPECT) + 8, 64), "too elongated"),
    ((64, int(64 * MAX_ASPECT) + 8), "too elongated"),
])
def test_extreme_shapes_are_refused_from_the_header(size, message):
    buf = io.BytesIO()
    Image.new("L", size).save(buf, "PNG")
    with pytest.raises(InputError, match=message):
        load(buf.getvalue())


def test_declared_dicom_size_over_the_budget_is_refused_before_decoding():
    ds = pydicom.dcmread(DICOM_66)
    ds.Rows = ds.Columns = 8192  # the pixel data stays 512x512: decoding would fail differently
    with pytest.raises(InputError, match="too large"):
        load(_bytes(ds))


def test_non_numeric_rescale_slope_is_named():
    ds = pydicom.dcmread(DICOM_66)
    ds["RescaleSlope"] = pydicom.DataElement(0x00281053, "DS", "1", )
    raw = _bytes(ds).replace(b"\x28\x00\x53\x10DS\x02\x001 ", b"\x28\x00\x53\x10DS\x02\x00x ")
    with pytest.raises(InputError, match="RescaleSlope is not a number"):
        load(raw)


def test_png_named_dcm_is_read_as_png():
    buf = io.BytesIO()
    Image.new("L", (64, 64), 40).save(buf, "PNG")
    assert load(buf.getvalue(), filename="scan.dcm").source == "png"
