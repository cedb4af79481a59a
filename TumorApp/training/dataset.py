"""Read every training source into one shape: slices in [0, 1] display scale or HU, labels 0/1/2/3.

Sources: four whole patients (seed, ircadb-01, ircadb-07, lits-117), `msd-slices`, a few
slices each of 118 more patients, and `ircadb-png`, 28 slices of 13 of those patients with
separate tumour labels.  Label 3 (msd-slices) is "liver or tumour, not separated": it
teaches the whole liver, and says nothing about tumour inside it (`augment.targets` masks it).
Every slice carries the id of its patient (`Patient.patient_ids`) so that splits are by patient.

Every slice comes out in radiological orientation (patient's right, the liver, on the image
left), because the network is trained without left-right flips so it can use position.
Raw HU is kept for the HU sources so augmentation can vary the window.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

PATIENTS = ("seed", "ircadb-01", "ircadb-07", "lits-117", "msd-slices", "ircadb-png")  # the sources
UNSEPARATED = 3  # label value: whole liver, tumour not separated from it
CACHE_SIZE = 256  # slices are stored at this size; the network sees 128x128 views of them
# The cache stores HU as uint8 in 2 HU steps over -200..310 HU: every window the training uses
# (W400/L40 and 0..255 HU, with their jitter) lies inside, and the cache is small enough to
# travel to a lent GPU machine with the repository.
CACHE_HU_LOW, CACHE_HU_STEP = -200.0, 2.0


@dataclass
class Patient:
    name: str
    images: np.ndarray      # (N, S, S): HU as float32 if is_hu else display values in [0, 1]
    labels: np.ndarray      # (N, S, S) uint8: 0 background, 1 liver, 2 tumour
    is_hu: bool
    full_field: bool        # False for a crop around the liver (lits-117)
    spacing_mm: float       # in-plane spacing at the stored size (nan: unknown)
    patient_ids: np.ndarray | None = None  # (N,) str: the patient of each slice (default: name)
    clipped_hu: bool = False  # HU already clipped to 0..255 (msd-slices): no clip augmentation

    def __post_init__(self):
        if self.patient_ids is None:
            self.patient_ids = np.full(len(self.labels), self.name, dtype=object)

    def subset(self, keep: np.ndarray) -> "Patient":
        """The same source restricted to the slices where `keep` (bool or indices) holds."""
        return Patient(self.name, self.images[keep], self.labels[keep], self.is_hu, self.full_field,
                       self.spacing_mm, np.asarray(self.patient_ids)[keep], self.clipped_hu)

    @property
    def tumour_slices(self) -> np.ndarray:
        return np.flatnonzero((self.labels == 2).any(axis=(1, 2)))


def _resize_stack(stack: np.ndarray, size: int | None, nearest: bool) -> np.ndarray:
    if size is None or stack.shape[1:] == (size, size):
        return stack
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return np.stack([cv2.resize(s, (size, size), interpolation=interp) for s in stack])


def _near_liver(labels: np.ndarray, margin: int) -> np.ndarray:
    """Indices of slices with liver plus `margin` slices either side (heart, spleen, bowel negatives)."""
    has = np.flatnonzero(labels.reshape(len(labels), -1).max(1) > 0)
    lo, hi = max(has.min() - margin, 0), min(has.max() + margin, len(labels) - 1)
    return np.arange(lo, hi + 1)


def read_seed(root: Path, size: int | None = CACHE_SIZE) -> Patient:
    """The original app's slices: mirrored, mangled intensities, masks 255 liver / 254 tumour."""
    names = sorted((root / "images").glob("*.png"), key=lambda p: int(p.stem))
    masks = np.stack([cv2.imread(str(root / "mask" / p.name), cv2.IMREAD_GRAYSCALE) for p in names])
    labels = np.where(masks == 254, 2, np.where(masks > 0, 1, 0)).astype(np.uint8)
    keep = _near_liver(labels, margin=12)
    images = np.stack([cv2.imread(str(names[i]), cv2.IMREAD_GRAYSCALE) for i in keep])
    images = images[:, :, ::-1].astype(np.float32) / 255.0          # mirror into radiological view
    labels = labels[keep][:, :, ::-1]
    return Patient("seed", _resize_stack(np.ascontiguousarray(images), size, False),
                   _resize_stack(np.ascontiguousarray(labels), size, True),
                   is_hu=False, full_field=True, spacing_mm=0.75 * 512 / (size or 512))


def read_ircadb(root: Path, size: int | None = CACHE_SIZE) -> Patient:
    """A whole 3D-IRCADb patient (ircadb-01 with tumours, ircadb-07 without)."""
    d = np.load(root / "volume.npz")
    ct, labels = d["ct"].astype(np.float32), d["label"].astype(np.uint8)
    spacing = float(d["spacing"][1]) * ct.shape[1] / (size or ct.shape[1])
    return Patient(root.name, _resize_stack(ct, size, False), _resize_stack(labels, size, True),
                   is_hu=True, full_field=True, spacing_mm=spacing)


def read_msd(root: Path, size: int | None = CACHE_SIZE) -> Patient:
    """msd-slices: 256 px slices of 118 patients, HU clipped to 0..255, label 3 = unseparated.

    No pixel spacing is stored; the source slices were 512 px at roughly 0.6-0.9 mm, so about
    1.5 mm at 256 px (used only where a size in mm is needed, e.g. staging in evaluation)."""
    d = np.load(root / "slices.npz")
    images, labels = d["image"].astype(np.float32), d["label"].astype(np.uint8)
    ids = np.array([f"msd-{v}" for v in d["volume"]], dtype=object)
    spacing = 1.5 * images.shape[1] / (size or images.shape[1])
    return Patient("msd-slices", _resize_stack(images, size, False), _resize_stack(labels, size, True),
                   is_hu=True, full_field=True, spacing_mm=spacing, patient_ids=ids, clipped_hu=True)


