"""TumorApp/analysis/series/correct.py: a corrected label volume gives the figures the network's
stage gives for the same masks; NIfTI and DICOM-SEG labels are read back on the series' own grid,
and another geometry is refused."""
from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from TumorApp.analysis.errors import InputError
from TumorApp.analysis.series.export import dicom_seg, nifti_labels
from TumorApp.analysis.series.correct import (labels_from_nifti, labels_from_seg, labels_from_upload, labels_to_nifti,
                                              recompute_series, remove_lesion, series_affine)
from TumorApp.analysis.series.volume import load_series, measure_volume

from ..series_fixtures import dicom_series


def _labels(shape) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[:, 100:300, 60:260] = 1
    labels[1:3, 150:170, 80:130] = 2  # one lesion over slices 1-2
    labels[3, 250:254, 200:204] = 2  # a second, small one on slice 3
    return labels


@pytest.fixture(scope="module")
def dicom_volume():
    return load_series(dicom_series(4))


def test_recompute_gives_the_network_stage_figures_for_the_same_masks(dicom_volume):
    labels = _labels(dicom_volume.hu.shape)
    recomputed = recompute_series(dicom_volume, labels)
    measured = measure_volume(dicom_volume, labels >= 1, labels == 2)
    assert recomputed.to_dict() == measured.to_dict()
    assert len(recomputed.lesions) == 2 and recomputed.lesions[0].slice_range == (1, 2)
    voxel_ml = np.prod(dicom_volume.spacing_mm) / 1000
    assert recomputed.tumor_volume_ml == pytest.approx((labels == 2).sum() * voxel_ml)
    assert recomputed.liver_volume_ml == pytest.approx((labels >= 1).sum() * voxel_ml)


def test_recompute_refuses_other_values_and_shapes(dicom_volume):
    labels = _labels(dicom_volume.hu.shape)
    labels[0, 0, 0] = 3
    with pytest.raises(InputError, match="other than 0"):
        recompute_series(dicom_volume, labels)
    with pytest.raises(InputError, match="the series is 4 x 512 x 512"):
        recompute_series(dicom_volume, labels[:3])


def test_remove_lesion_clears_it_through_every_slice_it_spans(dicom_volume):
    labels = _labels(dicom_volume.hu.shape)
    result = recompute_series(dicom_volume, labels)
    cleared = remove_lesion(result, labels, 1)
    assert not (cleared[1:3] == 2).any() and (cleared[3] == 2).sum() == 16
    assert (cleared >= 1).sum() == (labels >= 1).sum()  # the lesion's voxels stay liver
    after = recompute_series(dicom_volume, cleared)
    assert len(after.lesions) == 1 and after.liver_volume_ml == pytest.approx(result.liver_volume_ml)


def test_dicom_series_labels_round_trip_through_nifti_in_patient_space(dicom_volume):
    labels = _labels(dicom_volume.hu.shape)
    assert np.array_equal(labels_from_upload(labels_to_nifti(dicom_volume, labels), dicom_volume), labels)
    # The affine a DICOM converter writes: x, y, z steps from PixelSpacing and the slice positions,
    # LPS turned to RAS; the origin is the first slice's ImagePositionPatient.
    affine, shape = series_affine(dicom_volume)
    row, col = dicom_volume.spacing_mm[1:]
    assert shape == (512, 512, 4)
    assert np.allclose(affine, [[-col, 0, 0, 0], [0, -row, 0, 0], [0, 0, 1.6, 100], [0, 0, 0, 1]])
    # Another tool's axis order or directions are fine: the same voxels in patient space.
    image = nib.Nifti1Image(labels.transpose(2, 1, 0), affine)
    flipped = image.as_reoriented(np.array([[1, -1], [0, 1], [2, -1]]))
    assert np.array_equal(labels_from_nifti(flipped.to_bytes(), dicom_volume), labels)


def _shifted(affine):  # the same grid 5 mm to the side
    moved = affine.copy()
    moved[0, 3] += 5
    return moved


