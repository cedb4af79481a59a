"""A whole training campaign in one call, for a lent GPU machine: patient-grouped CV of several
recipes side by side, then each recipe trained on every patient; the CV's best recipe comes back.

Every run (recipe x fold, and recipe x all patients) is its own process, `--parallel` of them at
a time sharing the GPU and the CPU cores (augmentation workers); each is time-boxed.  Fold models are measured
on their held-out patients with the product's path (segment -> post-process -> measure -> stage)
on the training cache's slices (256 px), running the Keras model itself (the machine has no
TensorFlow for the ONNX export).  Written to --out: `campaign.json` (every fold's figures, the
choice), and for the chosen recipe `fold<i>.npz` and `final.npz` (weights as float16, in
`model.get_weights()` order) and `check.npz` (the final model's outputs on a few cached slices,
to compare with the exported graph on the CPU).  Runs on any Keras 3 backend:

    KERAS_BACKEND=jax python -m TumorApp.training.campaign --cache cache.npz --out OUT --seconds 300
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .train import RECIPES

ALWAYS_TRAIN = frozenset({"seed", "lits-117"})  # a crop and a mangled export: trained on, never measured
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
HIGHER_IS_BETTER = ("tumour_dice", "liver_dice", "sensitivity", "specificity", "stage_agreement")


class KerasSegmenter:
    """The `SegmenterLike` interface over a Keras model (any backend)."""

    def __init__(self, model):
        self.model = model

    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = np.asarray(batch, dtype=np.float32)
        x = x[..., None] if x.ndim == 3 else x
        return np.asarray(self.model.predict_on_batch(x), dtype=np.float32)


def score(figures: list[dict]) -> float:
    """One number to rank recipes: the mean of the five rates over folds, less the affected-% error / 100."""
    rates = [np.mean([f[k] for f in figures if f[k] is not None] or [0.0]) for k in HIGHER_IS_BETTER]
    mae = np.mean([f["affected_mae"] for f in figures if f["affected_mae"] is not None] or [100.0])
    return float(np.mean(rates) - mae / 100.0)


def run_job(a) -> None:
    """One training run (a fold, or all patients) and, for a fold, its held-out figures."""
    from .cv import evaluate_patients, make_folds, summarise, without_others
    from .dataset import load_patients
    from .train import train

    recipe = RECIPES[a.recipe]
    patients = load_patients("", cache=a.cache)
    folds = make_folds(patients, a.k, 0, ALWAYS_TRAIN)
    held = sorted(pid for pid, f in folds.items() if f == a.fold) if a.fold >= 0 else []
    work = Path(a.work) / f"{a.recipe}-{'final' if a.fold < 0 else f'fold{a.fold + 1}'}"
    kept = {}
    started = time.time()
    log = lambda e, n, logs: print(f"[{work.name}] {time.time() - started:.0f} s epoch {e} "
                                   + " ".join(f"{k} {v:.3f}" for k, v in logs.items()), flush=True)
    meta = train("", str(work), epochs=10_000, samples_per_epoch=a.views_per_epoch, batch_size=a.batch_size,
                 seed=1234 + max(a.fold, 0), cache=a.cache, max_seconds=a.seconds, verbose=0,
                 workers=a.workers, exclude_ids=held, progress=log, recipe=recipe,
                 weights_hook=lambda m: kept.setdefault("model", m))
    model = kept["model"]
    np.savez(work / "weights.npz", *[w.astype(np.float16) for w in model.get_weights()])
    result = {"recipe": a.recipe, "fold": a.fold, "held_out": held, "epochs": meta["epochs"],
              "views": meta["epochs"] * a.views_per_epoch, "train_seconds": meta["train_seconds"],
              "history": meta["history"]}
    if held:
        native = without_others(patients, set(held))
        results = evaluate_patients(native, KerasSegmenter(model), thresholds=THRESHOLDS, batch_size=64,
                                    window=recipe.window)
        result["figures"] = {str(t): summarise(r) for t, r in results.items()}
    else:
        # the final model's outputs on a few slices, to check the exported graph against on the CPU
        from .augment import display_scale
        from ..analysis.slice.preprocess import to_network_input

        src = next(p for p in patients if p.name == "ircadb-01") if any(
            p.name == "ircadb-01" for p in patients) else patients[0]
        idx = np.linspace(0, len(src.labels) - 1, 8).astype(int)
        x = np.stack([to_network_input(display_scale(src, int(i), window=recipe.window)) for i in idx])
        np.savez(work / "check.npz", source=src.name, index=idx, x=x.astype(np.float32),
                 y=KerasSegmenter(model).predict(x).astype(np.float16))
    (work / "result.json").write_text(json.dumps(result))


def run_all(a) -> None:
    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    jobs = [(r, f) for r in a.recipes for f in list(range(a.k)) + [-1]]
    # Twelve processes compiling and autotuning at once on one GPU spent most of a 330 s budget
    # before their first epoch (model card): at most `parallel` runs at a time, no autotuning.
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false", PYTHONUNBUFFERED="1",
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " --xla_gpu_autotune_level=0").strip())
    started = time.time()
    codes, running = {}, []
    with open(out / "campaign.log", "a") as log:
        for r, f in jobs:
            while len(running) >= a.parallel:
                time.sleep(1)
                for job, proc in list(running):
                    if proc.poll() is not None:
                        codes[job] = proc.returncode
                        running.remove((job, proc))
            cmd = [sys.executable, "-m", "TumorApp.training.campaign", "--job", "--recipe", r, "--fold", str(f),
                   "--cache", a.cache, "--work", str(work), "--k", str(a.k), "--seconds", str(a.seconds),
                   "--views-per-epoch", str(a.views_per_epoch), "--batch-size", str(a.batch_size),
                   "--workers", str(a.workers)]
            running.append(((r, f), subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)))
        codes.update({job: proc.wait() for job, proc in running})
    summary = {"k": a.k, "seconds_per_run": a.seconds, "batch_size": a.batch_size,
               "wall_seconds": round(time.time() - started, 1), "exit_codes": {f"{r}:{f}": c for (r, f), c in codes.items()},
               "recipes": {r: asdict(RECIPES[r]) for r in a.recipes}, "runs": {}}
    for r, f in jobs:
        path = work / f"{r}-{'final' if f < 0 else f'fold{f + 1}'}" / "result.json"
        if path.is_file():
            summary["runs"][f"{r}:{f}"] = json.loads(path.read_text())
    scores = {}
    for r in a.recipes:
        figures = [summary["runs"].get(f"{r}:{f}", {}).get("figures", {}).get("0.5") for f in range(a.k)]
        if all(figures):
            scores[r] = score(figures)
    summary["scores"] = scores
    chosen = max(scores, key=scores.get) if scores else None
    summary["chosen"] = chosen
    (out / "campaign.json").write_text(json.dumps(summary, indent=1))
    if chosen:
        for f in range(a.k):
            src = work / f"{chosen}-fold{f + 1}" / "weights.npz"
            if src.is_file():
                (out / f"fold{f + 1}.npz").write_bytes(src.read_bytes())
        for name, target in (("weights.npz", "final.npz"), ("check.npz", "check.npz")):
            src = work / f"{chosen}-final" / name
            if src.is_file():
                (out / target).write_bytes(src.read_bytes())
    print(json.dumps({"scores": scores, "chosen": chosen, "wall_seconds": summary["wall_seconds"],
                      "exit_codes": summary["exit_codes"]}))


def npz_to_hdf5(npz: Path | str, out: Path | str, meta: dict) -> Path:
    """Weights sent back as float16 .npz -> the float32 HDF5 the product loads, with metadata."""
    from ..analysis.model.network import build_unet, metadata_path, save_weights

    d = np.load(npz)
    model = build_unet()
    model.set_weights([d[f"arr_{i}"].astype(np.float32) for i in range(len(d.files))])
    save_weights(model, out)
    metadata_path(out).write_text(json.dumps(meta, indent=1))
    return Path(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", required=True, help="training slices (.npz from dataset.save_cache)")
    p.add_argument("--out", default="campaign-out")
    p.add_argument("--work", default="/tmp/campaign")
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--seconds", type=float, default=300.0, help="training time of each run")
    p.add_argument("--views-per-epoch", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=2, help="augmentation processes per run")
    p.add_argument("--parallel", type=int, default=4, help="runs at a time (they share the GPU)")
    p.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--recipe", default=None, help=argparse.SUPPRESS)
    p.add_argument("--fold", type=int, default=-1, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.recipes = [r for r in a.recipes.split(",") if r]
    if a.job:
        run_job(a)
    else:
        run_all(a)


if __name__ == "__main__":
    main()
