"""Read an uploaded slice (PNG/JPEG/TIFF/BMP or DICOM) into a `CTSlice`: pixels, HU or not, spacing.

Rules decided here (documented in docs/security.md too):

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
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import InputError

# One pixel budget for every format, checked from the header before anything is decoded, so a small
# hostile file cannot make us allocate gigabytes (a CT slice is 512x512).  With the side and aspect
# bounds below, the square the network input is padded to stays under MAX_SIDE**2.
MAX_PIXELS = 4096 * 4096
# Longest side, and the most elongated shape, we accept: a CT slice is roughly square.
MAX_SIDE = 4096
MAX_ASPECT = 4.0
# Smallest side we analyse; below this nothing meaningful survives the resize to the network input.
MIN_SIDE = 32
# Largest upload we read at all.
MAX_BYTES = 64 * 1024 * 1024
# Largest DICOM dataset once deflated data is inflated, and largest pixel data a DICOM may declare
# (rows x columns x frames x samples x bytes): only one frame is decoded, but the rest is held.
MAX_INFLATED_BYTES = 256 * 1024 * 1024
MAX_DECLARED_BYTES = 256 * 1024 * 1024

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
    # Share of clearly coloured pixels of a colour input (0 for grey): `plausibility.py` refuses photos.
    coloured_share: float = 0.0

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

    if raw[128:132] == b"DICM":
        ct = _load_dicom(raw, filename)
    elif raw.startswith(_IMAGE_MAGIC):
        # The content decides, not the name: a PNG called "x.dcm" is read as the PNG it is.
        ct = _load_picture(raw, filename)
    elif filename.lower().endswith((".dcm", ".dicom")):
        ct = _load_dicom(raw, filename)
    else:
        # No known signature: DICOM without a preamble is the one format we can still recognise.
        ct = _load_dicom(raw, filename, guessing=True)

    _check_size(*ct.shape)
    if not np.all(np.isfinite(ct.pixels)):
        raise InputError("The image contains invalid (non-finite) pixel values.")
    return ct


def _check_size(height: int, width: int) -> None:
    """The one size rule for every format, applied to declared sizes before decoding."""
    if height < 1 or width < 1:
        raise InputError(f"The image declares no pixels ({width}x{height}).")
    if height * width > MAX_PIXELS:
        raise InputError(f"The image is too large ({width}x{height} pixels); the limit is "
                         f"{MAX_PIXELS:,} pixels.")
    if max(height, width) > MAX_SIDE:
        raise InputError(f"The image is too large ({width}x{height} pixels); the longest side may "
                         f"be at most {MAX_SIDE} pixels.")
    if min(height, width) < MIN_SIDE:
        raise InputError(f"The image is too small ({width}x{height} pixels); a CT slice needs at "
                         f"least {MIN_SIDE} pixels on each side.")
    if max(height, width) > MAX_ASPECT * min(height, width):
        raise InputError(f"The image is too elongated ({width}x{height} pixels) to be a CT slice; "
                         f"the long side may be at most {MAX_ASPECT:g} times the short side.")


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
        raise InputError(f"The image is too large (its header declares more than "
                         f"{Image.MAX_IMAGE_PIXELS:,} pixels); the limit is {MAX_PIXELS:,} pixels.") from exc
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
    coloured = 0.0
    if img.mode != "L":
        colourful = img.mode not in ("1",) and _is_colourful(img)
        if colourful:
            coloured = coloured_share(np.asarray(img.convert("RGB")))
        img = img.convert("L")
        if colourful:
            notes.append("Colour image: converted to greyscale.")
    values = np.asarray(img, dtype=np.float64) / 255.0
    return replace(_display_slice(values, source, 8, filename, notes), coloured_share=coloured)


def coloured_share(rgb: np.ndarray, saturated: float = 0.25, dark: float = 0.15) -> float:
    """Share of pixels with HSV saturation above `saturated`, ignoring near-black ones (their
    saturation is unstable: JPEG chroma noise on black)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.max() > 1.0:
        rgb = rgb / 255.0
    top, bottom = rgb.max(axis=-1), rgb.min(axis=-1)
    saturation = np.where(top > 0, (top - bottom) / np.maximum(top, 1e-6), 0.0)
    return float(((saturation > saturated) & (top > dark)).mean())


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

