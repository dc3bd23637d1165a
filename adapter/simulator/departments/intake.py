"""The writes every simulated department takes: receive, update, cancel, erase.

A department keeps one record per referral key (the adapter's key for the Primero referral).
Receiving a referral it already holds makes a new version of that record, never a second one;
erasing (the adapter's answer to withdrawn consent) drops the body and keeps only a tombstone.
"""

from __future__ import annotations

from collections.abc import Callable

from adapter.simulator.departments.app import find, referral_key_of
from adapter.simulator.departments.state import DepartmentState, Json, Record

Answer = tuple[int, Json]
ReceiptOf = Callable[[Record], Json]


def receive(
    state: DepartmentState, body: Json, collection: str, prefix: str, receipt: ReceiptOf
) -> Answer:
    key = referral_key_of(body)
    if key is None:
        return 422, {"error": "referral_key is required"}
    record = state.receive(collection, key, body, prefix)
    return (201 if record.versions == 1 else 200), receipt(record)


def update(state: DepartmentState, key: str, body: Json, receipt: ReceiptOf) -> Answer:
    record = find(state, key)
    if record is None:
        return 404, {"error": "no such referral"}
    if record.body is None:
        return 410, {"error": "erased at the adapter's request"}
    state.receive(record.collection, key, body, "")
    return 200, receipt(record)


def cancel(state: DepartmentState, key: str, body: Json) -> Answer:
    record = find(state, key)
    if record is None:
        return 404, {"error": "no such referral"}
    reason = body.get("reason")
    state.report(record, "cancelled", reason=reason if isinstance(reason, str) else None)
    return 200, {"referral_key": key, "status": "cancelled"}


def erase(state: DepartmentState, key: str) -> Answer:
    record = find(state, key)
    if record is None:
        return 404, {"error": "no such referral"}
    record.body = None
    state.report(record, "erased", reason="consent-withdrawn")
    return 200, {"referral_key": key, "status": "erased"}
