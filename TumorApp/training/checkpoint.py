"""A training run's checkpoint packed into one file that can be committed, and unpacked to resume
the run in a later session (perhaps on another machine):

    python -m TumorApp.training.checkpoint pack var/train/holdout-01 model/checkpoint/holdout-01.npz
    python -m TumorApp.training.checkpoint unpack model/checkpoint/holdout-01.npz var/train/holdout-01
    python -m TumorApp.training.train ... --out var/train/holdout-01 --checkpoint --resume

The averaged (EMA) weights, the candidate to ship, are kept in float32; the last step's weights,
only needed to go on training, in float16 (half the size; Adam's moments are not kept either, and
are rebuilt within a few hundred steps of the resumed run).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _weights(path: Path) -> list[np.ndarray]:
    from ..analysis.model.network import build_unet, load_weights

    model = build_unet()
    load_weights(model, path)
    return model.get_weights()


def _save(weights: list[np.ndarray], path: Path, meta: dict) -> None:
    from ..analysis.model.network import build_unet, metadata_path, save_weights

    model = build_unet()
    model.set_weights([np.asarray(w, np.float32) for w in weights])
    save_weights(model, path)
    metadata_path(path).write_text(json.dumps(meta, indent=1))


def pack(run: Path | str, out: Path | str) -> Path:
    """`run`'s checkpoint (checkpoint.hdf5, checkpoint_ema.hdf5, their metadata and state) -> one .npz."""
    run, out = Path(run), Path(out)
    raw, ema = _weights(run / "checkpoint.hdf5"), _weights(run / "checkpoint_ema.hdf5")
    arrays = {f"raw_{i}": w.astype(np.float16) for i, w in enumerate(raw)}
    arrays.update({f"ema_{i}": w.astype(np.float32) for i, w in enumerate(ema)})
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, count=len(raw), state=(run / "checkpoint_state.json").read_text(),
                        meta=(run / "checkpoint.json").read_text(), **arrays)
    return out


def unpack(packed: Path | str, run: Path | str) -> Path:
    """The .npz of `pack` -> a run folder that `train --resume` continues."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    with np.load(packed) as d:
        n = int(d["count"])
        state, info = json.loads(str(d["state"])), json.loads(str(d["meta"]))
        _save([d[f"raw_{i}"] for i in range(n)], run / "checkpoint.hdf5", info)
        _save([d[f"ema_{i}"] for i in range(n)], run / "checkpoint_ema.hdf5", info)
    (run / "checkpoint_state.json").write_text(json.dumps(state))
    return run


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("pack", "unpack"))
    p.add_argument("source")
    p.add_argument("target")
    a = p.parse_args(argv)
    print((pack if a.action == "pack" else unpack)(a.source, a.target))


if __name__ == "__main__":
    main()
