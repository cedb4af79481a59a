"""JSON API: session auth, the CLI's JSON contract, and JSON 4xx errors."""
import pytest
from django.test import Client
from django.urls import reverse

from TumorApp.models import Analysis

from .helpers import DICOM, LESION_KEYS, PNG_TUMOR, RESULT_KEYS, make_analysis, stored_files, upload

pytestmark = pytest.mark.django_db
URL = "/api/analyses/"


def test_post_creates_an_analysis_with_the_cli_json(auth_client, user):
    response = auth_client.post(URL, {"file": upload(DICOM)})
    assert response.status_code == 201
    body = response.json()
    assert RESULT_KEYS <= set(body) and {"id", "file", "created_at"} <= set(body)
    assert body["spacing_source"] == "dicom" and body["file"] == DICOM
    assert response["Location"] == f"/api/analyses/{body['id']}/"
    for lesion in body["tumors"]:
        assert set(lesion) == LESION_KEYS
    assert Analysis.objects.get(owner=user).pk == body["id"]


def test_get_returns_the_stored_json(auth_client, user):
    analysis = make_analysis(user, PNG_TUMOR, pixel_spacing=0.7)
    response = auth_client.get(reverse("api-analysis", args=[analysis.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    body = response.json()
    assert {k: body[k] for k in RESULT_KEYS} == analysis.result
    assert body["spacing_source"] == "user" and body["pixel_spacing_mm"] == [0.7, 0.7]


def test_anonymous_requests_get_401_json(client):
    for response in (client.get(URL), client.post(URL, {}), client.get(f"{URL}1/")):
        assert response.status_code == 401
        assert "error" in response.json()


def test_unknown_or_foreign_analysis_is_404_json(auth_client, other_user):
    theirs = make_analysis(other_user)
    for pk in (theirs.pk, 999999):
        response = auth_client.get(f"{URL}{pk}/")
        assert response.status_code == 404 and "error" in response.json()


def test_bad_file_is_400_json_and_stores_nothing(auth_client, media_root):
    response = auth_client.post(URL, {"file": upload(name="report.pdf", data=b"%PDF-1.4 not a CT slice")})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] and "file" in body["fields"]
    assert not Analysis.objects.exists() and stored_files(media_root) == []


def test_missing_file_and_bad_spacing_are_400_json(auth_client):
    assert auth_client.post(URL, {}).status_code == 400
    response = auth_client.post(URL, {"file": upload(), "pixel_spacing": "-3"})
    assert response.status_code == 400 and "pixel_spacing" in response.json()["fields"]


def test_too_large_is_413_json(auth_client, settings):
    settings.MAX_UPLOAD_BYTES = 1000
    response = auth_client.post(URL, {"file": upload(name="big.png", data=b"\0" * 200_000)})
    assert response.status_code == 413 and "limit" in response.json()["error"]
    settings.MAX_UPLOAD_BYTES = 10_000
    response = auth_client.post(URL, {"file": upload(PNG_TUMOR)})
    assert response.status_code == 413 and "limit" in response.json()["error"]


def test_wrong_method_is_405_json(auth_client, user):
    analysis = make_analysis(user)
    response = auth_client.put(f"{URL}{analysis.pk}/")
    assert response.status_code == 405 and response["Allow"] == "GET, DELETE"
    assert response.json()["status"] == 405


def test_post_without_csrf_token_is_403_json(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(URL, {"file": upload()})
    assert response.status_code == 403 and "error" in response.json()
    assert not Analysis.objects.exists()


def test_documented_session_and_csrf_flow_works(user):
    """Log in through the login page, then POST with the csrftoken cookie echoed as X-CSRFToken."""
    from .helpers import PASSWORD

    client = Client(enforce_csrf_checks=True)
    client.get(reverse("login"))
    token = client.cookies["csrftoken"].value
    response = client.post(reverse("login"), {"username": "radiologist", "password": PASSWORD,
                                              "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    token = client.cookies["csrftoken"].value  # rotated at login
    response = client.post(URL, {"file": upload(DICOM)}, headers={"X-CSRFToken": token})
    assert response.status_code == 201
    assert client.get(response["Location"]).json()["id"] == response.json()["id"]
