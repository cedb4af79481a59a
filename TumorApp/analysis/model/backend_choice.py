"""Which inference backend to run on this machine: the fastest that keeps fp32's masks, recorded in var/.

`manage.py prepare_model` measures every backend that starts here (`backend_trial.py`) and hands
the figures to `choose`, a pure function; the choice and its figures are saved in
`var/inference-choice.json` (`INFERENCE_CHOICE_FILE` overrides) under a fingerprint of what the
figures depend on: the weights file, the runtime versions (and ORT's execution providers, so
installing `onnxruntime-gpu` counts), the CPU (model name and flags) and the threads a pass
uses, and the calibration slices (they make the int8 graph).  A record whose fingerprint no
longer matches is ignored, so the defaults hold until `prepare_model` measures again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Mapping

from ..config import REPO_ROOT

log = logging.getLogger(__name__)

# The reference every other backend is checked against: what the cross-validation measured.
REFERENCE = "onnx"
# A backend is kept only when, over the check slices, its thresholded liver and tumour masks
# overlap the reference's this well and no check slice changes stage.
MIN_DICE = 0.99
# Timings this close (fraction of the fastest) count as a tie: the earlier backend in the
# registry wins, i.e. fp32 before int8, ONNX Runtime before OpenVINO (less to go wrong).
TIE = 0.02
# Records kept in the file (one per fingerprint: other weights, a runtime upgrade, another CPU).
MAX_RECORDS = 8


@dataclass(frozen=True)
class Figures:
    """One backend measured against the reference on the check slices."""

    liver_dice: float  # pooled over the check slices, thresholded at the contract's threshold
    tumor_dice: float
    stage_changes: int  # check slices whose size stage differs from the reference's
    ms_per_pass: float  # median time of a batch-1 pass (single slices)
    slices_per_s: float  # median throughput of batch-16 passes (series)

    @property
    def holds(self) -> bool:
        return self.liver_dice >= MIN_DICE and self.tumor_dice >= MIN_DICE and self.stage_changes == 0


@dataclass(frozen=True)
class Choice:
    slices: str  # fastest kept backend at batch 1
    series: str  # fastest kept backend at batch 16
    kept: tuple[str, ...]  # the backends that held the reference's masks, in measured order


def choose(figures: Mapping[str, Figures]) -> Choice:
    """The fastest backend that holds the reference's masks, for slices and for series.

    `figures` in registry order (that order breaks ties).  Raises ValueError when none holds."""
    kept = [name for name, f in figures.items() if f.holds]
    if not kept:
        raise ValueError("no backend matched the reference's masks")

    def fastest(cost) -> str:
        best = min(cost(figures[name]) for name in kept)
        return next(name for name in kept if cost(figures[name]) <= best * (1 + TIE))

    return Choice(slices=fastest(lambda f: f.ms_per_pass),
                  series=fastest(lambda f: 1.0 / f.slices_per_s if f.slices_per_s > 0 else float("inf")),
                  kept=tuple(kept))


# --- fingerprint ---------------------------------------------------------------------------------

def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_description() -> str:
    """The CPU's model name and flags (/proc/cpuinfo; elsewhere what `platform` knows)."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "flags", "Features", "CPU part") and key not in fields:
                fields[key] = " ".join(value.split())
    except OSError:
        pass
    if not fields:
        fields["platform"] = f"{platform.machine()} {platform.processor()}"
    return "; ".join(f"{k}: {v}" for k, v in sorted(fields.items()))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_parts(weights: Path | str) -> dict:
    """What the measured figures depend on; any change means measuring again."""
    from .quantize import CALIBRATION
    from .threads import inference_threads

    try:
        import onnxruntime as ort

        ort_version, providers = ort.__version__, sorted(ort.get_available_providers())
    except ImportError:
        ort_version, providers = None, []
    return {
        "weights_sha256": _file_sha256(Path(weights)),
        "calibration_sha256": _file_sha256(CALIBRATION) if CALIBRATION.is_file() else None,
        "onnxruntime": ort_version,
        "onnxruntime_providers": providers,
        "openvino": _version("openvino"),
        "cpu_sha256": hashlib.sha256(cpu_description().encode()).hexdigest(),
        "threads": inference_threads(),
    }


def fingerprint(parts: Mapping) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


@lru_cache(maxsize=8)
def _cached_fingerprint(weights: str, stat: tuple[int, ...]) -> str:
    return fingerprint(fingerprint_parts(weights))


def current_fingerprint(weights: Path | str) -> str:
    """`fingerprint(fingerprint_parts(weights))`, hashed once per process and weights file version."""
    st = os.stat(weights)
    return _cached_fingerprint(str(weights), (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))


# --- the record ----------------------------------------------------------------------------------

def record_path() -> Path:
    if os.environ.get("INFERENCE_CHOICE_FILE"):
        return Path(os.environ["INFERENCE_CHOICE_FILE"])
    return Path(os.environ.get("TUMOR_VAR_DIR", REPO_ROOT / "var")) / "inference-choice.json"


def load_records(path: Path | None = None) -> dict[str, dict]:
    """fingerprint -> record; empty when the file is missing or unreadable (then the defaults hold)."""
    path = path or record_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        log.warning("ignoring unreadable inference choice %s", path, exc_info=True)
        return {}
    return data if isinstance(data, dict) else {}


def save_record(key: str, record: dict, path: Path | None = None) -> Path:
    """Add or replace `key`'s record, keeping the newest `MAX_RECORDS`; written atomically."""
    path = path or record_path()
    records = load_records(path)
    records[key] = record
    newest = sorted(records, key=lambda k: records[k].get("measured_at", ""), reverse=True)[:MAX_RECORDS]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({k: records[k] for k in newest}, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)  # a concurrent reader sees the old file or the new one
    return path


def make_record(parts: Mapping, figures: Mapping[str, Figures], choice: Choice, *,
                unavailable: Mapping[str, str], check_slices: int, repeats: int) -> dict:
    return {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "fingerprint": dict(parts),
        "slices": choice.slices,
        "series": choice.series,
        "kept": list(choice.kept),
        "figures": {name: {**asdict(f), "kept": f.holds} for name, f in figures.items()},
        "unavailable": dict(unavailable),
        "check_slices": check_slices,
        "repeats": repeats,
    }


_READ: dict[Path, tuple[int, dict]] = {}  # path -> (mtime_ns, records): read again only when it changes


def recorded_choice(weights: Path | str, kind: str) -> str | None:
    """The recorded backend for `kind` ("slices" / "series") on this machine with these weights,
    or None (no record, or one measured for other weights, runtimes or CPU)."""
    path = record_path()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    try:
        if _READ.get(path, (None,))[0] != mtime:
            _READ[path] = (mtime, load_records(path))
        record = _READ[path][1].get(current_fingerprint(weights))
    except Exception:  # never let a bad record stop an analysis: the defaults hold
        log.warning("could not read the inference choice", exc_info=True)
        return None
    return record.get(kind) if record else None
