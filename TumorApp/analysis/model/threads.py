"""How many threads one forward pass uses; read by the runtime and by the backend choice's fingerprint."""
from __future__ import annotations

import os


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def inference_threads() -> int:
    """Threads for one forward pass: all cores (`INFERENCE_THREADS` overrides).

    Forward passes are serialised by `Segmenter`'s lock, so waitress's request threads never run
    two passes at once on the same cores; they only overlap the cheap stages around them."""
    return max(1, int(os.environ.get("INFERENCE_THREADS", 0)) or _cpu_count())
