"""Train the dilated U-Net on a patient-level split; writes weights, history, curves and metadata.

Runs on any Keras 3 backend (TensorFlow on the CPU here; JAX or TensorFlow on a GPU when
present). Usable without Django: `python -m TumorApp.training.train --data ../shared/data`.
"""
from __future__ import annotations

import argparse
import json
import math
import time
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..analysis.config import CONTRACT
from .augment import CLIP_HU_CHANCE, sample_view, slice_weights
from .dataset import PATIENTS, all_patient_ids, load_patients, without

TUMOUR_LOSS_WEIGHT = 2.0  # the tumour term counts double: it is the small, hard class
# Tversky weights for the tumour channel: missed tumour pixels (FN) cost more than extra ones (FP),
# against the network's habit of outlining only a tumour's dark core.
TVERSKY_FP, TVERSKY_FN = 0.3, 0.7
VIEWS_PER_TASK = 64  # views a worker process makes per task: few tasks, and the pool balances them
# How often each source is drawn (normalised over the sources present).  msd-slices has the most
# patients but mostly unseparated labels; ircadb-07 is the only whole tumour-free patient.
# The seed's intensities are mangled and nearly binary: a small share keeps the product working on
# the original app's pictures without letting them teach what CT looks like.
SOURCE_SHARES = {"seed": 0.03, "ircadb-01": 0.22, "ircadb-07": 0.15, "lits-117": 0.15, "msd-slices": 0.35,
                 "ircadb-png": 0.1}
EMA_MOMENTUM = 0.999  # per step: the averaged weights follow about the last 1,000 batches
LOSS_NAME = (f"liver: soft Dice + BCE; tumour (x{TUMOUR_LOSS_WEIGHT}): Tversky "
             f"(FP {TVERSKY_FP}, FN {TVERSKY_FN}) + BCE, both masked to pixels whose tumour label is known")


def combined_loss(y_true, y_pred):
    """Liver: soft Dice + BCE.  Tumour: Tversky + BCE over the pixels where it is known.

    y_true channels: whole liver, tumour, known (0 inside label 3, where tumour was not
    separated from liver: the tumour output is neither rewarded nor punished there)."""
    from keras import ops

    axes = (0, 1, 2)
    liver_t, liver_p = y_true[..., 0:1], y_pred[..., 0:1]
    tumour_t, tumour_p, known = y_true[..., 1:2], y_pred[..., 1:2], y_true[..., 2:3]
    inter = ops.sum(liver_t * liver_p, axis=axes)
    liver_dice = (2.0 * inter + 1.0) / (ops.sum(liver_t, axis=axes) + ops.sum(liver_p, axis=axes) + 1.0)
    liver_loss = 1.0 - ops.mean(liver_dice) + ops.mean(ops.binary_crossentropy(liver_t, liver_p))

    tp = ops.sum(known * tumour_t * tumour_p)
    fp = ops.sum(known * (1.0 - tumour_t) * tumour_p)
    fn = ops.sum(known * tumour_t * (1.0 - tumour_p))
    tversky = (tp + 1.0) / (tp + TVERSKY_FP * fp + TVERSKY_FN * fn + 1.0)
    eps = 1e-6
    p = ops.clip(tumour_p, eps, 1.0 - eps)
    bce = -(tumour_t * ops.log(p) + (1.0 - tumour_t) * ops.log(1.0 - p))
    tumour_bce = ops.sum(known * bce) / (ops.sum(known) + 1.0)
    tumour_loss = 1.0 - tversky + tumour_bce
    return (liver_loss + TUMOUR_LOSS_WEIGHT * tumour_loss) / (1.0 + TUMOUR_LOSS_WEIGHT)


def _channel_dice(channel: int, name: str):
    """Dice of one output channel at 0.5, over the pixels whose label is known (channel 2)."""
    from keras import ops

    def metric(y_true, y_pred):
        known = y_true[..., 2]
        t, p = y_true[..., channel] * known, ops.cast(y_pred[..., channel] > 0.5, "float32") * known
        return (2.0 * ops.sum(t * p) + 1.0) / (ops.sum(t) + ops.sum(p) + 1.0)

    metric.__name__ = name
    return metric


