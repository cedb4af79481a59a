"""Back to the PACS for a single DICOM slice: a corrected slice's SEG, SR and key image stored in a real
Orthanc and read back (values equal the app's JSON, frames equal its masks); a PNG upload is refused
(no DICOM source); a failed send is kept, shown and retried through the same mechanism as series."""
from __future__ import annotations

import io

import cv2
import highdicom as hd
import numpy as np
import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from pydicom.uid import generate_uid

from TumorApp.analysis.series import pacs_objects
from TumorApp.models import AuditEvent, PacsTransfer
from tests.web.helpers import FIXTURES, PNG_TUMOR, make_analysis
from tests.web.corrections.test_corrections import disc, liver_centre, model_masks, png, put

from .conftest import store_in_orthanc
from .report_check import SLICE_NOT_FIGURES, check_group, login_names
from .test_roundtrip import read_back

pytestmark = pytest.mark.django_db(transaction=True)


def dicom_slice(patient_id: str) -> bytes:
    """The committed IRCADb slice in a study of its own, with a patient ID (the fixture has none)."""
    ds = pydicom.dcmread(FIXTURES / "web_ircadb01_image_84.dcm")
    ds.PatientID = patient_id
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def analyse(user, data: bytes, name: str = "slice.dcm"):
    from TumorApp.analyses.services import create_analysis

    return create_analysis(user=user, upload=SimpleUploadedFile(name, data))


def test_a_corrected_dicom_slice_is_sent_and_read_back(pacs_settings, orthanc, auth_client, user):
    data = dicom_slice("PACS-SL-000001")
    source = pydicom.dcmread(io.BytesIO(data))
    store_in_orthanc(orthanc, [("slice.dcm", data)])
    analysis = analyse(user, data)

    # Corrected: the network's liver, one round lesion drawn by the user.
    liver, _ = model_masks(auth_client, analysis.pk)
    tumor = disc(liver.shape, liver_centre(liver), 30) & liver
    assert put(auth_client, analysis.pk, liver=png(liver), tumor=png(tumor)).status_code == 200
    record = auth_client.get(f"/api/analyses/{analysis.pk}/").json()
    assert record["corrected"] and record["version"] == 1 and len(record["tumors"]) == 1

    page = auth_client.get(f"/analyses/{analysis.pk}/").content.decode()
    assert 'id="pacs-send"' in page and "Send to PACS" in page
    sent = auth_client.post(f"/api/analyses/{analysis.pk}/send/")
    assert sent.status_code == 200, sent.content
    uids = sent.json()["send"]["sop_instance_uids"]
    assert set(uids) == {"seg", "sr", "key_image"}
    event = AuditEvent.objects.get(action="pacs_send", analysis_id=analysis.pk)
    assert event.detail == f"analysis {analysis.pk}: {uids['sr']}" and event.user == user
    study = str(source.StudyInstanceUID)

    # The SEG: one frame per segment, on the source slice, equal to the corrected masks.
    seg = hd.seg.Segmentation.from_dataset(read_back(orthanc, study, uids["seg"]))
    assert seg.StudyInstanceUID == study and seg.PatientID == "PACS-SL-000001"
    assert [uid for _, _, uid in seg.get_source_image_uids()] == [source.SOPInstanceUID]
    frames = {item.SegmentIdentificationSequence[0].ReferencedSegmentNumber: seg.pixel_array[k] > 0
              for k, item in enumerate(seg.PerFrameFunctionalGroupsSequence)}
    assert set(frames) == {1, 2}
    assert np.array_equal(frames[1], liver | tumor) and np.array_equal(frames[2], tumor)
    assert {d.SegmentAlgorithmType for d in seg.SegmentSequence} == {"SEMIAUTOMATIC"}
    assert seg.ContentDescription == f"Liver/tumour labels v1, corrected by {user.get_username()}"

    # The SR: every key of the slice's JSON, lesions in planar groups on the SEG's tumour frame.
    sr = hd.sr.Comprehensive3DSR.from_dataset(read_back(orthanc, study, uids["sr"]))
    assert sr.PatientID == "PACS-SL-000001" and sr.StudyInstanceUID == study
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == len(record["tumors"])
    for group, lesion in zip(groups, record["tumors"]):
        check_group(group, lesion, figures=pacs_objects.SLICE_LESION_FIGURES, flags=("low_confidence",))
        # The SEG's tumour frame, and the source slice it was drawn on.
        seg_item, source_item = group.referenced_segmentation_frame
        [seg_ref] = seg_item.ReferencedSOPSequence
        assert seg_ref.ReferencedSOPInstanceUID == uids["seg"] and seg_ref.ReferencedSegmentNumber == 2
        assert source_item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    [liver_group] = sr.content.get_image_measurement_groups()
    check_group(liver_group, record, figures=pacs_objects.SLICE_FIGURES,
                flags=("tumor_detected", "inconclusive", "mirrored", "low_confidence", "corrected"),
                text_keys=pacs_objects.SLICE_TEXTS, not_figures=SLICE_NOT_FIGURES, nested=("tumors",))
    assert login_names(sr) == [user.get_username()]  # the person who corrected the outline
    evidence = {ref.ReferencedSOPInstanceUID for study_ref in sr.CurrentRequestedProcedureEvidenceSequence
                for series_ref in study_ref.ReferencedSeriesSequence for ref in series_ref.ReferencedSOPSequence}
    assert evidence == {uids["seg"], source.SOPInstanceUID}

    # The key image: the annotated picture, in the slice's study.
    key = read_back(orthanc, study, uids["key_image"])
    assert key.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage and key.PatientID == "PACS-SL-000001"
    assert (key.Rows, key.Columns, key.SamplesPerPixel) == (source.Rows, source.Columns, 3)
    assert "corrected by" in key.ImageComments

    # Sent again: the same three instances, not copies; the page says it was sent.
    before = len(orthanc.get("/instances"))
    assert auth_client.post(f"/api/analyses/{analysis.pk}/send/").json()["send"]["sop_instance_uids"] == uids
    assert len(orthanc.get("/instances")) == before
    html = auth_client.get(f"/analyses/{analysis.pk}/").content.decode()
    assert "Sent to the PACS" in html and "of the corrected outline" in html and "Send to PACS again" in html


