"""Turn a loaded slice into network input: window/normalise to [0, 1], square, resize; and back.

These functions are the single definition of the network's input convention; training imports
them (`window_hu`, `display_to_network`, `to_network_input`, `from_network_output`) so that what the
network sees at inference is what it saw in training.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..config import CONTRACT
from ..io.loading import CTSlice


def window_hu(hu: np.ndarray, center: float = CONTRACT.window_center,
              width: float = CONTRACT.window_width) -> np.ndarray:
    """Hounsfield units -> [0, 1] through a window (the network's by default)."""
    low = center - width / 2.0
    unit = np.array(hu, dtype=np.float32)  # our own copy, then in place: (clip - low) / width
    np.clip(unit, low, low + width, out=unit)
    unit -= np.float32(low)
    unit /= np.float32(width)
    return unit


DISPLAY_WINDOW = (CONTRACT.display_window_center, CONTRACT.display_window_width)


def display_to_unit(image: np.ndarray) -> np.ndarray:
    """An 8-bit display image (0..255) -> [0, 1]."""
    return (np.asarray(image, dtype=np.float32) / 255.0).astype(np.float32)


def display_to_network(unit: np.ndarray, center: float = CONTRACT.window_center,
                       width: float = CONTRACT.window_width) -> np.ndarray:
    """A picture's [0, 1] grey -> the network's window, reading the grey as the display window's HU."""
    low = CONTRACT.display_window_center - CONTRACT.display_window_width / 2.0
    hu = low + np.clip(np.asarray(unit, dtype=np.float32), 0.0, 1.0) * CONTRACT.display_window_width
    return window_hu(hu, center, width)


def to_unit(ct: CTSlice) -> np.ndarray:
    """A loaded slice -> float32 [0, 1] for display (HU through W400/L40), in its own pixel grid."""
    if ct.is_hu:
        return window_hu(ct.pixels, *DISPLAY_WINDOW)
    return np.clip(ct.pixels, 0.0, 1.0).astype(np.float32)


def network_unit(ct: CTSlice) -> np.ndarray:
    """A loaded slice -> float32 [0, 1] as the network takes it (its window), in its own pixel grid."""
    if ct.is_hu:
        return window_hu(ct.pixels)
    return display_to_network(ct.pixels)


def pad_to_square(image: np.ndarray, value: float = 0.0) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad (bottom/right) to a square so that resizing keeps the aspect ratio; returns the pad."""
    h, w = image.shape[:2]
    side = max(h, w)
    if h == w:
        return image, (0, 0)
    padded = np.full((side, side) + image.shape[2:], value, dtype=image.dtype)
    padded[:h, :w] = image
    return padded, (side - h, side - w)


def to_network_input(unit: np.ndarray, size: int = CONTRACT.input_size) -> np.ndarray:
    """[0, 1] image of any size -> (size, size) float32, area-averaged; non-square inputs are
    padded with 0 (air) at the bottom/right first so anatomy keeps its proportions."""
    square, _ = pad_to_square(np.asarray(unit, dtype=np.float32))
    if square.shape[0] == size:
        return square.astype(np.float32)
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)


def from_network_output(probs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(S, S[, C]) probabilities -> the original (H, W[, C]) grid, bilinear; undoes the padding."""
    h, w = shape
    side = max(h, w)
    probs = np.asarray(probs, dtype=np.float32)
    if probs.shape[0] != side:
        resized = cv2.resize(probs, (side, side), interpolation=cv2.INTER_LINEAR)
        if probs.ndim == 3 and resized.ndim == 2:  # cv2 drops a single channel
            resized = resized[..., None]
        np.clip(resized, 0.0, 1.0, out=resized)  # our own array: clipped in place
    else:
        resized = np.clip(probs, 0.0, 1.0)
    return resized[:h, :w]


def to_uint8(unit: np.ndarray) -> np.ndarray:
    """[0, 1] -> 0..255 for display."""
    return np.round(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)
