"""Correcting the outline (issue 10): PUT /api/analyses/<id>/masks/, versions, the editor's data."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from TumorApp.analysis import labels
from TumorApp.analysis.slice.correct import label_map, mask_from_png, masks_from_labels
from TumorApp.models import Analysis, AuditEvent, MaskVersion
from TumorApp.analyses.services import remove_orphan_files

from ..helpers import DICOM, PNG_TUMOR, RESULT_KEYS, make_analysis, stored_files

pytestmark = pytest.mark.django_db


def url(pk: int) -> str:
    return f"/api/analyses/{pk}/masks/"


def png(mask: np.ndarray) -> io.BytesIO:
    ok, buf = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    assert ok
    return io.BytesIO(buf.tobytes())


def put(client, pk: int, **parts):
    files = {}
    for name, value in parts.items():
        f = value if isinstance(value, io.BytesIO) else io.BytesIO(value)
        f.name = f"{name}.png"
        files[name] = f
    return client.put(url(pk), data=encode_multipart(BOUNDARY, files), content_type=MULTIPART_CONTENT)


def served_labels(client, pk: int, which: str = "model") -> np.ndarray:
    """The editor's label map as served: a single-channel PNG whose pixels are the label values."""
    response = client.get(f"/analyses/{pk}/labels/{which}.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    raw = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert raw.ndim == 2 and raw.dtype == np.uint8 and set(np.unique(raw)) <= set(labels.VALUES)
    return labels.decode_png(response.content, raw.shape)


def model_masks(client, pk: int) -> tuple[np.ndarray, np.ndarray]:
    return masks_from_labels(served_labels(client, pk))


def label_png(values: np.ndarray) -> io.BytesIO:
    return io.BytesIO(labels.encode_png(values))


def disc(shape, center, radius) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - center[1]) ** 2 + (xx - center[0]) ** 2 <= radius ** 2


@pytest.fixture
def dicom_analysis(user):
    return make_analysis(user, DICOM)


def liver_centre(liver: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(liver)
    # The liver pixel nearest the centroid: inside even for a curved liver.
    i = np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2)
    return int(xs[i]), int(ys[i])


def test_put_recomputes_from_the_masks_and_keeps_the_network_result(auth_client, user, dicom_analysis):
    a = dicom_analysis
    before = dict(a.result)
    liver, _ = model_masks(auth_client, a.pk)
    assert liver.any()
    tumor = disc(liver.shape, liver_centre(liver), 40) & liver  # a 80 px (46 mm) lesion: stage II
    response = put(auth_client, a.pk, liver=png(liver), tumor=png(tumor))
    assert response.status_code == 200, response.content
    body = response.json()
    assert RESULT_KEYS <= set(body)
    assert body["corrected"] is True and body["corrected_by"] == user.username and body["corrected_at"]
    assert body["model_result"] == before
    assert body["tumor_detected"] is True and len(body["tumors"]) == 1
    assert body["tumor_area_px"] == int(tumor.sum())
    assert body["stage"] == "II"
    assert body["affected_percent"] == pytest.approx(100 * tumor.sum() / liver.sum(), abs=0.01)

    # The GET answers the corrected result; the row, the versions and the audit trail follow.
    got = auth_client.get(f"/api/analyses/{a.pk}/").json()
    assert {k: got[k] for k in RESULT_KEYS} == {k: body[k] for k in RESULT_KEYS}
    assert got["model_result"] == before and got["corrected"] is True
    a.refresh_from_db()
    assert a.stage == "II" and a.tumor_detected and a.result == {k: body[k] for k in RESULT_KEYS}
    assert list(a.mask_versions.values_list("number", flat=True)) == [0, 1]
    assert a.mask_versions.get(number=0).result == before
    assert AuditEvent.objects.filter(action="correct", analysis_id=a.pk, username=user.username).count() == 1
    # The result page shows who corrected it and the compare switch.
    page = auth_client.get(f"/analyses/{a.pk}/").content.decode()
    assert f"Corrected by {user.username}" in page and 'id="compare"' in page

    # The current outline is what was sent; the model's is unchanged.
    assert np.array_equal(masks_from_labels(served_labels(auth_client, a.pk, "current"))[1], tumor)
    assert np.array_equal(model_masks(auth_client, a.pk)[0], liver)

    # A second save is a new version; the first is kept. Removing the tumour gives no tumour.
    body2 = put(auth_client, a.pk, liver=png(liver), tumor=png(np.zeros_like(liver))).json()
    assert body2["tumor_detected"] is False and body2["stage"] is None and body2["tumors"] == []
    assert body2["model_result"] == before and body2["version"] == 2
    assert list(a.mask_versions.values_list("number", flat=True)) == [0, 1, 2]
    assert a.mask_versions.get(number=1).result["stage"] == "II"


