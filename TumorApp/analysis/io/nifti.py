"""Read a NIfTI volume (.nii / .nii.gz) as int16 HU in radiological (z, y, x), header first.

The header's shape and data type are checked against the series budgets before any voxel is read,
so a small file claiming a huge volume is refused at once; gzip is unpacked a chunk at a time,
counted, and never past what the header declares.  Voxels are converted to int16 one stored plane
at a time (no float64 or transposed full copies).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from ..errors import InputError
from .loading import MAX_PIXELS, MAX_SIDE, MIN_SIDE
from .series_input import CHUNK, MAX_SERIES_BYTES, MAX_SERIES_VOXELS, MAX_SLICES, SeriesFile, sample_indices

# Extensions between the header and the voxels: a few KB in practice.
MAX_EXTENSION_BYTES = 1024 * 1024


@dataclass(frozen=True)
class NiftiSource:
    """What the export needs of the uploaded file: its affine and header (units)."""

    affine: np.ndarray
    header: object


@dataclass
class NiftiVolume:
    hu: np.ndarray | None  # int16 (z, y, x); None when only samples were read
    samples: dict[int, np.ndarray]  # slice index -> int16 (y, x), when sampling
    shape: tuple[int, int, int]  # (z, y, x)
    spacing_mm: tuple[float, float, float]
    source: NiftiSource


class Gunzip:
    """A gzip stream unpacked a chunk at a time: `read(n)` returns at most n bytes."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.inflater, self.tail = raw, zlib.decompressobj(16 + zlib.MAX_WBITS), b""

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n and not self.inflater.eof:
            if not self.tail:
                self.tail = self.raw.read(CHUNK)
                if not self.tail:
                    break
            out += self.inflater.decompress(self.tail, n - len(out))
            self.tail = self.inflater.unconsumed_tail
        return bytes(out)


