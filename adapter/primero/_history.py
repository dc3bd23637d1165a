"""Record history and users: what the adapter reads to prove who recorded a decision.

- ``GET /api/v2/cases/:id/record_history`` (record_histories_controller.rb) needs the case
  permission ``change_log``; entries come newest first (historical.rb ``ordered_histories``),
  ``filters[field_names][0]=<field>`` keeps the entries that changed that field
  (``record_changes ?| array[...]``), and ``per`` is capped at 1000 (pagination.rb).
- ``GET /api/v2/users?user_name=<name>`` (users_controller.rb#index) needs Users: read; which
  users a reader sees follows its role's scope (permitted_users_service.rb).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from adapter.primero._requester import CASES, Requester, record_id

HISTORY_PER = 100
_MAX_HISTORY_PAGES = 50  # 5,000 entries of one field: far more than any case has


class HistoryMixin(Requester):
    """`/api/v2/cases/:id/record_history` and `/api/v2/users`."""

    def iter_record_history(
        self, case_id: str, field_names: Sequence[str] = (), *, per: int = HISTORY_PER
    ) -> Iterator[dict[str, Any]]:
        """The case's record-history entries, newest first, one page at a time (a caller that
        has what it needs stops early and saves the later pages).

        Entries are Primero's ``{record_id, record_type, datetime, user_name, action,
        record_changes: [{field: {from, to}}]}``. Raises PrimeroForbidden without
        ``change_log``."""
        path = f"{CASES}/{record_id(case_id)}/record_history"
        params: dict[str, Any] = {"per": per}
        for i, name in enumerate(field_names):
            params[f"filters[field_names][{i}]"] = name
        seen = 0
        for page in range(1, _MAX_HISTORY_PAGES + 1):
            data, metadata = self._get_envelope(path, {**params, "page": page})
            batch = self._list("GET", path, data)
            yield from batch
            seen += len(batch)
            total = metadata.get("total")
            if not batch or len(batch) < per or (isinstance(total, int) and seen >= total):
                return

    def find_user(self, user_name: str) -> dict[str, Any] | None:
        """The Primero user with exactly this ``user_name`` (None when the adapter's account
        cannot see one): ``role_unique_id``, ``user_group_unique_ids``, ``disabled``…"""
        path = "/api/v2/users"
        data, _ = self._get_envelope(path, {"user_name": user_name, "per": 2})
        for user in self._list("GET", path, data):
            if user.get("user_name") == user_name:
                return user
        return None
