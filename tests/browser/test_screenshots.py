"""The docs' screenshots, made by a real browser on real analyses of the committed fixtures: a slice
result with its outline editor, and a series with its 3-D lesion table and viewer.  The pages are
checked every run; `UPDATE_SCREENSHOTS=1 ./test.sh -k screenshots` also writes docs/img/*.png (each
under 200 KB)."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from TumorApp.series import services as series_services
from tests.analysis.series_fixtures import SLICE_66, SLICE_84, dicom_series

from .test_browser_flow import ARTIFACTS, pytestmark  # noqa: F401
from .test_editor import analyse_fixture, browser, log_in, new_page  # noqa: F401  (the browser fixture)

pytestmark = pytestmark + [pytest.mark.slow]  # noqa: F811
PASSWORD = "Portal-Venous-Phase-7"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
MAX_BYTES = 200 * 1024


def save(page, name: str, top: str) -> Path:
    """The window scrolled to `top` (a selector), as a palette PNG 900 px wide (small enough for the
    docs); into docs/img when UPDATE_SCREENSHOTS=1, else into the test artifacts."""
    page.locator(top).scroll_into_view_if_needed()
    page.evaluate("([sel]) => window.scrollTo(0, document.querySelector(sel).getBoundingClientRect().top"
                  " + window.scrollY - 8)", [top])
    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    image = image.resize((900, round(image.height * 900 / image.width)), Image.LANCZOS)
    folder = DOCS_IMG if os.environ.get("UPDATE_SCREENSHOTS") == "1" else ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    assert path.stat().st_size < MAX_BYTES, f"{path} is {path.stat().st_size:,} bytes"
    return path


def test_screenshots_of_a_result_with_its_editor_and_of_a_series(transactional_db, live_server, browser,
                                                               django_user_model):
    user = django_user_model.objects.create_user(username="reader", password=PASSWORD)
    base = live_server.url
    page = new_page(browser, 1280, 900)
    log_in(page, base)
    analyse_fixture(page)
    assert "not a medical device" in page.content().lower() or "research use only" in page.content().lower()
    assert "{#" not in page.content() and "#}" not in page.content()  # no template comment shows
    save(page, "result", "main")

    job = series_services.submit_series(user=user, uploads=_uploads(12))
    assert series_services.work(once=True) == 1
    page.goto(f"{base}/series/{job.pk}/")
    page.wait_for_selector("#lesion-table")
    page.wait_for_selector("#slice-image")
    assert page.inner_text("#series-stage")
    save(page, "series", "#lesion-table")
    assert not page.console_errors


def _uploads(n: int):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return [SimpleUploadedFile(name, data) for name, data in dicom_series(n, sources=(SLICE_66,) * (n // 2)
                                                                           + (SLICE_84,) * (n - n // 2))]