@pytest.mark.parametrize("change", [_shifted, lambda a: a @ np.diag([2, 1, 1, 1])])  # moved, or twice the spacing
def test_nifti_labels_in_another_geometry_are_refused(dicom_volume, change):
    affine, _ = series_affine(dicom_volume)
    labels = _labels(dicom_volume.hu.shape).transpose(2, 1, 0)
    with pytest.raises(InputError, match="affine does not match this series' geometry"):
        labels_from_nifti(nib.Nifti1Image(labels, change(affine)).to_bytes(), dicom_volume)


def test_nifti_labels_of_another_size_or_format_are_refused(dicom_volume):
    affine, _ = series_affine(dicom_volume)
    small = np.zeros((512, 512, 3), np.uint8)
    with pytest.raises(InputError, match="512 x 512 x 3 voxels; this series' grid is 512 x 512 x 4"):
        labels_from_nifti(gzip.compress(nib.Nifti1Image(small, affine).to_bytes()), dicom_volume)
    with pytest.raises(InputError, match="neither NIfTI"):
        labels_from_upload(b"\x89PNG\r\n\x1a\n" + b"0" * 400, dicom_volume)


def test_dicom_seg_labels_are_read_back_by_source_instance():
    items = dicom_series(4, ImageOrientationPatient=[-1, 0, 0, 0, 1, 0])  # stored columns flipped
    volume = load_series(items)
    labels = _labels(volume.hu.shape)
    assert np.array_equal(labels_from_seg(dicom_seg(volume, labels, version=2, corrected_by="reader"), volume),
                          labels)
    other = load_series(dicom_series(4))
    with pytest.raises(InputError, match="references another series"):
        labels_from_seg(dicom_seg(other, labels), volume)


def test_nifti_series_labels_use_the_uploads_own_affine():
    hu = (np.arange(5 * 40 * 48, dtype=np.int32).reshape(5, 40, 48) % 1400 - 1000).astype(np.int16)
    affine = np.array([[-0.8, 0, 0, 10], [0, -0.7, 0, 20], [0, 0, 2.5, -30], [0, 0, 0, 1]])
    volume = load_series([("ct.nii", nib.Nifti1Image(np.ascontiguousarray(hu.transpose(2, 1, 0)), affine).to_bytes())])
    labels = np.zeros(volume.hu.shape, np.uint8)
    labels[1:4, 5:30, 5:40] = 1
    labels[2, 10:14, 6:9] = 2
    exported = nifti_labels(volume, labels, version=3, corrected_by="reader")
    assert b"version 3" in nib.Nifti1Image.from_bytes(gzip.decompress(exported)).header["descrip"].tobytes()
    assert np.array_equal(labels_from_upload(exported, volume), labels)
    with pytest.raises(InputError, match="affine does not match"):
        labels_from_nifti(nib.Nifti1Image(labels.transpose(2, 1, 0), affine @ np.diag([1, 1, 2, 1])).to_bytes(),
                          volume)


def test_interpolation_grows_a_lesion_between_two_outlined_slices():
    from TumorApp.analysis.series.correct import interpolate

    labels = np.zeros((5, 64, 64), np.uint8)
    labels[:, 10:54, 10:54] = 1
    yy, xx = np.mgrid[:64, :64]
    labels[0][(yy - 32) ** 2 + (xx - 32) ** 2 <= 4 ** 2] = 2   # radius 4 on the first slice
    labels[4][(yy - 32) ** 2 + (xx - 32) ** 2 <= 12 ** 2] = 2  # radius 12 on the last
    labels[2] = 0  # whatever was between is replaced
    out = interpolate(labels, 4, 0)
    areas = [(out[k] == 2).sum() for k in range(5)]
    assert areas[0] < areas[1] < areas[2] < areas[3] < areas[4]
    radius = np.sqrt(areas[2] / np.pi)
    assert 7 <= radius <= 9  # about halfway between 4 and 12
    assert (out[2] >= 1).sum() == 44 * 44 and np.array_equal(out[[0, 4]], labels[[0, 4]])
    with pytest.raises(InputError, match="at least one between"):
        interpolate(labels, 1, 2)
