"""Issue 9, point 4 through the web form, the JSON API and `manage.py analyze`: what is not a CT
slice gets a 400 (an error object in the CLI), odd slices a visible warning, no liver an
"Inconclusive" verdict, and every finding a confidence with low ones marked."""
from __future__ import annotations

import io
import json

import numpy as np
import pydicom
import pytest
import skimage.data
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image

from TumorApp.analysis.slice import pipeline
from TumorApp.analysis.config import CONTRACT
from TumorApp.analysis.slice.plausibility import UPSIDE_DOWN_WARNING

from .helpers import DICOM, FIXTURES, PNG_TUMOR, stored_files, upload

pytestmark = pytest.mark.django_db

API = "/api/analyses/"
INCONCLUSIVE = "Inconclusive: no liver found on this slice"


def encode(array: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format=fmt, **kw)
    return out.getvalue()


NOT_CT = {
    "noise.png": (encode(np.random.default_rng(7).integers(0, 256, (512, 512), dtype=np.uint8)), "random noise"),
    "noise.jpg": (encode(np.random.default_rng(8).integers(0, 256, (512, 512), dtype=np.uint8), "JPEG"),
                  "random noise"),
    "blank.png": (encode(np.zeros((512, 512), np.uint8)), "blank"),
    "photo.jpg": (encode(skimage.data.astronaut(), "JPEG", quality=90), "colour photo"),
}


def upside_down_dicom() -> bytes:
    ds = pydicom.dcmread(FIXTURES / DICOM)
    ds.PixelData = np.ascontiguousarray(ds.pixel_array[::-1]).tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


class SeesNoLiver:
    """A network that finds nothing: what the real one answers on a slice without liver."""

    def predict(self, batch):
        return np.zeros((len(batch), CONTRACT.input_size, CONTRACT.input_size, 2), np.float32)


class DoubtfulTumour:
    """Liver over the middle of the input, a tumour at probability 0.6 in its centre."""

    def predict(self, batch):
        out = np.zeros((len(batch), CONTRACT.input_size, CONTRACT.input_size, 2), np.float32)
        out[:, 24:104, 24:104, 0] = 1.0
        out[:, 54:74, 54:74, 1] = 0.6
        return out


@pytest.mark.parametrize("name", NOT_CT)
def test_not_ct_via_the_form_is_a_400_with_the_reason_and_stores_nothing(auth_client, name, media_root):
    data, reason = NOT_CT[name]
    response = auth_client.post(reverse("detect"), {"file": upload(name=name, data=data)})
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert stored_files(media_root) == []


@pytest.mark.parametrize("name", NOT_CT)
def test_not_ct_via_the_api_is_a_400_json_error(auth_client, name, media_root):
    data, reason = NOT_CT[name]
    response = auth_client.post(API, {"file": upload(name=name, data=data)})
    assert response.status_code == 400
    body = response.json()
    assert reason in body["error"] and body["status"] == 400 and reason in body["fields"]["file"][0]
    assert stored_files(media_root) == []


def test_not_ct_via_the_cli_is_an_error_object_and_exit_status_1(tmp_path):
    paths = []
    for name, (data, _) in NOT_CT.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    out = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("analyze", *paths, "--json", stdout=out, stderr=io.StringIO())
    assert raised.value.returncode == 1
    records = json.loads(out.getvalue())
    for record, (name, (_, reason)) in zip(records, NOT_CT.items()):
        assert set(record) == {"file", "error"} and reason in record["error"], name


@pytest.mark.parametrize("fixture", [DICOM, PNG_TUMOR])
def test_real_slices_are_analysed_with_confidences(auth_client, fixture):
    response = auth_client.post(API, {"file": upload(fixture)})
    assert response.status_code == 201
    body = response.json()
    assert body["warnings"] == [] and body["inconclusive"] is False
    assert 0.0 <= body["confidence"] <= 1.0
    assert body["low_confidence"] == (body["confidence"] < CONTRACT.low_confidence)
    for tumour in body["tumors"]:
        assert 0.0 <= tumour["confidence"] <= 1.0
    html = auth_client.get(reverse("analysis", args=[body["id"]])).content.decode()
    assert 'id="confidence"' in html and f"{body['confidence']:.2f}" in html


def test_upside_down_slice_is_analysed_with_a_visible_warning(auth_client):
    response = auth_client.post(API, {"file": upload(name="flipped.dcm", data=upside_down_dicom())})
    assert response.status_code == 201
    body = response.json()
    assert body["warnings"] == [UPSIDE_DOWN_WARNING]
    for page in ("analysis", "analysis-report"):
        html = auth_client.get(reverse(page, args=[body["id"]])).content.decode()
        assert 'id="input-warnings"' in html and "looks upside down" in html
    history = auth_client.get(reverse("history")).content.decode()
    assert ">warning</span>" in history and "looks upside down" in history


def test_no_liver_is_inconclusive_on_every_view(auth_client, monkeypatch):
    monkeypatch.setattr(pipeline, "_default_segmenter", SeesNoLiver)
    response = auth_client.post(reverse("detect"), {"file": upload(DICOM)})
    assert response.status_code == 302
    pk = int(response["Location"].rstrip("/").split("/")[-1])
    for page in ("analysis", "analysis-report", "history"):
        args = [pk] if page != "history" else []
        html = auth_client.get(reverse(page, args=args)).content.decode()
        assert INCONCLUSIVE[:12] in html and "No Tumor Detected" not in html, page
    body = auth_client.get(f"{API}{pk}/").json()
    assert body["inconclusive"] is True and body["tumor_detected"] is False and body["confidence"] == 0.0
    assert auth_client.get(API).json()["results"][0]["inconclusive"] is True


def test_a_doubtful_finding_is_marked_low_confidence_on_the_page(auth_client, monkeypatch):
    monkeypatch.setattr(pipeline, "_default_segmenter", DoubtfulTumour)
    response = auth_client.post(API, {"file": upload(DICOM)})
    body = response.json()
    assert body["tumor_detected"] and body["low_confidence"] is True
    assert all(t["low_confidence"] for t in body["tumors"])
    html = auth_client.get(reverse("analysis", args=[body["id"]])).content.decode()
    assert html.count("low confidence</span>") == 1 + len(body["tumors"])  # verdict + each lesion row
