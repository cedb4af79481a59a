"""History lists the user's analyses newest first, paginated; reopen, report, image and delete work."""
import pytest
from django.urls import reverse

from TumorApp.analyses import views
from TumorApp.models import Analysis

from .helpers import PNG_PLAIN, PNG_TUMOR, make_analysis, stored_files

pytestmark = pytest.mark.django_db


def test_history_lists_newest_first_with_thumbnails(auth_client, user):
    older = make_analysis(user, PNG_PLAIN)
    newer = make_analysis(user, PNG_TUMOR)
    html = auth_client.get(reverse("history")).content.decode()
    assert html.index(reverse("analysis", args=[newer.pk])) < html.index(reverse("analysis", args=[older.pk]))
    assert reverse("analysis-image", args=[newer.pk, "thumbnail"]) in html
    assert PNG_PLAIN in html and PNG_TUMOR in html


def test_history_is_paginated(auth_client, user, monkeypatch):
    monkeypatch.setattr(views, "HISTORY_PAGE_SIZE", 1)
    first = make_analysis(user, PNG_PLAIN)
    second = make_analysis(user, PNG_PLAIN)
    page1 = auth_client.get(reverse("history")).content.decode()
    page2 = auth_client.get(reverse("history") + "?page=2").content.decode()
    assert reverse("analysis", args=[second.pk]) in page1 and reverse("analysis", args=[first.pk]) not in page1
    assert reverse("analysis", args=[first.pk]) in page2
    assert "Page 1 of 2" in page1
    # Out-of-range or junk page numbers fall back to a valid page instead of failing.
    assert auth_client.get(reverse("history") + "?page=99").status_code == 200
    assert auth_client.get(reverse("history") + "?page=abc").status_code == 200


def test_empty_history_invites_an_upload(auth_client):
    assert "No analyses yet" in auth_client.get(reverse("history")).content.decode()


def test_reopened_analysis_shows_the_stored_result(auth_client, user):
    analysis = make_analysis(user, PNG_TUMOR)
    html = auth_client.get(reverse("analysis", args=[analysis.pk])).content.decode()
    assert ("No Tumor Detected" if not analysis.tumor_detected else "Tumor Detected") in html
    assert f"{analysis.affected_percent:.1f} %" in html
    if analysis.lesions:
        assert 'id="lesion-table"' in html
        assert html.count("<tr>") - 1 == len(analysis.lesions)
    else:
        assert 'id="no-lesions"' in html


def test_report_page_is_printable(auth_client, user):
    analysis = make_analysis(user, PNG_TUMOR)
    response = auth_client.get(reverse("analysis-report", args=[analysis.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "css/report.css" in html and 'data-action="print"' in html
    assert "Research use only — not a medical device, not for diagnosis" in html
    assert "size-based estimate, not a clinical stage" in html


def test_stored_images_are_served_to_the_owner(auth_client, user):
    analysis = make_analysis(user, PNG_PLAIN)
    response = auth_client.get(reverse("analysis-image", args=[analysis.pk, "annotated"]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    assert auth_client.get(reverse("analysis-image", args=[analysis.pk, "nosuch"])).status_code == 404


def test_delete_asks_for_confirmation_then_removes_row_and_files(auth_client, user, media_root,
                                                                 django_capture_on_commit_callbacks):
    analysis = make_analysis(user, PNG_PLAIN)
    url = reverse("analysis-delete", args=[analysis.pk])
    confirm = auth_client.get(url)
    assert confirm.status_code == 200 and "Delete permanently" in confirm.content.decode()
    assert Analysis.objects.filter(pk=analysis.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.post(url)
    assert response.status_code == 302 and response["Location"] == reverse("history")
    assert not Analysis.objects.filter(pk=analysis.pk).exists()
    assert stored_files(media_root) == []
    assert auth_client.get(reverse("analysis", args=[analysis.pk])).status_code == 404


def test_unknown_analysis_is_404(auth_client):
    assert auth_client.get(reverse("analysis", args=[999999])).status_code == 404
