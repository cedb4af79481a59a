"""Inference backends: run the network's graph on this machine's CPU (or GPU), built once per process.

`Segmenter` runs one of `BACKENDS` (see below for which one):

* `onnx` - ONNX Runtime on the fp32 graph (`graphs.ensure_onnx`), the graph the
  cross-validation measured;
* `openvino` - OpenVINO on the same fp32 graph (needs the `openvino` package);
* `onnx-int8` - ONNX Runtime on the int8 graph (`quantize.ensure_int8`);
* `openvino-int8` - OpenVINO on that int8 graph;
* `openvino-bf16` - OpenVINO on the fp32 graph computing in bfloat16, only on CPUs that do
  bf16 natively (AVX-512 BF16 or AMX; elsewhere OpenVINO would quietly run fp32);
* `onnx-cuda` - ONNX Runtime's CUDA provider on the fp32 graph (needs `onnxruntime-gpu` and a
  visible GPU);
* `tf` - a `tf.function` over the Keras model, the last resort.

`BACKENDS` is the registry: name -> how to start it and where it runs.  Which one runs: the
setting (`INFERENCE_BACKEND`, `SERIES_INFERENCE_BACKEND`) when set, else the choice
`manage.py prepare_model` measured on this machine (`backend_choice.py`), else the defaults below.
A backend that cannot start falls back to the next in `FALLBACK`; `Segmenter.backend` says which
one runs.  Figures for each are in `bench/README.md`.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import CONTRACT, DEFAULT_WEIGHTS
from .graphs import ensure_onnx, onnx_path_for
from .threads import inference_threads

log = logging.getLogger(__name__)

# Where each backend falls back to when it cannot start.
FALLBACK = {"openvino-int8": "onnx-int8", "onnx-int8": "onnx", "openvino-bf16": "openvino", "openvino": "onnx",
            "onnx-cuda": "onnx", "onnx": "tf"}
DEFAULT_BACKEND = "onnx"
# Whole series (volume.py): the int8 graph, faster than fp32 and as accurate on a held-out patient's
# series (model card, "Whole series"; bench/README.md); ORT's, as OpenVINO's is no faster here.
SERIES_DEFAULT_BACKEND = "onnx-int8"


def backend_from_env(weights: Path | str = DEFAULT_WEIGHTS) -> str:
    """The backend for single slices: `INFERENCE_BACKEND`, else the recorded choice, else `DEFAULT_BACKEND`."""
    return _setting_or_choice("INFERENCE_BACKEND", "slices", DEFAULT_BACKEND, weights)


def series_backend_from_env(weights: Path | str = DEFAULT_WEIGHTS) -> str:
    """The backend for whole series: `SERIES_INFERENCE_BACKEND`, else the recorded choice, else
    `SERIES_DEFAULT_BACKEND`."""
    return _setting_or_choice("SERIES_INFERENCE_BACKEND", "series", SERIES_DEFAULT_BACKEND, weights)


def _setting_or_choice(variable: str, kind: str, default: str, weights: Path | str) -> str:
    setting = (os.environ.get(variable) or "").strip().lower()
    if setting:
        return setting
    from .backend_choice import recorded_choice

    recorded = recorded_choice(weights, kind)
    return recorded if recorded in BACKENDS else default  # a name this version lacks: the default


def graphs_cached(weights: Path | str = DEFAULT_WEIGHTS, backend: str | None = None) -> bool:
    """Whether the graph `backend` runs is already in the cache (`manage.py prepare_model` makes it)."""
    backend = (backend or backend_from_env(weights)).lower()
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
        backend = (backend or backend_from_env(self.weights)).lower()
        if backend not in BACKENDS:
            raise ValueError(f"unknown inference backend {backend!r} ({', '.join(BACKENDS)})")
        self.onnx_path: Path | None = None  # the fp32 graph
        self.graph_path: Path | None = None  # the graph that runs (fp32 or int8)
        while True:
            try:
                self._forward = BACKENDS[backend].start(self)
                break
            except Exception:
                if backend not in FALLBACK:
                    raise
                log.warning("inference backend %s unavailable, falling back to %s", backend,
                            FALLBACK[backend], exc_info=True)
                backend = FALLBACK[backend]
        self.backend = backend
        self.device = BACKENDS[backend].device

    def graph(self, int8: bool) -> Path:
        """The fp32 graph, or its int8 quantisation; both made once and cached."""
        self.onnx_path = ensure_onnx(self.weights)
        if int8:
            from .quantize import ensure_int8

            return ensure_int8(self.onnx_path, self.weights)
        return self.onnx_path

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, S, S) or (N, S, S, 1) floats in [0, 1] -> (N, S, S, channels) probabilities."""
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        x = np.ascontiguousarray(x)
        with self._lock:
            y = self._forward(x)
        return np.asarray(y, dtype=np.float32)


# --- the registry: how each backend starts (segmenter -> forward function) and where it runs ------

Forward = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Backend:
    start: Callable[[Segmenter], Forward]  # raises when it cannot run here
    device: str = "CPU"


