"""Read an uploaded slice (PNG/JPEG/TIFF/BMP or DICOM) into a `CTSlice`: pixels, HU or not, spacing.

Rules decided here (documented in the README too):

* 8-bit images are display images: values / 255.  RGB, RGBA and palette images become grey
  (ITU-R 601 luma, transparent pixels composited on black); EXIF orientation is applied.
* 16-bit greyscale PNG/TIFF: read as ``HU + 1024`` (the common "CT PNG" export, also what a
  DICOM's unsigned stored values are with the usual intercept -1024) when that is plausible:
  the darkest 1 % of the image is air (<= -500 HU), the brightest 1 % is at least soft tissue
  (>= -200 HU) and nothing exceeds 4000 HU.  A 16-bit file holding only 0..255 is an 8-bit
  display image.  Anything else is a display image and is min-max normalised, with a note.
* DICOM: the modality LUT (RescaleSlope/Intercept or a LUT) gives HU for CT, PixelSpacing gives
  the spacing.  Known non-CT imaging modalities (MR, US, X-ray, PET, ...) are rejected: the
  network has only seen CT and its output on them would be meaningless.  Files with no or an
  unknown modality (secondary captures, "OT") are analysed as display images, with a note.
* MONOCHROME1 (minimum value shown white): for non-CT data the values are inverted.  For CT the
  modality LUT output is already HU whatever the photometric interpretation, so the stored
  values are inverted only when that is what makes the slice look like CT (air at the border).
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

# Largest image we decode (pixels).  Guards against decompression bombs; a CT slice is 512x512.
MAX_PIXELS = 4096 * 4096
# Smallest side we analyse; below this nothing meaningful survives the resize to the network input.
MIN_SIDE = 32
# Largest upload we read at all.
MAX_BYTES = 64 * 1024 * 1024

# Modalities the network must not be applied to.
NON_CT_MODALITIES = frozenset({
    "MR", "US", "CR", "DX", "DR", "MG", "XA", "RF", "NM", "PT", "ES", "XC", "IO", "PX", "OP",
    "OCT", "SM", "GM", "ECG", "EEG", "EMG", "EPS", "HD", "IVUS", "RTIMAGE", "BMD", "OPT", "RG",
})

_IMAGE_MAGIC = (
    b"\x89PNG\r\n\x1a\n",  # PNG
    b"\xff\xd8\xff",  # JPEG
    b"II*\x00", b"MM\x00*",  # TIFF
    b"BM",  # BMP
    b"GIF87a", b"GIF89a",
    b"RIFF",  # WebP
)

HU_OFFSET_16BIT = 1024  # 16-bit PNG rule: stored value = HU + 1024


@dataclass(frozen=True)
class CTSlice:
    """One 2-D slice as loaded.

    ``pixels`` are Hounsfield units when ``is_hu`` is true, else display intensities in [0, 1].
    ``spacing_mm`` is (row, col) in mm when the file states it, else None.
    """

    pixels: np.ndarray
    is_hu: bool
    spacing_mm: tuple[float, float] | None
    source: str  # "dicom", "png", "jpeg", ... (lower-case format name)
    bit_depth: int
    filename: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[:2]


def load(data: bytes | str | Path, *, filename: str = "") -> CTSlice:
    """Read bytes or a path into a `CTSlice`; raise `InputError` for anything we cannot use."""
    if isinstance(data, (str, Path)):
        path = Path(data)
        filename = filename or path.name
        try:
            size = path.stat().st_size
            if size > MAX_BYTES:
                raise InputError(f"The file is too large ({size // 2**20} MiB); the limit is "
                                 f"{MAX_BYTES // 2**20} MiB.")
            raw = path.read_bytes()
        except OSError as exc:
            raise InputError(f"Could not read {path.name}: {exc.strerror or exc}") from exc
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
    else:
        raise TypeError(f"expected bytes or a path, got {type(data).__name__}")

    if not raw:
        raise InputError("The file is empty.")
    if len(raw) > MAX_BYTES:
        raise InputError(f"The file is too large; the limit is {MAX_BYTES // 2**20} MiB.")

    if _looks_like_dicom(raw, filename):
        ct = _load_dicom(raw, filename)
    elif raw.startswith(_IMAGE_MAGIC):
        ct = _load_picture(raw, filename)
    else:
        # No known signature: DICOM without a preamble is the one format we can still recognise.
        ct = _load_dicom(raw, filename, guessing=True)

    _check_size(*ct.shape)
    if not np.all(np.isfinite(ct.pixels)):
        raise InputError("The image contains invalid (non-finite) pixel values.")
    return ct


def _looks_like_dicom(raw: bytes, filename: str) -> bool:
    return raw[128:132] == b"DICM" or filename.lower().endswith((".dcm", ".dicom"))


def _check_size(height: int, width: int) -> None:
    if height * width > MAX_PIXELS:
        raise InputError(f"The image is too large ({width}x{height} pixels); the limit is "
                         f"{MAX_PIXELS:,} pixels.")
    if min(height, width) < MIN_SIDE:
        raise InputError(f"The image is too small ({width}x{height} pixels); a CT slice needs at "
                         f"least {MIN_SIDE} pixels on each side.")


# --- pictures (PNG, JPEG, ...) -----------------------------------------------------------------

def _load_picture(raw: bytes, filename: str) -> CTSlice:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(raw))
            file_format = img.format
            # The header gives the size before any pixel is decoded.
            _check_size(img.height, img.width)
            img.load()
            img = ImageOps.exif_transpose(img)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError("The image is too large to analyse.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        # It starts like an image (we only get here on a known signature), so it is damaged.
        raise InputError("The image file is damaged or truncated and could not be decoded.") from exc

    source = (file_format or Path(filename).suffix.lstrip(".") or "image").lower()
    notes: list[str] = []
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(img, dtype=np.float64)
        if values.min(initial=0) >= 0 and values.max(initial=0) <= 255:
            # A 16/32-bit container holding 8-bit display values.
            return _display_slice(values / 255.0, source, 8, filename, notes)
        return _sixteen_bit_slice(values, source, filename, notes)
    if mode == "F":
        values = np.asarray(img, dtype=np.float64)
        return _display_slice(_min_max(values), source, 32, filename,
                              ["Floating-point image: intensities were min-max normalised."])

    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
        notes.append("Transparent pixels were treated as black.")
    if img.mode != "L":
        colourful = img.mode not in ("1",) and _is_colourful(img)
        img = img.convert("L")
        if colourful:
            notes.append("Colour image: converted to greyscale.")
    values = np.asarray(img, dtype=np.float64) / 255.0
    return _display_slice(values, source, 8, filename, notes)


def _is_colourful(img) -> bool:
    rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    return bool(np.abs(rgb[..., 0] - rgb[..., 1]).max() > 8 or np.abs(rgb[..., 1] - rgb[..., 2]).max() > 8)


def _sixteen_bit_slice(values: np.ndarray, source: str, filename: str, notes: list[str]) -> CTSlice:
    hu = values - HU_OFFSET_16BIT
    if _plausible_hu(hu):
        notes.append("16-bit image read as HU + 1024.")
        return CTSlice(hu.astype(np.float32), True, None, source, 16, filename, tuple(notes))
    notes.append("16-bit image whose values are not HU + 1024: intensities were min-max normalised.")
    return _display_slice(_min_max(values), source, 16, filename, notes)


def _plausible_hu(hu: np.ndarray) -> bool:
    """A CT slice in HU has air around the body, some soft tissue or denser, and nothing far above
    dense bone or metal."""
    low, high = np.percentile(hu, [1, 99])
    return bool(low <= -500 and high >= -200 and hu.max() <= 4000 and hu.min() >= -2048)


def _display_slice(values, source, bit_depth, filename, notes) -> CTSlice:
    return CTSlice(np.clip(values, 0.0, 1.0).astype(np.float32), False, None, source, bit_depth,
                   filename, tuple(notes))


def _min_max(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros_like(values, dtype=np.float64)
    return (values - lo) / (hi - lo)


# --- DICOM -------------------------------------------------------------------------------------

def _load_dicom(raw: bytes, filename: str, *, guessing: bool = False) -> CTSlice:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut

    unreadable = ("The file is not an image we can read (PNG, JPEG or DICOM)." if guessing
                  else "The DICOM file is damaged or truncated and could not be read.")
    try:
        ds = pydicom.dcmread(io.BytesIO(raw), force=True)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError,
            AttributeError, IndexError, NotImplementedError, OverflowError) as exc:
        raise InputError(unreadable) from exc
    except Exception as exc:  # pydicom raises a wide variety on garbage; all mean "unreadable"
        raise InputError(unreadable) from exc

    try:
        has_pixels = "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds
        known = any(tag in ds for tag in ("SOPClassUID", "Modality", "StudyInstanceUID", "Rows"))
    except Exception as exc:
        raise InputError(unreadable) from exc
    if guessing and not (has_pixels or known):
        raise InputError(unreadable)
    if not has_pixels:
        raise InputError("The DICOM file has no image (pixel data) in it.")

    modality = str(ds.get("Modality", "") or "").strip().upper()
    if modality in NON_CT_MODALITIES:
        raise InputError(f"This DICOM file is a {modality} image; only CT slices can be analysed.")

    try:
        stored = ds.pixel_array
    except Exception as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", None) or "its encoding"
        detail = (f"its compression ({name}) is not supported" if syntax is not None
                  and getattr(syntax, "is_compressed", False) else "its pixel data is damaged or incomplete")
        raise InputError(f"The DICOM image could not be decoded: {detail}.") from exc

    notes: list[str] = []
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1 and stored.ndim >= 3 and stored.shape[0] == frames:
        stored = stored[frames // 2]
        notes.append(f"Multi-frame DICOM: frame {frames // 2 + 1} of {frames} was analysed.")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples > 1 or stored.ndim == 3:
        return _dicom_colour(ds, stored, filename, notes)
    if stored.ndim != 2:
        raise InputError("The DICOM image is not a 2-D slice.")

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    spacing = _dicom_spacing(ds, notes)
    bits = int(ds.get("BitsStored", 16) or 16)

    if modality == "CT":
        hu = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
        rescaled = "RescaleIntercept" in ds or "ModalityLUTSequence" in ds
        if not rescaled and not _plausible_hu(hu) and _plausible_hu(hu - HU_OFFSET_16BIT):
            # No rescale tags and values that only make sense as HU + 1024 (air at 0).
            hu = hu - HU_OFFSET_16BIT
            notes.append("The CT file has no rescale intercept; values were read as HU + 1024.")
        if photometric == "MONOCHROME1":
            inverted = np.asarray(apply_modality_lut(_invert_stored(stored, ds), ds), dtype=np.float64)
            if _border_median(inverted) < _border_median(hu):
                hu = inverted
                notes.append("MONOCHROME1 DICOM: pixel values were inverted.")
        return CTSlice(hu.astype(np.float32), True, spacing, "dicom", bits, filename, tuple(notes))

    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    if photometric == "MONOCHROME1":
        values = values.max() + values.min() - values
        notes.append("MONOCHROME1 DICOM: pixel values were inverted.")
    notes.append(f"The DICOM file is not marked as CT (modality {modality or 'missing'}); "
                 "it was analysed as a display image.")
    scaled = values / 255.0 if bits <= 8 and values.min() >= 0 and values.max() <= 255 else _min_max(values)
    return CTSlice(np.clip(scaled, 0, 1).astype(np.float32), False, spacing, "dicom", bits, filename,
                   tuple(notes))


def _dicom_colour(ds, stored, filename, notes) -> CTSlice:
    from pydicom.pixels import convert_color_space

    photometric = str(ds.get("PhotometricInterpretation", "RGB")).strip().upper()
    rgb = stored
    if photometric.startswith("YBR") and photometric != "YBR_FULL_422":
        rgb = convert_color_space(stored, photometric, "RGB")
    elif photometric == "YBR_FULL_422":
        rgb = convert_color_space(stored, "YBR_FULL", "RGB")
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise InputError("The DICOM colour image has an unsupported layout.")
    rgb = rgb.astype(np.float64)
    grey = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    notes.append("Colour DICOM: converted to greyscale and analysed as a display image.")
    scale = grey / 255.0 if grey.max() <= 255 else _min_max(grey)
    spacing = _dicom_spacing(ds, notes)
    return CTSlice(np.clip(scale, 0, 1).astype(np.float32), False, spacing, "dicom", 8, filename,
                   tuple(notes))


def _invert_stored(stored: np.ndarray, ds) -> np.ndarray:
    """Mirror stored values within their representable range (BitsStored, signed or not)."""
    bits = int(ds.get("BitsStored", 16) or 16)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2 ** bits - 1
    return (lo + hi - stored.astype(np.int64)).astype(np.int64)


def _border_median(values: np.ndarray) -> float:
    border = np.concatenate([values[0], values[-1], values[:, 0], values[:, -1]])
    return float(np.median(border))


def _dicom_spacing(ds, notes: list[str]) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is None:
            continue
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if 0 < row and 0 < col:  # the pipeline refuses or flags implausible sizes
            return (row, col)
        notes.append(f"The DICOM {keyword} ({row}, {col}) is implausible and was ignored.")
    return None
