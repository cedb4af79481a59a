"""Audit trail: log-ins (and failures), log-outs, analyses, views and deletions are recorded; only staff read them."""
import pytest
from django.urls import reverse

from TumorApp.models import AuditEvent

from .helpers import PASSWORD, make_analysis, upload

pytestmark = pytest.mark.django_db


def _actions(**filters):
    # force_login (the fixtures) fires user_logged_in too; those log-ins are not what these tests are about.
    events = AuditEvent.objects.filter(**filters).exclude(action="login").order_by("id")
    return list(events.values_list("action", flat=True))


def test_login_failed_login_and_logout_are_recorded(client, user):
    client.post(reverse("login"), {"username": "radiologist", "password": "wrong-password"})
    client.post(reverse("login"), {"username": "nobody", "password": "x"})
    client.post(reverse("login"), {"username": "radiologist", "password": PASSWORD})
    client.post(reverse("logout"))
    events = list(AuditEvent.objects.order_by("id"))
    assert [(e.action, e.username) for e in events] == [
        ("login_failed", "radiologist"), ("login_failed", "nobody"), ("login", "radiologist"), ("logout", "radiologist")]
    assert events[0].user is None and events[2].user == user
    assert all(e.ip == "127.0.0.1" for e in events)


def test_analyse_view_delete_are_recorded_per_user(auth_client, other_client, user, other_user):
    response = auth_client.post(reverse("detect"), {"file": upload()})
    pk = int(response["Location"].rstrip("/").split("/")[-1])
    auth_client.get(reverse("analysis", args=[pk]))
    auth_client.get(reverse("analysis-report", args=[pk]))
    other = other_client.post(reverse("api-analyses"), {"file": upload()}).json()["id"]
    other_client.get(reverse("api-analysis", args=[other]))
    # The other user cannot open the first user's analysis: nothing recorded for them about it.
    assert other_client.get(reverse("analysis", args=[pk])).status_code == 404
    auth_client.post(reverse("analysis-delete", args=[pk]))

    assert _actions(user=user) == ["analyse", "view", "view", "delete"]
    assert set(AuditEvent.objects.filter(user=user).exclude(action="login").values_list("analysis_id", flat=True)) == {pk}
    assert _actions(user=other_user) == ["api_analyse", "api_view"]
    assert set(AuditEvent.objects.filter(user=other_user).exclude(action="login").values_list("analysis_id", flat=True)) == {other}


def test_failed_analysis_records_nothing(auth_client):
    auth_client.post(reverse("detect"), {"file": upload(data=b"not an image", name="x.png")})
    assert not AuditEvent.objects.exclude(action="login").exists()


def test_only_staff_see_the_audit_page(auth_client, admin_client, user):
    make_analysis(user)
    response = auth_client.get(reverse("audit"))
    assert response.status_code == 302 and reverse("admin:login") in response["Location"]
    assert auth_client.get(reverse("admin:TumorApp_auditevent_changelist")).status_code == 302

    page = admin_client.get(reverse("audit"))
    assert page.status_code == 200 and "analysed (web)" in page.content.decode()
    assert "radiologist" in page.content.decode()
    changelist = admin_client.get(reverse("admin:TumorApp_auditevent_changelist"))
    assert changelist.status_code == 200


def test_audit_events_cannot_be_edited_in_the_admin(admin_client, user):
    make_analysis(user)
    event = AuditEvent.objects.get(action="analyse")
    assert admin_client.post(reverse("admin:TumorApp_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db(transaction=True)  # the series worker's heartbeat thread has its own connection
def test_series_views_reports_and_downloads_are_recorded_like_analysis_views(auth_client, other_client, user):
    from TumorApp.series import services as series_services
    from tests.analysis.series_fixtures import dicom_series

    from .series.test_series import files

    job = series_services.submit_series(user=user, uploads=files(dicom_series(2)))
    assert auth_client.get(reverse("api-series", args=[job.pk])).json()["status"] == "queued"  # a poll: not recorded
    assert series_services.work(once=True) == 1
    for name in ("series", "series-report", "api-series", "series-export", "api-series-export"):
        assert auth_client.get(reverse(name, args=[job.pk])).status_code == 200, name
        # Another user gets a 404 and leaves no trace.
        assert other_client.get(reverse(name, args=[job.pk])).status_code == 404, name

    assert _actions(user=user) == ["series_submit", "series_view", "series_view", "api_series_view",
                                   "series_export", "api_series_export"]
    events = AuditEvent.objects.filter(user=user).exclude(action__in=["login", "series_submit"])
    assert {(e.detail, e.ip, e.analysis_id) for e in events} == {(f"series {job.pk}", "127.0.0.1", None)}
    assert not AuditEvent.objects.filter(username="other").exclude(action="login").exists()