def _ort_session(seg: Segmenter, int8: bool, providers: list[str]):
    import onnxruntime as ort

    seg.graph_path = seg.graph(int8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = inference_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads sleep instead of spinning: the other request threads need the cores
    # for decoding, post-processing and PNG encoding between passes.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(seg.graph_path), options, providers=providers)


def _forward_of(session) -> Forward:
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def start_onnx(seg: Segmenter, int8: bool = False) -> Forward:
    return _forward_of(_ort_session(seg, int8, ["CPUExecutionProvider"]))


def cuda_available() -> bool:
    """Whether ONNX Runtime here has the CUDA provider (the `onnxruntime-gpu` package)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def start_onnx_cuda(seg: Segmenter) -> Forward:
    if not cuda_available():
        raise RuntimeError("ONNX Runtime has no CUDAExecutionProvider here (install onnxruntime-gpu)")
    session = _ort_session(seg, False, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    # ORT quietly drops to the CPU when the CUDA libraries or the GPU are missing: refuse that.
    if session.get_providers()[0] != "CUDAExecutionProvider":
        raise RuntimeError(f"CUDA provider did not load (session providers: {session.get_providers()})")
    return _forward_of(session)


def openvino_bf16_native() -> bool:
    """Whether OpenVINO's CPU plugin computes bf16 natively here (AVX-512 BF16 or AMX)."""
    try:
        import openvino as ov
    except ImportError:
        return False
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def start_openvino(seg: Segmenter, int8: bool = False, precision: str = "f32") -> Forward:
    import openvino as ov

    if precision == "bf16" and not openvino_bf16_native():
        raise RuntimeError("this CPU has no native bf16 (AVX-512 BF16 or AMX)")
    seg.graph_path = seg.graph(int8)
    # An explicit precision hint: on CPUs with AVX-512 BF16 or AMX, OpenVINO would otherwise
    # choose bf16 by itself; `openvino` runs the graph the cross-validation measured (f32),
    # `openvino-bf16` asks for bf16 and is kept only when its masks match f32's (prepare_model).
    compiled = ov.Core().compile_model(str(seg.graph_path), "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": inference_threads(),
        "INFERENCE_PRECISION_HINT": precision})
    request, output = compiled.create_infer_request(), compiled.output(0)
    return lambda x: request.infer({0: x})[output].copy()  # the request reuses its buffer


def start_tf(seg: Segmenter) -> Forward:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    from .network import build_unet, load_weights

    try:  # only possible before TensorFlow has started its thread pools
        tf.config.threading.set_intra_op_parallelism_threads(inference_threads())
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    seg.model = build_unet()
    load_weights(seg.model, seg.weights)
    size = CONTRACT.input_size
    call = tf.function(lambda x: seg.model(x, training=False), reduce_retracing=True,
                       input_signature=[tf.TensorSpec((None, size, size, 1), tf.float32)])
    return lambda x: call(x).numpy()


BACKENDS: dict[str, Backend] = {
    "onnx": Backend(start_onnx),
    "openvino": Backend(start_openvino),
    "onnx-int8": Backend(lambda seg: start_onnx(seg, int8=True)),
    "openvino-int8": Backend(lambda seg: start_openvino(seg, int8=True)),
    "openvino-bf16": Backend(lambda seg: start_openvino(seg, precision="bf16")),
    "onnx-cuda": Backend(start_onnx_cuda, device="GPU"),
    "tf": Backend(start_tf),
}


def candidates() -> list[str]:
    """The backends worth measuring here (registry order): ONNX Runtime's always, OpenVINO's when
    installed (bf16 where the CPU does it natively), CUDA when ORT offers it; `tf` never (the
    last resort, several times slower)."""
    names = ["onnx", "onnx-int8"]
    if importlib.util.find_spec("openvino") is not None:
        names += ["openvino", "openvino-int8"] + (["openvino-bf16"] if openvino_bf16_native() else [])
    if cuda_available():
        names.append("onnx-cuda")
    return [name for name in BACKENDS if name in names]


def describe(segmenter) -> str:
    """"onnx-int8 on CPU" for a Segmenter; "" for a stand-in without a backend (tests' fakes)."""
    backend = getattr(segmenter, "backend", None)
    return f"{backend} on {getattr(segmenter, 'device', 'CPU')}" if backend else ""


def slice_inference(weights: Path | str = DEFAULT_WEIGHTS) -> str:
    """What runs single slices in this process: the built Segmenter's backend (after any fallback),
    else the one it will be built with.  Never builds one (that can take minutes)."""
    name = backend_from_env(weights)
    built = _SEGMENTERS.get((str(weights), name))
    if built is not None:
        return describe(built)
    return f"{name} on {BACKENDS[name].device}" if name in BACKENDS else name


_SEGMENTERS: dict[tuple[str, str], Segmenter] = {}
# Held while building, so that the start-up warm-up and a first upload arriving meanwhile share
# one Segmenter (and one ONNX export) instead of racing to make two.
_SEGMENTERS_LOCK = threading.Lock()


def get_segmenter(weights: str = str(DEFAULT_WEIGHTS), backend: str | None = None) -> Segmenter:
    """One Segmenter per weights file and backend (default `backend_from_env()`) per process."""
    key = (str(weights), (backend or backend_from_env(weights)).lower())
    with _SEGMENTERS_LOCK:
        if key not in _SEGMENTERS:
            _SEGMENTERS[key] = Segmenter(key[0], backend=key[1])
        return _SEGMENTERS[key]
