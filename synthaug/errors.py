"""The one exception type user mistakes raise; the CLI turns it into one line and exit code 2.

This module imports nothing, so every other module (the card's included) can import it.
"""

from __future__ import annotations

__all__ = ["USER_ERRORS", "first_line", "SynthaugError"]


class SynthaugError(ValueError):
    """Bad input to synthaug: the message names what was expected and what came."""


#: Everything the CLI reports as a one-line user error rather than a traceback
#: (``synthaug.card.CardError`` is a SynthaugError).
USER_ERRORS = (SynthaugError,)


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what a
    one-line report quotes of an error raised by code we do not control.

    Example:
        >>> first_line(RuntimeError("boom\\nmore")), first_line(KeyError())
        ('boom', 'KeyError')
    """
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
