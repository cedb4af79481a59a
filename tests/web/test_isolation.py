"""Two users: each sees, opens and deletes only their own analyses, in the pages and in the API."""
import pytest
from django.urls import reverse

from TumorApp.models import Analysis

from .helpers import PNG_PLAIN, make_analysis

pytestmark = pytest.mark.django_db


@pytest.fixture
def mine(user):
    return make_analysis(user, PNG_PLAIN)


@pytest.mark.parametrize("name, extra", [("analysis", []), ("analysis-report", []), ("analysis-delete", []),
                                         ("analysis-image", ["original"]), ("api-analysis", [])])
def test_other_user_gets_404_for_my_analysis(other_client, mine, name, extra):
    assert other_client.get(reverse(name, args=[mine.pk, *extra])).status_code == 404


def test_other_user_cannot_delete_my_analysis(other_client, mine):
    assert other_client.post(reverse("analysis-delete", args=[mine.pk])).status_code == 404
    assert Analysis.objects.filter(pk=mine.pk).exists()


def test_history_and_api_list_show_only_own_analyses(auth_client, other_client, mine, other_user):
    theirs = make_analysis(other_user, PNG_PLAIN)
    my_history = auth_client.get(reverse("history")).content.decode()
    assert reverse("analysis", args=[mine.pk]) in my_history
    assert reverse("analysis", args=[theirs.pk]) not in my_history
    their_ids = [item["id"] for item in other_client.get(reverse("api-analyses")).json()["results"]]
    assert their_ids == [theirs.pk]


def test_stored_files_are_not_reachable_by_url(auth_client, mine, settings):
    from pathlib import Path

    assert not str(Path(settings.MEDIA_ROOT).resolve()).startswith(str((Path(settings.BASE_DIR) / "static").resolve()))
    for prefix in ("/media/", "/static/", "/"):
        assert auth_client.get(prefix + mine.upload.name).status_code == 404


def test_admin_site_is_for_staff_only(auth_client):
    response = auth_client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
