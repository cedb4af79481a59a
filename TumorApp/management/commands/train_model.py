"""manage.py train_model: train the dilated U-Net on every patient (or all but some), with progress bars."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from TumorApp.analysis.config import BASE_WEIGHTS, REPO_ROOT
from TumorApp.training.dataset import PATIENTS


class Command(BaseCommand):
    help = ("Train the liver/tumour network on ../shared/data with the recipe the cross-validation "
            "chose (fine-tune model/base/ weights with the masked Tversky loss in the 0..255 HU window; see "
            "the model card). "
            "By default on every patient; --holdout SOURCE or --exclude-patient ID leaves some out. "
            "Writes <out>/cnn_weights.hdf5, its .json metadata and a training-curve PNG.")

    def add_arguments(self, parser):
        parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"))
        parser.add_argument("--cache", default=None, help="read slices from this .npz (dataset.save_cache)")
        parser.add_argument("--out", default="model/")
        parser.add_argument("--holdout", action="append", choices=PATIENTS, default=[],
                            help="data source kept out of training (repeatable)")
        parser.add_argument("--exclude-patient", action="append", default=[],
                            help="patient id kept out of training, e.g. msd-10050 (repeatable)")
        parser.add_argument("--corrections", action="append", default=[],
                            help="also train on a folder written by `manage.py export_corrections` (repeatable)")
        parser.add_argument("--epochs", type=int, default=2)
        parser.add_argument("--samples-per-epoch", type=int, default=400)
        parser.add_argument("--batch-size", type=int, default=8)
        parser.add_argument("--seed", type=int, default=1234)
        parser.add_argument("--max-seconds", type=float, default=None)
        parser.add_argument("--workers", type=int, default=0, help="augmentation processes")
        parser.add_argument("--init-weights", default=str(BASE_WEIGHTS),
                            help="start from these weights ('' for random initialisation)")
        parser.add_argument("--recipe", default=None, help="a recipe of TumorApp/training/train.py RECIPES "
                                                           "(default: the shipped one)")
        parser.add_argument("--learning-rate", type=float, default=1e-4,
                            help="Adam's rate (recipes with cosine=True decay it to 5 %% over the run)")
        parser.add_argument("--checkpoint", action="store_true", help="write checkpoint.hdf5 after every epoch")
        parser.add_argument("--synthetic-lesions", type=float, default=0.0,
                            help="chance (0-1) that an HU training slice gets synthetic lesions painted "
                                 "into its liver (TumorApp/training/lesions.py)")

    @staticmethod
    def _recipe(o):
        from dataclasses import replace

        from django.core.management.base import CommandError

        from TumorApp.training.train import DEFAULT_RECIPE, RECIPES

        name = o["recipe"] or DEFAULT_RECIPE
        if name not in RECIPES:
            raise CommandError(f"--recipe must be one of {', '.join(sorted(RECIPES))}")
        return replace(RECIPES[name], learning_rate=o["learning_rate"])

    def handle(self, *args, **o):
        from TumorApp.training.train import train

        meta = train(o["data"], o["out"], o["holdout"], epochs=o["epochs"],
                     samples_per_epoch=o["samples_per_epoch"], batch_size=o["batch_size"],
                     seed=o["seed"], cache=o["cache"], max_seconds=o["max_seconds"], workers=o["workers"],
                     init_weights=o["init_weights"] or None, synthetic_lesions=o["synthetic_lesions"],
                     exclude_ids=o["exclude_patient"], corrections=o["corrections"],
                     recipe=self._recipe(o), checkpoint=o["checkpoint"],
                     verbose=1 if o["verbosity"] else 0)
        self.stdout.write(json.dumps({k: v for k, v in meta.items()
                                      if k not in ("history", "trained_on_patients")}, indent=1))
