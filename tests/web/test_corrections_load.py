"""Corrections under load (issue 18, part 6): a huge mask is a 400, concurrent saves all succeed,
versions are capped."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from TumorApp.models import AuditEvent, MaskVersion
from TumorApp.tokens import create_token

from .helpers import DICOM, FIXTURES, make_analysis, stored_files
from .test_corrections import model_masks, png, put, url

sys.path.insert(0, str(FIXTURES / "bad"))
from make_corpus import bomb_png  # noqa: E402  (the slice corpus's bomb, streamed: never in memory)

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    # 16384² (~261 KB): over PIL's hard limit (DecompressionBombError); 10000²: over its warning limit.
    return {"16384": bomb_png(16384), "10000": bomb_png(10000)}


@pytest.mark.parametrize("side", ["16384", "10000"])
def test_a_decompression_bomb_mask_is_a_400_on_the_page_and_the_api(side, bombs, user, media_root):
    analysis = make_analysis(user, DICOM)
    before = stored_files(media_root)
    liver = png(np.zeros((512, 512), bool)).getvalue()

    # The editor's save: the session and its CSRF token, as static/js/editor/api.js sends it.
    page = Client(enforce_csrf_checks=True)
    page.force_login(user)
    page.get(f"/analyses/{analysis.pk}/")
    body = encode_multipart(BOUNDARY, {"liver": _file("liver", liver), "tumor": _file("tumor", bombs[side])})
    by_page = page.put(url(analysis.pk), data=body, content_type=MULTIPART_CONTENT,
                       headers={"X-CSRFToken": page.cookies["csrftoken"].value})
    # A script with a token, the bomb as the liver mask this time.
    _, token = create_token(user=user, name="script")
    by_api = put(Client(headers={"Authorization": f"Bearer {token}"}), analysis.pk, liver=bombs[side], tumor=liver)

    for response, name in ((by_page, "tumor"), (by_api, "liver")):
        assert response.status_code == 400, response.content
        assert response.json() == {"status": 400, "error": f"The {name} mask declares far more pixels than the "
                                                          "image has; it must be the image's own size, 512x512."}
    assert not MaskVersion.objects.exists() and not AuditEvent.objects.filter(action="correct").exists()
    assert stored_files(media_root) == before


def test_a_mask_of_another_size_is_a_400(auth_client, user):
    analysis = make_analysis(user, DICOM)
    liver, tumor = model_masks(auth_client, analysis.pk)
    response = put(auth_client, analysis.pk, liver=png(liver), tumor=png(np.zeros((512, 511), bool)))
    assert response.status_code == 400
    assert response.json()["error"] == "The tumor mask is 511x512 pixels; it must be the image's own size, 512x512."
    assert not MaskVersion.objects.exists()


def _file(name: str, data: bytes) -> io.BytesIO:
    f = io.BytesIO(data)
    f.name = f"{name}.png"
    return f


def test_versions_beyond_the_cap_are_removed_oldest_first_but_never_version_0(
        auth_client, user, settings, media_root, django_capture_on_commit_callbacks):
    settings.MASK_VERSIONS_KEPT = 3
    analysis = make_analysis(user, DICOM)
    liver, tumor = model_masks(auth_client, analysis.pk)
    for _ in range(4):
        with django_capture_on_commit_callbacks(execute=True):
            assert put(auth_client, analysis.pk, liver=png(liver), tumor=png(tumor)).status_code == 200

    analysis.refresh_from_db()
    versions = list(analysis.mask_versions.order_by("number"))
    assert [v.number for v in versions] == [0, 3, 4]
    assert list(AuditEvent.objects.filter(action="correct").order_by("id").values_list("detail", flat=True)) == [
        "version 1", "version 2", "version 3; removed version(s) 1", "version 4; removed version(s) 2"]
    # The removed versions' files are gone; every file a kept version or the row names is there.
    stored = {p.relative_to(media_root).as_posix() for p in stored_files(media_root)}
    assert not [p for p in stored if "/v1/" in p or "/v2/" in p]
    named = {p for v in versions for p in v.paths()} | set(analysis.images.values())
    assert named <= stored and analysis.images == versions[-1].images
    # The editor, the page and the API still find the network's and the latest outline.
    assert np.array_equal(model_masks(auth_client, analysis.pk)[0], liver)
    body = auth_client.get(f"/api/analyses/{analysis.pk}/").json()
    assert body["version"] == 4 and body["model_result"] == versions[0].result
    assert auth_client.get(f"/analyses/{analysis.pk}/").status_code == 200
