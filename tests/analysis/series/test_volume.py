"""TumorApp/analysis/series/volume.py: series loading rules, 3-D lesions from masks, and a real series end to end."""
from __future__ import annotations

import io
import zipfile

import nibabel as nib

import numpy as np
import pydicom
import pytest

from TumorApp.analysis.config import CONTRACT
from TumorApp.analysis.series import volume as vol_mod
from TumorApp.analysis.errors import InputError
from TumorApp.analysis.series.volume import SeriesVolume, analyze_series, load_series, measure_volume

from ..series_fixtures import SLICE_66, SLICE_84, dicom_series


def _volume(shape, spacing) -> SeriesVolume:
    return SeriesVolume(hu=np.zeros(shape, np.int16), spacing_mm=spacing, kind="nifti")


# --- 3-D measurement against a hand computation --------------------------------------------------

def test_lesion_volumes_match_hand_computation():
    spacing = (2.0, 0.5, 0.8)  # z, y, x mm: one voxel is 0.8 mm^3
    shape = (10, 100, 100)
    liver = np.zeros(shape, bool)
    liver[1:9, 20:80, 10:90] = True  # 8 x 60 x 80 voxels
    tumor = np.zeros(shape, bool)
    tumor[2:6, 30:40, 20:40] = True  # lesion A: 4 slices of 10 x 20 px, patient's right (image left), anterior
    tumor[7, 60:66, 70:76] = True  # lesion B: one slice of 6 x 6 px, left, posterior
    tumor[6, 66, 76] = True  # touches B only at a corner on the next slice: same lesion (26-connected)

    result = measure_volume(_volume(shape, spacing), liver, tumor)

    voxel_ml = 2.0 * 0.5 * 0.8 / 1000
    a_voxels, b_voxels = 4 * 10 * 20, 6 * 6 + 1
    assert [les.voxels for les in result.lesions] == [a_voxels, b_voxels]
    a, b = result.lesions
    assert a.volume_ml == pytest.approx(a_voxels * voxel_ml)  # 0.64 mL
    assert b.volume_ml == pytest.approx(b_voxels * voxel_ml)
    assert result.liver_volume_ml == pytest.approx(8 * 60 * 80 * voxel_ml)
    assert result.tumor_volume_ml == pytest.approx((a_voxels + b_voxels) * voxel_ml)
    assert result.tumor_burden_percent == pytest.approx(100 * (a_voxels + b_voxels) / (8 * 60 * 80))
    # Longest axial diameter of a 10 x 20 px rectangle at 0.5 x 0.8 mm: between the pixel
    # centres' diagonal (hypot(4.5, 15.2) = 15.85) and the outer corners' (hypot(5, 16) = 16.76).
    assert 15.85 <= a.max_diameter_mm <= 16.77
    assert a.max_diameter_slice in range(2, 6)
    assert a.slice_range == (2, 5) and b.slice_range == (6, 7)
    assert b.max_diameter_slice == 7
    assert a.centroid_mm == pytest.approx((3.5 * 2.0, 34.5 * 0.5, 29.5 * 0.8))
    assert (a.side, a.part) == ("right", "anterior")
    assert (b.side, b.part) == ("left", "posterior")
    assert result.stage == "I"  # longest diameter <= 20 mm
    d = result.to_dict()
    assert d["slices"] == 10 and d["spacing_mm"] == [2.0, 0.5, 0.8]
    assert d["lesions"][0]["slice_range"] == [2, 5]
    assert set(d["lesions"][0]) == {"volume_ml", "max_diameter_mm", "max_diameter_slice", "slice_range",
                                     "centroid_mm", "side", "part"}
    labels = result.label_volume()
    assert labels[3, 35, 30] == 2 and labels[3, 25, 15] == 1 and labels[0, 0, 0] == 0
    assert all(np.array_equal(result.label_slice(k), labels[k]) for k in range(shape[0]))
    lesion_labels = result.lesion_labels  # kept within the tumours' box, given whole
    assert lesion_labels.shape == shape and lesion_labels.dtype == np.int32
    assert (lesion_labels == 1).sum() == a_voxels and (lesion_labels == 2).sum() == b_voxels
    assert not lesion_labels[~tumor].any()


