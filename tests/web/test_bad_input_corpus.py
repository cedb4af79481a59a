"""The bad-input corpus (tests/fixtures/bad/) through the web form, the JSON API and `manage.py analyze --json`.

Bad files: a clear message on every channel, never a 500 or a traceback, no row and no file left.
Valid-but-odd files: analysed, stored under a generated name that never carries the user's path.
"""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from TumorApp.models import Analysis

from .helpers import stored_files

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "bad"))
from make_corpus import CASES  # noqa: E402

pytestmark = pytest.mark.django_db

BAD = [c for c in CASES if c.kind == "bad"]
ODD = [c for c in CASES if c.kind == "odd"]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    from make_corpus import build

    return build(tmp_path_factory.mktemp("bad-corpus"))


def _upload(corpus, case) -> SimpleUploadedFile:
    return SimpleUploadedFile(case.sent_name, (corpus / case.file).read_bytes(), content_type="application/octet-stream")


def _assert_clean_refusal(text: str, case) -> None:
    assert case.message.lower() in text.lower()
    assert "Traceback" not in text and "File \"/" not in text


def _assert_nothing_stored(media_root) -> None:
    assert Analysis.objects.count() == 0
    assert stored_files(media_root) == []


def _assert_stored_safely(analysis, user, media_root) -> None:
    assert analysis.owner == user
    assert "/" not in analysis.original_name and "\\" not in analysis.original_name
    assert analysis.original_name.isprintable() and not analysis.original_name.startswith(".")
    for path in [analysis.upload.name, *analysis.images.values()]:
        assert "passwd" not in path and ".." not in path and path.isprintable()
        assert (media_root / path).is_file()
    assert analysis.upload.name.startswith(f"uploads/{user.pk}/")


# --- web form ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case", BAD, ids=lambda c: c.file)
def test_bad_file_via_form_gives_a_form_error_and_stores_nothing(auth_client, corpus, case, media_root):
    response = auth_client.post(reverse("detect"), {"file": _upload(corpus, case)})
    assert response.status_code == 400
    _assert_clean_refusal(response.content.decode(), case)
    _assert_nothing_stored(media_root)


@pytest.mark.parametrize("case", ODD, ids=lambda c: c.file)
def test_odd_file_via_form_is_analysed(auth_client, user, corpus, case, media_root):
    response = auth_client.post(reverse("detect"), {"file": _upload(corpus, case)})
    assert response.status_code == 302, response.content.decode()[:2000]
    analysis = Analysis.objects.get(owner=user)
    _assert_stored_safely(analysis, user, media_root)
    assert auth_client.get(response["Location"]).status_code == 200


def test_exif_orientation_is_applied(auth_client, user, corpus):
    from PIL import Image

    case = next(c for c in ODD if c.file == "exif_rotated.jpg")
    assert auth_client.post(reverse("detect"), {"file": _upload(corpus, case)}).status_code == 302
    original = Analysis.objects.get(owner=user).images["original"]
    from django.core.files.storage import default_storage

    with default_storage.open(original) as fh, Image.open(fh) as im:
        assert im.size == (512, 400)  # stored as 400x512, displayed upright


# --- JSON API ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case", BAD, ids=lambda c: c.file)
def test_bad_file_via_api_gives_json_400(auth_client, corpus, case, media_root):
    response = auth_client.post(reverse("api-analyses"), {"file": _upload(corpus, case)})
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400
    _assert_clean_refusal(body["error"], case)
    _assert_nothing_stored(media_root)


@pytest.mark.parametrize("case", ODD, ids=lambda c: c.file)
def test_odd_file_via_api_is_analysed(auth_client, user, corpus, case, media_root):
    response = auth_client.post(reverse("api-analyses"), {"file": _upload(corpus, case)})
    assert response.status_code == 201, response.content[:2000]
    analysis = Analysis.objects.get(owner=user, pk=response.json()["id"])
    _assert_stored_safely(analysis, user, media_root)
    assert auth_client.get(response["Location"]).status_code == 200


@pytest.mark.parametrize("channel", ["detect", "api-analyses"])
def test_over_size_upload_is_refused_with_413(auth_client, settings, media_root, channel):
    settings.MAX_UPLOAD_BYTES = 1024 * 1024
    big = SimpleUploadedFile("big.png", b"\x89PNG\r\n\x1a\n" + b"\0" * (2 * 1024 * 1024))
    response = auth_client.post(reverse(channel), {"file": big})
    assert response.status_code == 413
    assert "limit" in response.content.decode() and "Traceback" not in response.content.decode()
    _assert_nothing_stored(media_root)


# --- manage.py analyze --json -----------------------------------------------------------------

def _cli(path: Path) -> tuple[list, CommandError | None]:
    out = io.StringIO()
    try:
        call_command("analyze", str(path), "--json", stdout=out, stderr=io.StringIO())
    except CommandError as exc:
        return json.loads(out.getvalue()), exc
    return json.loads(out.getvalue()), None


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.file)
def test_bad_file_via_cli_gives_an_error_object_and_exit_1(corpus, case):
    records, failure = _cli(corpus / case.file)
    assert failure is not None and failure.returncode == 1
    assert len(records) == 1 and set(records[0]) == {"file", "error"}
    _assert_clean_refusal(records[0]["error"], case)


@pytest.mark.parametrize("case", ODD, ids=lambda c: c.file)
def test_odd_file_via_cli_is_analysed(corpus, case):
    records, failure = _cli(corpus / case.file)
    assert failure is None
    assert "error" not in records[0] and isinstance(records[0]["tumor_detected"], bool)
