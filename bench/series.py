"""A 100-slice CT series end to end (DICOM files -> 3-D lesions -> DICOM-SEG), per inference backend.

    .venv/bin/python bench/series.py [--slices 100] [--rounds 2] [--batch 8] [--data ../shared/data]
                                     [--weights W.hdf5]

The series: 100 consecutive real slices of 3D-IRCADb-01 written as DICOM files (the fixture
slice's header, its own pixels and positions) when `--data` has `ircadb-01/volume.npz`, else the
two committed fixture slices repeated.  Each backend runs `analyze_series` on the files (read,
order, decode, segment batched, post-process, 3-D lesions) and, apart from that total, the
DICOM-SEG export the first download makes; each stage is timed; rounds are interleaved so load from other processes hits every backend alike.
Backends: every one `TumorApp/analysis/model/runtime.py` offers (ONNX Runtime and OpenVINO, each on the
fp32 graph and on its int8 quantisation), through the same `Segmenter` the app uses.  With the
ground-truth labels it also prints each backend's Dice over the volume, so "fastest" is only
taken with accuracy held: pass `--weights` trained with `--holdout ircadb-01` for held-out figures
(the shipped weights were trained on that patient).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import DICOM_SLICES, REPO, machine, median, write_ct_slice

import numpy as np  # noqa: E402


def write_series(out: Path, slices: int, data: Path, patient: str = "ircadb-01") -> np.ndarray | None:
    """DICOM files in `out` (`slices` from the middle of the patient; 0: all of them); returns the
    ground-truth labels (z, y, x) when real data was used."""
    import pydicom
    from pydicom.uid import generate_uid

    npz = data / patient / "volume.npz"
    template = pydicom.dcmread(DICOM_SLICES[0])
    series_uid = generate_uid()
    labels = None
    if npz.is_file():
        volume = np.load(npz)
        slices = slices or volume["ct"].shape[0]
        start = max(0, (volume["ct"].shape[0] - slices) // 2)
        ct = volume["ct"][start:start + slices]
        labels = volume["label"][start:start + slices]
        step = float(volume["spacing"][0])
    else:
        ct = np.stack([pydicom.dcmread(DICOM_SLICES[k % 2]).pixel_array for k in range(slices)]).astype(np.int16)
        step = 1.6
    for k, plane in enumerate(ct):
        write_ct_slice(template, series_uid, k, step, plane, out / f"{k:04d}.dcm")
    return labels


class Counting:
    """A Segmenter that counts the slices it is given (forward passes) and the time inside them."""

    def __init__(self, segmenter):
        self.segmenter, self.passes, self.seconds = segmenter, 0, 0.0

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.passes += len(batch)
        t = time.perf_counter()
        out = self.segmenter.predict(batch)
        self.seconds += time.perf_counter() - t
        return out


def backends(weights: Path, names=None) -> dict[str, object]:
    """Every inference backend of `runtime.py` (or those `names`) that starts here, by name (fallbacks left out)."""
    from TumorApp.analysis.model.runtime import BACKENDS, Segmenter

    found = {}
    for name in names or BACKENDS:
        if name == "tf":
            continue  # the last-resort fallback: several times slower, not a candidate
        segmenter = Segmenter(weights, backend=name)
        if segmenter.backend != name:
            print(f"{name}: not available here (fell back to {segmenter.backend}); "
                  "`pip install openvino` adds the OpenVINO rows")
            continue
        found[name] = segmenter
    return found


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / float(total)


def run_once(folder: Path, network, batch: int, skip: bool, crop: bool) -> tuple[dict[str, float], object]:
    from TumorApp.analysis.series.export import export_for
    from TumorApp.analysis.series.volume import load_series, measure_volume, segment_volume

    times = {}
    t = time.perf_counter()
    volume = load_series(folder, check=True)  # as a job loads: the upload check's slice test included
    times["load"] = time.perf_counter() - t
    t = time.perf_counter()
    counting = Counting(network)
    liver, tumor = segment_volume(volume, counting, batch_size=batch, skip_liverless=skip, second_pass=crop)
    times["passes"] = counting.passes
    times["network"] = counting.seconds  # the forward passes alone: the bound for this series
    times["segment"] = time.perf_counter() - t
    t = time.perf_counter()
    result = measure_volume(volume, liver, tumor)
    times["measure"] = time.perf_counter() - t
    t = time.perf_counter()
    export_for(result.volume, result.label_volume())
    times["export"] = time.perf_counter() - t
    # Upload to result, as the worker does it; the export is made on the first download.
    times["total"] = times["load"] + times["segment"] + times["measure"]
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100, help="from the middle of the patient; 0: all")
    parser.add_argument("--patient", default="ircadb-01", choices=("ircadb-01", "ircadb-07"),
                        help="whole patient of --data to write as the series")
    parser.add_argument("--backends", default=None, help="comma-separated backends (default: every one)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per backend (median reported)")
    parser.add_argument("--batch", type=int, default=8, help="slices per batch (default 8, as the worker)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--weights", type=Path, default=None,
                        help="weights to run (default the shipped ones, which were trained on 3D-IRCADb-01: "
                             "pass weights trained with `--holdout ircadb-01` for held-out Dice)")
    args = parser.parse_args()
    from TumorApp.analysis.config import DEFAULT_WEIGHTS
    from TumorApp.analysis.model.network import weights_metadata
    from TumorApp.analysis.model.runtime import DEFAULT_BACKEND as DEFAULT
    from TumorApp.analysis.model.runtime import inference_threads

    print(f"machine: {machine()}, {inference_threads()} inference threads")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        labels = write_series(folder, args.slices, args.data, args.patient)
        args.slices = len(list(folder.iterdir()))
        print(f"series: {args.slices} slices of {args.patient + ' (real, consecutive)' if labels is not None else 'the fixture slices'}"
              f", {sum(p.stat().st_size for p in folder.iterdir()) / 2**20:.0f} MiB of DICOM")
        weights = args.weights or DEFAULT_WEIGHTS
        meta = weights_metadata(weights)
        held_out = args.patient in meta.get("held_out", []) + meta.get("excluded_patients", [])
        print(f"weights: {weights} ({args.patient + ' held out: Dice below is held-out' if held_out else 'trained on ' + args.patient + ': Dice below is NOT held-out accuracy'})")
        nets = backends(weights, args.backends.split(",") if args.backends else None)
        for net in nets.values():  # warm-up: first-call costs are not per-series costs
            net.predict(np.zeros((2, 128, 128), np.float32))
        # Each backend on the product path (liverless in-between slices skipped, liver-crop pass on),
        # then the default backend on every slice (what the skip saves) and without the crop pass
        # (what the refinement costs and gives), to show where the time goes.
        rows = [(name, net, True, True) for name, net in nets.items()]
        if DEFAULT in nets:
            rows += [(f"{DEFAULT} every slice", nets[DEFAULT], False, True),
                     (f"{DEFAULT} no crop", nets[DEFAULT], True, False)]
        times: dict[str, list[dict]] = {row[0]: [] for row in rows}
        results = {}
        for _ in range(max(1, args.rounds)):
            for name, net, skip, crop in rows:
                t, results[name] = run_once(folder, net, args.batch, skip, crop)
                times[name].append(t)

    print(f"\n{'backend':<22}{'passes':>7}{'slices/s':>9}{'bound/s':>8}{'ratio':>6}{'total s':>9}{'load':>7}"
          f"{'segment':>9}{'net':>6}{'measure':>9}{'export*':>8}"
          + ("   liver Dice  tumour Dice   liver mL  tumour mL" if labels is not None else "   tumour mL")
          + "  lesions  stage")
    for name, runs in times.items():
        med = {k: median([r[k] for r in runs]) for k in runs[0]}
        line = (f"{name:<22}{med['passes']:>7.0f}{args.slices / med['total']:>9.1f}"
                f"{args.slices / med['network']:>8.1f}{med['network'] / med['total']:>6.2f}{med['total']:>9.2f}"
                f"{med['load']:>7.2f}{med['segment']:>9.2f}{med['network']:>6.2f}{med['measure']:>9.2f}{med['export']:>8.2f}")
        res = results[name]
        if labels is not None:
            line += (f"   {dice(res.liver, labels > 0):>10.3f}  {dice(res.tumor, labels == 2):>11.3f}"
                     f"  {res.liver_volume_ml:>9.1f}  {res.tumor_volume_ml:>9.1f}")
        else:
            line += f"   {res.tumor_volume_ml:>9.1f}"
        print(line + f"  {len(res.lesions):>7}  {res.stage or '-':>5}")
    print("slices/s and total: load + segment + measure, what a job takes; bound/s: slices per second of the "
          "forward passes alone (net); ratio: end-to-end over that bound; *export: made on the first download")
    if labels is not None:
        spacing = results[next(iter(results))].volume.spacing_mm
        print(f"ground truth: tumour {(labels == 2).sum() * np.prod(spacing) / 1000:.1f} mL, "
              f"liver {(labels > 0).sum() * np.prod(spacing) / 1000:.1f} mL")


if __name__ == "__main__":
    main()