def test_longest_diameter_is_the_largest_feret_diameter_of_any_plane():
    # The pruned search (planes widest first, stopped by a bound) against measuring every plane,
    # on random lesions with anisotropic pixels and repeated planes (ties).
    import cv2
    from skimage.measure import regionprops

    rng = np.random.default_rng(5)
    for _ in range(60):
        depth, h, w = int(rng.integers(2, 7)), int(rng.integers(4, 40)), int(rng.integers(4, 40))
        own = np.zeros((depth, h, w), bool)
        for k in range(depth):
            plane = np.zeros((h, w), np.uint8)
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2)))
            cv2.ellipse(plane, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
            own[k] = own[k - 1] if k and rng.random() < 0.3 else plane > 0
        spacing = (float(rng.uniform(0.3, 2)), float(rng.uniform(0.3, 2)))
        every = [(float(regionprops(p.astype(np.uint8), spacing=spacing)[0].feret_diameter_max), k)
                 for k, p in enumerate(own) if p.any()]
        longest = max(d for d, _ in every)
        assert vol_mod._longest_axial_diameter(own, spacing) == (longest, min(k for d, k in every if d == longest))


def test_tumour_outside_the_given_liver_counts_as_liver():
    tumor = np.zeros((3, 20, 20), bool)
    tumor[1, 5:8, 5:8] = True
    result = measure_volume(_volume(tumor.shape, (1.0, 1.0, 1.0)), np.zeros_like(tumor), tumor)
    assert np.array_equal(result.liver, tumor) and result.liver_volume_ml == pytest.approx(9 / 1000)


def test_no_tumour_gives_no_stage_and_zero_burden():
    liver = np.zeros((3, 40, 40), bool)
    liver[:, 10:30, 10:30] = True
    result = measure_volume(_volume(liver.shape, (1.0, 1.0, 1.0)), liver, np.zeros_like(liver))
    assert result.lesions == [] and result.stage is None and result.tumor_burden_percent == 0
    assert result.liver_volume_ml == pytest.approx(3 * 20 * 20 / 1000)


def test_long_lesion_sets_stage_three():
    tumor = np.zeros((2, 200, 200), bool)
    tumor[0, 50:60, 20:180] = True  # 160 px x 0.5 mm = 80 mm
    result = measure_volume(_volume(tumor.shape, (5.0, 0.5, 0.5)), tumor.copy(), tumor)
    assert result.stage == "III" and result.lesions[0].max_diameter_mm > 50


# --- DICOM series loading -------------------------------------------------------------------------

def test_slices_are_ordered_by_position_not_file_name():
    items = dicom_series(4, sources=(SLICE_66, SLICE_84))  # names run against the positions
    volume = load_series(items)
    expected = [pydicom.dcmread(p).pixel_array for p in (SLICE_66, SLICE_84, SLICE_66, SLICE_84)]
    assert volume.kind == "dicom" and volume.slices == 4
    for k in range(4):
        assert np.array_equal(volume.hu[k], expected[k].astype(np.int16))  # slope 1, intercept 0
    assert volume.spacing_mm == pytest.approx((1.6, 0.57, 0.57), abs=1e-4)
    assert [float(ds.ImagePositionPatient[2]) for ds in volume.datasets] == [100.0, 101.6, 103.2, 104.8]
    assert "PixelData" not in volume.datasets[0]


def test_files_in_any_order_give_the_volume_in_position_order():
    # Pixels are decoded as each file is read and put in position order in place afterwards:
    # a shuffled upload (several permutation cycles) gives the same volume as one slice at a time.
    rng = np.random.default_rng(7)
    items = dicom_series(11, sources=(SLICE_66, SLICE_84))
    for k, (name, data) in enumerate(items):  # each slice its own offset, so that a swap would show
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.PixelData = (ds.pixel_array.astype(np.int32) + 10 * k).astype(ds.pixel_array.dtype).tobytes()
        buf = io.BytesIO()
        ds.save_as(buf)
        items[k] = (name, buf.getvalue())
    shuffled = [items[i] for i in rng.permutation(len(items))]
    volume = load_series(shuffled)
    for k, (name, data) in enumerate(items):
        one = pydicom.dcmread(io.BytesIO(data))
        assert np.array_equal(volume.hu[k], one.pixel_array.astype(np.int16)), name
        assert float(volume.datasets[k].ImagePositionPatient[2]) == float(one.ImagePositionPatient[2])


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8])
@pytest.mark.parametrize("slope, intercept", [(1, -1024), (1, 0), (2, -1024), (-1, 40000), (1, -40000), (1.5, -1024),
                                              (1, -0.5)])
