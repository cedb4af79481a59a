"""Synthetic lesions (TumorApp/training/lesions.py) on a real labelled HU slice from tests/fixtures."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from TumorApp.analysis.io.loading import load
from TumorApp.training.augment import sample_view
from TumorApp.training.dataset import Patient
from TumorApp.training.lesions import insert_lesions

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def slice_66():
    hu = load(FIXTURES / "analysis_ircadb01_066.dcm").pixels.astype(np.float32)
    labels = cv2.imread(str(FIXTURES / "analysis_ircadb01_066_label.png"), cv2.IMREAD_GRAYSCALE)
    return hu, labels


def test_lesions_are_darker_than_the_liver_and_labelled_inside_it(slice_66):
    hu, labels = slice_66
    darker = painted = 0
    for seed in range(12):
        new_hu, new_labels = insert_lesions(hu, labels, 0.57, np.random.default_rng(seed))
        added = (new_labels == 2) & (labels != 2)
        painted += added.sum() >= 20  # a lesion may fall inside the real tumour and add nothing
        assert not ((new_labels == 2) & (labels == 0)).any(), "no tumour label outside the liver"
        assert ((new_labels > 0) == (labels > 0)).all(), "the liver outline is unchanged"
        # The lesion fades out over the liver edge: at most a few pixels beyond it change.
        near = cv2.dilate((labels > 0).astype(np.uint8), np.ones((11, 11), np.uint8)) > 0
        assert np.array_equal(new_hu[~near], hu[~near]), "nothing painted away from the liver"
        liver = labels == 1
        darker += added.any() and np.median(new_hu[added]) < np.median(hu[liver]) - 10
    assert painted >= 10 and darker >= 8  # mostly hypodense (a tenth are drawn hyperdense)


def test_inputs_are_not_modified_and_a_seed_repeats(slice_66):
    hu, labels = slice_66
    hu0, labels0 = hu.copy(), labels.copy()
    a = insert_lesions(hu, labels, 0.57, np.random.default_rng(5))
    b = insert_lesions(hu, labels, 0.57, np.random.default_rng(5))
    assert np.array_equal(hu, hu0) and np.array_equal(labels, labels0)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_no_lesion_without_enough_liver(slice_66):
    hu, labels = slice_66
    tiny = np.zeros_like(labels)
    tiny[100:110, 100:110] = 1
    new_hu, new_labels = insert_lesions(hu, tiny, 0.57, np.random.default_rng(0))
    assert new_hu is hu and new_labels is tiny


def test_views_gain_tumour_only_on_hu_slices_when_asked(slice_66):
    hu, labels = slice_66
    healthy = np.where(labels == 2, 1, labels).astype(np.uint8)  # the same slice with its tumour relabelled liver
    hu_patient = Patient("ircadb-01", hu[None], healthy[None], True, True, 0.57)
    seed_patient = Patient("seed", (np.clip(hu, -160, 240)[None] + 160) / 400, healthy[None], False, True, 0.75)
    rng = np.random.default_rng(1)
    with_tumour = sum(sample_view(hu_patient, 0, rng, synthetic=1.0)[1][..., 1].any() for _ in range(10))
    assert with_tumour >= 7  # a crop may miss the lesion
    assert not any(sample_view(hu_patient, 0, rng, synthetic=0.0)[1][..., 1].any() for _ in range(10))
    assert not any(sample_view(seed_patient, 0, rng, synthetic=1.0)[1][..., 1].any() for _ in range(10))
