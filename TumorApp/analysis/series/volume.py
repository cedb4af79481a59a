"""A whole CT series: DICOM files / a zip / a NIfTI volume -> HU volume -> per-slice masks -> 3-D lesions.

No Django.  One entry point, `analyze_series(source)`, shared by `manage.py analyze_series`, the
background worker and the bench; it reuses the single-slice stages (`segment_many` batched,
`clean` per slice) and adds what only a volume has: 3-D connected lesions in mL.

Conventions (also in docs/series.md):

* The volume is (z, y, x) in radiological orientation: image left = patient right, image top =
  anterior, slice 0 = the most inferior (feet) slice.  Slice numbers in the JSON are 0-based
  indices in that order.  DICOM slices are ordered by ImagePositionPatient projected on the slice
  normal, never by file name.
* Spacing (z, y, x) in mm: z from the slice positions (SliceThickness only for a single slice),
  y/x from PixelSpacing; NIfTI from the header's zooms.
* Lesions are 26-connected components of the tumour mask over the whole volume (a lesion seen on
  adjacent slices is one lesion, however its outline shifts).  Volume = voxels x voxel volume;
  longest axial diameter = the largest per-slice `feret_diameter_max` (scikit-image, mm);
  side/part compare the lesion's centroid with the middle of the whole liver's extent (as the
  single-slice rule does); the stage comes from the longest of those diameters.
* Reading: one file at a time through the slice reader's DICOM rules (`loading.read_dicom`: every
  budget from the header before decoding), the series budgets (`series_input.py`: files, bytes,
  voxels) before any pixel is decoded; each file's pixels go into one int16 array as it is read,
  put in volume order in place once every position is known.
  NIfTI: `nifti.py`, header first.  `check_series` is the upload check: headers, then the
  single-slice input check (`plausibility.py`) on a few decoded slices.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.measure import regionprops

from ..errors import InputError
from ..io.loading import CTSlice, check_modality_lut, decode_frame, dicom_spacing, modality_lut, read_dicom
from ..io.nifti import read as read_nifti
from ..slice.plausibility import check as check_plausible
from ..slice.postprocess import clean
from ..slice.preprocess import window_hu
from ..slice.segment import SegmenterLike, segment_many
from ..io.series_input import (MAX_FILE_BYTES, MAX_SERIES_VOXELS, MAX_SLICES, Item, SeriesFile, open_files,
                               sample_indices)
from ..slice.staging import Staging, stage, stage_for_diameter
# Direction cosines this close to an axis count as axial (about 8 degrees of gantry tilt).
AXIAL_TOLERANCE = 0.99
# Slice steps may differ from the median by this fraction before we call it a gap.
STEP_TOLERANCE = 0.2


@dataclass
class SeriesVolume:
    """A loaded series in radiological orientation; `hu` is int16 HU (z, y, x)."""

    hu: np.ndarray
    spacing_mm: tuple[float, float, float]  # z, y, x
    kind: str  # "dicom" / "nifti"
    # DICOM: the slices' headers (no pixel data) in volume order, and how the stored pixel grid
    # was flipped to reach radiological orientation (rows, cols), to undo for export.
    datasets: list = field(default_factory=list)
    flips: tuple[bool, bool] = (False, False)
    nifti: object | None = None  # NIfTI: the upload's affine and header (`nifti.NiftiSource`)
    notes: list[str] = field(default_factory=list)

    @property
    def slices(self) -> int:
        return int(self.hu.shape[0])


@dataclass(frozen=True)
class Lesion3D:
    voxels: int
    volume_ml: float
    max_diameter_mm: float
    max_diameter_slice: int
    slice_range: tuple[int, int]
    centroid_mm: tuple[float, float, float]  # z, y, x from the volume's first voxel
    side: str  # patient's "right" / "left"
    part: str  # "anterior" / "posterior"


@dataclass
class SeriesResult:
    volume: SeriesVolume
    liver: np.ndarray  # bool (z, y, x), tumours included
    tumor: np.ndarray  # bool (z, y, x)
    # The lesions' labels (0, 1..n in the order of `lesions`) within `lesion_box`, the tumours'
    # bounding box: a whole-volume copy would cost 4 bytes a voxel (`lesion_labels` makes one).
    lesion_box: tuple[slice, ...]
    lesion_box_labels: np.ndarray
    lesions: list[Lesion3D]
    liver_volume_ml: float
    tumor_volume_ml: float
    stage: str | None
    inference: str = ""  # which backend ran, e.g. "onnx-int8 on CPU" (runtime.describe); "" for a fake

    @property
    def tumor_burden_percent(self) -> float:
        return 100.0 * self.tumor_volume_ml / self.liver_volume_ml if self.liver_volume_ml > 0 else 0.0

    @property
    def staging(self) -> Staging:
        """The single-slice staging rule (`staging.stage`): no liver anywhere is inconclusive, not
        "no tumour"."""
        return stage(self.lesions, liver_area_px=int(self.liver.sum()), tumor_area_px=int(self.tumor.sum()),
                     liver_found=bool(self.liver.any()), where="series")

    @property
    def stage_label(self) -> str:
        return self.staging.label

    @property
    def inconclusive(self) -> bool:
        return self.staging.inconclusive

    @property
    def lesion_labels(self) -> np.ndarray:
        """int32 (z, y, x): 0, 1..n in the order of `lesions`."""
        labels = np.zeros(self.tumor.shape, dtype=np.int32)
        labels[self.lesion_box] = self.lesion_box_labels
        return labels

    def label_volume(self) -> np.ndarray:
        """uint8 (z, y, x): 0 background, 1 liver, 2 tumour."""
        labels = self.liver.astype(np.uint8)
        labels[self.tumor] = 2
        return labels

    def label_slice(self, k: int) -> np.ndarray:
        """Slice k of `label_volume()`, for writers that need no whole-volume copy."""
        labels = self.liver[k].astype(np.uint8)
        labels[self.tumor[k]] = 2
        return labels

    def to_dict(self) -> dict:
        """The JSON contract of `manage.py analyze_series --json` and `GET /api/series/<id>/`."""
        return {
            "slices": self.volume.slices,
            "spacing_mm": [round(v, 4) for v in self.volume.spacing_mm],
            "liver_volume_ml": round(self.liver_volume_ml, 2),
            "tumor_volume_ml": round(self.tumor_volume_ml, 2),
            "tumor_burden_percent": round(self.tumor_burden_percent, 2),
            "stage": self.stage,
            "inconclusive": self.inconclusive,
            "lesions": [{
                "volume_ml": round(les.volume_ml, 3),
                "max_diameter_mm": round(les.max_diameter_mm, 2),
                "max_diameter_slice": les.max_diameter_slice,
                "slice_range": list(les.slice_range),
                "centroid_mm": [round(v, 1) for v in les.centroid_mm],
                "side": les.side,
                "part": les.part,
            } for les in self.lesions],
        }


# --- input -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SeriesCheck:
    """What the upload check found: enough to queue a job (kind, slices), nothing decoded in bulk."""

    kind: str  # "dicom" / "nifti"
    slices: int
    shape: tuple[int, int, int]  # z, y, x
    spacing_mm: tuple[float, float, float]


def _lone_nifti(files):
    """The upload's NIfTI file, or None for DICOM; refuses an empty upload or a NIfTI among others."""
    if not files:
        raise InputError("No files were given (the zip or folder is empty).")
    nifti = [f for f in files if f.is_nifti]
    if nifti and len(files) > 1:
        raise InputError("Upload one NIfTI volume on its own, or DICOM files, not both or several.")
    return nifti[0] if nifti else None


