"""Schemathesis against the inbound API's own ``/openapi.json`` (issue 8 item 3), served as
``cpims-adapter serve`` serves it: the departments' routes and the registry's routes beside them,
under uvicorn on 127.0.0.1, with real department and establishment API keys, over a Primero
simulator.

Every operation gets schema-valid (positive) and schema-violating (negative) requests. Checks:

* no 5xx, ever;
* the status code is one the operation documents, the content type and body match its schema;
* every 4xx of a departments' route is ``{"error": {"code", "message", "field"}}`` with a
  message that says what to do (the registry's routes have their own documented error shape:
  ``{"error": code, "message"}``);
* nothing is half-written: after the run and a drain, every inbox row holds its stored answer,
  every accepted referral made exactly one Primero case and nothing else made one, and the
  outbox has no work left (none queued, none dead-lettered).
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from adapter.app.departments import read_mapping
from adapter.config.registry import RegistrySettings
from adapter.primero import PrimeroClient
from adapter.privacy import KeyRing
from adapter.registry import Registry
from adapter.registry.api import build_router
from adapter.serving import BackgroundServer, bind
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.primero.seed import DISTRICTS as SEED_DISTRICTS
from adapter.simulator.scenario import MAPPINGS_DIR, SIM_PASSWORD, install_linked_records_form
from adapter.state import StateStore, schema
from adapter.state.outbox import Outbox
from tests.api.conftest import (
    DEPARTMENTS,
    KEYS,
    fir_body,
    make_app,
    referral_body,
    settings_for,
    unique_name,
)

# Every operation of the served document, so a new route cannot escape the fuzzing unnoticed.
OPERATIONS = (
    ("POST", "/v1/referrals"),
    ("POST", "/v1/referrals/{referral_key}/response"),
    ("POST", "/v1/fir-links"),
    ("POST", "/v1/court-orders"),
    ("POST", "/v1/birth-verifications"),
    ("POST", "/v1/records/{record_type}"),
    ("POST", "/v1/convictions"),
    ("GET", "/v1/health"),
    ("POST", "/v1/registry/checks"),
    ("GET", "/v1/registry/checks/{check_ref}"),
    ("POST", "/v1/registry/workers"),
    ("DELETE", "/v1/registry/workers/{worker_ref}"),
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
OFFICER = "r.officer"
# The record types the shipped mapping files declare, for POST /v1/records/{record_type}.
SHIPPED_RECORD_TYPES = {
    name: read_mapping(MAPPINGS_DIR / f"{name}.toml").record_types
    for name in ("police", "courts", "birth_registration")
}
CASE_CODE = re.compile(r"cp1\.[a-z][a-z0-9_]{1,39}\.[1-9][0-9]{0,5}\.[a-z2-7]{52}")
DISTRICT = re.compile(r"[A-Z]{2}(-[A-Z0-9]{2,5}){1,3}")  # schemas.District
KNOWN_DISTRICTS = [code for code, _, _ in SEED_DISTRICTS]
# Operations whose only input is nothing or a free-text path segment: no request violates their
# schema, so they get positive cases only.
NOTHING_TO_VIOLATE = {
    "/v1/health",
    "/v1/registry/checks/{check_ref}",
    "/v1/registry/workers/{worker_ref}",
}


@dataclass
class Served:
    """The API on a real socket, what it runs on, and what the fuzzing saw."""

    url: str
    app: FastAPI
    store: StateStore
    sim: PrimeroSimulator
    schema: Any
    establishment_key: str
    referral_codes: set[str] = field(default_factory=set)

    def headers(self, path: str, department: str | None) -> dict[str, str]:
        """Real credentials in both places a key may go (so the body is what gets fuzzed);
        ``None``: only whatever the generator made up (so authentication is fuzzed too)."""
        if department is None:
            return {}
        key = self.establishment_key if path.startswith("/v1/registry/") else KEYS[department]
        return {"Authorization": f"Bearer {key}", "X-API-Key": key}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One served API for the module's fuzzing (it checks counts across all of it)."""
    yield from serve(tmp_path_factory.mktemp("fuzz-api"))


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Served]:
    """A served API of its own, for a test whose leftovers must not reach the others."""
    yield from serve(tmp_path)


