"""The state store: cursors, runs and leases (and, in later migrations, outbox, links, keys,
audit). SQLAlchemy Core over SQLite (WAL, the default) or PostgreSQL, through one code path."""

from adapter.state.store import Lease, RunRecord, StateStore, open_store

__all__ = ["Lease", "RunRecord", "StateStore", "open_store"]
