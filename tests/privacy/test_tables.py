"""The query-side tables in adapter/privacy/_tables.py mirror migration 2 exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from adapter.privacy import _tables
from adapter.state import StateStore


def shape(engine: sa.Engine, table: str) -> dict[str, Any]:
    inspector = sa.inspect(engine)
    return {
        "columns": [
            (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
        ],
        "pk": inspector.get_pk_constraint(table)["constrained_columns"],
        "indexes": sorted(
            (tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)
        ),
        "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
    }


def test_tables_match_the_migration(store: StateStore, tmp_path: Path) -> None:
    assert store.schema_version() >= 2
    mirror = sa.create_engine(f"sqlite:///{tmp_path}/mirror.db")
    _tables.metadata.create_all(mirror)
    if store.backend == "sqlite":
        for name in _tables.metadata.tables:
            assert shape(store.engine, name) == shape(mirror, name), name
    else:  # type names differ between backends; compare the structure
        for name in _tables.metadata.tables:
            got, want = shape(store.engine, name), shape(mirror, name)
            assert [c[0::2] for c in got["columns"]] == [c[0::2] for c in want["columns"]]
            assert got["pk"] == want["pk"], name
            # PostgreSQL reports a unique constraint as a unique index too.
            keyed = [{i[0] for i in x["indexes"]} | set(x["unique"]) for x in (got, want)]
            assert keyed[0] == keyed[1], name
    mirror.dispose()
