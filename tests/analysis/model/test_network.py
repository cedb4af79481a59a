"""The inference paths (ONNX Runtime on the fp32 graph exported from the HDF5 weights, and on its
int8 quantisation, the default) against Keras.  More on the int8 graph in test_quantize.py."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from TumorApp.analysis.config import DEFAULT_WEIGHTS
from TumorApp.analysis.io.loading import load
from TumorApp.analysis.slice.preprocess import network_unit, to_network_input

from ..conftest import DICOM_66, SEED_440

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="model/cnn_weights.hdf5 missing"),
]


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    """Two real slices as the network sees them: the DICOM and the (mirrored) seed PNG."""
    units = [network_unit(load(DICOM_66)), network_unit(load(SEED_440))]
    return np.stack([to_network_input(u) for u in units]).astype(np.float32)


@pytest.fixture(scope="module")
def keras_output(batch) -> np.ndarray:
    from TumorApp.analysis.model.network import build_unet, load_weights

    model = build_unet()
    load_weights(model, DEFAULT_WEIGHTS)
    return np.asarray(model(batch[..., None], training=False))


def test_onnx_path_matches_keras_on_real_slices(batch, keras_output):
    from TumorApp.analysis.model.runtime import Segmenter

    segmenter = Segmenter(DEFAULT_WEIGHTS, backend="onnx")
    assert segmenter.backend == "onnx"
    out = segmenter.predict(batch)
    assert out.shape == (2, 128, 128, 2) and out.dtype == np.float32
    assert np.abs(out - keras_output).max() < 1e-4
    # The slices are not blank to the network: the comparison covers real liver probabilities.
    assert out[0, ..., 0].max() > 0.5


def test_default_is_fp32_and_the_int8_path_stays_close_to_keras(batch, keras_output, monkeypatch):
    from TumorApp.analysis.model.runtime import Segmenter

    monkeypatch.delenv("INFERENCE_BACKEND", raising=False)
    assert Segmenter(DEFAULT_WEIGHTS).backend == "onnx"  # what the cross-validation measured
    segmenter = Segmenter(DEFAULT_WEIGHTS, backend="onnx-int8")
    assert segmenter.backend == "onnx-int8"
    assert segmenter.graph_path != segmenter.onnx_path
    out = segmenter.predict(batch)
    assert out.shape == keras_output.shape and out.dtype == np.float32
    # Not within 1e-4 like fp32: measured mean |diff| <= 0.004 and >= 99 % equal liver pixels.
    for i in range(len(batch)):
        assert np.abs(out[i] - keras_output[i]).mean() < 0.01
        assert ((out[i, ..., 0] > 0.5) == (keras_output[i, ..., 0] > 0.5)).mean() > 0.975
        assert ((out[i, ..., 1] > 0.5) == (keras_output[i, ..., 1] > 0.5)).mean() > 0.995


def test_tf_function_fallback_matches_keras(batch, keras_output):
    from TumorApp.analysis.model.runtime import Segmenter

    out = Segmenter(DEFAULT_WEIGHTS, backend="tf").predict(batch[..., None])
    assert np.abs(out - keras_output).max() < 1e-4


def test_predict_from_several_threads_gives_the_same_answers(batch):
    from TumorApp.analysis.model.runtime import get_segmenter

    segmenter = get_segmenter()
    expected = [segmenter.predict(batch[i:i + 1]) for i in range(2)]
    results, errors = {}, []

    def work(k: int) -> None:
        try:
            results[k] = segmenter.predict(batch[k % 2:k % 2 + 1])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k, out in results.items():
        assert np.abs(out - expected[k % 2]).max() < 1e-5


def test_segmenter_is_built_once_per_process():
    from TumorApp.analysis.model.runtime import get_segmenter

    assert get_segmenter() is get_segmenter()


def test_export_is_cached_by_weights_hash(tmp_path, monkeypatch):
    from TumorApp.analysis.model import graphs

    monkeypatch.setenv("ONNX_CACHE_DIR", str(tmp_path))
    path = graphs.onnx_path_for(DEFAULT_WEIGHTS)
    assert path.parent == tmp_path and not path.exists()
    other = tmp_path / "other.hdf5"
    other.write_bytes(DEFAULT_WEIGHTS.read_bytes()[:-1] + b"\0")
    assert graphs.onnx_path_for(other) != path


def test_concurrent_first_calls_share_one_segmenter(monkeypatch):
    from TumorApp.analysis.model import runtime

    built = []

    class Counting:
        def __init__(self, weights, backend):
            time.sleep(0.05)  # building takes a while: long enough for the threads to race
            built.append(weights)

    monkeypatch.setattr(runtime, "_SEGMENTERS", {})
    monkeypatch.setattr(runtime, "Segmenter", Counting)
    got = []
    threads = [threading.Thread(target=lambda: got.append(runtime.get_segmenter("w.hdf5"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and all(g is got[0] for g in got)


def test_architecture_and_weights_io_import_no_runtime_code():
    """network.py (architecture, weights I/O) <- graphs.py <- quantize.py <- runtime.py, one way."""
    import ast

    from ..conftest import REPO

    def imports(module: str) -> set[str]:
        tree = ast.parse((REPO / "TumorApp" / "analysis" / "model" / f"{module}.py").read_text())
        return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}

    assert imports("network") & {"graphs", "quantize", "runtime"} == set()
    assert imports("graphs") & {"quantize", "runtime"} == set()
    assert imports("quantize") & {"runtime"} == set()
    assert {"graphs", "quantize"} <= imports("runtime")


@pytest.mark.parametrize("backend", ["openvino", "openvino-int8", "openvino-bf16"])
def test_openvino_backends_match_their_onnx_runtime_graph(batch, backend):
    pytest.importorskip("openvino")
    from TumorApp.analysis.model.runtime import Segmenter, openvino_bf16_native

    if backend == "openvino-bf16" and not openvino_bf16_native():
        pytest.skip("this CPU has no native bf16 (AVX-512 BF16 or AMX): openvino-bf16 does not start here")

    ov = Segmenter(DEFAULT_WEIGHTS, backend=backend)
    assert ov.backend == backend
    ort = Segmenter(DEFAULT_WEIGHTS, backend=backend.replace("openvino", "onnx").replace("-bf16", ""))
    assert ov.graph_path == ort.graph_path  # the very same graph, another runtime (bf16: another precision)
    got, want = ov.predict(batch), ort.predict(batch)
    # fp32: the same arithmetic up to summation order; int8: both run u8 x s8 kernels, rounded apart
    # (the same bounds as int8 against Keras above: measured 0.987 equal liver pixels); bf16 against
    # fp32: 8-bit mantissas, closer than int8.
    mean_limit, agreement = {"openvino": (1e-4, 0.999), "openvino-int8": (0.01, 0.975),
                             "openvino-bf16": (0.005, 0.99)}[backend]
    assert np.abs(got - want).mean() < mean_limit
    assert ((got[..., 0] > 0.5) == (want[..., 0] > 0.5)).mean() > agreement


def test_openvino_bf16_refuses_a_cpu_without_native_bf16(monkeypatch):
    pytest.importorskip("openvino")
    from TumorApp.analysis.model import runtime

    monkeypatch.setattr(runtime, "openvino_bf16_native", lambda: False)
    assert "openvino-bf16" not in runtime.candidates()
    seg = runtime.Segmenter(DEFAULT_WEIGHTS, backend="openvino-bf16")
    assert seg.backend == "openvino"  # fell back to the fp32 graph on OpenVINO, and says so


def test_one_segmenter_per_weights_and_backend():
    from TumorApp.analysis.model.runtime import get_segmenter

    fp32, int8 = get_segmenter(backend="onnx"), get_segmenter(backend="onnx-int8")
    assert fp32 is not int8 and (fp32.backend, int8.backend) == ("onnx", "onnx-int8")
    assert get_segmenter(backend="onnx-int8") is int8


def test_series_default_to_the_int8_graph_and_slices_to_fp32(monkeypatch):
    from TumorApp.analysis.model import runtime
    from TumorApp.analysis.series.volume import analyze_series

    from ..series_fixtures import dicom_series

    monkeypatch.delenv("INFERENCE_BACKEND", raising=False)
    monkeypatch.delenv("SERIES_INFERENCE_BACKEND", raising=False)
    assert (runtime.backend_from_env(), runtime.series_backend_from_env()) == ("onnx", "onnx-int8")
    monkeypatch.setattr(runtime, "_SEGMENTERS", {})
    analyze_series(dicom_series(2))
    assert [backend for _, backend in runtime._SEGMENTERS] == ["onnx-int8"]
    monkeypatch.setenv("SERIES_INFERENCE_BACKEND", "onnx")
    analyze_series(dicom_series(2))
    assert [backend for _, backend in runtime._SEGMENTERS] == ["onnx-int8", "onnx"]
