"""Issue 13 hardening: overlong usernames, per-address throttling, password rule, Cache-Control on
patient data, owner-only database file and media folder."""
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from TumorApp.models import AccountFlags

from .helpers import PASSWORD, make_analysis

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]


def login(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


@pytest.mark.parametrize("length", [151, 256, 300, 5000])
def test_overlong_username_is_an_ordinary_failed_login(client, user, length):
    for _ in range(2):  # the second one updates the stored attempt
        response = login(client, "u" * length, "whatever-password")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    assert login(client, "radiologist", PASSWORD).status_code == 302


def test_one_address_trying_many_usernames_is_locked(client, user, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 8
    for i in range(7):  # one failure per username: none reaches its own limit of 5
        assert login(client, f"guess{i}", "Spring-2026!").status_code == 200
    assert login(client, "guess7", "Spring-2026!").status_code == 429  # the address's 8th failure
    response = login(client, "radiologist", PASSWORD)
    assert response.status_code == 429 and "locked" in response.content.decode()


def test_a_few_failures_on_other_usernames_do_not_lock_the_address(client, user, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 8
    for i in range(7):
        login(client, f"guess{i}", "Spring-2026!")
    assert login(client, "radiologist", PASSWORD).status_code == 302


def test_new_password_may_not_contain_the_username(client, django_user_model):
    admin = django_user_model.objects.create_superuser("admin", password="admin")
    AccountFlags.objects.create(user=admin, must_change_password=True)
    client.force_login(admin)
    response = client.post(reverse("profile"), {"current_password": "admin", "username": "admin",
                                                "new_password1": "admin12345", "new_password2": "admin12345"})
    assert response.status_code == 400
    assert "may not contain your username" in response.content.decode()
    assert AccountFlags.objects.get(user=admin).must_change_password
    # Nor the new username, when both change at once.
    response = client.post(reverse("profile"), {"current_password": "admin", "username": "hepatology",
                                                "new_password1": "Hepatology-77x", "new_password2": "Hepatology-77x"})
    assert response.status_code == 400 and "may not contain your username" in response.content.decode()


def test_patient_data_is_never_cached(auth_client, user):
    analysis = make_analysis(user)
    urls = [reverse("analysis", args=[analysis.pk]), reverse("analysis-report", args=[analysis.pk]),
            reverse("analysis-image", args=[analysis.pk, "annotated"]), reverse("history"),
            reverse("api-analysis", args=[analysis.pk]), reverse("api-analyses"),
            reverse("analysis-delete", args=[analysis.pk]), reverse("detect")]
    for url in urls:
        response = auth_client.get(url)
        assert response.status_code == 200, url
        cache = response["Cache-Control"]
        assert "no-store" in cache and "private" in cache, (url, cache)


def test_sqlite_file_and_media_folder_are_created_owner_only(tmp_path):
    var = tmp_path / "var"
    env = dict(os.environ, TUMOR_VAR_DIR=str(var), SECRET_KEY="x" * 50, DEBUG="0")
    env.pop("DATABASE_URL", None)
    env.pop("MEDIA_ROOT", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=REPO, env=env,
                   check=True, timeout=300)
    assert stat.S_IMODE((var / "db.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE((var / "media").stat().st_mode) == 0o700
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
