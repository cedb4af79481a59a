"""A run's checkpoint packs into one committable file and unpacks into a folder `train --resume` takes:
the averaged weights exactly, the last step's to float16 precision, the state as it was."""
from __future__ import annotations

import json

import numpy as np

from TumorApp.analysis.model.network import build_unet, load_weights, metadata_path, save_weights
from TumorApp.training.checkpoint import pack, unpack


def _weights(path):
    model = build_unet()
    load_weights(model, path)
    return model.get_weights()


def test_pack_then_unpack_gives_the_run_back(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    model = build_unet()
    rng = np.random.default_rng(0)
    raw = [rng.normal(0, 0.05, w.shape).astype(np.float32) for w in model.get_weights()]
    ema = [w * 0.5 for w in raw]
    meta = {"trained_on": ["ircadb-07"], "views_total": 12345}
    for name, weights in (("checkpoint.hdf5", raw), ("checkpoint_ema.hdf5", ema)):
        model.set_weights(weights)
        save_weights(model, run / name)
        metadata_path(run / name).write_text(json.dumps(meta))
    state = {"epochs": 7, "history": {"loss": [0.5] * 7}, "train_seconds": 3000.0, "ema_steps": 448}
    (run / "checkpoint_state.json").write_text(json.dumps(state))

    packed = pack(run, tmp_path / "packed.npz")
    assert packed.stat().st_size < (run / "checkpoint.hdf5").stat().st_size * 1.6
    back = unpack(packed, tmp_path / "back")

    assert json.loads((back / "checkpoint_state.json").read_text()) == state
    assert json.loads(metadata_path(back / "checkpoint_ema.hdf5").read_text()) == meta
    assert all(np.array_equal(a, b) for a, b in zip(_weights(back / "checkpoint_ema.hdf5"), ema))
    assert all(np.allclose(a, b, rtol=1e-3, atol=1e-4) for a, b in zip(_weights(back / "checkpoint.hdf5"), raw))
