"""Training code on real labelled slices from tests/fixtures (the shared data folder is not needed)."""
import json

import cv2
import numpy as np
import pytest

from TumorApp.analysis.io.loading import load
from TumorApp.training.augment import sample_view, slice_weights
from TumorApp.training.dataset import Patient, load_patients, save_cache

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def patients():
    hu = load(FIXTURES / "analysis_ircadb01_066.dcm").pixels.astype(np.float32)
    hu_label = cv2.imread(str(FIXTURES / "analysis_ircadb01_066_label.png"), cv2.IMREAD_GRAYSCALE)
    seed = cv2.imread(str(FIXTURES / "analysis_seed_440.png"), cv2.IMREAD_GRAYSCALE)[:, ::-1] / 255.0
    mask = cv2.imread(str(FIXTURES / "analysis_seed_440_mask.png"), cv2.IMREAD_GRAYSCALE)[:, ::-1]
    seed_label = np.where(mask == 254, 2, np.where(mask > 0, 1, 0)).astype(np.uint8)
    return [Patient("seed", np.stack([seed, seed * 0]).astype(np.float32),
                    np.stack([seed_label, seed_label * 0]), False, True, 0.75),
            Patient("lits-117", hu[None], hu_label[None], True, False, float("nan"))]


def test_views_are_network_sized_with_binary_nested_targets(patients):
    rng = np.random.default_rng(0)
    for p in patients:
        for _ in range(10):
            x, y = sample_view(p, int(rng.choice(len(p.labels), p=slice_weights(p))), rng)
            assert x.shape == (128, 128) and y.shape == (128, 128, 3)
            assert 0.0 <= x.min() and x.max() <= 1.0
            assert set(np.unique(y)) <= {0.0, 1.0}
            assert not (y[..., 1] > y[..., 0]).any()  # tumour is part of the whole liver
            assert y[..., 2].all()  # no label 3 here: the tumour label is known everywhere


def test_sampling_favours_tumour_slices(patients):
    w = slice_weights(patients[0])  # slice 0 has tumour, slice 1 is empty
    assert w[0] > w[1] > 0 and np.isclose(w.sum(), 1.0)


def test_train_writes_loadable_weights_and_says_what_it_trained_on(patients, tmp_path):
    from TumorApp.analysis.model.runtime import Segmenter
    from TumorApp.training.evaluate import TrainedOnHoldout, check_held_out
    from TumorApp.training.train import train

    cache = tmp_path / "cache.npz"
    save_cache(patients, cache)
    assert [p.name for p in load_patients("", ["seed", "lits-117"], cache=cache)] == ["seed", "lits-117"]
    meta = train("", str(tmp_path), holdout=["ircadb-01"], epochs=1, samples_per_epoch=8,
                 batch_size=4, cache=str(cache), verbose=0)
    assert meta["trained_on"] == ["seed", "lits-117"] and meta["epochs"] == 1
    weights = tmp_path / "cnn_weights.hdf5"
    assert json.loads((tmp_path / "cnn_weights.json").read_text())["held_out"] == ["ircadb-01"]
    assert (tmp_path / "cnn_weights_curves.png").stat().st_size > 0
    out = Segmenter(weights, backend="tf").predict(np.zeros((1, 128, 128), np.float32))
    assert out.shape == (1, 128, 128, 2) and np.isfinite(out).all()
    check_held_out(weights, "ircadb-01")
    with pytest.raises(TrainedOnHoldout):
        check_held_out(weights, "seed")


def test_worker_processes_make_the_same_views_as_the_main_process(patients, tmp_path):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from TumorApp.training.train import make_epoch

    cache = tmp_path / "cache.npz"
    save_cache(patients, cache)
    cached = load_patients("", ["seed", "lits-117"], cache=cache)
    x, y = make_epoch(cached, 100, seed=7)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        px, py = make_epoch(cached, 100, seed=7, pool=pool, source=("", ("seed", "lits-117"), str(cache), (), ()))
    np.testing.assert_array_equal(x, px)
    np.testing.assert_array_equal(y, py)


def test_the_recipes_base_weights_come_from_the_repository_history(tmp_path):
    """model/base/cnn_weights.hdf5 is not committed (only its .json): it is the model shipped at
    BASE_WEIGHTS_COMMIT, restored from git when missing; any other missing file is an error."""
    import shutil
    import subprocess

    from TumorApp.analysis.config import BASE_WEIGHTS, BASE_WEIGHTS_COMMIT, REPO_ROOT
    from TumorApp.training.train import ensure_base_weights

    shown = subprocess.run(["git", "show", f"{BASE_WEIGHTS_COMMIT}:model/cnn_weights.hdf5"], cwd=REPO_ROOT,
                           capture_output=True)
    if shown.returncode != 0:
        pytest.skip("a clone without the history of the base weights")
    kept = tmp_path / "kept.hdf5"
    if BASE_WEIGHTS.is_file():
        shutil.move(BASE_WEIGHTS, kept)
    try:
        assert ensure_base_weights(BASE_WEIGHTS) == BASE_WEIGHTS
        assert BASE_WEIGHTS.read_bytes() == shown.stdout
        assert json.loads(BASE_WEIGHTS.with_suffix(".json").read_text())["trained_on"] == ["seed", "lits-117"]
    finally:
        if kept.is_file():
            shutil.move(kept, BASE_WEIGHTS)
    with pytest.raises(FileNotFoundError):
        ensure_base_weights(tmp_path / "missing.hdf5")