def check_series(source: str | Path | Sequence[Item]) -> SeriesCheck:
    """Validate an upload as one analysable series without decoding it: every file's headers
    against the budgets (files, bytes, voxels, per-slice rules of `loading.read_dicom`), the series'
    geometry, then the slice input check (`plausibility.check`) on a few decoded slices, so blank,
    noise and non-CT series are refused here.  InputError for anything we would refuse later."""
    with open_files(source) as files:
        nifti = _lone_nifti(files)
        if nifti:
            found = read_nifti(nifti, sample=True)
            _check_plausible(found.samples, found.shape[0], found.spacing_mm[1:])
            return SeriesCheck("nifti", found.shape[0], found.shape, found.spacing_mm)
        plan = _dicom_plan(files)
        samples = {k: _decode_slice(plan, k) for k in sample_indices(plan.slices)}
        _check_plausible(samples, plan.slices, plan.spacing_mm[1:])
        return SeriesCheck("dicom", plan.slices, (plan.slices, plan.rows, plan.cols), plan.spacing_mm)


def load_series(source: str | Path | Sequence[Item], *, hu: np.ndarray | None = None,
                check: bool = False) -> SeriesVolume:
    """A path (folder, zip, NIfTI, DICOM) or uploaded (name, bytes or file) items -> `SeriesVolume`.

    Every file is read once: its headers against every budget, then its pixels into the volume
    (allocated from the first file and the count, within the voxel budget), reordered in place once
    the slice positions are known.  `check`: the upload check's slice test as well (`check_series`
    runs it on the same slices), so a job reads its files once, not once to check and once to load.
    `hu`: this series' volume decoded before (a finished job's stored CT, memory-mapped), taken
    instead of decoding the series again when its shape fits; an export needs only the headers."""
    with open_files(source) as files:
        nifti = _lone_nifti(files)
        if nifti:
            if hu is not None:  # the stored volume stands for the voxels: only the header is needed
                found = read_nifti(nifti, sample=True)
                if tuple(found.shape) == tuple(hu.shape):
                    return SeriesVolume(hu=hu, spacing_mm=found.spacing_mm, kind="nifti", nifti=found.source)
            found = read_nifti(nifti)
            if check:
                _check_plausible({k: found.hu[k] for k in sample_indices(found.shape[0])}, found.shape[0],
                                 found.spacing_mm[1:])
            _check_hu_percentiles(found.hu, nifti.name)
            return SeriesVolume(hu=found.hu, spacing_mm=found.spacing_mm, kind="nifti", nifti=found.source)
        plan = _dicom_plan(files, decode=hu is None)
        shape = (plan.slices, plan.rows, plan.cols)
        if plan.hu is not None:
            hu = plan.hu
        elif hu is None or tuple(hu.shape) != shape:
            hu = np.empty(shape, dtype=np.int16)
            for k in range(plan.slices):
                hu[k] = _decode_slice(plan, k)
        if check:
            _check_plausible({k: hu[k] for k in sample_indices(plan.slices)}, plan.slices, plan.spacing_mm[1:])
        notes = []
        if any(plan.flips):
            notes.append("The slices were flipped to radiological orientation for analysis.")
        return SeriesVolume(hu=hu, spacing_mm=plan.spacing_mm, kind="dicom", datasets=[s.ds for s in plan.order],
                            flips=plan.flips, notes=notes)


