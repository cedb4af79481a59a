"""manage.py evaluate_model: held-out figures of the weights, printed and written to the model card."""
from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from TumorApp.analysis.config import DEFAULT_WEIGHTS, REPO_ROOT
from TumorApp.training.dataset import PATIENTS

CARD = REPO_ROOT / "model" / "model_card.md"
BEGIN, END = "<!-- evaluate_model:begin -->", "<!-- evaluate_model:end -->"
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
    help = ("Leave-one-patient-out figures of --weights on the --holdout patient (refused if the "
            "weights were trained on it); with --write-card, written into model/model_card.md.")

    def add_arguments(self, parser):
        parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"))
        parser.add_argument("--holdout", required=True, choices=PATIENTS)
        parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
        parser.add_argument("--write-card", action="store_true", help="update model/model_card.md")

    def handle(self, *args, **o):
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
        picture = REPO_ROOT / "model" / f"confusion_{o['holdout']}.png"
        plot_confusion(product, picture, f"held-out {o['holdout']}: tumour on slice")
        table = self._table(o["holdout"], product, runs)
        self.stdout.write(table)
        self.stdout.write(json.dumps(runs, indent=1, default=str))
        if o["write_card"]:
            self._write_card(o["holdout"], table + f"\n![confusion matrix]({picture.name})\n")

    def _uploads(self, root: Path, weights: str, evaluate_uploads) -> dict:
        """The 8 untouched DICOM files, and the same slices exported as W400/L40 8-bit PNG."""
        import cv2

        from TumorApp.analysis.preprocess import to_uint8, window_hu

        volume = np.load(root / "volume.npz")
        labels_all, ct_all = volume["label"], volume["ct"]
        files = sorted((root / "dicom").glob("image_*.dcm"), key=lambda p: int(p.stem.split("_")[1]))
        index = [int(p.stem.split("_")[1]) for p in files]
        labels = [labels_all[i] for i in index]
        with tempfile.TemporaryDirectory() as tmp:
            pngs = []
            for i in index:
                png = Path(tmp) / f"image_{i}.png"
                cv2.imwrite(str(png), to_uint8(window_hu(ct_all[i])))
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