@dataclass(frozen=True)
class Recipe:
    """What a training run varies, as data (recorded in the weights' metadata)."""

    window: tuple[float, float] = (40.0, 400.0)  # HU (center, width) the network sees; the contract must match
    sampling: str = "source"        # "source": by SOURCE_SHARES; "patient": by patient (PATIENT_POWER); "mixed"
    normal_parenchyma: bool = False  # label-3 parenchyma that is surely not tumour -> label 1 (pseudolabels.py)
    learning_rate: float = 1e-4
    cosine: bool = False            # decay the rate to 5 % over the run (epochs or max_seconds)
    clip_hu_chance: float = CLIP_HU_CHANCE
    synthetic_lesions: float = 0.0
    ema: bool = False               # ship an exponential moving average of the weights (EMA_MOMENTUM)


# The recipes compared.  "source" is the last round's input and sampling (W400/L40, sources drawn
# by fixed shares); "unified" puts every HU input in the 0..255 HU window msd-slices already have,
# draws half its views by patient, and labels the surely-normal parenchyma of label 3 (pseudolabels.py);
# "unified-synthetic" adds synthetic lesions.
RECIPES = {
    "source": Recipe(learning_rate=2e-4, cosine=True),
    "unified": Recipe(window=(127.5, 255.0), sampling="mixed", normal_parenchyma=True,
                      learning_rate=2e-4, cosine=True, clip_hu_chance=0.5),
    # fine-tuning model/base/ at a constant 1e-4: the previous round's shipped recipe (W400/L40) ...
    "base-w400": Recipe(window=(40.0, 400.0), learning_rate=1e-4),
    # ... and the same in the 0..255 HU window: it won the CV against both, and is shipped
    "base-0255": Recipe(window=(127.5, 255.0), learning_rate=1e-4),
    # the same with synthetic lesions painted into a fifth of the HU slices (lesions.py)
    "unified-synthetic": Recipe(window=(127.5, 255.0), sampling="mixed", normal_parenchyma=True,
                                learning_rate=2e-4, cosine=True, clip_hu_chance=0.5, synthetic_lesions=0.2),
    # every patient from the first step, long: patients and sources drawn half each, label 3's
    # normal parenchyma, synthetic lesions up to 100 mm in a third of the HU slices, EMA weights
    "all-patients": Recipe(window=(127.5, 255.0), sampling="mixed", normal_parenchyma=True,
                           learning_rate=2e-4, cosine=True, clip_hu_chance=0.4, synthetic_lesions=0.3, ema=True),
}
DEFAULT_RECIPE = "base-0255"  # the shipped recipe: it won the CV on the same folds (model card)

# With sampling="patient" a patient is drawn with weight (its slices) ** PATIENT_POWER: the 118
# patients of msd-slices (about 5 slices each) then outweigh the four whole patients about 4 to 1,
# while a whole patient's many slices still count for more than one msd patient's few.
PATIENT_POWER = 0.5


def source_shares(patients) -> np.ndarray:
    shares = np.array([SOURCE_SHARES.get(p.name, 0.2) for p in patients], dtype=float)
    return shares / shares.sum()


def slice_distribution(patients, sampling: str = "source") -> list[np.ndarray]:
    """Per source, the probability of drawing each of its slices (all sources together sum to 1)."""
    within = [slice_weights(p) for p in patients]
    if sampling == "source":
        return [share * w for share, w in zip(source_shares(patients), within)]
    if sampling == "mixed":  # half the views each way: patients count, tumour slices stay frequent
        return [(a + b) / 2 for a, b in zip(slice_distribution(patients, "source"),
                                            slice_distribution(patients, "patient"))]
    if sampling != "patient":
        raise ValueError(f"unknown sampling {sampling!r}")
    counts: dict[str, int] = {}
    for p in patients:
        for pid in p.patient_ids:
            counts[str(pid)] = counts.get(str(pid), 0) + 1
    total = sum(c ** PATIENT_POWER for c in counts.values())
    out = []
    for p, w in zip(patients, within):
        ids = np.array([str(i) for i in p.patient_ids])
        probs = np.zeros(len(w))
        for pid in np.unique(ids):
            mine = ids == pid
            # this patient's share, split over its slices in this source as slice_weights says
            share = counts[pid] ** PATIENT_POWER / total * mine.sum() / counts[pid]
            inside = w[mine] if w[mine].sum() > 0 else np.ones(mine.sum())
            probs[mine] = share * inside / inside.sum()
        out.append(probs)
    return out


