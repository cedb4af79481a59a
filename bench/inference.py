"""Forward-pass time: the project's inference path vs plain ONNX Runtime on the same weights and input.

    .venv/bin/python bench/inference.py [--runs 60] [--batch 1] [--original 3] [--no-tf]

Prints median/p95 per pass for
  project      get_segmenter().predict (what analyze() calls: ORT, lock, thread settings)
  onnxruntime  a plain InferenceSession with default options on the same exported graph
  tf.function  the Keras model wrapped in tf.function (the fallback path), and Keras model(x)
  original     the original app's way: build the network and load the HDF5 per call
and the ratio project / onnxruntime (goal <= 1.5).  The runs are interleaved so that load from
other processes on the machine hits every variant alike.  Input: the real DICOM fixture slice.
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
    from TumorApp.analysis.loading import load
    from TumorApp.analysis.network import get_segmenter, inference_threads
    from TumorApp.analysis.preprocess import to_network_input, to_unit

    unit = to_unit(load(DICOM_SLICES[0]))
    x = np.repeat(to_network_input(unit)[None, ..., None].astype(np.float32), args.batch, axis=0)

    t = time.perf_counter()
    segmenter = get_segmenter()
    print(f"project path: backend={segmenter.backend}, {inference_threads()} intra-op threads, "
          f"first get_segmenter() {time.perf_counter() - t:.2f} s (ONNX export cached after the first run)")

    import onnxruntime as ort

    plain = ort.InferenceSession(str(segmenter.onnx_path), providers=["CPUExecutionProvider"])
    name = plain.get_inputs()[0].name
    variants = {
        "project": segmenter.predict,
        "onnxruntime": lambda a: plain.run(None, {name: a})[0],
    }
    reference = variants["onnxruntime"](x)
    assert np.abs(variants["project"](x) - reference).max() < 1e-4

    if not args.no_tf:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import tensorflow as tf

        from TumorApp.analysis.network import build_unet, load_weights

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
    print(f"{'variant':<16}{'median':>9}{'p95':>9}{'per slice':>11}")
    for key, values in times.items():
        print(f"{key:<16}{median(values):9.1f}{pct(values, 95):9.1f}{median(values) / args.batch:11.1f}")

    if args.original and not args.no_tf:
        from TumorApp.analysis.network import build_unet, load_weights

        def per_call(a):
            m = build_unet()
            load_weights(m, DEFAULT_WEIGHTS)
            return m.predict(a, verbose=0)

        original = [timed(per_call, x) for _ in range(args.original)]
        print(f"{'original':<16}{median(original):9.1f}{max(original):9.1f}{median(original) / args.batch:11.1f}"
              f"   (build + load weights + predict per call, {args.original} runs; p95 column = max)")

    ratio = median(times["project"]) / median(times["onnxruntime"])
    print(f"\nratio project / onnxruntime (medians): {ratio:.2f}  (goal <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
