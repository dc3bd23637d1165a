"""Fault tests run one seed each in CI; ``pytest --long`` runs each with many seeds."""

from __future__ import annotations

import os

import pytest

CI_SEEDS = [int(s) for s in os.environ.get("CPIMS_ADAPTER_FAULT_SEEDS", "11").split(",")]
LONG_SEEDS = list(range(1, 13))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fault_seed" in metafunc.fixturenames:
        seeds = LONG_SEEDS if metafunc.config.getoption("--long") else CI_SEEDS
        metafunc.parametrize("fault_seed", seeds, ids=[f"seed{s}" for s in seeds])
