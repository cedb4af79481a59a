"""The PACS round trip against a real Orthanc: store a CT series in it, find it through the app (page
and API), retrieve and analyse it, send SEG + SR + key image, read them back and compare with the JSON."""
from __future__ import annotations

import io

import highdicom as hd
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass
from pydicom.uid import generate_uid

from TumorApp.analysis.series import pacs_objects
from TumorApp.series import services as series_services
from TumorApp.series.corrections import correct_series
from TumorApp.models import AuditEvent, PacsTransfer, SeriesJob
from tests.analysis.conftest import IntensitySegmenter
from tests.analysis.series_fixtures import dicom_series

from .conftest import PASSWORD, USER, store_in_orthanc
from .report_check import SERIES_NOT_FIGURES, check_group, login_names

pytestmark = pytest.mark.django_db(transaction=True)  # the worker's heartbeat thread has its own connection


def ct_series(patient_id: str, n: int = 4, **extra):
    """A small CT series of the committed IRCADb slices with its own patient, study and accession."""
    study = generate_uid()
    return dicom_series(n, PatientID=patient_id, PatientName=f"TEST^{patient_id}", StudyInstanceUID=study,
                        AccessionNumber=f"A{patient_id[-6:]}", StudyDate="20260301", **extra), study


def pacs_client(orthanc) -> DICOMwebClient:
    return DICOMwebClient(orthanc.dicomweb_url, session=create_session_from_user_pass(USER, PASSWORD))


def read_back(orthanc, study_uid: str, sop_uid: str) -> pydicom.Dataset:
    client = pacs_client(orthanc)
    found = client.search_for_instances(study_instance_uid=study_uid, search_filters={"SOPInstanceUID": sop_uid},
                                        fields=["SeriesInstanceUID"])
    assert len(found) == 1, f"{sop_uid} is not in the PACS"
    series = pydicom.Dataset.from_json(found[0]).SeriesInstanceUID
    return client.retrieve_instance(study_uid, series, sop_uid)


def test_search_retrieve_analyse_send_and_read_back(pacs_settings, orthanc, auth_client, user):
    items, study = ct_series("PACS-RT-000001")
    series_uid = pydicom.dcmread(io.BytesIO(items[0][1])).SeriesInstanceUID
    store_in_orthanc(orthanc, items)

    # Found by the search page and the API, by each filter.
    page = auth_client.get("/pacs/", {"patient_id": "PACS-RT-000001"})
    assert page.status_code == 200 and series_uid in page.content.decode()
    for query in ({"patient_name": "TEST^PACS-RT*"}, {"accession_number": "A000001"},
                  {"study_date": "20260301", "patient_id": "PACS-RT-000001"}):
        rows = auth_client.get("/api/pacs/series/", query).json()["results"]
        assert [r["series_uid"] for r in rows] == [series_uid], query
    [row] = rows
    assert row["study_uid"] == study and row["instances"] == 4 and row["modality"] == "CT"

    # Retrieved into a queued series job, audited, analysed by the worker.
    response = auth_client.post("/api/pacs/retrieve/", {"series_uid": series_uid, "study_uid": study})
    assert response.status_code == 202, response.content
    job = SeriesJob.objects.get(pk=response.json()["id"])
    assert job.owner == user and job.status == "queued" and job.name == f"PACS series {series_uid}"
    assert AuditEvent.objects.filter(action="pacs_retrieve", detail__contains=series_uid).count() == 1
    assert series_services.work(once=True, segmenter=IntensitySegmenter()) == 1  # the worker retrieves
    job.refresh_from_db()
    assert job.progress_total == 4 and len(series_services.input_items(job)) == 4
    done = auth_client.get(f"/api/series/{job.pk}/").json()
    assert done["status"] == "done" and done["lesions"]

    # Sent: SEG, SR and key image, each confirmed by the PACS.
    sent = auth_client.post(f"/api/series/{job.pk}/send/")
    assert sent.status_code == 200, sent.content
    uids = sent.json()["send"]["sop_instance_uids"]
    assert set(uids) == {"seg", "sr", "key_image"}
    assert AuditEvent.objects.filter(action="pacs_send", detail__startswith=f"series {job.pk}").count() == 1
    html = auth_client.get(f"/series/{job.pk}/").content.decode()
    assert "Sent to the PACS" in html and "Send to PACS again" in html

    # Read back from Orthanc: the SEG references the source slices and holds the app's liver volume.
    seg = hd.seg.Segmentation.from_dataset(read_back(orthanc, study, uids["seg"]))
    source_uids = {pydicom.dcmread(io.BytesIO(d)).SOPInstanceUID for _, d in items}
    assert {uid for _, _, uid in seg.get_source_image_uids()} <= source_uids
    assert seg.StudyInstanceUID == study and seg.PatientID == "PACS-RT-000001"
    spacing = done["spacing_mm"]
    voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000
    frames = seg.pixel_array  # one frame per (slice, segment) that has any
    per_segment = {n: 0 for n in (1, 2)}
    for k, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        number = item.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        per_segment[number] += int((frames[k] > 0).sum())
    assert per_segment[1] * voxel_ml == pytest.approx(done["liver_volume_ml"], abs=0.01)
    assert per_segment[2] * voxel_ml == pytest.approx(done["tumor_volume_ml"], abs=0.01)

    # The SR (TID 1500) carries every figure of the series JSON, key by key.
    sr = hd.sr.Comprehensive3DSR.from_dataset(read_back(orthanc, study, uids["sr"]))
    check_series_report(sr, done, uids["seg"])
    assert sr.StudyInstanceUID == study and sr.PatientID == "PACS-RT-000001"
    assert login_names(sr) == []  # not corrected: the device is the only observer
    evidence = {ref.ReferencedSOPInstanceUID for study_ref in sr.CurrentRequestedProcedureEvidenceSequence
                for series_ref in study_ref.ReferencedSeriesSequence for ref in series_ref.ReferencedSOPSequence}
    assert uids["seg"] in evidence and source_uids <= evidence  # the SEG and the whole source series

    key = read_back(orthanc, study, uids["key_image"])
    assert key.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage and key.PatientID == "PACS-RT-000001"
    assert key.SamplesPerPixel == 3 and key.Rows == 512

    # Sending again stores the same three instances, not copies.
    before = len(orthanc.get("/instances"))
    again = auth_client.post(f"/api/series/{job.pk}/send/").json()["send"]["sop_instance_uids"]
    assert again == uids and len(orthanc.get("/instances")) == before
    assert PacsTransfer.objects.filter(job=job, direction="send", status="done").count() == 2

    # Corrected (the largest lesion removed): the send carries the corrected version, says by whom.
    correct_series(job=job, user=user, remove_lesion=1)
    corrected = auth_client.get(f"/api/series/{job.pk}/").json()
    assert corrected["version"] == 1 and corrected["corrected_by"] == user.get_username()
    uids = auth_client.post(f"/api/series/{job.pk}/send/").json()["send"]["sop_instance_uids"]
    assert uids["sr"] != again["sr"]  # a new version is new instances
    sr = hd.sr.Comprehensive3DSR.from_dataset(read_back(orthanc, study, uids["sr"]))
    check_series_report(sr, corrected, uids["seg"])
    assert login_names(sr) == [user.get_username()]
    seg = hd.seg.Segmentation.from_dataset(read_back(orthanc, study, uids["seg"]))
    assert seg.ContentDescription.startswith("Liver/tumour labels v1, corrected by")
    assert {d.SegmentAlgorithmType for d in seg.SegmentSequence} == {"SEMIAUTOMATIC"}


