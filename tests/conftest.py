"""Shared fixtures: small synthetic event streams and the real recordings folder."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Callable

import numpy as np
import pytest

from evdenoise.events import Events

# CI clones the repository with ../shared beside it; locally that is /work/shared.
REAL_DIR = Path(__file__).resolve().parents[2] / "shared/data/real"


@pytest.fixture(scope="session")  # a stateless factory: safe to share, also under hypothesis
def tiny_events() -> Callable[..., Events]:
    """Factory: ``tiny_events(n=200, width=16, height=12, t0=0, duration=100_000, seed=0)``.

    Returns a sorted stream with random pixels and polarities in ``[t0, t0 + duration)``.
    """

    def make(n: int = 200, width: int = 16, height: int = 12, t0: int = 0, duration: int = 100_000,
             seed: int = 0) -> Events:
        rng = np.random.default_rng(seed)
        t = np.sort(rng.integers(t0, t0 + duration, n))
        return Events.from_arrays(t, rng.integers(0, width, n), rng.integers(0, height, n),
                                  rng.integers(0, 2, n), width, height)

    return make


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """Folder of the real sensor recordings (see its README.md)."""
    assert REAL_DIR.is_dir(), f"real recordings not found at {REAL_DIR} (expected ../shared beside the repo)"
    return REAL_DIR
