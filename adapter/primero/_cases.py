"""Cases: incremental listing, read, create, update with dropped-field detection, write-back."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from adapter.errors import InvalidCaseReference, PrimeroNoOp, UnknownCase
from adapter.primero._dropped import stored_as_sent, with_row_ids
from adapter.primero._errors import malformed
from adapter.primero._paging import Batch, floor_second, format_bound, iter_pages, range_param
from adapter.primero._requester import CASES, UUID, Requester, record_id, segment
from adapter.primero._transport import Replay
from adapter.primero.models import CasePage, CreateResult, Record, UpdateResult

MAX_PER = 1000  # Primero silently caps `per` at 1000 (pagination.rb; primero-api.md §3)
SYNC_STATUSES = ("synced", "not_found", "failed")
_RESERVED = frozenset({"last_updated_at", "order_by", "order", "page", "per", "fields"})
# What a CPO reads in Primero: `short_id` (the last 7 hex digits of the case's
# unique_identifier) or `case_id_display` (an optional case_id_code and separator, then the
# short id) (primero-api.md §4). Anything else (a name, a CNIC) is never sent as a search.
_DISPLAY_ID = re.compile(r"^[A-Za-z0-9_./-]{0,48}[0-9a-fA-F]{7}$")
_DISPLAY_FIELDS = ("short_id", "case_id_display")


def query_value(value: Any) -> str:
    """A filter value as Primero's DestringifyService reads it: `a,b` lists, `true`/`false`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_bound(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(query_value(item) for item in value)
    return str(value)


