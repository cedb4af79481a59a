"""A PACS that is not configured, unreachable or answering 500: clear pages and JSON, audit rows,
nothing half-stored; a failed send is kept, shown with a retry, and the retry succeeds."""
from __future__ import annotations

import io

import pydicom
import pytest
from django.core.management import call_command

from TumorApp.series import services as series_services
from TumorApp.checks import pacs_reachable
from TumorApp.models import AuditEvent, PacsTransfer, SeriesJob
from tests.analysis.conftest import IntensitySegmenter

from .conftest import free_port, store_in_orthanc
from .test_roundtrip import ct_series

pytestmark = pytest.mark.django_db(transaction=True)


def test_without_dicomweb_url_the_pages_say_no_pacs_is_configured(settings, auth_client):
    settings.DICOMWEB_URL = ""
    page = auth_client.get("/pacs/")
    assert page.status_code == 503 and "No PACS is configured" in page.content.decode()
    api = auth_client.get("/api/pacs/series/", {"patient_id": "X"})
    assert api.status_code == 503 and "DICOMWEB_URL" in api.json()["error"]
    assert pacs_reachable(None) == []  # nothing to check


def test_an_unreachable_pacs_gives_a_clear_page_json_and_check(settings, auth_client, media_root):
    settings.DICOMWEB_URL = f"http://127.0.0.1:{free_port()}/dicom-web"  # nobody listens there
    page = auth_client.get("/pacs/", {"patient_id": "X"})
    assert page.status_code == 503
    assert "cannot be reached" in page.content.decode() and "Traceback" not in page.content.decode()
    api = auth_client.get("/api/pacs/series/", {"patient_id": "X"})
    assert api.status_code == 502 and "cannot be reached" in api.json()["error"]
    retrieve = auth_client.post("/api/pacs/retrieve/", {"series_uid": "1.2.3.4"})
    assert retrieve.status_code == 502
    assert not SeriesJob.objects.exists() and not [p for p in media_root.rglob("*") if p.is_file()]
    assert AuditEvent.objects.filter(action="pacs_retrieve_failed", detail__startswith="1.2.3.4").exists()
    [warning] = pacs_reachable(None)
    assert warning.id == "TumorApp.W002" and "cannot be reached" in warning.msg


def test_bad_search_input_is_a_400(pacs_settings, auth_client):
    assert auth_client.get("/api/pacs/series/").status_code == 400  # no filter at all
    bad_date = auth_client.get("/api/pacs/series/", {"study_date": "yesterday"})
    assert bad_date.status_code == 400 and "study_date" in bad_date.json()["fields"]
    assert auth_client.post("/api/pacs/retrieve/", {"series_uid": "not a uid"}).status_code == 400


def test_a_pacs_answering_500_to_the_retrieve_stores_nothing(settings, broken_pacs, auth_client, media_root):
    settings.DICOMWEB_URL = broken_pacs
    response = auth_client.post("/api/pacs/retrieve/", {"series_uid": "1.2.3.4"})  # the study lookup fails
    assert response.status_code == 502 and "HTTP 500" in response.json()["error"]
    assert not SeriesJob.objects.exists() and not [p for p in media_root.rglob("*") if p.is_file()]
    queued = auth_client.post("/api/pacs/retrieve/", {"series_uid": "1.2.3.4", "study_uid": "1.2.3"})
    assert queued.status_code == 202  # the retrieve itself fails in the worker
    series_services.work(once=True, segmenter=IntensitySegmenter())
    job = SeriesJob.objects.get(pk=queued.json()["id"])
    assert job.status == "failed" and "HTTP 500" in job.error
    assert not [p for p in media_root.rglob("*") if p.is_file()]


def test_a_failed_send_is_recorded_shown_and_retried(pacs_settings, orthanc, broken_pacs, auth_client):
    items, study = ct_series("PACS-FAIL-000003", n=3)
    series_uid = pydicom.dcmread(io.BytesIO(items[0][1])).SeriesInstanceUID
    store_in_orthanc(orthanc, items)
    job_id = auth_client.post("/api/pacs/retrieve/", {"series_uid": series_uid}).json()["id"]
    series_services.work(once=True, segmenter=IntensitySegmenter())

    pacs_settings.DICOMWEB_URL = broken_pacs
    failed = auth_client.post(f"/api/series/{job_id}/send/")
    assert failed.status_code == 502 and "HTTP 500" in failed.json()["error"]
    transfer = PacsTransfer.objects.get(job_id=job_id, direction="send")
    assert transfer.status == "failed" and "HTTP 500" in transfer.error
    assert AuditEvent.objects.filter(action="pacs_send_failed", detail__startswith=f"series {job_id}").exists()
    html = auth_client.get(f"/series/{job_id}/").content.decode()
    assert "Sending to the PACS failed" in html and "Retry sending to PACS" in html

    pacs_settings.DICOMWEB_URL = orthanc.dicomweb_url  # the PACS is back: the button retries
    page = auth_client.post(f"/series/{job_id}/send/", follow=True)
    assert "Sent to the PACS" in page.content.decode()
    assert PacsTransfer.objects.filter(job_id=job_id, direction="send").first().status == "done"
    assert len(orthanc.get(f"/studies/{_orthanc_study(orthanc, study)}/series")) == 4  # CT, SEG, SR, key image