def _check_plausible(samples: dict[int, np.ndarray], total: int, spacing_yx) -> None:
    """The single-slice input check on the sampled slices: refused when most of them fail."""
    failures = []
    for k, plane in sorted(samples.items()):
        ct = CTSlice(plane.astype(np.float32), True, tuple(float(v) for v in spacing_yx), "series", 16)
        try:
            check_plausible(ct)
        except InputError as exc:
            failures.append((k, exc))
    if failures and 2 * len(failures) > len(samples):
        k, exc = failures[0]
        raise InputError(f"The series does not look like CT of a body: {len(failures)} of the {len(samples)} "
                         f"slices checked were refused (slice {k + 1} of {total}: {exc})")


def _check_hu_percentiles(hu: np.ndarray, name: str) -> None:
    lo, hi = np.percentile(hu[:, ::8, ::8], [1, 99])
    if not (lo <= -500 and hi >= -200):
        raise InputError(f"{name} does not look like CT in Hounsfield units (1st/99th percentiles "
                         f"{lo:.0f}/{hi:.0f}).")


# --- DICOM -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Slice:
    file: SeriesFile
    ds: object  # the header, pixel data removed


@dataclass
class _DicomPlan:
    """A DICOM series read from its headers: slices in volume order and how to place their pixels."""

    order: list[_Slice]  # volume order (slice 0 the most inferior)
    rows: int
    cols: int
    spacing_mm: tuple[float, float, float]
    flips: tuple[bool, bool]  # (rows, cols) flipped to radiological orientation
    hu: np.ndarray | None = None  # int16 (z, y, x) in volume order, when decoded with the headers

    @property
    def slices(self) -> int:
        return len(self.order)


