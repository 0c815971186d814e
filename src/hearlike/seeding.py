"""Deterministic seeds derived from the study seed and the id of the unit of work.

Every random draw in the study goes through here, so that a job's random numbers depend only on the
config seed and what the job is (subject, model, metric, ...), never on scheduling order.
"""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(base: int, *parts: object) -> int:
    """A 63-bit seed from ``base`` and any printable unit ids (stable across runs and platforms)."""
    text = "\x1f".join([str(int(base)), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def rng(base: int, *parts: object) -> np.random.Generator:
    """A numpy Generator seeded with :func:`derive_seed`."""
    return np.random.default_rng(derive_seed(base, *parts))
