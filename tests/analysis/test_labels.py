"""TumorApp/analysis/labels.py: one registry of labels, colours and windows for Python and the editor,
and the one label-map encoding."""
import io
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from TumorApp.analysis import labels
from TumorApp.analysis.errors import InputError
from TumorApp.analysis.series import slice_view
from TumorApp.analysis.slice import render

sys.path.insert(0, str(Path(__file__).parents[1] / "fixtures" / "bad"))
from make_corpus import bomb_png  # noqa: E402  (the slice corpus's bomb, streamed: never in memory)


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
    assert data["value_of"] == {"background": 0, "liver": 1, "tumour": 2}


def test_a_label_map_png_round_trips_exactly_and_is_single_channel():
    values = np.zeros((40, 30), np.uint8)
    values[5:35, 5:25] = labels.LIVER.value
    values[10:20, 10:15] = labels.TUMOR.value
    data = labels.encode_png(values)
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == "L" and img.size == (30, 40)
    assert np.array_equal(labels.decode_png(data, (40, 30)), values)
    # What a browser canvas writes (RGBA, opaque grey) reads the same.
    rgba = np.dstack([values] * 3 + [np.full_like(values, 255)])
    assert np.array_equal(labels.decode_png(cv2.imencode(".png", rgba)[1].tobytes(), (40, 30)), values)


def test_a_label_map_is_refused_for_foreign_values_size_colour_and_bombs():
    values = np.zeros((40, 30), np.uint8)
    values[0, 0] = 3
    with pytest.raises(InputError, match=r"holds the value\(s\) 3; a label map holds only 0 \(background\), "
                                         r"1 \(liver\) and 2 \(tumour\)"):
        labels.decode_png(cv2.imencode(".png", values)[1].tobytes(), (40, 30))
    with pytest.raises(InputError, match="must be the image's own size, 31x40"):
        labels.decode_png(labels.encode_png(np.zeros((40, 30), np.uint8)), (40, 31))
    half_transparent = np.dstack([np.zeros((40, 30), np.uint8)] * 3 + [np.full((40, 30), 128, np.uint8)])
    with pytest.raises(InputError, match="grey and opaque"):
        labels.decode_png(cv2.imencode(".png", half_transparent)[1].tobytes(), (40, 30))
    with pytest.raises(InputError, match="8-bit"):
        labels.decode_png(cv2.imencode(".png", np.zeros((40, 30), np.uint16))[1].tobytes(), (40, 30))
    # A 16384² header (a decompression bomb, ~260 KB): refused before decoding.
    with pytest.raises(InputError, match="declares far more pixels"):
        labels.decode_png(bomb_png(16384), (512, 512))
    with pytest.raises(ValueError):
        labels.encode_png(np.full((4, 4), 7, np.uint8))