class CasesMixin(Requester):
    """`/api/v2/cases` and its flags and sync sub-resources."""

    _page_size: int

    # --- listing ---------------------------------------------------------------------------

    def list_cases(
        self, params: Mapping[str, Any] | None = None
    ) -> tuple[list[Record], dict[str, Any]]:
        """One raw page of `GET /api/v2/cases`: (records, metadata {total, per, page}).

        `params` are passed as Primero's filters (lists become `a,b`, booleans `true`/`false`).
        They never reach a log line or an exception: they may hold search terms.
        """
        query = {key: query_value(value) for key, value in (params or {}).items()}
        data, metadata = self._get_envelope(CASES, query)
        return self._list("GET", CASES, data), metadata

    def iter_case_pages(
        self,
        updated_since: datetime | None,
        updated_until: datetime | None = None,
        fields: Sequence[str] | None = None,
        filters: Mapping[str, Any] | None = None,
        per: int | None = None,
    ) -> Iterator[CasePage]:
        """Every case with `last_updated_at` in `[updated_since, updated_until]`, page by page.

        Bounds are compared at whole seconds and are both inclusive; they must be timezone-aware.
        Each record that existed when the listing started is yielded at least once, even while
        cases are edited concurrently; one edited during the listing may be yielded again with
        its new `last_updated_at`, and one edited past `updated_until` is left to the next
        window (see `_paging`). Give an `updated_until` some seconds in the past (the sync
        lag): records still being saved in the current second are then never at stake.
        `fields` limits what Primero returns (`id`
        and `last_updated_at` are always added); `filters` adds Primero filters such as
        `{"record_state": True, "module_id": "primeromodule-cp"}`.
        """
        since = floor_second(updated_since) if updated_since is not None else None
        until = floor_second(updated_until) if updated_until is not None else None
        size = min(per or self._page_size, MAX_PER)
        if size < 1:
            raise ValueError("per must be at least 1")
        base: dict[str, Any] = {"order_by": "last_updated_at", "order": "asc", "per": size}
        if fields is not None:
            wanted = dict.fromkeys(["id", "last_updated_at", *fields])
            base["fields"] = ",".join(wanted)
        for key, value in (filters or {}).items():
            if key in _RESERVED:
                raise ValueError(f"filter '{key}' is set by iter_cases itself; remove it")
            base[key] = query_value(value)

        def fetch(lower: datetime | None, upper: datetime | None, page: int) -> Batch:
            params = {**base, "page": page}
            window = range_param(lower, upper)
            if window is not None:
                params["last_updated_at"] = window
            records, metadata = self.list_cases(params)
            total = metadata.get("total")
            if not isinstance(total, int):
                raise malformed("GET", CASES, 200, "has no integer metadata.total")
            applied = metadata.get("per")
            applied = applied if isinstance(applied, int) and 0 < applied < size else size
            return Batch(records, total, applied)

        return iter_pages(fetch, since=since, until=until, where=f"GET {CASES}")

    def iter_cases(
        self,
        updated_since: datetime | None,
        updated_until: datetime | None = None,
        fields: Sequence[str] | None = None,
        filters: Mapping[str, Any] | None = None,
        per: int | None = None,
    ) -> Iterator[Record]:
        """Every case updated in the window, record by record (see :meth:`iter_case_pages`)."""
        for page in self.iter_case_pages(updated_since, updated_until, fields, filters, per):
            yield from page.records

    # --- finding a case by what people call it ------------------------------------------------

    def resolve_case_id(self, reference: str) -> str:
        """Primero's record ``id`` for a case named by its ``id`` (UUID), its ``short_id`` (7 hex
        digits) or its ``case_id_display``, as a CPO reads it in Primero.

        A UUID is returned as it is (no request). Anything else is looked up with
        ``GET /api/v2/cases?id_search=true&query=...`` (primero-api.md §4, §10 case 4), which
        matches *parts* of several identifier fields; only a case whose ``short_id`` or
        ``case_id_display`` equals the reference counts. Raises :class:`InvalidCaseReference`
        for something that cannot be a case id, :class:`UnknownCase` when no case, or more than
        one, visible to the account has it. Neither message repeats the reference.
        """
        text = reference.strip() if isinstance(reference, str) else ""
        if UUID.match(text):
            return text.lower()
        if not _DISPLAY_ID.match(text):
            raise InvalidCaseReference(
                "a case is named by Primero's record id (a UUID) or its short id / "
                "case_id_display (ending in 7 hexadecimal digits, e.g. 5c52392); what was given "
                "is neither"
            )
        wanted = text.lower()
        params = {
            "id_search": "true",
            "query": text,
            "fields": ",".join(("id", *_DISPLAY_FIELDS)),
        }
        candidates = []
        for record in self._collect(CASES, params):
            shown = [record.get(name) for name in _DISPLAY_FIELDS]
            readable = [value for value in shown if isinstance(value, str)]
            # A role that cannot read either field still got the case through Primero's own
            # identifier match: count it, and let ambiguity be decided below.
            if not readable or any(value.lower() == wanted for value in readable):
                candidates.append(record.get("id"))
        ids = sorted({value for value in candidates if isinstance(value, str)})
        if len(ids) == 1:
            return record_id(ids[0])
        if not ids:
            raise UnknownCase(
                "no case visible to the adapter's Primero account has this short id or "
                "case_id_display: check it in Primero (a case outside the account's scope is "
                "not found either), or give the case's id (UUID)",
                status=404,
                method="GET",
                resource=CASES,
            )
        raise UnknownCase(
            f"{len(ids)} cases share this short id: give the case's id (the UUID in its Primero "
            "address, or from `cpims-adapter primero cases`)",
            ambiguous=True,
            status=200,
            method="GET",
            resource=CASES,
        )

    # --- single records --------------------------------------------------------------------

    def get_case(self, case_id: str, fields: Sequence[str] | None = None) -> Record:
        """`GET /api/v2/cases/:id`, optionally only `fields` (always intersected with what the
        role may read)."""
        path = f"{CASES}/{record_id(case_id)}"
        params = {"fields": ",".join(fields)} if fields else None
        return self._dict("GET", path, self._data("GET", path, params=params))

    def create_case(self, data: Mapping[str, Any], id: str | None = None) -> CreateResult:
        """Create a case. Pass `id` (a UUID you generate) to make this safe to retry.

        With an id Primero answers 204 without a body, and 409 if that id exists: then
        ``created`` is False and no exception is raised. Without an id the POST is not
        idempotent, so it is retried only when it certainly never reached Primero.
        """
        client_id = id or data.get("id")
        if client_id is None:
            response = self._call("POST", CASES, json={"data": dict(data)}, replay=Replay.UNSENT)
            stored = self._dict("POST", CASES, self._envelope("POST", CASES, response)[0])
            new_id = stored.get("id")
            if not isinstance(new_id, str):
                raise malformed("POST", CASES, response.status_code, "has no case id")
            return CreateResult(new_id, True, stored)
        client_id = record_id(client_id, "id")
        response = self._call(
            "POST",
            CASES,
            json={"data": {**data, "id": client_id}},
            replay=Replay.SAFE,  # a repeat answers 409, which means "already there"
            accept=frozenset({409}),
        )
        if response.status_code == 409:
            return CreateResult(client_id, False, None)
        body = self._json("POST", CASES, response)
        stored_data = body.get("data") if isinstance(body, dict) else None
        return CreateResult(client_id, True, stored_data if isinstance(stored_data, dict) else None)

    def update_case(
        self,
        case_id: str,
        data: Mapping[str, Any],
        *,
        record_action: str | None = None,
        verify: bool = True,
    ) -> UpdateResult:
        """PATCH a case (a deep merge) and report the field names Primero silently dropped.

        New subform rows get a client `unique_id` first, so a retry updates instead of
        appending. Primero answers 200 even when it drops fields the role cannot write, and its
        answer lists only changed fields; with `verify` each sent top-level field missing from
        the answer is read back (one GET with `fields=`) and compared. `record_action` is
        Primero's privileged partial update (e.g. "services_section_from_case").
        """
        path = f"{CASES}/{record_id(case_id)}"
        payload = with_row_ids(data)
        body: dict[str, Any] = {"data": payload}
        if record_action:
            body["record_action"] = record_action
        answer = self._dict("PATCH", path, self._data("PATCH", path, json=body))
        if not verify:
            return UpdateResult(answer, [])
        dropped = [
            key
            for key in payload
            if key in answer and not stored_as_sent(payload[key], answer[key])
        ]
        unanswered = [key for key in payload if key not in answer]
        if unanswered:
            stored = self.get_case(case_id, fields=unanswered)
            dropped += [
                key for key in unanswered if not stored_as_sent(payload[key], stored.get(key))
            ]
        return UpdateResult(answer, sorted(dropped))

    def disable_case(self, case_id: str) -> Record:
        """Disable a case (`record_state=false`); Primero never hard-deletes through the API."""
        path = f"{CASES}/{record_id(case_id)}"
        return self._dict("DELETE", path, self._data("DELETE", path))

    # --- write-back and webhooks (primero-api.md §7) ----------------------------------------

    def mark_synced(
        self, case_id: str, url: str, status: str = "synced", *, verify: bool = True
    ) -> None:
        """Record the outcome of a webhook delivery on the case (`sync_status` in Primero's UI).

        Needs `case:sync_external`; without it Primero drops the fields silently. The same
        permission makes `sync_status` readable [permitted_field_service.rb#external_sync?], so
        with `verify` a read-back that lacks it raises PrimeroNoOp.
        """
        if status not in SYNC_STATUSES:
            raise ValueError(f"status must be one of {', '.join(SYNC_STATUSES)}")
        path = f"{CASES}/{record_id(case_id)}"
        # mark_synced must be true: Primero logs only when it or the status is present
        # (webhookable.rb#valid_sync_log); the fields are consumed, never stored.
        self._data(
            "PATCH",
            path,
            json={
                "data": {"mark_synced": True, "mark_synced_url": url, "mark_synced_status": status}
            },
        )
        if verify and "sync_status" not in self.get_case(case_id, fields=["sync_status"]):
            raise PrimeroNoOp(
                f"PATCH {path}: Primero answered 200 but did not record the sync status: the "
                "integration role lacks the case:sync_external permission. Grant it in Primero.",
                status=200,
                method="PATCH",
                resource=path,
            )

    def request_sync(self, case_id: str) -> Record:
        """`POST /cases/:id/sync`: ask Primero to push the case to its webhooks (`case.post`).
        Safe to repeat: a second push only delivers the same case again."""
        path = f"{CASES}/{record_id(case_id)}/sync"
        return self._dict("POST", path, self._data("POST", path, json={}, replay=Replay.SAFE))

    # --- flags (primero-api.md §8) ------------------------------------------------------------

    def list_flags(self, case_id: str) -> list[Record]:
        """The case's flags."""
        path = f"{CASES}/{record_id(case_id)}/flags"
        return self._list("GET", path, self._data("GET", path))

    def add_flag(self, case_id: str, message: str, date: date | None = None) -> Record:
        """Flag a case; `date` defaults to today in Primero. Not repeated after a timeout."""
        path = f"{CASES}/{record_id(case_id)}/flags"
        data: dict[str, Any] = {"message": message}
        if date is not None:
            data["date"] = date.isoformat()
        return self._dict(
            "POST", path, self._data("POST", path, json={"data": data}, replay=Replay.UNSENT)
        )

    def unflag(self, case_id: str, flag_id: int | str, message: str) -> Record:
        """Remove a flag (`PATCH .../flags/:id {"unflag_message": ...}`)."""
        path = f"{CASES}/{record_id(case_id)}/flags/{segment(flag_id, 'flag_id')}"
        return self._dict(
            "PATCH", path, self._data("PATCH", path, json={"data": {"unflag_message": message}})
        )
