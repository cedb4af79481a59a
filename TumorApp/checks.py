"""System checks: say at start-up (run.sh runs `migrate`, which runs checks) when the model weights are missing."""
from django.core.checks import Warning, register


@register()
def model_weights_present(app_configs, **kwargs):
    from TumorApp.analysis.config import DEFAULT_WEIGHTS

    if DEFAULT_WEIGHTS.is_file():
        return []
    return [Warning(
        f"The network weights {DEFAULT_WEIGHTS} are missing: every analysis will fail.",
        hint="Check out the repository's model/cnn_weights.hdf5 (Git LFS?) or train one (see the model section of the README).",
        id="TumorApp.W001",
    )]
