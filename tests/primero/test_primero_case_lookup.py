"""Finding a case by what a CPO reads in Primero: its id, short id or case_id_display."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from adapter.errors import InvalidCaseReference, UnknownCase
from adapter.primero import PrimeroClient
from adapter.simulator.primero import PrimeroSimulator

Make = Callable[..., PrimeroClient]
BASE = "https://primero.test"
CASES_URL = f"{BASE}/api/v2/cases"
CASE_ID = "6f1c2b9e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"
OTHER_ID = "0b7a9a52-aaaa-4bbb-8ccc-dddddddddddd"


def listing(*records: dict[str, str]) -> dict[str, object]:
    return {"data": list(records), "metadata": {"total": len(records), "per": 1000, "page": 1}}


def test_a_uuid_is_the_id_without_asking_primero(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    assert make_client().resolve_case_id(CASE_ID.upper()) == CASE_ID
    assert len(mocked.calls) == 0


def test_a_short_id_is_searched_with_id_search_and_matched_exactly(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    # Primero's query is ILIKE %q% over several id fields: a case whose national id merely
    # contains the digits comes back too, and must not count.
    mocked.get(
        CASES_URL,
        json=listing(
            {"id": OTHER_ID, "short_id": "1234567", "case_id_display": "1234567"},
            {"id": CASE_ID, "short_id": "5c52392", "case_id_display": "5c52392"},
        ),
    )

    assert make_client().resolve_case_id("5C52392") == CASE_ID

    query = parse_qs(urlsplit(mocked.calls[0].request.url or "").query)
    assert query["id_search"] == ["true"] and query["query"] == ["5C52392"]
    assert set(query["fields"][0].split(",")) == {"id", "short_id", "case_id_display"}


def test_a_case_id_display_with_a_code_prefix_is_found(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(
        CASES_URL,
        json=listing({"id": CASE_ID, "short_id": "5c52392", "case_id_display": "KHI-5c52392"}),
    )
    assert make_client().resolve_case_id("KHI-5c52392") == CASE_ID


def test_an_unknown_short_id_is_one_clear_error_without_the_id(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(CASES_URL, json=listing())

    with pytest.raises(UnknownCase) as caught:
        make_client().resolve_case_id("abcdef1")

    assert "no case visible" in str(caught.value) and "abcdef1" not in str(caught.value)
    assert "\n" not in str(caught.value) and not caught.value.ambiguous


def test_two_cases_with_the_same_short_id_ask_for_the_uuid(
    mocked: responses.RequestsMock, make_client: Make
) -> None:
    mocked.get(
        CASES_URL,
        json=listing(
            {"id": CASE_ID, "short_id": "5c52392", "case_id_display": "5c52392"},
            {"id": OTHER_ID, "short_id": "5c52392", "case_id_display": "5c52392"},
        ),
    )
    with pytest.raises(UnknownCase, match="2 cases share this short id") as caught:
        make_client().resolve_case_id("5c52392")
    assert caught.value.ambiguous


@pytest.mark.parametrize("reference", ["Ayesha Khan", "42101-1234567-1", "", "f0f0f0", "../x"])
def test_what_cannot_be_a_case_id_is_never_searched_for(
    mocked: responses.RequestsMock, make_client: Make, reference: str
) -> None:
    with pytest.raises(InvalidCaseReference) as caught:
        make_client().resolve_case_id(reference)
    assert len(mocked.calls) == 0
    assert not reference or reference not in str(caught.value)


@pytest.fixture(scope="module")
def sim() -> Iterator[PrimeroSimulator]:
    with PrimeroSimulator(cases=40, seed=11) as simulator:
        yield simulator


def test_every_short_id_of_the_simulator_resolves_to_its_case(sim: PrimeroSimulator) -> None:
    with PrimeroClient(sim.url, username="cpims-adapter", password="sim-password") as client:
        records = list(client.iter_cases(None, fields=["short_id", "case_id_display"]))
        assert len(records) == 40
        for record in records[:10]:
            assert client.resolve_case_id(record["short_id"]) == record["id"]
            assert client.resolve_case_id(record["case_id_display"]) == record["id"]
