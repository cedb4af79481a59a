"""Inference graphs derived from the HDF5 weights: the fp32 ONNX export, cached by content hash.

The HDF5 weights stay the source of truth.  The export (TensorFlow + tf2onnx) runs once, in a
child process, into `var/cache/onnx/` under a name hashed from the weights and the network code,
so a serving process never imports TensorFlow.  `quantize.py` derives the int8 graph from it.
"""
from __future__ import annotations

import hashlib
import inspect
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..config import CONTRACT, REPO_ROOT
from .network import BOTTLENECK_FILTERS, DILATION, ENCODER_FILTERS, build_unet, load_weights

log = logging.getLogger(__name__)

# Bump when the export itself changes (opset, converter options): cached graphs are then rebuilt.
EXPORT_VERSION = 1
ONNX_OPSET = 17
INPUT_NAME = "ct"


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
    return run_module(["TumorApp.analysis.model.graphs", "export", str(weights), str(path)], path,
                      what="ONNX export", timeout=timeout,
                      env={"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"})


if __name__ == "__main__":  # `python -m TumorApp.analysis.model.graphs export WEIGHTS OUT` (used by ensure_onnx)
    if len(sys.argv) != 4 or sys.argv[1] != "export":
        sys.exit("usage: python -m TumorApp.analysis.model.graphs export WEIGHTS OUT.onnx")
    print(export_onnx(sys.argv[2], sys.argv[3]))
