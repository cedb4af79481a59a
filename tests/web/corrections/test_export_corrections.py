"""manage.py export_corrections and the training reader for its layout (issue 10)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from django.core.management import call_command

from TumorApp.analyses import selectors, services
from TumorApp.analysis.io.loading import load
from TumorApp.analysis.labels import LIVER
from TumorApp.training.corrections import read_corrections

from ..helpers import DICOM, FIXTURES, PNG_PLAIN, PNG_TUMOR, make_analysis

pytestmark = pytest.mark.django_db


def png(mask: np.ndarray) -> bytes:
    return cv2.imencode(".png", mask.astype(np.uint8) * 255)[1].tobytes()


def correct_with_square(analysis, user, top_left):
    values = cv2.imdecode(np.frombuffer(selectors.editor_labels_png(analysis, "model"), np.uint8),
                          cv2.IMREAD_UNCHANGED)
    liver = values >= LIVER.value
    tumor = np.zeros_like(liver)
    y, x = top_left
    tumor[y:y + 30, x:x + 30] = True
    services.correct_masks(analysis=analysis, user=user, liver_png=png(liver | tumor), tumor_png=png(tumor))
    return liver | tumor, tumor


@pytest.fixture
def exported(user, tmp_path):
    dicom = make_analysis(user, DICOM)
    picture = make_analysis(user, PNG_TUMOR)
    make_analysis(user, PNG_PLAIN)  # never corrected: not exported
    masks = {dicom.pk: correct_with_square(dicom, user, (250, 150)),
             picture.pk: correct_with_square(picture, user, (200, 300))}
    correct_with_square(dicom, user, (260, 160))  # a second version: the latest is exported
    masks[dicom.pk] = correct_with_square(dicom, user, (250, 150))
    out = tmp_path / "corrections"
    call_command("export_corrections", str(out))
    return out, dicom, picture, masks


def test_export_writes_each_corrected_analysis_with_hu_labels_spacing_and_source(exported):
    out, dicom, picture, masks = exported
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["source_id"] for m in manifest] == [dicom.pk, picture.pk]
    assert sorted(p.name for p in out.iterdir()) == sorted(["manifest.json", f"analysis-{dicom.pk}.npz",
                                                             f"analysis-{picture.pk}.npz"])
    with np.load(out / f"analysis-{dicom.pk}.npz") as d:
        assert bool(d["is_hu"]) and d["image"].dtype == np.int16 and int(d["source_id"]) == dicom.pk
        hu = load(FIXTURES / DICOM).pixels
        assert np.array_equal(d["image"], np.round(hu).astype(np.int16))
        liver, tumor = masks[dicom.pk]
        assert np.array_equal(d["label"], np.where(tumor, 2, np.where(liver, 1, 0)))
        assert np.allclose(d["spacing"], dicom.result["pixel_spacing_mm"])
        assert int(d["version"]) == 3
    with np.load(out / f"analysis-{picture.pk}.npz") as d:
        assert not bool(d["is_hu"]) and d["image"].dtype == np.uint8
        assert set(np.unique(d["label"])) == {0, 1, 2}


def test_training_reader_gives_patients_in_the_dataset_shape(exported):
    out, dicom, picture, masks = exported
    patients = {p.name: p for p in read_corrections(out, size=256)}
    assert set(patients) == {"corrections-hu", "corrections-display"}
    hu, display = patients["corrections-hu"], patients["corrections-display"]
    assert hu.images.shape == (1, 256, 256) and hu.is_hu and hu.images.min() < -500
    assert display.images.shape == (1, 256, 256) and 0 <= display.images.min() and display.images.max() <= 1
    assert hu.spacing_mm == pytest.approx(dicom.result["pixel_spacing_mm"][0] * 2)
    for p in patients.values():
        assert set(np.unique(p.labels)) == {0, 1, 2} and len(p.tumour_slices) == 1
    # The seed PNG was analysed mirrored: its label comes back in radiological orientation
    # (the painted square, image columns 300..329, moves to 512 - 330 .. 512 - 301).
    assert any("mirrored" in n for n in picture.notes)
    cols = np.flatnonzero((display.labels[0] == 2).any(axis=0)) * 2
    assert 512 - 331 <= cols.min() and cols.max() <= 512 - 300


@pytest.mark.slow
def test_one_epoch_trains_on_the_exported_corrections(exported, tmp_path):
    """`train(corrections=[folder])` (train_model --corrections) adds the export to the sources."""
    import numpy as np

    from TumorApp.training.dataset import save_cache
    from TumorApp.training.train import train

    out = exported[0]
    cache = tmp_path / "empty.npz"
    save_cache([], cache)  # no ../shared/data sources: the corrections alone
    np.load(cache)  # a valid, empty archive
    meta = train("", str(tmp_path / "model"), epochs=1, samples_per_epoch=8, batch_size=4,
                 cache=str(cache), corrections=[str(out)], init_weights=None, verbose=0)
    assert meta["epochs"] == 1 and meta["corrections"] == [str(out)]
    assert set(meta["trained_on_patients"]) == {"corrections-hu", "corrections-display"}
    assert (tmp_path / "model" / "cnn_weights.hdf5").stat().st_size > 0