def _views(patients, picks, recipe: Recipe = Recipe()):
    """The views for a list of (source index, slice index, seed) picks."""
    views = [sample_view(patients[pi], si, np.random.default_rng(s), synthetic=recipe.synthetic_lesions,
                         window=recipe.window, clip_hu_chance=recipe.clip_hu_chance) for pi, si, s in picks]
    return np.stack([v[0] for v in views])[..., None], np.stack([v[1] for v in views])


def load_sources(data: str, names, cache: str | None, excluded=(), corrections=(),
                 normal_parenchyma: bool = False) -> list:
    """The training sources: `names` from ../shared/data (or the cache), plus folders written by
    `manage.py export_corrections`, less the `excluded` patient ids; with `normal_parenchyma`,
    label 3's surely-normal parenchyma relabelled (pseudolabels.py)."""
    from .corrections import read_corrections
    from .pseudolabels import with_normal_parenchyma

    patients = load_patients(data, names, cache=cache)
    for folder in corrections:
        patients += read_corrections(folder)
    patients = without(patients, set(excluded))
    return [with_normal_parenchyma(p) for p in patients] if normal_parenchyma else patients


@lru_cache(maxsize=2)
def _cached_patients(data: str, names: tuple[str, ...], cache: str | None, excluded: tuple[str, ...] = (),
                     corrections: tuple[str, ...] = (), normal_parenchyma: bool = False):
    return load_sources(data, names, cache, excluded, corrections, normal_parenchyma)


def _views_in_worker(data, names, cache, excluded, corrections, recipe, picks):
    return _views(_cached_patients(data, names, cache, excluded, corrections, recipe.normal_parenchyma),
                  picks, recipe)


def make_epoch(patients, n: int, seed: int, pool=None, source=None, recipe: Recipe = Recipe()):
    """n random views; with a process pool (and `source` = (data, names, cache, excluded,
    corrections)) spread over its workers.  Slices are drawn as `recipe.sampling` says."""
    rng = np.random.default_rng(seed)
    probs = slice_distribution(patients, recipe.sampling)
    flat = np.concatenate(probs)
    owner = np.concatenate([np.full(len(pr), i) for i, pr in enumerate(probs)])
    local = np.concatenate([np.arange(len(pr)) for pr in probs])
    drawn = rng.choice(len(flat), size=n, p=flat / flat.sum())
    picks = [(int(owner[j]), int(local[j]), int(rng.integers(2**31))) for j in drawn]
    if pool is None:
        return _views(patients, picks, recipe)
    chunks = [picks[i:i + VIEWS_PER_TASK] for i in range(0, len(picks), VIEWS_PER_TASK)]
    parts = list(pool.map(_views_in_worker, *zip(*[(*source, recipe, c) for c in chunks])))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def ensure_base_weights(path: Path | str) -> Path:
    """`path`, after restoring it from git history when it is the recipe's missing base weights
    (`config.BASE_WEIGHTS`, the model shipped at `BASE_WEIGHTS_COMMIT`); other missing files raise."""
    import subprocess

    from ..analysis.config import BASE_WEIGHTS, BASE_WEIGHTS_COMMIT, REPO_ROOT

    path = Path(path)
    if path.is_file():
        return path
    if path.resolve() != BASE_WEIGHTS.resolve():
        raise FileNotFoundError(f"initial weights not found: {path}")
    shown = subprocess.run(["git", "show", f"{BASE_WEIGHTS_COMMIT}:model/cnn_weights.hdf5"], cwd=REPO_ROOT,
                           capture_output=True)
    if shown.returncode != 0:
        raise FileNotFoundError(f"{path} is missing and commit {BASE_WEIGHTS_COMMIT[:7]} is not in this "
                                f"clone's history ({shown.stderr.decode(errors='replace').strip()}); fetch "
                                "the full history or pass --init-weights")
    path.write_bytes(shown.stdout)
    return path


