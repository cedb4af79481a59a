"""Read what `manage.py export_corrections` writes: corrected slices as training data (issue 10).

Layout of an export folder (one file per corrected analysis, plus a manifest):

    OUT_DIR/manifest.json              [{"file": "analysis-7.npz", "source_id": 7, "version": 2, ...}, ...]
    OUT_DIR/analysis-<id>.npz          image  (H, W) int16 HU when is_hu, else uint8 display 0..255
                                       label  (H, W) uint8 0 background, 1 liver, 2 tumour
                                       is_hu, spacing (row, col) mm, source_id, version, mirrored

`read_corrections` turns a folder into `Patient`s (dataset.py's shape): one for the HU slices and
one for the 8-bit display slices (a Patient is one or the other), each slice padded to a square
with air, resized to `size` and put in radiological orientation like every other training slice.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from .dataset import CACHE_SIZE, Patient

NAME = "corrections"
AIR_HU = -1024.0


def write_slice(path: Path, *, image: np.ndarray, label: np.ndarray, is_hu: bool,
                spacing_mm: tuple[float, float], source_id: int, version: int, mirrored: bool) -> None:
    """One corrected slice in the export layout (the writer lives here so reader and writer agree)."""
    stored = np.clip(np.round(image), -32768, 32767).astype(np.int16) if is_hu else \
        np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    np.savez_compressed(path, image=stored, label=label.astype(np.uint8), is_hu=is_hu,
                        spacing=np.asarray(spacing_mm, np.float64), source_id=source_id, version=version,
                        mirrored=mirrored)


def _square(image: np.ndarray, value: float) -> np.ndarray:
    h, w = image.shape
    side = max(h, w)
    out = np.full((side, side), value, image.dtype)
    out[:h, :w] = image
    return out


def read_corrections(root: Path | str, size: int | None = CACHE_SIZE) -> list[Patient]:
    """The export folder's slices as `Patient`s named "corrections-hu" / "corrections-display"
    (only those that have slices); spacing is the median in-plane spacing at the stored size."""
    root = Path(root)
    manifest = json.loads((root / "manifest.json").read_text())
    groups: dict[bool, list[tuple[np.ndarray, np.ndarray, float]]] = {True: [], False: []}
    for entry in manifest:
        with np.load(root / entry["file"]) as d:
            is_hu = bool(d["is_hu"])
            image = d["image"].astype(np.float32)
            image = image if is_hu else image / 255.0
            label = d["label"].astype(np.uint8)
            if bool(d["mirrored"]):  # into radiological orientation, as dataset.read_seed does
                image, label = image[:, ::-1], label[:, ::-1]
            spacing = float(np.mean(d["spacing"]))
        side = max(label.shape)
        image = _square(np.ascontiguousarray(image), AIR_HU if is_hu else 0.0)
        label = _square(np.ascontiguousarray(label), 0)
        target = size or side
        if side != target:
            image = cv2.resize(image, (target, target), interpolation=cv2.INTER_AREA)
            label = cv2.resize(label, (target, target), interpolation=cv2.INTER_NEAREST)
        groups[is_hu].append((image, label, spacing * side / target))
    patients = []
    for is_hu, items in ((True, groups[True]), (False, groups[False])):
        if not items:
            continue
        sizes = {i[0].shape for i in items}
        if len(sizes) > 1:  # size=None keeps native sizes, which must then agree to stack
            raise ValueError(f"Slices of different sizes {sorted(sizes)}: read with a size.")
        patients.append(Patient(f"{NAME}-{'hu' if is_hu else 'display'}",
                                np.stack([i[0] for i in items]).astype(np.float32),
                                np.stack([i[1] for i in items]), is_hu=is_hu, full_field=True,
                                spacing_mm=float(np.median([i[2] for i in items]))))
    return patients
