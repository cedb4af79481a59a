"""The result pages name the inference backend that ran: "Inference: onnx-int8 on CPU" in the footer."""
from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from TumorApp.series import services as series_services
from TumorApp.analysis.model import runtime
from tests.analysis.conftest import IntensitySegmenter
from tests.analysis.series_fixtures import dicom_series

from .helpers import make_analysis

FOOTER = re.compile(r'<footer class="footer">.*?</footer>', re.S)


def footer(response) -> str:
    assert response.status_code == 200
    return FOOTER.search(response.content.decode()).group(0)


@pytest.mark.django_db
def test_result_page_footer_names_the_backend_that_analysed_the_upload(auth_client, user, monkeypatch):
    monkeypatch.delenv("INFERENCE_BACKEND", raising=False)
    analysis = make_analysis(user)  # the real network, through get_segmenter()
    ran = runtime.get_segmenter()
    assert (ran.backend, ran.device) == (runtime.DEFAULT_BACKEND, "CPU")
    assert f"Inference: {ran.backend} on CPU" in footer(auth_client.get(f"/analyses/{analysis.pk}/"))


@pytest.mark.django_db
def test_each_result_keeps_the_backend_that_ran_it_and_new_uploads_follow_the_setting(
        auth_client, user, monkeypatch):
    monkeypatch.delenv("INFERENCE_BACKEND", raising=False)
    before = make_analysis(user)
    assert before.result["inference"] == f"{runtime.DEFAULT_BACKEND} on CPU"
    monkeypatch.setenv("INFERENCE_BACKEND", "openvino-int8")
    monkeypatch.setattr(runtime, "_SEGMENTERS", {})
    after = make_analysis(user)
    ran = runtime.get_segmenter()  # openvino-int8, or what it fell back to where OpenVINO is missing
    assert after.result["inference"] == f"{ran.backend} on CPU"
    assert f"Inference: {ran.backend} on CPU" in footer(auth_client.get(f"/analyses/{after.pk}/"))
    # The earlier result still names what ran it, not what runs now; so does its API record.
    assert f"Inference: {runtime.DEFAULT_BACKEND} on CPU" in footer(auth_client.get(f"/analyses/{before.pk}/"))
    assert auth_client.get(f"/api/analyses/{before.pk}/").json()["inference"] == f"{runtime.DEFAULT_BACKEND} on CPU"


@pytest.mark.django_db
def test_a_result_stored_before_the_backend_was_recorded_shows_the_servers(auth_client, user, monkeypatch):
    analysis = make_analysis(user)
    del analysis.result["inference"]
    analysis.save(update_fields=["result"])
    monkeypatch.setenv("INFERENCE_BACKEND", "openvino-int8")
    monkeypatch.setattr(runtime, "_SEGMENTERS", {})
    # Not built yet in this process: the footer says what will run.
    assert "Inference: openvino-int8 on CPU" in footer(auth_client.get(f"/analyses/{analysis.pk}/"))

    class FellBack:  # a Segmenter asked for openvino-int8 that had to fall back
        backend, device = "onnx-int8", "CPU"

    runtime._SEGMENTERS[(str(runtime.DEFAULT_WEIGHTS), "openvino-int8")] = FellBack()
    assert "Inference: onnx-int8 on CPU" in footer(auth_client.get(f"/analyses/{analysis.pk}/"))


class NamedSegmenter(IntensitySegmenter):
    backend, device = "onnx-cuda", "GPU"


@pytest.mark.django_db(transaction=True)  # the worker's heartbeat thread has its own connection
def test_series_result_page_names_the_backend_the_worker_ran(auth_client):
    files = [SimpleUploadedFile(n, d, content_type="application/dicom") for n, d in dicom_series(2)]
    job_id = auth_client.post("/api/series/", {"file": files}).json()["id"]
    assert series_services.work(once=True, segmenter=NamedSegmenter()) == 1

    done = auth_client.get(f"/api/series/{job_id}/").json()
    assert done["status"] == "done" and done["inference"] == "onnx-cuda on GPU"
    assert "Inference: onnx-cuda on GPU" in footer(auth_client.get(f"/series/{job_id}/"))
