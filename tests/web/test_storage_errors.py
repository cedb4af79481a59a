"""A full disk answers 507 and leaves nothing half-written; a server whose analysis slots stay busy
answers 503; both through the page and the API."""
import errno

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from TumorApp.analyses import services
from TumorApp.models import Analysis

from .helpers import stored_files, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def disk_fills_on_second_file(monkeypatch):
    """The first stored file is written; the second gets half its bytes, then ENOSPC."""
    real_chunks = ContentFile.chunks
    calls = []

    def chunks(self, chunk_size=None):
        calls.append(1)
        if len(calls) < 2:
            yield from real_chunks(self, chunk_size)
            return
        data = self.read()
        yield data[: len(data) // 2]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ContentFile, "chunks", chunks)
    return calls


@pytest.mark.parametrize("url_name", ["detect", "api-analyses"])
def test_disk_full_is_507_and_leaves_nothing(auth_client, media_root, disk_fills_on_second_file, url_name):
    response = auth_client.post(reverse(url_name), {"file": upload()})
    assert response.status_code == 507
    text = response.content.decode()
    assert "disk is full" in text and "Traceback" not in text
    assert len(disk_fills_on_second_file) == 2  # really failed mid-way through the second file
    assert stored_files(media_root) == [] and not Analysis.objects.exists()
    if url_name == "api-analyses":
        assert response.json()["status"] == 507


@pytest.mark.parametrize("url_name", ["detect", "api-analyses"])
def test_busy_analysis_slots_give_503_with_retry_after(auth_client, settings, media_root, url_name):
    settings.MAX_CONCURRENT_ANALYSES = 1
    settings.ANALYSIS_QUEUE_SECONDS = 0.2
    slot = services._analysis_slots(1)
    assert slot.acquire(timeout=5)  # another request holds the only slot
    try:
        response = auth_client.post(reverse(url_name), {"file": upload()})
    finally:
        slot.release()
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert "busy" in response.content.decode()
    assert stored_files(media_root) == [] and not Analysis.objects.exists()
    # Once the slot is free the same upload goes through.
    assert auth_client.post(reverse(url_name), {"file": upload()}).status_code in (201, 302)
