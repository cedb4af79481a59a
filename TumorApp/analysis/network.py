"""The dilated U-Net: build it, save/load its weights (legacy Keras HDF5), predict liver and tumour.

Inference runs on ONNX Runtime: the HDF5 weights stay the source of truth and are exported once to
an ONNX graph cached under `var/cache/onnx/`, keyed by the weights' hash and the network code.
The export (TensorFlow + tf2onnx) runs in a child process, so a serving process never imports
TensorFlow: on two CPU cores ORT's forward pass is ~3x faster than a `tf.function`, the process
starts in a second instead of several, and it stays a few hundred MiB smaller.

By default (`INFERENCE_BACKEND=onnx`) ORT runs the fp32 graph; `INFERENCE_BACKEND=onnx-int8` runs an
int8 graph quantised from it (`quantize.py`, cached next to it).
Each backend falls back to the next on failure: onnx-int8 -> onnx -> tf (a `tf.function` over
the Keras model).
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from .config import CONTRACT, DEFAULT_WEIGHTS, REPO_ROOT

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ENCODER_FILTERS = (32, 64, 128, 256)
BOTTLENECK_FILTERS = 512
DILATION = 2
DROPOUT = 0.1


def build_unet(input_size: int = CONTRACT.input_size, channels: int = len(CONTRACT.channels)):
    """The original app's dilated U-Net, with one sigmoid output channel per class."""
    import keras
    from keras import layers

    def block(x, filters: int, name: str):
        x = layers.Conv2D(filters, 3, padding="same", dilation_rate=DILATION, activation="relu",
                          kernel_initializer="he_normal", name=f"{name}_conv1")(x)
        x = layers.Dropout(DROPOUT, name=f"{name}_drop")(x)
        return layers.Conv2D(filters, 3, padding="same", dilation_rate=DILATION, activation="relu",
                             kernel_initializer="he_normal", name=f"{name}_conv2")(x)

    inputs = keras.Input((input_size, input_size, 1), name="ct")
    x, skips = inputs, []
    for i, filters in enumerate(ENCODER_FILTERS):
        x = block(x, filters, f"enc{i}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = block(x, BOTTLENECK_FILTERS, "bottleneck")
    for i, filters in reversed(list(enumerate(ENCODER_FILTERS))):
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"up{i}")(x)
        x = layers.Concatenate(name=f"skip{i}")([x, skips[i]])
        x = block(x, filters, f"dec{i}")
    outputs = layers.Conv2D(channels, 1, activation="sigmoid", name="masks")(x)
    return keras.Model(inputs, outputs, name="dilated_unet")


def save_weights(model, path: Path | str) -> None:
    """Write weights in the legacy Keras HDF5 layout the original `cnn_weights.hdf5` used."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def metadata_path(weights: Path | str) -> Path:
    """`<weights stem>.json` beside the weights: how training made them (patients, epochs, ...)."""
    weights = Path(weights)
    return weights.with_name(weights.name.split(".")[0] + ".json")


def weights_metadata(weights: Path | str) -> dict:
    """The weights' training metadata (`metadata_path`), or {} when there is none."""
    path = metadata_path(weights)
    return json.loads(path.read_text()) if path.is_file() else {}


def load_weights(model, path: Path | str) -> None:
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "r") as f:
        legacy_h5_format.load_weights_from_hdf5_group(f, model)


log = logging.getLogger(__name__)

# Bump when the export itself changes (opset, converter options): cached graphs are then rebuilt.
EXPORT_VERSION = 1
ONNX_OPSET = 17
INPUT_NAME = "ct"


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


def cache_dir() -> Path:
    """Where exported graphs live: `ONNX_CACHE_DIR`, else `<TUMOR_VAR_DIR or var/>/cache/onnx`."""
    if os.environ.get("ONNX_CACHE_DIR"):
        return Path(os.environ["ONNX_CACHE_DIR"])
    return Path(os.environ.get("TUMOR_VAR_DIR", REPO_ROOT / "var")) / "cache" / "onnx"


def file_digest(path: Path | str):
    """A sha256 over the file's bytes (read in 1 MiB blocks), to be extended by the caller."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest


def run_module(args: list[str], out: Path, *, what: str, timeout: float, env: dict | None = None) -> Path:
    """Run `python -m <args>` from the repository root in a child process, which must write `out`."""
    env = dict(os.environ, **(env or {}),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr[-2000:]}")
    return out


def onnx_path_for(weights: Path | str) -> Path:
    """The cached graph for these weights: named by a hash of the weights and the network code."""
    digest = file_digest(weights)
    digest.update(inspect.getsource(build_unet).encode())
    digest.update(repr((ENCODER_FILTERS, BOTTLENECK_FILTERS, DILATION, CONTRACT.input_size,
                        CONTRACT.channels, EXPORT_VERSION, ONNX_OPSET)).encode())
    return cache_dir() / f"dilated_unet-{digest.hexdigest()[:20]}.onnx"


def export_onnx(weights: Path | str, out: Path | str) -> Path:
    """Build the network, load `weights`, write the ONNX graph to `out` (atomically). Imports TF."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf
    import tf2onnx

    model = build_unet()
    load_weights(model, weights)
    spec = (tf.TensorSpec((None, CONTRACT.input_size, CONTRACT.input_size, 1), tf.float32, name=INPUT_NAME),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=ONNX_OPSET)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the target and rename: a concurrent reader sees no file or the whole file.
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(proto.SerializeToString())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def ensure_onnx(weights: Path | str, *, timeout: float = 600) -> Path:
    """The cached ONNX graph for `weights`, exported in a child process when missing."""
    path = onnx_path_for(weights)
    if path.is_file():
        return path
    log.info("exporting %s to %s", weights, path)
    return run_module(["TumorApp.analysis.network", "export", str(weights), str(path)], path,
                      what="ONNX export", timeout=timeout,
                      env={"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"})