def test_integer_rescale_gives_what_the_modality_lut_gives(dtype, slope, intercept):
    from pydicom.dataset import Dataset

    from TumorApp.analysis.io.loading import modality_lut

    info = np.iinfo(dtype)
    stored = np.random.default_rng(3).integers(info.min, info.max, (16, 16), endpoint=True).astype(dtype)
    stored[0, :2] = info.min, info.max
    ds = Dataset()
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    out = np.zeros(stored.shape, np.int16)
    expected = np.clip(np.rint(modality_lut(stored, ds)), -32768, 32767).astype(np.int16)
    if vol_mod._integer_rescale(stored, ds, out):
        assert np.array_equal(out, expected)
    else:  # fractional rescales take the general path
        assert not (float(slope).is_integer() and float(intercept).is_integer())


def test_rescale_tags_give_hu():
    items = dicom_series(2, RescaleIntercept=-1024, RescaleSlope=1)
    volume = load_series(items)
    raw = pydicom.dcmread(SLICE_66).pixel_array.astype(np.int32)
    assert np.array_equal(volume.hu[0], (raw - 1024).astype(np.int16))


def test_zip_and_folder_give_the_same_volume(tmp_path):
    items = dicom_series(3)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in items:
            archive.writestr(f"series/{name}", data)
        archive.writestr("__MACOSX/._x", b"junk")
    from_zip = load_series([("series.zip", buf.getvalue())])
    for name, data in items:
        (tmp_path / name).write_bytes(data)
    from_folder = load_series(tmp_path)
    assert np.array_equal(from_zip.hu, from_folder.hu) and from_zip.slices == 3


@pytest.mark.parametrize("case, message", [
    ("mixed", "different series"),
    ("sagittal", "not axial"),
    ("gap", "not evenly spaced"),
    ("duplicate", "same position"),
    ("sizes", "different sizes"),
    ("compressed", "could not be decoded"),
    ("not_dicom", "not a DICOM"),
    ("mr", "only CT"),
])
def test_bad_series_are_refused_with_a_clear_message(case, message):
    items = dicom_series(4)
    if case == "mixed":
        items = items[:2] + dicom_series(2, step=1.6)
    elif case == "sagittal":
        items = dicom_series(3, ImageOrientationPatient=[0, 1, 0, 0, 0, -1])
    elif case == "gap":
        items = items[:2] + items[3:]
    elif case == "duplicate":
        items = items + [items[0]]
    elif case == "sizes":
        ds = pydicom.dcmread(io.BytesIO(items[1][1]))
        ds.PixelData = ds.pixel_array[:256, :256].tobytes()
        ds.Rows = ds.Columns = 256
        buf = io.BytesIO()
        ds.save_as(buf)
        items[1] = (items[1][0], buf.getvalue())
    elif case == "compressed":
        ds = pydicom.dcmread(io.BytesIO(items[2][1]))
        from pydicom.encaps import encapsulate
        ds.PixelData = encapsulate([b"\x00" * 64])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
        buf = io.BytesIO()
        ds.save_as(buf)
        items[2] = (items[2][0], buf.getvalue())
    elif case == "not_dicom":
        items.append(("notes.txt", b"hello, not an image at all" * 10))
    elif case == "mr":
        items = dicom_series(2, Modality="MR")
    with pytest.raises(InputError, match=message):
        load_series(items)


def test_too_many_slices_are_refused(monkeypatch):
    monkeypatch.setattr(vol_mod, "MAX_SLICES", 3)
    with pytest.raises(InputError, match="at most 3"):
        load_series(dicom_series(4))


# --- NIfTI --------------------------------------------------------------------------------------

def _hu_volume() -> np.ndarray:
    ramp = np.arange(6 * 40 * 50, dtype=np.int16).reshape(6, 40, 50) % 1400 - 1000
    return ramp.astype(np.int16)  # -1000..399 HU: CT-like percentiles


@pytest.mark.parametrize("codes", ["RAS", "LPS"])
def test_nifti_is_read_in_radiological_orientation(codes):
    hu = _hu_volume()  # (z, y, x) radiological: x to the patient's left, y to posterior
    spacing = (2.5, 0.7, 0.8)
    if codes == "RAS":  # voxel axes x->R, y->A, z->S: flip both in-plane axes
        data = hu[:, ::-1, ::-1].transpose(2, 1, 0)
        affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
    else:  # stored as x->L, y->P, z->S (negative x/y steps in RAS world)
        data = hu.transpose(2, 1, 0)
        affine = np.diag([-spacing[2], -spacing[1], spacing[0], 1.0])
    blob = nib.Nifti1Image(np.ascontiguousarray(data), affine).to_bytes()
    volume = load_series([("ct.nii", blob)])
    assert volume.kind == "nifti" and np.array_equal(volume.hu, hu)
    assert volume.spacing_mm == pytest.approx(spacing)


