"""Deleting a whole-series job (page, API, admin, a deleted owner) removes its row and its whole folder
and is audited; a running job is refused; submitting a series is audited too."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from TumorApp.series import services as series_services
from TumorApp.accounts import tokens
from TumorApp.analysis.series import volume
from TumorApp.models import AuditEvent, SeriesJob
from tests.analysis.series_fixtures import dicom_series

from ..helpers import stored_files

pytestmark = pytest.mark.django_db(transaction=True)  # the worker's heartbeat thread has its own connection


def files(n=2) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(name, data, content_type="application/dicom") for name, data in dicom_series(n)]


def submit(user) -> SeriesJob:
    return series_services.submit_series(user=user, uploads=files())


def deletions(job) -> list[tuple[str, str | None]]:
    return list(AuditEvent.objects.filter(action=AuditEvent.Action.SERIES_DELETE, detail=f"series {job.pk}")
                .values_list("username", "ip"))


def test_page_delete_of_a_done_series_removes_row_inputs_arrays_and_export(auth_client, user, media_root):
    job = submit(user)
    series_services.work(once=True)
    assert auth_client.get(f"/series/{job.pk}/export/").status_code == 200  # the export is kept on disk
    job.refresh_from_db()
    assert set(job.files) == {"ct", "labels", "export"}
    folder = media_root / job.folder
    assert {p.name for p in (folder / "input").iterdir()} and all((media_root / p).is_file() for p in job.files.values())

    assert f'href="/series/{job.pk}/delete/"' in auth_client.get(f"/series/{job.pk}/").content.decode()
    confirm = auth_client.get(f"/series/{job.pk}/delete/")
    assert confirm.status_code == 200 and 'id="confirm-delete"' in confirm.content.decode()
    response = auth_client.post(f"/series/{job.pk}/delete/", follow=True)

    assert response.redirect_chain == [("/series/new/", 302)]
    assert f"Deleted the series {job.name}." in response.content.decode()
    assert not SeriesJob.objects.exists()
    assert not folder.exists() and stored_files(media_root) == []
    assert deletions(job) == [("radiologist", "127.0.0.1")]


def test_api_delete_is_204_removes_the_files_and_then_404(auth_client, user, media_root):
    job = submit(user)  # queued: deleting it before it runs takes it off the queue
    assert stored_files(media_root)
    response = auth_client.delete(f"/api/series/{job.pk}/")
    assert response.status_code == 204
    assert not SeriesJob.objects.exists() and stored_files(media_root) == []
    assert deletions(job) == [("radiologist", "127.0.0.1")]
    assert auth_client.delete(f"/api/series/{job.pk}/").status_code == 404
    assert series_services.work(once=True) == 0  # nothing left for a worker


def test_api_delete_with_a_token_needs_no_csrf_but_a_session_does(user, media_root):
    job = submit(user)
    session = Client(enforce_csrf_checks=True)
    session.force_login(user)
    assert session.delete(f"/api/series/{job.pk}/").status_code == 403  # no CSRF token: a forged request
    assert SeriesJob.objects.filter(pk=job.pk).exists() and stored_files(media_root)

    _, token = tokens.create_token(user=user, name="script")
    response = Client(enforce_csrf_checks=True).delete(f"/api/series/{job.pk}/",
                                                       HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 204 and stored_files(media_root) == []


def test_another_user_gets_404_and_nothing_is_removed(user, other_client, media_root):
    job = submit(user)
    before = stored_files(media_root)
    assert other_client.get(f"/series/{job.pk}/delete/").status_code == 404
    assert other_client.post(f"/series/{job.pk}/delete/").status_code == 404
    assert other_client.delete(f"/api/series/{job.pk}/").status_code == 404
    unauthenticated = Client().delete(f"/api/series/{job.pk}/")
    assert unauthenticated.status_code == 401 and "Authentication required" in unauthenticated.json()["error"]
    assert SeriesJob.objects.filter(pk=job.pk).exists() and stored_files(media_root) == before
    assert deletions(job) == []


def test_a_running_job_is_refused_with_409_and_kept(auth_client, user, media_root):
    job = submit(user)
    assert series_services.claim_next("hostA:1:busy").pk == job.pk
    before = stored_files(media_root)

    api = auth_client.delete(f"/api/series/{job.pk}/")
    assert api.status_code == 409 and "wait until it finishes" in api.json()["error"]
    page = auth_client.post(f"/series/{job.pk}/delete/")
    assert page.status_code == 409 and "wait until it finishes" in page.content.decode()
    confirm = auth_client.get(f"/series/{job.pk}/delete/").content.decode()
    assert "wait until it finishes" in confirm and 'id="confirm-delete"' not in confirm
    assert 'id="series-delete"' not in auth_client.get(f"/series/{job.pk}/").content.decode()

    assert SeriesJob.objects.get(pk=job.pk).status == "running" and stored_files(media_root) == before
    assert deletions(job) == []


def test_a_worker_whose_job_was_requeued_and_deleted_meanwhile_stores_nothing(user, media_root, monkeypatch):
    """A stalled worker's job goes back to the queue (no longer running), so it may be deleted while the
    stalled worker is still analysing it: that worker's store step finds no claim and removes its files."""
    job = submit(user)
    stalled = series_services.claim_next("hostA:1:stalled")
    real = volume.analyze_series

    def analyse_then_lose_the_job(*args, **kwargs):
        result = real(*args, **kwargs)
        SeriesJob.objects.filter(pk=job.pk).update(status="queued", claimed_by="")  # what recover_jobs does
        series_services.delete_series(job=SeriesJob.objects.get(pk=job.pk))
        return result

    monkeypatch.setattr(volume, "analyze_series", analyse_then_lose_the_job)
    assert series_services.run_job(stalled, "hostA:1:stalled") is False
    assert not SeriesJob.objects.exists() and stored_files(media_root) == []
    assert not (media_root / job.folder).exists()  # not even the folder its arrays re-created
    assert deletions(job) == [("radiologist", None)]


