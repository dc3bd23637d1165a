"""Fixtures of the fuzz tests: trial counts that grow under ``pytest --long``, and the
registry's fixtures (a registry over the ``store`` of each backend, an officer's key)."""

from __future__ import annotations

import pytest

from tests.registry.conftest import notified, officer_key, registry, ring, settings

__all__ = ["notified", "officer_key", "registry", "ring", "settings"]


@pytest.fixture(scope="session")
def examples(long_mode: bool) -> int:
    """Hypothesis examples per property: a few dozen in CI, ten times as many under --long."""
    return 400 if long_mode else 40
