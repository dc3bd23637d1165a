"""A JSON answer cut in transit is read once more, not a failed run (found by tests/faults)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import requests

from adapter.errors import PrimeroProtocolError
from adapter.primero import PrimeroClient
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import SIM_PASSWORD


@pytest.fixture
def sim() -> Iterator[PrimeroSimulator]:
    with PrimeroSimulator(cases=5) as running:
        yield running


def _faults(sim: PrimeroSimulator, rules: list[dict[str, object]]) -> None:
    requests.post(
        f"{sim.url}/_sim/faults", json={"seed": 1, "rules": rules}, timeout=10
    ).raise_for_status()


def _client(sim: PrimeroSimulator) -> PrimeroClient:
    return PrimeroClient(sim.url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD)


@pytest.mark.parametrize("kind", ["malformed", "truncated"])
def test_one_garbled_case_page_is_fetched_again(sim: PrimeroSimulator, kind: str) -> None:
    _faults(sim, [{"kind": kind, "path": "/api/v2/cases", "methods": ["GET"], "at": [1]}])
    with _client(sim) as client:
        pages = list(client.iter_case_pages(updated_since=None))
    assert sum(len(page.records) for page in pages) == 5


def test_an_answer_garbled_every_time_still_fails_clearly(sim: PrimeroSimulator) -> None:
    _faults(sim, [{"kind": "malformed", "path": "/api/v2/cases", "methods": ["GET"], "rate": 1.0}])
    with _client(sim) as client, pytest.raises(PrimeroProtocolError, match="not valid JSON"):
        list(client.iter_case_pages(updated_since=None))


def test_log_lines_name_the_route_never_the_record_id(
    sim: PrimeroSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    with _client(sim) as client:
        (page,) = list(client.iter_case_pages(updated_since=None))
        case_id = str(page.records[0]["id"])
        _faults(sim, [{"kind": "error", "path": "/api/v2/cases/", "methods": ["GET"], "at": [1]}])
        with caplog.at_level(logging.DEBUG, logger="adapter.primero"):
            client.get_case(case_id)
    assert "/api/v2/cases/:id" in caplog.text  # the retried 5xx, at WARNING
    assert case_id not in caplog.text
