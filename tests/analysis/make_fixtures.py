"""Rebuild the analysis test fixtures in tests/fixtures/ from ../shared/data (provenance record).

Run once by hand: .venv/bin/python tests/analysis/make_fixtures.py /work/shared/data
The tests never need the data folder; they use the small files this writes.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "fixtures"


def window8(hu: np.ndarray) -> np.ndarray:
    return np.round((np.clip(hu, -160, 240) + 160) / 400 * 255).astype(np.uint8)


def main(data: Path) -> None:
    OUT.mkdir(exist_ok=True)
    volume = np.load(data / "ircadb-01" / "volume.npz")
    ct, label = volume["ct"], volume["label"]

    # Untouched DICOM slice with a large tumour, and its ground truth (0 bg, 1 liver, 2 tumour).
    shutil.copyfile(data / "ircadb-01" / "dicom" / "image_66.dcm", OUT / "analysis_ircadb01_066.dcm")
    cv2.imwrite(str(OUT / "analysis_ircadb01_066_label.png"), label[66])

    # 16-bit PNG as HU + 1024, tumour slice.
    cv2.imwrite(str(OUT / "analysis_ircadb01_057_hu1024.png"), (ct[57].astype(np.int32) + 1024).clip(0, 65535).astype(np.uint16))
    cv2.imwrite(str(OUT / "analysis_ircadb01_057_label.png"), label[57])

    # RGB JPEG of a W400/L40 display slice.
    grey = window8(ct[103])
    Image.fromarray(np.stack([grey] * 3, -1), "RGB").save(OUT / "analysis_ircadb01_103_w400l40_rgb.jpg", quality=90)
    cv2.imwrite(str(OUT / "analysis_ircadb01_103_label.png"), label[103])

    # Tumour-free slice (liver, no tumour), 8-bit W400/L40 PNG.
    cv2.imwrite(str(OUT / "analysis_ircadb01_105_w400l40.png"), window8(ct[105]))
    cv2.imwrite(str(OUT / "analysis_ircadb01_105_label.png"), label[105])

    # One of the original app's own slices (mirrored, mangled intensities) and its mask
    # (255 liver, 254 tumour).
    shutil.copyfile(data / "seed" / "images" / "440.png", OUT / "analysis_seed_440.png")
    shutil.copyfile(data / "seed" / "mask" / "440.png", OUT / "analysis_seed_440_mask.png")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
