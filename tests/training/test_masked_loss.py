"""The masked loss: label 3 (liver and tumour not separated) teaches the liver, never the tumour."""
import numpy as np
import pytest

from TumorApp.training.augment import sample_view, targets
from TumorApp.training.dataset import Patient


def _loss(y_true, y_pred) -> float:
    from TumorApp.training.train import combined_loss

    return float(np.asarray(combined_loss(y_true[None].astype("float32"), y_pred[None].astype("float32"))))


@pytest.fixture
def unseparated():
    """A 32x32 slice whose liver (rows 8-23) is label 3 except a known liver strip (label 1)
    and a real tumour (label 2) in the top rows."""
    labels = np.zeros((32, 32), np.uint8)
    labels[8:24, 8:24] = 3
    labels[4:8, 8:24] = 1
    labels[4:6, 10:14] = 2
    return labels


def test_targets_mark_label_3_as_liver_with_unknown_tumour(unseparated):
    y = targets(unseparated)
    inside = unseparated == 3
    assert y[..., 0][inside].all()          # whole liver
    assert not y[..., 1][inside].any()      # not called tumour...
    assert not y[..., 2][inside].any()      # ...and marked unknown
    assert y[..., 2][~inside].all()


def test_tumour_output_inside_label_3_costs_nothing(unseparated):
    y = targets(unseparated)
    pred = np.stack([y[..., 0] * 0.9 + 0.05, y[..., 1] * 0.9 + 0.05], axis=-1)
    base = _loss(y, pred)
    said_tumour = pred.copy()
    said_tumour[..., 1][unseparated == 3] = 0.95  # the network calls the unseparated liver tumour
    assert _loss(y, said_tumour) == pytest.approx(base, abs=1e-5)


def test_tumour_output_where_known_is_punished(unseparated):
    y = targets(unseparated)
    pred = np.stack([y[..., 0] * 0.9 + 0.05, y[..., 1] * 0.9 + 0.05], axis=-1)
    base = _loss(y, pred)
    false_tumour = pred.copy()
    false_tumour[..., 1][unseparated == 1] = 0.95  # known tumour-free liver called tumour
    missed = pred.copy()
    missed[..., 1][unseparated == 2] = 0.05  # the real tumour missed
    assert _loss(y, false_tumour) > base + 0.05
    assert _loss(y, missed) > base + 0.05


def test_liver_output_inside_label_3_is_supervised(unseparated):
    y = targets(unseparated)
    pred = np.stack([y[..., 0] * 0.9 + 0.05, y[..., 1] * 0.9 + 0.05], axis=-1)
    no_liver = pred.copy()
    no_liver[..., 0][unseparated == 3] = 0.05
    assert _loss(y, no_liver) > _loss(y, pred) + 0.1


def test_missing_tumour_costs_more_than_extra_tumour(unseparated):
    """Tversky weighting against the dark-core habit: a missed tumour pixel costs more than a
    false one, so the same number of wrong pixels weighs more when they are missed."""
    labels = np.zeros((32, 32), np.uint8)
    labels[4:28, 4:28] = 1
    labels[10:20, 10:20] = 2
    y = targets(labels)
    pred = np.stack([y[..., 0], y[..., 1]], axis=-1).astype(np.float32)
    shrunk, grown = pred.copy(), pred.copy()
    shrunk[..., 1][10:20, 10:12] = 0.0   # 20 tumour pixels missed
    grown[..., 1][10:20, 20:22] = 1.0    # 20 liver pixels called tumour
    assert _loss(y, shrunk) > _loss(y, grown)


def test_views_of_unseparated_slices_keep_the_unknown_mask():
    labels = np.zeros((64, 64), np.uint8)
    labels[16:48, 8:40] = 3
    image = np.where(labels > 0, 120.0, 0.0).astype(np.float32)
    p = Patient("msd-slices", image[None], labels[None], True, True, 1.5,
                np.array(["msd-1"], dtype=object), clipped_hu=True)
    x, y = sample_view(p, 0, np.random.default_rng(3))
    assert y.shape == (128, 128, 3)
    assert y[..., 0].sum() > 0 and y[..., 1].sum() == 0
    assert (y[..., 2] == 0).sum() > 0.8 * y[..., 0].sum()  # the liver's tumour label is unknown
