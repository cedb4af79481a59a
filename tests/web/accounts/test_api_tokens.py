"""Personal API tokens through real HTTP requests: create (profile page and command), use without CSRF, revoke, 401s."""
from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest
import requests
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from TumorApp.models import Analysis, ApiToken, AuditEvent

from ..helpers import DICOM, PASSWORD, PNG_TUMOR, fixture_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def _command_token(username: str, *extra: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        call_command("create_api_token", username, *extra, stdout=out)
    return out.getvalue()


def test_command_prints_only_the_token_and_stores_only_its_hash(user):
    printed = _command_token("radiologist", "--name", "PACS bridge")
    token = printed.strip()
    assert printed == token + "\n" and token.startswith("lt_") and len(token) > 40
    row = ApiToken.objects.get(user=user)
    assert row.name == "PACS bridge" and row.last_used_at is None and row.revoked_at is None
    assert token not in (row.key_hash, row.prefix) and token.startswith(row.prefix)
    event = AuditEvent.objects.get(action="token_create")
    assert event.user == user and "PACS bridge" in event.detail


def test_command_refuses_an_unknown_user():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user named"):
        _command_token("nobody")


def test_bearer_token_lists_uploads_and_reads_without_csrf(live_server, user):
    base = live_server.url
    token = _command_token("radiologist").strip()
    auth = {"Authorization": f"Bearer {token}"}

    created = requests.post(f"{base}/api/analyses/", headers=auth, timeout=120,
                            files={"file": (DICOM, fixture_bytes(DICOM))})
    assert created.status_code == 201, created.text[:300]
    body = created.json()
    assert body["spacing_source"] == "dicom" and isinstance(body["notes"], list) and body["warnings"] == []
    assert Analysis.objects.get(pk=body["id"]).owner == user

    got = requests.get(f"{base}/api/analyses/{body['id']}/", headers=auth, timeout=30)
    assert got.status_code == 200 and got.json()["id"] == body["id"]
    listed = requests.get(f"{base}/api/analyses/", headers=auth, timeout=30)
    assert [r["id"] for r in listed.json()["results"]] == [body["id"]]
    assert ApiToken.objects.get(user=user).last_used_at is not None
    assert AuditEvent.objects.filter(action="api_analyse", user=user, analysis_id=body["id"]).exists()


@pytest.mark.parametrize("header", [None, "Bearer lt_not-a-real-token", "Bearer ", "Basic cmFkaW9sb2dpc3Q6eA==",
                                    "lt_token-without-scheme"])
def test_missing_or_wrong_token_gets_401_json(live_server, user, header):
    headers = {"Authorization": header} if header is not None else {}
    for method, path in (("get", "/api/analyses/"), ("post", "/api/analyses/"), ("get", "/api/analyses/1/")):
        r = requests.request(method, live_server.url + path, headers=headers, timeout=30,
                             files={"file": ("x.png", fixture_bytes(PNG_TUMOR))} if method == "post" else None)
        assert r.status_code == 401 and r.headers["Content-Type"] == "application/json"
        assert r.json()["status"] == 401 and "token" in r.json()["error"].lower()
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert not Analysis.objects.exists()


def test_profile_page_creates_shows_once_lists_and_revokes(live_server, user):
    base = live_server.url
    s = requests.Session()
    s.get(f"{base}/login/", timeout=30)
    s.post(f"{base}/login/", data={"username": "radiologist", "password": PASSWORD,
                                   "csrfmiddlewaretoken": s.cookies["csrftoken"]}, timeout=30)
    form = {"csrfmiddlewaretoken": s.cookies["csrftoken"]}

    page = s.post(f"{base}/profile/tokens/", data={**form, "name": "nightly script"}, timeout=30)
    assert page.status_code == 200 and page.url == f"{base}/profile/"
    row = ApiToken.objects.get(user=user)
    token = page.text.split('id="new-token-value">')[1].split("<")[0]
    assert token.startswith(row.prefix) and "nightly script" in page.text
    again = s.get(f"{base}/profile/", timeout=30).text
    assert token not in again and row.prefix in again and "never" in again  # listed, not shown again

    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{base}/api/analyses/", headers=auth, timeout=30).status_code == 200
    assert "never" not in s.get(f"{base}/profile/", timeout=30).text.split('id="token-table"')[1]

    revoked = s.post(f"{base}/profile/tokens/{row.pk}/revoke/", data=form, timeout=30)
    assert revoked.status_code == 200 and "Revoked the API token “nightly script”" in revoked.text
    r = requests.get(f"{base}/api/analyses/", headers=auth, timeout=30)
    assert r.status_code == 401 and "revoked" in r.json()["error"]
    assert list(AuditEvent.objects.filter(user=user, action__startswith="token").order_by("id")
                .values_list("action", flat=True)) == ["token_create", "token_revoke", "token_revoked"]


def test_a_user_cannot_revoke_another_users_token(user, other_user):
    _command_token("other")
    row = ApiToken.objects.get(user=other_user)
    c = Client()
    c.force_login(user)
    assert c.post(reverse("api-token-revoke", args=[row.pk])).status_code == 404
    assert ApiToken.objects.get(pk=row.pk).revoked_at is None


def test_token_name_is_required(auth_client):
    response = auth_client.post(reverse("api-token-create"), {"name": "  "})
    assert response.status_code == 400 and "Give the token a name." in response.content.decode()
    assert not ApiToken.objects.exists()


def test_session_post_without_csrf_gets_an_api_message(user):
    c = Client(enforce_csrf_checks=True)
    c.force_login(user)
    response = c.post("/api/analyses/", {"file": io.BytesIO(fixture_bytes(PNG_TUMOR))})
    assert response.status_code == 403
    message = response.json()["error"]
    assert "X-CSRFToken" in message and "Bearer" in message and "Reload the page" not in message
    assert not Analysis.objects.exists()


def test_session_post_with_csrf_still_works(live_server, user):
    base = live_server.url
    s = requests.Session()
    s.get(f"{base}/login/", timeout=30)
    s.post(f"{base}/login/", data={"username": "radiologist", "password": PASSWORD,
                                   "csrfmiddlewaretoken": s.cookies["csrftoken"]}, timeout=30)
    r = s.post(f"{base}/api/analyses/", files={"file": (PNG_TUMOR, fixture_bytes(PNG_TUMOR))},
               headers={"X-CSRFToken": s.cookies["csrftoken"]}, timeout=120)
    assert r.status_code == 201, r.text[:300]


def test_token_of_an_account_that_must_change_its_password_gets_403(transactional_db):
    call_command("ensure_admin")
    token = _command_token("admin").strip()
    c = Client()
    response = c.get("/api/analyses/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403 and "default password" in response.json()["error"]


def test_api_validation_errors_speak_to_api_clients(user):
    token = _command_token("radiologist").strip()
    c = Client()
    response = c.post("/api/analyses/", {"pixel_spacing": "abc"}, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400
    fields = response.json()["fields"]
    assert fields["file"] == ["Send the CT slice as the multipart/form-data field 'file'."]
    assert fields["pixel_spacing"] == ["'pixel_spacing' must be a number of millimetres."]