def serve(directory: Path) -> Iterator[Served]:
    """``cpims-adapter serve``'s app (cli/_serve.py): inbound routes plus the registry's."""
    state_url = f"sqlite:///{directory}/state.sqlite3"
    kek = secrets.token_bytes(32)
    with PrimeroSimulator(cases=0) as sim, StateStore(state_url) as store:
        install_linked_records_form(sim.url)
        keyring = KeyRing.init(store, kek, DEPARTMENTS)
        config = settings_for(sim.url, state_url, kek)
        officer_key = base64.b64encode(secrets.token_bytes(32)).decode()
        config = config.model_copy(
            update={
                # Abuse detection would lock the establishment after a few malformed checks
                # (tested in tests/registry/test_abuse.py); here it must stay open so the
                # routes behind authentication get fuzzed.
                "registry": RegistrySettings(
                    court_departments=["courts"],
                    officer_keys={OFFICER: officer_key},
                    mismatch_min_checks=10_000,
                    mismatch_alert_rate=1,
                    sequential_alert_count=1000,
                    subject_alert_establishments=100,
                )
            }
        )
        app = make_app(
            config,
            store,
            keyring,
            lambda: PrimeroClient.from_settings(config.primero),
            record_types=SHIPPED_RECORD_TYPES,
        )
        registry = Registry.open(store, keyring, config.registry)
        app.include_router(build_router(registry))
        _, establishment_key = registry.add_establishment(
            "FUZZ-001",
            "Fuzz School",
            (("Amina Khan", "amina@school.example"), ("Bilal Shah", "bilal@school.example")),
            registered_by=OFFICER,
            daily_quota=100_000,
            monthly_quota=1_000_000,
        )
        sock = bind("127.0.0.1", 0)
        server = BackgroundServer(
            uvicorn.Config(app, lifespan="on", log_config=None, access_log=False),
            sock,
            "fuzz-api",
        )
        server.start()
        host, port = sock.getsockname()[:2]
        try:
            yield Served(
                f"http://{host}:{port}",
                app,
                store,
                sim,
                schemathesis.openapi.from_dict(app.openapi()),
                establishment_key,
            )
        finally:
            server.stop()


def test_every_served_operation_is_fuzzed(served: Served) -> None:
    listed = {(op.ok().method.upper(), op.ok().path) for op in served.schema.get_all_operations()}
    assert listed == set(OPERATIONS)


def _error_is_documented(path: str, response: httpx.Response, sent: Any = None) -> None:
    """A refusal says what is wrong and what to do, in the route's documented shape, and
    repeats none of the values sent (errors.py: they may be personal data)."""
    body = response.json()
    for value in _long_strings(sent):
        assert value not in response.text, "an error repeated a value of the request"
    if path.startswith("/v1/registry/"):
        assert isinstance(body["error"], str) and body["message"], body
        return
    error = body["error"]
    assert set(error) == {"code", "message", "field"}, body
    assert error["code"] and isinstance(error["code"], str)
    # "what is wrong and how to fix it" (errors.py): a sentence, not a bare code.
    assert len(error["message"].split()) >= 3, body
    if response.status_code == 422 and error["code"] in {"missing_field", "unknown_field"}:
        assert error["field"], body


def _long_strings(value: Any) -> set[str]:
    """The request's string values long and odd enough that an error could only contain
    them by repeating them (at least 8 characters, not only letters and spaces)."""
    if isinstance(value, str):
        plain = value.replace(" ", "").replace("_", "").isalpha()
        return {value} if len(value) >= 8 and not plain else set()
    if isinstance(value, dict):
        return {s for v in value.values() for s in _long_strings(v)}
    if isinstance(value, list):
        return {s for v in value for s in _long_strings(v)}
    return set()


def _known_district(case: Any) -> None:
    """A generated well-formed district is almost never a code Primero knows, and since
    finding F1 (test_an_unknown_district_is_refused_or_reaches_primero) such a district is
    refused (422). Half of them are pinned to codes the simulator knows, so referrals still
    get past that check into the work the half-written check inspects; the other half keep
    the refusal fuzzed."""
    child = case.body.get("child") if isinstance(case.body, dict) else None
    if isinstance(child, dict) and isinstance(child.get("district"), str):
        district = child["district"]
        if DISTRICT.fullmatch(district) and len(district) % 2 == 0:
            child["district"] = KNOWN_DISTRICTS[len(district) % len(KNOWN_DISTRICTS)]


def _issued_code(served: Served, case: Any, department: str | None) -> None:
    """A well-formed case code is swapped for one the API issued to the caller (answering one
    of its referrals), so record routes get past the 403 into the work that writes."""
    body = case.body
    if department is None or not isinstance(body, dict):
        return
    code = body.get("case_code")
    own = sorted(c for c in served.referral_codes if c.startswith(f"cp1.{department}."))
    if isinstance(code, str) and CASE_CODE.fullmatch(code) and own:
        body["case_code"] = own[len(code) % len(own)]


def _send(served: Served, case: Any, department: str | None) -> None:
    if case.path == "/v1/referrals":
        _known_district(case)
    _issued_code(served, case, department)
    response = case.call(
        base_url=served.url, headers=served.headers(case.path, department), timeout=30
    )
    case.validate_response(response, checks=CHECKS)
    status = response.status_code
    if 400 <= status < 500:
        _error_is_documented(case.path, response, case.body)
    elif status == 202 and case.path == "/v1/referrals":
        served.referral_codes.add(response.json()["case_code"])


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    [
        (method, path, mode)
        for method, path in OPERATIONS
        for mode in GenerationMode
        if not (path in NOTHING_TO_VIOLATE and mode is GenerationMode.NEGATIVE)
    ],
)
def test_the_api_answers_every_generated_request_as_documented(
    served: Served, method: str, path: str, mode: GenerationMode, examples: int
) -> None:
    operation = served.schema[path][method]
    run(
        st.tuples(
            operation.as_strategy(generation_mode=mode), st.sampled_from((*DEPARTMENTS, None))
        ),
        lambda drawn: _send(served, *drawn),
        # Half the file fuzzers' count: each example is an HTTP round trip (19 runs of 20 in
        # CI take about 20 s; --long runs 200 each).
        examples // 2,
    )
    _nothing_half_written(served)


