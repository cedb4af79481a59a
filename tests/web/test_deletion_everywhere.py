"""Deleting an analysis from anywhere (page, API, admin one or bulk, deleting its user) removes its
files once committed and writes an audit event naming who deleted it."""
import pytest
from django.urls import reverse

from TumorApp.models import Analysis, AuditEvent

from .helpers import PNG_PLAIN, make_analysis, stored_files

pytestmark = pytest.mark.django_db


def _deletions(pk):
    return list(AuditEvent.objects.filter(action=AuditEvent.Action.DELETE, analysis_id=pk)
                .values_list("username", flat=True))


def test_api_delete_removes_files_and_is_audited(auth_client, user, media_root, django_capture_on_commit_callbacks):
    analysis = make_analysis(user, PNG_PLAIN)
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.delete(reverse("api-analysis", args=[analysis.pk]))
    assert response.status_code == 204
    assert stored_files(media_root) == [] and not Analysis.objects.exists()
    assert _deletions(analysis.pk) == ["radiologist"]


def test_api_delete_of_another_users_analysis_is_404(other_client, user, media_root):
    analysis = make_analysis(user, PNG_PLAIN)
    assert other_client.delete(reverse("api-analysis", args=[analysis.pk])).status_code == 404
    assert Analysis.objects.filter(pk=analysis.pk).exists() and stored_files(media_root)


def test_admin_delete_one_removes_files_and_is_audited(admin_client, user, media_root,
                                                       django_capture_on_commit_callbacks):
    analysis = make_analysis(user, PNG_PLAIN)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:TumorApp_analysis_delete", args=[analysis.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert stored_files(media_root) == [] and not Analysis.objects.exists()
    assert _deletions(analysis.pk) == ["admin"]


def test_admin_bulk_delete_removes_files_and_is_audited(admin_client, user, media_root,
                                                        django_capture_on_commit_callbacks):
    first, second = make_analysis(user, PNG_PLAIN), make_analysis(user, PNG_PLAIN)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:TumorApp_analysis_changelist"), {
            "action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"})
    assert response.status_code == 302
    assert stored_files(media_root) == [] and not Analysis.objects.exists()
    assert _deletions(first.pk) == ["admin"] and _deletions(second.pk) == ["admin"]


def test_admin_deleting_a_user_removes_their_files_and_audits_each_analysis(
        admin_client, user, other_user, media_root, django_capture_on_commit_callbacks):
    mine = make_analysis(user, PNG_PLAIN)
    kept = make_analysis(other_user, PNG_PLAIN)
    kept_files = {str(media_root / p) for p in [kept.upload.name, *kept.images.values()]}
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:auth_user_delete", args=[user.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert {str(p) for p in stored_files(media_root)} == kept_files
    assert list(Analysis.objects.values_list("pk", flat=True)) == [kept.pk]
    assert _deletions(mine.pk) == ["admin"]


def test_cascade_delete_outside_the_admin_still_removes_files_and_audits(user, media_root,
                                                                         django_capture_on_commit_callbacks):
    analysis = make_analysis(user, PNG_PLAIN)
    with django_capture_on_commit_callbacks(execute=True):
        user.delete()  # e.g. from `manage.py shell`: no actor known, the owner's name is kept
    assert stored_files(media_root) == []
    assert _deletions(analysis.pk) == ["radiologist"]
