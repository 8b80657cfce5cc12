"""The one exception type user mistakes raise; the CLI turns it into one line and exit code 2."""

from __future__ import annotations

from .card import CardError


class SynthaugError(ValueError):
    """Bad input to synthaug: the message names what was expected and what came."""


#: Everything the CLI reports as a one-line user error rather than a traceback.
USER_ERRORS = (SynthaugError, CardError)
