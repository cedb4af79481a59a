"""Measure each inference backend on this machine: masks against fp32 ORT, and speed.

The check slices are the calibration inputs (`model/calibration.npz`: training patients only).
Every backend segments them; its masks are compared with the reference's (`backend_choice.REFERENCE`)
after thresholding, and each output goes through the product's post-processing, measurement and
staging to compare the size stage.  Each output is mapped to a 512 px slice at the assumed
spacing, as an upload without spacing is, so the contract's mm sizes mean what they do there.
Then passes are timed, interleaved across backends so that load from elsewhere hits all alike.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np

from .config import CONTRACT, DEFAULT_WEIGHTS
from .model import backend_choice
from .model.backend_choice import Choice, Figures, choose
from .slice.measure import measure_lesions
from .slice.postprocess import clean
from .slice.preprocess import from_network_output
from .slice.staging import stage


SERIES_BATCH = 16  # what volume.py's batches look like to the network
CHECK_SIDE = 512  # each check output is staged as a 512 px slice (see the module docstring)
DEFAULT_REPEATS = 5
# A busy machine (load average above the cores) is waited for this long, in these steps, before
# the measurement runs anyway (and is marked, to be redone at a quiet start).
QUIET_WAIT_S = 30.0
QUIET_POLL_S = 2.0


def check_inputs(count: int | None = None) -> np.ndarray:
    """`count` calibration inputs spread evenly over the set (all when None), (N, S, S) in [0, 1]."""
    from .model.quantize import load_calibration

    inputs = load_calibration()["inputs"]
    if count is not None and count < len(inputs):
        inputs = inputs[np.linspace(0, len(inputs) - 1, max(1, count)).round().astype(int)]
    return inputs


def stage_label(probs: np.ndarray) -> str:
    """The product's stage label for one network output seen as a whole 512 px slice."""
    spacing = (CONTRACT.assumed_spacing_mm,) * 2
    full = from_network_output(probs, (CHECK_SIDE, CHECK_SIDE))
    masks = clean(full[..., 0], full[..., 1], spacing)
    lesions = measure_lesions(masks.tumor_labels, masks.liver, spacing)
    return stage(lesions, liver_area_px=int(masks.liver.sum()), tumor_area_px=int(masks.tumor.sum()),
                 liver_found=masks.liver_found).label


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def compare(got: np.ndarray, want: np.ndarray, want_stages: list[str]) -> tuple[float, float, int]:
    """(liver Dice, tumour Dice, stage changes) of outputs `got` against the reference's `want`."""
    liver = dice(got[..., 0] > CONTRACT.liver_threshold, want[..., 0] > CONTRACT.liver_threshold)
    tumor = dice(got[..., 1] > CONTRACT.tumor_threshold, want[..., 1] > CONTRACT.tumor_threshold)
    changes = sum(stage_label(g) != s for g, s in zip(got, want_stages))
    return liver, tumor, changes


def _run(segmenter, inputs: np.ndarray) -> np.ndarray:
    return np.concatenate([segmenter.predict(inputs[i:i + SERIES_BATCH])
                           for i in range(0, len(inputs), SERIES_BATCH)])


def _timed(segmenter, batch: np.ndarray) -> float:
    started = time.perf_counter()
    segmenter.predict(batch)
    return time.perf_counter() - started


def start_backends(weights: Path | str, names: list[str]) -> tuple[dict, dict[str, str]]:
    """name -> Segmenter for each backend that starts as itself; name -> why for the others."""
    from .model.runtime import Segmenter

    started, unavailable = {}, {}
    for name in names:
        try:
            segmenter = Segmenter(weights, backend=name)
        except Exception as exc:
            unavailable[name] = f"{type(exc).__name__}: {exc}"
            continue
        if segmenter.backend != name:
            unavailable[name] = f"could not start (fell back to {segmenter.backend})"
            continue
        started[name] = segmenter
    return started, unavailable


