"""Pixel spacing plausibility: unusual (outside 0.3-1.5 mm) warns on the page and in the JSON; impossible
(outside 0.05-5 mm, entered or in the DICOM) is a 400 that stores nothing. Notes reach the JSON too."""
import io

import pydicom
import pytest
from django.urls import reverse

from TumorApp.models import Analysis

from .helpers import DICOM, PNG_TUMOR, fixture_bytes, stored_files, upload

pytestmark = pytest.mark.django_db
API = "/api/analyses/"


def _dicom_with_spacing(mm: float) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(fixture_bytes(DICOM)))
    ds.PixelSpacing = [mm, mm]
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def test_unusual_entered_spacing_warns_on_the_page_and_in_the_json(auth_client):
    response = auth_client.post(reverse("detect"), {"file": upload(PNG_TUMOR), "pixel_spacing": "2"}, follow=True)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="warnings"' in html
    assert "The pixel spacing entered (2 x 2 mm) is unusual for abdominal CT (0.3-1.5 mm)" in html
    body = auth_client.post(API, {"file": upload(PNG_TUMOR), "pixel_spacing": "0.2"}).json()
    assert body["pixel_spacing_mm"] == [0.2, 0.2]
    assert body["warnings"] == ["The pixel spacing entered (0.2 x 0.2 mm) is unusual for abdominal CT "
                                "(0.3-1.5 mm): check it, since the sizes in mm and the stage depend on it."]
    assert auth_client.get(f"{API}{body['id']}/").json()["warnings"] == body["warnings"]


def test_usual_spacing_has_no_warning(auth_client):
    body = auth_client.post(API, {"file": upload(PNG_TUMOR), "pixel_spacing": "0.7"}).json()
    assert body["warnings"] == []
    html = auth_client.get(reverse("analysis", args=[body["id"]])).content.decode()
    assert 'id="warnings"' not in html


@pytest.mark.parametrize("mm", ["7", "0.04", "5.5"])
def test_impossible_entered_spacing_is_a_400_that_stores_nothing(auth_client, media_root, mm):
    page = auth_client.post(reverse("detect"), {"file": upload(PNG_TUMOR), "pixel_spacing": mm})
    assert page.status_code == 400 and "0.05" in page.content.decode()
    api = auth_client.post(API, {"file": upload(PNG_TUMOR), "pixel_spacing": mm})
    assert api.status_code == 400 and "pixel_spacing" in api.json()["fields"]
    assert not Analysis.objects.exists() and stored_files(media_root) == []


def test_impossible_dicom_spacing_is_a_400(auth_client, media_root):
    response = auth_client.post(API, {"file": upload(DICOM, data=_dicom_with_spacing(7.0))})
    assert response.status_code == 400
    assert "pixel spacing in the DICOM file (7 x 7 mm) is outside 0.05-5 mm" in response.json()["error"]
    page = auth_client.post(reverse("detect"), {"file": upload(DICOM, data=_dicom_with_spacing(7.0))})
    assert page.status_code == 400 and "outside 0.05-5 mm" in page.content.decode()
    assert not Analysis.objects.exists() and stored_files(media_root) == []


def test_unusual_dicom_spacing_warns(auth_client):
    body = auth_client.post(API, {"file": upload(DICOM, data=_dicom_with_spacing(0.2))}).json()
    assert body["spacing_source"] == "dicom"
    assert body["warnings"] and "in the DICOM file (0.2 x 0.2 mm)" in body["warnings"][0]


def test_api_json_carries_the_notes_the_page_shows(auth_client):
    body = auth_client.post(API, {"file": upload(PNG_TUMOR)}).json()  # no spacing: assumed, with a note
    assert body["spacing_source"] == "assumed"
    assert any("assumed 0.75 mm" in n for n in body["notes"])
    html = auth_client.get(reverse("analysis", args=[body["id"]])).content.decode()
    for note in body["notes"]:
        assert note in html
    assert Analysis.objects.get(pk=body["id"]).notes == body["notes"]
