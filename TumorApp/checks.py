"""System checks: say at start-up (run.sh runs `migrate`, which runs checks) when the model weights are missing
or the configured PACS does not answer."""
from django.core.checks import Warning, register


@register()
def model_weights_present(app_configs, **kwargs):
    from TumorApp.analysis.config import DEFAULT_WEIGHTS

    if DEFAULT_WEIGHTS.is_file():
        return []
    return [Warning(
        f"The network weights {DEFAULT_WEIGHTS} are missing: every analysis will fail.",
        hint="Check out the repository's model/cnn_weights.hdf5 (Git LFS?) or train one (see docs/model.md).",
        id="TumorApp.W001",
    )]


@register()
def pacs_reachable(app_configs, **kwargs):
    """With DICOMWEB_URL set, one QIDO-RS search (5 s at most): a warning, not an error, so the app
    still starts (uploads work without the PACS) and the PACS page says the same when it is opened."""
    from django.conf import settings

    from TumorApp.pacs.client import check_connection, configured

    if not configured():
        return []
    problem = check_connection(timeout=min(5.0, settings.DICOMWEB_TIMEOUT))
    if problem is None:
        return []
    return [Warning(problem, hint="Check DICOMWEB_URL, DICOMWEB_USERNAME/PASSWORD and DICOMWEB_CA_FILE "
                                  "(docs/pacs.md).", id="TumorApp.W002")]