def _read_file(f: SeriesFile):
    """One file through the shared DICOM reader (`loading.read_dicom`: every per-file budget), with
    the series' own rules; (dataset with pixel data, raw size)."""
    raw = f.read()
    try:
        ds, frames = read_dicom(raw, f.name, max_inflated=MAX_FILE_BYTES)
    except InputError as exc:
        if raw[128:132] != b"DICM":
            raise InputError(f"{f.name} is not a DICOM file we can read; upload the slices of one CT series "
                             "(DICOM files or one zip) or one NIfTI volume.") from exc
        raise InputError(f"{f.name}: {exc}") from exc
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality not in ("CT", ""):
        raise InputError(f"{f.name} is a {modality} image; only CT series can be analysed.")
    if frames > 1:
        raise InputError(f"{f.name} is a multi-frame image; upload single-slice CT files.")
    if _int(ds, "SamplesPerPixel", 1, f.name) != 1:
        raise InputError(f"{f.name} is a colour image; only greyscale CT can be analysed.")
    try:
        check_modality_lut(ds)
    except InputError as exc:
        raise InputError(f"{f.name}: {exc}") from exc
    return ds


def _int(ds, keyword: str, default: int, name: str) -> int:
    try:
        return int(ds.get(keyword, default) or default)
    except Exception as exc:  # pydicom converts lazily; a damaged element fails here
        raise InputError(f"{name}: the DICOM {keyword} is not a whole number.") from exc


def _dicom_plan(files: Sequence[SeriesFile], *, decode: bool = False) -> _DicomPlan:
    """Every file's header (one file in memory at a time), the series budgets, the geometry.
    `decode`: each file's pixels too, as the file is read, into the plan's volume (int16 HU,
    radiological orientation, volume order)."""
    if len(files) > MAX_SLICES:
        raise InputError(f"The series has {len(files)} files; at most {MAX_SLICES} slices can be analysed.")
    slices: list[_Slice] = []
    voxels = 0
    volume = None
    for f in files:
        ds = _read_file(f)
        pixels = _int(ds, "Rows", 0, f.name) * _int(ds, "Columns", 0, f.name)
        voxels += pixels
        # A series has one slice size: the first file and the count give the total before the rest
        # is read; the running total covers the rest.
        if voxels > MAX_SERIES_VOXELS or (not slices and pixels * len(files) > MAX_SERIES_VOXELS):
            raise InputError(f"The series holds more than {MAX_SERIES_VOXELS / 1e6:,.0f} million voxels "
                             f"({len(files)} files of {ds.Columns}x{ds.Rows} pixels); that is the limit per series.")
        if decode:
            if volume is None:  # the first file's size and orientation stand for the series (checked below)
                volume = np.empty((len(files), int(ds.Rows), int(ds.Columns)), dtype=np.int16)
                flips = _flips(_orientation(ds, f.name))
            if (int(ds.Rows), int(ds.Columns)) != volume.shape[1:]:
                raise InputError("The slices have different sizes; a series must have one image size.")
            _hu_plane(ds, f.name, flips, volume[len(slices)])
        del ds.PixelData  # headers are kept (for the DICOM-SEG); the pixels are in `volume` or decoded later
        ds.buffer = None  # pydicom keeps the parsed (inflated) file here: up to MAX_FILE_BYTES per slice
        slices.append(_Slice(f, ds))

    first = slices[0]
    series = {str(s.ds.get("SeriesInstanceUID", "")) for s in slices}
    if len(series) > 1:
        raise InputError(f"The files belong to {len(series)} different series; upload one series at a time.")
    rows, cols = int(first.ds.Rows), int(first.ds.Columns)
    if any((int(s.ds.Rows), int(s.ds.Columns)) != (rows, cols) for s in slices):
        raise InputError("The slices have different sizes; a series must have one image size.")
    spacing_yx = _pixel_spacing(first.ds, first.file.name)
    if any(not np.allclose(_pixel_spacing(s.ds, s.file.name), spacing_yx, rtol=1e-3) for s in slices):
        raise InputError("The slices have different pixel spacings; a series must have one.")

    orient = _orientation(first.ds, first.file.name)
    if any(not np.allclose(_orientation(s.ds, s.file.name), orient, atol=1e-3) for s in slices):
        raise InputError("The slices have different orientations; a series must have one.")
    row_dir, col_dir = orient[:3], orient[3:]
    normal = np.cross(row_dir, col_dir)
    if abs(normal[2]) < AXIAL_TOLERANCE or abs(row_dir[0]) < AXIAL_TOLERANCE or abs(col_dir[1]) < AXIAL_TOLERANCE:
        raise InputError("The series is not axial (ImageOrientationPatient); only axial CT can be analysed.")

    positions = []
    for s in slices:
        ipp = s.ds.get("ImagePositionPatient")
        if ipp is None or len(ipp) != 3:
            if len(slices) == 1:
                positions.append(0.0)
                continue
            raise InputError(f"{s.file.name} has no ImagePositionPatient, so the slices cannot be ordered.")
        positions.append(float(np.dot(np.asarray(ipp, dtype=float), normal)))
    order = list(np.argsort(positions, kind="stable"))
    positions = [positions[i] for i in order]
    spacing_z = _slice_step(positions, [slices[i] for i in order])
    # Radiological orientation: rows run to the patient's left (+x), columns to posterior (+y);
    # slice 0 is the most inferior (positions sorted along a normal pointing superior).
    if normal[2] < 0:
        order = order[::-1]
    if volume is not None:
        _permute_slices(volume, order)
    return _DicomPlan(order=[slices[i] for i in order], rows=rows, cols=cols, spacing_mm=(spacing_z, *spacing_yx),
                      flips=_flips(orient), hu=volume)


