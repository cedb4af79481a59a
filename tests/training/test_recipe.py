"""TumorApp/training/train.py recipes, pseudolabels.py and campaign.py on real fixture slices."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from TumorApp.analysis.io.loading import load
from TumorApp.training.dataset import UNSEPARATED, Patient, load_patients, save_cache
from TumorApp.training.pseudolabels import normal_parenchyma, with_normal_parenchyma
from TumorApp.training.train import RECIPES, Recipe, make_epoch, slice_distribution

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def hu_slice():
    hu = load(FIXTURES / "analysis_ircadb01_066.dcm").pixels.astype(np.float32)
    label = cv2.imread(str(FIXTURES / "analysis_ircadb01_066_label.png"), cv2.IMREAD_GRAYSCALE)
    return hu, label


def test_normal_parenchyma_never_takes_a_true_tumour_and_covers_much_of_the_liver(hu_slice):
    hu, label = hu_slice
    assert (label == 2).sum() > 500  # the fixture shows a real tumour
    normal = normal_parenchyma(hu, label > 0, spacing_mm=0.57)
    assert not (normal & (label == 2)).any()
    assert not (normal & (label == 0)).any()
    assert normal.sum() > 0.2 * (label == 1).sum()


def test_a_dark_lesion_painted_into_the_liver_is_left_unknown(hu_slice):
    hu, label = hu_slice
    liver = label == 1
    ys, xs = np.nonzero(cv2.erode(liver.astype(np.uint8), np.ones((41, 41), np.uint8)))
    y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    painted = hu.copy()
    cv2.circle(painted, (x, y), 12, float(np.median(hu[liver]) - 50), -1)
    normal = normal_parenchyma(painted, label > 0, spacing_mm=0.57)
    assert not normal[y - 12:y + 13, x - 12:x + 13].any()


def test_label_3_becomes_liver_only_where_surely_normal(hu_slice):
    hu, label = hu_slice
    merged = np.where(label > 0, UNSEPARATED, 0).astype(np.uint8)
    p = Patient("msd-slices", hu[None], merged[None], True, True, 0.57)
    out = with_normal_parenchyma(p).labels[0]
    assert set(np.unique(out)) == {0, 1, UNSEPARATED}
    assert not ((out == 1) & (label == 2)).any()  # the true tumour stays unknown
    assert (out == UNSEPARATED).sum() < (merged == UNSEPARATED).sum()
    assert p.labels[0].max() == UNSEPARATED  # the source itself is not changed


def _sources():
    blank = np.zeros((4, 32, 32), np.float32)
    labels = np.zeros((4, 32, 32), np.uint8)
    labels[:, 10:20, 10:20] = 1
    whole = Patient("ircadb-07", blank.repeat(25, axis=0), labels.repeat(25, axis=0), True, True, 1.0)
    ids = np.array([f"msd-{i // 2}" for i in range(40)], dtype=object)  # 20 patients, 2 slices each
    msd = Patient("msd-slices", blank.repeat(10, axis=0), labels.repeat(10, axis=0), True, True, 1.5, ids)
    return [whole, msd]


def test_sampling_by_patient_lets_many_small_patients_outweigh_one_whole_one():
    sources = _sources()
    by_source = [d.sum() for d in slice_distribution(sources, "source")]
    by_patient = [d.sum() for d in slice_distribution(sources, "patient")]
    mixed = [d.sum() for d in slice_distribution(sources, "mixed")]
    for shares in (by_source, by_patient, mixed):
        assert sum(shares) == pytest.approx(1.0)
    # one whole patient of 100 slices against 20 patients of 2: sqrt(100) vs 20 * sqrt(2)
    assert by_patient[0] == pytest.approx(10 / (10 + 20 * np.sqrt(2)))
    assert by_patient[1] > by_source[1] and mixed[1] == pytest.approx((by_source[1] + by_patient[1]) / 2)


def test_the_chosen_recipe_feeds_the_network_its_window(hu_slice):
    hu, label = hu_slice
    p = Patient("ircadb-01", hu[None], label[None], True, True, 0.57)
    narrow, wide = (Recipe(window=w, clip_hu_chance=0.0) for w in ((127.5, 255.0), (40.0, 400.0)))
    x, y = make_epoch([p], 16, seed=3, recipe=narrow)
    xw, yw = make_epoch([p], 16, seed=3, recipe=wide)
    assert x.shape == (16, 128, 128, 1) and y.shape == (16, 128, 128, 3)
    np.testing.assert_array_equal(y, yw)  # the same views, only the window differs
    # fat (about -100 HU) is black in 0..255 HU and grey in W400/L40: the same views are darker
    assert x.mean() < xw.mean() - 0.05


def test_cache_keeps_hu_to_two_units_and_pictures_to_one_grey_level(hu_slice, tmp_path):
    hu, label = hu_slice
    picture = (np.arange(64 * 64).reshape(64, 64) % 256 / 255.0).astype(np.float32)
    sources = [Patient("ircadb-01", hu[None], label[None], True, True, 0.57),
               Patient("seed", picture[None], np.zeros((1, 64, 64), np.uint8), False, True, 0.75)]
    save_cache(sources, tmp_path / "c.npz")
    back = load_patients("", ["ircadb-01", "seed"], cache=tmp_path / "c.npz")
    inside = (hu > -200) & (hu < 300)
    assert np.abs(back[0].images[0] - hu)[inside].max() <= 1.0
    assert np.abs(back[1].images[0] - picture).max() < 1 / 255


def test_every_named_recipe_is_a_recipe():
    assert {"source", "unified"} <= set(RECIPES)
    assert all(isinstance(r, Recipe) for r in RECIPES.values())


def test_weights_sent_back_as_float16_load_into_the_network(tmp_path):
    from TumorApp.analysis.model.network import build_unet, weights_metadata
    from TumorApp.analysis.model.runtime import Segmenter
    from TumorApp.training.campaign import KerasSegmenter, npz_to_hdf5

    model = build_unet()
    np.savez(tmp_path / "w.npz", *[w.astype(np.float16) for w in model.get_weights()])
    out = npz_to_hdf5(tmp_path / "w.npz", tmp_path / "w.hdf5", {"views_total": 123})
    assert weights_metadata(out)["views_total"] == 123
    x = np.random.default_rng(0).random((2, 128, 128), dtype=np.float32)
    ours = Segmenter(out, backend="tf").predict(x)
    theirs = KerasSegmenter(model).predict(x)
    np.testing.assert_allclose(ours, theirs, atol=2e-3)


@pytest.mark.skipif(not (DATA / "ircadb-png").is_dir(), reason="../shared/data/ircadb-png not present")
def test_ircadb_png_slices_join_their_msd_patients():
    png, msd = load_patients(DATA, ["ircadb-png", "msd-slices"])
    assert png.is_hu and png.images.shape[1:] == (256, 256)
    assert set(png.patient_ids) <= set(msd.patient_ids)
    liver = png.labels > 0
    assert 0 < np.median(png.images[liver]) < 200  # grey * 8 - 1024 puts liver at soft-tissue HU
