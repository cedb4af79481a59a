"""Correcting a series (issue 20): PUT /api/series/<id>/labels/, the editor's slice save and lesion
removal, versions (listed, audited, capped), and exports that carry the version they hold.

Real series built from the committed IRCADb slices, analysed in-process by the real worker code;
the "true" labels are the slice's ground truth (tests/fixtures/analysis_ircadb01_066_label.png)."""
from __future__ import annotations

import base64
import gzip
import io

import cv2
import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from django.core.files.storage import default_storage
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from scipy import ndimage as ndi

from TumorApp.analysis.labels import decode_png, encode_png
from TumorApp.series import services as series_services
from TumorApp.models import AuditEvent, SeriesJob, SeriesVersion
from tests.analysis.series_fixtures import FIXTURES, SLICE_66, dicom_series

from ..corrections.test_corrections_load import database_for_threads  # noqa: F401  (a fixture)
from .test_series import files

pytestmark = pytest.mark.django_db(transaction=True)  # the worker's heartbeat thread has its own connection
SLICES = 4
STEP = 1.6


@pytest.fixture
def truth() -> np.ndarray:
    """The true labels: slice 66's ground truth on every slice (0/1/2, radiological = the DICOM grid)."""
    label = cv2.imread(str(FIXTURES / "analysis_ircadb01_066_label.png"), cv2.IMREAD_UNCHANGED)
    return np.repeat(label[None], SLICES, axis=0).astype(np.uint8)


@pytest.fixture
def job(user) -> SeriesJob:
    """A finished DICOM series of SLICES copies of slice 66, `STEP` mm apart."""
    job = series_services.submit_series(user=user, uploads=files(dicom_series(SLICES, step=STEP)))
    assert series_services.work(once=True) == 1
    job.refresh_from_db()
    assert job.status == "done", job.error
    return job


def patient_space_nifti(labels: np.ndarray, *, shift_mm: float = 0.0) -> bytes:
    """The labels as a NIfTI in the series' patient space, the affine written by hand from the DICOM
    tags: voxel (column, row, slice) -> LPS (c * col, r * row, 100 + STEP * k), turned to RAS."""
    row, col = (float(v) for v in pydicom.dcmread(SLICE_66).PixelSpacing)
    affine = np.array([[-col, 0, 0, shift_mm], [0, -row, 0, 0], [0, 0, STEP, 100.0], [0, 0, 0, 1]])
    return gzip.compress(nib.Nifti1Image(np.ascontiguousarray(labels.transpose(2, 1, 0)), affine).to_bytes())


def put_labels(client, pk: int, blob: bytes, name: str = "labels.nii.gz"):
    upload = io.BytesIO(blob)
    upload.name = name
    return client.put(f"/api/series/{pk}/labels/", data=encode_multipart(BOUNDARY, {"labels": upload}),
                      content_type=MULTIPART_CONTENT)


def true_figures(labels: np.ndarray) -> dict:
    row, col = (float(v) for v in pydicom.dcmread(SLICE_66).PixelSpacing)
    voxel_ml = row * col * STEP / 1000
    return {"liver_volume_ml": round(float((labels >= 1).sum()) * voxel_ml, 2),
            "tumor_volume_ml": round(float((labels == 2).sum()) * voxel_ml, 2),
            # Identical slices: each 8-connected piece of the slice's tumour is one 3-D lesion.
            "lesions": ndi.label(labels[0] == 2, structure=np.ones((3, 3)))[1]}


