"""TumorApp/analysis/series/export.py: the DICOM-SEG opens with pydicom/highdicom and overlays the right
slices; the NIfTI label volume sits on the upload's own grid."""
from __future__ import annotations

import gzip
import io

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from TumorApp.analysis.series.export import dicom_seg, export_for, nifti_labels
from TumorApp.analysis.series.volume import load_series, measure_volume

from ..series_fixtures import dicom_series


def _masks(shape):
    liver = np.zeros(shape, bool)
    liver[:, 100:300, 60:260] = True
    tumor = np.zeros(shape, bool)
    tumor[1, 150:170, 80:130] = True  # slices 1 and 2 only (different sizes, so order shows)
    tumor[min(2, shape[0] - 1), 150:160, 80:130] = True
    return liver, tumor


@pytest.mark.parametrize("orientation", [[1, 0, 0, 0, 1, 0], [-1, 0, 0, 0, 1, 0]])
def test_dicom_seg_references_the_source_and_overlays_the_right_slices(orientation):
    items = dicom_series(4, ImageOrientationPatient=orientation)
    volume = load_series(items)
    liver, tumor = _masks(volume.hu.shape)
    result = measure_volume(volume, liver, tumor)
    blob, name = export_for(result.volume, result.label_volume())
    assert name == "segmentation.dcm"

    plain = pydicom.dcmread(io.BytesIO(blob))
    assert plain.Modality == "SEG" and plain.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    source_series = pydicom.dcmread(io.BytesIO(items[0][1])).SeriesInstanceUID
    assert plain.ReferencedSeriesSequence[0].SeriesInstanceUID == source_series

    seg = hd.seg.segread(io.BytesIO(blob))
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Liver", "Liver tumour"]
    # Per source file (by its SOP instance UID, i.e. by the file the user uploaded), the tumour
    # frame must be where the mask was: the 2nd and 3rd slices by position.
    by_position = sorted((pydicom.dcmread(io.BytesIO(data)) for _, data in items),
                         key=lambda ds: float(ds.ImagePositionPatient[2]))
    uids = [ds.SOPInstanceUID for ds in by_position]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1, 2])
    assert pixels.shape == (4, 512, 512, 2)
    assert pixels[..., 1].sum(axis=(1, 2)).tolist() == [0, 20 * 50, 10 * 50, 0]
    stored_tumor = tumor[:, :, ::-1] if orientation[0] < 0 else tumor  # back to the file's pixel grid
    assert np.array_equal(pixels[..., 1].astype(bool), stored_tumor)
    assert pixels[..., 0].sum() == liver.sum()


def test_nifti_labels_sit_on_the_uploaded_grid():
    hu = (np.arange(5 * 40 * 48, dtype=np.int32).reshape(5, 40, 48) % 1400 - 1000).astype(np.int16)
    affine = np.array([[-0.8, 0, 0, 10], [0, -0.7, 0, 20], [0, 0, 2.5, -30], [0, 0, 0, 1]])  # L, P, S axes
    upload = nib.Nifti1Image(np.ascontiguousarray(hu.transpose(2, 1, 0)), affine)
    volume = load_series([("ct.nii", upload.to_bytes())])
    liver, tumor = np.zeros(volume.hu.shape, bool), np.zeros(volume.hu.shape, bool)
    liver[1:4, 5:30, 5:40] = True
    tumor[2, 10:14, 6:9] = True
    out = nib.Nifti1Image.from_bytes(gzip.decompress(nifti_labels(volume, measure_volume(volume, liver, tumor).label_volume())))
    assert out.shape == upload.shape and np.allclose(out.affine, affine)
    labels = np.asarray(out.dataobj)
    # In this file voxel (i, j, k) is radiological (x=i, y=j, z=k): the tumour is where we put it.
    assert labels.transpose(2, 1, 0)[2, 10:14, 6:9].tolist() == [[2] * 3] * 4
    assert (labels == 2).sum() == 12 and (labels > 0).sum() == liver.sum()


def test_dicom_seg_of_a_series_without_tumour_has_liver_only():
    volume = load_series(dicom_series(2))
    liver, _ = _masks(volume.hu.shape)
    seg = hd.seg.segread(io.BytesIO(dicom_seg(volume, liver.astype(np.uint8))))
    assert seg.NumberOfFrames == 2  # empty tumour frames are omitted


@pytest.mark.parametrize("with_tumour", [True, False])
def test_dicom_seg_is_the_one_stock_highdicom_makes(monkeypatch, with_tumour):
    """The slab-wise input check (`_segmentation_class`) changes memory, not the file: pixels,
    frames, references and SegmentsOverlap equal highdicom's own `Segmentation`'s."""
    from TumorApp.analysis.series import export

    volume = load_series(dicom_series(5, ImageOrientationPatient=[-1, 0, 0, 0, 1, 0]))
    liver, tumor = _masks(volume.hu.shape)
    labels = measure_volume(volume, liver, tumor if with_tumour else np.zeros_like(tumor)).label_volume()
    monkeypatch.setattr(export, "_CHECK_SLAB", 2)  # several slabs on 5 slices
    lean = pydicom.dcmread(io.BytesIO(dicom_seg(volume, labels)))
    monkeypatch.setattr(export, "_segmentation_class", lambda: hd.seg.Segmentation)
    stock = pydicom.dcmread(io.BytesIO(dicom_seg(volume, labels)))

    assert lean.SegmentsOverlap == stock.SegmentsOverlap == ("YES" if with_tumour else "NO")
    for keyword in ("PixelData", "NumberOfFrames", "PerFrameFunctionalGroupsSequence",
                    "SharedFunctionalGroupsSequence", "ReferencedSeriesSequence", "SegmentSequence"):
        assert lean[keyword] == stock[keyword], keyword
    decoded = hd.seg.Segmentation.from_dataset(lean).get_pixels_by_source_instance(
        source_sop_instance_uids=[ds.SOPInstanceUID for ds in volume.datasets], segment_numbers=[1, 2])
    assert np.array_equal(decoded[..., 0], (labels > 0)[:, :, ::-1])  # the file's own pixel grid
    assert np.array_equal(decoded[..., 1], (labels == 2)[:, :, ::-1])


def test_dicom_seg_still_refuses_a_non_binary_stack():
    from TumorApp.analysis.series.export import _segmentation_class

    stack = np.zeros((3, 4, 4, 2), np.uint8)
    stack[2, 1, 1, 1] = 2
    with pytest.raises(ValueError, match="binary"):
        _segmentation_class()._check_and_cast_pixel_array(
            stack, np.array([1, 2]), hd.seg.SegmentationTypeValues.BINARY, np.uint8)
