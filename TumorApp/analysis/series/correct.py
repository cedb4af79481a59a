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
    """An uploaded label volume, NIfTI (.nii / .nii.gz) or DICOM-SEG, as uint8 (z, y, x).

    Both readers check what the file declares (shape, frames, sizes) against this series' grid
    before allocating anything for its voxels, and refuse any damage with an InputError."""
    kind = upload_kind(data, name)
    try:
        return labels_from_nifti(data, volume, name) if kind == "nifti" else labels_from_seg(data, volume, name)
    except MemoryError as exc:  # a budget we missed: still a refusal, never the allocator's message
        raise InputError(f"{name} is too large to read as a label volume of this series.") from exc


def upload_kind(data: bytes, name: str = "labels") -> str:
    """"nifti" or "seg" from the first bytes of a label upload; InputError for anything else."""
    if data[:2] == b"\x1f\x8b" or data[344:348] in (b"n+1\x00", b"ni1\x00") or data[4:8] == b"n+2\x00":
        return "nifti"
    if data[128:132] == b"DICM":
        return "seg"
    raise InputError(f"{name} is neither NIfTI (.nii / .nii.gz) nor DICOM; send the label volume as one of them.")


def labels_from_nifti(data: bytes, volume: SeriesVolume, name: str = "labels") -> np.ndarray:
    """A NIfTI label volume in the series' patient space -> uint8 (z, y, x).

    The voxel axes may be in any order or direction.  The header alone is checked first: its shape,
    once reoriented to the series' grid, must be `series_affine`'s, its voxel type a number of at
    most 8 bytes; then exactly the declared voxels are unpacked (gzip counted, a chunk at a time),
    reoriented as a view, and the affine compared (within AFFINE_TOLERANCE_MM)."""
    from nibabel.orientations import apply_orientation, io_orientation, ornt_transform

    from ..io.nifti import Gunzip, read_exactly, read_volume_header

    expected, shape = series_affine(volume)
    stream = Gunzip(io.BytesIO(data)) if data[:2] == b"\x1f\x8b" else io.BytesIO(data)
    try:
        prefix, hdr, header_size, stored_shape, dtype, affine, _, slope, inter = read_volume_header(
            stream, name, "label volume")
        transform = ornt_transform(io_orientation(affine), io_orientation(expected))
        oriented = [0, 0, 0]
        for axis, (target, _) in enumerate(transform):
            oriented[int(target)] = stored_shape[axis]
        if tuple(oriented) != tuple(shape):
            raise InputError(f"{name} has {' x '.join(map(str, stored_shape))} voxels; this series' grid is "
                             f"{' x '.join(map(str, shape))}. Send labels on the series' own grid.")
        offset = int(hdr["vox_offset"])
        if not header_size <= offset <= header_size + (1 << 20):
            raise InputError(f"{name} has an implausible voxel offset ({offset}).")
        if offset > len(prefix):
            read_exactly(stream, offset - len(prefix), name)
            head = b""
        else:
            head = prefix[offset:]
        count = int(np.prod(stored_shape, dtype=np.int64))
        raw = head + read_exactly(stream, count * dtype.itemsize - len(head), name)
        if stream.read(1):
            raise InputError(f"{name} holds more data than its header declares (a damaged or crafted file).")
    except zlib.error as exc:
        raise InputError(f"{name} is not a gzip file we can unpack.") from exc
    if not np.allclose(_reoriented_affine(affine, transform, stored_shape), expected, atol=AFFINE_TOLERANCE_MM):
        raise InputError(f"{name}'s affine does not match this series' geometry. Send labels in the series' "
                         "patient space, as the series' NIfTI export writes them.")
    stored = np.frombuffer(raw, dtype=dtype).reshape(stored_shape[::-1]).T  # NIfTI: the first axis varies fastest
    values = apply_orientation(stored, transform)
    if slope is not None and (slope, inter or 0.0) != (1.0, 0.0):
        values = values * slope + (inter or 0.0)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise InputError(f"{name} holds fractional values; labels are whole numbers 0, 1, 2.")
        if values.size and (values.min() < min(registry.VALUES) or values.max() > max(registry.VALUES)):
            raise InputError(f"The label volume holds values other than {registry.describe_values()}.")
        values = values.astype(np.int16)
    return check_labels(_to_radiological(values, volume), volume.hu.shape)