def check_series_report(sr, record: dict, seg_uid: str) -> None:
    """Every key of the series JSON is in the SR with its value: lesions in volumetric groups that
    reference the SEG's tumour segment, the rest in the liver group."""
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(record["lesions"])
    for n, (group, lesion) in enumerate(zip(groups, record["lesions"]), start=1):
        assert group.tracking_identifier == f"Lesion {n}"
        assert group.referenced_segment.referenced_sop_instance_uid == seg_uid
        check_group(group, lesion, figures=pacs_objects.SERIES_LESION_FIGURES)
    [liver_group] = sr.content.get_image_measurement_groups()
    check_group(liver_group, record, figures=pacs_objects.SERIES_FIGURES, flags=("inconclusive", "corrected"),
                text_keys=pacs_objects.SERIES_TEXTS, not_figures=SERIES_NOT_FIGURES, nested=("lesions",))


def test_a_non_ct_series_is_refused_with_nothing_stored(pacs_settings, orthanc, auth_client, media_root):
    items, study = ct_series("PACS-MR-000002", n=2, Modality="MR")
    series_uid = pydicom.dcmread(io.BytesIO(items[0][1])).SeriesInstanceUID
    store_in_orthanc(orthanc, items)
    assert auth_client.get("/api/pacs/series/", {"patient_id": "PACS-MR-000002"}).json()["results"] == []  # CT only
    response = auth_client.post("/api/pacs/retrieve/", {"series_uid": series_uid})
    assert response.status_code == 202  # the worker retrieves and refuses it
    series_services.work(once=True, segmenter=IntensitySegmenter())
    job = SeriesJob.objects.get(pk=response.json()["id"])
    assert job.status == "failed" and "only CT" in job.error
    assert PacsTransfer.objects.get(job=job, direction="retrieve").status == "failed"
    assert not [p for p in media_root.rglob("*") if p.is_file()]  # nothing stored, temp folder gone
    assert AuditEvent.objects.filter(action="pacs_retrieve_failed", detail__contains=series_uid).exists()
