"""Rough edges from issue 12: the disclaimer once in the banner and once in the footer (plus results and
reports), and the form's promise about how long an analysis takes."""
import pytest
from django.urls import reverse

from .helpers import make_analysis

pytestmark = pytest.mark.django_db
DISCLAIMER = "Research use only — not a medical device, not for diagnosis"


@pytest.mark.parametrize("name", ["home", "login"])
def test_anonymous_pages_show_the_disclaimer_twice(client, name):
    assert client.get(reverse(name)).content.decode().count(DISCLAIMER) == 2


def test_pages_when_logged_in(auth_client, user):
    for name in ("home", "detect", "history", "profile"):
        assert auth_client.get(reverse(name)).content.decode().count(DISCLAIMER) == 2, name
    analysis = make_analysis(user)
    assert auth_client.get(reverse("analysis", args=[analysis.pk])).content.decode().count(DISCLAIMER) == 3
    assert auth_client.get(reverse("analysis-report", args=[analysis.pk])).content.decode().count(DISCLAIMER) == 1


def test_upload_form_no_longer_promises_a_few_seconds(auth_client):
    html = auth_client.get(reverse("detect")).content.decode()
    assert "a few seconds" not in html and "about a second" in html
