"""Real browser, series editor (issue 20): paint a tumour on one slice of a real series, save, see the
tumour volume and lesion count change; remove that lesion from the table, see them change back."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from TumorApp.series import services as series_services
from TumorApp.models import SeriesJob
from tests.analysis.series_fixtures import dicom_series
from tests.web.series.test_series import files

from .test_browser_flow import page, shot  # noqa: F401  (the page fixture)
from .test_browser_flow import pytestmark as browser_marks

pytestmark = [*browser_marks, pytest.mark.slow]
PASSWORD = "Segment-Editor-Review-3"


def paint_target(job: SeriesJob) -> tuple[int, int, int]:
    """(slice, x, y): a liver point more than 45 px from any tumour on its slice and the two next to
    it, so the painted disc (radius 40 px) is a 3-D lesion of its own."""
    _, labels = series_services.volume_arrays(job)
    labels = np.asarray(labels)
    best = (0.0, 0, 0, 0)
    for k in range(labels.shape[0]):
        near = (labels[max(0, k - 1):k + 2] == 2).any(axis=0)
        room = cv2.distanceTransform((~near).astype(np.uint8), cv2.DIST_L2, 5)
        room[labels[k] != 1] = 0  # paint in the liver
        y, x = np.unravel_index(np.argmax(room), room.shape)
        best = max(best, (float(room[y, x]), k, int(x), int(y)))
    assert best[0] > 45, "the series' liver must have room for the painted lesion"
    return best[1], best[2], best[3]


def to_screen(page, x: float, y: float) -> tuple[float, float]:
    """Image pixel -> page coordinates on the editor canvas at its initial 'fit' view."""
    box = page.locator("#editor-canvas").bounding_box()
    zoom = min(box["width"] / 512, box["height"] / 512)
    return (box["x"] + (box["width"] - 512 * zoom) / 2 + (x + 0.5) * zoom,
            box["y"] + (box["height"] - 512 * zoom) / 2 + (y + 0.5) * zoom)


def figures(page) -> tuple[str, int]:
    rows = page.locator("#lesion-table tbody tr").count() if page.locator("#lesion-table").count() else 0
    return page.inner_text("#tumor-volume"), rows


def test_paint_a_lesion_on_one_slice_then_remove_it_across_the_series(transactional_db, live_server, page,
                                                                      django_user_model):
    user = django_user_model.objects.create_user(username="reader", password=PASSWORD)
    job = series_services.submit_series(user=user, uploads=files(dicom_series(6)))
    assert series_services.work(once=True) == 1
    job.refresh_from_db()
    index, x, y = paint_target(job)
    base = live_server.url
    page.goto(base + "/login/")
    page.fill("#id_username", "reader")
    page.fill("#id_password", PASSWORD)
    page.click("#login-submit")
    page.goto(f"{base}/series/{job.pk}/")
    before = figures(page)
    stage = page.inner_text("#series-stage")

    page.click("#edit-labels")
    page.wait_for_selector("#series-editor[data-slice='0']")
    page.fill("#slice-slider", str(index))
    page.dispatch_event("#slice-slider", "input")
    page.wait_for_selector(f"#series-editor[data-slice='{index}']")
    page.click("#label-tumor")
    page.click("#tool-brush")
    page.fill("#brush-size", "60")
    page.dispatch_event("#brush-size", "input")
    page.locator("#editor-canvas").scroll_into_view_if_needed()
    page.mouse.move(*to_screen(page, x, y))
    page.mouse.down()
    for angle in np.linspace(0, 2 * np.pi, 25):
        page.mouse.move(*to_screen(page, x + 10 * np.cos(angle), y + 10 * np.sin(angle)), steps=3)
    page.mouse.up()
    assert page.locator("#save-labels").is_enabled()
    assert "Unsaved changes on 1 slice" in page.inner_text("#editor-status")
    # Moving to another slice and back keeps the edit.
    page.fill("#slice-slider", str((index + 1) % 6))
    page.dispatch_event("#slice-slider", "input")
    page.fill("#slice-slider", str(index))
    page.dispatch_event("#slice-slider", "input")
    page.wait_for_selector(f"#series-editor[data-slice='{index}']")
    assert "Unsaved changes on 1 slice" in page.inner_text("#editor-status")
    shot(page, "series-editor-1-painted")

    with page.expect_navigation():
        page.click("#save-labels")
    painted = figures(page)
    assert painted[1] == before[1] + 1
    assert float(painted[0].split()[0]) > float(before[0].split()[0])
    assert "Corrected by reader on" in page.inner_text("#corrected-by")
    shot(page, "series-editor-2-saved")

    # The new lesion spans only the painted slice; Remove takes it off and the figures come back.
    row = page.locator("#lesion-table tbody tr", has_text=f"{index + 1}–{index + 1}").first
    with page.expect_navigation():
        row.locator(".lesion-remove").click()
    assert figures(page) == before
    assert page.inner_text("#series-stage") == stage
    assert [v["number"] for v in series_services.payload(SeriesJob.objects.get(pk=job.pk))["versions"]] == [0, 1, 2]
    assert not [e for e in page.console_errors if "Content Security Policy" in e or "rror" in e], page.console_errors
