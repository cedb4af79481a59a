"""TumorApp/analysis/slice/plausibility.py: real CT slices pass, noise/blank/photos are refused, odd slices warn."""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
import skimage.data
from PIL import Image

from TumorApp.analysis.slice import plausibility
from TumorApp.analysis.errors import InputError
from TumorApp.analysis.io.loading import load
from TumorApp.analysis.slice.pipeline import analyze

from ..conftest import DICOM_66, FIXTURES, FREE_105, JPEG_103, PNG16_57, SEED_440, EmptySegmenter

REAL_SLICES = [DICOM_66, PNG16_57, JPEG_103, FREE_105, SEED_440,
               FIXTURES / "analysis_ircadb01_040_w400l40.png", FIXTURES / "web_ircadb01_image_84.dcm",
               FIXTURES / "web_seed_380.png", FIXTURES / "web_seed_440.png"]


def encode(array: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format=fmt, **kw)
    return out.getvalue()


def dicom_hu() -> np.ndarray:
    ds = pydicom.dcmread(DICOM_66)
    return ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def windowed(hu: np.ndarray) -> np.ndarray:
    return np.round(np.clip((hu + 160) / 400, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("path", REAL_SLICES, ids=lambda p: p.name)
def test_every_real_fixture_passes_without_warnings(path):
    found = plausibility.check(load(path))
    assert found.warnings == ()
    assert found.neighbour_corr > plausibility.MIN_NEIGHBOUR_CORR
    assert found.body_share > plausibility.MIN_BODY_SHARE


@pytest.mark.parametrize("data", [
    encode(np.random.default_rng(1).integers(0, 256, (512, 512), dtype=np.uint8)),
    encode(np.random.default_rng(2).integers(0, 256, (512, 512), dtype=np.uint8), "JPEG", quality=75),
    encode(np.clip(np.random.default_rng(3).normal(128, 40, (300, 400)), 0, 255).astype(np.uint8)),
], ids=["uniform-png", "uniform-jpeg", "gaussian-png"])
def test_random_noise_is_refused(data):
    with pytest.raises(InputError, match="random noise"):
        plausibility.check(load(data))


@pytest.mark.parametrize("value", [0, 128, 255])
def test_blank_image_is_refused(value):
    with pytest.raises(InputError, match="blank"):
        plausibility.check(load(encode(np.full((512, 512), value, np.uint8))))


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_colour_photo_is_refused(name):
    ct = load(encode(getattr(skimage.data, name)(), "JPEG", quality=90))
    assert ct.coloured_share > plausibility.MAX_COLOURED_SHARE
    with pytest.raises(InputError, match="colour photo"):
        plausibility.check(ct)


def test_ct_slice_saved_as_rgb_jpeg_is_grey_enough():
    assert load(JPEG_103).coloured_share < 0.01


def test_mostly_empty_image_has_no_body():
    image = np.zeros((512, 512), np.uint8)
    image[200:260, 200:260] = 180  # a 60 px square: 1.4 % of the image
    with pytest.raises(InputError, match="No body"):
        plausibility.check(load(encode(image)))


def test_hu_slice_without_soft_tissue_is_refused():
    hu = np.full((512, 512), -1000, np.int32)
    hu[100:400, 100:400] = 1500  # dense material, no soft tissue at all
    with pytest.raises(InputError, match="soft tissue"):
        plausibility.check(load(encode((hu + 1024).astype(np.uint16))))


def test_non_ct_dicom_modality_is_refused_by_analyze(tmp_path):
    ds = pydicom.dcmread(DICOM_66)
    ds.Modality = "MR"
    path = tmp_path / "mr.dcm"
    ds.save_as(path)
    with pytest.raises(InputError, match="only CT"):
        analyze(path, segmenter=EmptySegmenter())


@pytest.mark.parametrize("as_hu", [True, False], ids=["hu-png", "windowed-png"])
def test_upside_down_slice_is_a_warning_not_a_refusal(as_hu):
    flipped = dicom_hu()[::-1]
    data = encode((flipped + 1024).astype(np.uint16)) if as_hu else encode(windowed(flipped))
    found = plausibility.check(load(data))
    assert found.warnings == (plausibility.UPSIDE_DOWN_WARNING,)
    assert found.posterior_bone < plausibility.MIN_POSTERIOR_BONE
    upright = plausibility.check(load(encode(windowed(dicom_hu()))))
    assert upright.warnings == () and upright.posterior_bone > 0.5


def test_cropped_field_of_view_is_a_warning_not_a_refusal():
    crop = windowed(dicom_hu())[150:350, 100:300]  # inside the body: no air at the border
    found = plausibility.check(load(encode(crop)))
    assert found.warnings == (plausibility.CROPPED_WARNING,)
    assert found.air_border_share < plausibility.MIN_AIR_BORDER_SHARE


def test_warnings_reach_the_result_and_its_json():
    data = encode(windowed(dicom_hu()[::-1]))
    result = analyze(data, segmenter=EmptySegmenter(), render_images=False)
    assert result.warnings == [plausibility.UPSIDE_DOWN_WARNING]
    assert result.to_dict()["warnings"] == [plausibility.UPSIDE_DOWN_WARNING]
    assert analyze(DICOM_66, segmenter=EmptySegmenter(), render_images=False).to_dict()["warnings"] == []


def test_analyze_many_gives_the_refusal_per_file_and_analyses_the_rest():
    noise = encode(np.random.default_rng(4).integers(0, 256, (256, 256), dtype=np.uint8))
    from TumorApp.analysis.slice.pipeline import analyze_many

    first, second = analyze_many([noise, DICOM_66.read_bytes()], segmenter=EmptySegmenter())
    assert isinstance(first, InputError) and "noise" in str(first)
    assert not isinstance(second, InputError)
