"""Whatever a department sends, the API answers with a deliberate status, never a 5xx."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.primero import PrimeroClient
from adapter.privacy import KeyRing
from adapter.simulator.primero import PrimeroSimulator
from adapter.state import StateStore
from tests.api.conftest import (
    DEPARTMENTS,
    KEYS,
    fir_body,
    make_app,
    message_id,
    referral_body,
    settings_for,
)

ROUTES = (
    "/v1/referrals",
    "/v1/referrals/ref-1/response",
    "/v1/fir-links",
    "/v1/court-orders",
    "/v1/birth-verifications",
)
FIELD_NAMES = (
    "message_id",
    "case_code",
    "referral_key",
    "reference",
    "child",
    "concern_codes",
    "reason",
    "urgency",
    "referring_officer",
    "action",
    "note",
    "outputs",
    "fir",
    "order",
    "verification",
    "match_status",
    "status",
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
FAKE_CODE = "cp1.police.1." + "a" * 52  # well formed, issued by no key: refused (403)


def valid_bodies() -> dict[str, dict[str, Any]]:
    """One valid message per route, fresh ids each time."""
    record = {"message_id": message_id(), "case_code": FAKE_CODE}
    return {
        "/v1/referrals": referral_body(),
        "/v1/referrals/ref-1/response": {"message_id": message_id(), "action": "complete"},
        "/v1/fir-links": fir_body(FAKE_CODE),
        "/v1/court-orders": {
            **record,
            "order": {
                "court": {"type": "family", "name": "Family Court", "district": "Quetta"},
                "case_number": "F-1",
                "case_year": 2026,
                "order_number": "1",
                "order_date": "2026-01-05",
                "order_type": "custody",
                "status": "active",
            },
        },
        "/v1/birth-verifications": {
            **record,
            "verification": {"request_id": "R-1", "match_status": "no_match"},
        },
    }


def _paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    if isinstance(value, dict):
        for key, inner in value.items():
            found.append((*prefix, key))
            found.extend(_paths(inner, (*prefix, key)))
    return found


@st.composite
def near_valid(draw: st.DrawFn) -> tuple[str, Any]:
    """A valid message of a random route with one field, at any depth, replaced by random
    JSON, removed, or joined by an unknown field: deeper than random JSON gets."""
    route, body = draw(st.sampled_from(sorted(valid_bodies().items())))
    path = draw(st.sampled_from(_paths(body)))
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        parent[path[-1]] = draw(json_values)
    elif action == "delete":
        del parent[path[-1]]
    else:
        parent[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    return route, body


@pytest.fixture(scope="module")
def client(sim: PrimeroSimulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    kek = secrets.token_bytes(32)
    state_url = f"sqlite:///{tmp_path_factory.mktemp('props')}/state.sqlite3"
    with StateStore(state_url) as store:
        keyring = KeyRing.init(store, kek, DEPARTMENTS)
        settings = settings_for(sim.url, state_url, kek)
        app = make_app(
            settings, store, keyring, lambda: PrimeroClient.from_settings(settings.primero)
        )
        with TestClient(app, raise_server_exceptions=True) as test_client:
            yield test_client


def _post(client: TestClient, route: str, content: bytes) -> int:
    response = client.post(
        route,
        content=content,
        headers={"Authorization": f"Bearer {KEYS['police']}", "Content-Type": "application/json"},
    )
    if response.status_code >= 500:
        pytest.fail(f"{route} answered {response.status_code}: {response.text}")
    body = response.json()
    if response.status_code >= 400:
        assert set(body["error"]) == {"code", "message", "field"}
    return response.status_code


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(route=st.sampled_from(ROUTES), body=json_values)
def test_random_json_never_gets_a_5xx(client: TestClient, route: str, body: Any) -> None:
    _post(client, route, json.dumps(body).encode())


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(message=near_valid())
def test_almost_valid_messages_never_get_a_5xx(
    client: TestClient, message: tuple[str, Any]
) -> None:
    route, body = message
    _post(client, route, json.dumps(body).encode())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(route=st.sampled_from(ROUTES), raw=st.binary(max_size=200))
def test_random_bytes_never_get_a_5xx(client: TestClient, route: str, raw: bytes) -> None:
    _post(client, route, raw)