def _flips(orient: np.ndarray) -> tuple[bool, bool]:
    """(rows, cols) to flip for radiological orientation, from ImageOrientationPatient."""
    return bool(orient[4] < 0), bool(orient[0] < 0)


def _permute_slices(volume: np.ndarray, order: Sequence[int]) -> None:
    """volume[k] = old volume[order[k]] for every k, in place (cycle by cycle, one slice spare)."""
    spare = np.empty_like(volume[0])
    placed = np.zeros(len(order), dtype=bool)
    for start in range(len(order)):
        if placed[start] or order[start] == start:
            continue
        spare[...] = volume[start]
        k = start
        while order[k] != start:
            volume[k] = volume[order[k]]
            placed[k] = True
            k = order[k]
        volume[k] = spare
        placed[k] = True


def _decode_slice(plan: _DicomPlan, k: int) -> np.ndarray:
    """Slice k of the volume as int16 HU in radiological orientation: the file read again, its
    budgets checked again, one frame decoded."""
    item = plan.order[k]
    plane = np.empty((plan.rows, plan.cols), dtype=np.int16)
    _hu_plane(_read_file(item.file), item.file.name, plan.flips, plane)
    return plane


def _hu_plane(ds, name: str, flips: tuple[bool, bool], out: np.ndarray) -> None:
    """One file's frame as int16 HU into `out` (rows, cols), flipped as `flips` says."""
    try:
        stored = decode_frame(ds)
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from exc
    if stored.shape != out.shape:
        raise InputError(f"{name} is not a 2-D slice of {out.shape[1]}x{out.shape[0]} pixels.")
    flip_rows, flip_cols = flips
    if flip_rows:
        stored = stored[::-1]
    if flip_cols:
        stored = stored[:, ::-1]
    if _integer_rescale(stored, ds, out):
        return
    try:
        values = np.rint(modality_lut(stored, ds))
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from exc
    out[...] = np.clip(values, -32768, 32767, out=values)


