"""The query-side tables in adapter/console/_tables.py mirror migration 11 exactly."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from adapter.console import _tables
from adapter.state import StateStore
from tests.privacy.test_tables import shape


def test_tables_match_the_migration(store: StateStore, tmp_path: Path) -> None:
    assert store.schema_version() >= 11
    mirror = sa.create_engine(f"sqlite:///{tmp_path}/mirror.db")
    _tables.metadata.create_all(mirror)
    assert set(_tables.metadata.tables) == {
        "console_accounts",
        "console_sessions",
        "console_oidc_logins",
        "console_sign_in_failures",
        "console_review_assignments",
    }
    for name in _tables.metadata.tables:
        got, want = shape(store.engine, name), shape(mirror, name)
        if store.backend == "sqlite":
            assert got == want, name
            continue
        assert [c[0::2] for c in got["columns"]] == [c[0::2] for c in want["columns"]], name
        assert got["pk"] == want["pk"], name
        keyed = [{i[0] for i in x["indexes"]} | set(x["unique"]) for x in (got, want)]
        assert keyed[0] == keyed[1], name
    mirror.dispose()