def test_put_the_true_label_volume_gives_the_true_volumes_back(auth_client, user, job, truth):
    before = auth_client.get(f"/api/series/{job.pk}/").json()
    assert before["version"] == 0 and before["corrected"] is False

    response = put_labels(auth_client, job.pk, patient_space_nifti(truth))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == set(auth_client.get(f"/api/series/{job.pk}/").json())  # the GET's keys
    expected = true_figures(truth)
    assert body["liver_volume_ml"] == expected["liver_volume_ml"]
    assert body["tumor_volume_ml"] == expected["tumor_volume_ml"]
    assert len(body["lesions"]) == expected["lesions"] > 0
    assert body["tumor_burden_percent"] == round(100 * expected["tumor_volume_ml"] / expected["liver_volume_ml"], 2)
    assert all(les["slice_range"] == [0, SLICES - 1] for les in body["lesions"])
    assert body["stage"] in ("I", "II", "III")
    assert body["version"] == 1 and body["corrected"] is True and body["corrected_by"] == "radiologist"
    assert [v["number"] for v in body["versions"]] == [0, 1]
    assert body["versions"][1]["created_by"] == "radiologist"
    # The network's figures are kept as version 0.
    assert SeriesVersion.objects.get(job=job, number=0).result["liver_volume_ml"] == before["liver_volume_ml"]
    event = AuditEvent.objects.get(action="api_series_correct")
    assert event.username == "radiologist" and event.detail == f"series {job.pk} version 1"


def test_wrong_geometry_or_format_is_400_and_changes_nothing(auth_client, job, truth):
    before = auth_client.get(f"/api/series/{job.pk}/").json()
    shifted = put_labels(auth_client, job.pk, patient_space_nifti(truth, shift_mm=5.0))
    assert shifted.status_code == 400
    assert "affine does not match this series' geometry" in shifted.json()["error"]
    fewer = put_labels(auth_client, job.pk, patient_space_nifti(truth[:3]))
    assert fewer.status_code == 400 and "this series' grid is 512 x 512 x 4" in fewer.json()["error"]
    png = put_labels(auth_client, job.pk, cv2.imencode(".png", truth[0])[1].tobytes(), "labels.png")
    assert png.status_code == 400 and "neither NIfTI" in png.json()["error"]
    missing = auth_client.put(f"/api/series/{job.pk}/labels/", data=encode_multipart(BOUNDARY, {}),
                              content_type=MULTIPART_CONTENT)
    assert missing.status_code == 400 and "'labels'" in missing.json()["error"]
    assert auth_client.get(f"/api/series/{job.pk}/").json() == before
    assert not SeriesVersion.objects.exists() and not AuditEvent.objects.filter(action__contains="correct").exists()


def test_another_users_series_is_404_and_an_unfinished_one_409(auth_client, other_client, user, job, truth):
    assert put_labels(other_client, job.pk, patient_space_nifti(truth)).status_code == 404
    assert other_client.put(f"/series/{job.pk}/slices/labels/", data="{}", content_type="application/json").status_code == 404
    assert other_client.post(f"/series/{job.pk}/lesions/1/remove/").status_code == 404
    queued = series_services.submit_series(user=user, uploads=files(dicom_series(2)))
    response = put_labels(auth_client, queued.pk, patient_space_nifti(truth))
    assert response.status_code == 409 and "queued" in response.json()["error"]
    assert not SeriesVersion.objects.exists()


def test_a_dicom_seg_referencing_the_series_is_accepted(auth_client, job, truth):
    from TumorApp.analysis.series.export import dicom_seg
    from TumorApp.analysis.series.volume import load_series

    seg = dicom_seg(load_series(series_services.input_items(job)), truth)
    response = put_labels(auth_client, job.pk, seg, "seg.dcm")
    assert response.status_code == 200, response.content
    assert response.json()["tumor_volume_ml"] == true_figures(truth)["tumor_volume_ml"]


