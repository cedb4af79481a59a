"""A whole CT series: DICOM files / a zip / a NIfTI volume -> HU volume -> per-slice masks -> 3-D lesions.

No Django.  One entry point, `analyze_series(source)`, shared by `manage.py analyze_series`, the
background worker and the bench; it reuses the single-slice stages (`segment_many` batched,
`clean` per slice) and adds what only a volume has: 3-D connected lesions in mL.

Conventions (also in the README):

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
"""
from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.measure import regionprops

from .errors import InputError
from .loading import MAX_PIXELS, MIN_SIDE, NON_CT_MODALITIES
from .postprocess import clean
from .preprocess import window_hu
from .segment import SegmenterLike, segment_many
from .staging import NO_TUMOR, STAGE_NOTE, stage_for_diameter

MAX_SLICES = 1000
# Unzipped size we are willing to read from one upload (a 1000-slice 512 px series is ~0.5 GiB).
MAX_SERIES_BYTES = 1536 * 2**20
# Direction cosines this close to an axis count as axial (about 8 degrees of gantry tilt).
AXIAL_TOLERANCE = 0.99
# Slice steps may differ from the median by this fraction before we call it a gap.
STEP_TOLERANCE = 0.2
NIFTI_SUFFIXES = (".nii", ".nii.gz")

Item = tuple[str, bytes]  # (file name, content)


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
    nifti: object | None = None  # nibabel image as uploaded (its affine and orientation)
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
    lesion_labels: np.ndarray  # int32 (z, y, x): 0, 1..n in the order of `lesions`
    lesions: list[Lesion3D]
    liver_volume_ml: float
    tumor_volume_ml: float
    stage: str | None
    inference: str = ""  # which backend ran, e.g. "onnx-int8 on CPU" (runtime.describe); "" for a fake

    @property
    def tumor_burden_percent(self) -> float:
        return 100.0 * self.tumor_volume_ml / self.liver_volume_ml if self.liver_volume_ml > 0 else 0.0

    @property
    def stage_label(self) -> str:
        return f"Stage {self.stage} ({STAGE_NOTE})" if self.stage else NO_TUMOR

    def label_volume(self) -> np.ndarray:
        """uint8 (z, y, x): 0 background, 1 liver, 2 tumour."""
        labels = self.liver.astype(np.uint8)
        labels[self.tumor] = 2
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