def _reoriented_affine(affine: np.ndarray, transform: np.ndarray, shape) -> np.ndarray:
    """The affine of the voxels after `transform` (what nibabel's `as_reoriented` computes, without
    touching any voxel)."""
    from nibabel.orientations import inv_ornt_aff

    return affine @ inv_ornt_aff(transform, shape)


SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
MAX_SEG_SEGMENTS = 8  # segments a label SEG may describe (ours has two)
# An uncompressed SEG of this series is at most every slice x every segment at 8 bits, plus its
# headers (a per-frame sequence of some KB a frame): inflation of a deflated file is counted to this.
SEG_HEADER_BYTES_PER_FRAME = 4096


def labels_from_seg(data: bytes, volume: SeriesVolume, name: str = "labels") -> np.ndarray:
    """A DICOM Segmentation referencing this series -> uint8 (z, y, x).

    Its segments are read by label: one naming a tumour (or lesion, neoplasm) is label 2, one
    naming the liver label 1 (tumour wins where both are set); frames are placed by the source
    instance they reference, so any subset of the series' slices may be present.  Before any
    frame is unpacked: the inflated size of a deflated file is counted, the frame count must be
    what the pixel data holds and at most one a slice and segment, each frame must reference a
    slice of this series and a described segment, and the frame size must be the series'."""
    import pydicom

    from ..io.loading import check_inflated_size

    if volume.kind != "dicom":
        raise InputError("This series was uploaded as NIfTI; send its labels as NIfTI, not DICOM-SEG.")
    z, rows, cols = volume.hu.shape
    most_frames = z * MAX_SEG_SEGMENTS
    check_inflated_size(data, most_frames * (rows * cols + SEG_HEADER_BYTES_PER_FRAME) + (1 << 20))
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        sop_class = str(ds.get("SOPClassUID", ""))
    except Exception as exc:  # pydicom raises many types on damaged files: all mean "unreadable"
        raise InputError(f"{name} is not a DICOM Segmentation we can read.") from exc
    if sop_class != SEGMENTATION_STORAGE:
        raise InputError(f"{name} is a DICOM file but not a Segmentation (SOP class {sop_class or 'missing'}).")
    try:
        return _seg_labels(ds, volume, name, most_frames)
    except InputError:
        raise
    except Exception as exc:  # a damaged element deep in the file
        raise InputError(f"{name} is a damaged DICOM Segmentation ({type(exc).__name__}).") from exc