BACKENDS = ("onnx-int8", "onnx", "tf")
# fp32: the graph the cross-validation measured (model card).  The int8 graph (~1.4x faster per pass
# on two AVX2 cores) tracked fp32 closely for the earlier weights, but for the weights trained on all
# patients it moves outlines near the threshold (liver Dice vs fp32 0.96, a stage flip on one test
# slice), so it is opt-in: `INFERENCE_BACKEND=onnx-int8`.
DEFAULT_BACKEND = "onnx"


def backend_from_env() -> str:
    return (os.environ.get("INFERENCE_BACKEND") or DEFAULT_BACKEND).strip().lower()


def graphs_cached(weights: Path | str = DEFAULT_WEIGHTS, backend: str | None = None) -> bool:
    """Whether the graph `backend` runs is already in the cache (`manage.py prepare_model` makes it)."""
    backend = (backend or backend_from_env()).lower()
    if backend == "tf":
        return True
    try:
        fp32 = onnx_path_for(weights)
        if backend == "onnx":
            return fp32.is_file()
        from .quantize import int8_path_for

        return fp32.is_file() and int8_path_for(fp32).is_file()
    except (OSError, ImportError):
        return False


class Segmenter:
    """The network with its weights, loaded once; `predict` is safe to call from several threads.

    `backend` (default `INFERENCE_BACKEND`, else `DEFAULT_BACKEND`): "onnx-int8" (the int8 graph),
    "onnx" (the fp32 graph) or "tf" (a `tf.function` over the Keras model).  A backend that cannot
    start falls back to the next one in `BACKENDS`; `self.backend` says which one runs.
    """

    def __init__(self, weights: Path | str = DEFAULT_WEIGHTS, *, backend: str | None = None):
        self.weights = Path(weights)
        if not self.weights.is_file():
            raise FileNotFoundError(f"model weights not found: {self.weights}")
        # One forward pass at a time: each already uses every core, so concurrent passes would
        # only fight over them; the lock is held for the pass alone, not pre/post-processing.
        self._lock = threading.Lock()
        self.backend = (backend or backend_from_env()).lower()
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown inference backend {self.backend!r} ({', '.join(BACKENDS)})")
        self.onnx_path: Path | None = None  # the fp32 graph
        self.graph_path: Path | None = None  # the graph that runs (fp32 or int8)
        if self.backend == "onnx-int8":
            try:
                self._init_onnx(int8=True)
            except Exception:
                log.warning("int8 graph unavailable, falling back to the fp32 graph", exc_info=True)
                self.backend = "onnx"
        if self.backend == "onnx":
            try:
                self._init_onnx()
            except Exception:
                log.warning("ONNX Runtime unavailable, falling back to TensorFlow", exc_info=True)
                self.backend = "tf"
        if self.backend == "tf":
            self._init_tf()

    def _init_onnx(self, int8: bool = False) -> None:
        import onnxruntime as ort

        self.onnx_path = ensure_onnx(self.weights)
        if int8:
            from .quantize import ensure_int8

            self.graph_path = ensure_int8(self.onnx_path, self.weights)
        else:
            self.graph_path = self.onnx_path
        options = ort.SessionOptions()
        options.intra_op_num_threads = inference_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads sleep instead of spinning: the other request threads need the cores
        # for decoding, post-processing and PNG encoding between passes.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(self.graph_path), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._forward = lambda x: self._session.run(None, {self._input: x})[0]

    def _init_tf(self) -> None:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import tensorflow as tf

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
        self._forward = lambda x: call(x).numpy()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, S, S) or (N, S, S, 1) floats in [0, 1] -> (N, S, S, channels) probabilities."""
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        x = np.ascontiguousarray(x)
        with self._lock:
            y = self._forward(x)
        return np.asarray(y, dtype=np.float32)


_SEGMENTERS: dict[str, Segmenter] = {}
# Held while building, so that the start-up warm-up and a first upload arriving meanwhile share
# one Segmenter (and one ONNX export) instead of racing to make two.
_SEGMENTERS_LOCK = threading.Lock()


def get_segmenter(weights: str = str(DEFAULT_WEIGHTS)) -> Segmenter:
    """One Segmenter per weights file per process."""
    with _SEGMENTERS_LOCK:
        if weights not in _SEGMENTERS:
            _SEGMENTERS[weights] = Segmenter(weights)
        return _SEGMENTERS[weights]


if __name__ == "__main__":  # `python -m TumorApp.analysis.network export WEIGHTS OUT` (used by ensure_onnx)
    if len(sys.argv) != 4 or sys.argv[1] != "export":
        sys.exit("usage: python -m TumorApp.analysis.network export WEIGHTS OUT.onnx")
    print(export_onnx(sys.argv[2], sys.argv[3]))
