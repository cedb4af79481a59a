"""Corrections under load (issue 18, part 6): a huge mask is a 400, concurrent saves all succeed,
versions are capped."""
from __future__ import annotations

import io
import sqlite3
import sys
import threading

import numpy as np
import pytest
from django.db import connection, connections
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from TumorApp.models import AuditEvent, MaskVersion
from TumorApp.accounts.tokens import create_token

from ..helpers import DICOM, FIXTURES, PNG_TUMOR, make_analysis, stored_files
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
    body = encode_multipart(BOUNDARY, {"labels": _file("labels", bombs[side])})
    by_page = page.put(url(analysis.pk), data=body, content_type=MULTIPART_CONTENT,
                       headers={"X-CSRFToken": page.cookies["csrftoken"].value})
    # A script with a token, the bomb as the liver mask this time.
    _, token = create_token(user=user, name="script")
    by_api = put(Client(headers={"Authorization": f"Bearer {token}"}), analysis.pk, liver=bombs[side], tumor=liver)

    for response, name in ((by_page, "label map"), (by_api, "liver mask")):
        assert response.status_code == 400, response.content
        assert response.json() == {"status": 400, "error": f"The {name} declares far more pixels than the "
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


# --- concurrent saves ----------------------------------------------------------------------------

@pytest.fixture
def database_for_threads(transactional_db, tmp_path):
    """A test database that threads reach through their own connections, as a server's threads do.

    MySQL/MariaDB: the test database as it is. SQLite: the in-memory test database shares one
    cache between connections, where a lock is refused at once instead of waited for; so this
    test runs on a copy of it in a file, the way the app runs on SQLite.
    """
    if connection.vendor != "sqlite":
        yield
        return
    path = tmp_path / "db.sqlite3"
    connection.ensure_connection()
    copy = sqlite3.connect(path)
    connection.connection.backup(copy)
    copy.close()
    in_memory = connections.settings["default"]
    connections.settings["default"] = {**in_memory, "NAME": str(path)}
    original = connections["default"]
    connections["default"] = connections.create_connection("default")
    try:
        yield
    finally:
        connections["default"].close()
        connections["default"] = original
        connections.settings["default"] = in_memory


def _save_all(clients_and_analyses, masks) -> list:
    """One thread per (client, analysis); all PUT at the same moment. Returns the responses."""
    barrier = threading.Barrier(len(clients_and_analyses))
    responses: list = [None] * len(clients_and_analyses)

    def save(i: int, client: Client, pk: int) -> None:
        try:
            barrier.wait()
            responses[i] = put(client, pk, liver=png(masks[pk][0]), tumor=png(masks[pk][1]))
        finally:
            connections.close_all()  # this thread's connection

    threads = [threading.Thread(target=save, args=(i, c, pk)) for i, (c, pk) in enumerate(clients_and_analyses)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return responses


def _failures(responses) -> list[bytes]:
    return [r.content[:300] for r in responses if r.status_code != 200]


def _logged_in(user) -> Client:
    client = Client(raise_request_exception=False)  # a failed save shows as its status (503), not a raise
    client.force_login(user)
    return client


@pytest.mark.slow
def test_twenty_concurrent_saves_all_succeed_on_one_analysis_and_on_two_users(database_for_threads,
                                                                              django_user_model, settings):
    settings.MASK_VERSIONS_KEPT = 20
    alice = django_user_model.objects.create_user("alice", password="Liver-Scan-Review-42")
    bob = django_user_model.objects.create_user("bob", password="Liver-Scan-Review-42")
    shared, hers, his = make_analysis(alice, DICOM), make_analysis(alice, PNG_TUMOR), make_analysis(bob, DICOM)
    masks = {a.pk: model_masks(_logged_in(a.owner), a.pk) for a in (shared, hers, his)}

    # Twenty saves of one analysis, each from its own client (the cap keeps version 0 and 19 more).
    responses = _save_all([(_logged_in(alice), shared.pk) for _ in range(20)], masks)
    assert [r.status_code for r in responses] == [200] * 20, _failures(responses)
    saved = AuditEvent.objects.filter(action="correct", analysis_id=shared.pk).values_list("detail", flat=True)
    assert sorted(int(d.split(";")[0].split()[1]) for d in saved) == list(range(1, 21))
    assert list(shared.mask_versions.order_by("number").values_list("number", flat=True)) == [0, *range(2, 21)]
    shared.refresh_from_db()
    assert shared.result == shared.mask_versions.get(number=20).result

    # Two users, ten saves each, at the same moment.
    responses = _save_all([(_logged_in(alice), hers.pk) for _ in range(10)] +
                          [(_logged_in(bob), his.pk) for _ in range(10)], masks)
    assert [r.status_code for r in responses] == [200] * 20, _failures(responses)
    for analysis in (hers, his):
        assert list(analysis.mask_versions.order_by("number").values_list("number", flat=True)) == list(range(11))
    assert AuditEvent.objects.filter(action="correct").count() == 40
