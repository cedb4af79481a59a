"""The backend choice (backend_choice.py): which measured backend wins, the fingerprint that keys
the record, and how settings and the record decide what runs.  No network: figures are made up."""
from __future__ import annotations

import pytest

from TumorApp.analysis.model import backend_choice, runtime
from TumorApp.analysis.model.backend_choice import Figures, choose


def figures(ms: float, per_s: float, *, liver=1.0, tumor=1.0, stages=0) -> Figures:
    return Figures(liver_dice=liver, tumor_dice=tumor, stage_changes=stages, ms_per_pass=ms, slices_per_s=per_s)


def test_fastest_backend_that_holds_wins_for_slices_and_for_series_separately():
    choice = choose({"onnx": figures(40, 16), "openvino": figures(30, 17),
                     "onnx-int8": figures(25, 30), "openvino-int8": figures(28, 35)})
    assert (choice.slices, choice.series) == ("onnx-int8", "openvino-int8")
    assert choice.kept == ("onnx", "openvino", "onnx-int8", "openvino-int8")


@pytest.mark.parametrize("stray", [dict(liver=0.985), dict(tumor=0.95), dict(stages=1)],
                         ids=["liver-dice", "tumour-dice", "one-stage-change"])
def test_a_backend_whose_masks_stray_is_dropped_even_if_fastest(stray):
    choice = choose({"onnx": figures(40, 16), "openvino": figures(38, 18),
                     "onnx-int8": figures(10, 90, **stray)})
    assert "onnx-int8" not in choice.kept
    assert (choice.slices, choice.series) == ("openvino", "openvino")


def test_dice_exactly_at_the_bar_is_kept():
    choice = choose({"onnx": figures(40, 16), "onnx-int8": figures(20, 30, liver=0.99, tumor=0.99)})
    assert choice.kept == ("onnx", "onnx-int8") and choice.slices == "onnx-int8"


def test_ties_go_to_the_earlier_backend_in_registry_order():
    same = choose({"onnx": figures(30, 20), "openvino": figures(30, 20)})
    assert (same.slices, same.series) == ("onnx", "onnx")
    # Within TIE (2 %) of the fastest is a tie too: timing noise must not flip the choice.
    close = choose({"onnx": figures(30.0, 20.0), "openvino": figures(29.7, 20.3)})
    assert (close.slices, close.series) == ("onnx", "onnx")
    clear = choose({"onnx": figures(30.0, 20.0), "openvino": figures(27.0, 23.0)})
    assert (clear.slices, clear.series) == ("openvino", "openvino")


def test_the_cuda_backend_is_measured_and_chosen_like_the_others():
    fast_gpu = {"onnx": figures(40, 16), "onnx-int8": figures(25, 30), "onnx-cuda": figures(3, 400)}
    assert choose(fast_gpu).slices == choose(fast_gpu).series == "onnx-cuda"
    stray_gpu = {**fast_gpu, "onnx-cuda": figures(3, 400, tumor=0.9)}
    assert "onnx-cuda" not in choose(stray_gpu).kept and choose(stray_gpu).series == "onnx-int8"
    assert runtime.BACKENDS["onnx-cuda"].device == "GPU" and runtime.FALLBACK["onnx-cuda"] == "onnx"


def test_no_backend_holding_is_an_error():
    with pytest.raises(ValueError):
        choose({"onnx-int8": figures(20, 30, liver=0.5)})


def test_cuda_is_a_candidate_only_when_onnx_runtime_offers_it(monkeypatch):
    monkeypatch.setattr(runtime, "cuda_available", lambda: False)
    assert "onnx-cuda" not in runtime.candidates() and {"onnx", "onnx-int8"} <= set(runtime.candidates())
    monkeypatch.setattr(runtime, "cuda_available", lambda: True)
    assert runtime.candidates()[-1] == "onnx-cuda"
    assert "tf" not in runtime.candidates()


# --- fingerprint and record ----------------------------------------------------------------------

@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "w.hdf5"
    path.write_bytes(b"weights one" * 100)
    return path


def _key(path) -> str:
    return backend_choice.fingerprint(backend_choice.fingerprint_parts(path))


