"""The dilated U-Net: build it, save/load its weights (legacy Keras HDF5), predict liver and tumour."""
from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import CONTRACT, DEFAULT_WEIGHTS

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


def load_weights(model, path: Path | str) -> None:
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "r") as f:
        legacy_h5_format.load_weights_from_hdf5_group(f, model)


class Segmenter:
    """The network with its weights, built once; `predict` is safe to call from several threads."""

    def __init__(self, weights: Path | str = DEFAULT_WEIGHTS):
        self.weights = Path(weights)
        if not self.weights.is_file():
            raise FileNotFoundError(f"model weights not found: {self.weights}")
        self.model = build_unet()
        load_weights(self.model, self.weights)
        self._lock = threading.Lock()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(N, S, S) or (N, S, S, 1) floats in [0, 1] -> (N, S, S, channels) probabilities."""
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        with self._lock:
            y = self.model(x, training=False)
        return np.asarray(y)


@lru_cache(maxsize=4)
def get_segmenter(weights: str = str(DEFAULT_WEIGHTS)) -> Segmenter:
    """One Segmenter per weights file per process."""
    return Segmenter(weights)
