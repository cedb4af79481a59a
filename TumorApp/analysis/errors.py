"""The one error type the analysis raises for input it cannot analyse."""
from __future__ import annotations


class InputError(ValueError):
    """Corrupt, unsupported or implausible input. ``str(e)`` is a message fit to show a user."""
