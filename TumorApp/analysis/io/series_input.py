"""The files of one series upload (a folder, files, zips), opened lazily and read within budgets.

Every budget is checked from what is declared (file sizes, zip headers) before anything is read,
and again while reading, a chunk at a time: a zip header may lie, so no read trusts it.  One file
is held in memory at a time; nothing here decodes pixels.
"""
from __future__ import annotations

import contextlib
import io
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence, Union

from ..errors import InputError
from .loading import MAX_BYTES

# Slices in one series, and files in one upload (zip members included, junk such as __MACOSX not).
MAX_SLICES = 1000
MAX_FILES = MAX_SLICES
# Entries in one zip, folders and junk included: reading its directory is all they cost.
MAX_ZIP_ENTRIES = 2 * MAX_FILES
# One DICOM file (or zip member) unpacked: a 4096^2 16-bit slice is 32 MiB.  NIfTI holds the whole
# volume in one file, so it has the series' limit instead.
MAX_FILE_BYTES = MAX_BYTES
# All files of one series unpacked.
MAX_SERIES_BYTES = 1024 * 2**20
# Voxels in one series: the worker holds the volume (int16) and the liver and tumour masks, 4 bytes
# a voxel, beside the process itself (runtime, network, batches: the reserve).  Measured at the
# limit by bench/series_memory.py, this keeps a series under 1.5 GiB resident.  About 700 slices
# of 512 x 512.
SERIES_MEMORY_BYTES = 1536 * 2**20
PROCESS_RESERVE_BYTES = 832 * 2**20
VOXEL_BYTES = 2 + 1 + 1
MAX_SERIES_VOXELS = (SERIES_MEMORY_BYTES - PROCESS_RESERVE_BYTES) // VOXEL_BYTES

# Where the upload check samples a series for the slice input check (plausibility.py): within the
# body's extent, away from the ends, which are often outside the abdomen.
SAMPLE_POINTS = (0.25, 0.5, 0.75)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
CHUNK = 2**20

# What a caller may hand over for one file: its bytes, a path, or an open binary file (an upload).
Content = Union[bytes, bytearray, memoryview, str, Path, BinaryIO]
Item = tuple[str, Content]


@dataclass(frozen=True)
class SeriesFile:
    """One file of the upload; `size` is what it declares (the stat size, the zip header's)."""

    name: str
    size: int
    opener: Callable[[], BinaryIO]

    @property
    def is_nifti(self) -> bool:
        return self.name.lower().endswith(NIFTI_SUFFIXES)

    @property
    def limit(self) -> int:
        return MAX_SERIES_BYTES if self.is_nifti else MAX_FILE_BYTES

    def open(self) -> BinaryIO:
        try:
            return self.opener()
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as exc:
            raise InputError(f"{self.name} could not be opened ({exc}).") from exc

    def read(self) -> bytes:
        """The whole content, counted a chunk at a time: refused past the limit whatever was declared."""
        chunks, total = [], 0
        with self.open() as stream:
            try:
                while chunk := stream.read(CHUNK):
                    chunks.append(chunk)
                    total += len(chunk)
                    if total > self.limit:
                        raise InputError(f"{self.name} is larger than {self.limit // 2**20} MiB unpacked; "
                                         "that is the limit for one file.")
            except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
                raise InputError(f"{self.name} is damaged and could not be read ({exc}).") from exc
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)  # one chunk (most slices): not copied


def sample_indices(n: int) -> list[int]:
    """The slice indices (0..n-1) the upload check looks at."""
    return sorted({min(n - 1, round((n - 1) * q)) for q in SAMPLE_POINTS}) if n > 0 else []


