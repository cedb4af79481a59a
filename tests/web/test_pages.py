"""Pages render, need login where they should, carry the disclaimer and security headers; old paths redirect."""
import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

DISCLAIMER = "Research use only — not a medical device, not for diagnosis"


def test_home_is_public_and_explains_the_pipeline(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert DISCLAIMER in html
    assert "How the segmentation works" in html
    assert "img/pipeline.png" in html


def test_login_page_renders_with_csrf_token(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert "csrfmiddlewaretoken" in response.content.decode()


@pytest.mark.parametrize("path", ["/detect/", "/analyses/", "/analyses/1/", "/analyses/1/report/",
                                  "/analyses/1/delete/", "/analyses/1/images/original.png", "/profile/"])
def test_pages_other_than_home_and_login_require_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("old, new", [("/index.html", "/"), ("/AdminLogin.html", "/login/"),
                                      ("/Detection.html", "/detect/"), ("/UpdateProfile.html", "/profile/")])
def test_original_page_names_redirect_to_clean_urls(client, old, new):
    response = client.get(old)
    assert response.status_code == 301
    assert response["Location"] == new


def test_logged_in_pages_render(auth_client):
    for name in ("detect", "history", "profile"):
        response = auth_client.get(reverse(name))
        assert response.status_code == 200, name
        assert DISCLAIMER in response.content.decode()


def test_security_headers_are_set(client):
    response = client.get("/")
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_pages_use_no_inline_script(auth_client):
    for path in ("/", "/detect/", "/analyses/", "/profile/"):
        html = auth_client.get(path).content.decode()
        assert "<script>" not in html and "onclick=" not in html and "style=" not in html, path


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Not found" in response.content.decode()


def test_static_css_is_served(client):
    response = client.get("/static/css/app.css")
    assert response.status_code == 200


def test_server_error_page_renders_without_request_context(client, settings):
    from django.test import RequestFactory

    from TumorApp.error_views import server_error

    response = server_error(RequestFactory().get("/detect/"))
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()
    api = server_error(RequestFactory().get("/api/analyses/"))
    assert api.status_code == 500 and api["Content-Type"] == "application/json"


def test_database_failure_is_a_503_page():
    from django.db import OperationalError
    from django.test import RequestFactory

    from TumorApp.error_views import server_error

    try:
        raise OperationalError("(2003, \"Can't connect to MySQL server\")")
    except OperationalError:
        page = server_error(RequestFactory().get("/analyses/"))
        api = server_error(RequestFactory().get("/api/analyses/"))
    assert page.status_code == 503 and "Database unavailable" in page.content.decode()
    assert page["Retry-After"] == "30"
    assert api.status_code == 503 and b"503" in api.content
