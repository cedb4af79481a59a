"""manage.py evaluate_model: patient-grouped cross-validation (--cv), or one held-out patient's
figures for a weights file; printed, and written to the model card with --write-card."""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from TumorApp.analysis.config import BASE_WEIGHTS, DEFAULT_WEIGHTS, REPO_ROOT
from TumorApp.training.dataset import PATIENTS

CARD = REPO_ROOT / "model" / "model_card.md"
BEGIN, END = "<!-- evaluate_model:begin -->", "<!-- evaluate_model:end -->"
CV_BEGIN, CV_END = "<!-- cv:begin -->", "<!-- cv:end -->"
# Issue 9's goals for the six figures ("this issue" column); the last is an upper bound.
GOALS = {"tumour_dice": 0.50, "liver_dice": 0.90, "sensitivity": 0.85, "specificity": 0.90,
         "stage_agreement": 0.70, "affected_mae": 10.0}
ROWS = [("tumour Dice, mean over tumour slices", "tumour_dice_mean"),
        ("tumour Dice, pooled over tumour slices", "tumour_dice_pooled"),
        ("liver Dice, mean over liver slices", "liver_dice_mean"),
        ("liver Dice, pooled", "liver_dice_pooled"),
        ("slice detection sensitivity", "sensitivity"),
        ("slice detection specificity", "specificity"),
        ("specificity on tumour-free slices with liver", "specificity_liver_slices"),
        ("slice detection ROC AUC", "roc_auc")]


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


