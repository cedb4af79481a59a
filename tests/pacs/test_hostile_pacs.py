"""A hostile or broken PACS cannot hurt the server: answers of the wrong shape, garbage multipart,
answers over the byte budgets, a PACS that trickles or hangs, a deflated instance that inflates past
the per-image budget, and more hung calls than PACS_MAX_CALLS: each is a 502 (or a 400 for our own
limits) with a plain message, or a retrieve job that fails in the worker saying why; nothing is
stored, and no thread waits past its deadline."""
from __future__ import annotations

import io
import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian

from TumorApp.models import PacsTransfer, SeriesJob
from TumorApp.series import services as series_services
from tests.analysis.conftest import IntensitySegmenter

from .test_roundtrip import ct_series

pytestmark = pytest.mark.django_db(transaction=True)
SERIES = "1.2.3.4"
STUDY = "1.2.3"


@pytest.fixture
def hostile_pacs(settings):
    """A 'PACS' on a free port whose answers the test chooses: `answer(path) -> (content type, body
    chunks, seconds between chunks)`."""
    plan = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            kind, chunks, pause = plan["answer"](self.path)
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in chunks:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                    time.sleep(pause)
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.DICOMWEB_URL = f"http://127.0.0.1:{server.server_address[1]}/dicom-web"
    settings.DICOMWEB_TIMEOUT = 3
    settings.DICOMWEB_RETRIEVE_TIMEOUT = 3
    yield plan
    server.shutdown()
    server.server_close()


def search(client):
    return client.get("/api/pacs/series/", {"patient_id": "X"})


def retrieve_error(client) -> str:
    """Queue the retrieve (202), let the worker run it; the failed job's message."""
    response = client.post("/api/pacs/retrieve/", {"series_uid": SERIES})
    assert response.status_code == 202, response.content
    series_services.work(once=True, segmenter=IntensitySegmenter())
    job = SeriesJob.objects.get(pk=response.json()["id"])
    assert job.status == "failed"
    assert PacsTransfer.objects.get(job=job, direction="retrieve").status == "failed"
    return job.error


def multipart(parts: list[bytes], boundary: str = "b0undary") -> tuple[str, list[bytes], float]:
    body = b"".join(b"--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n" % (boundary.encode(), p)
                    for p in parts) + b"--%s--\r\n" % boundary.encode()
    return f'multipart/related; type="application/dicom"; boundary={boundary}', [body], 0


def study_then(retrieve_answer):
    """Answer the study lookup of a retrieve, then `retrieve_answer`."""
    found = json.dumps([{"0020000D": {"vr": "UI", "Value": [STUDY]}}]).encode()

    def answer(path):
        return ("application/dicom+json", [found], 0) if path.startswith("/dicom-web/series") else retrieve_answer
    return answer


@pytest.mark.parametrize("body, message", [
    (b'{"not": "a list"}', "wrong shape"),
    (b'["a", "b"]', "wrong shape"),
    (b"<html>surprise</html>", "not DICOM JSON"),
    (b"[" * 100_000, "not DICOM JSON"),
])
def test_a_search_answer_of_the_wrong_shape_is_a_502(hostile_pacs, auth_client, body, message):
    hostile_pacs["answer"] = lambda path: ("application/dicom+json", [body], 0)
    response = search(auth_client)
    assert response.status_code == 502 and message in response.json()["error"]


def test_a_search_answer_over_the_budget_is_cut_off(hostile_pacs, auth_client):
    hostile_pacs["answer"] = lambda path: ("application/dicom+json", (b" " * 2**20 for _ in range(2000)), 0)
    response = search(auth_client)
    assert response.status_code == 502 and "answered more than 8 MiB" in response.json()["error"]


def test_a_trickling_pacs_is_cut_at_the_deadline(hostile_pacs, auth_client):
    hostile_pacs["answer"] = lambda path: ("application/dicom+json", (b" " for _ in range(1000)), 0.5)
    started = time.monotonic()
    response = search(auth_client)
    assert response.status_code == 502 and time.monotonic() - started < 6
    assert "3 s" in response.json()["error"] or "deadline" in response.json()["error"]


def test_garbage_multipart_fails_the_job_and_stores_nothing(hostile_pacs, auth_client, media_root):
    hostile_pacs["answer"] = study_then(('multipart/related; boundary=xyz', [b"garbage without a boundary" * 1000], 0))
    assert "multipart" in retrieve_error(auth_client)
    assert not list(media_root.parent.rglob("*.dcm"))


def test_a_retrieve_answer_that_is_not_multipart_fails_the_job(hostile_pacs, auth_client):
    hostile_pacs["answer"] = study_then(("application/json", [b"[]"], 0))
    assert "not multipart/related" in retrieve_error(auth_client)


def test_a_deflated_instance_is_refused_by_what_it_inflates_to(hostile_pacs, auth_client, media_root, monkeypatch):
    items, _ = ct_series("PACS-HOSTILE-1", n=1)
    ds = pydicom.dcmread(io.BytesIO(items[0][1]))
    ds.PixelData = bytes(len(ds.PixelData))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    monkeypatch.setattr("TumorApp.analysis.io.series_input.MAX_FILE_BYTES", 256 * 1024)
    monkeypatch.setattr("TumorApp.analysis.series.volume.MAX_FILE_BYTES", 256 * 1024)
    assert len(buf.getvalue()) < 256 * 1024
    hostile_pacs["answer"] = study_then(multipart([buf.getvalue()]))
    assert "inflates to more than" in retrieve_error(auth_client)


def test_an_instance_over_the_image_budget_is_cut_off_while_streaming(hostile_pacs, auth_client, monkeypatch):
    monkeypatch.setattr("TumorApp.analysis.io.series_input.MAX_FILE_BYTES", 1024)
    hostile_pacs["answer"] = study_then(multipart([b"\0" * 4096]))
    assert "limit per image" in retrieve_error(auth_client)


def test_calls_past_the_cap_are_refused_at_once_while_a_pacs_hangs(hostile_pacs, auth_client, settings):
    settings.PACS_MAX_CALLS = 1
    from TumorApp.pacs.client import PacsError, _call_slots, read_json

    _call_slots.cache_clear()
    hostile_pacs["answer"] = lambda path: ("application/dicom+json", (b" " for _ in range(10)), 0.5)

    def hold():
        with pytest.raises(PacsError):
            read_json("/series")
    hung = threading.Thread(target=hold)
    hung.start()
    time.sleep(0.5)
    try:
        started = time.monotonic()
        response = search(auth_client)
        assert response.status_code == 502 and "busy" in response.json()["error"]
        assert time.monotonic() - started < 1
    finally:
        hung.join()
        _call_slots.cache_clear()


def test_stale_retrieve_and_listener_folders_are_swept(settings, media_root):
    import os

    from TumorApp.pacs.services import _tmp_root, remove_stale_tmp

    root = media_root.parent / "tmp"
    assert _tmp_root() == str(root)
    old, fresh, other = root / "pacs-killed", root / "dicom-in-live", root / "unrelated"
    for folder in (old, fresh, other):
        (folder / "series").mkdir(parents=True)
        (folder / "series" / "0000.dcm").write_bytes(b"x")
    past = time.time() - 7200
    for path in (old / "series" / "0000.dcm", old / "series", old, other / "series" / "0000.dcm", other):
        os.utime(path, (past, past))
    assert remove_stale_tmp(older_than_s=3600) == ["pacs-killed"]
    assert not old.exists() and fresh.exists() and other.exists()
