"""Referrals: create (single, bulk, one by one) and the status life-cycle (primero-api.md §5)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from adapter.errors import PrimeroError, PrimeroNoOp, PrimeroValidationError
from adapter.primero._errors import error_from_response, malformed
from adapter.primero._paging import record_time
from adapter.primero._requester import CASES, Requester, record_id
from adapter.primero._transport import Replay
from adapter.primero.models import Record, ReferralOutcome

# Which status each action may leave from (referral.rb#process!, #revoke!).
_ALLOWED_FROM = {"accepted": "in_progress", "rejected": "in_progress", "done": "accepted"}
_STATUS_WORD = re.compile(r"^[a-z_]{1,30}$")
# Keys that identify "the same referral" when reconciling a failed bulk request.
_MATCH_KEYS = (
    "transitioned_to",
    "transitioned_to_agency",
    "transitioned_to_remote",
    "service",
    "notes",
)


def referral_payload(
    *,
    transitioned_to: str | None = None,
    remote: bool = False,
    transitioned_to_agency: str | None = None,
    transitioned_to_remote: str | None = None,
    service: str | None = None,
    service_record_id: str | None = None,
    notes: str | None = None,
    consent_overridden: bool = False,
    type_of_export: str | None = None,
    authorized_role_unique_id: str | None = None,
    allow_case_creation: bool | None = None,
) -> dict[str, Any]:
    """The `data` of a referral POST, with only the keys Primero permits
    (referrals_controller.rb#refer)."""
    if not remote and not transitioned_to:
        raise ValueError(
            "transitioned_to (a Primero user_name) is required unless remote=True "
            "(an external referral only records the agency and recipient as text)"
        )
    data: dict[str, Any] = {"remote": remote, "consent_overridden": consent_overridden}
    optional = {
        "transitioned_to": transitioned_to,
        "transitioned_to_agency": transitioned_to_agency,
        "transitioned_to_remote": transitioned_to_remote,
        "service": service,
        "service_record_id": service_record_id,
        "notes": notes,
        "type_of_export": type_of_export,
        "authorized_role_unique_id": authorized_role_unique_id,
        "allow_case_creation": allow_case_creation,
    }
    data.update({key: value for key, value in optional.items() if value is not None})
    return data


class ReferralsMixin(Requester):
    """`/api/v2/cases/:id/referrals`, `/transitions` and `/api/v2/cases/referrals`."""

    def list_referrals(self, case_id: str) -> list[Record]:
        """The case's referrals visible to the account (scoped by group permission)."""
        path = f"{CASES}/{record_id(case_id)}/referrals"
        return self._list("GET", path, self._data("GET", path))

    def list_transitions(self, case_id: str, types: Sequence[str] = ("Referral",)) -> list[Record]:
        """The case's transitions of the given types (Referral, Transfer, Assign, ...)."""
        path = f"{CASES}/{record_id(case_id)}/transitions"
        params = {"types": ",".join(types)} if types else None
        return self._list("GET", path, self._data("GET", path, params=params))

    def create_referral(self, case_id: str, **fields: Any) -> Record:
        """Refer one case; keyword arguments as :func:`referral_payload`.

        Not idempotent: it is resent only when it certainly never reached Primero, never after
        a read timeout (the PrimeroTimeout then says to check before trying again). Primero
        answers 422 with field `consent` when neither consent is given nor overridden.
        """
        path = f"{CASES}/{record_id(case_id)}/referrals"
        body = {"data": referral_payload(**fields)}
        return self._dict("POST", path, self._data("POST", path, json=body, replay=Replay.UNSENT))

    def create_referrals_bulk(self, case_ids: Iterable[str], **fields: Any) -> list[Record]:
        """Refer several cases in one `POST /api/v2/cases/referrals`; returns the referrals.

        Primero saves them one by one without a transaction (primero-api.md §5.2), so a 422 for
        one case leaves the earlier ones saved. On a 422 this method lists each case's
        referrals, finds those matching this request that Primero created during the call, and
        raises PrimeroValidationError naming those case ids. Prefer :meth:`refer_each` when
        every case's outcome matters.
        """
        ids = [record_id(case_id) for case_id in case_ids]
        path = f"{CASES}/referrals"
        data = referral_payload(**fields)
        started = time.monotonic()
        response = self._call(
            "POST",
            path,
            json={"data": {"ids": ids, **data}},
            replay=Replay.UNSENT,
            accept=frozenset({422}),
        )
        if response.status_code != 422:
            return self._list("POST", path, self._envelope("POST", path, response)[0])
        error = error_from_response(response, "POST", path)
        assert isinstance(error, PrimeroValidationError)
        answered = _http_date(response.headers.get("Date"))
        if answered is None:
            saved_note = (
                "Which cases were referred before the rejection is unknown (Primero sent no Date "
                "header): check each case with list_referrals before retrying."
            )
        else:
            window = (answered - timedelta(seconds=time.monotonic() - started + 2), answered)
            saved = self._referred_during(ids, data, window)
            saved_note = (
                f"Referrals for {len(saved)} of {len(ids)} cases were saved before the "
                f"rejection{': ' + ', '.join(saved) if saved else ''}. Do not resend those."
            )
        raise PrimeroValidationError(
            f"{error} Primero saves bulk referrals one case at a time without a transaction. "
            f"{saved_note}",
            fields=error.fields,
            status=422,
            method="POST",
            resource=path,
        )

    def refer_each(self, case_ids: Iterable[str], **fields: Any) -> list[ReferralOutcome]:
        """Refer cases one request at a time and report every case's outcome; an error for one
        case (consent missing, forbidden, timeout) does not stop the others."""
        outcomes = []
        for case_id in case_ids:
            try:
                outcomes.append(ReferralOutcome(case_id, self.create_referral(case_id, **fields)))
            except PrimeroError as exc:
                outcomes.append(ReferralOutcome(case_id, error=exc))
        return outcomes

    def accept_referral(self, case_id: str, referral_id: str) -> Record:
        """in_progress → accepted. Raises PrimeroNoOp when Primero leaves the status alone."""
        return self._move(case_id, referral_id, {"status": "accepted"})

    def reject_referral(self, case_id: str, referral_id: str, reason: str) -> Record:
        """in_progress → rejected, with `rejected_reason`."""
        return self._move(case_id, referral_id, {"status": "rejected", "rejected_reason": reason})

    def complete_referral(self, case_id: str, referral_id: str, note: str) -> Record:
        """accepted → done; `note` is stored as `rejection_note` (Primero's name for the
        provider's note) and copied to the linked service row."""
        return self._move(case_id, referral_id, {"status": "done", "rejection_note": note})

    def revoke_referral(self, case_id: str, referral_id: str) -> Record:
        """Revoke from any status (`DELETE`; the status becomes `revoked`)."""
        return self._move(case_id, referral_id, None)

    def move_referral(self, case_id: str, referral_id: str, status: str, **fields: str) -> Record:
        """`PATCH .../referrals/:id` towards ``status`` (accepted, rejected or done, with
        `rejected_reason` / `rejection_note` in ``fields``) and return Primero's answer as it
        is: the referral with its status *after* the call. Primero answers 200 and changes
        nothing for a transition it does not allow (referral.rb#process!: accept and reject
        only from in_progress, done only from accepted; a revoked, rejected or done referral
        stays as it is), so the answer's status is the check: it is ``status`` when the move
        happened or had happened before (a retried call), else the status the referral has.
        The answer also carries `record.last_updated_at` (transitions/_transition.json.jbuilder
        with `updates_for_record`: the changed fields plus last_updated_at)."""
        return self._patch_status(case_id, referral_id, {"status": status, **fields})

    def _patch_status(self, case_id: str, referral_id: str, data: dict[str, Any] | None) -> Record:
        path = f"{CASES}/{record_id(case_id)}/referrals/{record_id(referral_id, 'referral_id')}"
        method = "PATCH" if data is not None else "DELETE"
        body = {"data": data} if data is not None else None
        answer = self._dict(method, path, self._data(method, path, json=body))
        if not isinstance(answer.get("status"), str):
            raise malformed(method, path, 200, "has no referral status")
        return answer

    def _move(self, case_id: str, referral_id: str, data: dict[str, Any] | None) -> Record:
        path = f"{CASES}/{record_id(case_id)}/referrals/{record_id(referral_id, 'referral_id')}"
        method = "PATCH" if data is not None else "DELETE"
        target = data["status"] if data is not None else "revoked"
        answer = self._patch_status(case_id, referral_id, data)
        status = answer["status"]
        if status != target:
            # Primero answers 200 with the unchanged status for a transition it does not allow
            # (referral.rb#process!). Already being at the target is fine: a retried call.
            shown = status if _STATUS_WORD.match(status) else "another status"
            raise PrimeroNoOp(
                f"{method} {path}: Primero answered 200 but the referral is still '{shown}', "
                f"not '{target}': it only moves to '{target}' from "
                f"'{_ALLOWED_FROM.get(target, 'any status')}'. Nothing was changed.",
                status=200,
                method=method,
                resource=path,
            )
        return answer

    def _referred_during(
        self, case_ids: list[str], data: dict[str, Any], window: tuple[datetime, datetime]
    ) -> list[str]:
        saved = []
        for case_id in case_ids:
            try:
                referrals = self.list_referrals(case_id)
            except PrimeroError:
                continue
            if any(_same_referral(referral, data, window) for referral in referrals):
                saved.append(case_id)
        return saved


def _same_referral(
    referral: Record, data: dict[str, Any], window: tuple[datetime, datetime]
) -> bool:
    if any(key in data and referral.get(key) != data[key] for key in _MATCH_KEYS):
        return False
    created = record_time({"last_updated_at": referral.get("created_at")})
    # Date has whole seconds: widen the upper end by one.
    return created is not None and window[0] <= created <= window[1] + timedelta(seconds=1)


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