def test_nifti_gz_and_bad_nifti():
    import gzip
    blob = nib.Nifti1Image(_hu_volume().transpose(2, 1, 0), np.eye(4)).to_bytes()
    assert load_series([("ct.nii.gz", gzip.compress(blob))]).slices == 6
    with pytest.raises(InputError, match="not a NIfTI"):
        load_series([("ct.nii", b"x" * 400)])
    with pytest.raises(InputError, match="one NIfTI"):
        load_series([("ct.nii", blob), ("b.nii", blob)])


# --- a real series through the network -------------------------------------------------------------

@pytest.mark.slow
def test_real_series_end_to_end():
    """Four copies of a real tumour slice, 1.6 mm apart: the tumours are 3-D lesions spanning all four."""
    progress = []
    result = analyze_series(dicom_series(4), progress=lambda done, total: progress.append((done, total)))
    d = result.to_dict()
    assert d["slices"] == 4 and progress[-1] == (4, 4)
    assert d["liver_volume_ml"] > 10 and d["tumor_volume_ml"] > 0 and d["stage"] in ("I", "II", "III")
    biggest = d["lesions"][0]
    assert biggest["slice_range"] == [0, 3]
    assert biggest["volume_ml"] == pytest.approx(result.lesions[0].voxels * 1.6 * 0.57 * 0.57 / 1000, rel=1e-3)
    assert result.lesion_labels.max() == len(d["lesions"])


# --- which slices the network sees ---------------------------------------------------------------

class SliceMarker:
    """A fake network whose liver is wherever the slice is bright (windowed to ~1);
    it records every slice it is given (each slice's constant value, in HU, is its index)."""

    def __init__(self):
        self.seen: list[int] = []

    def predict(self, batch):
        batch = np.asarray(batch, np.float32)
        out = np.zeros(batch.shape[:3] + (2,), np.float32)
        for i, x in enumerate(batch):
            low = CONTRACT.window_center - CONTRACT.window_width / 2
            self.seen.append(int(round(float(x[0, 0]) * CONTRACT.window_width + low)))  # back to HU: the index
            out[i, 32:96, 16:80, 0] = 1.0 if x[64, 64] > 0.99 else 0.0  # the bright ones have liver
        return out


def _marked_volume(liver_slices: range, n: int = 20) -> SeriesVolume:
    hu = np.zeros((n, 64, 64), np.int16)
    for k in range(n):
        hu[k] = k  # index in HU at the corner: which slice the fake was given
        if k in liver_slices:
            hu[k, 16:48, 16:48] = 300  # windowed to 1.0 at the centre: "liver" for the fake
    return SeriesVolume(hu=hu, spacing_mm=(1.0, 5.0, 5.0), kind="nifti")


def test_liverless_slices_between_liverless_neighbours_are_skipped():
    volume = _marked_volume(range(6, 11))
    fake = SliceMarker()
    progress = []
    liver, tumor = vol_mod.segment_volume(volume, fake, batch_size=4, progress=lambda d, t: progress.append((d, t)))
    # Every even slice, then the odd ones next to an even slice with liver (5 and 7, 9, 11).
    assert sorted(fake.seen) == sorted(list(range(0, 20, 2)) + [5, 7, 9, 11])
    assert [k for k in range(20) if liver[k].any()] == list(range(6, 11))
    assert not tumor.any()
    assert progress[-1] == (20, 20) and all(a[0] <= b[0] for a, b in zip(progress, progress[1:]))


def test_every_slice_mode_gives_the_same_masks_when_the_liver_spans_slices():
    volume = _marked_volume(range(3, 15))
    every, skipping = SliceMarker(), SliceMarker()
    full = vol_mod.segment_volume(volume, every, skip_liverless=False)
    fast = vol_mod.segment_volume(volume, skipping)
    assert sorted(every.seen) == list(range(20)) and len(skipping.seen) < 20
    assert all(np.array_equal(a, b) for a, b in zip(full, fast))


# --- the upload check and the series budgets (issue 18) -------------------------------------------

def test_check_series_reads_headers_and_accepts_a_real_series():
    found = vol_mod.check_series(dicom_series(5))
    assert (found.kind, found.slices, found.shape) == ("dicom", 5, (5, 512, 512))
    assert found.spacing_mm == pytest.approx((1.6, 0.57, 0.57), abs=1e-4)


