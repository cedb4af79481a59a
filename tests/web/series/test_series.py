"""Whole-series API and pages: 202 + queue, the worker's result, export, viewer slices, errors, isolation."""
from __future__ import annotations

import io
import zipfile

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from TumorApp.series import services as series_services
from TumorApp.models import SeriesJob
from tests.analysis.series_fixtures import dicom_series

from ..helpers import stored_files

pytestmark = pytest.mark.django_db(transaction=True)  # the worker's heartbeat thread has its own connection
URL = "/api/series/"
CONTRACT_KEYS = {"slices", "spacing_mm", "liver_volume_ml", "tumor_volume_ml", "tumor_burden_percent", "stage",
                 "inconclusive", "lesions"}


def files(items) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(name, data, content_type="application/dicom") for name, data in items]


def zipped(items) -> SimpleUploadedFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in items:
            archive.writestr(name, data)
    return SimpleUploadedFile("series.zip", buf.getvalue(), content_type="application/zip")


def test_post_queues_then_the_worker_delivers_the_cli_json(auth_client, user):
    items = dicom_series(3)
    response = auth_client.post(URL, {"file": files(items)})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and set(body) == {"id", "status"}
    assert response["Location"] == f"/api/series/{body['id']}/"
    queued = auth_client.get(f"/api/series/{body['id']}/").json()
    assert queued["status"] == "queued" and queued["progress"] == [0, 3]

    assert series_services.work(once=True) == 1

    done = auth_client.get(f"/api/series/{body['id']}/").json()
    assert done["status"] == "done" and done["progress"] == [3, 3]
    assert CONTRACT_KEYS <= set(done)
    assert done["slices"] == 3 and done["lesions"] and done["lesions"][0]["slice_range"] == [0, 2]
    job = SeriesJob.objects.get(pk=body["id"])
    assert job.owner == user and job.attempts == 1 and job.claimed_by

    assert "export" not in job.files  # made on first download, not by the job
    export = auth_client.get(done["export_url"])
    assert export.status_code == 200 and "segmentation.dcm" in export["Content-Disposition"]
    seg = hd.seg.segread(io.BytesIO(export.content))
    job.refresh_from_db()
    kept = job.files["export"]
    again = auth_client.get(done["export_url"])  # kept: the same file, not a second one
    assert again.content == export.content
    job.refresh_from_db()
    assert job.files["export"] == kept
    from django.core.files.storage import default_storage
    assert [n for n in default_storage.listdir(job.folder)[1] if "segmentation" in n] == [kept.rsplit("/", 1)[-1]]
    source_uids = {pydicom.dcmread(io.BytesIO(d)).SOPInstanceUID for _, d in items}
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    assert referenced <= source_uids and len(referenced) == 3

    page = auth_client.get(f"/series/{body['id']}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="lesion-table"' in html and 'id="slice-slider"' in html and "Download DICOM-SEG" in html
    report = auth_client.get(f"/series/{body['id']}/report/").content.decode()
    assert f"{done['liver_volume_ml']} mL" in report and 'id="lesion-table"' in report
    png = auth_client.get(f"/series/{body['id']}/slices/1.png?window=liver")
    assert png.status_code == 200 and png["Content-Type"] == "image/png" and png.content[:4] == b"\x89PNG"
    assert auth_client.get(f"/series/{body['id']}/slices/3.png").status_code == 404


def test_zip_upload_through_the_page_redirects_to_progress(auth_client):
    response = auth_client.post("/series/new/", {"file": zipped(dicom_series(2))})
    job = SeriesJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/series/{job.pk}/"
    page = auth_client.get(response["Location"]).content.decode()
    assert 'id="series-progress"' in page and "0 / 2 slices" in page


def test_nifti_upload_gives_a_nifti_label_volume(auth_client, user):
    hu = np.full((3, 64, 64), -1000, np.int16)
    hu[:, 8:56, 8:56] = 50
    blob = nib.Nifti1Image(np.ascontiguousarray(hu[:, ::-1, ::-1].transpose(2, 1, 0)), np.diag([0.8, 0.8, 2.5, 1])).to_bytes()
    response = auth_client.post(URL, {"file": SimpleUploadedFile("ct.nii", blob)})
    assert response.status_code == 202
    series_services.work(once=True)
    job = SeriesJob.objects.get()
    assert job.status == "done" and job.kind == "nifti", job.error
    export = auth_client.get(f"/api/series/{job.pk}/export/")
    assert export.status_code == 200 and export["Content-Disposition"].endswith('labels.nii.gz"')
    import gzip
    labels = nib.Nifti1Image.from_bytes(gzip.decompress(export.content))
    assert labels.shape == (64, 64, 3)


@pytest.mark.parametrize("case, message", [
    ("mixed", "different series"), ("gap", "not evenly spaced"), ("text", "not a DICOM"), ("none", "Choose"),
])
def test_bad_series_is_400_and_stores_nothing(auth_client, media_root, case, message):
    items = dicom_series(4)
    payload = {"mixed": items[:2] + dicom_series(2), "gap": items[:1] + items[2:],
               "text": items + [("readme.txt", b"not an image" * 20)], "none": []}[case]
    response = auth_client.post(URL, {"file": files(payload)} if payload else {})
    assert response.status_code == 400
    assert message in response.json()["error"]
    page = auth_client.post("/series/new/", {"file": files(payload)} if payload else {})
    assert page.status_code == 400 and message in page.content.decode()
    assert not SeriesJob.objects.exists() and stored_files(media_root) == []


def test_failed_job_says_why(auth_client, user, settings):
    job = series_services.submit_series(user=user, uploads=files(dicom_series(2)))
    # The stored input is damaged after upload (e.g. a disk problem): the job fails with a reason.
    from django.core.files.storage import default_storage
    _, names = default_storage.listdir(f"{job.folder}/input")
    with default_storage.open(f"{job.folder}/input/{names[0]}", "wb") as f:
        f.write(b"garbage")
    series_services.work(once=True)
    body = auth_client.get(f"/api/series/{job.pk}/").json()
    assert body["status"] == "failed" and "not a DICOM" in body["error"]
    assert "The analysis failed" in auth_client.get(f"/series/{job.pk}/").content.decode()


def test_series_are_private(auth_client, other_client, user):
    job = series_services.submit_series(user=user, uploads=files(dicom_series(2)))
    assert other_client.get(f"/api/series/{job.pk}/").status_code == 404
    assert other_client.get(f"/series/{job.pk}/").status_code == 404
    assert other_client.get(f"/api/series/{job.pk}/export/").status_code == 404
    assert Client().get(f"/api/series/{job.pk}/").status_code == 401
    assert auth_client.get(f"/api/series/{job.pk}/export/").status_code == 409  # not done yet
    assert [j["id"] for j in auth_client.get(URL).json()["results"]] == [job.pk]
    assert other_client.get(URL).json()["results"] == []