def _seg_labels(ds, volume: SeriesVolume, name: str, most_frames: int) -> np.ndarray:
    z, rows, cols = volume.hu.shape
    series_uid = str(volume.datasets[0].get("SeriesInstanceUID", ""))
    referenced = {str(item.SeriesInstanceUID) for item in ds.get("ReferencedSeriesSequence", [])}
    if series_uid not in referenced:
        raise InputError(f"{name} references another series ({', '.join(sorted(referenced)) or 'none'}), "
                         f"not this one ({series_uid}).")
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_compressed:
        raise InputError(f"{name} is compressed ({syntax.name}); send the Segmentation uncompressed "
                         "(explicit or implicit VR little endian, or deflated).")
    segments = ds.get("SegmentSequence", [])
    if not 1 <= len(segments) <= MAX_SEG_SEGMENTS:
        raise InputError(f"{name} describes {len(segments)} segments; a label SEG has 1 to {MAX_SEG_SEGMENTS}.")
    value_of = {}
    for desc in segments:
        label = str(desc.get("SegmentLabel", "")).lower()
        if any(word in label for word in ("tumo", "lesion", "neoplas", "metasta")):
            value_of[int(desc.SegmentNumber)] = TUMOR
        elif "liver" in label:
            value_of[int(desc.SegmentNumber)] = LIVER
        else:
            value_of[int(desc.SegmentNumber)] = None  # described, not ours to read
    if not any(value_of.values()):
        raise InputError(f"{name} has no segment labelled liver or tumour.")
    if (int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)) != (rows, cols):
        raise InputError(f"{name}'s frames are {ds.get('Columns')}x{ds.get('Rows')} pixels; the series' are "
                         f"{cols}x{rows}.")
    frames = int(ds.get("NumberOfFrames", 0) or 0)
    if not 1 <= frames <= min(most_frames, z * len(segments)):
        raise InputError(f"{name} declares {frames} frames; a Segmentation of this series' {z} slices and "
                         f"{len(segments)} segment(s) has 1 to {z * len(segments)}.")
    bits = int(ds.get("BitsAllocated", 0) or 0)
    kind = str(ds.get("SegmentationType", "")).upper()
    if (kind, bits) not in (("BINARY", 1), ("FRACTIONAL", 8)):
        raise InputError(f"{name} is a {kind or 'untyped'} Segmentation of {bits} bits a pixel; BINARY (1 bit) "
                         "and FRACTIONAL (8 bits) are read.")
    pixels = ds.get("PixelData")
    expected = -(-frames * rows * cols * bits // 8)
    if pixels is None or not expected <= len(pixels) <= expected + 1:
        held = 0 if pixels is None else len(pixels) * 8 // (rows * cols * bits)
        raise InputError(f"{name} declares {frames} frames but its pixel data holds {held}; the file is "
                         "damaged or its NumberOfFrames is wrong.")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence", [])
    if len(per_frame) != frames:
        raise InputError(f"{name} declares {frames} frames but describes {len(per_frame)}.")
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    index_of = {str(d.SOPInstanceUID): k for k, d in enumerate(volume.datasets)}
    placed = []
    for i, item in enumerate(per_frame):
        segment = _first(item, shared, "SegmentIdentificationSequence")
        number = int(segment.ReferencedSegmentNumber) if segment is not None else -1
        if number not in value_of:
            raise InputError(f"{name}'s frame {i + 1} belongs to segment {number}, which it does not describe.")
        derivation = _first(item, shared, "DerivationImageSequence")
        sources = derivation.get("SourceImageSequence", []) if derivation is not None else []
        uid = str(sources[0].ReferencedSOPInstanceUID) if sources else ""
        if uid not in index_of:
            raise InputError(f"{name}'s frame {i + 1} references an image that is not a slice of this series.")
        placed.append((i, index_of[uid], value_of[number]))
    if not any(value for _, _, value in placed):
        raise InputError(f"{name} has no frame of a liver or tumour segment.")
    threshold = int(ds.get("MaximumFractionalValue", 255) or 255) / 2
    buffer = np.frombuffer(pixels, dtype=np.uint8)
    labels = np.zeros(volume.hu.shape, np.uint8)
    flip_rows, flip_cols = volume.flips
    for value in (LIVER, TUMOR):  # tumour last: it wins where both are set
        for i, k, frame_value in placed:
            if frame_value != value:
                continue
            mask = _seg_frame(buffer, i, rows, cols, bits, threshold)
            if flip_rows:
                mask = mask[::-1]
            if flip_cols:
                mask = mask[:, ::-1]
            labels[k][mask] = value
    return labels


def _first(item, shared, keyword: str):
    """The first item of a functional group, per frame or shared by all frames (None: neither)."""
    for group in (item, shared):
        sequence = group.get(keyword) if group is not None else None
        if sequence:
            return sequence[0]
    return None


def _seg_frame(buffer: np.ndarray, i: int, rows: int, cols: int, bits: int, threshold: float) -> np.ndarray:
    """Frame `i` of SEG pixel data as a bool (rows, cols) mask: 1-bit frames are packed without
    padding between frames (least significant bit first), 8-bit frames are fractions."""
    n = rows * cols
    if bits == 8:
        return (buffer[i * n:(i + 1) * n] > threshold).reshape(rows, cols)
    first = i * n
    start, skip = first // 8, first % 8
    chunk = buffer[start:start + -(-(skip + n) // 8)]
    return np.unpackbits(chunk, bitorder="little")[skip:skip + n].astype(bool).reshape(rows, cols)


__all__ = ["check_labels", "interpolate", "labels_from_nifti", "labels_from_seg", "labels_from_upload", "labels_to_nifti",
           "recompute_series", "remove_lesion", "series_affine", "upload_kind"]