def test_an_uncorrected_slice_sends_the_networks_outline(pacs_settings, orthanc, auth_client, user):
    data = dicom_slice("PACS-SL-000002")
    analysis = analyse(user, data)
    response = auth_client.post(f"/analyses/{analysis.pk}/send/", follow=True)
    assert "Sent to the PACS" in response.content.decode()
    uids = PacsTransfer.objects.get(analysis=analysis, status="done").sop_instance_uids
    study = str(pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID)
    seg = hd.seg.Segmentation.from_dataset(read_back(orthanc, study, uids["seg"]))
    liver, tumor = model_masks(auth_client, analysis.pk)
    frames = {item.SegmentIdentificationSequence[0].ReferencedSegmentNumber: seg.pixel_array[k] > 0
              for k, item in enumerate(seg.PerFrameFunctionalGroupsSequence)}
    assert np.array_equal(frames[1], liver)  # the editor's liver label includes the tumour
    assert np.array_equal(frames.get(2, np.zeros_like(tumor)), tumor)
    assert {d.SegmentAlgorithmType for d in seg.SegmentSequence} == {"AUTOMATIC"}
    sr = hd.sr.Comprehensive3DSR.from_dataset(read_back(orthanc, study, uids["sr"]))
    record = auth_client.get(f"/api/analyses/{analysis.pk}/").json()
    [liver_group] = sr.content.get_image_measurement_groups()
    check_group(liver_group, {**record, "version": 0}, figures=pacs_objects.SLICE_FIGURES,
                flags=("tumor_detected", "inconclusive", "mirrored", "low_confidence", "corrected"),
                text_keys=pacs_objects.SLICE_TEXTS, not_figures=SLICE_NOT_FIGURES, nested=("tumors",))
    assert login_names(sr) == []


def test_a_png_upload_has_no_send_button_and_the_api_says_why(pacs_settings, auth_client, user):
    analysis = make_analysis(user, PNG_TUMOR)
    page = auth_client.get(f"/analyses/{analysis.pk}/").content.decode()
    assert 'id="pacs-send"' not in page
    response = auth_client.post(f"/api/analyses/{analysis.pk}/send/")
    assert response.status_code == 400 and "PNG or JPEG upload has no DICOM study" in response.json()["error"]
    page = auth_client.post(f"/analyses/{analysis.pk}/send/", follow=True).content.decode()
    assert "has no DICOM study" in page
    assert not PacsTransfer.objects.exists() and not AuditEvent.objects.filter(action__startswith="pacs").exists()
    assert auth_client.post("/api/analyses/999999/send/").status_code == 404


def test_without_a_pacs_the_slice_page_offers_no_send_and_the_api_says_so(settings, auth_client, user):
    settings.DICOMWEB_URL = ""
    analysis = analyse(user, (FIXTURES / "web_ircadb01_image_84.dcm").read_bytes())
    assert 'id="pacs-send"' not in auth_client.get(f"/analyses/{analysis.pk}/").content.decode()
    response = auth_client.post(f"/api/analyses/{analysis.pk}/send/")
    assert response.status_code == 503 and "DICOMWEB_URL" in response.json()["error"]


def test_a_failed_slice_send_is_recorded_shown_and_retried(pacs_settings, orthanc, broken_pacs, auth_client, user):
    data = dicom_slice("PACS-SL-000003")
    analysis = analyse(user, data)
    good = pacs_settings.DICOMWEB_URL
    pacs_settings.DICOMWEB_URL = broken_pacs
    failed = auth_client.post(f"/api/analyses/{analysis.pk}/send/")
    assert failed.status_code == 502 and "HTTP 500" in failed.json()["error"]
    assert failed.json()["send"]["status"] == "failed"
    assert AuditEvent.objects.filter(action="pacs_send_failed", analysis_id=analysis.pk).count() == 1
    page = auth_client.get(f"/analyses/{analysis.pk}/").content.decode()
    assert "Sending to the PACS failed" in page and "Retry sending to PACS" in page

    pacs_settings.DICOMWEB_URL = good
    retried = auth_client.post(f"/analyses/{analysis.pk}/send/", follow=True).content.decode()
    assert "Sent to the PACS" in retried
    assert list(PacsTransfer.objects.filter(analysis=analysis).values_list("status", flat=True)) == ["done", "failed"]


def test_the_key_image_orientation_follows_the_header():
    ds = pydicom.Dataset()
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    assert pacs_objects.patient_orientation(ds) == ("L", "P")
    ds.ImageOrientationPatient = [-1, 0, 0, 0, 0, -1]  # a coronal slice stored mirrored
    assert pacs_objects.patient_orientation(ds) == ("R", "F")
    del ds.ImageOrientationPatient
    assert pacs_objects.patient_orientation(ds) == ("L", "P")
