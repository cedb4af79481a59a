"""Real browser, whole series: upload 12 real CT slices, watch the progress bar move (it survives a
reload), then the 3-D lesion table, the slice viewer, a lesion jump, and the DICOM-SEG download."""
from __future__ import annotations

import threading
import time

import pytest

from TumorApp.series import services as series_services
from TumorApp.analysis.model.runtime import get_segmenter
from tests.analysis.series_fixtures import SLICE_66, SLICE_84, dicom_series

from .test_browser_flow import ARTIFACTS, CHROMIUM, page, shot  # noqa: F401  (the page fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "Hepatic-Series-Review-7"


def wait_until(page, expression: str, timeout: float = 60) -> None:
    """Poll a JS expression from Python (wait_for_function evaluates strings in the page, which the CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)


class PacedNetwork:
    """The real network, paced so that a 12-slice series takes long enough to watch its progress."""

    def __init__(self):
        self.network = get_segmenter()

    def predict(self, batch):
        time.sleep(0.4)
        return self.network.predict(batch)


@pytest.fixture
def worker():
    """The background worker, as `manage.py series_worker` runs it, in a thread of the test process."""
    stop = threading.Event()
    runner = {"thread": None}

    def start():
        runner["thread"] = threading.Thread(target=series_services.work, daemon=True, kwargs=dict(
            poll_seconds=0.2, segmenter=PacedNetwork(), stop=stop, batch_size=2))
        runner["thread"].start()

    yield start
    stop.set()
    if runner["thread"] is not None:
        runner["thread"].join(timeout=60)


def test_series_upload_progress_result_and_viewer(transactional_db, live_server, page, worker, tmp_path,
                                                 django_user_model):
    django_user_model.objects.create_user(username="reader", password=PASSWORD)
    base = live_server.url
    files = []
    for name, data in dicom_series(12, sources=(SLICE_66,) * 6 + (SLICE_84,) * 6):
        path = tmp_path / name
        path.write_bytes(data)
        files.append(str(path))

    page.goto(base + "/login/")
    page.fill("#id_username", "reader")
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    page.click("header nav >> text=Series")
    page.wait_for_url(base + "/series/new/")
    page.set_input_files("#id_file", files)
    shot(page, "series-01-upload")
    page.click("#series-submit")
    page.wait_for_url("**/series/*/")
    job_url = page.url

    # Queued: the bar is at 0 of 12 until the worker starts; a reload keeps the page (state is on the server).
    assert page.inner_text("#progress-text") == "0 / 12 slices"
    page.reload()
    assert page.get_attribute("#series-progress", "max") == "12"
    worker()
    wait_until(page, "!document.getElementById('series-progress') || "
                     "document.getElementById('series-progress').value > 0", timeout=120)
    moved = page.evaluate("document.getElementById('series-progress') ? "
                          "document.getElementById('series-progress').value : -1")
    assert moved != 0  # the bar moved (or the job finished and the page already shows the result)
    if moved > 0:  # still running: the delete button (offered while queued) is gone
        assert not page.is_visible("#series-delete")
    shot(page, "series-02-progress")
    page.reload()  # mid-run reload: the bar comes back with the server's progress
    if page.locator("#series-progress").count():
        assert int(page.get_attribute("#series-progress", "value")) > 0 or page.locator("#lesion-table").count()

    page.wait_for_selector("#lesion-table", timeout=180_000)
    assert page.url == job_url
    rows = page.locator("#lesion-table tbody tr")
    assert rows.count() >= 1
    assert "Stage" in page.inner_text("#series-stage")
    assert float(page.inner_text("#liver-volume").split()[0]) > 0
    wait_until(page, "document.getElementById('slice-image').complete && "
                     "document.getElementById('slice-image').naturalWidth === 512")
    shot(page, "series-03-result")

    # The slider moves through the slices; a lesion's button jumps to its largest slice.
    page.fill("#slice-slider", "7")
    page.dispatch_event("#slice-slider", "input")
    assert page.inner_text("#slice-number") == "8"
    jump = page.locator(".lesion-jump").first
    target = int(jump.get_attribute("data-slice"))
    jump.click()
    assert page.input_value("#slice-slider") == str(target)
    assert page.get_attribute("#slice-image", "src").endswith(f"/slices/{target}.png?window=abdomen&overlay=1")
    page.select_option("#window-select", "liver")
    wait_until(page, "document.getElementById('slice-image').src.includes('window=liver') && "
                     "document.getElementById('slice-image').complete && "
                     "document.getElementById('slice-image').naturalWidth === 512")
    shot(page, "series-04-viewer-lesion")

    with page.expect_download() as download:
        page.click("#series-download")
    assert download.value.suggested_filename.endswith("segmentation.dcm")
    assert not page.console_errors
