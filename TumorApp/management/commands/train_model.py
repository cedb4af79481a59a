"""manage.py train_model: train the dilated U-Net on a patient-level split."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from TumorApp.analysis.config import REPO_ROOT
from TumorApp.training.dataset import PATIENTS


class Command(BaseCommand):
    help = ("Train the liver/tumour network on ../shared/data, leaving out the --holdout patient(s) "
            "(default: ircadb-01, as the shipped weights). Writes <out>/cnn_weights.hdf5, its "
            ".json metadata and a training-curve PNG.")

    def add_arguments(self, parser):
        parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"))
        parser.add_argument("--out", default="model/")
        parser.add_argument("--holdout", action="append", choices=PATIENTS,
                            help="patient kept out of training (repeatable); default ircadb-01")
        parser.add_argument("--all-patients", action="store_true", help="train on every patient")
        parser.add_argument("--epochs", type=int, default=17)
        parser.add_argument("--samples-per-epoch", type=int, default=4096)
        parser.add_argument("--batch-size", type=int, default=16)
        parser.add_argument("--seed", type=int, default=1234)
        parser.add_argument("--max-seconds", type=float, default=None)
        parser.add_argument("--workers", type=int, default=0, help="augmentation processes")
        parser.add_argument("--init-weights", default=None,
                            help="start from these weights instead of random ones (fine-tuning)")
        parser.add_argument("--synthetic-lesions", type=float, default=0.0,
                            help="chance (0-1) that an HU training slice gets synthetic lesions painted "
                                 "into its liver (TumorApp/training/lesions.py)")

    def handle(self, *args, **o):
        from TumorApp.training.train import train

        holdout = [] if o["all_patients"] else (o["holdout"] or ["ircadb-01"])
        meta = train(o["data"], o["out"], holdout, epochs=o["epochs"],
                     samples_per_epoch=o["samples_per_epoch"], batch_size=o["batch_size"],
                     seed=o["seed"], max_seconds=o["max_seconds"], workers=o["workers"],
                     init_weights=o["init_weights"], synthetic_lesions=o["synthetic_lesions"],
                     verbose=1 if o["verbosity"] else 0)
        self.stdout.write(json.dumps({k: v for k, v in meta.items() if k != "history"}, indent=1))