def test_tumour_outside_the_liver_is_counted_and_noted(auth_client, dicom_analysis):
    liver, _ = model_masks(auth_client, dicom_analysis.pk)
    tumor = np.zeros_like(liver)
    tumor[5:35, 5:35] = True  # the image corner: air, not liver
    body = put(auth_client, dicom_analysis.pk, liver=png(liver), tumor=png(tumor)).json()
    assert body["tumor_area_px"] == 900 and body["tumor_detected"] is True
    assert any("outside the corrected liver" in n for n in body["notes"])


def snapshot(analysis, media_root):
    analysis.refresh_from_db()
    return (analysis.result, analysis.stage, analysis.images, MaskVersion.objects.count(),
            AuditEvent.objects.filter(action="correct").count(), stored_files(media_root))


def test_errors_are_json_and_change_nothing(auth_client, dicom_analysis, other_user, media_root):
    a = dicom_analysis
    liver, tumor = model_masks(auth_client, a.pk)
    before = snapshot(a, media_root)
    small = png(np.zeros((100, 100), bool))
    cases = [
        (put(auth_client, a.pk, liver=png(liver), tumor=small), 400, "image's own size"),
        (put(auth_client, a.pk, liver=b"GIF89a not a png", tumor=png(tumor)), 400, "must be a PNG"),
        (put(auth_client, a.pk, liver=png(liver)), 400, "tumor mask (PNG) is missing"),
        (put(auth_client, a.pk), 400, "missing"),
        (auth_client.put(url(a.pk), data=b"{}", content_type="application/json"), 400, "multipart"),
    ]
    theirs = make_analysis(other_user, PNG_TUMOR)
    cases.append((put(auth_client, theirs.pk, liver=png(liver), tumor=png(tumor)), 404, "No such analysis"))
    cases.append((put(auth_client, 999999, liver=png(liver), tumor=png(tumor)), 404, "No such analysis"))
    for response, status, text in cases:
        assert response.status_code == status, response.content
        body = response.json()
        assert body["status"] == status and text in body["error"]
    assert auth_client.post(url(a.pk)).status_code == 405
    assert Client().put(url(a.pk)).status_code == 401
    assert snapshot(a, media_root)[:5] == before[:5]
    # Only the other user's new analysis added files; none of this one's changed.
    assert set(before[-1]) <= set(snapshot(a, media_root)[-1])
    assert not [p for p in stored_files(media_root) if "corrections" in str(p)]


def test_put_without_csrf_token_is_403(user, dicom_analysis):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.put(url(dicom_analysis.pk), data=encode_multipart(BOUNDARY, {}), content_type=MULTIPART_CONTENT)
    assert response.status_code == 403
    assert not MaskVersion.objects.exists()


def test_editor_data_hu_for_dicom_none_for_8_bit(auth_client, user, dicom_analysis):
    response = auth_client.get(f"/analyses/{dicom_analysis.pk}/slice-hu.bin")
    assert response.status_code == 200
    w, h = int(response["X-Width"]), int(response["X-Height"])
    hu = np.frombuffer(response.content, "<i2").reshape(h, w)
    assert (w, h) == (512, 512) and hu.min() < -500 and hu.max() > 100  # air and soft tissue
    png_analysis = make_analysis(user, PNG_TUMOR)
    assert auth_client.get(f"/analyses/{png_analysis.pk}/slice-hu.bin").status_code == 404
    assert auth_client.get(f"/analyses/{png_analysis.pk}/labels/other.png").status_code == 404


def test_another_users_editor_data_is_404(other_client, dicom_analysis):
    for path in ("labels/model.png", "labels/current.png", "slice-hu.bin"):
        assert other_client.get(f"/analyses/{dicom_analysis.pk}/{path}").status_code == 404


def test_delete_and_clean_media_handle_version_files(auth_client, dicom_analysis, media_root,
                                                     django_capture_on_commit_callbacks):
    liver, tumor = model_masks(auth_client, dicom_analysis.pk)
    assert put(auth_client, dicom_analysis.pk, liver=png(liver), tumor=png(liver)).status_code == 200
    versions = [p for p in stored_files(media_root) if "corrections" in str(p)]
    assert len(versions) >= 6
    assert remove_orphan_files(older_than_s=0) == []  # version files are referenced, so kept
    with django_capture_on_commit_callbacks(execute=True):
        assert auth_client.post(f"/analyses/{dicom_analysis.pk}/delete/").status_code == 302
    assert stored_files(media_root) == []
    assert not Analysis.objects.exists() and not MaskVersion.objects.exists()


