"""Measuring the backends (backend_trial.py) and `manage.py prepare_model`, which records the choice.

The real test runs the measurement on the committed weights with a few check slices and one timed
pass per batch size (about 10-20 s of two cores); the others stand a fake in for the measurement.
"""
from __future__ import annotations

import importlib.util
import io
import json
import re

import numpy as np
import pytest
from django.core.management import call_command

from TumorApp.analysis import backend_trial
from TumorApp.analysis.model import backend_choice, runtime
from TumorApp.analysis.model.backend_choice import TIE, Figures
from TumorApp.analysis.config import DEFAULT_WEIGHTS

LINE = re.compile(r"^inference: slices (\S+) \(([\d.]+) ms/pass\), series (\S+) \(([\d.]+) slices/s\); "
                  r"kept (\d) of (\d) backends; (measured now|reused .*?)(?: under load .*)?$")
needs_weights = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="model/cnn_weights.hdf5 missing")


def prepare_model(*args: str) -> str:
    out = io.StringIO()
    call_command("prepare_model", *args, stdout=out, stderr=out)
    return out.getvalue().strip()


@pytest.mark.slow
@needs_weights
def test_prepare_model_measures_every_backend_on_the_committed_weights_then_reuses_the_record(
        monkeypatch, no_recorded_inference_choice):
    monkeypatch.delenv("INFERENCE_BACKEND", raising=False)
    monkeypatch.delenv("SERIES_INFERENCE_BACKEND", raising=False)
    line = prepare_model("--check-slices", "6", "--repeats", "1")
    match = LINE.match(line)
    assert match, line
    slices, ms, series, per_s, kept, total, how = match.groups()
    assert how == "measured now"

    record = json.loads(no_recorded_inference_choice.read_text())[backend_choice.current_fingerprint(DEFAULT_WEIGHTS)]
    figures = record["figures"]
    # Every backend that can run here was measured; on this CPU-only machine CUDA is not one of them.
    assert set(figures) == set(runtime.candidates()) and int(total) == len(figures)
    has_openvino = importlib.util.find_spec("openvino") is not None  # in requirements.txt, so normally there
    assert {"onnx", "onnx-int8"} <= set(figures)
    assert ({"openvino", "openvino-int8"} <= set(figures)) == has_openvino
    assert ("onnx-cuda" in figures) == runtime.cuda_available()
    assert record["check_slices"] == 6 and record["repeats"] == 1
    # The reference against itself; OpenVINO fp32 runs the very same graph.
    assert figures["onnx"] | {"ms_per_pass": 0, "slices_per_s": 0} == \
        {"liver_dice": 1.0, "tumor_dice": 1.0, "stage_changes": 0, "ms_per_pass": 0, "slices_per_s": 0, "kept": True}
    if has_openvino:
        assert figures["openvino"]["kept"] and figures["openvino"]["liver_dice"] >= 0.999
    # Kept means holding fp32's masks; the choice is the fastest kept backend, as printed.
    for name, f in figures.items():
        assert f["kept"] == Figures(**{k: v for k, v in f.items() if k != "kept"}).holds, name
        assert f["ms_per_pass"] > 0 and f["slices_per_s"] > 0
    assert set(record["kept"]) == {n for n, f in figures.items() if f["kept"]} and int(kept) == len(record["kept"])
    assert (record["slices"], record["series"]) == (slices, series)
    assert float(ms) == pytest.approx(figures[slices]["ms_per_pass"], abs=0.01)
    assert float(per_s) == pytest.approx(figures[series]["slices_per_s"], abs=0.01)
    assert figures[slices]["ms_per_pass"] <= (1 + TIE) * min(figures[n]["ms_per_pass"] for n in record["kept"])
    assert figures[series]["slices_per_s"] * (1 + TIE) >= max(figures[n]["slices_per_s"] for n in record["kept"])
    # What runs from now on (no setting): the recorded choice.
    assert (runtime.backend_from_env(), runtime.series_backend_from_env()) == (slices, series)

    again = prepare_model("--check-slices", "6", "--repeats", "1", "--figures")
    first, *rows = again.splitlines()
    assert LINE.match(first) and "reused the record of " + record["measured_at"] in first
    assert {row.split(" | ")[0].lstrip("| ") for row in rows[2:-1]} == set(figures)  # one table row each
    assert json.loads(no_recorded_inference_choice.read_text())[
        backend_choice.current_fingerprint(DEFAULT_WEIGHTS)]["measured_at"] == record["measured_at"]


def test_changed_weights_are_measured_again_and_the_same_weights_reuse_the_record(tmp_path):
    weights = tmp_path / "w.hdf5"
    weights.write_bytes(b"first weights")
    calls = []

    def fake(w, check_slices, repeats):
        calls.append(w)
        return {"onnx": Figures(1.0, 1.0, 0, 40.0, 16.0), "onnx-int8": Figures(0.995, 0.992, 0, 25.0, 30.0)}, {}

    record, measured = backend_trial.prepare(weights, check_slices=4, repeats=1, measure_fn=fake)
    assert measured and (record["slices"], record["series"]) == ("onnx-int8", "onnx-int8") and len(calls) == 1
    record2, measured2 = backend_trial.prepare(weights, check_slices=4, repeats=1, measure_fn=fake)
    assert not measured2 and record2 == record and len(calls) == 1

    weights.write_bytes(b"retrained weights")
    _, measured3 = backend_trial.prepare(weights, check_slices=4, repeats=1, measure_fn=fake)
    assert measured3 and len(calls) == 2
    _, forced = backend_trial.prepare(weights, check_slices=4, repeats=1, measure_fn=fake, remeasure=True)
    assert forced and len(calls) == 3
    assert len(backend_choice.load_records()) == 2  # one record per weights version


