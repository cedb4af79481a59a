"""A series' corrected label volume -> every 3-D figure again, without the network (issue 20).  No Django.

The figures come from `volume.measure_volume`, the function the network's result goes through, so
there is one way to measure a series.  This module only adds what a correction needs around it:
checking a label volume, and reading one that arrives as NIfTI or DICOM-SEG in the series' own
patient space (its geometry must match the series', or it is refused with a message saying how).
"""
from __future__ import annotations

import gzip
import io
import zlib

import numpy as np

from .. import labels as registry
from ..errors import InputError
from .volume import SeriesResult, SeriesVolume, measure_volume

# Label values: the registry's (the training data's and the NIfTI export's convention too).
BACKGROUND, LIVER, TUMOR = (label.value for label in registry.LABELS)
# An affine may differ from the series' by this much (mm) per element: rounding in other tools.
AFFINE_TOLERANCE_MM = 0.05


def check_labels(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`labels` as uint8 (z, y, x) of `shape`, holding only the registry's label values; InputError otherwise."""
    labels = np.asarray(labels)
    if labels.shape != tuple(shape):
        raise InputError(f"The label volume is {' x '.join(map(str, labels.shape))} voxels (z, y, x); the series "
                         f"is {' x '.join(map(str, shape))}.")
    if labels.dtype.kind not in "iub":
        raise InputError(f"The label volume holds {labels.dtype} values; labels are whole numbers, "
                         f"{registry.describe_values()}.")
    # The registry's values run 0..n without gaps, so bounds suffice (no volume-sized temporary).
    if labels.size and (labels.min() < min(registry.VALUES) or labels.max() > max(registry.VALUES)):
        raise InputError(f"The label volume holds values other than {registry.describe_values()}.")
    return labels.astype(np.uint8, copy=False)


def recompute_series(volume: SeriesVolume, labels: np.ndarray) -> SeriesResult:
    """The series' figures from a label volume: the network's own measurement stage, no network.

    `volume` needs only its shape and spacing (`hu` may be the stored memory-mapped array)."""
    labels = check_labels(labels, volume.hu.shape)
    return measure_volume(volume, labels >= LIVER, labels == TUMOR)


def remove_lesion(result: SeriesResult, labels: np.ndarray, number: int) -> np.ndarray:
    """A copy of `labels` without 3-D lesion `number` (1-based, as listed): its voxels become liver,
    through every slice it spans (the 26-connected component `measure_volume` found)."""
    if not 1 <= number <= len(result.lesions):
        raise InputError(f"There is no lesion {number}; the series has {len(result.lesions)}.")
    out = np.array(labels, dtype=np.uint8, copy=True)
    out[result.lesion_labels == number] = LIVER
    return out


def interpolate(labels: np.ndarray, first: int, last: int) -> np.ndarray:
    """A copy of `labels` whose slices strictly between `first` and `last` are interpolated from those
    two (shape-based: the liver and the tumour each by a weighted mean of their signed distance maps),
    so a reader outlines two slices and the ones between follow."""
    from scipy.ndimage import distance_transform_edt

    first, last = sorted((int(first), int(last)))
    if not (0 <= first and last < labels.shape[0]) or last - first < 2:
        raise InputError(f"Interpolation needs two slices with at least one between them, within 1 to "
                         f"{labels.shape[0]} (got {first + 1} and {last + 1}).")

    def signed(mask: np.ndarray) -> np.ndarray:  # < 0 inside, > 0 outside (pixels)
        if not mask.any():
            return np.full(mask.shape, float(max(mask.shape)))
        return distance_transform_edt(~mask) - distance_transform_edt(mask)

    out = np.array(labels, dtype=np.uint8, copy=True)
    ends = [(signed(labels[k] >= LIVER), signed(labels[k] == TUMOR)) for k in (first, last)]
    for k in range(first + 1, last):
        t = (k - first) / (last - first)
        liver, tumor = ((1 - t) * a + t * b < 0 for a, b in zip(*ends))
        out[k] = np.where(tumor, TUMOR, np.where(liver, LIVER, BACKGROUND))
    return out


# --- geometry: the series' voxels in patient space ---------------------------------------------

def series_affine(volume: SeriesVolume) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(4x4 RAS affine, shape) of the NIfTI grid a label volume for this series must have.

    NIfTI uploads: the upload's own grid and affine (what `export.nifti_labels` writes).  DICOM
    series: voxel axes (x = column, y = row, z = slice) of the radiological volume, mapped to the
    DICOM patient positions (ImagePositionPatient, orientation, PixelSpacing), LPS turned to RAS."""
    z, y, x = volume.hu.shape
    if volume.kind == "nifti":
        from nibabel.orientations import io_orientation

        affine = np.asarray(volume.nifti.affine, dtype=float)
        ornt = io_orientation(affine)
        # The stored axes' sizes: each RAS axis (0 x, 1 y, 2 z) sits on some stored axis.
        ras_size = {0: x, 1: y, 2: z}
        return affine, tuple(ras_size[int(out)] for out, _ in ornt)
    first = volume.datasets[0]
    orient = np.asarray([float(v) for v in first.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0])])
    row_dir, col_dir = orient[:3], orient[3:]  # along a row (next column), along a column (next row)
    row_mm, col_mm = volume.spacing_mm[1], volume.spacing_mm[2]
    origin = _position(first, 0.0)
    if z > 1:
        step = (_position(volume.datasets[-1], 0.0) - origin) / (z - 1)
    else:
        step = np.cross(row_dir, col_dir) * volume.spacing_mm[0]
    flip_rows, flip_cols = volume.flips
    # Radiological column c is stored column C-1-c when the columns were flipped (rows alike).
    dx = row_dir * col_mm * (-1 if flip_cols else 1)
    dy = col_dir * row_mm * (-1 if flip_rows else 1)
    if flip_cols:
        origin = origin + row_dir * col_mm * (x - 1)
    if flip_rows:
        origin = origin + col_dir * row_mm * (y - 1)
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = dx, dy, step, origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps, (x, y, z)


def _position(ds, default: float) -> np.ndarray:
    ipp = ds.get("ImagePositionPatient")
    return np.asarray([float(v) for v in ipp], dtype=float) if ipp is not None else np.full(3, default)


def _to_radiological(data: np.ndarray, volume: SeriesVolume) -> np.ndarray:
    """Voxels on `series_affine`'s grid -> (z, y, x) radiological."""
    if volume.kind == "nifti":
        from nibabel.orientations import apply_orientation, io_orientation

        ras = apply_orientation(data, io_orientation(np.asarray(volume.nifti.affine, dtype=float)))
        return np.ascontiguousarray(ras.transpose(2, 1, 0)[:, ::-1, ::-1])
    return np.ascontiguousarray(data.transpose(2, 1, 0))


def labels_to_nifti(volume: SeriesVolume, labels: np.ndarray) -> bytes:
    """A label volume as .nii.gz on `series_affine`'s grid (what `labels_from_nifti` takes back)."""
    import nibabel as nib

    affine, _ = series_affine(volume)
    if volume.kind == "nifti":
        from .export import nifti_labels

        return nifti_labels(volume, labels)
    image = nib.Nifti1Image(np.ascontiguousarray(np.asarray(labels, np.uint8).transpose(2, 1, 0)), affine)
    image.header.set_xyzt_units("mm")
    return gzip.compress(image.to_bytes(), compresslevel=6)


# --- uploads ------------------------------------------------------------------------------------

def labels_from_upload(data: bytes, volume: SeriesVolume, name: str = "labels") -> np.ndarray:
    """An uploaded label volume, NIfTI (.nii / .nii.gz) or DICOM-SEG, as uint8 (z, y, x)."""
    if data[:2] == b"\x1f\x8b" or data[344:348] in (b"n+1\x00", b"ni1\x00") or data[4:8] == b"n+2\x00":
        return labels_from_nifti(data, volume, name)
    if data[128:132] == b"DICM":
        return labels_from_seg(data, volume, name)
    raise InputError(f"{name} is neither NIfTI (.nii / .nii.gz) nor DICOM; send the label volume as one of them.")


def labels_from_nifti(data: bytes, volume: SeriesVolume, name: str = "labels") -> np.ndarray:
    """A NIfTI label volume in the series' patient space -> uint8 (z, y, x).

    The voxel axes may be in any order or direction: the image is reoriented to the series' grid
    first; then its shape and affine must match `series_affine` (within AFFINE_TOLERANCE_MM)."""
    import nibabel as nib
    from nibabel.orientations import io_orientation, ornt_transform

    expected, shape = series_affine(volume)
    limit = int(np.prod(shape)) * 8 + (1 << 20)  # the largest sensible file: float64 voxels and a header
    if data[:2] == b"\x1f\x8b":
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            data = inflater.decompress(data, limit + 1)
        except zlib.error as exc:
            raise InputError(f"{name} is not a gzip file we can unpack.") from exc
    if len(data) > limit:
        raise InputError(f"{name} is larger than a label volume of this series can be.")
    try:
        sizes = {int.from_bytes(data[:4], "little"), int.from_bytes(data[:4], "big")}
        image = (nib.Nifti2Image if 540 in sizes else nib.Nifti1Image).from_bytes(data)
    except Exception as exc:  # nibabel raises several types on garbage
        raise InputError(f"{name} is not a NIfTI file we can read.") from exc
    if len(image.shape) == 4 and image.shape[3] == 1:
        image = image.slicer[..., 0]
    if len(image.shape) != 3:
        raise InputError(f"{name} is a {len(image.shape)}-D image; a label volume has 3 dimensions.")
    image = image.as_reoriented(ornt_transform(io_orientation(image.affine), io_orientation(expected)))
    if tuple(image.shape) != tuple(shape):
        raise InputError(f"{name} has {' x '.join(map(str, image.shape))} voxels; this series' grid is "
                         f"{' x '.join(map(str, shape))}. Send labels on the series' own grid.")
    if not np.allclose(image.affine, expected, atol=AFFINE_TOLERANCE_MM):
        raise InputError(f"{name}'s affine does not match this series' geometry (voxel positions differ by up "
                         f"to {np.abs(image.affine - expected).max():.1f} mm). Send labels in the series' "
                         "patient space, as the series' NIfTI export writes them.")
    values = np.asanyarray(image.dataobj)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise InputError(f"{name} holds fractional values; labels are whole numbers 0, 1, 2.")
        values = values.astype(np.int16)
    return check_labels(_to_radiological(values, volume), volume.hu.shape)


def labels_from_seg(data: bytes, volume: SeriesVolume, name: str = "labels") -> np.ndarray:
    """A DICOM Segmentation referencing this series -> uint8 (z, y, x).

    Its segments are read by label: one naming a tumour (or lesion, neoplasm) is label 2, one
    naming the liver label 1 (tumour wins where both are set); frames are placed by the source
    instance they reference, so any subset of the series' slices may be present."""
    import highdicom as hd

    if volume.kind != "dicom":
        raise InputError("This series was uploaded as NIfTI; send its labels as NIfTI, not DICOM-SEG.")
    try:
        seg = hd.seg.segread(io.BytesIO(data))
    except Exception as exc:
        raise InputError(f"{name} is not a DICOM Segmentation we can read.") from exc
    series_uid = str(volume.datasets[0].get("SeriesInstanceUID", ""))
    referenced = {str(item.SeriesInstanceUID) for item in seg.get("ReferencedSeriesSequence", [])}
    if series_uid not in referenced:
        raise InputError(f"{name} references another series ({', '.join(sorted(referenced)) or 'none'}), "
                         f"not this one ({series_uid}).")
    liver, tumor = [], []
    for desc in seg.SegmentSequence:
        label = str(desc.get("SegmentLabel", "")).lower()
        if any(word in label for word in ("tumo", "lesion", "neoplas", "metasta")):
            tumor.append(int(desc.SegmentNumber))
        elif "liver" in label:
            liver.append(int(desc.SegmentNumber))
    if not (liver or tumor):
        raise InputError(f"{name} has no segment labelled liver or tumour.")
    uids = [str(ds.SOPInstanceUID) for ds in volume.datasets]
    present = {uid for _, _, uid in seg.get_source_image_uids()} & set(uids)
    labels = np.zeros(volume.hu.shape, np.uint8)
    order = [k for k, uid in enumerate(uids) if uid in present]
    if not order:
        raise InputError(f"{name} references none of this series' slices.")
    for numbers, value in ((liver, 1), (tumor, 2)):
        if not numbers:
            continue
        try:
            pixels = seg.get_pixels_by_source_instance(
                source_sop_instance_uids=[uids[k] for k in order], segment_numbers=numbers,
                combine_segments=False, assert_missing_frames_are_empty=True)
        except Exception as exc:
            raise InputError(f"{name}'s frames could not be matched to this series' slices ({exc}).") from exc
        if pixels.shape[1:3] != volume.hu.shape[1:]:
            raise InputError(f"{name}'s frames are {pixels.shape[2]}x{pixels.shape[1]} pixels; the series' are "
                             f"{volume.hu.shape[2]}x{volume.hu.shape[1]}.")
        mask = pixels.any(axis=-1)
        flip_rows, flip_cols = volume.flips
        if flip_rows:
            mask = mask[:, ::-1]
        if flip_cols:
            mask = mask[:, :, ::-1]
        for i, k in enumerate(order):
            labels[k][mask[i]] = value
    return labels


__all__ = ["check_labels", "interpolate", "labels_from_nifti", "labels_from_seg", "labels_from_upload", "labels_to_nifti",
           "recompute_series", "remove_lesion", "series_affine"]
