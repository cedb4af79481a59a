"""Inference backends: run the network's graph on this machine's CPU, built once per process.

`Segmenter` runs one of `BACKENDS` (`INFERENCE_BACKEND`, else `DEFAULT_BACKEND`):

* `onnx` - ONNX Runtime on the fp32 graph (`graphs.ensure_onnx`), the graph the
  cross-validation measured;
* `openvino` - OpenVINO on the same fp32 graph (needs the `openvino` package);
* `onnx-int8` - ONNX Runtime on the int8 graph (`quantize.ensure_int8`);
* `openvino-int8` - OpenVINO on that int8 graph;
* `tf` - a `tf.function` over the Keras model, the last resort.

A backend that cannot start falls back to the next in `FALLBACK`; `Segmenter.backend` says which
one runs.  Figures for each are in `bench/README.md`.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from .config import CONTRACT, DEFAULT_WEIGHTS
from .graphs import ensure_onnx, onnx_path_for

log = logging.getLogger(__name__)

BACKENDS = ("onnx", "openvino", "onnx-int8", "openvino-int8", "tf")
# Where each backend falls back to when it cannot start.
FALLBACK = {"openvino-int8": "onnx-int8", "onnx-int8": "onnx", "openvino": "onnx", "onnx": "tf"}
DEFAULT_BACKEND = "onnx"
# Whole series (volume.py): the int8 graph, faster than fp32 and as accurate on a held-out patient's
# series (model card, "Whole series"; bench/README.md); ORT's, as OpenVINO's is no faster here.
SERIES_DEFAULT_BACKEND = "onnx-int8"


def backend_from_env() -> str:
    """The backend for single slices: `INFERENCE_BACKEND`, else `DEFAULT_BACKEND`."""
    return (os.environ.get("INFERENCE_BACKEND") or DEFAULT_BACKEND).strip().lower()


def series_backend_from_env() -> str:
    """The backend for whole series: `SERIES_INFERENCE_BACKEND`, else `SERIES_DEFAULT_BACKEND`."""
    return (os.environ.get("SERIES_INFERENCE_BACKEND") or SERIES_DEFAULT_BACKEND).strip().lower()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def inference_threads() -> int:
    """Threads for one forward pass: all cores (`INFERENCE_THREADS` overrides).

    Forward passes are serialised by `Segmenter`'s lock, so waitress's request threads never run
    two passes at once on the same cores; they only overlap the cheap stages around them."""
    return max(1, int(os.environ.get("INFERENCE_THREADS", 0)) or _cpu_count())


def graphs_cached(weights: Path | str = DEFAULT_WEIGHTS, backend: str | None = None) -> bool:
    """Whether the graph `backend` runs is already in the cache (`manage.py prepare_model` makes it)."""
    backend = (backend or backend_from_env()).lower()
    if backend == "tf":
        return True
    try:
        fp32 = onnx_path_for(weights)
        if not backend.endswith("-int8"):
            return fp32.is_file()
        from .quantize import int8_path_for

        return fp32.is_file() and int8_path_for(fp32).is_file()
    except (OSError, ImportError):
        return False


class Segmenter:
    """The network with its weights, loaded once; `predict` is safe to call from several threads."""

    def __init__(self, weights: Path | str = DEFAULT_WEIGHTS, *, backend: str | None = None):
        self.weights = Path(weights)
        if not self.weights.is_file():
            raise FileNotFoundError(f"model weights not found: {self.weights}")
        # One forward pass at a time: each already uses every core, so concurrent passes would
        # only fight over them; the lock is held for the pass alone, not pre/post-processing.
        self._lock = threading.Lock()
        backend = (backend or backend_from_env()).lower()
        if backend not in BACKENDS:
            raise ValueError(f"unknown inference backend {backend!r} ({', '.join(BACKENDS)})")
        self.onnx_path: Path | None = None  # the fp32 graph
        self.graph_path: Path | None = None  # the graph that runs (fp32 or int8)
        while True:
            try:
                self._forward = getattr(self, "_start_" + backend.replace("-", "_"))()
                break
            except Exception:
                if backend not in FALLBACK:
                    raise
                log.warning("inference backend %s unavailable, falling back to %s", backend,
                            FALLBACK[backend], exc_info=True)
                backend = FALLBACK[backend]
        self.backend = backend

    def _graph(self, int8: bool) -> Path:
        """The fp32 graph, or its int8 quantisation; both made once and cached."""
        self.onnx_path = ensure_onnx(self.weights)
        if int8:
            from .quantize import ensure_int8

            return ensure_int8(self.onnx_path, self.weights)
        return self.onnx_path

    def _start_onnx(self, int8: bool = False):
        import onnxruntime as ort

        self.graph_path = self._graph(int8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = inference_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads sleep instead of spinning: the other request threads need the cores
        # for decoding, post-processing and PNG encoding between passes.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(self.graph_path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]

    def _start_onnx_int8(self):
        return self._start_onnx(int8=True)

    def _start_openvino(self, int8: bool = False):
        import openvino as ov

        self.graph_path = self._graph(int8)
        # f32 precision hint: on CPUs with AVX-512 BF16 or AMX, OpenVINO would otherwise run the
        # fp32 graph in bf16, which is not the graph the cross-validation measured.
        compiled = ov.Core().compile_model(str(self.graph_path), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": inference_threads(),
            "INFERENCE_PRECISION_HINT": "f32"})
        request, output = compiled.create_infer_request(), compiled.output(0)
        return lambda x: request.infer({0: x})[output].copy()  # the request reuses its buffer

    def _start_openvino_int8(self):
        return self._start_openvino(int8=True)

    def _start_tf(self):
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import tensorflow as tf

        from .network import build_unet, load_weights

        try:  # only possible before TensorFlow has started its thread pools
            tf.config.threading.set_intra_op_parallelism_threads(inference_threads())
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
        self.model = build_unet()
        load_weights(self.model, self.weights)
        size = CONTRACT.input_size
        call = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True,
                           input_signature=[tf.TensorSpec((None, size, size, 1), tf.float32)])
        return lambda x: call(x).numpy()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, S, S) or (N, S, S, 1) floats in [0, 1] -> (N, S, S, channels) probabilities."""
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        x = np.ascontiguousarray(x)
        with self._lock:
            y = self._forward(x)
        return np.asarray(y, dtype=np.float32)


_SEGMENTERS: dict[tuple[str, str], Segmenter] = {}
# Held while building, so that the start-up warm-up and a first upload arriving meanwhile share
# one Segmenter (and one ONNX export) instead of racing to make two.
_SEGMENTERS_LOCK = threading.Lock()


def get_segmenter(weights: str = str(DEFAULT_WEIGHTS), backend: str | None = None) -> Segmenter:
    """One Segmenter per weights file and backend (default `backend_from_env()`) per process."""
    key = (str(weights), (backend or backend_from_env()).lower())
    with _SEGMENTERS_LOCK:
        if key not in _SEGMENTERS:
            _SEGMENTERS[key] = Segmenter(key[0], backend=key[1])
        return _SEGMENTERS[key]
