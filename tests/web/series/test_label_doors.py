"""The label doors of a finished series refuse hostile input with a 400 and a plain message, store
nothing, and never allocate what a file merely claims: DICOM-SEG frame counts and sizes, deflated
SEGs, frames of other images, NIfTI headers claiming huge or short volumes, and the editor's JSON
(non-ASCII digits as slice keys, deep nesting, oversized bodies)."""
from __future__ import annotations

import base64
import gzip
import io
import json

import numpy as np
import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

from TumorApp.analysis.labels import encode_png
from TumorApp.models import SeriesVersion
from TumorApp.series import services as series_services

from .test_series_corrections import SLICES, job, patient_space_nifti, put_labels, truth  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def seg(job, truth) -> pydicom.Dataset:  # noqa: F811
    """A valid SEG of the series (the app's own export), to damage."""
    from TumorApp.analysis.series.export import dicom_seg

    return pydicom.dcmread(io.BytesIO(dicom_seg(series_services.geometry(job), truth)))


def encoded(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def refused(client, job, blob: bytes, name: str = "labels.dcm") -> str:  # noqa: F811
    before = client.get(f"/api/series/{job.pk}/").json()
    response = put_labels(client, job.pk, blob, name)
    assert response.status_code == 400, response.content
    assert client.get(f"/api/series/{job.pk}/").json() == before and not SeriesVersion.objects.exists()
    message = response.json()["error"]
    assert "Traceback" not in message and "allocate" not in message
    return message


def test_a_seg_claiming_a_billion_frames_is_refused_before_reading_them(auth_client, job, seg):  # noqa: F811
    seg.NumberOfFrames = 10**9
    assert "declares 1000000000 frames" in refused(auth_client, job, encoded(seg))


def test_a_seg_claiming_fewer_frames_than_it_holds_is_not_saved_as_empty(auth_client, job, seg):  # noqa: F811
    held = int(seg.NumberOfFrames)
    seg.NumberOfFrames = 2
    message = refused(auth_client, job, encoded(seg))
    assert "declares 2 frames but its pixel data holds" in message and str(held) in message


def test_a_seg_frame_of_an_image_outside_the_series_is_refused(auth_client, job, seg):  # noqa: F811
    seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0] \
        .ReferencedSOPInstanceUID = generate_uid()
    assert "references an image that is not a slice of this series" in refused(auth_client, job, encoded(seg))


def test_a_deflated_seg_is_refused_by_what_it_inflates_to(auth_client, job, seg):  # noqa: F811
    seg.PixelData = bytes(64 * 2**20)  # zeros: a few hundred KB once deflated
    seg.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    blob = encoded(seg)
    assert len(blob) < 2**20
    assert "inflates to more than" in refused(auth_client, job, blob)


def test_a_ct_image_is_not_a_segmentation(auth_client, job):  # noqa: F811
    from tests.analysis.series_fixtures import SLICE_66

    assert "not a Segmentation" in refused(auth_client, job, SLICE_66.read_bytes())


def nifti_header(shape, affine) -> bytes:
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.uint8)
    header.set_qform(affine, 1)
    header.set_sform(affine, 1)
    header["vox_offset"] = 352
    return header.binaryblock + b"\0" * 4


def test_a_tiny_nifti_claiming_gigabytes_on_a_flipped_axis_is_refused_from_its_header(auth_client, job):  # noqa: F811
    affine = np.diag([1.0, -1.0, -1.0, 1.0])  # flipped axes: reorienting it would have copied first
    blob = gzip.compress(nifti_header((512, 512, 8000), affine))
    assert len(blob) < 2000
    assert "this series' grid is 512 x 512 x 4" in refused(auth_client, job, blob, "labels.nii.gz")


def test_a_right_shaped_nifti_cut_short_is_refused(auth_client, job, truth):  # noqa: F811
    whole = gzip.decompress(patient_space_nifti(truth))
    assert "truncated" in refused(auth_client, job, gzip.compress(whole[:len(whole) // 2]), "labels.nii.gz")


@pytest.mark.parametrize("body, message", [
    ({"slices": {"²": "x"}}, "There is no slice '²'"),
    ({"slices": {"0": "not base64!"}}, "not base64"),
    (None, "nested too deeply"),
])
def test_the_editor_json_is_refused_plainly(auth_client, job, body, message):  # noqa: F811
    raw = ("[" * 200_000 + "]" * 200_000) if body is None else json.dumps(body)
    response = auth_client.put(f"/series/{job.pk}/slices/labels/", data=raw, content_type="application/json")
    assert response.status_code == 400 and message in response.json()["error"]
    assert not SeriesVersion.objects.exists()


def test_an_editor_body_over_the_budget_is_refused_plainly(auth_client, job, truth, settings):  # noqa: F811
    from TumorApp.series.corrections import slices_body_limit

    picture = base64.b64encode(encode_png(truth[0])).decode()
    raw = json.dumps({"slices": {"0": picture}, "padding": "x" * slices_body_limit(truth.shape)})
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * len(raw)  # our own budget applies
    response = auth_client.put(f"/series/{job.pk}/slices/labels/", data=raw, content_type="application/json")
    assert response.status_code == 400 and "at most" in response.json()["error"]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(raw) // 2  # Django's applies first
    response = auth_client.put(f"/series/{job.pk}/slices/labels/", data=raw, content_type="application/json")
    assert response.status_code == 413 and "save fewer slices" in response.json()["error"]
    assert not SeriesVersion.objects.exists()


def test_a_version_parameter_of_other_digits_is_404(auth_client, job):  # noqa: F811
    assert auth_client.get(f"/series/{job.pk}/slices/0.png?version=%C2%B2").status_code == 404
