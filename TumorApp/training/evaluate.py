"""Held-out evaluation through the product's own inference path (segment -> post-process).

Figures are only ever computed on a patient the weights were not trained on: the weights'
metadata file (`<weights stem>.json`, written by training) lists the training patients, and
evaluating on one of them is refused.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..analysis.config import CONTRACT
from ..analysis.model.network import weights_metadata
from ..analysis.model.runtime import Segmenter
from ..analysis.slice.postprocess import clean
from ..analysis.slice.preprocess import display_to_network, window_hu
from ..analysis.slice.segment import segment_many
from .dataset import load_patients
from .metrics import summarise


class TrainedOnHoldout(ValueError):
    pass


def check_held_out(weights: Path, holdout: str) -> dict:
    meta = weights_metadata(weights)
    if "trained_on" not in meta:
        raise TrainedOnHoldout(f"{weights}: no metadata saying which patients it was trained on")
    if holdout in meta["trained_on"] or holdout in meta.get("trained_on_patients", []):
        raise TrainedOnHoldout(f"{weights} was trained on {holdout}: its figures there would not be held-out")
    return meta


def evaluate(data: str | Path, holdout: str, weights: str | Path, *, second_pass: bool = True,
             batch_size: int = 16) -> dict:
    """Slice-level figures of `weights` on every stored slice of the held-out patient, at native size."""
    meta = check_held_out(Path(weights), holdout)
    window = meta.get("input_window")
    if window and tuple(window) != (CONTRACT.window_center, CONTRACT.window_width):
        # the upload columns run the app's own path, which windows as the contract says
        raise TrainedOnHoldout(f"{weights} was trained for the HU window {window}, the app's contract is "
                               f"{[CONTRACT.window_center, CONTRACT.window_width]}: its figures would be wrong")
    patient = load_patients(data, [holdout], size=None)[0]
    units = [window_hu(s) if patient.is_hu else display_to_network(s) for s in patient.images]
    spacing = patient.spacing_mm if np.isfinite(patient.spacing_mm) else CONTRACT.assumed_spacing_mm
    segs = segment_many(units, Segmenter(weights), second_pass=second_pass, batch_size=batch_size,
                        check_mirror=[not patient.is_hu] * len(units))
    masks = [clean(s.liver_prob, s.tumor_prob, (spacing, spacing)) for s in segs]
    # Slice score for the ROC curve: the highest tumour probability inside the (dilated) liver.
    scores = [float((s.tumor_prob * m.liver).max(initial=0.0)) for s, m in zip(segs, masks)]
    figures = summarise(patient.labels > 0, patient.labels == 2,
                        np.stack([m.liver for m in masks]), np.stack([m.tumor for m in masks]), scores)
    figures.update(holdout=holdout, trained_on=meta["trained_on"], second_pass=second_pass,
                   weights=str(weights), spacing_mm=spacing)
    return figures


def evaluate_uploads(files: list[Path], labels: list[np.ndarray], weights: str | Path) -> dict:
    """The same figures for whole uploads (e.g. DICOM files, or their PNG exports) via `analyze`."""
    from ..analysis.slice.pipeline import analyze

    seg = Segmenter(weights)
    results = [analyze(f, filename=f.name, segmenter=seg, render_images=False) for f in files]
    gt = np.stack(labels)
    scores = [r.affected_percent for r in results]
    return summarise(gt > 0, gt == 2, np.stack([r.liver_mask > 0 for r in results]),
                     np.stack([r.tumor_mask > 0 for r in results]), scores)


def plot_confusion(figures: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = figures["confusion"]
    grid = np.array([[c["tp"], c["fn"]], [c["fp"], c["tn"]]])
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.imshow(grid, cmap="Blues")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=14,
                color="white" if v > grid.max() / 2 else "black")
    ax.set_xticks([0, 1], ["detected", "not detected"])
    ax.set_yticks([0, 1], ["tumour", "no tumour"])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