def _integer_rescale(stored: np.ndarray, ds, out: np.ndarray) -> bool:
    """Integer pixels under a whole-number rescale (CT's usual slope 1, intercept -1024) written to
    `out` as int16: the numbers `modality_lut` gives, rounded and clipped, without a float64 round
    trip (in int16 directly when every value stays in its range, else through int32).  False for
    every other case (a LUT, a fractional rescale), which takes the general path."""
    if stored.dtype.kind not in "iu" or stored.dtype.itemsize > 2 or "ModalityLUTSequence" in ds:
        return False
    slope, intercept = 1, 0
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:  # only both rescale (as in pydicom)
        try:
            slope_f, intercept_f = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        except Exception:
            return False  # the general path gives the clear refusal
        if not (slope_f.is_integer() and intercept_f.is_integer() and abs(slope_f) <= 2**8
                and abs(intercept_f) <= 2**16):
            return False
        slope, intercept = int(slope_f), int(intercept_f)
    low, high = int(stored.min()), int(stored.max())
    if slope == 1 and -32768 <= low + intercept and high + intercept <= 32767 and -32768 <= low \
            and high <= 32767 and -32768 <= intercept <= 32767:
        np.copyto(out, stored, casting="unsafe")  # every value fits: no wrap-around
        out += intercept
    else:
        values = stored.astype(np.int32)
        values *= slope
        values += intercept
        out[...] = np.clip(values, -32768, 32767, out=values)
    return True


def _pixel_spacing(ds, name: str) -> tuple[float, float]:
    """PixelSpacing read by the slice reader's rule (`loading.dicom_spacing`), then held to the
    range a series can be measured in."""
    spacing = dicom_spacing(ds, [])
    if spacing is None:
        raise InputError(f"{name} has no usable PixelSpacing, so sizes in mm cannot be measured.")
    row, col = spacing
    if not (0.01 <= row <= 10 and 0.01 <= col <= 10):
        raise InputError(f"{name} has an implausible PixelSpacing ({row:g} x {col:g} mm).")
    return row, col


def _orientation(ds, name: str) -> np.ndarray:
    value = ds.get("ImageOrientationPatient")
    if value is None:
        return np.array([1.0, 0, 0, 0, 1.0, 0])  # no orientation: assume the usual axial one
    try:
        orient = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} has an unreadable ImageOrientationPatient.") from exc
    if orient.shape != (6,):
        raise InputError(f"{name} has an unreadable ImageOrientationPatient.")
    return orient


def _slice_step(positions: list[float], slices: list[_Slice]) -> float:
    """The even distance between slices; duplicates, gaps and uneven steps are refused."""
    if len(positions) == 1:
        thickness = slices[0].ds.get("SliceThickness")
        try:
            value = float(thickness)
        except (TypeError, ValueError):
            value = 0.0
        return value if 0.01 <= value <= 50 else 1.0
    steps = np.diff(positions)
    names = [s.file.name for s in slices]
    if np.any(steps < 1e-3):
        k = int(np.argmin(steps))
        raise InputError(f"Two slices ({names[k]} and {names[k + 1]}) are at the same position; "
                         "the upload holds duplicates or more than one series.")
    median = float(np.median(steps))
    bad = np.flatnonzero(np.abs(steps - median) > STEP_TOLERANCE * median)
    if bad.size:
        k = int(bad[0])
        raise InputError(f"The slices are not evenly spaced: {steps[k]:.2f} mm between {names[k]} and "
                         f"{names[k + 1]} where the series steps {median:.2f} mm (missing slices?).")
    if median > 50:
        raise InputError(f"The slices are {median:.1f} mm apart; that is not a CT series we can measure.")
    return median


# --- segmentation and 3-D measurement ----------------------------------------------------------

