"""Real browser: Debian's Chromium through Playwright against the live server, the whole first-day flow."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "web_ircadb01_image_84.dcm"
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", "test-artifacts")) / "browser"
NEW_PASSWORD = "Hepatic-Lesion-Review-9"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]


@pytest.fixture
def page(live_server, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; Django would refuse DB work here while it runs.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(60_000)
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.console_errors = errors
        yield page
        context.close()
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_first_login_upload_history_reopen_logout(transactional_db, live_server, page):
    call_command("ensure_admin")
    base = live_server.url

    page.goto(base + "/")
    assert "Research use only" in page.content()
    shot(page, "01-home")

    page.click("text=Log in to start")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    shot(page, "02-login")
    page.click("#login-submit")

    # Default password: sent to the profile page until it is changed.
    page.wait_for_url(base + "/profile/")
    assert "You are using the default password" in page.content()
    shot(page, "03-forced-password-change")
    page.goto(base + "/detect/")
    page.wait_for_url(base + "/profile/")
    page.fill("#id_current_password", "admin")
    page.fill("#id_new_password1", NEW_PASSWORD)
    page.fill("#id_new_password2", NEW_PASSWORD)
    page.click("#save-profile")
    page.wait_for_url(base + "/detect/")

    page.set_input_files("#id_file", str(FIXTURE))
    shot(page, "04-upload")
    page.click("#analyse")
    page.wait_for_url("**/analyses/*/")
    result_url = page.url
    verdict = page.inner_text("#verdict")
    assert verdict in ("Tumor Detected", "No Tumor Detected")
    assert "size-based estimate, not a clinical stage" in page.inner_text("#stage")
    if verdict == "Tumor Detected":
        assert page.locator("#lesion-table tbody tr").count() >= 1
        assert "from DICOM" in page.inner_text("#lesion-table")
    else:
        assert page.locator("#no-lesions").count() == 1
    assert page.locator(".images img").count() >= 4
    assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    shot(page, "05-result")

    page.click("#report-link")
    page.wait_for_url("**/report/")
    page.emulate_media(media="print")
    shot(page, "06-report-print")
    page.emulate_media(media="screen")
    page.click("text=Back to the result")
    page.wait_for_url(result_url)

    page.click("header nav >> text=History")
    page.wait_for_url(base + "/analyses/")
    rows = page.locator("#history-table tbody tr")
    assert rows.count() == 1
    assert "web_ircadb01_image_84.dcm" in rows.first.inner_text()
    shot(page, "07-history")

    rows.first.locator("text=Open").click()
    page.wait_for_url(result_url)
    assert page.inner_text("#verdict") == verdict
    shot(page, "08-reopened")

    page.click("#logout")
    page.wait_for_url(base + "/")
    assert page.locator("text=Log in to start").count() == 1
    page.goto(base + "/analyses/")
    assert "/login/" in page.url
    shot(page, "09-logged-out")

    assert not [e for e in page.console_errors if "Content Security Policy" in e], page.console_errors