def read_dicom(raw: bytes, filename: str = "", *, guessing: bool = False,
               max_inflated: int | None = None):
    """Parse one DICOM file and check every budget its header states before any pixel is decoded:
    the inflated size of deflated data (counted in chunks), pixel data present, modality, rows x
    columns, layout, frames x bytes, a known transfer syntax, and a compressed frame's codestream
    against the header.  Returns (dataset, frames).  Slices (`load`) and series (`volume.py`)
    both read DICOM through here, so both keep the same rules."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    unreadable = ("The file is not an image we can read (PNG, JPEG or DICOM)." if guessing
                  else "The DICOM file is damaged or truncated and could not be read.")
    check_inflated_size(raw, MAX_INFLATED_BYTES if max_inflated is None else max_inflated)
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
    frames = _check_declared_pixels(ds)
    _check_encoding(ds, frames // 2 if frames > 1 else 0, frames)
    return ds, frames


def _load_dicom(raw: bytes, filename: str, *, guessing: bool = False) -> CTSlice:
    ds, frames = read_dicom(raw, filename, guessing=guessing)
    modality = str(ds.get("Modality", "") or "").strip().upper()
    notes: list[str] = []
    index = frames // 2 if frames > 1 else None
    stored = decode_frame(ds, index)
    if index is not None:
        notes.append(f"Multi-frame DICOM: frame {index + 1} of {frames} was analysed.")
    samples = _dicom_int(ds, "SamplesPerPixel", 1)
    if samples > 1 or stored.ndim == 3:
        return _dicom_colour(ds, stored, filename, notes)
    if stored.ndim != 2:
        raise InputError("The DICOM image is not a 2-D slice.")

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    spacing = dicom_spacing(ds, notes)
    bits = _dicom_int(ds, "BitsStored", 16)

    if modality == "CT":
        hu = modality_lut(stored, ds)
        rescaled = "RescaleIntercept" in ds or "ModalityLUTSequence" in ds
        if not rescaled and not _plausible_hu(hu) and _plausible_hu(hu - HU_OFFSET_16BIT):
            # No rescale tags and values that only make sense as HU + 1024 (air at 0).
            hu = hu - HU_OFFSET_16BIT
            notes.append("The CT file has no rescale intercept; values were read as HU + 1024.")
        if photometric == "MONOCHROME1":
            inverted = modality_lut(_invert_stored(stored, ds), ds)
            if _border_median(inverted) < _border_median(hu):
                hu = inverted
                notes.append("MONOCHROME1 DICOM: pixel values were inverted.")
        return CTSlice(hu.astype(np.float32), True, spacing, "dicom", bits, filename, tuple(notes))

    values = modality_lut(stored, ds)
    if photometric == "MONOCHROME1":
        values = values.max() + values.min() - values
        notes.append("MONOCHROME1 DICOM: pixel values were inverted.")
    notes.append(f"The DICOM file is not marked as CT (modality {modality or 'missing'}); "
                 "it was analysed as a display image.")
    scaled = values / 255.0 if bits <= 8 and values.min() >= 0 and values.max() <= 255 else _min_max(values)
    return CTSlice(np.clip(scaled, 0, 1).astype(np.float32), False, spacing, "dicom", bits, filename,
                   tuple(notes))


def _dicom_int(ds, keyword: str, default: int) -> int:
    """An integer attribute of the header, or a clear refusal when it is not one."""
    try:
        value = ds.get(keyword, default)
        return int(value if value not in (None, "") else default)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"The DICOM {keyword} is not a whole number.") from exc
    except Exception as exc:  # pydicom converts lazily; a damaged element fails here
        raise InputError(f"The DICOM {keyword} is damaged.") from exc


def check_inflated_size(raw: bytes, limit: int) -> None:
    """Deflated DICOM (1.2.840.10008.1.2.1.99) is inflated whole by pydicom: check how large it
    inflates, with bounded output, before letting it do so."""
    import zlib

    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    if DeflatedExplicitVRLittleEndian.encode("ascii") not in raw:  # the syntax UID appears nowhere
        return
    fp = io.BytesIO(raw)
    try:
        read_preamble(fp, True)
        meta = _read_file_meta_info(fp)
        syntax = meta.get("TransferSyntaxUID")
    except Exception:  # no usable meta: pydicom will not inflate anything either
        return
    if syntax != DeflatedExplicitVRLittleEndian:
        return
    # Count the inflated bytes a chunk at a time, keeping none of them.
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pending, inflated = raw[fp.tell():], 0
    try:
        while pending and inflated <= limit and not inflater.eof:
            inflated += len(inflater.decompress(pending, 2**20))
            pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise InputError("The deflated DICOM file is damaged and could not be inflated.") from exc
    if inflated > limit:
        raise InputError(f"The deflated DICOM file inflates to more than "
                         f"{limit // 2**20} MiB; that is too large to analyse.")


def _check_declared_pixels(ds) -> int:
    """Rows, columns, frames, samples and bits from the header, against the budget, before any
    pixel is decoded.  Returns the number of frames."""
    rows, cols = _dicom_int(ds, "Rows", 0), _dicom_int(ds, "Columns", 0)
    if rows <= 0 or cols <= 0:
        raise InputError("The DICOM file does not say how large its image is (Rows/Columns).")
    _check_size(rows, cols)
    frames = _dicom_int(ds, "NumberOfFrames", 1) or 1
    samples = _dicom_int(ds, "SamplesPerPixel", 1) or 1
    bits = _dicom_int(ds, "BitsAllocated", 16) or 16
    if frames < 1 or samples not in (1, 3, 4) or bits not in (1, 8, 16, 32, 64):
        raise InputError(f"The DICOM image layout is not valid ({frames} frame(s), {samples} "
                         f"sample(s) per pixel, {bits} bits allocated).")
    declared = rows * cols * frames * samples * max(bits, 8) // 8
    if declared > MAX_DECLARED_BYTES:
        raise InputError(f"The DICOM file declares {frames} frame(s) of {cols}x{rows} pixels "
                         f"({declared / 2**20:,.0f} MiB of pixel data); the limit is "
                         f"{MAX_DECLARED_BYTES // 2**20} MiB.")
    return frames


def _check_encoding(ds, index: int, frames: int) -> None:
    """A transfer syntax we can decode, and for compressed data the frame's codestream against
    the declared size, so a codestream cannot expand past the budget."""
    from pydicom.pixels import get_decoder

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None:
        return
    try:
        get_decoder(syntax)
        compressed = bool(syntax.is_compressed)
    except (NotImplementedError, ValueError, AttributeError) as exc:
        raise InputError(f"The DICOM image could not be decoded: its transfer syntax ({syntax}) "
                         "is not one we know.") from exc
    if compressed and "PixelData" in ds:
        _check_codestream(ds, index, frames)


def decode_frame(ds, index: int | None = None) -> np.ndarray:
    """Decode one frame only (all of a single-frame image) of a dataset `read_dicom` accepted."""
    from pydicom.pixels import pixel_array

    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        return pixel_array(ds, index=index)
    except InputError:
        raise
    except Exception as exc:
        name = getattr(syntax, "name", None) or str(syntax or "its encoding")
        try:
            compressed = syntax is not None and bool(syntax.is_compressed)
        except Exception:
            compressed = False
        detail = (f"its compression ({name}) is not supported or the compressed data is damaged"
                  if compressed else "its pixel data is damaged or incomplete")
        raise InputError(f"The DICOM image could not be decoded: {detail}.") from exc


def _check_codestream(ds, index: int, frames: int) -> None:
    from pydicom.encaps import get_frame

    try:
        frame = get_frame(ds.PixelData, index, number_of_frames=frames)
    except Exception as exc:
        raise InputError("The DICOM image could not be decoded: its compressed pixel data is "
                         "damaged or incomplete.") from exc
    size = codestream_size(frame)
    if size is None:
        return  # RLE and other codecs whose output size is the declared one
    width, height = size
    rows, cols = int(ds.Rows), int(ds.Columns)
    if (height, width) != (rows, cols):
        raise InputError(f"The DICOM image could not be decoded: its compressed frame is "
                         f"{width}x{height} pixels but the header says {cols}x{rows}.")


# JPEG start-of-frame markers (baseline, extended, progressive, lossless, JPEG-LS) give the size.
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                          0xCF, 0xF7})


def codestream_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) a JPEG, JPEG-LS or JPEG 2000 codestream declares, read from its header
    markers without decoding; None for anything else."""
    siz = data.find(b"\xff\x4f\xff\x51")  # JPEG 2000: SOC then SIZ
    if siz >= 0 and len(data) >= siz + 24:
        xsiz, ysiz, xo, yo = (int.from_bytes(data[siz + 8 + 4 * i: siz + 12 + 4 * i], "big") for i in range(4))
        return xsiz - xo, ysiz - yo
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker in _SOF_MARKERS and pos + 9 <= len(data):
            height = int.from_bytes(data[pos + 5:pos + 7], "big")
            width = int.from_bytes(data[pos + 7:pos + 9], "big")
            return width, height
        if marker == 0xDA or length < 2:  # start of scan before any frame header: give up
            return None
        pos += 2 + length
    return None