def measure(segmenters: dict, inputs: np.ndarray, *, repeats: int = DEFAULT_REPEATS) -> dict[str, Figures]:
    """Figures for each started backend (`segmenters` in registry order, the reference among them)."""
    reference = segmenters[backend_choice.REFERENCE]
    want = _run(reference, inputs)
    want_stages = [stage_label(w) for w in want]
    checks = {}
    for name, segmenter in segmenters.items():  # also warms every backend up at batch 16
        got = want if segmenter is reference else _run(segmenter, inputs)
        checks[name] = compare(got, want, want_stages)

    one = inputs[:1]
    series = np.resize(inputs, (SERIES_BATCH, *inputs.shape[1:]))  # repeats the inputs when fewer
    for segmenter in segmenters.values():
        segmenter.predict(one)  # batch-1 warm-up
    singles = {name: [] for name in segmenters}
    batches = {name: [] for name in segmenters}
    for _ in range(max(1, repeats)):
        for name, segmenter in segmenters.items():
            singles[name].append(_timed(segmenter, one))
            batches[name].append(_timed(segmenter, series))
    return {name: Figures(liver_dice=round(checks[name][0], 5), tumor_dice=round(checks[name][1], 5),
                          stage_changes=int(checks[name][2]),
                          ms_per_pass=round(1000 * statistics.median(singles[name]), 2),
                          slices_per_s=round(SERIES_BATCH / statistics.median(batches[name]), 2))
            for name in segmenters}


def machine_load() -> float:
    """The 1-minute load average per core (above 1: other work is queueing for the cores)."""
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def prepare(weights: Path | str = DEFAULT_WEIGHTS, *, check_slices: int | None = None,
            repeats: int = DEFAULT_REPEATS, remeasure: bool = False, measure_fn=None,
            load_fn=machine_load, quiet_wait_s: float = QUIET_WAIT_S, sleep=time.sleep) -> tuple[dict, bool]:
    """The record for this machine and weights: reused when its fingerprint matches, else measured
    and saved.  Returns (record, measured now).  `measure_fn(weights, check_slices, repeats)` ->
    (figures, unavailable) stands in for the real measurement in tests.

    Timings taken beside other work are wrong for as long as the record is reused, so the machine's
    load is read first: when it is above one per core, the measurement waits up to `quiet_wait_s`
    for it to fall, then measures anyway and marks the record `under_load`; such a record is
    measured again at the next start that finds the machine quiet."""
    parts = backend_choice.fingerprint_parts(weights)
    key = backend_choice.fingerprint(parts)
    if not remeasure:
        record = backend_choice.load_records().get(key)
        if record and not (record.get("under_load") and load_fn() <= 1.0):
            return record, False
    waited = 0.0
    while load_fn() > 1.0 and waited < quiet_wait_s:
        sleep(QUIET_POLL_S)
        waited += QUIET_POLL_S
    load = load_fn()
    figures, unavailable = (measure_fn or measure_here)(weights, check_slices, repeats)
    choice: Choice = choose(figures)
    record = backend_choice.make_record(parts, figures, choice, unavailable=unavailable,
                                        check_slices=len(check_inputs(check_slices)), repeats=repeats)
    if load > 1.0:
        record["under_load"] = round(load * (os.cpu_count() or 1), 2)  # the load average it was measured at
    backend_choice.save_record(key, record)
    return record, True


def measure_here(weights: Path | str, check_slices: int | None, repeats: int) -> tuple[dict[str, Figures], dict[str, str]]:
    """Start every candidate backend, measure those that started, then let them go."""
    from .model.runtime import candidates

    segmenters, unavailable = start_backends(weights, candidates())
    if backend_choice.REFERENCE not in segmenters:
        raise RuntimeError(f"the reference backend {backend_choice.REFERENCE} does not start: "
                           f"{unavailable.get(backend_choice.REFERENCE)}")
    try:
        return measure(segmenters, check_inputs(check_slices), repeats=repeats), unavailable
    finally:
        segmenters.clear()
