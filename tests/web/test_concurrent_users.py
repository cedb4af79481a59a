"""Two users uploading at the same moment, through the real server with real threads, each get their own result."""
from __future__ import annotations

import threading

import pytest
import requests

from TumorApp.models import Analysis

from .helpers import DICOM, PASSWORD, PNG_TUMOR, fixture_bytes

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 3


def _session(base: str, username: str) -> requests.Session:
    s = requests.Session()
    # Generous timeouts: a log-in hashes the password (PBKDF2), slow on a loaded two-core machine.
    s.get(f"{base}/login/", timeout=120)
    r = s.post(f"{base}/login/", data={"username": username, "password": PASSWORD,
                                       "csrfmiddlewaretoken": s.cookies["csrftoken"]},
               headers={"Referer": f"{base}/login/"}, timeout=120, allow_redirects=False)
    assert r.status_code == 302, r.text[:500]
    return s


def _post(session: requests.Session, base: str, name: str, data: bytes) -> requests.Response:
    return session.post(f"{base}/api/analyses/", files={"file": (name, data)},
                        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{base}/detect/"},
                        timeout=120)


def test_two_users_uploading_together_each_get_their_own_result(live_server, django_user_model):
    base = live_server.url
    users = {"alice": django_user_model.objects.create_user("alice", password=PASSWORD),
             "bob": django_user_model.objects.create_user("bob", password=PASSWORD)}
    sessions = {name: _session(base, name) for name in users}
    files = {"alice": (f"alice-{PNG_TUMOR}", fixture_bytes(PNG_TUMOR)),
             "bob": (f"bob-{DICOM}", fixture_bytes(DICOM))}
    got: dict[str, list] = {name: [] for name in users}

    for round_ in range(ROUNDS):
        barrier = threading.Barrier(len(users))

        def send(name: str) -> None:
            barrier.wait()  # both requests leave at the same moment
            got[name].append(_post(sessions[name], base, *files[name]))

        threads = [threading.Thread(target=send, args=(name,)) for name in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)

    for name, responses in got.items():
        assert [r.status_code for r in responses] == [201] * ROUNDS, [r.text[:300] for r in responses]
        ids = [r.json()["id"] for r in responses]
        assert len(set(ids)) == ROUNDS
        for r in responses:
            body = r.json()
            assert body["file"] == files[name][0]
            row = Analysis.objects.get(pk=body["id"])
            assert row.owner == users[name] and row.original_name == files[name][0]
            # Reopens for its owner, and the other user cannot open it.
            assert sessions[name].get(f"{base}/api/analyses/{body['id']}/", timeout=30).json()["id"] == body["id"]
            other = "bob" if name == "alice" else "alice"
            assert sessions[other].get(f"{base}/api/analyses/{body['id']}/", timeout=30).status_code == 404
            assert sessions[other].get(f"{base}/analyses/{body['id']}/", timeout=30).status_code == 404
    assert Analysis.objects.count() == 2 * ROUNDS
