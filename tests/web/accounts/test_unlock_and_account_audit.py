"""Getting back in after a lockout (command, admin action), and the audit of lockouts, unlocks and account changes."""
import re
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from TumorApp.models import AuditEvent

from ..helpers import PASSWORD

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "Hepatic-Portal-Vein-77"


def login(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def _lock(client, username="radiologist"):
    for _ in range(5):
        login(client, username, "wrong")


def test_lockout_page_says_when_it_ends_and_names_the_unlock_command(client, user):
    _lock(client)
    before = timezone.now()
    response = login(client, "radiologist", PASSWORD)
    assert response.status_code == 429
    html = response.content.decode()
    assert "python manage.py unlock USERNAME" in html and "radiologist" in html
    ends = datetime.fromisoformat(re.search(r'<time datetime="([^"]+)"', html).group(1))
    assert before + timedelta(minutes=14) < ends < timezone.now() + timedelta(minutes=16)
    assert "15 minutes" in html


def test_lockout_is_audited(client, user):
    _lock(client)
    events = AuditEvent.objects.filter(action="lockout")
    assert events.count() == 1 and events[0].username == "radiologist" and events[0].ip == "127.0.0.1"
    login(client, "radiologist", PASSWORD)  # refused during the lockout: recorded too
    assert AuditEvent.objects.filter(action="lockout").count() == 2


def test_unlock_command_lets_the_user_back_in_and_is_audited(client, user, capsys):
    _lock(client)
    assert login(client, "radiologist", PASSWORD).status_code == 429
    call_command("unlock", "radiologist")
    assert "Unlocked radiologist" in capsys.readouterr().out
    assert login(client, "radiologist", PASSWORD).status_code == 302
    event = AuditEvent.objects.get(action="unlock")
    assert event.user == user and "manage.py unlock" in event.detail


def test_unlock_command_on_an_unlocked_user_says_so(user, capsys):
    call_command("unlock", "radiologist")
    assert "was not locked" in capsys.readouterr().out


def test_locked_out_only_admin_gets_back_in_with_the_command(client, admin_user):
    _lock(client, "admin")
    assert login(client, "admin", "password").status_code == 429
    call_command("unlock", "admin")
    assert login(client, "admin", "password").status_code == 302


def test_staff_unlock_users_in_the_admin(client, admin_client, user):
    _lock(client)
    response = admin_client.post(reverse("admin:auth_user_changelist"),
                                 {"action": "unlock_users", "_selected_action": [user.pk]}, follow=True)
    assert "Unlocked: radiologist." in response.content.decode()
    assert login(client, "radiologist", PASSWORD).status_code == 302
    event = AuditEvent.objects.get(action="unlock")
    assert event.username == "radiologist" and "by admin" in event.detail


def test_admin_labels_are_spelled_right(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Account flags" in html and "Account flagss" not in html and "API tokens" in html


def test_password_and_username_changes_are_audited_and_the_message_says_what_changed(auth_client, user):
    response = auth_client.post(reverse("profile"), {"current_password": PASSWORD, "username": "dr_house"},
                                follow=True)
    assert "Saved: username changed from radiologist to dr_house." in response.content.decode()
    response = auth_client.post(reverse("profile"), {"current_password": PASSWORD, "username": "dr_house",
                                                     "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
                                follow=True)
    assert "Saved: password changed." in response.content.decode()
    response = auth_client.post(reverse("profile"), {"current_password": NEW_PASSWORD, "username": "house",
                                                     "new_password1": PASSWORD, "new_password2": PASSWORD},
                                follow=True)
    assert "Saved: username changed from dr_house to house; password changed." in response.content.decode()
    events = [(e.action, e.detail, e.username) for e in
              AuditEvent.objects.filter(user=user).exclude(action="login").order_by("id")]
    assert events == [("username_change", "radiologist -> dr_house", "dr_house"),
                      ("password_change", "", "dr_house"),
                      ("username_change", "dr_house -> house", "house"),
                      ("password_change", "", "house")]


def test_audit_page_shows_the_detail(admin_client, auth_client):
    auth_client.post(reverse("profile"), {"current_password": PASSWORD, "username": "dr_house"})
    html = admin_client.get(reverse("audit")).content.decode()
    assert "changed username" in html and "radiologist -&gt; dr_house" in html
