"""Retention of what the adapter holds about closed cases (policy §3.6; privacy.md §6.7).

* :func:`run_retention` — one pass: archive closed cases under per-case keys (counting each
  once in the aggregates), un-archive reopened ones, crypto-shred those past ``retain_years``
  (the tombstone stays); the CLI's ``retention run`` and the daemon's daily job call it;
* :func:`is_destroyed` / :func:`destroyed_cases` — for the sync engine: a tombstoned case is
  never referred or archived again;
* :func:`release` — the published statistics, with small-cell, change and complementary
  suppression (``retention stats``);
* :func:`backup_store` / :func:`restore_store` — ``db backup`` and ``db restore``; a restore
  re-shreds whatever is due before anything else runs.

The package never imports ``adapter.config`` at runtime (config mounts ``RetentionSettings``).
"""

from adapter.config.retention import RetentionSettings
from adapter.retention.backup import (
    BackupInfo,
    RestoreInfo,
    backup_schema_version,
    backup_store,
    reshred,
    restore_store,
)
from adapter.retention.errors import BackupError, RetentionError
from adapter.retention.run import (
    FIELDS,
    RetentionReport,
    destroy_due,
    destroyed_cases,
    is_destroyed,
    run_retention,
)
from adapter.retention.stats import Release, StatRow, release, suppress_block

__all__ = [
    "FIELDS",
    "BackupError",
    "BackupInfo",
    "Release",
    "RestoreInfo",
    "RetentionError",
    "RetentionReport",
    "RetentionSettings",
    "StatRow",
    "backup_schema_version",
    "backup_store",
    "destroy_due",
    "destroyed_cases",
    "is_destroyed",
    "release",
    "reshred",
    "restore_store",
    "run_retention",
    "suppress_block",
]
