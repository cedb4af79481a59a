"""Real browser: correct the outline on a real CT slice, save, see every figure follow; erase, save, back."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from TumorApp.analyses import selectors
from TumorApp.analysis.labels import LIVER
from TumorApp.models import Analysis

from .test_browser_flow import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, FIXTURE, pytestmark  # noqa: F401

PASSWORD = "Portal-Venous-Phase-7"


@pytest.fixture
def browser(live_server, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def new_page(browser, width: int, height: int, **options):
    context = browser.new_context(viewport={"width": width, "height": height}, **options)
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    return page


def log_in(page, base: str) -> None:
    page.goto(base + "/login/")
    page.fill("#id_username", "reader")
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(base + "/detect/")


def analyse_fixture(page) -> str:
    """Upload the DICOM fixture from the logged-in page; the result page's URL once its editor is ready."""
    page.set_input_files("#id_file", str(FIXTURE))
    page.click("#analyse")
    page.wait_for_url("**/analyses/*/")
    page.wait_for_selector("#editor[data-ready=true]")
    return page.url


def paint_target(analysis) -> tuple[int, int]:
    """A liver point with room for a 45-px disc of tumour, away from the network's own lesions."""
    values = cv2.imdecode(np.frombuffer(selectors.editor_labels_png(analysis, "model"), np.uint8), cv2.IMREAD_UNCHANGED)
    liver_only = (values == LIVER.value).astype(np.uint8)
    room = cv2.distanceTransform(liver_only, cv2.DIST_L2, 5)
    y, x = np.unravel_index(np.argmax(room), room.shape)
    assert room[y, x] > 46, "the fixture's liver must have room for the painted lesion"
    return int(x), int(y)


def to_screen(page, x: float, y: float) -> tuple[float, float]:
    """Image pixel -> page coordinates for the editor canvas at its initial 'fit' view."""
    box = page.locator("#editor-canvas").bounding_box()
    zoom = min(box["width"] / 512, box["height"] / 512)
    return (box["x"] + (box["width"] - 512 * zoom) / 2 + (x + 0.5) * zoom,
            box["y"] + (box["height"] - 512 * zoom) / 2 + (y + 0.5) * zoom)


def stroke_circle(page, centre, radius_px: float) -> None:
    """Drag the pointer around a circle (and through its centre) in image pixels."""
    cx, cy = centre
    points = [(cx, cy)] + [(cx + radius_px * np.cos(a), cy + radius_px * np.sin(a))
                           for a in np.linspace(0, 2 * np.pi, 25)] + [(cx, cy)]
    page.mouse.move(*to_screen(page, *points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*to_screen(page, *p), steps=3)
    page.mouse.up()


def figures(page) -> tuple[str, str, int]:
    rows = page.locator("#lesion-table tbody tr").count() if page.locator("#lesion-table").count() else 0
    return page.inner_text("#stage"), page.inner_text("#affected"), rows


def save_and_reload(page) -> None:
    with page.expect_navigation():
        page.click("#save-labels")
    page.wait_for_selector("#editor[data-ready=true]")


def test_paint_a_tumour_save_then_erase_it_and_save(transactional_db, live_server, browser, django_user_model):
    django_user_model.objects.create_user(username="reader", password=PASSWORD)
    base = live_server.url
    page = new_page(browser, 1366, 768)
    log_in(page, base)
    result_url = analyse_fixture(page)
    before = figures(page)
    analysis = Analysis.objects.get()
    centre = paint_target(analysis)

    # The editor loads the network's outline; the HU window presets are available for a DICOM.
    assert page.locator("#window-preset option[value=liver]").is_enabled()
    page.select_option("#window-preset", "liver")
    page.evaluate("document.getElementById('editor-body').scrollIntoView()")
    page.screenshot(path=str(ARTIFACTS / "editor-1366x768-loaded.png"))

    # Paint a tumour (about 45 mm across) with the tumour brush at its largest size.
    page.keyboard.press("t")
    page.keyboard.press("b")
    page.fill("#brush-size", "60")
    page.dispatch_event("#brush-size", "input")
    page.evaluate("document.getElementById('editor-body').scrollIntoView()")
    stroke_circle(page, centre, 10)
    assert page.locator("#save-labels").is_enabled()
    assert "Unsaved changes" in page.inner_text("#editor-status")
    page.screenshot(path=str(ARTIFACTS / "editor-1366x768-painted.png"))
    # Undo and redo give the stroke back.
    page.keyboard.press("Control+z")
    assert page.locator("#save-labels").is_disabled()
    page.keyboard.press("Control+y")
    assert page.locator("#save-labels").is_enabled()

    save_and_reload(page)
    assert page.url == result_url
    painted = figures(page)
    assert painted[0].startswith("Stage II"), painted
    assert painted[2] == before[2] + 1
    assert float(painted[1].split()[0]) > float(before[1].split()[0]) + 5
    assert "Corrected by reader on" in page.inner_text("#corrected-by")
    # The compare switch shows the network's figures.
    assert page.locator("#compare-corrected").is_visible() and not page.locator("#compare-model").is_visible()
    page.check("#show-model")
    assert page.locator("#compare-model").is_visible() and not page.locator("#compare-corrected").is_visible()
    assert page.inner_text("#compare-model .compare-stage") == before[0].split("\n")[0].split(" size")[0].strip()
    page.screenshot(path=str(ARTIFACTS / "editor-1366x768-saved.png"), full_page=True)

    # Erase it with the tumour eraser (tumour back to liver), save: the figures go back.
    page.keyboard.press("e")
    page.fill("#brush-size", "60")
    page.dispatch_event("#brush-size", "input")
    page.evaluate("document.getElementById('editor-body').scrollIntoView()")
    stroke_circle(page, centre, 16)
    save_and_reload(page)
    assert figures(page) == before
    assert page.inner_text("#corrected-by").startswith("Corrected by reader")
    assert analysis.mask_versions.count() == 3
    assert not [e for e in page.console_errors if "Content Security Policy" in e or "rror" in e], page.console_errors


def test_editor_on_a_tablet_with_touch(transactional_db, live_server, browser, django_user_model):
    from TumorApp.analyses.services import create_analysis
    from django.core.files.uploadedfile import SimpleUploadedFile

    user = django_user_model.objects.create_user(username="reader", password=PASSWORD)
    analysis = create_analysis(user=user, upload=SimpleUploadedFile(FIXTURE.name, FIXTURE.read_bytes()))
    page = new_page(browser, 768, 1024, has_touch=True, is_mobile=True)
    log_in(page, live_server.url)
    page.goto(f"{live_server.url}/analyses/")
    page.click("text=Correct")
    page.wait_for_selector("#editor[data-ready=true]")
    canvas = page.locator("#editor-canvas").bounding_box()
    assert canvas["width"] <= 768 and canvas["height"] >= 320
    toolbar = page.locator(".editor-toolbar").bounding_box()
    assert toolbar["x"] + toolbar["width"] <= 768  # nothing runs off the tablet's screen
    page.evaluate("document.getElementById('editor-stage').scrollIntoView({block: 'end'})")
    # A one-finger touch paints (pointer events): tap with the tumour brush.
    x, y = to_screen(page, *paint_target(analysis))
    page.touchscreen.tap(x, y)
    page.wait_for_function("!document.getElementById('save-labels').disabled")
    page.screenshot(path=str(ARTIFACTS / "editor-768x1024-tablet.png"))