def test_a_setting_is_named_in_the_line_instead_of_a_figure(monkeypatch):
    from TumorApp.management.commands.prepare_model import summary

    record = {"figures": {"onnx": {"ms_per_pass": 40.0, "slices_per_s": 16.0},
                          "onnx-int8": {"ms_per_pass": 25.5, "slices_per_s": 31.25}},
              "kept": ["onnx", "onnx-int8"], "measured_at": "2026-12-04T19:00:00Z"}
    monkeypatch.delenv("INFERENCE_BACKEND", raising=False)
    monkeypatch.setenv("SERIES_INFERENCE_BACKEND", "onnx")
    line = summary(record, {"slices": "onnx-int8", "series": "onnx"}, True, "var/inference-choice.json")
    assert line == ("inference: slices onnx-int8 (25.5 ms/pass), series onnx (set by SERIES_INFERENCE_BACKEND); "
                    "kept 2 of 2 backends; measured now")


@needs_weights
def test_without_a_measurement_the_defaults_are_prepared_and_said(monkeypatch):
    def fail(**kwargs):
        raise RuntimeError("no calibration set")

    monkeypatch.delenv("INFERENCE_BACKEND", raising=False)
    monkeypatch.delenv("SERIES_INFERENCE_BACKEND", raising=False)
    monkeypatch.setattr(backend_trial, "prepare", fail)
    assert prepare_model() == ("inference: slices onnx, series onnx-int8; "
                               "not measured (RuntimeError: no calibration set)")
    with pytest.raises(RuntimeError):
        prepare_model("--strict")


def test_stage_check_goes_through_the_product_stages():
    """A disc of liver with a tumour: staged as the product would; losing the tumour changes the stage."""
    size = 128
    yy, xx = np.mgrid[:size, :size]
    liver = ((yy - 64) ** 2 + (xx - 50) ** 2 < 40 ** 2).astype(np.float32)
    tumor = ((yy - 64) ** 2 + (xx - 50) ** 2 < 4 ** 2).astype(np.float32)  # 8 px = 32 px at 512 = 24 mm
    want = np.stack([liver, tumor], -1)[None]
    want_stages = [backend_trial.stage_label(w) for w in want]
    assert want_stages == ["Stage II (size-based estimate, not a clinical stage)"]
    assert backend_trial.compare(want, want, want_stages) == (1.0, 1.0, 0)
    lost = want.copy()
    lost[..., 1] = 0
    liver_dice, tumor_dice, changes = backend_trial.compare(lost, want, want_stages)
    assert liver_dice == 1.0 and tumor_dice == 0.0 and changes == 1


@needs_weights
def test_a_backend_that_cannot_start_here_is_reported_not_measured(monkeypatch):
    monkeypatch.setattr(runtime, "cuda_available", lambda: False)
    started, unavailable = backend_trial.start_backends(DEFAULT_WEIGHTS, ["onnx-cuda"])
    assert started == {} and "fell back to onnx" in unavailable["onnx-cuda"]


def test_a_busy_machine_is_waited_for_measured_anyway_marked_and_measured_again_when_quiet(tmp_path, monkeypatch):
    from TumorApp.management.commands.prepare_model import summary

    monkeypatch.setattr(backend_choice, "record_path", lambda: tmp_path / "choice.json")
    weights = tmp_path / "w.hdf5"
    weights.write_bytes(DEFAULT_WEIGHTS.read_bytes()[:4096] if DEFAULT_WEIGHTS.is_file() else b"weights")
    calls, naps = [], []

    def fake(w, check_slices, repeats):
        calls.append(1)
        figure = Figures(liver_dice=1.0, tumor_dice=1.0, stage_changes=0, ms_per_pass=40.0, slices_per_s=40.0)
        return {"onnx": figure}, {}

    busy, quiet = (lambda: 3.0), (lambda: 0.2)  # load per core
    record, measured = backend_trial.prepare(weights, check_slices=2, repeats=1, measure_fn=fake, load_fn=busy,
                                             quiet_wait_s=6, sleep=naps.append)
    assert measured and sum(naps) == 6 and record["under_load"] > 2  # waited, then measured anyway
    line = summary(record, {"slices": "onnx", "series": "onnx"}, True, "choice.json")
    assert line.endswith("measured again at the next quiet start") and "under load" in line
    # Still busy at the next start: the marked record is reused rather than measured beside other work.
    _, measured = backend_trial.prepare(weights, check_slices=2, repeats=1, measure_fn=fake, load_fn=busy,
                                        quiet_wait_s=0, sleep=naps.append)
    assert not measured and len(calls) == 1
    # A quiet start measures it again, unmarked; later quiet starts reuse it.
    record, measured = backend_trial.prepare(weights, check_slices=2, repeats=1, measure_fn=fake, load_fn=quiet)
    assert measured and "under_load" not in record and len(calls) == 2
    _, measured = backend_trial.prepare(weights, check_slices=2, repeats=1, measure_fn=fake, load_fn=busy)
    assert not measured and len(calls) == 2