def run(strategy: st.SearchStrategy[Any], body: Callable[[Any], None], examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(drawn=strategy)
    def each(drawn: Any) -> None:
        body(drawn)

    each()


def _settle(served: Served) -> None:
    """Drain until no work is queued: the server's own background drain may hold the job's
    lease at the moment we ask, and then ours skips (bounded: a few seconds)."""
    outbox = Outbox(served.store)
    deadline = time.monotonic() + 10
    while True:
        served.app.state.drainer.drain_all()
        if not outbox.depth().get("pending") or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _nothing_half_written(served: Served) -> None:
    _settle(served)
    with served.store.transaction() as conn:
        rows = conn.execute(sa.select(schema.inbox)).mappings().all()
    for row in rows:
        assert row["status"] == "accepted"
        assert row["response_status"] in (200, 202)
        assert row["response_body"]["message_id"] == row["message_id"]
    referral_rows = [r for r in rows if r["route"] == "referrals"]
    assert {r["response_body"]["case_code"] for r in referral_rows} == served.referral_codes
    with PrimeroClient(
        served.sim.url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD
    ) as primero:
        cases = primero.list_cases({"per": 1})[1]["total"]
    outbox = Outbox(served.store)
    dead = outbox.dead_letters()
    # Dead letters first: their errors say why a case is missing (the field Primero refused).
    assert dead == [], [(m.kind, m.last_error) for m in dead]
    # One case per accepted referral (a re-sent reference maps to the same case), none else.
    assert cases == len(served.referral_codes)
    unfinished = {state: n for state, n in outbox.depth().items() if state != "sent"}
    assert not unfinished, unfinished


def test_an_unknown_district_is_refused_or_reaches_primero(fresh: Served) -> None:
    """Finding F1: a well-formed district Primero does not know was accepted (202), then
    Primero refused location_current and the referral became a dead letter. Now it is
    refused at once, naming the field, and nothing is stored (tests/api/test_districts.py:
    while Primero's locations cannot be read it is accepted and lands without it)."""
    served = fresh
    body = referral_body(child={"name": unique_name(), "sex": "male", "district": "PK-ZZ-QQQ"})
    response = httpx.post(
        f"{served.url}/v1/referrals", json=body, headers=served.headers("", "police"), timeout=30
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "child.district"
    _error_is_documented("/v1/referrals", response, body)
    _nothing_half_written(served)


def test_the_error_shape_check_is_not_vacuous() -> None:
    """The shape check above refuses a bare string error and a message without a fix."""
    bare = httpx.Response(422, json={"error": "invalid", "message": "no"})
    with pytest.raises(AssertionError):
        _error_is_documented("/v1/referrals", bare)
    terse = httpx.Response(422, json={"error": {"code": "x", "message": "bad", "field": None}})
    with pytest.raises(AssertionError):
        _error_is_documented("/v1/referrals", terse)


@pytest.mark.parametrize(
    "instant",
    [
        "9999-12-31T23:00:00-05:00",  # past the end of datetime once in UTC
        "0001-01-01T00:00:00+05:00",  # before its start once in UTC
        "0005-01-01T00:00:00Z",  # a year Primero's date-time format cannot take unpadded
        "2999-01-01T00:00:00Z",  # the future
    ],
)
def test_an_instant_outside_any_real_time_is_refused_naming_the_field(
    served: Served, instant: str
) -> None:
    """Findings F3/F4: such instants were accepted (202) and then broke: a 500 (the state
    store's UTC conversion overflowed) or a dead letter (Primero refused the row's date)."""
    codes = sorted(c for c in served.referral_codes if c.startswith("cp1.police."))
    if not codes:
        body = referral_body()
        accepted = httpx.post(
            f"{served.url}/v1/referrals",
            json=body,
            headers=served.headers("", "police"),
            timeout=30,
        )
        codes = [accepted.json()["case_code"]]
        served.referral_codes.add(codes[0])
    response = httpx.post(
        f"{served.url}/v1/fir-links",
        json=fir_body(codes[0], updated_at=instant),
        headers=served.headers("", "police"),
        timeout=30,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "fir.updated_at"
    _nothing_half_written(served)


def test_an_unknown_field_named_by_the_empty_string_is_named_in_the_error(
    served: Served,
) -> None:
    """Finding F6 (found under --long): the key "" gave field null and a message with no
    subject ("is not a field of this message")."""
    body = referral_body()
    body[""] = 1
    response = httpx.post(
        f"{served.url}/v1/referrals", json=body, headers=served.headers("", "police"), timeout=30
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("unknown_field", '""')
    assert error["message"].startswith('"" is not a field of this message')