def test_auto_send_stores_results_when_the_job_finishes(pacs_settings, orthanc, auth_client):
    pacs_settings.PACS_AUTO_SEND = True
    items, study = ct_series("PACS-AUTO-000004", n=3)
    series_uid = pydicom.dcmread(io.BytesIO(items[0][1])).SeriesInstanceUID
    store_in_orthanc(orthanc, items)
    job_id = auth_client.post("/api/pacs/retrieve/", {"series_uid": series_uid}).json()["id"]
    series_services.work(once=True, segmenter=IntensitySegmenter())
    transfer = PacsTransfer.objects.get(job_id=job_id, direction="send")
    assert transfer.status == "done" and set(transfer.sop_instance_uids) == {"seg", "sr", "key_image"}
    modalities = {s["MainDicomTags"].get("Modality") for s in
                  orthanc.get(f"/studies/{_orthanc_study(orthanc, study)}/series?expand")}
    assert modalities == {"CT", "SEG", "SR", "OT"}


def _orthanc_study(orthanc, study_uid: str) -> str:
    """Orthanc's own id of a study (its REST API counts series per study)."""
    import requests

    from .conftest import PASSWORD, USER
    response = requests.post(f"{orthanc.url}/tools/lookup", data=study_uid, auth=(USER, PASSWORD), timeout=10)
    [found] = response.json()
    return found["ID"]


def test_the_system_check_passes_against_a_running_pacs(pacs_settings):
    assert pacs_reachable(None) == []
    call_command("check")  # does not raise


def test_without_a_pacs_the_result_page_offers_no_send(settings, auth_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.analysis.series_fixtures import dicom_series

    settings.DICOMWEB_URL = ""
    files = [SimpleUploadedFile(n, d, content_type="application/dicom") for n, d in dicom_series(3)]
    job_id = auth_client.post("/api/series/", {"file": files}).json()["id"]
    series_services.work(once=True, segmenter=IntensitySegmenter())
    html = auth_client.get(f"/series/{job_id}/").content.decode()
    assert 'id="series-summary"' in html and 'id="pacs-send"' not in html
    refused = auth_client.post(f"/api/series/{job_id}/send/")
    assert refused.status_code == 503 and "No PACS is configured" in refused.json()["error"]
    assert not PacsTransfer.objects.exists()  # nothing was attempted


def test_a_pacs_that_never_answers_times_out_with_a_clear_error(settings, auth_client):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)  # accepts connections, never answers
    try:
        settings.DICOMWEB_URL = f"http://127.0.0.1:{silent.getsockname()[1]}/dicom-web"
        settings.DICOMWEB_TIMEOUT = 1
        api = auth_client.get("/api/pacs/series/", {"patient_id": "X"})
        assert api.status_code == 502 and "did not answer within 1 s" in api.json()["error"]
    finally:
        silent.close()


def test_a_series_over_the_limits_is_refused_while_streaming(pacs_settings, orthanc, auth_client, media_root,
                                                            monkeypatch):
    items, study = ct_series("PACS-BIG-000010", n=3)
    series_uid = pydicom.dcmread(io.BytesIO(items[0][1])).SeriesInstanceUID
    store_in_orthanc(orthanc, items)
    def worker_error() -> str:
        response = auth_client.post("/api/pacs/retrieve/", {"series_uid": series_uid})
        assert response.status_code == 202
        series_services.work(once=True, segmenter=IntensitySegmenter())
        job = SeriesJob.objects.get(pk=response.json()["id"])
        assert job.status == "failed"
        return job.error

    monkeypatch.setattr("TumorApp.analysis.io.series_input.MAX_SLICES", 2)
    assert "more than 2 images" in worker_error()
    monkeypatch.undo()
    pacs_settings.MAX_SERIES_UPLOAD_BYTES = 2**20  # 1 MiB: less than the three 512x512 slices
    assert "larger than 1 MiB" in worker_error()
    assert not [p for p in media_root.parent.rglob("*.dcm")]


def test_the_page_flow_retrieves_into_the_progress_page_or_says_why_not(pacs_settings, orthanc, auth_client):
    items, study = ct_series("PACS-PAGE-000011", n=2)
    series_uid = pydicom.dcmread(io.BytesIO(items[0][1])).SeriesInstanceUID
    store_in_orthanc(orthanc, items)
    page = auth_client.get("/pacs/", {"accession_number": "A000011"}).content.decode()
    assert 'id="pacs-results"' in page and f'value="{series_uid}"' in page and "Analyse" in page
    response = auth_client.post("/pacs/retrieve/", {"series_uid": series_uid, "study_uid": study})
    job = SeriesJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/series/{job.pk}/"
    progress = auth_client.get(response["Location"]).content.decode()
    assert 'id="progress-box"' in progress and "retrieving the images from the PACS" in progress
    refused = auth_client.post("/pacs/retrieve/", {"series_uid": "1.2.3.999"}, follow=True)
    assert refused.status_code == 503 and "has no series 1.2.3.999" in refused.content.decode()