def _views_before(init_weights) -> int:
    """Views the initial weights had already been trained on (their metadata's `views_total`)."""
    from ..analysis.model.network import weights_metadata

    if not init_weights or not Path(init_weights).is_file():
        return 0
    meta = weights_metadata(init_weights)
    return int(meta.get("views_total", meta.get("epochs", 0) * meta.get("samples_per_epoch", 0)))


def plot_curves(history: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(history["loss"], label="loss (dice + BCE)")
    a.set_xlabel("epoch"); a.set_title("training loss"); a.legend()
    b.plot(history["liver_dice"], label="liver Dice")
    b.plot(history["tumour_dice"], label="tumour Dice")
    b.set_xlabel("epoch"); b.set_ylim(0, 1); b.set_title("training Dice (augmented views)"); b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class WeightAverage:
    """An exponential moving average of every weight, updated after each training batch (a Keras
    callback built by `callback()`): the averaged weights are smoother than the last step's and
    are the ones saved.  Kept in NumPy so it works the same on every backend and checkpoints as
    plain weights."""

    def __init__(self, weights: list[np.ndarray], steps: int = 0, momentum: float = EMA_MOMENTUM):
        self.weights = [np.array(w, dtype=np.float32) for w in weights]
        self.steps = steps
        self.momentum = momentum

    def update(self, weights: list[np.ndarray]) -> None:
        self.steps += 1
        m = min(self.momentum, (1.0 + self.steps) / (10.0 + self.steps))  # short memory at first
        for avg, w in zip(self.weights, weights):
            avg *= m
            avg += (1.0 - m) * w

    def callback(self, model):
        import keras

        average = self

        class _Update(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                average.update(model.get_weights())

        return _Update()


def _save_checkpoint(model, average: WeightAverage | None, out_dir: Path, state: dict, meta: dict) -> None:
    """The run so far, written so a killed or finished session can be resumed (`resume=True`):
    `checkpoint.hdf5` the last step's weights, `checkpoint_ema.hdf5` the averaged ones (what an
    evaluation of the run so far should load; the training metadata sits beside both), and
    `checkpoint_state.json` the epochs done, the EMA's step count and the history."""
    from ..analysis.model.network import metadata_path, save_weights

    save_weights(model, out_dir / "checkpoint.tmp.hdf5")
    (out_dir / "checkpoint.tmp.hdf5").replace(out_dir / "checkpoint.hdf5")
    metadata_path(out_dir / "checkpoint.hdf5").write_text(json.dumps(meta, indent=1))
    if average is not None:
        raw = model.get_weights()
        model.set_weights(average.weights)
        save_weights(model, out_dir / "checkpoint_ema.tmp.hdf5")
        model.set_weights(raw)
        (out_dir / "checkpoint_ema.tmp.hdf5").replace(out_dir / "checkpoint_ema.hdf5")
        metadata_path(out_dir / "checkpoint_ema.hdf5").write_text(json.dumps(meta, indent=1))
    (out_dir / "checkpoint_state.json").write_text(json.dumps(state))


def train(data: str, out: str, holdout: list[str] | None = None, epochs: int = 40,
          samples_per_epoch: int = 1024, batch_size: int = 16, seed: int = 1234,
          cache: str | None = None, weights_name: str = "cnn_weights.hdf5",
          init_weights: str | None = None, max_seconds: float | None = None, verbose: int = 1,
          workers: int = 0, synthetic_lesions: float = 0.0, exclude_ids: list[str] | None = None,
          corrections: list[str] | None = None, progress=None, recipe: Recipe | None = None,
          weights_hook=None, checkpoint: bool = False, resume: bool = False) -> dict:
    """Train on every patient of ../shared/data except the `holdout` sources and the
    `exclude_ids` patients (e.g. a cross-validation fold), plus the `corrections` folders
    (`manage.py export_corrections`); `progress(epoch, epochs, logs)` is called after each epoch.
    `recipe` says what varies (window, sampling, pseudo-labels, learning rate); `weights_hook(model)`
    is called before the weights are written (e.g. to keep a copy elsewhere).  `resume` continues
    the run whose checkpoint is in `out` (same arguments) from its last finished epoch."""
    import keras

    from ..analysis.model.network import build_unet, load_weights, metadata_path, save_weights

    keras.utils.set_random_seed(seed)
    holdout = list(holdout or [])
    names = [n for n in PATIENTS if n not in holdout]
    excluded = tuple(sorted(exclude_ids or []))
    corrections = tuple(str(c) for c in corrections or [])
    recipe = recipe or RECIPES[DEFAULT_RECIPE]
    if synthetic_lesions:
        recipe = replace(recipe, synthetic_lesions=synthetic_lesions)
    patients = load_sources(data, names, cache, excluded, corrections, recipe.normal_parenchyma)
    names = [p.name for p in patients if p.name in PATIENTS]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)

    model = build_unet()
    if init_weights:
        load_weights(model, ensure_base_weights(init_weights))
    model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate), loss=combined_loss,
                  metrics=[_channel_dice(0, "liver_dice"), _channel_dice(1, "tumour_dice")])
    history = {"loss": [], "liver_dice": [], "tumour_dice": []}
    first_epoch, seconds_before, ema_steps = 0, 0.0, 0
    if resume and (out_dir / "checkpoint_state.json").is_file():
        state = json.loads((out_dir / "checkpoint_state.json").read_text())
        load_weights(model, out_dir / "checkpoint.hdf5")
        history, first_epoch = state["history"], state["epochs"]
        seconds_before, ema_steps = state["train_seconds"], state.get("ema_steps", 0)
    average = None
    if recipe.ema:  # the average starts at the current weights, or at the checkpoint's average
        raw = model.get_weights()
        if ema_steps:
            load_weights(model, out_dir / "checkpoint_ema.hdf5")
        average = WeightAverage(model.get_weights(), ema_steps)
        model.set_weights(raw)
    callbacks = [average.callback(model)] if average else []
    started = time.time() - seconds_before
    # Augmentation is CPU-bound Python: spread it over worker processes (spawned, so they never
    # inherit the backend's threads) and prepare the next epoch while the current one trains.
    pool = (ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            if workers > 1 else None)
    source = (data, tuple(names), cache, excluded, corrections)

    def describe(epochs_done: int) -> dict:
        return {
            "trained_on": names, "held_out": holdout, "excluded_patients": list(excluded),
            "corrections": list(corrections),
            "trained_on_patients": all_patient_ids(patients), "epochs": epochs_done,
            "samples_per_epoch": samples_per_epoch, "batch_size": batch_size, "seed": seed,
            "optimizer": f"Adam {recipe.learning_rate:g}" + (", cosine to 5 %" if recipe.cosine else "")
                         + (f", weights averaged (EMA {EMA_MOMENTUM})" if average else ""),
            "loss": LOSS_NAME, "source_shares": SOURCE_SHARES, "recipe": asdict(recipe),
            "input_window": list(recipe.window), "synthetic_lesions": recipe.synthetic_lesions,
            "init_weights": str(init_weights) if init_weights else None,
            "input_size": CONTRACT.input_size, "backend": keras.backend.backend(),
            "train_seconds": round(time.time() - started, 1), "history": history,
            "views": epochs_done * samples_per_epoch,
            "views_total": epochs_done * samples_per_epoch + _views_before(init_weights),
        }

    with ThreadPoolExecutor(1) as prefetch:
        upcoming = None
        if first_epoch < epochs:
            upcoming = prefetch.submit(make_epoch, patients, samples_per_epoch, seed + first_epoch, pool, source,
                                       recipe)
        for epoch in range(first_epoch, epochs):
            x, y = upcoming.result()
            if epoch + 1 < epochs:
                upcoming = prefetch.submit(make_epoch, patients, samples_per_epoch, seed + epoch + 1,
                                           pool, source, recipe)
            if recipe.cosine:
                done = epoch / epochs
                if max_seconds:
                    done = max(done, (time.time() - started) / max_seconds)
                model.optimizer.learning_rate.assign(
                    recipe.learning_rate * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(done, 1.0)))))
            h = model.fit(x, y, batch_size=batch_size, epochs=epoch + 1, initial_epoch=epoch,
                          shuffle=True, verbose=verbose, callbacks=callbacks)
            for key in history:
                history[key].append(float(h.history[key][-1]))
            if checkpoint:  # survives a killed run: the last finished epoch's weights
                _save_checkpoint(model, average, out_dir,
                                 {"epochs": epoch + 1, "history": history, "train_seconds": time.time() - started,
                                  "ema_steps": average.steps if average else 0}, describe(epoch + 1))
            if progress:
                progress(epoch + 1, epochs, {k: v[-1] for k, v in history.items()})
            if max_seconds and time.time() - started > max_seconds:
                break  # a time-boxed run (e.g. on a lent GPU): the epochs actually run are recorded
    if pool:
        pool.shutdown(cancel_futures=True)
    if average:
        model.set_weights(average.weights)  # the averaged weights are the run's result
    if weights_hook:
        weights_hook(model)
    save_weights(model, out_dir / weights_name)
    meta = describe(len(history["loss"]))
    stem = Path(weights_name).name.split(".")[0]
    metadata_path(out_dir / weights_name).write_text(json.dumps(meta, indent=1))
    plot_curves(history, out_dir / f"{stem}_curves.png")
    return meta


