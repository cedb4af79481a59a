"""Patient-grouped cross-validation: folds by patient, one model per fold, figures per fold.

Every patient (a whole patient, or one `volume` of msd-slices) lies wholly in one fold; the
patients with tumour are spread over the folds.  Each fold's model is trained on the other
folds and measured on its own patients through the product's path (segment -> post-process ->
measure -> stage), so every figure is on patients that model never saw.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..analysis.config import CONTRACT
from ..analysis.slice.measure import measure_lesions
from ..analysis.slice.postprocess import clean, lesion_labels
from ..analysis.slice.preprocess import display_to_network, window_hu
from ..analysis.slice.segment import segment_many
from ..analysis.slice.staging import stage
from .dataset import UNSEPARATED, Patient, load_patients, without
from .metrics import dice

# The six figures of issue 9, in the order the model card shows them.
FIGURES = (("tumour_dice", "tumour Dice (mean over tumour slices)"),
           ("liver_dice", "whole-liver Dice (mean over liver slices)"),
           ("sensitivity", "slices with tumour found (sensitivity)"),
           ("specificity", "tumour-free slices left clear (specificity)"),
           ("stage_agreement", "stage equal to the stage of the true outlines"),
           ("affected_mae", "affected %, mean absolute error (points)"))


def make_folds(patients: list[Patient], k: int = 5, seed: int = 0,
               always_train: frozenset[str] = frozenset()) -> dict[str, int]:
    """Patient id -> fold.  The whole patients go to different folds, then the other patients
    with tumour round-robin, then the rest each to the fold with the fewest slices so far.
    `always_train` patients are in no fold: every fold's model trains on them (e.g. because the
    weights fine-tuning starts from already saw them), so they are never measured."""
    rng = np.random.default_rng(seed)
    slices: dict[str, int] = {}
    tumour: set[str] = set()
    for p in patients:
        has_t = (p.labels == 2).any(axis=(1, 2))
        for pid, t in zip(p.patient_ids, has_t):
            if str(pid) in always_train:
                continue
            slices[str(pid)] = slices.get(str(pid), 0) + 1
            if t:
                tumour.add(str(pid))
    whole = sorted((pid for pid in slices if slices[pid] >= 50), key=lambda pid: -slices[pid])
    fold: dict[str, int] = {pid: i % k for i, pid in enumerate(whole)}
    rest_tumour = sorted(tumour - set(fold))
    rng.shuffle(rest_tumour)
    start = len(whole) % k
    for i, pid in enumerate(rest_tumour):
        fold[pid] = (start + i) % k
    load = np.zeros(k)
    for pid, f in fold.items():
        load[f] += slices[pid]
    others = sorted(set(slices) - set(fold))
    rng.shuffle(others)
    for pid in others:
        f = int(np.argmin(load))
        fold[pid] = f
        load[f] += slices[pid]
    return fold


@dataclass
class SliceResult:
    """One evaluated slice: what the truth says and what the product said."""

    patient: str
    source: str
    has_liver: bool
    tumour_known: bool  # the slice has no unseparated (label 3) pixels
    has_tumour: bool
    detected: bool
    liver_dice: float
    tumour_dice: float
    stage_true: str | None
    stage_pred: str | None
    affected_true: float
    affected_pred: float


def _spacing(p: Patient) -> float:
    return p.spacing_mm if np.isfinite(p.spacing_mm) else CONTRACT.assumed_spacing_mm


def _stage(tumour: np.ndarray, liver: np.ndarray, spacing: tuple[float, float]):
    labels = lesion_labels(tumour, spacing)
    lesions = measure_lesions(labels, liver | (labels > 0), spacing)
    s = stage(lesions, liver_area_px=int((liver | (labels > 0)).sum()), tumor_area_px=int((labels > 0).sum()))
    return s.stage, s.affected_percent


def evaluate_patients(patients: list[Patient], segmenter, *, thresholds=(CONTRACT.tumor_threshold,),
                      batch_size: int = 16, window: tuple[float, float] | None = None
                      ) -> dict[float, list[SliceResult]]:
    """Every slice of `patients` (native size) through segment -> clean -> measure -> stage, for
    each tumour threshold (the network runs once; only post-processing repeats).  `window`: the
    HU window the network was trained with (default the contract's)."""
    window = window or (CONTRACT.window_center, CONTRACT.window_width)
    out: dict[float, list[SliceResult]] = {t: [] for t in thresholds}
    for p in patients:
        spacing = (_spacing(p), _spacing(p))
        for start in range(0, len(p.labels), 64):
            idx = range(start, min(start + 64, len(p.labels)))
            units = [window_hu(p.images[i], *window) if p.is_hu else display_to_network(p.images[i], *window)
                     for i in idx]
            segs = segment_many(units, segmenter, batch_size=batch_size,
                                check_mirror=[not p.is_hu] * len(units))
            for i, seg in zip(idx, segs):
                label = p.labels[i]
                gt_liver, gt_tumour = label > 0, label == 2
                known = not (label == UNSEPARATED).any()
                stage_true, aff_true = _stage(gt_tumour, gt_liver, spacing)
                for t in thresholds:
                    m = clean(seg.liver_prob, seg.tumor_prob, spacing, tumor_threshold=t)
                    stage_pred, aff_pred = _stage(m.tumor, m.liver, spacing)
                    out[t].append(SliceResult(
                        patient=str(p.patient_ids[i]), source=p.name, has_liver=bool(gt_liver.any()),
                        tumour_known=known, has_tumour=bool(gt_tumour.any()), detected=bool(m.tumor.any()),
                        liver_dice=dice(gt_liver, m.liver), tumour_dice=dice(gt_tumour, m.tumor),
                        stage_true=stage_true, stage_pred=stage_pred,
                        affected_true=aff_true, affected_pred=aff_pred))
    return out


def summarise(results: list[SliceResult]) -> dict:
    """The six figures over evaluated slices.  Tumour figures use only slices whose tumour label is
    known (no label 3); stage agreement and affected-% error are over the slices with tumour."""
    def mean(values):
        values = list(values)
        return float(np.mean(values)) if values else None

    known = [r for r in results if r.tumour_known]
    pos = [r for r in known if r.has_tumour]
    neg = [r for r in known if not r.has_tumour]
    return {
        "slices": len(results), "tumour_slices": len(pos), "tumour_free_slices": len(neg),
        "liver_slices": sum(r.has_liver for r in results),
        "patients": len({r.patient for r in results}),
        "tumour_dice": mean(r.tumour_dice for r in pos),
        "liver_dice": mean(r.liver_dice for r in results if r.has_liver),
        "sensitivity": mean(r.detected for r in pos),
        "specificity": mean(not r.detected for r in neg),
        "stage_agreement": mean(r.stage_pred == r.stage_true for r in pos),
        "affected_mae": mean(abs(r.affected_pred - r.affected_true) for r in pos),
    }


def fold_dir(out: Path, k: int, fold: int) -> Path:
    return Path(out) / f"fold{fold + 1}of{k}"


def run_cv(data: str, out: str | Path, *, k: int = 5, seed: int = 0, train_kwargs: dict | None = None,
           thresholds=(0.3, 0.4, 0.5), backend: str = "onnx", folds: list[int] | None = None,
           always_train: frozenset[str] = frozenset(), log: Callable[[str], None] = print) -> dict:
    """Train and evaluate each fold (resumable: a fold whose weights or figures exist is reused).

    Returns {"folds": {threshold: [figures per fold]}, "assignment": {patient: fold}, ...} and
    writes it to `out/cv.json`."""
    from ..analysis.model.runtime import Segmenter
    from .train import train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    native = load_patients(data, size=None)
    assignment = make_folds(native, k, seed, always_train)
    train_kwargs = dict(train_kwargs or {})
    per_threshold: dict[str, list] = {str(t): [None] * k for t in thresholds}
    for f in folds if folds is not None else range(k):
        held = sorted(pid for pid, g in assignment.items() if g == f)
        d = fold_dir(out, k, f)
        figures_path = d / "figures.json"
        saved = json.loads(figures_path.read_text()) if figures_path.is_file() else None
        if saved is None or not {str(t) for t in thresholds} <= set(saved["figures"]):
            weights = d / "cnn_weights.hdf5"
            if not weights.is_file():
                log(f"fold {f + 1}/{k}: training without {len(held)} patients")
                train(data, str(d), exclude_ids=held, verbose=0,
                      progress=lambda e, n, logs: log(f"fold {f + 1}/{k} epoch {e}/{n} " + " ".join(
                          f"{key} {v:.3f}" for key, v in logs.items())), **train_kwargs)
            meta = json.loads((d / "cnn_weights.json").read_text())
            leak = set(meta["trained_on_patients"]) & set(held)
            if leak:
                raise RuntimeError(f"fold {f + 1}: weights were trained on held-out patients {sorted(leak)}")
            log(f"fold {f + 1}/{k}: evaluating {len(held)} held-out patients")
            recipe = train_kwargs.get("recipe")  # measured in the window the fold was trained with
            results = evaluate_patients(without_others(native, set(held)), Segmenter(weights, backend=backend),
                                        thresholds=thresholds, window=recipe.window if recipe else None)
            saved = {"held_out": held, "train_seconds": meta.get("train_seconds"),
                     "figures": {str(t): summarise(r) for t, r in results.items()},
                     "slices": {str(t): [asdict(x) for x in r] for t, r in results.items()}}
            figures_path.write_text(json.dumps(saved))
        for t in per_threshold:
            per_threshold[t][f] = saved["figures"][t]
        log(f"fold {f + 1}/{k}: " + json.dumps(saved["figures"][str(CONTRACT.tumor_threshold)]))
    summary = {"k": k, "seed": seed, "thresholds": list(thresholds), "backend": backend,
               "always_train": sorted(always_train),
               "train": {key: asdict(v) if is_dataclass(v) else v for key, v in train_kwargs.items()},
               "assignment": assignment, "folds": per_threshold}
    (out / "cv.json").write_text(json.dumps(summary, indent=1))
    return summary


def without_others(patients: list[Patient], keep: set[str]) -> list[Patient]:
    """Only the slices of the `keep` patient ids."""
    others = {str(i) for p in patients for i in p.patient_ids} - keep
    return without(patients, others)


def mean_sd(values) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values))
