"""Accessibility: axe-core (vendored from npm) injected by Playwright into every page finds no serious or
critical violation, and the controls work from the keyboard alone."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from .test_browser_flow import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, FIXTURE

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
PASSWORD = "Hepatic-Lesion-Review-9"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]


@pytest.fixture
def browser_context(live_server, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        # The pages forbid inline script (CSP); axe is injected as one, so this context ignores the CSP.
        context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        context.set_default_timeout(60_000)
        yield context
        context.close()
        browser.close()


def axe_violations(page) -> list[dict]:
    """Serious and critical violations of axe-core's WCAG 2.x A/AA rules (and best practices) on this page."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
    }""")
    return [v for v in result if v["impact"] in ("serious", "critical")]


def log_in(page, base: str, username: str, password: str) -> None:
    page.goto(base + "/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-submit")
    page.wait_for_load_state()


def test_every_page_has_no_serious_or_critical_axe_violation(transactional_db, live_server, browser_context,
                                                             django_user_model):
    base = live_server.url
    page = browser_context.new_page()
    checked: dict[str, list] = {}

    def check(name: str) -> None:
        checked[name] = axe_violations(page)

    call_command("ensure_admin")
    page.goto(base + "/"); check("home (anonymous)")
    page.goto(base + "/login/"); check("login")
    page.fill("#id_username", "admin"); page.fill("#id_password", "wrong"); page.click("#login-submit")
    page.wait_for_load_state(); check("login with error")
    log_in(page, base, "admin", "admin"); check("profile (forced password change)")
    page.fill("#id_current_password", "admin")
    page.fill("#id_new_password1", PASSWORD); page.fill("#id_new_password2", PASSWORD)
    page.click("#save-profile"); page.wait_for_url(base + "/detect/"); check("detect (with message)")
    page.click("#analyse"); page.wait_for_load_state(); check("detect with errors")
    page.set_input_files("#id_file", str(FIXTURE)); page.fill("#id_pixel_spacing", "0.7")
    page.click("#analyse"); page.wait_for_url("**/analyses/*/"); check("result")
    result_url = page.url
    page.goto(result_url + "report/"); check("report")
    page.goto(base + "/analyses/"); check("history")
    page.goto(result_url + "delete/"); check("delete confirmation")
    page.goto(base + "/profile/"); page.fill("#id_name", "script"); page.click("#create-token")
    page.wait_for_load_state(); check("profile with a new token and the token list")
    page.goto(base + "/audit/"); check("audit trail (staff)")
    page.goto(base + "/analyses/999999/"); check("404 page")
    page.goto(base + "/"); check("home (logged in)")
    page.click("#logout"); page.wait_for_load_state()

    django_user_model.objects.create_user("locked", password=PASSWORD)
    for _ in range(6):
        page.goto(base + "/login/")
        page.fill("#id_username", "locked"); page.fill("#id_password", "wrong"); page.click("#login-submit")
        page.wait_for_load_state()
    assert "Too many failed log-ins" in page.content()
    check("lockout page")
    empty = browser_context.new_page()
    django_user_model.objects.create_user("newcomer", password=PASSWORD)
    log_in(empty, base, "newcomer", PASSWORD)
    empty.goto(base + "/analyses/")
    page = empty; check("history (empty)")

    (ARTIFACTS / "axe.json").write_text(json.dumps(checked, indent=1))
    failing = {name: v for name, v in checked.items() if v}
    assert not failing, json.dumps(failing, indent=1)
    assert len(checked) == 16


def open_file_chooser_with_space(page, selector: str):
    """Space on the focused file input opens the file chooser.  Headless Chromium on a loaded machine
    has dropped that event once in a full CI run (the same step passed alone and in this module,
    again and again), so a second press is allowed - with the focus checked again, so an input that
    is not keyboard-operable still fails."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in (1, 2):
        assert page.evaluate("s => document.activeElement === document.querySelector(s)", selector), selector
        try:
            with page.expect_file_chooser(timeout=20_000) as chooser:
                page.keyboard.press("Space")
            return chooser.value
        except PlaywrightTimeout:
            if attempt == 2:
                raise


def test_controls_work_from_the_keyboard(transactional_db, live_server, browser_context, django_user_model):
    """Log in, upload, open the report, create and revoke a token and log out with Tab, typing and Enter only."""
    base = live_server.url
    django_user_model.objects.create_user("keys", password=PASSWORD)
    page = browser_context.new_page()

    def tab_to(selector: str, limit: int = 40) -> None:
        target = page.locator(selector).element_handle()
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("t => document.activeElement === t", target):
                # Focus is visible (the :focus-visible outline), not only programmatic.
                assert page.evaluate("t => getComputedStyle(t).outlineStyle !== 'none'", target), selector
                return
        raise AssertionError(f"{selector} not reachable with Tab")

    page.goto(base + "/login/")
    tab_to("#id_username"); page.keyboard.type("keys")
    tab_to("#id_password"); page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter"); page.wait_for_url(base + "/detect/")

    tab_to("#id_file")
    chooser = open_file_chooser_with_space(page, "#id_file")
    chooser.set_files(str(FIXTURE))
    tab_to("#analyse"); page.keyboard.press("Enter"); page.wait_for_url("**/analyses/*/")

    tab_to("#report-link"); page.keyboard.press("Enter"); page.wait_for_url("**/report/")
    page.go_back(); page.wait_for_url(re.compile(r".*/analyses/\d+/$"))

    page.goto(base + "/profile/")
    tab_to("#id_name"); page.keyboard.type("keyboard token"); page.keyboard.press("Enter")
    page.wait_for_selector("#new-token-value")
    tab_to("#token-table button"); page.keyboard.press("Enter")
    page.wait_for_selector("text=Revoked the API token")
    tab_to("#logout"); page.keyboard.press("Enter"); page.wait_for_url(base + "/")
    assert page.locator("text=Log in to start").count() == 1


def test_series_pages_have_no_serious_or_critical_axe_violation(transactional_db, live_server, browser_context,
                                                                django_user_model, tmp_path):
    """The whole-series pages: upload form (empty, with an error), queued progress, result with viewer, report."""
    from TumorApp.series import services as series_services
    from tests.analysis.series_fixtures import dicom_series

    base = live_server.url
    django_user_model.objects.create_user("series-reader", password=PASSWORD)
    page = browser_context.new_page()
    checked: dict[str, list] = {}

    def check(name: str) -> None:
        checked[name] = axe_violations(page)

    log_in(page, base, "series-reader", PASSWORD)
    page.goto(base + "/series/new/"); check("series upload")
    (tmp_path / "notes.txt").write_text("not a CT slice " * 20)
    page.set_input_files("#id_file", str(tmp_path / "notes.txt"))
    page.click("#series-submit"); page.wait_for_load_state()
    assert "not a DICOM" in page.content()
    check("series upload with an error")
    files = []
    for name, data in dicom_series(3):
        (tmp_path / name).write_bytes(data)
        files.append(str(tmp_path / name))
    page.set_input_files("#id_file", files)
    page.click("#series-submit"); page.wait_for_url("**/series/*/"); check("series queued (progress bar)")
    job_url = page.url
    assert series_services.work(once=True) == 1  # the real network, in this process
    page.goto(job_url); page.wait_for_selector("#lesion-table")
    check("series result with viewer")
    page.goto(job_url + "report/"); check("series report")

    (ARTIFACTS / "axe-series.json").write_text(json.dumps(checked, indent=1))
    failing = {name: v for name, v in checked.items() if v}
    assert not failing, json.dumps(failing, indent=1)
    assert len(checked) == 5
