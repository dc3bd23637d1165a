"""`GET /api/v2/cases`: envelope, paging, order, fields, search and filters (§3, §10 #3-4)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from adapter.simulator.primero import PrimeroSimulator
from tests.simulator.sim_helpers import PASSWORD, new_case, url

CASES = "/api/v2/cases"


def listing(api: requests.Session, sim: PrimeroSimulator, **params: Any) -> dict[str, Any]:
    response = api.get(url(sim, CASES), params=params, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def total(api: requests.Session, sim: PrimeroSimulator, **params: Any) -> int:
    return int(listing(api, sim, **params)["metadata"]["total"])


def set_times(sim: PrimeroSimulator, case_id: str, **stamps: str) -> None:
    """Arrange exact timestamps on a stored case (re-indexed like a save)."""
    with sim.state.lock:
        case = sim.state.cases[case_id]
        case.data.update(stamps)
        sim.state.put_case(case)


@pytest.fixture(scope="module")
def timed_case(sim: PrimeroSimulator) -> str:
    """A case last updated at 2020-03-01T10:00:00.500Z and created at the same instant."""
    with requests.Session() as api:
        api.auth = ("cpims-adapter", PASSWORD)
        case_id = new_case(api, sim, name="Timed Case")["id"]
    set_times(
        sim,
        case_id,
        last_updated_at="2020-03-01T10:00:00.500Z",
        created_at="2020-03-01T10:00:00.500Z",
    )
    return str(case_id)


def test_envelope_and_default_paging(api: requests.Session, sim: PrimeroSimulator) -> None:
    body = listing(api, sim)
    assert body["metadata"] == {"total": len(sim.state.cases), "per": 20, "page": 1}
    assert len(body["data"]) == 20
    for record in body["data"]:
        assert {"id", "enabled", "alert_count", "last_updated_at"} <= set(record)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["last_updated_at"])


def test_per_is_silently_capped_at_1000(api: requests.Session, sim: PrimeroSimulator) -> None:
    assert listing(api, sim, per=3000)["metadata"]["per"] == 1000


def test_default_order_is_created_at_desc(api: requests.Session, sim: PrimeroSimulator) -> None:
    created = [r["created_at"] for r in listing(api, sim, per=100)["data"]]
    assert created == sorted(created, reverse=True)


def test_pages_by_last_updated_at_cover_everything_once(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    seen: list[str] = []
    stamps: list[str] = []
    for page in range(1, 10):
        body = listing(api, sim, order_by="last_updated_at", order="asc", per=25, page=page)
        seen += [r["id"] for r in body["data"]]
        stamps += [r["last_updated_at"] for r in body["data"]]
        if not body["data"]:
            break
    assert len(seen) == len(set(seen)) == len(sim.state.cases)
    assert stamps == sorted(stamps)


def test_id_search_finds_exactly_one_by_display_id(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    display = next(iter(sim.state.cases.values())).data["case_id_display"]
    body = listing(api, sim, id_search="true", query=display)
    assert len(body["data"]) == 1
    assert body["data"][0]["case_id_display"] == display
    # A record search answers with the summary fields only.
    assert "services_section" not in body["data"][0]


def test_exact_display_id_filter(api: requests.Session, sim: PrimeroSimulator) -> None:
    display = next(iter(sim.state.cases.values())).data["case_id_display"]
    assert total(api, sim, case_id_display=display) == 1
    assert total(api, sim, case_id_display=display[:-1]) == 0


def test_field_selection_is_intersected_with_permitted_fields(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    record = listing(api, sim, fields="name,age,notes_section,sex")["data"][0]
    assert set(record) <= {"id", "enabled", "name", "age", "sex", "last_updated_at"}
    assert "notes_section" not in record
    short = listing(api, sim, fields="short")["data"][0]
    assert "services_section" not in short and "case_id_display" in short


def test_default_fields_never_include_unpermitted_forms(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    records = listing(api, sim, per=100)["data"]
    assert all("notes_section" not in r for r in records)
    assert any("services_section" in r for r in records)
    assert any(c.data.get("notes_section") for c in sim.state.cases.values())


def test_filters_equal_in_range_and_hash_range(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    females = total(api, sim, sex="female")
    males = total(api, sim, sex="male")
    assert females + males == len(sim.state.cases) - sum(
        1 for c in sim.state.cases.values() if c.data.get("sex") not in ("male", "female")
    )
    assert total(api, sim, sex="male,female") == females + males
    ages = [c.data.get("age") for c in sim.state.cases.values()]
    assert total(api, sim, age="10..15") == sum(1 for a in ages if a is not None and 10 <= a <= 15)
    assert total(api, sim, **{"age[from]": "10", "age[to]": "12"}) == sum(
        1 for a in ages if a is not None and 10 <= a <= 12
    )
    # `age` has an integer srch column: an open range becomes `<= NULL` and matches nothing.
    assert total(api, sim, age="10..") == 0


def test_or_not_and_location_filters(api: requests.Session, sim: PrimeroSimulator) -> None:
    cases = list(sim.state.cases.values())
    expected_or = sum(1 for c in cases if c.data.get("sex") == "female" or c.data.get("age") == 3)
    assert total(api, sim, **{"or[sex]": "female", "or[age]": "3"}) == expected_or
    assert total(api, sim, **{"not[sex]": "female"}) == sum(
        1 for c in cases if c.data.get("sex") != "female"
    )
    sindh = sum(1 for c in cases if str(c.data.get("location_current", "")).startswith("PK-SD"))
    assert total(api, sim, **{"loc:location_current[0]": "PK-SD"}) == sindh


def test_boolean_false_also_matches_missing(api: requests.Session, sim: PrimeroSimulator) -> None:
    hidden = sum(1 for c in sim.state.cases.values() if c.data.get("hidden_name"))
    assert total(api, sim, hidden_name="true") == hidden
    assert total(api, sim, hidden_name="false") == len(sim.state.cases) - hidden


def test_filters_on_unpermitted_fields_are_dropped(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    everything = len(sim.state.cases)
    assert total(api, sim, notes_section="anything") == everything
    assert total(api, sim, note_text="nothing matches this") == everything
    assert total(api, sim, remote="true") == everything  # OpenFn sends it; no such field


def test_unparseable_filter_is_an_empty_200(api: requests.Session, sim: PrimeroSimulator) -> None:
    body = listing(api, sim, age="abc")
    assert body["data"] == [] and body["metadata"]["total"] == 0
    assert listing(api, sim, page=0)["metadata"]["total"] == 0


def test_per_zero_returns_no_rows_but_the_total(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    body = listing(api, sim, per=0)
    assert body["data"] == [] and body["metadata"]["total"] == len(sim.state.cases)


def test_unknown_order_direction_sorts_ascending(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    for order in ("sideways", "Desc"):
        created = [r["created_at"] for r in listing(api, sim, per=100, order=order)["data"]]
        assert created == sorted(created)


def test_datetime_range_is_inclusive_at_second_granularity(
    api: requests.Session, sim: PrimeroSimulator, timed_case: str
) -> None:
    def ids(value: str) -> list[str]:
        body = listing(api, sim, last_updated_at=value, per=1000)
        return [r["id"] for r in body["data"]]

    # Both sides go through TO_TIMESTAMP(.., 'YYYY-MM-DD"T"HH24:MI:SS'): 10:00:00.500 -> 10:00:00
    assert timed_case in ids("2020-03-01T09:00:00Z..2020-03-01T10:00:00Z")
    assert timed_case in ids("2020-03-01T10:00:00.900Z..2020-03-01T11:00:00Z")
    assert timed_case not in ids("2020-03-01T09:00:00Z..2020-03-01T09:59:59Z")
    assert timed_case not in ids("2020-03-01T10:00:01Z..2020-03-01T11:00:00Z")
    assert timed_case in ids("2020-03-01T10:00:00Z..")


def test_tz_offset_is_converted_then_dropped_with_the_milliseconds(
    api: requests.Session, sim: PrimeroSimulator, timed_case: str
) -> None:
    # Time.zone.parse applies +05:00 (15:00+05:00 == 10:00Z); TO_TIMESTAMP then sees UTC text.
    body = listing(api, sim, last_updated_at="2020-03-01T15:00:00+05:00..2020-03-01T15:00:00+05:00")
    assert [r["id"] for r in body["data"]] == [timed_case]
    # An unencoded '+' arrives as a space: not a datetime, so the filter is silently dropped.
    raw = api.get(url(sim, CASES) + "?last_updated_at=2020-03-01T15:00:00+05:00..", timeout=5)
    assert raw.json()["metadata"]["total"] == len(sim.state.cases)


def test_open_lower_bound_range_is_dropped(
    api: requests.Session, sim: PrimeroSimulator, timed_case: str
) -> None:
    assert total(api, sim, last_updated_at="..2020-03-02T00:00:00Z") == len(sim.state.cases)


def test_date_only_range_compares_whole_days(
    api: requests.Session, sim: PrimeroSimulator, timed_case: str
) -> None:
    body = listing(api, sim, last_updated_at="2020-03-01..2020-03-01")
    assert [r["id"] for r in body["data"]] == [timed_case]


def test_search_column_dates_compare_at_full_precision(
    api: requests.Session, sim: PrimeroSimulator, timed_case: str
) -> None:
    # created_at has a srch_ timestamp column: no truncation, 10:00:00.500 > 10:00:00.
    body = listing(api, sim, created_at="2020-03-01T09:00:00Z..2020-03-01T10:00:00Z")
    assert timed_case not in [r["id"] for r in body["data"]]
    body = listing(api, sim, created_at="2020-03-01T09:00:00Z..2020-03-01T10:00:01Z")
    assert timed_case in [r["id"] for r in body["data"]]


def test_hidden_name_is_censored(api: requests.Session, sim: PrimeroSimulator) -> None:
    gbv = new_case(api, sim, name="Secret Name", module_id="primeromodule-gbv")
    shown = api.get(url(sim, f"{CASES}/{gbv['id']}"), timeout=5).json()["data"]
    assert shown["name"] == "*******" and shown["hidden_name"] is True


def test_identifier_query_is_a_substring_search(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    case = new_case(api, sim, national_id_no="99123-7654321-9")
    body = listing(api, sim, query="7654321")
    assert case["id"] in [r["id"] for r in body["data"]]


def test_case_workers_see_only_their_own_cases(sim: PrimeroSimulator) -> None:
    own = sum(
        1
        for c in sim.state.cases.values()
        if c.data.get("owned_by") == "cp_worker2"
        or "cp_worker2" in (c.data.get("assigned_user_names") or [])
    )
    body = requests.get(
        url(sim, CASES), auth=("cp_worker2", PASSWORD), params={"per": 1000}, timeout=5
    ).json()
    assert body["metadata"]["total"] == own
    other = next(c for c in sim.state.cases.values() if c.data.get("owned_by") == "cp_worker1")
    shown = requests.get(url(sim, f"{CASES}/{other.id}"), auth=("cp_worker2", PASSWORD), timeout=5)
    assert shown.status_code == 403


def test_mutate_on_list_touches_cases_while_paging(
    api: requests.Session, sim: PrimeroSimulator
) -> None:
    newest = listing(api, sim, order_by="last_updated_at", order="desc", per=1)["data"][0][
        "last_updated_at"
    ]
    requests.post(url(sim, "/_sim/faults"), json={"mutate_on_list": 3}, timeout=5)
    listing(api, sim, per=5)
    requests.delete(url(sim, "/_sim/faults"), timeout=5)
    after = listing(api, sim, order_by="last_updated_at", order="desc", per=4)["data"]
    assert [r["last_updated_at"] > newest for r in after].count(True) == 3
