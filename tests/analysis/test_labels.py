"""TumorApp/analysis/labels.py: one registry of labels, colours and windows for Python and the editor."""
import json

import cv2
import numpy as np

from TumorApp.analysis import labels
from TumorApp.analysis.slice import render
from TumorApp.analysis.series import slice_view


def test_pictures_and_the_slice_viewer_draw_the_registry_colours():
    assert render.LIVER_BGR == labels.LIVER.bgr and render.TUMOR_BGR == labels.TUMOR.bgr
    hu = np.full((64, 64), 60.0, np.float32)
    lab = np.zeros((64, 64), np.uint8)
    lab[10:50, 10:50] = 1
    lab[20:40, 20:40] = 2
    image = cv2.imdecode(np.frombuffer(slice_view.render_slice(hu, lab), np.uint8), cv2.IMREAD_COLOR)
    # the liver outline is drawn in the liver colour, the tumour's in the tumour colour
    assert tuple(int(v) for v in image[10, 30]) == labels.LIVER.bgr
    assert tuple(int(v) for v in image[20, 30]) == labels.TUMOR.bgr


def test_viewer_windows_are_the_registry_windows():
    assert slice_view.WINDOWS == {n: (w.level, w.width) for n, w in labels.WINDOWS.items()}
    assert labels.WINDOWS["liver"].level == 80 and labels.WINDOWS["liver"].width == 150


def test_the_browser_gets_every_label_and_window_as_json():
    data = json.loads(json.dumps(labels.as_json()))
    assert data["labels"]["1"] == {"name": "liver", "rgb": list(labels.LIVER.rgb)}
    assert data["labels"]["2"]["rgb"] == list(labels.TUMOR.rgb)
    assert data["windows"]["abdomen"] == {"level": 40.0, "width": 400.0}
