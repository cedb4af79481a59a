"""Read what `manage.py export_corrections` writes: corrected slices as training data (issue 10).

Layout of an export folder (one file per corrected analysis, plus a manifest):

    OUT_DIR/manifest.json              [{"file": "analysis-7.npz", "source_id": 7, "version": 2, ...}, ...]
    OUT_DIR/analysis-<id>.npz          image  (H, W) int16 HU when is_hu, else uint8 display 0..255
                                       label  (H, W) uint8 0 background, 1 liver, 2 tumour
                                       is_hu, spacing (row, col) mm, source_id, version, mirrored
    OUT_DIR/series-<id>.npz            a corrected series (issue 20; manifest "kind": "series"):
                                       image (N, H, W) int16 HU, label (N, H, W) uint8 of the N slices
                                       whose labels the correction changed, slices (N,) their
                                       indices, spacing (row, col) mm, source_id, version

`read_corrections` turns a folder into `Patient`s (dataset.py's shape): one for the HU slices and
one for the 8-bit display slices (a Patient is one or the other), and one per corrected series
("corrections-series-<id>": its slices are one patient's, kept together by patient-grouped
cross-validation); each slice padded to a square with air, resized to `size` and put in
radiological orientation like every other training slice (series slices already are).
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


def write_series(path: Path, *, images: np.ndarray, labels: np.ndarray, slices: list[int],
                 spacing_mm: tuple[float, float], source_id: int, version: int) -> None:
    """A corrected series' changed slices in the export layout (HU, radiological orientation)."""
    np.savez_compressed(path, image=np.clip(np.round(images), -32768, 32767).astype(np.int16),
                        label=labels.astype(np.uint8), slices=np.asarray(slices, np.int32), is_hu=True,
                        spacing=np.asarray(spacing_mm, np.float64), source_id=source_id, version=version,
                        mirrored=False)


def _square(image: np.ndarray, value: float) -> np.ndarray:
    h, w = image.shape
    side = max(h, w)
    out = np.full((side, side), value, image.dtype)
    out[:h, :w] = image
    return out


def _to_size(image: np.ndarray, label: np.ndarray, is_hu: bool, spacing: float,
             size: int | None) -> tuple[np.ndarray, np.ndarray, float]:
    """One slice padded to a square (air) and resized to `size`; the spacing at that size."""
    side = max(label.shape)
    image = _square(np.ascontiguousarray(image), AIR_HU if is_hu else 0.0)
    label = _square(np.ascontiguousarray(label), 0)
    target = size or side
    if side != target:
        image = cv2.resize(image, (target, target), interpolation=cv2.INTER_AREA)
        label = cv2.resize(label, (target, target), interpolation=cv2.INTER_NEAREST)
    return image, label, spacing * side / target


def _patient(name: str, items: list, is_hu: bool) -> Patient:
    sizes = {i[0].shape for i in items}
    if len(sizes) > 1:  # size=None keeps native sizes, which must then agree to stack
        raise ValueError(f"Slices of different sizes {sorted(sizes)}: read with a size.")
    return Patient(name, np.stack([i[0] for i in items]).astype(np.float32), np.stack([i[1] for i in items]),
                   is_hu=is_hu, full_field=True, spacing_mm=float(np.median([i[2] for i in items])))


def read_corrections(root: Path | str, size: int | None = CACHE_SIZE) -> list[Patient]:
    """The export folder's slices as `Patient`s named "corrections-hu" / "corrections-display"
    (only those that have slices) and "corrections-series-<id>" per corrected series; spacing is
    the median in-plane spacing at the stored size."""
    root = Path(root)
    manifest = json.loads((root / "manifest.json").read_text())
    groups: dict[bool, list[tuple[np.ndarray, np.ndarray, float]]] = {True: [], False: []}
    series = []
    for entry in manifest:
        with np.load(root / entry["file"]) as d:
            is_hu = bool(d["is_hu"])
            image = d["image"].astype(np.float32)
            image = image if is_hu else image / 255.0
            label = d["label"].astype(np.uint8)
            spacing = float(np.mean(d["spacing"]))
            if entry.get("kind") == "series":  # already radiological, always HU
                items = [_to_size(image[k], label[k], True, spacing, size) for k in range(len(label))]
                if items:
                    series.append(_patient(f"{NAME}-series-{entry['source_id']}", items, True))
                continue
            if bool(d["mirrored"]):  # into radiological orientation, as dataset.read_seed does
                image, label = image[:, ::-1], label[:, ::-1]
        groups[is_hu].append(_to_size(image, label, is_hu, spacing, size))
    patients = [_patient(f"{NAME}-{'hu' if is_hu else 'display'}", groups[is_hu], is_hu)
                for is_hu in (True, False) if groups[is_hu]]
    return patients + series
