"""Patient-grouped folds and the cross-validation figures."""
import numpy as np
import pytest

from TumorApp.analysis.slice.staging import stage_for_diameter
from TumorApp.training.cv import SliceResult, _stage, make_folds, summarise, without_others
from TumorApp.training.dataset import Patient, all_patient_ids, without


def _source(name, n_patients, per_patient, tumour_every=0, size=16):
    ids, labels = [], []
    for i in range(n_patients):
        for _ in range(per_patient):
            label = np.zeros((size, size), np.uint8)
            label[4:12, 4:12] = 1
            if tumour_every and i % tumour_every == 0:
                label[6:9, 6:9] = 2
            labels.append(label)
            ids.append(f"{name}-{i}" if n_patients > 1 else name)
    labels = np.stack(labels)
    return Patient(name, labels.astype(np.float32), labels, True, True, 1.0, np.array(ids, dtype=object))


@pytest.fixture
def sources():
    return [_source("whole-a", 1, 120, tumour_every=1), _source("whole-b", 1, 60),
            _source("whole-c", 1, 80, tumour_every=1), _source("msd", 40, 5, tumour_every=4)]


def test_every_patient_is_in_exactly_one_fold(sources):
    folds = make_folds(sources, k=5, seed=1)
    assert set(folds) == set(all_patient_ids(sources))
    for f in range(5):
        held = {pid for pid, g in folds.items() if g == f}
        train_ids = set(all_patient_ids(without(sources, held)))
        assert held and not (held & train_ids)  # no patient on both sides of a split
        assert held | train_ids == set(all_patient_ids(sources))


def test_tumour_patients_are_spread_over_the_folds(sources):
    folds = make_folds(sources, k=5, seed=1)
    tumour = {"whole-a", "whole-c"} | {f"msd-{i}" for i in range(0, 40, 4)}
    per_fold = [sum(1 for pid in tumour if folds[pid] == f) for f in range(5)]
    assert min(per_fold) >= 2 and max(per_fold) - min(per_fold) <= 1
    assert len({folds["whole-a"], folds["whole-b"], folds["whole-c"]}) == 3


def test_always_train_patients_are_in_no_fold(sources):
    folds = make_folds(sources, k=5, seed=1, always_train=frozenset({"whole-a"}))
    assert "whole-a" not in folds and "msd-3" in folds


def test_held_out_selection_keeps_only_those_patients(sources):
    kept = without_others(sources, {"msd-3", "whole-b"})
    assert set(all_patient_ids(kept)) == {"msd-3", "whole-b"}
    assert sum(len(p.labels) for p in kept) == 65


def test_stage_from_true_outlines_uses_the_longest_diameter():
    liver = np.zeros((200, 200), bool)
    liver[20:180, 20:180] = True
    tumour = np.zeros_like(liver)
    yy, xx = np.mgrid[:200, :200]
    tumour[(yy - 100) ** 2 + (xx - 100) ** 2 <= 30 ** 2] = True  # 61 px across at 0.5 mm = ~30 mm
    s, affected = _stage(tumour, liver, (0.5, 0.5))
    assert s == stage_for_diameter(30.5) == "II"
    assert affected == pytest.approx(100 * tumour.sum() / liver.sum(), rel=1e-6)


def _r(**kw):
    base = dict(patient="p", source="s", has_liver=True, tumour_known=True, has_tumour=True, detected=True,
                liver_dice=0.9, tumour_dice=0.5, stage_true="II", stage_pred="II", affected_true=10.0,
                affected_pred=4.0)
    base.update(kw)
    return SliceResult(**base)


def test_summary_skips_unseparated_slices_for_tumour_figures():
    results = [_r(), _r(stage_pred="I", tumour_dice=0.3, affected_pred=10.0),
               _r(has_tumour=False, detected=True, tumour_dice=1.0, stage_true=None, stage_pred="I"),
               _r(has_tumour=False, detected=False, tumour_dice=1.0, stage_true=None, stage_pred=None),
               _r(tumour_known=False, has_tumour=False, detected=True, liver_dice=0.5)]
    s = summarise(results)
    assert s["tumour_slices"] == 2 and s["tumour_free_slices"] == 2
    assert s["tumour_dice"] == pytest.approx(0.4)
    assert s["sensitivity"] == 1.0 and s["specificity"] == 0.5
    assert s["stage_agreement"] == 0.5 and s["affected_mae"] == pytest.approx(3.0)
    assert s["liver_dice"] == pytest.approx((0.9 * 4 + 0.5) / 5)