def _print_progress(started: float):
    def show(epoch: int, epochs: int, logs: dict) -> None:
        print(f"epoch {epoch}/{epochs} {time.time() - started:.0f} s "
              + " ".join(f"{k} {v:.3f}" for k, v in logs.items()), flush=True)
    return show


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--cache", default=None, help="an .npz made by dataset.save_cache, read instead of --data")
    p.add_argument("--out", default="model")
    p.add_argument("--holdout", action="append", default=[], choices=PATIENTS)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--samples-per-epoch", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--weights-name", default="cnn_weights.hdf5")
    p.add_argument("--max-seconds", type=float, default=None, help="stop after the epoch that passes this")
    p.add_argument("--workers", type=int, default=0, help="augmentation processes (0: in the main process)")
    p.add_argument("--init-weights", default=None, help="start from these weights (fine-tuning)")
    p.add_argument("--synthetic-lesions", type=float, default=0.0,
                   help="chance that an HU slice gets synthetic lesions (lesions.py)")
    p.add_argument("--recipe", default=DEFAULT_RECIPE, choices=sorted(RECIPES))
    p.add_argument("--learning-rate", type=float, default=None, help="overrides the recipe's")
    p.add_argument("--checkpoint", action="store_true", help="write checkpoint.hdf5 after every epoch")
    p.add_argument("--resume", action="store_true", help="continue the run checkpointed in --out")
    p.add_argument("--verbose", type=int, default=1, help="Keras's progress output (0: one line per epoch)")
    p.add_argument("--exclude-patient", action="append", default=[], help="patient id kept out (repeatable)")
    a = p.parse_args(argv)
    recipe = RECIPES[a.recipe]
    if a.learning_rate:
        recipe = replace(recipe, learning_rate=a.learning_rate)
    meta = train(a.data, a.out, a.holdout, a.epochs, a.samples_per_epoch, a.batch_size, a.seed,
                 a.cache, a.weights_name, init_weights=a.init_weights, max_seconds=a.max_seconds,
                 workers=a.workers, synthetic_lesions=a.synthetic_lesions, recipe=recipe,
                 checkpoint=a.checkpoint, exclude_ids=a.exclude_patient, resume=a.resume, verbose=a.verbose,
                 progress=_print_progress(time.time()))
    print(json.dumps({k: v for k, v in meta.items() if k != "history"}))


if __name__ == "__main__":
    main()