def check_modality_lut(ds) -> None:
    """Refuse unusable modality LUT tags (an incomplete LUT, a rescale that is not a finite number)
    from the header, before any pixel is decoded."""
    if "ModalityLUTSequence" in ds:
        try:
            item = ds.ModalityLUTSequence[0]
            ok = "LUTData" in item and "LUTDescriptor" in item and item.LUTData is not None \
                and len(item.LUTDescriptor) == 3
        except Exception:
            ok = False
        if not ok:
            raise InputError("The DICOM Modality LUT is incomplete (no LUT data or descriptor).")
        return
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        if keyword not in ds:
            continue
        try:
            value = float(ds[keyword].value)
        except Exception as exc:
            raise InputError(f"The DICOM {keyword} is not a number.") from exc
        if not np.isfinite(value):
            raise InputError(f"The DICOM {keyword} is not a finite number.")


def modality_lut(stored: np.ndarray, ds) -> np.ndarray:
    """Stored values -> modality values (HU for CT), with a clear refusal for unusable LUT tags."""
    from pydicom.pixels import apply_modality_lut

    check_modality_lut(ds)
    try:
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    except Exception as exc:
        raise InputError("The DICOM modality LUT (rescale) could not be applied: the header's "
                         "values are inconsistent.") from exc


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
    spacing = dicom_spacing(ds, notes)
    shown = rgb / 255.0 if rgb.max() <= 255 else (rgb - rgb.min()) / max(float(np.ptp(rgb)), 1e-6)
    return CTSlice(np.clip(scale, 0, 1).astype(np.float32), False, spacing, "dicom", 8, filename,
                   tuple(notes), coloured_share=coloured_share(shown))


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


def dicom_spacing(ds, notes: list[str]) -> tuple[float, float] | None:
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