def test_deleting_the_owner_of_a_running_job_leaves_no_files(user, media_root, monkeypatch):
    """A cascade (the owner deleted) does not ask the service, so it can delete a running job: the
    folder goes, and the worker's arrays are removed when it finds its claim gone."""
    job = submit(user)
    worker = series_services.claim_next("hostA:1:w")
    real = volume.analyze_series

    def analyse_then_owner_deleted(*args, **kwargs):
        result = real(*args, **kwargs)
        user.delete()
        return result

    monkeypatch.setattr(volume, "analyze_series", analyse_then_owner_deleted)
    assert series_services.run_job(worker, "hostA:1:w") is False
    assert not SeriesJob.objects.exists() and stored_files(media_root) == []
    assert not (media_root / job.folder).exists()
    assert deletions(job) == [("radiologist", None)]


def test_admin_delete_removes_files_and_is_audited_under_the_admin(admin_client, user, media_root):
    job = submit(user)
    response = admin_client.post(reverse("admin:TumorApp_seriesjob_delete", args=[job.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not SeriesJob.objects.exists() and stored_files(media_root) == []
    assert deletions(job) == [("admin", "127.0.0.1")]


def test_admin_bulk_delete_goes_through_the_service_and_refuses_running_jobs(admin_client, user, media_root):
    first, second, running = submit(user), submit(user), submit(user)
    SeriesJob.objects.filter(pk=running.pk).update(status="running", claimed_by="hostA:1:x")
    changelist = reverse("admin:TumorApp_seriesjob_changelist")
    # Django's own per-object permission check: no delete page, and a selection holding a running
    # job is refused as a whole (403), nothing deleted.
    assert admin_client.get(reverse("admin:TumorApp_seriesjob_delete", args=[running.pk])).status_code == 403
    refused = admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [first.pk, running.pk],
                                             "post": "yes"})
    assert refused.status_code == 403 and SeriesJob.objects.count() == 3

    response = admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [first.pk, second.pk],
                                              "post": "yes"})
    assert response.status_code == 302
    assert list(SeriesJob.objects.values_list("pk", flat=True)) == [running.pk]
    assert not (media_root / first.folder).exists() and not (media_root / second.folder).exists()
    assert (media_root / running.folder).is_dir()
    assert deletions(first) == deletions(second) == [("admin", "127.0.0.1")] and deletions(running) == []


def test_submitting_a_series_is_audited_from_the_page_and_the_api(auth_client):
    assert auth_client.post("/series/new/", {"file": files()}).status_code == 302
    assert auth_client.post("/api/series/", {"file": files()}).status_code == 202
    submitted = AuditEvent.objects.filter(action=AuditEvent.Action.SERIES_SUBMIT).order_by("id")
    assert [(e.username, e.ip, e.detail) for e in submitted] == [
        ("radiologist", "127.0.0.1", f"series {pk}") for pk in SeriesJob.objects.order_by("id").values_list("pk", flat=True)]


def test_export_of_a_series_deleted_meanwhile_is_404_and_leaves_nothing(auth_client, user, media_root):
    job = submit(user)
    series_services.work(once=True)
    stale = SeriesJob.objects.get(pk=job.pk)  # what a download request read before the deletion
    series_services.delete_series(job=SeriesJob.objects.get(pk=job.pk), actor=user)
    with pytest.raises(SeriesJob.DoesNotExist):
        series_services.export_file(stale)
    assert stored_files(media_root) == []
    assert auth_client.get(f"/api/series/{job.pk}/export/").status_code == 404
