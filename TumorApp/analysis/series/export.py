"""Series masks out for other tools: a DICOM Segmentation (highdicom) for DICOM series, a NIfTI
label volume (nibabel) for NIfTI uploads.  No Django.

The DICOM-SEG has two BINARY segments, 1 liver (whole liver, tumours included) and 2 tumour, one
frame per source slice that has any, referencing the source series' instances (3D Slicer, OHIF
and PACS overlay it on the series).  The NIfTI volume has the upload's own voxel grid and affine,
values 0 background, 1 liver, 2 tumour.
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np

from .volume import SeriesVolume

SOFTWARE = "TumorApp liver/tumour U-Net"
VERSION = "1"


def export_for(volume: SeriesVolume, labels: np.ndarray, *, version: int = 0,
               corrected_by: str = "") -> tuple[bytes, str]:
    """(file bytes, file name) in the format that suits the upload.

    `labels`: uint8 (z, y, x) on `volume`'s grid, 0 background, 1 liver, 2 tumour
    (`SeriesResult.label_volume()`, or the stored labels of a finished job).  `version` 0 is the
    network's; a corrected version (issue 20) says so in the file (`describe`)."""
    if volume.kind == "dicom":
        return dicom_seg(volume, labels, version=version, corrected_by=corrected_by), "segmentation.dcm"
    return nifti_labels(volume, labels, version=version, corrected_by=corrected_by), "labels.nii.gz"


def describe(version: int, corrected_by: str = "") -> str:
    """Which labels a file carries, in words short enough for a DICOM LO (64) or NIfTI descrip (80)."""
    if version == 0:
        return "Automated liver and tumour segmentation (research use only)"
    return f"Liver/tumour labels v{version}, corrected by {corrected_by}"[:64]


def _stored_grid(volume: SeriesVolume, mask: np.ndarray) -> np.ndarray:
    """Undo the flips that brought the stored pixels to radiological orientation."""
    flip_rows, flip_cols = volume.flips
    if flip_rows:
        mask = mask[:, ::-1]
    if flip_cols:
        mask = mask[:, :, ::-1]
    return np.ascontiguousarray(mask)


# Planes per step of the SEG input check below: 32 x 512 x 512 x 2 segments is 16 MiB.
_CHECK_SLAB = 32


@lru_cache(maxsize=None)  # one class per process, not one per export
def _segmentation_class():
    """highdicom's `Segmentation` with its input check done a slab of planes at a time.

    For a (z, y, x, segment) uint8 input the stock check (`_check_and_cast_pixel_array`, highdicom
    0.28) sums over the segments into a whole uint64 volume, 8 bytes a voxel: 1.7 GiB at the series
    voxel limit, most of the export's peak.  This one computes the same two facts (binary? segments
    overlap?) slab by slab and leaves every other input to highdicom; the file is unchanged."""
    import highdicom as hd

    stock = getattr(hd.seg.Segmentation, "_check_and_cast_pixel_array", None)
    if stock is None:  # a highdicom without the hook: its own check, whatever it costs
        return hd.seg.Segmentation

    class Segmentation(hd.seg.Segmentation):
        @classmethod
        def _check_and_cast_pixel_array(cls, pixel_array, segment_numbers, segmentation_type, dtype):
            if not (type(pixel_array) is np.ndarray and pixel_array.ndim == 4 and pixel_array.dtype == np.uint8
                    and pixel_array.shape[-1] == len(segment_numbers) > 1
                    and segmentation_type == hd.seg.SegmentationTypeValues.BINARY):
                return super()._check_and_cast_pixel_array(pixel_array, segment_numbers, segmentation_type, dtype)
            top, overlap = 0, False
            for start in range(0, len(pixel_array), _CHECK_SLAB):
                slab = pixel_array[start:start + _CHECK_SLAB]
                top = max(top, int(slab.max()))
                if top > 1:
                    raise ValueError("When passing a 4D stack of segments with an integer pixel type, "
                                     "the pixel array must be binary.")
                # uint8 sums: at most the number of segments, no overflow, 1 byte a pixel.
                overlap = overlap or bool((slab.sum(axis=-1, dtype=np.uint8) > 1).any())
            return pixel_array, (hd.seg.SegmentsOverlapValues.YES if overlap else hd.seg.SegmentsOverlapValues.NO)

    return Segmentation


