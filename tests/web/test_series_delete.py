"""Submitting a whole-series job is audited."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from TumorApp.models import AuditEvent, SeriesJob
from tests.analysis.series_fixtures import dicom_series

pytestmark = pytest.mark.django_db(transaction=True)  # the worker's heartbeat thread has its own connection


def files(n=2) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(name, data, content_type="application/dicom") for name, data in dicom_series(n)]


def test_submitting_a_series_is_audited_from_the_page_and_the_api(auth_client):
    assert auth_client.post("/series/new/", {"file": files()}).status_code == 302
    assert auth_client.post("/api/series/", {"file": files()}).status_code == 202
    submitted = AuditEvent.objects.filter(action=AuditEvent.Action.SERIES_SUBMIT).order_by("id")
    assert [(e.username, e.ip, e.detail) for e in submitted] == [
        ("radiologist", "127.0.0.1", f"series {pk}") for pk in SeriesJob.objects.order_by("id").values_list("pk", flat=True)]
