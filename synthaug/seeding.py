"""Seeds: every random stream of synthaug is ``derive(seed, purpose)`` of the user's one seed.

``derive`` hashes the seed with the stream's purpose, so neighbouring seeds and different purposes
get unrelated streams (an additive offset would let ``seed + 5`` of one stream equal
``seed + 4 + 1`` of another).

Example:
    >>> from synthaug.seeding import derive
    >>> derive(0, "grid") == derive(0, "grid") != derive(1, "grid")
    True
    >>> 0 <= derive(0, "noise", 3) < 2**63
    True
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["SEED_SCHEME", "derive"]

#: The seed scheme of the runs ``fit`` starts now, recorded in their checkpoints: 1 (releases up
#: to 0.1) offset the seed by a constant per stream; 2 derives every stream with :func:`derive`.
#: A checkpoint without the field was written with scheme 1 and resumes with it, bitwise.
SEED_SCHEME = 2


def derive(seed: int, purpose: Any, *parts: Any) -> int:
    """A well-mixed 63-bit seed for the stream ``purpose`` (a name, or a pool's number) of
    ``seed``, further split by ``parts`` (a rank, an epoch)."""
    digest = hashlib.sha256(":".join(["synthaug", str(seed), str(purpose), *map(str, parts)]).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
