"""Forward-pass time: the project's inference paths vs plain ONNX Runtime on the same graphs and input.

    .venv/bin/python bench/inference.py [--runs 60] [--batch 1] [--original 3] [--no-tf]

Prints median/p95 per pass for
  project fp32     Segmenter.predict, what analyze() calls (lock, thread settings), on the fp32 graph
  project int8     the same on the int8 graph (the default backend; get_segmenter() is one of the two)
  onnxruntime      a plain InferenceSession with default options on the exported fp32 graph
  onnxruntime int8 a plain InferenceSession with default options on the int8 graph
  tf.function      the Keras model wrapped in tf.function (the last fallback), and Keras model(x)
  original         the original app's way: build the network and load the HDF5 per call
and the ratios: the default project path / onnxruntime on the fp32 graph (the issue's goal
<= 1.5, the same comparison as before), project fp32 / onnxruntime and project int8 / onnxruntime
int8 (the project path's own overhead on the same graph), and the int8 speed-up.  The runs are interleaved so that load from other processes on the machine
hits every variant alike.  Input: the real DICOM fixture slice.
"""
from __future__ import annotations

import argparse
import os
import time

from _common import DICOM_SLICES, machine, median, pct

import numpy as np  # noqa: E402


def timed(fn, x) -> float:
    t = time.perf_counter()
    fn(x)
    return (time.perf_counter() - t) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="timed passes per variant (default 60)")
    parser.add_argument("--batch", type=int, default=1, help="slices per pass (default 1)")
    parser.add_argument("--original", type=int, default=3, help="build+load-per-call runs (default 3, 0 skips)")
    parser.add_argument("--no-tf", action="store_true", help="skip the TensorFlow variants")
    args = parser.parse_args()
    print(f"machine: {machine()}")

    from TumorApp.analysis.config import DEFAULT_WEIGHTS
    from TumorApp.analysis.io.loading import load
    from TumorApp.analysis.model.runtime import Segmenter, get_segmenter, inference_threads
    from TumorApp.analysis.slice.preprocess import network_unit, to_network_input

    unit = network_unit(load(DICOM_SLICES[0]))
    x = np.repeat(to_network_input(unit)[None, ..., None].astype(np.float32), args.batch, axis=0)

    t = time.perf_counter()
    segmenter = get_segmenter()
    print(f"project path: backend={segmenter.backend}, {inference_threads()} intra-op threads, "
          f"first get_segmenter() {time.perf_counter() - t:.2f} s (ONNX export and int8 graph cached after the first run)")

    def project(backend: str) -> Segmenter:
        return segmenter if segmenter.backend == backend else Segmenter(DEFAULT_WEIGHTS, backend=backend)

    fp32, int8 = project("onnx"), project("onnx-int8")
    if (fp32.backend, int8.backend) != ("onnx", "onnx-int8"):
        raise SystemExit("an ONNX graph could not be built (see the log above)")
    default = {"onnx": "project fp32", "onnx-int8": "project int8"}.get(segmenter.backend)
    if default is None:
        raise SystemExit(f"the default backend is {segmenter.backend}: unset INFERENCE_BACKEND")

    import onnxruntime as ort

    def plain(path):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda a: session.run(None, {name: a})[0]

    variants = {
        "project fp32": fp32.predict,
        "project int8": int8.predict,
        "onnxruntime": plain(fp32.graph_path),
        "onnxruntime int8": plain(int8.graph_path),
    }
    reference = variants["onnxruntime"](x)
    assert np.abs(variants["project fp32"](x) - reference).max() < 1e-4
    assert np.abs(variants["project int8"](x) - variants["onnxruntime int8"](x)).max() < 1e-4
    print(f"int8 vs fp32 on this input: mean |diff| {np.abs(variants['project int8'](x) - reference).mean():.4f}")

    if not args.no_tf:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import tensorflow as tf

        from TumorApp.analysis.model.network import build_unet, load_weights

        model = build_unet()
        load_weights(model, DEFAULT_WEIGHTS)
        compiled = tf.function(lambda a: model(a, training=False))
        variants["tf.function"] = lambda a: compiled(a).numpy()
        variants["keras model(x)"] = lambda a: np.asarray(model(a, training=False))
        assert np.abs(variants["tf.function"](x) - reference).max() < 1e-4

    for fn in variants.values():  # warm-up
        for _ in range(3):
            fn(x)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.runs):
        for key, fn in variants.items():
            times[key].append(timed(fn, x))

    print(f"\nforward pass, batch {args.batch}, {args.runs} interleaved runs each (ms)")
    print(f"{'variant':<18}{'median':>9}{'p95':>9}{'per slice':>11}")
    for key, values in times.items():
        print(f"{key:<18}{median(values):9.1f}{pct(values, 95):9.1f}{median(values) / args.batch:11.1f}")

    if args.original and not args.no_tf:
        from TumorApp.analysis.model.network import build_unet, load_weights

        def per_call(a):
            m = build_unet()
            load_weights(m, DEFAULT_WEIGHTS)
            return m.predict(a, verbose=0)

        original = [timed(per_call, x) for _ in range(args.original)]
        print(f"{'original':<18}{median(original):9.1f}{max(original):9.1f}{median(original) / args.batch:11.1f}"
              f"   (build + load weights + predict per call, {args.original} runs; p95 column = max)")

    m = {key: median(values) for key, values in times.items()}
    ratio = m[default] / m["onnxruntime"]
    print(f"\nratio project ({default}, the default) / onnxruntime fp32 (medians): {ratio:.2f}  "
          f"(goal <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})")
    print(f"ratio project fp32 / onnxruntime fp32 (same fp32 graph): {m['project fp32'] / m['onnxruntime']:.2f}")
    print(f"ratio project int8 / onnxruntime int8 (same int8 graph): {m['project int8'] / m['onnxruntime int8']:.2f}")
    print(f"int8 speed-up, project fp32 / project int8: {m['project fp32'] / m['project int8']:.2f}x")


if __name__ == "__main__":
    main()
