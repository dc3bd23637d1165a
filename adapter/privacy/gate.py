"""The disclosure gate: the pure decision plus its bookkeeping, in one transaction.

``DisclosureGate.disclose`` is what the sync engine calls per case, department and purpose:

1. loads the adapter's overrides for the case;
2. runs ``DisclosurePolicy.decide`` (pure);
3. records the issued case code (so a rotation can re-issue it), or — when consent was
   withdrawn and the department already holds the case — queues a deletion request;
4. appends the decision to the hash-chained audit log,

all committed together, while the case's names, narratives and identifiers are registered with
the log filter so even an unexpected log line inside the call cannot carry them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from adapter.clock import utcnow
from adapter.privacy.audit import append_entries, append_entry
from adapter.privacy.codes import CaseCodes
from adapter.privacy.consent import (
    ConsentOverride,
    insert_override,
    load_overrides,
    revoke_override,
)
from adapter.privacy.deletion import queue_deletion_request
from adapter.privacy.disclosure import Disclosure, DisclosurePolicy, Stage
from adapter.privacy.errors import CodeRefused, OverrideRejected
from adapter.privacy.events import SecurityEventKind, record_security_event
from adapter.privacy.explain import Explanation, from_disclosure
from adapter.privacy.keys import KeyRing
from adapter.privacy.log_filter import sensitive_values
from adapter.privacy.policy import JOIN_KEYS
from adapter.privacy.probe import Population
from adapter.state import StateStore

_CLOCK_SKEW = timedelta(minutes=5)
# Kinds whose values the log filter must hide while a case is processed.
_LOG_SENSITIVE_KINDS = frozenset(
    {
        "identity",
        "identifier",
        "contact",
        "family",
        "address",
        "perpetrator",
        "narrative",
        "free_text",
    }
)


class DisclosureGate:
    """Decide, record and audit disclosures for one state store."""

    def __init__(self, store: StateStore, policy: DisclosurePolicy, keyring: KeyRing) -> None:
        self.store = store
        self.policy = policy
        self.keyring = keyring
        self.codes = CaseCodes(store, keyring)

    def disclose(
        self,
        case: Mapping[str, Any],
        department: str,
        purpose: str,
        stage: Stage,
        *,
        referral: Mapping[str, Any] | None = None,
        population: Population | None = None,
        now: datetime | None = None,
    ) -> Disclosure:
        """Decide one disclosure and record it (issued code, deletion request, audit entry)."""
        now = now or utcnow()
        case_id = str(case.get("id") or "")
        with sensitive_values(self._log_sensitive(case)), self.store.transaction() as conn:
            decision = self.policy.decide(
                case,
                department,
                purpose,
                stage,
                codes=self.keyring,
                overrides=load_overrides(conn, case_id),
                referral=referral,
                now=now,
                population=population,
            )
            self.record(conn, decision, case_id, now=now)
        return decision

    def overrides(self, case_id: str) -> list[ConsentOverride]:
        """The adapter's recorded overrides for one case (read in a short transaction)."""
        with self.store.transaction() as conn:
            return load_overrides(conn, case_id)

    def overrides_many(self, case_ids: Iterable[str]) -> dict[str, list[ConsentOverride]]:
        """The recorded overrides of many cases, in one transaction (a sync page's cases)."""
        with self.store.transaction() as conn:
            return {case_id: load_overrides(conn, case_id) for case_id in case_ids}

    def record(
        self, conn: Connection, decision: Disclosure, case_id: str, *, now: datetime | None = None
    ) -> None:
        """Record a decision in the caller's transaction: the issued code, the audit entry and,
        after a withdrawal of consent, the deletion request (the one-decision case of
        :meth:`record_many`)."""
        self.record_many(conn, [(decision, case_id)], now=now)

    def record_many(
        self,
        conn: Connection,
        decisions: Sequence[tuple[Disclosure, str]],
        *,
        now: datetime | None = None,
    ) -> None:
        """Record ``(decision, case_id)`` pairs in order in the caller's transaction: what
        :meth:`record` does for each, with the issued codes and the audit entries written in
        one batch each. The sync engine calls this inside the transaction that also commits
        the page's outbox rows and cursor (BENCHMARKS.md: seven statements per referral were
        a quarter of the engine's time).

        The audit log receives the same entries in the same order as one ``record`` per
        decision would append: each decision's entry, followed by its deletion request's.
        """
        now = now or utcnow()
        issued = [
            (decision.department, decision.case_code)
            for decision, _ in decisions
            if decision.allowed and decision.case_code is not None
        ]
        new_codes = self.codes.record_issued_many(conn, issued, now=now)
        issued_so_far: set[str] = set()
        entries: list[dict[str, Any]] = []
        for decision, case_id in decisions:
            entry = decision.audit_entry()
            entry["case_ref"] = self.case_ref(case_id)
            entries.append(entry)
            if decision.allowed and decision.case_code is not None:
                issued_so_far.add(decision.case_code)
            if decision.allow_list_violation:
                # Field names only (never values): what the final guard stopped (disclosure.py).
                names = ", ".join(decision.allow_list_violation)
                record_security_event(
                    conn,
                    SecurityEventKind.ALLOW_LIST_VIOLATION,
                    department=decision.department,
                    detail=(
                        f"fields not on the allow-list of {decision.department}/"
                        f"{decision.purpose} were about to leave and were stopped: {names}"
                    ),
                    now=now,
                )
            if not decision.allowed and decision.consent_withdrawn:
                # A code this batch records only counts once its decision came before this
                # one, as when each decision was recorded on its own.
                deletion = self._request_deletion(
                    conn, case_id, decision.department, now, not_yet=new_codes - issued_so_far
                )
                if deletion is not None:
                    entries.append(deletion)
        append_entries(conn, self.keyring, entries, now=now)

    def explain(
        self,
        case: Mapping[str, Any],
        department: str,
        purpose: str,
        *,
        stage: Stage = Stage.IDENTIFIED,
        overrides: Iterable[ConsentOverride] | None = None,
        referral: Mapping[str, Any] | None = None,
        population: Population | None = None,
        now: datetime | None = None,
    ) -> Explanation:
        """What ``disclose`` would send and why, field by field; nothing is recorded.
        ``overrides`` default to the ones recorded in the adapter for the case."""
        if overrides is None:
            with self.store.transaction() as conn:
                overrides = load_overrides(conn, str(case.get("id") or ""))
        decision = self.policy.decide(
            case,
            department,
            purpose,
            stage,
            codes=self.keyring,
            overrides=overrides,
            referral=referral,
            now=now,
            population=population,
        )
        return from_disclosure(decision)

    def record_override(
        self, override: ConsentOverride, *, now: datetime | None = None
    ) -> ConsentOverride:
        """Store an override or S3 approval after validating it; audited. Raises
        OverrideRejected (requester = approver, no legal reference, longer than 72 h …)."""
        now = now or utcnow()
        # The 72-hour limit runs from the recording: a back- or forward-dated override could
        # otherwise stretch it.
        if abs(override.created_at - now) > _CLOCK_SKEW:
            raise OverrideRejected(
                "override rejected: created_at must be the time of recording (now)."
            )
        with sensitive_values([override.reason]), self.store.transaction() as conn:
            stored = insert_override(conn, override)
            append_entry(
                conn,
                self.keyring,
                {
                    "event": "override_recorded",
                    "case_ref": self.case_ref(override.case_id),
                    "department": override.department,
                    "purpose": override.purpose,
                    "consent_basis": str(override.basis),
                    "override_id": stored.id,
                },
                now=override.created_at,
            )
        return stored

    def revoke_override(self, override_id: int, *, now: datetime | None = None) -> bool:
        """End an override before it expires; audited."""
        now = now or utcnow()
        with self.store.transaction() as conn:
            done = revoke_override(conn, override_id, now)
            if done:
                append_entry(
                    conn,
                    self.keyring,
                    {"event": "override_revoked", "override_id": override_id},
                    now=now,
                )
        return done

    def case_ref(self, case_id: str) -> str:
        """The audit log's own pseudonym of a case (never sent anywhere): lets a subject-access
        request find every disclosure of one child across departments. Keyed with the first
        audit key so it survives audit-key rotations."""
        _, key = self.keyring.audit_key(1)
        return hmac.new(key, f"case-ref|{case_id}".encode(), hashlib.sha256).hexdigest()[:32]

    def _request_deletion(
        self,
        conn: Connection,
        case_id: str,
        department: str,
        now: datetime,
        *,
        not_yet: set[str],
    ) -> dict[str, Any] | None:
        """Queue the deletion request; its audit entry, or None when none was queued. Codes
        in ``not_yet`` are recorded in this transaction by a later decision: not issued yet."""
        # Only a department that actually received the case gets a deletion request; the code
        # it knows is the current one (a rotation re-issued older ones via the crosswalk).
        try:
            code = self.keyring.case_code(case_id, department)
        except CodeRefused:
            return None
        if (
            code not in not_yet
            and self.codes.was_issued(conn, code)
            and queue_deletion_request(conn, department, code, now=now)
        ):
            return {
                "event": "deletion_requested",
                "department": department,
                "case_code": code,
                "case_ref": self.case_ref(case_id),
                "reason": "consent withdrawn in Primero",
            }
        return None

    def _log_sensitive(self, case: Mapping[str, Any]) -> Iterator[str]:
        # Uncatalogued fields count as sensitive; record identifiers do not (STYLE.md lets
        # messages name record UUIDs, and they are what an operator needs to find a case).
        kinds = self.policy.policy.field_kinds
        for key, value in case.items():
            rows = value if isinstance(value, list) else [value]
            for row in rows:
                if isinstance(row, Mapping):
                    for sub, subvalue in row.items():
                        if _log_sensitive_path(kinds, f"{key}.{sub}"):
                            yield from _texts(subvalue)
                elif _log_sensitive_path(kinds, str(key)):
                    yield from _texts(row)


def _log_sensitive_path(kinds: Mapping[str, str], path: str) -> bool:
    if any(part in JOIN_KEYS for part in path.split(".")):
        return False
    return kinds.get(path, "narrative") in _LOG_SENSITIVE_KINDS


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                yield item