class Command(BaseCommand):
    help = ("--cv: patient-grouped cross-validation of the training recipe (a model per fold, trained "
            "without the fold's patients and measured on them). --holdout: figures of --weights on "
            "one whole patient (refused if the weights were trained on it). --write-card writes "
            "the figures into model/model_card.md.")

    def add_arguments(self, parser):
        parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"))
        parser.add_argument("--holdout", choices=PATIENTS)
        parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
        parser.add_argument("--write-card", action="store_true", help="update model/model_card.md")
        cv = parser.add_argument_group("cross-validation")
        cv.add_argument("--cv", action="store_true", help="run the patient-grouped cross-validation")
        cv.add_argument("--folds", type=int, default=3)
        cv.add_argument("--fold-seed", type=int, default=0)
        cv.add_argument("--out", default=str(REPO_ROOT / "var" / "cv"),
                        help="fold weights and figures (resumable: existing folds are reused)")
        cv.add_argument("--epochs", type=int, default=2)
        cv.add_argument("--samples-per-epoch", type=int, default=400)
        cv.add_argument("--batch-size", type=int, default=8)
        cv.add_argument("--init-weights", default=str(BASE_WEIGHTS),
                        help="every fold fine-tunes from these; the patients they were trained on "
                             "are trained on in every fold and measured in none ('' for random init)")
        cv.add_argument("--cache", default=None, help="training slices cache (.npz from dataset.save_cache)")
        cv.add_argument("--recipe", default=None, help="training recipe of the folds (train.RECIPES; default "
                                                       "train.DEFAULT_RECIPE)")
        cv.add_argument("--backend", default="onnx", help="inference backend the folds are measured with "
                                                           "(runtime.BACKENDS)")
        cv.add_argument("--learning-rate", type=float, default=1e-4, help="Adam's starting rate of the folds")
        cv.add_argument("--always-train", default="seed,lits-117",
                        help="comma-separated sources trained in every fold and measured in none (default: "
                             "seed, a mangled export, and lits-117, a crop; '' for the sources the "
                             "--init-weights were trained on)")
        cv.add_argument("--thresholds", default="0.3,0.4,0.5,0.6,0.7",
                        help="tumour thresholds to compare (post-processing only)")
        cv.add_argument("--baseline", default=None,
                        help="also measure these weights on the same folds (e.g. the previous model)")

    def handle(self, *args, **o):
        if o["cv"]:
            return self._cv(o)
        if not o["holdout"]:
            raise CommandError("give --cv or --holdout PATIENT")
        from TumorApp.training.evaluate import (TrainedOnHoldout, evaluate, evaluate_uploads,
                                                plot_confusion)

        try:
            runs = {"whole slice + liver-crop pass (product)": evaluate(o["data"], o["holdout"], o["weights"]),
                    "whole slice only": evaluate(o["data"], o["holdout"], o["weights"], second_pass=False)}
        except TrainedOnHoldout as exc:
            raise CommandError(str(exc)) from exc
        if o["holdout"] == "ircadb-01":
            runs.update(self._uploads(Path(o["data"]) / "ircadb-01", o["weights"], evaluate_uploads))
        product = runs["whole slice + liver-crop pass (product)"]
        # The committed picture in model/ changes only with the card; otherwise it goes to var/.
        folder = REPO_ROOT / "model" if o["write_card"] else Path(settings.VAR_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        picture = folder / f"confusion_{o['holdout']}.png"
        plot_confusion(product, picture, f"held-out {o['holdout']}: tumour on slice")
        self.stdout.write(f"confusion matrix: {picture}")
        table = self._table(o["holdout"], product, runs)
        self.stdout.write(table)
        self.stdout.write(json.dumps(runs, indent=1, default=str))
        if o["write_card"]:
            self._write_card(o["holdout"], table + f"\n![confusion matrix]({picture.name})\n")

    def _uploads(self, root: Path, weights: str, evaluate_uploads) -> dict:
        """The 8 untouched DICOM files, and the same slices exported as W400/L40 8-bit PNG."""
        import cv2

        from TumorApp.analysis.slice.preprocess import DISPLAY_WINDOW, to_uint8, window_hu

        volume = np.load(root / "volume.npz")
        labels_all, ct_all = volume["label"], volume["ct"]
        files = sorted((root / "dicom").glob("image_*.dcm"), key=lambda p: int(p.stem.split("_")[1]))
        index = [int(p.stem.split("_")[1]) for p in files]
        labels = [labels_all[i] for i in index]
        with tempfile.TemporaryDirectory() as tmp:
            pngs = []
            for i in index:
                png = Path(tmp) / f"image_{i}.png"
                cv2.imwrite(str(png), to_uint8(window_hu(ct_all[i], *DISPLAY_WINDOW)))
                pngs.append(png)
            return {f"{len(files)} DICOM uploads (analyze)": evaluate_uploads(files, labels, weights),
                    f"same {len(files)} slices as W400/L40 PNG (analyze)": evaluate_uploads(pngs, labels, weights)}

    def _table(self, holdout: str, product: dict, runs: dict) -> str:
        names = list(runs)
        lines = [f"Held-out patient: **{holdout}** (weights trained on {', '.join(product['trained_on'])}); "
                 f"{product['slices']} slices, {product['tumour_slices']} with tumour, "
                 f"{product['liver_slices']} with liver.", "",
                 "| figure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for label, key in ROWS:
            lines.append(f"| {label} | " + " | ".join(_fmt(runs[n].get(key)) for n in names) + " |")
        lines.append("| slices (tumour / all) | " + " | ".join(
            f"{runs[n]['tumour_slices']} / {runs[n]['slices']}" for n in names) + " |")
        return "\n".join(lines) + "\n"

    def _write_card(self, holdout: str, block: str) -> None:
        text = CARD.read_text() if CARD.is_file() else f"# Model card\n\n{BEGIN}\n{END}\n"
        section = f"{BEGIN}\n{block}{END}"
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: section, text, flags=re.S)
        CARD.write_text(text)
        self.stdout.write(f"wrote {CARD}")


    def _cv(self, o):
        from TumorApp.analysis.model.network import weights_metadata
        from TumorApp.training.cv import run_cv

        init = o["init_weights"] or None
        from dataclasses import replace

        from TumorApp.training.train import DEFAULT_RECIPE, RECIPES

        always = frozenset(weights_metadata(init).get("trained_on", [])) if init else frozenset()
        if o["always_train"]:
            always = frozenset(n for n in o["always_train"].split(",") if n)
        train_kwargs = dict(epochs=o["epochs"], samples_per_epoch=o["samples_per_epoch"],
                            batch_size=o["batch_size"], init_weights=init, cache=o["cache"])
        name = o["recipe"] or DEFAULT_RECIPE
        if name not in RECIPES:
            raise CommandError(f"--recipe must be one of {', '.join(sorted(RECIPES))}")
        train_kwargs["recipe"] = replace(RECIPES[name], learning_rate=o["learning_rate"])
        thresholds = tuple(float(t) for t in o["thresholds"].split(","))
        summary = run_cv(o["data"], o["out"], k=o["folds"], seed=o["fold_seed"], train_kwargs=train_kwargs,
                         thresholds=thresholds, always_train=always, backend=o["backend"],
                         log=lambda m: self.stdout.write(m))
        baseline = None
        if o["baseline"]:
            baseline = self._baseline(o, summary)
        table = cv_table(summary, baseline)
        self.stdout.write(table)
        if o["write_card"]:
            text = CARD.read_text()
            section = f"{CV_BEGIN}\n{table}{CV_END}"
            if CV_BEGIN in text:
                text = re.sub(re.escape(CV_BEGIN) + r".*?" + re.escape(CV_END), lambda _: section, text, flags=re.S)
            else:
                text += "\n" + section + "\n"
            CARD.write_text(text)
            self.stdout.write(f"wrote {CARD}")

    def _baseline(self, o, summary) -> list[dict]:
        """The --baseline weights on each fold's patients (refused if they trained on any of them)."""
        from TumorApp.analysis.config import CONTRACT
        from TumorApp.analysis.model.network import weights_metadata
        from TumorApp.analysis.model.runtime import Segmenter
        from TumorApp.training.cv import evaluate_patients, summarise, without_others
        from TumorApp.training.dataset import load_patients

        meta = weights_metadata(o["baseline"])
        trained = set(meta.get("trained_on_patients") or meta.get("trained_on", []))
        native = load_patients(o["data"], size=None)
        from TumorApp.training.train import ensure_base_weights

        seg = Segmenter(ensure_base_weights(o["baseline"]), backend=summary["backend"])
        out = []
        for f in range(summary["k"]):
            held = {pid for pid, g in summary["assignment"].items() if g == f}
            if held & trained:
                raise CommandError(f"--baseline was trained on fold {f + 1} patients {sorted(held & trained)}")
            res = evaluate_patients(without_others(native, held), seg, thresholds=(CONTRACT.tumor_threshold,))
            out.append(summarise(res[CONTRACT.tumor_threshold]))
        return out


def _cell(v, key) -> str:
    if v is None:
        return "n/a"
    return f"{v:.1f}" if key == "affected_mae" else f"{v:.2f}"


def cv_table(summary: dict, baseline: list[dict] | None = None) -> str:
    """Markdown: the six figures per fold, their mean ± SD and the goal; thresholds compared."""
    from TumorApp.analysis.config import CONTRACT
    from TumorApp.training.cv import FIGURES, mean_sd

    k = summary["k"]
    product = summary["folds"][str(CONTRACT.tumor_threshold)]
    lines = [f"{k}-fold patient-grouped cross-validation (fold seed {summary['seed']}; inference "
             f"{summary['backend']}, tumour threshold {CONTRACT.tumor_threshold}). Patients per fold: "
             + ", ".join(f"{f['patients']}" for f in product)
             + "; slices (tumour / tumour-free / with liver): "
             + ", ".join(f"{f['tumour_slices']}/{f['tumour_free_slices']}/{f['liver_slices']}" for f in product)
             + ". Trained in every fold, measured in none: " + (", ".join(summary["always_train"]) or "-") + ".",
             "",
             "| figure | " + " | ".join(f"fold {i + 1}" for i in range(k)) + " | mean ± SD | goal |",
             "|---|" + "---|" * (k + 2)]
    for key, label in FIGURES:
        m, sd = mean_sd(f[key] for f in product)
        goal = ("≤ " if key == "affected_mae" else "≥ ") + _cell(GOALS[key], key)
        lines.append(f"| {label} | " + " | ".join(_cell(f[key], key) for f in product)
                     + f" | {_cell(m, key)} ± {_cell(sd, key)} | {goal} |")
    lines += ["", "Mean over folds at other tumour thresholds (post-processing only; the network is the same):", "",
              "| tumour threshold | " + " | ".join(label for _, label in FIGURES) + " |",
              "|---|" + "---|" * len(FIGURES)]
    for t in summary["thresholds"]:
        folds = summary["folds"][str(t)]
        lines.append(f"| {t} | " + " | ".join(_cell(mean_sd(f[key] for f in folds)[0], key)
                                               for key, _ in FIGURES) + " |")
    if baseline:
        lines += ["", "The previous weights (trained on seed + lits-117 only) on the same folds:", "",
                  "| figure | " + " | ".join(f"fold {i + 1}" for i in range(k)) + " | mean ± SD |",
                  "|---|" + "---|" * (k + 1)]
        for key, label in FIGURES:
            m, sd = mean_sd(f[key] for f in baseline)
            lines.append(f"| {label} | " + " | ".join(_cell(f[key], key) for f in baseline)
                         + f" | {_cell(m, key)} ± {_cell(sd, key)} |")
    return "\n".join(lines) + "\n"
