"""WSGI entry point (served by waitress from run.sh / run.bat)."""
import logging
import os
import threading

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "Tumor.settings")
application = get_wsgi_application()


def _warm_up() -> None:
    """Load the network in the background, so the first user's upload does not wait for it."""
    import io

    import numpy as np
    from PIL import Image

    from TumorApp.analysis.errors import InputError
    from TumorApp.analysis.slice.pipeline import analyze

    # A plain synthetic slice: a grey disc on black. Whatever the pipeline makes of it does not matter.
    yy, xx = np.mgrid[:256, :256]
    pixels = np.where((yy - 128) ** 2 + (xx - 128) ** 2 < 100 ** 2, 110, 0).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    try:
        # What the first request would otherwise import: the URL conf (views, forms) and pydicom
        # (imported lazily by the loader; about a second on a busy machine).
        from django.urls import get_resolver

        get_resolver().url_patterns
        import pydicom  # noqa: F401
        import pydicom.pixels  # noqa: F401

        analyze(buf.getvalue(), filename="warm-up.png")
    except InputError:
        pass
    except Exception:  # a missing weights file is reported by `manage.py check`; the server still starts
        logging.getLogger("TumorApp").warning("model warm-up failed", exc_info=True)
    else:
        logging.getLogger("TumorApp").info("model loaded")


def _graphs_cached() -> bool:
    try:
        from TumorApp.analysis.model.runtime import graphs_cached

        return graphs_cached()
    except Exception:
        return False


if os.environ.get("WARM_UP", "1") == "1":
    if _graphs_cached():
        # Graphs prepared (run.sh's `manage.py prepare_model`): loading them takes about a second, so do
        # it before the server says it is serving, and the first upload is as fast as the next.
        _warm_up()
    else:
        # Not prepared: the export and quantisation take minutes; answer pages meanwhile.
        threading.Thread(target=_warm_up, name="model-warm-up", daemon=True).start()


def _start_orphan_sweeper() -> None:
    from django.conf import settings

    from TumorApp.analyses.services import sweep_orphans

    if settings.ORPHAN_SWEEP_MINUTES > 0:
        threading.Thread(target=sweep_orphans, name="orphan-sweeper", daemon=True, kwargs={
            "interval_s": settings.ORPHAN_SWEEP_MINUTES * 60, "grace_s": settings.ORPHAN_GRACE_MINUTES * 60,
            "stop": threading.Event()}).start()


_start_orphan_sweeper()
