"""TumorApp/analysis/slice/pipeline.py: analyze() end to end on real slices, with ground-truth fakes."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from TumorApp.analysis.config import CONTRACT
from TumorApp.analysis.errors import InputError
from TumorApp.analysis.slice.pipeline import AnalysisResult, analyze, analyze_many

from ..conftest import (DICOM_66, FREE_105, JPEG_103, PNG16_57, SEED_440, EmptySegmenter, GroundTruthSegmenter,
                        IntensitySegmenter, dice, read_label, seed_label)

RESULT_KEYS = {"tumor_detected", "stage", "affected_percent", "liver_area_px", "tumor_area_px",
               "pixel_spacing_mm", "spacing_source", "tumors", "notes", "warnings",
               "inconclusive", "confidence", "low_confidence",  # issue 9: unsure / odd input
               "mirrored",  # issue 18: state as a field, not a sentence in the notes
               "inference"}  # issue 21: which backend ran this result
LESION_KEYS = {"area_px", "area_mm2", "perimeter_px", "perimeter_mm", "eccentricity", "max_diameter_mm",
               "bbox", "centroid", "side", "part", "confidence", "low_confidence"}
IMAGE_KEYS = {"original", "annotated", "mask", "probability", "threshold", "components"}


def run(path, label, *, radiological=True, **kw) -> AnalysisResult:
    fake = GroundTruthSegmenter(path, label, radiological=radiological)
    return analyze(path, segmenter=fake, second_pass=False, **kw)


def test_dicom_slice_end_to_end(gt_66):
    result = run(DICOM_66, gt_66)
    assert result.spacing_source == "dicom"
    assert result.pixel_spacing_mm == pytest.approx((0.57, 0.57))
    assert dice(result.liver_mask, gt_66 > 0) > 0.97
    assert dice(result.tumor_mask, gt_66 == 2) > 0.95
    assert result.tumor_detected and result.stage == "III" and len(result.tumors) == 1
    (lesion,) = result.tumors
    assert lesion.area_mm2 == pytest.approx(lesion.area_px * 0.57 * 0.57)
    assert lesion.max_diameter_mm > 50
    assert result.affected_percent == pytest.approx(100 * result.tumor_area_px / result.liver_area_px)
    assert result.affected_percent == pytest.approx(100 * (gt_66 == 2).sum() / (gt_66 > 0).sum(), abs=1.5)
    assert not result.mirrored and result.notes == []


def test_to_dict_is_exactly_the_contract(gt_66):
    data = run(DICOM_66, gt_66).to_dict()
    assert set(data) == RESULT_KEYS
    assert set(data["tumors"][0]) == LESION_KEYS
    assert isinstance(data["tumor_detected"], bool) and data["stage"] in ("I", "II", "III")
    assert len(data["pixel_spacing_mm"]) == 2 and data["spacing_source"] == "dicom"
    assert len(data["tumors"][0]["bbox"]) == 4 and len(data["tumors"][0]["centroid"]) == 2
    assert data["tumors"][0]["side"] in ("right", "left")
    assert data["tumors"][0]["part"] in ("anterior", "posterior")
    import json
    json.dumps(data)  # plain JSON types only


def test_masks_and_images_have_the_input_size(gt_66):
    result = run(DICOM_66, gt_66)
    for mask in (result.liver_mask, result.tumor_mask):
        assert mask.shape == (512, 512) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
    assert set(result.images) == IMAGE_KEYS
    for name, png in result.images.items():
        assert png.startswith(b"\x89PNG"), name
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        assert image.shape[:2] == (512, 512), name


def test_bytes_upload_without_a_name_is_the_same_as_the_path(gt_66):
    by_path = run(DICOM_66, gt_66).to_dict()
    fake = GroundTruthSegmenter(DICOM_66, gt_66)
    by_bytes = analyze(DICOM_66.read_bytes(), segmenter=fake, second_pass=False).to_dict()
    assert by_bytes == by_path


def test_sixteen_bit_png_uses_assumed_or_user_spacing():
    label = read_label("analysis_ircadb01_057_label.png")
    assumed = run(PNG16_57, label)
    assert assumed.spacing_source == "assumed"
    assert assumed.pixel_spacing_mm == (CONTRACT.assumed_spacing_mm,) * 2
    assert any("assumed" in n for n in assumed.notes)
    assert dice(assumed.tumor_mask, label == 2) > 0.95

    user = run(PNG16_57, label, pixel_spacing=0.57)
    assert user.spacing_source == "user" and user.pixel_spacing_mm == (0.57, 0.57)
    a, u = assumed.tumors[0], user.tumors[0]
    assert a.area_px == u.area_px
    assert u.area_mm2 == pytest.approx(a.area_mm2 * (0.57 / CONTRACT.assumed_spacing_mm) ** 2)
    assert u.max_diameter_mm == pytest.approx(a.max_diameter_mm * 0.57 / CONTRACT.assumed_spacing_mm)


def test_dicom_spacing_wins_over_the_users_with_a_note(gt_66):
    result = run(DICOM_66, gt_66, pixel_spacing=0.9)
    assert result.spacing_source == "dicom" and result.pixel_spacing_mm == pytest.approx((0.57, 0.57))
    assert any("instead of the value given" in n for n in result.notes)


@pytest.mark.parametrize("bad", [0, -1, 0.04, 5.1, 50, float("nan"), "abc"])
def test_implausible_user_spacing_is_an_input_error(bad):
    with pytest.raises(InputError, match="pixel spacing"):
        analyze(FREE_105, pixel_spacing=bad, segmenter=EmptySegmenter())


def test_rgb_jpeg_end_to_end():
    label = read_label("analysis_ircadb01_103_label.png")
    result = run(JPEG_103, label)
    assert result.tumor_detected and len(result.tumors) == 1
    assert result.stage == "I"  # a 13 mm lesion (with the assumed 0.75 mm: about 17 mm)
    assert not any("Colour" in n for n in result.notes)  # grey content in an RGB container


def test_mirrored_seed_slice_is_analysed_in_radiological_orientation():
    label = seed_label()
    result = run(SEED_440, label, radiological=False)
    assert result.mirrored
    assert any("mirrored" in n for n in result.notes)
    # Masks are in the upload's own (mirrored) grid.
    assert dice(result.liver_mask, label > 0) > 0.97
    assert dice(result.tumor_mask, label == 2) > 0.85
    assert result.tumor_detected and result.spacing_source == "assumed"
    # The liver is on the image right, so the patient's right lobe is the image right half.
    xs = np.flatnonzero(result.liver_mask.any(axis=0))
    middle = (xs[0] + xs[-1]) / 2
    for lesion in result.tumors:
        assert lesion.side == ("right" if lesion.centroid[0] > middle else "left")


def test_tumour_free_slice_is_no_tumor_detected():
    label = read_label("analysis_ircadb01_105_label.png")
    assert (label == 2).sum() == 0 and (label == 1).sum() > 10000
    result = run(FREE_105, label)
    assert not result.tumor_detected and result.stage is None and result.tumors == []
    assert result.stage_label == "No Tumor Detected"
    assert result.affected_percent == 0.0 and result.tumor_area_px == 0
    assert result.liver_area_px > 10000
    assert not result.tumor_mask.any()


def test_nothing_found_is_inconclusive_with_a_no_liver_note():
    result = analyze(FREE_105, segmenter=EmptySegmenter())
    assert not result.tumor_detected and result.liver_area_px == 0
    assert result.inconclusive and result.stage_label == "Inconclusive: no liver found on this slice"
    assert any("No liver" in n for n in result.notes)
    assert set(result.images) == IMAGE_KEYS


def test_corrupt_upload_raises_input_error():
    with pytest.raises(InputError):
        analyze(b"GIF89a" + b"\x00" * 10, segmenter=EmptySegmenter())


def test_second_pass_runs_by_default():
    fake = IntensitySegmenter()
    analyze(DICOM_66, segmenter=fake)
    # DICOM is HU and radiological by convention: one whole-slice pass, then the liver crop.
    assert [len(b) for b in fake.batches] == [1, 1]


def test_display_pictures_get_the_mirror_test():
    fake = IntensitySegmenter()
    analyze(SEED_440, segmenter=fake)
    # A PNG may be mirrored (the seed slices are): as-is and mirrored together, then the crop.
    assert [len(b) for b in fake.batches] == [2, 1]


def test_analyze_many_keeps_order_and_reports_errors(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    fake = IntensitySegmenter()
    seen = []
    outcomes = analyze_many([DICOM_66, bad, SEED_440, FREE_105], segmenter=fake, batch_size=2,
                            progress=lambda done, total: seen.append((done, total)))
    assert [type(o).__name__ for o in outcomes] == ["AnalysisResult", "InputError", "AnalysisResult",
                                                   "AnalysisResult"]
    assert seen == [(2, 4), (4, 4)]
    # Batched per chunk: the first chunk holds one readable DICOM (1 whole-slice input, no mirror
    # test for HU data), then its crop.
    assert [len(b) for b in fake.batches][:2] == [1, 1]
    assert outcomes[0].images == {}  # no rendering unless asked


def test_analyze_many_matches_analyze():
    fake = IntensitySegmenter()
    single = analyze(SEED_440, segmenter=fake).to_dict()
    (many,) = analyze_many([SEED_440], segmenter=fake)
    assert many.to_dict() == single


def test_the_analysis_package_does_not_import_django():
    import subprocess
    import sys

    from ..conftest import REPO

    code = ("import sys, TumorApp.analysis.slice.pipeline, TumorApp.analysis.model.runtime, "
            "TumorApp.analysis.model.graphs; "
            "sys.exit(any(m == 'django' or m.startswith('django.') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, timeout=120).returncode == 0


def test_non_square_upload_gives_masks_of_its_own_size():
    from PIL import Image
    import io

    grey = np.asarray(Image.open(FREE_105).resize((300, 200)))
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, "PNG")
    result = analyze(buf.getvalue(), segmenter=IntensitySegmenter())
    assert result.liver_mask.shape == result.tumor_mask.shape == (200, 300)
    image = cv2.imdecode(np.frombuffer(result.images["annotated"], np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (200, 300)
