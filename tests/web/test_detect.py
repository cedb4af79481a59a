"""Upload form -> stored analysis -> result page; bad input gives a form error and stores nothing."""
import pytest
from django.urls import reverse

from TumorApp.models import Analysis

from .helpers import DICOM, PNG_PLAIN, PNG_TUMOR, fixture_bytes, stored_files, upload

pytestmark = pytest.mark.django_db


def test_png_upload_stores_row_and_files_and_shows_result(auth_client, user, media_root):
    response = auth_client.post(reverse("detect"), {"file": upload(PNG_TUMOR)})
    assert response.status_code == 302
    analysis = Analysis.objects.get(owner=user)
    assert response["Location"] == reverse("analysis", args=[analysis.pk])
    assert analysis.original_name == PNG_TUMOR
    # Stored under a generated name, outside static/, with every rendered image and a thumbnail.
    assert PNG_TUMOR not in analysis.upload.name and analysis.upload.name.startswith(f"uploads/{user.pk}/")
    assert (media_root / analysis.upload.name).read_bytes() == fixture_bytes(PNG_TUMOR)
    assert {"original", "annotated", "mask", "probability", "thumbnail"} <= set(analysis.images)
    for path in analysis.images.values():
        assert (media_root / path).is_file()
    assert analysis.spacing_source == "assumed"

    page = auth_client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert ("Tumor Detected" in html) or ("No Tumor Detected" in html)
    assert "size-based estimate, not a clinical stage" in html
    assert "Research use only — not a medical device, not for diagnosis" in html
    assert html.count("data:image/png;base64,") >= 4
    assert "assumed" in html


def test_dicom_upload_uses_the_files_pixel_spacing(auth_client, user):
    response = auth_client.post(reverse("detect"), {"file": upload(DICOM), "pixel_spacing": "0.9"})
    assert response.status_code == 302
    analysis = Analysis.objects.get(owner=user)
    assert analysis.spacing_source == "dicom"
    assert analysis.result["pixel_spacing_mm"] == pytest.approx([0.57, 0.57], abs=0.01)
    assert "from DICOM" in auth_client.get(response["Location"]).content.decode()


def test_dicom_without_extension_is_accepted(auth_client, user):
    response = auth_client.post(reverse("detect"), {"file": upload(DICOM, name="IM000084")})
    assert response.status_code == 302
    assert Analysis.objects.get(owner=user).upload.name.endswith(".bin")


def test_entered_pixel_spacing_is_used_for_png(auth_client, user):
    response = auth_client.post(reverse("detect"), {"file": upload(PNG_PLAIN), "pixel_spacing": "0.8"})
    assert response.status_code == 302
    analysis = Analysis.objects.get(owner=user)
    assert analysis.spacing_source == "user"
    assert analysis.result["pixel_spacing_mm"] == [0.8, 0.8]
    assert "entered" in auth_client.get(response["Location"]).content.decode()


def test_each_upload_gets_its_own_row_and_file(auth_client, user, media_root):
    for _ in range(2):
        assert auth_client.post(reverse("detect"), {"file": upload(PNG_PLAIN)}).status_code == 302
    first, second = Analysis.objects.filter(owner=user).order_by("id")
    assert first.upload.name != second.upload.name
    assert (media_root / first.upload.name).is_file() and (media_root / second.upload.name).is_file()


@pytest.mark.parametrize("name, data, message", [
    ("notes.txt", b"this is not an image\n" * 20, None),
    ("slice.png", fixture_bytes(PNG_TUMOR)[:2000], None),
    ("empty.png", b"", "empty"),
])
def test_bad_upload_is_a_form_error_and_stores_nothing(auth_client, user, media_root, name, data, message):
    response = auth_client.post(reverse("detect"), {"file": upload(name=name, data=data)})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'class="error"' in html
    if message:
        assert message in html
    assert not Analysis.objects.exists()
    assert stored_files(media_root) == []


@pytest.mark.parametrize("spacing", ["-1", "0", "abc", "1000"])
def test_bad_pixel_spacing_is_a_form_error(auth_client, spacing):
    response = auth_client.post(reverse("detect"), {"file": upload(PNG_PLAIN), "pixel_spacing": spacing})
    assert response.status_code == 400
    assert 'class="error"' in response.content.decode()
    assert not Analysis.objects.exists()


def test_missing_file_is_a_form_error(auth_client):
    response = auth_client.post(reverse("detect"), {})
    assert response.status_code == 400
    assert "Choose a CT slice" in response.content.decode()


def test_upload_over_the_limit_is_refused_before_reading(auth_client, settings, media_root):
    # Content-Length over the limit plus the multipart allowance: 413 from the middleware, body unread.
    settings.MAX_UPLOAD_BYTES = 1000
    big = fixture_bytes(PNG_TUMOR) * 4
    response = auth_client.post(reverse("detect"), {"file": upload(name="big.png", data=big)})
    assert response.status_code == 413
    assert "limit" in response.content.decode()
    assert not Analysis.objects.exists() and stored_files(media_root) == []


def test_upload_over_the_limit_within_the_envelope_is_a_form_error(auth_client, settings):
    settings.MAX_UPLOAD_BYTES = 10_000
    response = auth_client.post(reverse("detect"), {"file": upload(PNG_TUMOR)})
    assert response.status_code == 400
    assert "the limit is" in response.content.decode()
    assert not Analysis.objects.exists()


def test_uploaded_file_name_is_sanitised_for_display(auth_client, user):
    response = auth_client.post(reverse("detect"), {"file": upload(PNG_PLAIN, name="../../etc/pass\x07wd.png")})
    assert response.status_code == 302
    analysis = Analysis.objects.get(owner=user)
    assert analysis.original_name == "passwd.png"
    assert ".." not in analysis.upload.name


def test_upload_form_needs_csrf_token(user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(reverse("detect"), {"file": upload(PNG_PLAIN)})
    assert response.status_code == 403
    assert not Analysis.objects.exists()