def test_exports_carry_their_version_and_default_to_the_latest(auth_client, job, truth):
    assert put_labels(auth_client, job.pk, patient_space_nifti(truth)).status_code == 200

    latest = auth_client.get(f"/api/series/{job.pk}/export/")
    assert latest.status_code == 200 and latest["X-Labels-Version"] == "1"
    assert "-v1-segmentation.dcm" in latest["Content-Disposition"]
    seg = hd.seg.segread(io.BytesIO(latest.content))
    assert seg.ContentDescription == "Liver/tumour labels v1, corrected by radiologist"
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    uids = [str(ds.SOPInstanceUID) for ds in load_headers(job)]
    tumour = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[2])[..., 0]
    assert np.array_equal(tumour.astype(bool), truth == 2)  # the corrected labels, not the network's

    network = auth_client.get(f"/series/{job.pk}/export/?version=0")
    assert network.status_code == 200 and network["X-Labels-Version"] == "0"
    assert hd.seg.segread(io.BytesIO(network.content)).ContentDescription.startswith("Automated")
    assert auth_client.get(f"/series/{job.pk}/export/?version=7").status_code == 404
    assert auth_client.get(f"/api/series/{job.pk}/export/?version=7").status_code == 404

    report = auth_client.get(f"/series/{job.pk}/report/").content.decode()
    assert "Version 1, corrected by radiologist on" in report
    page = auth_client.get(f"/series/{job.pk}/").content.decode()
    assert 'id="corrected-by"' in page and "Corrected by radiologist on" in page
    assert 'id="compare-toggle"' in page and 'id="series-versions"' in page
    # The viewer shows either version; the labels the editor loads are the corrected ones.
    assert auth_client.get(f"/series/{job.pk}/slices/1.png?version=0").status_code == 200
    # The same encoding as the slice editor's: a single-channel PNG whose pixels are the label values.
    labels = auth_client.get(f"/series/{job.pk}/slices/1/labels.png")
    raw = cv2.imdecode(np.frombuffer(labels.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert raw.ndim == 2 and np.array_equal(raw, truth[1])
    assert np.array_equal(decode_png(labels.content, raw.shape), truth[1])


def load_headers(job):
    from TumorApp.analysis.series.volume import load_series

    return load_series(series_services.input_items(job)).datasets


def slice_png(labels: np.ndarray) -> str:
    return base64.b64encode(encode_png(labels)).decode()


def test_slice_saves_and_lesion_removal_recompute_and_are_capped(auth_client, job, truth, settings):
    settings.MASK_VERSIONS_KEPT = 3  # version 0 and the newest two corrections
    assert put_labels(auth_client, job.pk, patient_space_nifti(truth)).status_code == 200
    base = auth_client.get(f"/api/series/{job.pk}/").json()

    # Paint a new tumour on slice 2 only (inside the liver, away from the others): one more lesion.
    painted = truth[2].copy()
    painted[130:145, 250:265] = 2
    assert (truth[2][127:148, 247:268] == 1).all()  # liver all round: a lesion of its own
    saved = auth_client.put(f"/series/{job.pk}/slices/labels/", data={"slices": {"2": slice_png(painted)}},
                            content_type="application/json")
    assert saved.status_code == 200, saved.content
    body = saved.json()
    assert len(body["lesions"]) == len(base["lesions"]) + 1 and body["version"] == 2
    assert body["tumor_volume_ml"] > base["tumor_volume_ml"]
    assert body["liver_volume_ml"] == base["liver_volume_ml"]
    new = next(les for les in body["lesions"] if les["slice_range"] == [2, 2])

    # Remove it again by its number: the figures come back.
    number = body["lesions"].index(new) + 1
    removed = auth_client.post(f"/series/{job.pk}/lesions/{number}/remove/")
    assert removed.status_code == 200, removed.content
    after = removed.json()
    for key in ("liver_volume_ml", "tumor_volume_ml", "tumor_burden_percent", "stage", "lesions"):
        assert after[key] == base[key], key
    # Version 1 was pruned (cap 3): its row and label file are gone, 0, 2 and 3 stay.
    assert [v["number"] for v in after["versions"]] == [0, 2, 3]
    assert not any("v1-labels" in n for n in default_storage.listdir(f"{job.folder}/versions")[1])
    assert AuditEvent.objects.filter(action="series_correct").count() == 2
    assert AuditEvent.objects.filter(detail=f"series {job.pk} version 3; removed version(s) 1").exists()

    # Bad edits are 400 and change nothing.
    for body, message in (({"slices": {"9": slice_png(painted)}}, "no slice"),
                          ({"slices": {"2": "not base64!"}}, "not base64"),
                          # a value that is no label (the old 0/128/255 grey among them): refused
                          ({"slices": {"2": base64.b64encode(cv2.imencode(".png", painted * 127)[1]).decode()}},
                           "slice 3 holds the value(s) 127, 254; a label map holds only 0 (background)"),
                          ({"slices": {}}, "at least one")):
        response = auth_client.put(f"/series/{job.pk}/slices/labels/", data=body, content_type="application/json")
        assert response.status_code == 400 and message in response.json()["error"]
    assert auth_client.post(f"/series/{job.pk}/lesions/99/remove/").status_code == 400
    assert auth_client.get(f"/api/series/{job.pk}/").json()["version"] == 3


def test_the_viewer_offers_the_editor_and_its_slice_data(auth_client, other_client, job):
    page = auth_client.get(f"/series/{job.pk}/").content.decode()
    for marker in ('id="series-editor"', 'id="edit-labels"', 'js/series/editor.js', 'id="label-registry"',
                   f'/series/{job.pk}/slices/labels/', 'class="linklike lesion-remove"'):
        assert marker in page, marker
    hu = auth_client.get(f"/series/{job.pk}/slices/1/hu.bin")
    assert hu.status_code == 200 and (hu["X-Width"], hu["X-Height"]) == ("512", "512")
    plane = np.frombuffer(hu.content, "<i2").reshape(512, 512)
    ct, _ = series_services.volume_arrays(job)
    assert np.array_equal(plane, ct[1])
    assert auth_client.get(f"/series/{job.pk}/slices/{SLICES}/hu.bin").status_code == 404
    assert other_client.get(f"/series/{job.pk}/slices/1/hu.bin").status_code == 404
    assert other_client.get(f"/series/{job.pk}/slices/1/labels.png").status_code == 404


def test_corrected_series_slices_are_exported_for_training(auth_client, job, truth, tmp_path):
    import json

    from django.core.management import call_command

    from TumorApp.training.corrections import read_corrections

    _, network = series_services.volume_arrays(job)
    painted = np.array(network[2])
    painted[130:145, 250:265] = 2  # one slice changed
    response = auth_client.put(f"/series/{job.pk}/slices/labels/", data={"slices": {"2": slice_png(painted)}},
                               content_type="application/json")
    assert response.status_code == 200, response.content
    out = tmp_path / "corrections"
    call_command("export_corrections", str(out))

    manifest = json.loads((out / "manifest.json").read_text())
    assert [(m["kind"], m["source_id"], m["slices"], m["version"]) for m in manifest] == [("series", job.pk, [2], 1)]
    ct, _ = series_services.volume_arrays(job)
    with np.load(out / f"series-{job.pk}.npz") as d:
        assert d["image"].dtype == np.int16 and np.array_equal(d["image"][0], ct[2])
        assert np.array_equal(d["label"][0], painted) and d["slices"].tolist() == [2]
    (patient,) = read_corrections(out, size=256)
    assert patient.name == f"corrections-series-{job.pk}" and patient.is_hu
    assert patient.images.shape == (1, 256, 256) and set(patient.patient_ids) == {patient.name}
    assert (patient.labels[0] == 2).sum() > (cv2.resize(network[2], (256, 256), interpolation=cv2.INTER_NEAREST) == 2).sum()


def test_the_nifti_export_of_a_dicom_series_goes_back_through_the_put(auth_client, job, truth):
    """?format=nifti gives labels in patient space; edited and PUT back, they are taken as they are."""
    exported = auth_client.get(f"/api/series/{job.pk}/export/?format=nifti")
    assert exported.status_code == 200 and exported["Content-Disposition"].endswith('-v0-labels.nii.gz"')
    image = nib.Nifti1Image.from_bytes(gzip.decompress(exported.content))
    ours = nib.Nifti1Image.from_bytes(gzip.decompress(patient_space_nifti(truth)))
    assert image.shape == ours.shape and np.allclose(image.affine, ours.affine)  # the hand-written affine
    _, network = series_services.volume_arrays(job)
    assert np.array_equal(np.asarray(image.dataobj).transpose(2, 1, 0), network)
    edited = np.asarray(image.dataobj).copy()
    edited[:, :, 1] = 0  # clear slice 1
    blob = gzip.compress(nib.Nifti1Image(edited, image.affine).to_bytes())
    before = auth_client.get(f"/api/series/{job.pk}/").json()
    body = put_labels(auth_client, job.pk, blob).json()
    assert body["version"] == 1 and body["liver_volume_ml"] < before["liver_volume_ml"]
    job.refresh_from_db()
    _, corrected = series_services.volume_arrays(job)
    assert not corrected[1].any() and np.array_equal(corrected[2:], network[2:])


def test_slices_between_two_saved_ones_are_interpolated(auth_client, job, truth):
    assert put_labels(auth_client, job.pk, patient_space_nifti(truth)).status_code == 200
    cleared = np.where(truth[1] == 2, 1, truth[1]).astype(np.uint8)  # slice 1 loses its tumour
    auth_client.put(f"/series/{job.pk}/slices/labels/", data={"slices": {"1": slice_png(cleared)}},
                    content_type="application/json")
    response = auth_client.post(f"/series/{job.pk}/slices/interpolate/", data={"from": 0, "to": 2},
                                content_type="application/json")
    assert response.status_code == 200, response.content
    job.refresh_from_db()
    _, labels = series_services.volume_arrays(job)
    assert np.array_equal(labels[1], truth[1])  # the same outline above and below: the same between
    assert response.json()["tumor_volume_ml"] == true_figures(truth)["tumor_volume_ml"]
    bad = auth_client.post(f"/series/{job.pk}/slices/interpolate/", data={"from": 0, "to": 1},
                           content_type="application/json")
    assert bad.status_code == 400 and "at least one between" in bad.json()["error"]


def test_concurrent_slice_saves_all_succeed_and_none_loses_another(database_for_threads, django_user_model):
    """Four readers save a different slice of one series at the same moment: every save succeeds
    (they queue on the job row) and the last version holds all four edits."""
    import threading

    from django.db import connections
    from django.test import Client

    user = django_user_model.objects.create_user("alice", password="Liver-Scan-Review-42")
    job = series_services.submit_series(user=user, uploads=files(dicom_series(SLICES, step=STEP)))
    assert series_services.work(once=True) == 1
    job.refresh_from_db()
    _, network = series_services.volume_arrays(job)
    edits = {}
    for k in range(SLICES):
        plane = np.array(network[k])
        plane[20 + 10 * k:26 + 10 * k, 20:26] = 2  # a different speck on each slice
        edits[k] = plane
    barrier = threading.Barrier(SLICES)
    responses = [None] * SLICES

    def save(k: int) -> None:
        client = Client(raise_request_exception=False)
        client.force_login(user)
        try:
            barrier.wait()
            responses[k] = client.put(f"/series/{job.pk}/slices/labels/", data={"slices": {str(k): slice_png(edits[k])}},
                                      content_type="application/json")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=save, args=(k,)) for k in range(SLICES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert [r.status_code for r in responses] == [200] * SLICES, [r.content[:300] for r in responses]
    job.refresh_from_db()
    assert job.result["version"] == SLICES
    _, labels = series_services.volume_arrays(job)
    for k in range(SLICES):
        assert np.array_equal(labels[k], edits[k]), k