def seg_description(version: int = 0, corrected_by: str = "") -> dict:
    """What every SEG of ours says about itself (series export and slice send): two BINARY segments,
    1 liver (tumours included) and 2 tumour, made by this software; `version` > 0 is a person's
    correction of the network's outline, so semi-automatic.  Keyword arguments of `Segmentation`."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name=SOFTWARE, version=VERSION, family=codes.cid7162.ArtificialIntelligence)
    kind = (hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC if version == 0
            else hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC)

    def segment(number: int, label: str, category, property_type):
        return hd.seg.SegmentDescription(
            segment_number=number, segment_label=label, segmented_property_category=category,
            segmented_property_type=property_type, algorithm_type=kind, algorithm_identification=algorithm)

    return {
        "segmentation_type": hd.seg.SegmentationTypeValues.BINARY,
        "segment_descriptions": [
            segment(1, "Liver", codes.SCT.Organ, codes.SCT.Liver),
            segment(2, "Liver tumour", codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Neoplasm),
        ],
        "manufacturer": "TumorApp",
        "manufacturer_model_name": SOFTWARE,
        "software_versions": VERSION,
        "device_serial_number": "0",
        "content_description": describe(version, corrected_by),
        "content_label": "LIVER_TUMOUR",
    }


def dicom_seg(volume: SeriesVolume, labels: np.ndarray, *, version: int = 0, corrected_by: str = "") -> bytes:
    import highdicom as hd
    from pydicom.uid import generate_uid

    sources = [ds.copy() for ds in volume.datasets]
    if not all("FrameOfReferenceUID" in ds for ds in sources):
        # Some exports (IRCADb among them) omit it; the SEG needs one shared frame of reference.
        frame = generate_uid(prefix=None)
        for ds in sources:
            ds.FrameOfReferenceUID = frame
    # (z, y, x, segment) uint8 filled a slice at a time: no whole-volume temporaries.
    stacked = np.empty(labels.shape + (2,), dtype=np.uint8)
    for k in range(len(labels)):
        plane = _stored_grid(volume, labels[k:k + 1])[0]
        stacked[k, ..., 0] = plane > 0
        stacked[k, ..., 1] = plane == 2
    seg = _segmentation_class()(
        source_images=sources,
        pixel_array=stacked,
        series_instance_uid=hd.UID(),
        series_number=int(getattr(sources[0], "SeriesNumber", 0) or 0) + 1000,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        omit_empty_frames=True,
        **seg_description(version, corrected_by),
    )
    buf = io.BytesIO()
    seg.save_as(buf)
    return buf.getvalue()


def nifti_labels(volume: SeriesVolume, labels: np.ndarray, *, version: int = 0, corrected_by: str = "") -> bytes:
    """0/1/2 labels on the uploaded NIfTI's grid, with its affine; `descrip` says which version."""
    import gzip

    import nibabel as nib
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

    source = volume.nifti
    labels = np.asarray(labels, dtype=np.uint8)  # (z, y, x) radiological
    ras = labels[:, ::-1, ::-1].transpose(2, 1, 0)  # back to canonical R, A, S voxel axes
    to_source = ornt_transform(axcodes2ornt(("R", "A", "S")), io_orientation(source.affine))
    data = np.ascontiguousarray(apply_orientation(ras, to_source)).astype(np.uint8)
    image = nib.Nifti1Image(data, source.affine)
    image.header.set_xyzt_units(*source.header.get_xyzt_units())
    image.header["descrip"] = f"TumorApp labels version {version}: {describe(version, corrected_by)}"[:79].encode()
    return gzip.compress(image.to_bytes(), compresslevel=6)
