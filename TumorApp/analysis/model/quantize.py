"""The int8 graph: ONNX Runtime static quantisation of the cached fp32 export, cached next to it.

The HDF5 weights stay the source of truth: weights -> fp32 ONNX (graphs.ensure_onnx) -> int8
ONNX (here).  The int8 graph is named by a hash of the fp32 graph's bytes, of the calibration
inputs and of `QUANT_VERSION` (and the ORT version, whose quantiser makes the graph), so a new
export, new calibration slices or new settings each make a new file.

Calibration slices (`model/calibration.npz`, built by `manage.py make_calibration`) come from
the training patients only; `check_calibration` refuses a set containing a held-out patient.
Quantisation runs once, in a child process like the export, so that a serving process does not
import the quantiser (and `onnx`) or keep the memory that calibration used.  Before it is cached
the int8 graph is checked against the fp32 graph on the calibration slices (`MAX_MEAN_DIFF`,
`MIN_MASK_AGREEMENT`): a broken quantisation raises, and `Segmenter` falls back to fp32.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..config import REPO_ROOT
from .graphs import file_digest, run_module
from .network import weights_metadata

log = logging.getLogger(__name__)

CALIBRATION = REPO_ROOT / "model" / "calibration.npz"
# Bump when the quantisation settings below change: cached int8 graphs are then rebuilt.
QUANT_VERSION = 1
CALIBRATION_BATCH = 8
# Sanity check of a fresh int8 graph against fp32 on the calibration slices (measured with the
# settings below: mean |difference| ~0.001, liver-mask agreement ~0.996 on training slices
# outside the calibration set; a broken graph is at ~0.4 and ~0.8).
MAX_MEAN_DIFF = 0.01
MIN_MASK_AGREEMENT = 0.98


def load_calibration(path: Path | str = CALIBRATION) -> dict[str, np.ndarray]:
    """The calibration set: `inputs` (N, S, S) float32 in [0, 1], `patients`, `slices`, `views`."""
    with np.load(path) as d:
        data = {k: d[k] for k in ("inputs", "patients", "slices", "views")}
    data["inputs"] = data["inputs"].astype(np.float32) / 255.0
    return data


def check_calibration(patients, weights: Path | str) -> None:
    """Raise unless every calibration patient is one the weights were trained on (their .json)."""
    meta = weights_metadata(weights)
    used = set(str(p) for p in patients)
    held_out = used & set(meta.get("held_out", []))
    if held_out or not used <= set(meta.get("trained_on", [])):
        raise ValueError(f"calibration patients {sorted(used)} must all be training patients of {weights} "
                         f"(trained on {meta.get('trained_on')}, held out {meta.get('held_out')})")


def int8_path_for(fp32: Path | str, calibration: Path | str = CALIBRATION) -> Path:
    """The cached int8 graph for this fp32 graph and calibration set, next to the fp32 graph."""
    import onnxruntime

    fp32 = Path(fp32)
    digest = file_digest(fp32)
    # The arrays, not the .npz bytes: a zip records when it was written.
    with np.load(calibration) as d:
        digest.update(np.ascontiguousarray(d["inputs"]).tobytes())
    digest.update(repr((QUANT_VERSION, onnxruntime.__version__)).encode())
    return fp32.with_name(f"{fp32.stem}-int8-{digest.hexdigest()[:16]}.onnx")


class _Reader:
    """Feeds the calibration inputs to the quantiser a batch at a time."""

    def __init__(self, inputs: np.ndarray, name: str):
        self.batches = iter([{name: inputs[i:i + CALIBRATION_BATCH, ..., None]}
                             for i in range(0, len(inputs), CALIBRATION_BATCH)])

    def get_next(self):
        return next(self.batches, None)

    def rewind(self):  # pragma: no cover - only some calibration methods read twice
        raise NotImplementedError


def quantize(fp32: Path | str, out: Path | str, calibration: Path | str = CALIBRATION) -> Path:
    """Write the int8 graph of `fp32` to `out` (atomically).

    QDQ format, int8 weights per output channel, uint8 activations with min/max ranges from the
    calibration slices: on AVX2 cores ORT runs the convolutions as u8 x s8 integer kernels.
    `reduce_range` (7-bit weights) because those kernels (VPMADDUBSW, without AVX-512 VNNI) can
    saturate 16-bit sums: with 8-bit weights single outputs were off by up to 0.89 (mean 0.0025)
    against fp32, with 7-bit by up to 0.49 (mean 0.0013), at the same speed.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    inputs = load_calibration(calibration)["inputs"]
    name = onnx.load(str(fp32), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        # Shape inference and graph clean-up first (as ORT recommends); the symbolic pass needs sympy
        # and adds nothing for this fixed-size network.
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(quantized), _Reader(inputs, name),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, reduce_range=True)
        check_against_fp32(quantized, fp32, inputs)
        os.chmod(quantized, 0o644)
        os.replace(quantized, out)  # same folder: a concurrent reader sees no file or the whole file
    return out


def check_against_fp32(int8: Path | str, fp32: Path | str, inputs: np.ndarray) -> None:
    """Raise unless the int8 graph's outputs stay close to the fp32 graph's on `inputs`."""
    import onnxruntime as ort

    def run(path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return np.concatenate([session.run(None, {name: inputs[i:i + CALIBRATION_BATCH, ..., None]})[0]
                               for i in range(0, len(inputs), CALIBRATION_BATCH)])

    got, want = run(int8), run(fp32)
    mean_diff = float(np.abs(got - want).mean())
    agreement = float(((got[..., 0] > 0.5) == (want[..., 0] > 0.5)).mean())
    if mean_diff > MAX_MEAN_DIFF or agreement < MIN_MASK_AGREEMENT:
        raise RuntimeError(f"int8 graph too far from fp32: mean |diff| {mean_diff:.4f}, "
                           f"liver mask agreement {agreement:.4f}")


def ensure_int8(fp32: Path | str, weights: Path | str, *, calibration: Path | str = CALIBRATION,
                timeout: float = 600) -> Path:
    """The cached int8 graph for `fp32`, quantised in a child process when missing."""
    check_calibration(np.load(calibration)["patients"], weights)
    path = int8_path_for(fp32, calibration)
    if path.is_file():
        return path
    log.info("quantising %s to %s", fp32, path)
    return run_module(["TumorApp.analysis.model.quantize", str(fp32), str(path), str(calibration)], path,
                      what="int8 quantisation", timeout=timeout)


if __name__ == "__main__":  # `python -m TumorApp.analysis.model.quantize FP32 OUT CALIBRATION` (used by ensure_int8)
    if len(sys.argv) != 4:
        sys.exit("usage: python -m TumorApp.analysis.model.quantize FP32.onnx OUT.onnx CALIBRATION.npz")
    print(quantize(*sys.argv[1:]))
