"""Login, logout, lockout, first-run admin with forced password change, and the profile page."""
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from TumorApp.models import AccountFlags

from ..helpers import PASSWORD

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "Portal-Venous-Phase-7"


def login(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_login_and_logout(client, user):
    response = login(client, "radiologist", PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("detect")
    assert client.get(reverse("detect")).status_code == 200
    # Logout is POST only (CSRF-protected); afterwards pages need login again.
    assert client.get(reverse("logout")).status_code == 405
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("detect")).status_code == 302


def test_wrong_password_shows_an_error(client, user):
    response = login(client, "radiologist", "wrong")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_five_failures_lock_the_username_from_this_address(client, user):
    for _ in range(5):
        login(client, "radiologist", "wrong")
    response = login(client, "radiologist", PASSWORD)
    assert response.status_code == 429
    assert "locked" in response.content.decode()
    assert client.get(reverse("detect")).status_code == 302


def test_lockout_is_per_username(client, user, other_user):
    for _ in range(5):
        login(client, "radiologist", "wrong")
    assert login(client, "other", PASSWORD).status_code == 302


def test_passwords_are_hashed(user):
    assert user.password.startswith(("pbkdf2_", "argon2", "bcrypt", "scrypt"))
    assert PASSWORD not in user.password


def test_ensure_admin_creates_admin_only_when_no_user_exists():
    User = get_user_model()
    call_command("ensure_admin")
    admin = User.objects.get(username="admin")
    assert admin.check_password("admin") and admin.is_superuser
    assert AccountFlags.objects.get(user=admin).must_change_password
    admin.set_password(NEW_PASSWORD)
    admin.save()
    call_command("ensure_admin")
    assert User.objects.count() == 1
    admin.refresh_from_db()
    assert admin.check_password(NEW_PASSWORD)


def test_ensure_admin_does_nothing_when_users_exist(user):
    call_command("ensure_admin")
    assert not get_user_model().objects.filter(username="admin").exists()


def test_default_admin_is_forced_to_change_password(client):
    call_command("ensure_admin")
    assert login(client, "admin", "admin").status_code == 302
    for path in ("/detect/", "/analyses/", "/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"] == reverse("profile"), path
    page = client.get(reverse("profile")).content.decode()
    # The notice appears once, even after several redirects to the profile page.
    assert page.count("You are using the default password") == 1
    assert client.get(reverse("api-analyses")).status_code == 403

    # The new password is mandatory and validated.
    response = client.post(reverse("profile"), {"current_password": "admin", "username": "admin"})
    assert response.status_code == 400
    response = client.post(reverse("profile"), {"current_password": "admin", "username": "admin",
                                                 "new_password1": "short", "new_password2": "short"})
    assert response.status_code == 400 and "too short" in response.content.decode()

    response = client.post(reverse("profile"), {"current_password": "admin", "username": "admin",
                                                "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("detect")
    assert client.get(reverse("detect")).status_code == 200  # still logged in, no more redirects
    assert not AccountFlags.objects.get(user__username="admin").must_change_password


def test_profile_changes_username_with_current_password(auth_client, user):
    response = auth_client.post(reverse("profile"), {"current_password": PASSWORD, "username": "dr_house"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.username == "dr_house" and user.check_password(PASSWORD)


def test_profile_changes_password_and_keeps_session(auth_client, user, client):
    response = auth_client.post(reverse("profile"), {
        "current_password": PASSWORD, "username": "radiologist",
        "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert auth_client.get(reverse("history")).status_code == 200
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


@pytest.mark.parametrize("data, message", [
    ({"current_password": "wrong", "username": "x_new"}, "current password is incorrect"),
    ({"current_password": PASSWORD, "username": "other"}, "already taken"),
    ({"current_password": PASSWORD, "username": "bad name!"}, "Enter a valid username"),
    ({"current_password": PASSWORD, "username": "radiologist", "new_password1": NEW_PASSWORD,
      "new_password2": NEW_PASSWORD + "x"}, "do not match"),
    ({"current_password": PASSWORD, "username": "radiologist", "new_password1": "1234567890123",
      "new_password2": "1234567890123"}, "entirely numeric"),
])
def test_profile_rejects_bad_changes(auth_client, user, other_user, data, message):
    response = auth_client.post(reverse("profile"), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    user.refresh_from_db()
    assert user.username == "radiologist" and user.check_password(PASSWORD)