def test_voxel_budget_is_refused_from_headers_before_any_pixel_is_decoded(monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("a pixel was decoded")

    monkeypatch.setattr(vol_mod, "decode_frame", no_decoding)
    monkeypatch.setattr(vol_mod, "MAX_SERIES_VOXELS", 3 * 512 * 512)
    for read in (vol_mod.check_series, load_series):
        with pytest.raises(InputError, match="million voxels"):
            read(dicom_series(4))


def test_file_count_is_refused_before_reading(monkeypatch):
    from TumorApp.analysis.io import series_input

    monkeypatch.setattr(series_input, "MAX_FILES", 3)
    with pytest.raises(InputError, match="at most 3"):
        load_series([(f"{k}.dcm", b"x") for k in range(4)])


def test_blank_series_is_refused_by_the_slice_input_check():
    items = dicom_series(4)
    blank = []
    for name, data in items:
        ds = pydicom.dcmread(io.BytesIO(data))
        ds.PixelData = np.zeros((ds.Rows, ds.Columns), ds.pixel_array.dtype).tobytes()
        buf = io.BytesIO()
        ds.save_as(buf)
        blank.append((name, buf.getvalue()))
    with pytest.raises(InputError, match="blank"):
        vol_mod.check_series(blank)
    with pytest.raises(InputError, match="blank"):
        analyze_series(blank, segmenter=object())  # refused before the network is asked


def test_a_series_without_liver_is_inconclusive_by_the_slice_staging_rule():
    empty = np.zeros((3, 40, 40), bool)
    result = measure_volume(_volume(empty.shape, (1.0, 1.0, 1.0)), empty, empty)
    assert result.inconclusive and result.to_dict()["inconclusive"] is True
    assert result.stage_label == "Inconclusive: no liver found in this series"
    liver = empty.copy()
    liver[1, 10:20, 10:20] = True
    found = measure_volume(_volume(empty.shape, (1.0, 1.0, 1.0)), liver, empty)
    assert not found.inconclusive and found.stage_label == "No Tumor Detected"


def _ct_nifti(axes: tuple[int, int, int], flips: tuple[bool, bool, bool]) -> tuple[bytes, np.ndarray]:
    """Six real CT slices as a NIfTI stored with voxel axes permuted/flipped; the expected (z, y, x)."""
    plane = pydicom.dcmread(SLICE_66).pixel_array.astype(np.int16)
    hu = np.stack([np.roll(plane, 7 * k, axis=1) for k in range(6)])  # (z, y, x), each slice different
    ras = hu[:, ::-1, ::-1].transpose(2, 1, 0)  # voxel axes R, A, S
    affine = np.zeros((4, 4))
    affine[3, 3] = 1
    data = ras
    for ras_axis, flip in enumerate(flips):
        if flip:
            data = np.flip(data, ras_axis)
    data = data.transpose(axes)  # stored axis i is RAS axis axes[i]
    for i, ras_axis in enumerate(axes):
        affine[ras_axis, i] = -1.0 if flips[ras_axis] else 1.0
    return nib.Nifti1Image(np.ascontiguousarray(data), affine).to_bytes(), hu


@pytest.mark.parametrize("axes, flips", [((0, 1, 2), (False, False, False)), ((0, 1, 2), (True, True, True)),
                                         ((2, 0, 1), (False, True, False))])
def test_nifti_check_samples_match_the_loaded_volume(axes, flips):
    import gzip

    from TumorApp.analysis.io import nifti
    from TumorApp.analysis.io.series_input import open_files

    blob, hu = _ct_nifti(axes, flips)
    items = [("ct.nii.gz", gzip.compress(blob))]
    volume = load_series(items)
    assert np.array_equal(volume.hu, hu)
    with open_files(items) as files:
        found = nifti.read(files[0], sample=True)
    assert found.samples and all(np.array_equal(found.samples[k], hu[k]) for k in found.samples)
    assert vol_mod.check_series(items).kind == "nifti"


def test_nifti_header_is_checked_before_the_data():
    import gzip

    header = nib.Nifti1Header()
    header.set_data_shape((4096, 4096, 1000))
    header.set_data_dtype(np.int16)
    blob = gzip.compress(header.binaryblock + b"\0" * 4 + b"\0" * 4096)
    with pytest.raises(InputError, match="4096 x 4096 x 1000"):
        load_series([("huge.nii.gz", blob)])
