"""Partial tumour labels for the unseparated liver (label 3): the parenchyma that is surely not tumour.

Inside label 3 the tumour channel is unknown.  Liver metastases are hypodense, so pixels near the
liver's own grey (the mode of its histogram) and far from anything darker are normal parenchyma:
they become label 1 (liver, tumour known to be absent); everything else stays 3.  No tumour
pixel is invented: on the slices whose separation is known, darker-than-liver pixels as tumour
reached only 0.47 precision (`python -m TumorApp.training.pseudolabels` prints both checks).
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import cv2
import numpy as np

from .dataset import UNSEPARATED, Patient

NORMAL_BELOW_MODE_HU = 8.0   # parenchyma: no darker than the liver's mode by more than this
DARK_BELOW_MODE_HU = 15.0    # anything darker than this may be tumour ...
DARK_MARGIN_MM = 12.0        # ... and so may everything within this distance of it
SMOOTH_MM = 2.25             # Gaussian smoothing before comparing (JPEG and CT noise)


def _liver_mode(hu: np.ndarray, liver: np.ndarray) -> float:
    inner = cv2.erode(liver.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2).astype(bool)
    values = hu[inner] if inner.sum() > 50 else hu[liver]
    hist, edges = np.histogram(values, bins=256, range=(-100.0, 412.0))
    hist = np.convolve(hist, np.ones(7) / 7.0, mode="same")
    return float(edges[int(np.argmax(hist))] + (edges[1] - edges[0]) / 2)


def normal_parenchyma(hu: np.ndarray, liver: np.ndarray, spacing_mm: float) -> np.ndarray:
    """Pixels of `liver` (bool) that are surely not tumour, from the HU slice `hu`."""
    if liver.sum() < 50:
        return np.zeros_like(liver, dtype=bool)
    mode = _liver_mode(hu, liver)
    smooth = cv2.GaussianBlur(hu.astype(np.float32), (0, 0), SMOOTH_MM / spacing_mm)
    dark = ((smooth < mode - DARK_BELOW_MODE_HU) & liver).astype(np.uint8)
    reach = max(1, int(round(DARK_MARGIN_MM / spacing_mm)))
    near_dark = cv2.dilate(dark, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2)).astype(bool)
    return liver & (smooth >= mode - NORMAL_BELOW_MODE_HU) & ~near_dark


def with_normal_parenchyma(patient: Patient) -> Patient:
    """The source with the normal parenchyma of every label-3 slice relabelled 1 (tumour known absent)."""
    if not patient.is_hu or not (patient.labels == UNSEPARATED).any():
        return patient
    labels = patient.labels.copy()
    for i in np.flatnonzero((labels == UNSEPARATED).any(axis=(1, 2))):
        whole = labels[i] == UNSEPARATED
        labels[i][normal_parenchyma(patient.images[i], whole, patient.spacing_mm)] = 1
    return replace(patient, labels=labels)


def check(data: str) -> dict:
    """On the msd-slices whose tumour is separated: how much true tumour the rule calls normal."""
    from pathlib import Path

    from .dataset import read_msd

    p = read_msd(Path(data) / "msd-slices")
    known = [i for i in range(len(p.labels)) if (p.labels[i] > 0).any() and not (p.labels[i] == UNSEPARATED).any()]
    tumour = normal_on_tumour = liver = normal = 0
    for i in known:
        whole, t = p.labels[i] > 0, p.labels[i] == 2
        n = normal_parenchyma(p.images[i], whole, p.spacing_mm)
        tumour += t.sum(); normal_on_tumour += (n & t).sum(); liver += whole.sum(); normal += n.sum()
    return {"slices": len(known), "tumour_slices": int(sum((p.labels[i] == 2).any() for i in known)),
            "tumour_pixels_called_normal": float(normal_on_tumour / max(tumour, 1)),
            "liver_pixels_labelled": float(normal / max(liver, 1))}


if __name__ == "__main__":
    a = argparse.ArgumentParser(description=__doc__)
    a.add_argument("--data", default="../shared/data")
    print(check(a.parse_args().data))