@contextlib.contextmanager
def open_files(source: str | Path | Sequence[Item]) -> Iterator[list[SeriesFile]]:
    """A folder (recursively), one file, or uploaded items -> the series' files, zips unpacked one
    level, hidden files, macOS resource forks and DICOMDIR indexes left out.  Refuses (InputError)
    too many files, a file or series too large, from declared sizes; reads nothing else."""
    with contextlib.ExitStack() as stack:
        if isinstance(source, (str, Path)):
            items = _path_items(Path(source))
        else:
            items = list(source)
        if len(items) > MAX_FILES:
            raise InputError(f"The upload has {len(items)} files; at most {MAX_FILES} can be analysed.")
        files: list[SeriesFile] = []
        for name, content in items:
            opener, size = _opener(content)
            head = _peek(opener)
            if head[:4] == b"PK\x03\x04" or name.lower().endswith(".zip"):
                files.extend(_zip_members(name, stack.enter_context(_open_zip(name, opener))))
            elif not _junk(name):
                files.append(SeriesFile(name, size, opener))
            if len(files) > MAX_FILES:
                raise InputError(f"The upload holds more than {MAX_FILES} files; at most {MAX_FILES} can be "
                                 "analysed.")
        for f in files:
            if f.size > f.limit:
                raise InputError(f"{f.name} is {f.size / 2**20:,.0f} MiB unpacked; the limit for one file is "
                                 f"{f.limit // 2**20} MiB.")
        total = sum(f.size for f in files)
        if total > MAX_SERIES_BYTES:
            raise InputError(f"The series is {total / 2**20:,.0f} MiB unpacked; the limit is "
                             f"{MAX_SERIES_BYTES // 2**20} MiB.")
        yield files


def _path_items(path: Path) -> list[Item]:
    if not path.is_dir():
        if not path.is_file():
            raise InputError(f"Could not read {path.name}: no such file.")
        return [(path.name, path)]
    items: list[Item] = []
    for p in sorted(path.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            items.append((str(p.relative_to(path)), p))
            if len(items) > MAX_FILES:
                raise InputError(f"The folder holds more than {MAX_FILES} files; at most {MAX_FILES} can be "
                                 "analysed.")
    if not items:
        raise InputError(f"The folder {path.name} has no files in it.")
    return items


def _opener(content: Content) -> tuple[Callable[[], BinaryIO], int]:
    """A function opening the content afresh (a stream from its start), and its size."""
    if isinstance(content, (bytes, bytearray, memoryview)):
        data = bytes(content)
        return (lambda: io.BytesIO(data)), len(data)
    if isinstance(content, (str, Path)):
        path = Path(content)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise InputError(f"Could not read {path.name}: {exc.strerror or exc}") from exc
        return (lambda: open(path, "rb")), size
    stream = content  # an open, seekable binary file (a Django upload); never closed here
    stream.seek(0, os.SEEK_END)
    size = stream.tell()

    def reopen() -> BinaryIO:
        stream.seek(0)
        return _Unclosed(stream)

    return reopen, size


class _Unclosed(io.RawIOBase):
    """A view of a caller's stream that `with` may close without closing the stream itself."""

    def __init__(self, stream):
        super().__init__()
        self._s = stream

    def readable(self):
        return True

    def seekable(self):
        return True

    def readinto(self, b):
        data = self._s.read(len(b))
        b[:len(data)] = data
        return len(data)

    def read(self, size=-1):
        return self._s.read(size)

    def seek(self, offset, whence=0):
        return self._s.seek(offset, whence)

    def tell(self):
        return self._s.tell()


def _peek(opener) -> bytes:
    with opener() as stream:
        return stream.read(4)


def _junk(name: str) -> bool:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.startswith(".") or "__MACOSX" in name or base.upper() == "DICOMDIR" or not base


@contextlib.contextmanager
def _open_zip(name: str, opener) -> Iterator[zipfile.ZipFile]:
    stream = opener()
    try:
        try:
            archive = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
            raise InputError(f"{name} is not a zip file we can open ({exc}).") from exc
        with archive:
            yield archive
    finally:
        stream.close()


def _zip_members(name: str, archive: zipfile.ZipFile) -> list[SeriesFile]:
    entries = archive.infolist()
    if len(entries) > MAX_ZIP_ENTRIES:
        raise InputError(f"{name} has {len(entries)} entries; at most {MAX_FILES} files can be analysed.")
    members = []
    for info in entries:
        if info.is_dir() or _junk(info.filename):
            continue
        if info.flag_bits & 0x1:
            raise InputError(f"{name} is encrypted; upload an unencrypted zip.")
        members.append(SeriesFile(info.filename, info.file_size, lambda info=info: archive.open(info)))
    return members