def read_lits(root: Path, size: int | None = CACHE_SIZE) -> Patient:
    """A 128^3 crop around the liver; axis 2 is axial and each slice needs a transpose."""
    d = np.load(root / "volume.npz")
    ct = np.ascontiguousarray(np.transpose(d["ct"], (2, 1, 0))).astype(np.float32)
    labels = np.ascontiguousarray(np.transpose(d["label"], (2, 1, 0))).astype(np.uint8)
    return Patient("lits-117", _resize_stack(ct, size, False), _resize_stack(labels, size, True),
                   is_hu=True, full_field=False, spacing_mm=float("nan"))


# ircadb-png's grey read as `8 * grey - 1024` is right only where the slice's min-max scaling
# happened to span -1024..1016 HU; a slice whose liver then falls outside this range was scaled
# otherwise and would teach a wrong density, so it is left out.
PNG_LIVER_HU = (60.0, 180.0)


def read_ircadb_png(root: Path, size: int | None = CACHE_SIZE) -> Patient:
    """ircadb-png: 512 px 8-bit slices of 13 3D-IRCADb patients, grey min-max scaled per slice.

    Grey is mapped to HU as `8 * grey - 1024` (right for most slices, its README says), so the
    slices go through the same window as every HU input; the slices where that mapping puts
    the normal liver's median outside `PNG_LIVER_HU` are dropped.  Each slice carries the
    msd-slices patient id of the same IRCADb patient, so splits keep them together."""
    d = np.load(root / "slices.npz")
    hu = d["image"].astype(np.float32) * 8.0 - 1024.0
    labels = d["label"].astype(np.uint8)
    liver_hu = np.array([np.median(h[l == 1]) if (l == 1).any() else np.nan for h, l in zip(hu, labels)])
    keep = (liver_hu >= PNG_LIVER_HU[0]) & (liver_hu <= PNG_LIVER_HU[1])
    msd = np.load(root.parent / "msd-slices" / "slices.npz")
    volume_of = {int(i): int(v) for i, v in zip(msd["ircadb_patient"], msd["volume"]) if i}
    ids = np.array([f"msd-{volume_of[int(n)]}" if int(n) in volume_of else f"ircadb-{int(n):02d}"
                    for n in d["patient"]], dtype=object)
    spacing = 0.75 * 512 / (size or 512)  # IRCADb in-plane spacing is about 0.6-0.9 mm
    return Patient("ircadb-png", _resize_stack(hu[keep], size, False), _resize_stack(labels[keep], size, True),
                   is_hu=True, full_field=True, spacing_mm=spacing, patient_ids=ids[keep])


READERS = {"seed": read_seed, "ircadb-01": read_ircadb, "ircadb-07": read_ircadb, "lits-117": read_lits,
           "msd-slices": read_msd, "ircadb-png": read_ircadb_png}


def load_patients(data_dir: Path | str, names=PATIENTS, cache: Path | str | None = None,
                  size: int | None = CACHE_SIZE) -> list[Patient]:
    """Read the named patients (slices resized to `size`, None: native), or an .npz cache from `save_cache`."""
    if cache and Path(cache).is_file():
        d = np.load(cache)
        out = []
        for n in (n for n in names if f"{n}/is_hu" in d):  # the sources the cache holds
            is_hu = bool(d[f"{n}/is_hu"])
            images = d[f"{n}/images"].astype(np.float32)
            if is_hu:
                images = images * CACHE_HU_STEP + CACHE_HU_LOW
            ids = d[f"{n}/patient_ids"].astype(object) if f"{n}/patient_ids" in d else None
            out.append(Patient(n, images if is_hu else images / 255.0, d[f"{n}/labels"], is_hu,
                               bool(d[f"{n}/full_field"]), float(d[f"{n}/spacing"]), ids,
                               bool(d[f"{n}/clipped_hu"]) if f"{n}/clipped_hu" in d else False))
        return out
    data_dir = Path(data_dir)
    return [READERS[n](data_dir / n, size) for n in names]


def save_cache(patients: list[Patient], path: Path | str) -> None:
    arrays = {}
    for p in patients:
        if p.is_hu:
            images = np.round((np.clip(p.images, CACHE_HU_LOW, CACHE_HU_LOW + 255 * CACHE_HU_STEP) - CACHE_HU_LOW)
                              / CACHE_HU_STEP).astype(np.uint8)
        else:
            images = np.round(p.images * 255).astype(np.uint8)
        arrays.update({f"{p.name}/images": images, f"{p.name}/labels": p.labels,
                       f"{p.name}/is_hu": p.is_hu, f"{p.name}/full_field": p.full_field,
                       f"{p.name}/spacing": p.spacing_mm, f"{p.name}/clipped_hu": p.clipped_hu,
                       f"{p.name}/patient_ids": np.asarray(p.patient_ids, dtype=str)})
    np.savez_compressed(path, **arrays)


def all_patient_ids(patients: list[Patient]) -> list[str]:
    """Every patient id in these sources, in a stable order."""
    return sorted({str(i) for p in patients for i in p.patient_ids})


def without(patients: list[Patient], excluded: set[str]) -> list[Patient]:
    """The sources with every slice of the `excluded` patient ids removed (empty sources dropped)."""
    out = []
    for p in patients:
        keep = np.array([str(i) not in excluded for i in p.patient_ids], dtype=bool)
        if keep.any():
            out.append(p if keep.all() else p.subset(keep))
    return out