def read_exactly(stream, n: int, name: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise InputError(f"{name} is truncated: it holds less data than its header declares.")
    return data


def read(f: SeriesFile, *, sample: bool = False) -> NiftiVolume:
    """The volume, or with `sample` only the slices `sample_indices` picks (the upload check: the
    whole file is still unpacked and counted, but only those planes are kept when the file stores
    axial planes); InputError for anything that is not a 3-D CT volume within the budgets."""
    with f.open() as raw:
        gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = Gunzip(raw) if gz else raw
        try:
            return _read(stream, f.name, sample)
        except zlib.error as exc:
            raise InputError(f"{f.name} is not a gzip file we can unpack.") from exc


def parse_header(prefix: bytes, name: str):
    import nibabel as nib

    sizes = {int.from_bytes(prefix[:4], "little"), int.from_bytes(prefix[:4], "big")}
    klass = nib.Nifti2Header if 540 in sizes else nib.Nifti1Header
    try:
        hdr = klass(prefix[:klass.template_dtype.itemsize], check=True)
        magic = bytes(hdr["magic"])
        shape = tuple(int(v) for v in hdr.get_data_shape())
        dtype = np.dtype(hdr.get_data_dtype())
        affine = hdr.get_best_affine()
        zooms = [float(z) for z in hdr.get_zooms()[:3]]
        slope, inter = hdr.get_slope_inter()
    except Exception as exc:  # nibabel raises several types on garbage
        raise InputError(f"{name} is not a NIfTI file we can read.") from exc
    if len(prefix) < klass.template_dtype.itemsize or magic[:3] not in (b"n+1", b"n+2"):
        raise InputError(f"{name} is not a single-file NIfTI volume (.nii or .nii.gz) we can read.")
    return hdr, klass.template_dtype.itemsize, shape, dtype, affine, zooms, slope, inter


def read_volume_header(stream, name: str, kind: str = "CT volume"):
    """The first 540 bytes of `stream` as a 3-D NIfTI header of numbers: (prefix, header, header
    size, shape, dtype, affine, zooms, slope, intercept); InputError for anything else."""
    prefix = stream.read(540)
    hdr, header_size, shape, dtype, affine, zooms, slope, inter = parse_header(prefix, name)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputError(f"{name} is a {len(shape)}-D image; a {kind} has 3 dimensions.")
    if dtype.kind not in "iuf" or dtype.itemsize > 8 or dtype.fields:
        raise InputError(f"{name} holds {dtype} values; a {kind} holds numbers (integers or floats).")
    return prefix, hdr, header_size, shape, dtype, affine, zooms, slope, inter


def _read(stream, name: str, sample: bool) -> NiftiVolume:
    from nibabel.orientations import io_orientation

    prefix, hdr, header_size, shape, dtype, affine, zooms, slope, inter = read_volume_header(stream, name)
    voxels = int(np.prod(shape, dtype=np.int64))
    declared = " x ".join(str(s) for s in shape)
    # The budgets, from the header alone, before any voxel is read.
    if voxels > MAX_SERIES_VOXELS:
        raise InputError(f"{name} declares {declared} voxels ({voxels / 1e6:,.0f} million); the limit is "
                         f"{MAX_SERIES_VOXELS / 1e6:,.0f} million voxels per series.")
    if voxels * dtype.itemsize > MAX_SERIES_BYTES:
        raise InputError(f"{name} declares {voxels * dtype.itemsize / 2**20:,.0f} MiB of voxels; the limit is "
                         f"{MAX_SERIES_BYTES // 2**20} MiB.")
    ornt = io_orientation(affine)  # per voxel axis: (R/A/S axis, flip)
    axis_of = {int(out): i for i, (out, _) in enumerate(ornt)}
    z, y, x = (shape[axis_of[2]], shape[axis_of[1]], shape[axis_of[0]])
    _check_shape(z, y, x)
    zooms_ras = [zooms[axis_of[k]] for k in range(3)]
    if not all(0.01 <= v <= 50 for v in zooms_ras):
        raise InputError(f"{name} has implausible voxel sizes {zooms_ras} mm.")
    offset = int(hdr["vox_offset"])
    if not header_size <= offset <= MAX_EXTENSION_BYTES:
        raise InputError(f"{name} has an implausible voxel offset ({offset}).")

    # Skip to the voxels (a .nii.gz cannot seek), counting what is skipped.
    if offset >= len(prefix):
        read_exactly(stream, offset - len(prefix), name)
        head = b""
    else:
        head = prefix[offset:]
    ni, nj, nk = shape
    plane_bytes = ni * nj * dtype.itemsize
    axial_planes = axis_of[2] == 2  # stored planes are axial slices: sampling needs no whole volume
    flip_z = ornt[2, 1] < 0
    wanted = {nk - 1 - r if flip_z else r for r in sample_indices(nk)} if sample else set()
    keep_all = not (sample and axial_planes)
    stored = np.empty((nk, nj, ni), np.int16) if keep_all else None  # C order: stored (i, j, k) transposed
    kept: dict[int, np.ndarray] = {}
    for k in range(nk):
        data = read_exactly(stream, plane_bytes - len(head), name)
        plane = np.frombuffer(head + data, dtype=dtype).reshape(nj, ni)
        head = b""
        if stored is not None:
            stored[k] = _to_hu(plane, slope, inter, name)
        elif k in wanted:
            kept[k] = _to_hu(plane, slope, inter, name)
    if stream.read(1):
        raise InputError(f"{name} holds more data than its header declares (a damaged or crafted file).")

    source = NiftiSource(affine=affine, header=hdr)
    spacing = (zooms_ras[2], zooms_ras[1], zooms_ras[0])
    if stored is None:  # samples of axial planes: to radiological orientation one by one
        samples = {(nk - 1 - k if flip_z else k): _radiological(kept[k].T, ornt[:2]) for k in kept}
        return NiftiVolume(None, samples, (z, y, x), spacing, source)
    hu = _radiological(stored.transpose(2, 1, 0), ornt)
    samples = {}
    if sample:
        samples = {k: hu[k] for k in sample_indices(z)}
    return NiftiVolume(hu, samples, (z, y, x), spacing, source)


def _to_hu(plane: np.ndarray, slope, inter, name: str) -> np.ndarray:
    values = plane.astype(np.float32)
    if plane.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise InputError(f"{name} holds invalid (non-finite) values.")
    if slope is not None:
        values = values * np.float32(slope) + np.float32(inter or 0.0)
    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)


def _radiological(stored: np.ndarray, ornt) -> np.ndarray:
    """Stored voxel axes -> (z, y, x) radiological (or (y, x) for a plane): a view flipped and
    transposed, copied once, as int16."""
    from nibabel.orientations import apply_orientation

    ras = apply_orientation(stored, ornt)  # axes R, A(, S)
    if ras.ndim == 2:
        return np.ascontiguousarray(ras.T[::-1, ::-1])
    # (x=R, y=A, z=S) -> (z, y, x) with columns to the patient's left and rows to posterior.
    return np.ascontiguousarray(ras.transpose(2, 1, 0)[:, ::-1, ::-1])


def _check_shape(z: int, y: int, x: int) -> None:
    if z > MAX_SLICES:
        raise InputError(f"The volume has {z} slices; at most {MAX_SLICES} can be analysed.")
    if y * x > MAX_PIXELS or max(y, x) > MAX_SIDE or min(y, x) < MIN_SIDE:
        raise InputError(f"The slices are {x}x{y} pixels; between {MIN_SIDE} and {MAX_SIDE} per side is "
                         "supported.")


__all__ = ["Gunzip", "NiftiSource", "NiftiVolume", "read", "read_exactly", "read_volume_header"]