def read_items(path: str | Path) -> list[Item]:
    """A folder (its files, recursively), a zip, a NIfTI or a single DICOM file -> items."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise InputError(f"The folder {path.name} has no files in it.")
        total = sum(p.stat().st_size for p in files)
        if total > MAX_SERIES_BYTES:
            raise InputError(f"The series is too large ({total // 2**20} MiB); the limit is "
                             f"{MAX_SERIES_BYTES // 2**20} MiB.")
        return [(str(p.relative_to(path)), p.read_bytes()) for p in files]
    try:
        return [(path.name, path.read_bytes())]
    except OSError as exc:
        raise InputError(f"Could not read {path.name}: {exc.strerror or exc}") from exc


def expand_items(items: Sequence[Item]) -> list[Item]:
    """Unpack zips (one level); drop hidden files, macOS resource forks and DICOMDIR indexes."""
    out: list[Item] = []
    total = 0
    for name, data in items:
        if data[:4] == b"PK\x03\x04" or name.lower().endswith(".zip"):
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    members = [m for m in archive.infolist() if not m.is_dir()]
                    total += sum(m.file_size for m in members)
                    if total > MAX_SERIES_BYTES:
                        raise InputError(f"The zip holds more than {MAX_SERIES_BYTES // 2**20} MiB "
                                         "once unpacked; the limit is that size.")
                    for m in members:
                        base = m.filename.rsplit("/", 1)[-1]
                        if base.startswith(".") or "__MACOSX" in m.filename or base.upper() == "DICOMDIR":
                            continue
                        out.append((m.filename, archive.read(m)))
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
                raise InputError(f"{name} is not a zip file we can open ({exc}).") from exc
            continue
        base = name.rsplit("/", 1)[-1]
        if base.startswith(".") or base.upper() == "DICOMDIR":
            continue
        total += len(data)
        out.append((name, data))
    if total > MAX_SERIES_BYTES:
        raise InputError(f"The series is too large; the limit is {MAX_SERIES_BYTES // 2**20} MiB.")
    return out


def load_series(source: str | Path | Sequence[Item]) -> SeriesVolume:
    """A path (folder, zip, NIfTI, DICOM) or uploaded (name, bytes) items -> `SeriesVolume`."""
    items = read_items(source) if isinstance(source, (str, Path)) else list(source)
    items = expand_items(items)
    if not items:
        raise InputError("No files were given (the zip or folder is empty).")
    nifti = [item for item in items if item[0].lower().endswith(NIFTI_SUFFIXES)]
    if nifti:
        if len(items) > 1:
            raise InputError("Upload one NIfTI volume on its own, or DICOM files, not both or several.")
        return _load_nifti(*nifti[0])
    return _load_dicom_series(items)


# --- DICOM -------------------------------------------------------------------------------------

def _load_dicom_series(items: Sequence[Item]) -> SeriesVolume:
    import pydicom
    from pydicom.pixels import apply_modality_lut

    if len(items) > MAX_SLICES:
        raise InputError(f"The series has {len(items)} files; at most {MAX_SLICES} slices can be analysed.")
    datasets = []
    for name, data in items:
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            ok = "PixelData" in ds and "Rows" in ds
        except Exception as exc:  # pydicom raises many types on garbage; all mean "not DICOM"
            raise InputError(f"{name} is not a DICOM file we can read.") from exc
        if not ok:
            raise InputError(f"{name} is not a DICOM image (no pixel data); upload the slices of one "
                             "CT series, as files or one zip, or one NIfTI volume.")
        datasets.append((name, ds))

    first_name, first = datasets[0]
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in datasets}
    if len(series) > 1:
        raise InputError(f"The files belong to {len(series)} different series; upload one series at a time.")
    for name, ds in datasets:
        modality = str(ds.get("Modality", "") or "").strip().upper()
        if modality in NON_CT_MODALITIES or modality not in ("CT", ""):
            raise InputError(f"{name} is a {modality or 'non-CT'} image; only CT series can be analysed.")
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise InputError(f"{name} is a multi-frame image; upload single-slice CT files.")
        if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
            raise InputError(f"{name} is a colour image; only greyscale CT can be analysed.")

    rows, cols = int(first.Rows), int(first.Columns)
    if any((int(ds.Rows), int(ds.Columns)) != (rows, cols) for _, ds in datasets):
        raise InputError("The slices have different sizes; a series must have one image size.")
    if rows * cols > MAX_PIXELS or min(rows, cols) < MIN_SIDE:
        raise InputError(f"The slices are {cols}x{rows} pixels; between {MIN_SIDE} and 4096 per side is supported.")
    spacing_yx = _pixel_spacing(first, first_name)
    if any(not np.allclose(_pixel_spacing(ds, name), spacing_yx, rtol=1e-3) for name, ds in datasets):
        raise InputError("The slices have different pixel spacings; a series must have one.")

    orient = _orientation(first, first_name)
    if any(not np.allclose(_orientation(ds, name), orient, atol=1e-3) for name, ds in datasets):
        raise InputError("The slices have different orientations; a series must have one.")
    row_dir, col_dir = orient[:3], orient[3:]
    normal = np.cross(row_dir, col_dir)
    if abs(normal[2]) < AXIAL_TOLERANCE or abs(row_dir[0]) < AXIAL_TOLERANCE or abs(col_dir[1]) < AXIAL_TOLERANCE:
        raise InputError("The series is not axial (ImageOrientationPatient); only axial CT can be analysed.")

    positions = []
    for name, ds in datasets:
        ipp = ds.get("ImagePositionPatient")
        if ipp is None or len(ipp) != 3:
            if len(datasets) == 1:
                positions.append(0.0)
                continue
            raise InputError(f"{name} has no ImagePositionPatient, so the slices cannot be ordered.")
        positions.append(float(np.dot(np.asarray(ipp, dtype=float), normal)))
    order = np.argsort(positions, kind="stable")
    positions = [positions[i] for i in order]
    datasets = [datasets[i] for i in order]
    spacing_z = _slice_step(positions, datasets)

    hu = np.empty((len(datasets), rows, cols), dtype=np.int16)
    for k, (name, ds) in enumerate(datasets):
        try:
            stored = ds.pixel_array
        except Exception as exc:
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            what = getattr(syntax, "name", None) or "its encoding"
            raise InputError(f"{name} could not be decoded: {what} is not supported "
                             "(or its pixel data is damaged).") from exc
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
        if values.shape != (rows, cols):
            raise InputError(f"{name} is not a 2-D slice of {cols}x{rows} pixels.")
        hu[k] = np.clip(np.rint(values), -32768, 32767).astype(np.int16)
        del ds.PixelData  # headers are kept for the DICOM-SEG; the pixels live in `hu`

    # Radiological orientation: rows run to the patient's left (+x), columns to posterior (+y);
    # slice 0 is the most inferior (positions sorted along a normal pointing superior).
    flip_cols, flip_rows = row_dir[0] < 0, col_dir[1] < 0
    if normal[2] < 0:
        hu, datasets = hu[::-1], datasets[::-1]
    if flip_rows:
        hu = hu[:, ::-1]
    if flip_cols:
        hu = hu[:, :, ::-1]
    notes = []
    if flip_rows or flip_cols:
        notes.append("The slices were flipped to radiological orientation for analysis.")
    return SeriesVolume(hu=np.ascontiguousarray(hu), spacing_mm=(spacing_z, *spacing_yx), kind="dicom",
                        datasets=[ds for _, ds in datasets], flips=(bool(flip_rows), bool(flip_cols)),
                        notes=notes)


def _pixel_spacing(ds, name: str) -> tuple[float, float]:
    value = ds.get("PixelSpacing")
    try:
        row, col = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{name} has no usable PixelSpacing, so sizes in mm cannot be measured.") from exc
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


def _slice_step(positions: list[float], datasets) -> float:
    """The even distance between slices; duplicates, gaps and uneven steps are refused."""
    if len(positions) == 1:
        thickness = datasets[0][1].get("SliceThickness")
        try:
            value = float(thickness)
        except (TypeError, ValueError):
            value = 0.0
        return value if 0.01 <= value <= 50 else 1.0
    steps = np.diff(positions)
    if np.any(steps < 1e-3):
        k = int(np.argmin(steps))
        raise InputError(f"Two slices ({datasets[k][0]} and {datasets[k + 1][0]}) are at the same position; "
                         "the upload holds duplicates or more than one series.")
    median = float(np.median(steps))
    bad = np.flatnonzero(np.abs(steps - median) > STEP_TOLERANCE * median)
    if bad.size:
        k = int(bad[0])
        raise InputError(f"The slices are not evenly spaced: {steps[k]:.2f} mm between {datasets[k][0]} and "
                         f"{datasets[k + 1][0]} where the series steps {median:.2f} mm (missing slices?).")
    if median > 50:
        raise InputError(f"The slices are {median:.1f} mm apart; that is not a CT series we can measure.")
    return median


# --- NIfTI -------------------------------------------------------------------------------------

def _load_nifti(name: str, data: bytes) -> SeriesVolume:
    import nibabel as nib

    raw = data
    if data[:2] == b"\x1f\x8b":
        raw = _gunzip(data, name)
    image = None
    for cls in (nib.Nifti1Image, nib.Nifti2Image):
        try:
            image = cls.from_bytes(raw)
            break
        except Exception:  # nibabel raises several types on garbage
            continue
    if image is None:
        raise InputError(f"{name} is not a NIfTI file we can read.")
    shape = image.shape
    if len(shape) == 4 and shape[3] == 1:
        image = image.slicer[..., 0]
        shape = image.shape
    if len(shape) != 3:
        raise InputError(f"{name} is a {len(shape)}-D image; a CT volume has 3 dimensions.")
    canonical = nib.as_closest_canonical(image)  # axes R, A, S
    try:
        ras = np.asarray(canonical.get_fdata(dtype=np.float32))
    except Exception as exc:
        raise InputError(f"{name}: the image data could not be read ({exc}).") from exc
    if not np.all(np.isfinite(ras)):
        raise InputError(f"{name} holds invalid (non-finite) values.")
    zooms = [float(z) for z in canonical.header.get_zooms()[:3]]
    if not all(0.01 <= z <= 50 for z in zooms):
        raise InputError(f"{name} has implausible voxel sizes {zooms} mm.")
    # (x=R, y=A, z=S) -> (z, y, x) with columns to the patient's left and rows to posterior.
    hu = np.ascontiguousarray(ras.transpose(2, 1, 0)[:, ::-1, ::-1])
    _check_volume_shape(hu.shape)
    lo, hi = np.percentile(hu[:, ::8, ::8], [1, 99])
    if not (lo <= -500 and hi >= -200):
        raise InputError(f"{name} does not look like CT in Hounsfield units (1st/99th percentiles "
                         f"{lo:.0f}/{hi:.0f}).")
    return SeriesVolume(hu=np.clip(np.rint(hu), -32768, 32767).astype(np.int16),
                        spacing_mm=(zooms[2], zooms[1], zooms[0]), kind="nifti", nifti=image)


def _gunzip(data: bytes, name: str) -> bytes:
    """gzip with a ceiling on the unpacked size (a small .nii.gz can unpack to gigabytes)."""
    unpacker = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        raw = unpacker.decompress(data, MAX_SERIES_BYTES + 1)
    except zlib.error as exc:
        raise InputError(f"{name} is not a gzip file we can unpack.") from exc
    if len(raw) > MAX_SERIES_BYTES:
        raise InputError(f"{name} unpacks to more than {MAX_SERIES_BYTES // 2**20} MiB; that is the limit.")
    return raw


def _check_volume_shape(shape) -> None:
    z, y, x = shape
    if z > MAX_SLICES:
        raise InputError(f"The volume has {z} slices; at most {MAX_SLICES} can be analysed.")
    if y * x > MAX_PIXELS or min(y, x) < MIN_SIDE:
        raise InputError(f"The slices are {x}x{y} pixels; between {MIN_SIDE} and 4096 per side is supported.")


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
        z0 = region[0].start
        best, best_slice = 0.0, z0
        for dz in range(own.shape[0]):
            plane = own[dz]
            if not plane.any():
                continue
            props = regionprops(plane.astype(np.uint8), spacing=spacing[1:])[0]
            diameter = float(props.feret_diameter_max)
            if diameter > best:
                best, best_slice = diameter, z0 + dz
        coords = np.argwhere(own).mean(axis=0) + [r.start for r in region]
        cz, cy, cx = (float(v) for v in coords)
        voxels = int(own.sum())
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
    lesion_labels = np.zeros(tumor.shape, dtype=np.int32)
    lesion_labels[box] = relabel[labels]
    lesions = [f[2] for f in found]
    stage = stage_for_diameter(max(l.max_diameter_mm for l in lesions)) if lesions else None
    return SeriesResult(volume=volume, liver=liver, tumor=tumor, lesion_labels=lesion_labels,
                        lesions=lesions, liver_volume_ml=float(liver.sum()) * voxel_ml,
                        tumor_volume_ml=float(tumor.sum()) * voxel_ml, stage=stage)


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

    Raises `InputError` for input that cannot be analysed.  `progress(done, total)` after each batch.
    """
    volume = source if isinstance(source, SeriesVolume) else load_series(source)
    if segmenter is None:
        from .runtime import get_segmenter, series_backend_from_env

        segmenter = get_segmenter(backend=series_backend_from_env())
    liver, tumor = segment_volume(volume, segmenter, batch_size=batch_size, progress=progress)
    result = measure_volume(volume, liver, tumor)
    from .runtime import describe

    result.inference = describe(segmenter)
    return result


__all__ = ["InputError", "Lesion3D", "SeriesResult", "SeriesVolume", "analyze_series", "load_series",
           "measure_volume", "segment_volume", "MAX_SLICES"]
