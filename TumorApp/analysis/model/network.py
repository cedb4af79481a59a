"""The dilated U-Net: its architecture and its weights' I/O (legacy Keras HDF5 and the metadata beside it).

Nothing here runs inference: `graphs.py` exports these weights to ONNX (and `quantize.py` to
int8), `runtime.py` runs the graphs.  Importing this module does not import Keras; building does.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import CONTRACT

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ENCODER_FILTERS = (32, 64, 128, 256)
BOTTLENECK_FILTERS = 512
DILATION = 2
DROPOUT = 0.1


def build_unet(input_size: int = CONTRACT.input_size, channels: int = len(CONTRACT.channels)):
    """The original app's dilated U-Net, with one sigmoid output channel per class."""
    import keras
    from keras import layers

    def block(x, filters: int, name: str):
        x = layers.Conv2D(filters, 3, padding="same", dilation_rate=DILATION, activation="relu",
                          kernel_initializer="he_normal", name=f"{name}_conv1")(x)
        x = layers.Dropout(DROPOUT, name=f"{name}_drop")(x)
        return layers.Conv2D(filters, 3, padding="same", dilation_rate=DILATION, activation="relu",
                             kernel_initializer="he_normal", name=f"{name}_conv2")(x)

    inputs = keras.Input((input_size, input_size, 1), name="ct")
    x, skips = inputs, []
    for i, filters in enumerate(ENCODER_FILTERS):
        x = block(x, filters, f"enc{i}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = block(x, BOTTLENECK_FILTERS, "bottleneck")
    for i, filters in reversed(list(enumerate(ENCODER_FILTERS))):
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"up{i}")(x)
        x = layers.Concatenate(name=f"skip{i}")([x, skips[i]])
        x = block(x, filters, f"dec{i}")
    outputs = layers.Conv2D(channels, 1, activation="sigmoid", name="masks")(x)
    return keras.Model(inputs, outputs, name="dilated_unet")


def save_weights(model, path: Path | str) -> None:
    """Write weights in the legacy Keras HDF5 layout the original `cnn_weights.hdf5` used."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def metadata_path(weights: Path | str) -> Path:
    """`<weights stem>.json` beside the weights: how training made them (patients, epochs, ...)."""
    weights = Path(weights)
    return weights.with_name(weights.name.split(".")[0] + ".json")


def weights_metadata(weights: Path | str) -> dict:
    """The weights' training metadata (`metadata_path`), or {} when there is none."""
    path = metadata_path(weights)
    return json.loads(path.read_text()) if path.is_file() else {}


def load_weights(model, path: Path | str) -> None:
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "r") as f:
        legacy_h5_format.load_weights_from_hdf5_group(f, model)
