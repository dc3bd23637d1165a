"""A page's links in one batch (``Links.upsert_many``), on both backends: the links one
``upsert`` per row would leave, new and known keys mixed, a key repeated in the batch, more keys
than one lookup takes."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from adapter.state import StateStore, schema
from adapter.state.links import Links


def _values(n: int, stage: str = "identified") -> dict[str, Any]:
    return {
        "job": "health",
        "department": "health",
        "case_id": f"case-{n}",
        "referral_id": f"ref-{n}",
        "case_code": f"code-{n}",
        "stage": stage,
        "content_hash": f"hash-{n}-{stage}",
        "primero_status": "in_progress",
    }


def _links(conn: sa.Connection) -> list[dict[str, Any]]:
    # Timestamps are left out: each call takes its own instant.
    rows = conn.execute(sa.select(schema.links).order_by(schema.links.c.link_key))
    return [
        {k: v for k, v in row._mapping.items() if k not in ("created_at", "updated_at")}
        for row in rows
    ]


def test_upsert_many_leaves_what_one_upsert_per_row_leaves(store: StateStore) -> None:
    links = Links(store)
    with store.transaction() as conn:
        for n in range(0, 1_200, 3):  # a third of the page's links are known already
            links.upsert(conn, f"health:ref-{n}", **_values(n, stage="probe"), external_ref=f"x{n}")
    # More keys than one lookup takes (500); ref-7 twice: its second row wins, as in order.
    page: list[tuple[str, dict[str, Any]]] = [(f"health:ref-{n}", _values(n)) for n in range(1_200)]
    page.append(("health:ref-7", {"stage": "cancelled", "remote_status": "rejected"}))

    def after(batched: bool) -> list[dict[str, Any]]:
        with store.engine.connect() as conn:
            transaction = conn.begin()
            try:
                if batched:
                    links.upsert_many(conn, page)
                else:
                    for key, values in page:
                        links.upsert(conn, key, **values)
                return _links(conn)
            finally:
                transaction.rollback()

    batched = after(batched=True)
    assert batched == after(batched=False)
    assert len(batched) == 1_200
    by_key = {row["link_key"]: row for row in batched}
    assert by_key["health:ref-3"]["stage"] == "identified"
    assert by_key["health:ref-3"]["external_ref"] == "x3"  # a column not given is kept
    assert by_key["health:ref-7"]["stage"] == "cancelled"
    assert by_key["health:ref-7"]["content_hash"] == "hash-7-identified"
    assert by_key["health:ref-7"]["remote_status"] == "rejected"


def test_upsert_many_stamps_new_and_known_links(store: StateStore) -> None:
    links = Links(store)
    links.update("health:ref-1", **_values(1))
    before = links.get("health:ref-1")
    assert before is not None
    with store.transaction() as conn:
        links.upsert_many(
            conn, [("health:ref-1", {"stage": "withdrawn"}), ("health:ref-2", _values(2))]
        )
    known, new = links.get("health:ref-1"), links.get("health:ref-2")
    assert known is not None and new is not None
    assert known.created_at == before.created_at and known.updated_at >= before.updated_at
    assert known.stage == "withdrawn" and new.case_code == "code-2"
    assert new.created_at == new.updated_at


def test_an_unknown_column_is_refused_before_anything_is_written(store: StateStore) -> None:
    links = Links(store)
    with pytest.raises(ValueError, match="unknown link columns: \\['name'\\]"):
        with store.transaction() as conn:
            links.upsert_many(conn, [("health:ref-1", _values(1)), ("health:ref-2", {"name": "x"})])
    assert links.get("health:ref-1") is None
