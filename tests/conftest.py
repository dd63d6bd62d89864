"""Shared test configuration: hypothesis profiles and common fixtures.

Hypothesis profiles (selected by the ``HYPOTHESIS_PROFILE`` environment variable, default
``dev``): ``dev`` is quick for local runs, ``ci`` is what ``make test`` uses in CI,
``nightly`` digs deeper. All are deadline-free (the machine is
shared, so timing must never fail a test). Other parts may append fixtures below.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Make ``tests/`` importable as plain modules (reference_interpreter, helpers).
sys.path.insert(0, str(Path(__file__).parent))

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("dev", max_examples=60, **_COMMON)
# CI is derandomized: the same examples on every run, so a red CI is reproducible and a
# green one is not luck (no unseeded randomness in tests); dev and nightly explore.
settings.register_profile("ci", max_examples=200, derandomize=True, **_COMMON)
settings.register_profile("nightly", max_examples=2000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def cf_scheme():
    """Cloudflare's default scheme."""
    from edgerules.lang.scheme import default_scheme

    return default_scheme()


@pytest.fixture(scope="session")
def small_scheme():
    """A small scheme with one field of each type (arrays, maps, an optional field)."""
    from reference_interpreter import small_scheme as make

    return make()