def segment_volume(volume: SeriesVolume, segmenter: SegmenterLike, *, batch_size: int = 8,
                   progress: Callable[[int, int], None] | None = None,
                   skip_liverless: bool = True, second_pass: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice liver and tumour masks (bool z, y, x) through the single-slice stages, batched.

    `skip_liverless`: the network sees every other slice first, then only those in-between
    slices with a neighbour where it saw any liver; a slice between two liverless slices has no
    liver (the liver spans many slices: at most its very tip, under the smallest liver a slice may
    have, `CONTRACT.min_liver_area_mm2`) and so no tumour, and is left empty.  Above and below
    the liver, half the forward passes are saved.  `second_pass`: the liver-crop refinement of
    `segment_many` (on by default, as for single slices).
    """
    n = volume.slices
    liver = np.zeros(volume.hu.shape, dtype=bool)
    tumor = np.zeros(volume.hu.shape, dtype=bool)
    saw_liver = np.zeros(n, dtype=bool)  # any liver probability above threshold, before clean-up
    done = 0

    def run(indices: list[int]) -> None:
        nonlocal done
        step = max(1, batch_size)
        for start in range(0, len(indices), step):
            chunk = indices[start:start + step]
            units = [window_hu(volume.hu[k]) for k in chunk]
            # HU data follow the radiological convention: no mirrored pass.
            segs = segment_many(units, segmenter, batch_size=2 * step, check_mirror=[False] * len(units),
                                second_pass=second_pass)
            for k, seg in zip(chunk, segs):
                masks = clean(seg.liver_prob, seg.tumor_prob, volume.spacing_mm[1:])
                liver[k], tumor[k] = masks.liver, masks.tumor
                saw_liver[k] = masks.liver_threshold.any()
            done += len(chunk)
            if progress:
                progress(done, n)

    if not skip_liverless or n < 3:
        run(list(range(n)))
        return liver, tumor
    run(list(range(0, n, 2)))
    between = [k for k in range(1, n, 2) if saw_liver[k - 1] or (k + 1 < n and saw_liver[k + 1])]
    done += (n // 2) - len(between)  # the skipped slices are done: empty
    run(between)
    return liver, tumor


def measure_volume(volume: SeriesVolume, liver: np.ndarray, tumor: np.ndarray) -> SeriesResult:
    """3-D lesions, liver and tumour volumes, burden and stage from the masks (bool z, y, x)."""
    # The network's liver holds its tumours already; a copy only where it does not (checked a
    # slice at a time: a series at the voxel limit has no room for whole-volume temporaries).
    if any(np.any(t & ~l) for l, t in zip(liver, tumor)):
        liver = liver | tumor
    spacing = tuple(float(s) for s in volume.spacing_mm)
    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0
    # Labelled within the tumours' bounding box only: a few % of a whole series' voxels.
    box = _bounding_box(tumor)
    if tumor[box].size:
        labels, count = ndi.label(tumor[box], structure=np.ones((3, 3, 3), bool))
    else:  # no tumour at all (scipy cannot label an empty array)
        labels, count = np.zeros(tumor[box].shape, dtype=np.int32), 0
    offset = [r.start for r in box]
    ys = np.flatnonzero(liver.any(axis=(0, 2)))
    xs = np.flatnonzero(liver.any(axis=(0, 1)))
    middle_y = (ys[0] + ys[-1]) / 2.0 if ys.size else (liver.shape[1] - 1) / 2.0
    middle_x = (xs[0] + xs[-1]) / 2.0 if xs.size else (liver.shape[2] - 1) / 2.0

    found = []
    for index, region in enumerate(ndi.find_objects(labels) if count else [], start=1):
        if region is None:
            continue
        own = labels[region] == index
        region = tuple(slice(r.start + o, r.stop + o) for r, o in zip(region, offset))
        best, best_dz = _longest_axial_diameter(own, spacing[1:])
        best_slice = region[0].start + best_dz
        coords = np.argwhere(own).mean(axis=0) + [r.start for r in region]
        cz, cy, cx = (float(v) for v in coords)
        voxels = int(np.count_nonzero(own))
        found.append((voxels, index, Lesion3D(
            voxels=voxels,
            volume_ml=voxels * voxel_ml,
            max_diameter_mm=best,
            max_diameter_slice=int(best_slice),
            slice_range=(int(region[0].start), int(region[0].stop - 1)),
            centroid_mm=(cz * spacing[0], cy * spacing[1], cx * spacing[2]),
            side="right" if cx < middle_x else "left",  # radiological: patient's right on the image left
            part="anterior" if cy < middle_y else "posterior",
        )))
    found.sort(key=lambda f: (-f[0], f[1]))  # largest volume first
    relabel = np.zeros(count + 1, dtype=np.int32)
    for new, (_, old, _) in enumerate(found, start=1):
        relabel[old] = new
    lesions = [f[2] for f in found]
    stage = stage_for_diameter(max(l.max_diameter_mm for l in lesions)) if lesions else None
    return SeriesResult(volume=volume, liver=liver, tumor=tumor, lesion_box=box, lesion_box_labels=relabel[labels],
                        lesions=lesions, liver_volume_ml=np.count_nonzero(liver) * voxel_ml,
                        tumor_volume_ml=np.count_nonzero(tumor) * voxel_ml, stage=stage)


def _longest_axial_diameter(own: np.ndarray, spacing_yx: tuple[float, float]) -> tuple[float, int]:
    """The largest per-plane `feret_diameter_max` (mm) of one lesion's mask (z, y, x) and the first
    plane holding it.  A plane's Feret diameter (measured on the outline of its convex hull) is at
    least the largest distance between its pixel centres and at most that plus two pixels, so
    planes are tried widest first and stop once none can reach the best so far: the same answer
    as measuring every plane, from a few Feret measurements per lesion."""
    bounds = [(0.0, dz) for dz in range(own.shape[0]) if own[dz].any()]  # (lower bound, plane)
    if len(bounds) > 1:  # widest first; one plane needs no bound
        bounds = sorted(((_centre_diameter(own[dz], spacing_yx), dz) for _, dz in bounds), key=lambda b: (-b[0], b[1]))
    slack = 2.0 * max(spacing_yx)
    best, best_dz = 0.0, 0
    for low, dz in bounds:
        if low + slack < best:
            break
        props = regionprops(own[dz].astype(np.uint8), spacing=spacing_yx)[0]
        diameter = float(props.feret_diameter_max)
        if diameter > best or (diameter == best and dz < best_dz):
            best, best_dz = diameter, dz
    return best, best_dz


def _centre_diameter(plane: np.ndarray, spacing_yx: tuple[float, float]) -> float:
    """The largest distance (mm) between two pixel centres of a bool plane: over its convex hull."""
    points = cv2.findNonZero(plane.astype(np.uint8))  # (n, 1, 2) as x, y
    hull = cv2.convexHull(points).reshape(-1, 2) * np.array([spacing_yx[1], spacing_yx[0]])
    return float(np.sqrt(((hull[:, None, :] - hull[None, :, :]) ** 2).sum(axis=-1).max()))


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The smallest box (one slice per axis) holding every True voxel; empty slices if none."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1) if hits.size else slice(0, 0))
    return tuple(box)


def analyze_series(source: str | Path | Sequence[Item] | SeriesVolume, *,
                   segmenter: SegmenterLike | None = None, batch_size: int = 8,
                   progress: Callable[[int, int], None] | None = None) -> SeriesResult:
    """Load (unless given a `SeriesVolume`), segment slice by slice, measure in 3-D.

    Raises `InputError` for input that cannot be analysed: `load_series(check=True)` refuses what
    the upload check (`check_series`) refuses, every budget from each file's header before its
    pixels are decoded.  `progress(done, total)` after each batch.
    """
    volume = source if isinstance(source, SeriesVolume) else load_series(source, check=True)
    if segmenter is None:
        from ..model.runtime import get_segmenter, series_backend_from_env

        segmenter = get_segmenter(backend=series_backend_from_env())
    liver, tumor = segment_volume(volume, segmenter, batch_size=batch_size, progress=progress)
    result = measure_volume(volume, liver, tumor)
    from ..model.runtime import describe

    result.inference = describe(segmenter)
    return result


__all__ = ["InputError", "Lesion3D", "SeriesCheck", "SeriesResult", "SeriesVolume", "analyze_series",
           "check_series", "load_series", "measure_volume", "segment_volume", "MAX_SLICES"]
