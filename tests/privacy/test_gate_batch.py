"""``DisclosureGate.record_many`` (a sync page's decisions in one batch) leaves exactly what one
``record`` per decision leaves: issued codes, audit entries in the same order, allow-list
security events and deletion requests, including a withdrawal and an issue of the same code in
one page."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import sqlalchemy as sa

from adapter.privacy import DisclosureGate, Stage
from adapter.privacy._tables import (
    audit_head,
    audit_log,
    deletion_requests,
    issued_codes,
    security_events,
)
from adapter.privacy.disclosure import Disclosure
from adapter.state import StateStore

from .conftest import NOW, make_case

# Primero ids are UUIDs (a case code is derived from one).
CASE = {name: str(uuid.uuid4()) for name in "abcdef"}


def _allowed(gate: DisclosureGate, case_id: str) -> Disclosure:
    decision = gate.policy.decide(
        make_case(id=case_id), "health", "referral", Stage.IDENTIFIED, codes=gate.keyring, now=NOW
    )
    assert decision.allowed and decision.case_code
    return decision


def _withdrawn(gate: DisclosureGate, case_id: str) -> Disclosure:
    refused = gate.policy.decide(
        make_case(id=case_id, consent_for_services=None),
        "health",
        "referral",
        Stage.IDENTIFIED,
        codes=gate.keyring,
        now=NOW,
    )
    assert not refused.allowed
    return dataclasses.replace(refused, consent_withdrawn=True)


def _page(gate: DisclosureGate) -> list[tuple[Disclosure, str]]:
    stopped = dataclasses.replace(
        _allowed(gate, CASE["d"]), allowed=False, allow_list_violation=("name", "telephone")
    )
    refused = gate.policy.decide(
        make_case(id=CASE["b"], consent_for_services=None),
        "health",
        "referral",
        Stage.IDENTIFIED,
        codes=gate.keyring,
        now=NOW,
    )
    return [
        (_allowed(gate, CASE["a"]), CASE["a"]),
        (refused, CASE["b"]),
        (_withdrawn(gate, CASE["c"]), CASE["c"]),  # issued before the page: deletion request
        (stopped, CASE["d"]),
        # Withdrawn, then issued later in the same page: no deletion request, as when each
        # decision was recorded on its own.
        (_withdrawn(gate, CASE["e"]), CASE["e"]),
        (_allowed(gate, CASE["e"]), CASE["e"]),
        # Issued, then withdrawn in the same page: a deletion request.
        (_allowed(gate, CASE["f"]), CASE["f"]),
        (_withdrawn(gate, CASE["f"]), CASE["f"]),
    ]


def _state(conn: sa.Connection) -> dict[str, list[tuple[Any, ...]]]:
    # Row ids are left out: PostgreSQL sequences do not roll back.
    return {
        "audit": [tuple(r) for r in conn.execute(sa.select(audit_log).order_by(audit_log.c.seq))],
        "head": [tuple(r) for r in conn.execute(sa.select(audit_head))],
        "codes": [
            tuple(r) for r in conn.execute(sa.select(issued_codes).order_by(issued_codes.c.code))
        ],
        "events": [
            (r.at, r.kind, r.department, r.detail)
            for r in conn.execute(sa.select(security_events).order_by(security_events.c.id))
        ],
        "deletions": [
            (r.department, r.case_code, r.reason, r.status, r.requested_at)
            for r in conn.execute(sa.select(deletion_requests).order_by(deletion_requests.c.id))
        ],
    }


def test_record_many_leaves_what_one_record_per_decision_leaves(
    store: StateStore, gate: DisclosureGate
) -> None:
    with store.transaction() as conn:
        gate.record(conn, _allowed(gate, CASE["c"]), CASE["c"], now=NOW)
    page = _page(gate)

    def after(batched: bool) -> dict[str, list[tuple[Any, ...]]]:
        with store.engine.connect() as conn:
            transaction = conn.begin()
            try:
                if batched:
                    gate.record_many(conn, page, now=NOW)
                else:
                    for decision, case_id in page:
                        gate.record(conn, decision, case_id, now=NOW)
                return _state(conn)
            finally:
                transaction.rollback()

    single, batched = after(batched=False), after(batched=True)
    assert batched == single

    page_entries = [json.loads(row[3]) for row in batched["audit"]][-10:]
    assert [entry["event"] for entry in page_entries] == [
        "disclosure",
        "refusal",
        "refusal",
        "deletion_requested",
        "refusal",
        "refusal",
        "disclosure",
        "disclosure",
        "refusal",
        "deletion_requested",
    ]
    codes = {
        gate.keyring.case_code(c, "health") for c in (CASE["a"], CASE["c"], CASE["e"], CASE["f"])
    }
    assert {row[0] for row in batched["codes"]} == codes
    assert [e[1:3] for e in batched["events"]][-1:] == [("allow_list_violation", "health")]
    assert "telephone" in batched["events"][-1][3] and CASE["d"] not in batched["events"][-1][3]
    assert [d[1] for d in batched["deletions"]] == [
        gate.keyring.case_code(CASE["c"], "health"),
        gate.keyring.case_code(CASE["f"], "health"),
    ]


def test_an_empty_page_records_nothing(store: StateStore, gate: DisclosureGate) -> None:
    with store.transaction() as conn:
        before = _state(conn)
        gate.record_many(conn, [], now=NOW)
        assert _state(conn) == before