def test_a_correction_that_draws_the_liver_drops_the_networks_no_liver_note(auth_client, user, monkeypatch):
    from TumorApp.analysis.slice import pipeline

    from ..test_unsure import SeesNoLiver

    monkeypatch.setattr(pipeline, "_default_segmenter", SeesNoLiver)
    a = make_analysis(user, DICOM)
    assert a.result["inconclusive"] is True and any("No liver" in n for n in a.notes)
    liver = disc((512, 512), (180, 250), 90)
    body = put(auth_client, a.pk, liver=png(liver), tumor=png(np.zeros_like(liver))).json()
    assert body["inconclusive"] is False and body["tumor_detected"] is False
    assert not any("No liver" in n for n in body["notes"]), body["notes"]
    # Erasing the liver again makes the corrected result say so, as the network's did.
    body = put(auth_client, a.pk, liver=png(np.zeros_like(liver)), tumor=png(np.zeros_like(liver))).json()
    assert body["inconclusive"] is True and body["notes"] == a.notes


def test_a_mirrored_slice_stays_mirrored_once_corrected(auth_client, user):
    a = make_analysis(user, PNG_TUMOR)  # the seed slices are stored mirrored
    assert a.result["mirrored"] is True
    liver, tumor = model_masks(auth_client, a.pk)
    body = put(auth_client, a.pk, liver=png(liver), tumor=png(tumor)).json()
    assert body["mirrored"] is True
    assert body["notes"] == a.notes  # the same outline: the same notes, the mirrored one once
    assert [n for n in body["notes"] if "mirrored" in n] == [n for n in a.notes if "mirrored" in n] != []


def test_one_label_map_is_saved_and_served_back_as_stored(auth_client, dicom_analysis):
    """The editor's form: one label map in, a version with the same outline, served back exactly."""
    a = dicom_analysis
    sent = served_labels(auth_client, a.pk)
    liver = sent >= labels.LIVER.value
    sent[disc(sent.shape, liver_centre(liver), 40) & liver] = labels.TUMOR.value
    response = put(auth_client, a.pk, labels=label_png(sent))
    assert response.status_code == 200, response.content
    assert response.json()["stage"] == "II" and response.json()["version"] == 1
    # Round trip: the served label map decodes to exactly the masks stored on disk for the version.
    version = a.mask_versions.get(number=1)
    stored = [mask_from_png(_read(path), sent.shape, name)
              for path, name in ((version.liver_mask, "liver"), (version.tumor_mask, "tumor"))]
    served = served_labels(auth_client, a.pk, "current")
    assert np.array_equal(served, sent)
    assert np.array_equal(served, label_map(*stored))


def _read(name: str) -> bytes:
    from django.core.files.storage import default_storage

    with default_storage.open(name, "rb") as f:
        return f.read()


def test_a_label_map_with_a_foreign_value_is_a_400_and_changes_nothing(auth_client, dicom_analysis, media_root):
    a = dicom_analysis
    assert put(auth_client, a.pk, labels=label_png(served_labels(auth_client, a.pk))).status_code == 200
    before = snapshot(a, media_root)
    for foreign in (3, 128, 255):  # the old 0/128/255 grey is refused too, never thresholded
        values = served_labels(auth_client, a.pk)
        values[10:20, 10:20] = foreign
        ok, buf = cv2.imencode(".png", values)
        response = put(auth_client, a.pk, labels=buf.tobytes())
        assert response.status_code == 400, response.content
        assert response.json()["error"] == (f"The label map holds the value(s) {foreign}; a label map holds only "
                                            "0 (background), 1 (liver) and 2 (tumour).")
    # Colour, a label map and masks together, another size: 400 too.
    rgb = cv2.imencode(".png", np.dstack([served_labels(auth_client, a.pk)] * 2 + [np.zeros((512, 512), np.uint8)]))[1]
    cases = [(put(auth_client, a.pk, labels=rgb.tobytes()), "must be grey and opaque"),
             (put(auth_client, a.pk, labels=label_png(np.zeros((512, 510), np.uint8))), "image's own size"),
             (put(auth_client, a.pk, labels=label_png(np.zeros((512, 512), np.uint8)),
                  liver=png(np.zeros((512, 512), bool))), "not both")]
    for response, text in cases:
        assert response.status_code == 400 and text in response.json()["error"], response.content
    assert snapshot(a, media_root) == before