def test_fingerprint_changes_when_the_weights_change(weights, tmp_path):
    before = _key(weights)
    assert _key(weights) == before  # stable
    copy = tmp_path / "copy.hdf5"
    copy.write_bytes(weights.read_bytes())
    assert _key(copy) == before  # the bytes count, not the name
    weights.write_bytes(b"weights two" * 100)
    assert _key(weights) != before


def test_fingerprint_changes_with_the_runtime_versions_and_the_cpu(weights, monkeypatch):
    before = _key(weights)
    monkeypatch.setattr(backend_choice, "cpu_description", lambda: "model name: another CPU; flags: avx512_vnni")
    assert _key(weights) != before
    monkeypatch.undo()
    monkeypatch.setattr(backend_choice, "_version", lambda package: "0.0-other")
    assert _key(weights) != before
    parts = backend_choice.fingerprint_parts(weights)
    assert {"weights_sha256", "onnxruntime", "onnxruntime_providers", "openvino", "cpu_sha256"} <= set(parts)


def _record(slices: str, series: str) -> dict:
    choice = backend_choice.Choice(slices=slices, series=series, kept=(slices, series))
    return backend_choice.make_record({}, {slices: figures(10, 20), series: figures(20, 40)}, choice,
                                      unavailable={}, check_slices=8, repeats=1)


def test_settings_override_the_recorded_choice_which_overrides_the_defaults(weights, monkeypatch):
    monkeypatch.delenv("INFERENCE_BACKEND", raising=False)
    monkeypatch.delenv("SERIES_INFERENCE_BACKEND", raising=False)
    assert (runtime.backend_from_env(weights), runtime.series_backend_from_env(weights)) == \
        (runtime.DEFAULT_BACKEND, runtime.SERIES_DEFAULT_BACKEND)  # no record yet

    backend_choice.save_record(backend_choice.current_fingerprint(weights), _record("onnx-int8", "openvino-int8"))
    assert (runtime.backend_from_env(weights), runtime.series_backend_from_env(weights)) == \
        ("onnx-int8", "openvino-int8")

    monkeypatch.setenv("INFERENCE_BACKEND", "openvino")
    monkeypatch.setenv("SERIES_INFERENCE_BACKEND", " ONNX ")
    assert (runtime.backend_from_env(weights), runtime.series_backend_from_env(weights)) == ("openvino", "onnx")


def test_a_record_for_other_weights_is_ignored(weights, tmp_path, monkeypatch):
    monkeypatch.delenv("INFERENCE_BACKEND", raising=False)
    backend_choice.save_record(backend_choice.current_fingerprint(weights), _record("onnx-int8", "onnx-int8"))
    other = tmp_path / "other.hdf5"
    other.write_bytes(b"other weights")
    assert backend_choice.recorded_choice(other, "slices") is None
    assert runtime.backend_from_env(other) == runtime.DEFAULT_BACKEND


def test_an_unreadable_record_leaves_the_defaults(weights, no_recorded_inference_choice, monkeypatch):
    monkeypatch.delenv("INFERENCE_BACKEND", raising=False)
    no_recorded_inference_choice.write_text("{not json")
    assert runtime.backend_from_env(weights) == runtime.DEFAULT_BACKEND


def test_records_are_kept_per_fingerprint(weights, no_recorded_inference_choice):
    backend_choice.save_record("a" * 20, _record("onnx", "onnx"))
    backend_choice.save_record("b" * 20, _record("openvino", "openvino-int8"))
    records = backend_choice.load_records()
    assert set(records) == {"a" * 20, "b" * 20} and records["b" * 20]["series"] == "openvino-int8"
    assert no_recorded_inference_choice.is_file()


def test_a_recorded_backend_this_version_does_not_know_leaves_the_default(weights, monkeypatch):
    monkeypatch.delenv("INFERENCE_BACKEND", raising=False)
    backend_choice.save_record(backend_choice.current_fingerprint(weights), _record("onnx-tensorrt", "onnx"))
    assert runtime.backend_from_env(weights) == runtime.DEFAULT_BACKEND
    assert runtime.series_backend_from_env(weights) == "onnx"
