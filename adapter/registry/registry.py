"""The registry's library API: one object over the store, the key ring and the settings.

    registry = Registry.open(store, keyring, settings)            # creates its keys on first use
    registry.import_signed_csv(path, signature_path, officer="a.officer")
    registry.ingest_conviction(order)                              # the court connector calls it
    est, api_key = registry.add_establishment("SCH-001", "…", officers, registered_by="…")
    answer = registry.check(CheckRequest(...), registry.authenticate(api_key))
    registry.review_queue(); registry.resolve(ref, Outcome.CLEAR, officer="…", note="…")
    registry.subject_access(cnic, officer="…"); registry.remove(entry_ref, reason, officer)

Every method takes an optional ``now`` (aware UTC) so tests and replays control time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

from adapter.clock import utcnow
from adapter.config.registry import RegistrySettings
from adapter.privacy.keys import KeyRing
from adapter.privacy.normalise import normalise_cnic
from adapter.registry import checks, establishments, ingest, monitoring, review
from adapter.registry._context import Context, Notifier
from adapter.registry._crypto import RegistryKeys
from adapter.registry.index import low_information_keys
from adapter.registry.matching import Outcome
from adapter.registry.models import (
    AppealItem,
    CheckAnswer,
    CheckRecord,
    CheckRequest,
    ConvictionOrder,
    Establishment,
    ImportResult,
    IngestResult,
    Notification,
    ReviewDetail,
    ReviewItem,
    SubjectAccessRow,
    WorkerRegistration,
)
from adapter.state import StateStore


class Registry:
    """The offender registry (issue 6). Build it with :meth:`open`."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def __repr__(self) -> str:
        return "<Registry>"

    @classmethod
    def open(
        cls,
        store: StateStore,
        keyring: KeyRing,
        settings: RegistrySettings | None = None,
        *,
        notifier: Notifier | None = None,
        now: datetime | None = None,
    ) -> Registry:
        """Unwrap the registry keys (creating them on first use, audited)."""
        with store.transaction() as conn:
            keys = RegistryKeys.load_or_create(conn, keyring, now=now or utcnow())
        ctx = Context(
            store=store,
            keyring=keyring,
            keys=keys,
            settings=settings or RegistrySettings(),
            low_keys=low_information_keys(keys),
            notifier=notifier,
        )
        ctx.dummy = checks.dummy_record(ctx)
        return cls(ctx)

    @property
    def settings(self) -> RegistrySettings:
        return self._ctx.settings

    @property
    def context(self) -> Context:
        """The internals, for the benchmark's stage timings and for tests."""
        return self._ctx

    # -- entries ---------------------------------------------------------------------------

    def import_signed_csv(
        self,
        path: Path,
        signature_path: Path,
        officer: str,
        *,
        source: str = "national_register",
        now: datetime | None = None,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> ImportResult:
        """Import a signed extract (format in :mod:`adapter.registry.ingest`); all or nothing.
        ``on_progress(rows, total)`` reports rows read (total once known), for a progress bar."""
        now = now or utcnow()
        result, notify = ingest.import_signed_csv(
            self._ctx,
            Path(path),
            Path(signature_path),
            officer,
            source=source,
            now=now,
            on_progress=on_progress,
        )
        monitoring.dispatch(self._ctx, notify, now=now)
        return result

    def ingest_conviction(
        self, order: ConvictionOrder, *, now: datetime | None = None
    ) -> IngestResult:
        """Register, update or remove the entry of one conviction order (idempotent)."""
        now = now or utcnow()
        result, notify = ingest.ingest_conviction(self._ctx, order, now=now)
        monitoring.dispatch(self._ctx, notify, now=now)
        return result

    def remove(
        self, entry_ref: str, reason: str, officer: str, *, now: datetime | None = None
    ) -> None:
        """Take an entry off the register; the next check no longer finds it."""
        review.remove(self._ctx, entry_ref, reason, officer, now=now or utcnow())

    def correct_entry(
        self,
        entry_ref: str,
        officer: str,
        reason: str,
        *,
        now: datetime | None = None,
        cnic: str | None = review.UNSET,
        full_name: str = review.UNSET,
        father_name: str | None = review.UNSET,
        date_of_birth: date = review.UNSET,
    ) -> None:
        """Correct the CNIC, names or date of birth of an entry (keys recomputed at once)."""
        review.correct_entry(
            self._ctx,
            entry_ref,
            officer,
            reason,
            now=now or utcnow(),
            cnic=cnic,
            full_name=full_name,
            father_name=father_name,
            date_of_birth=date_of_birth,
        )

    def entries_due_for_review(
        self, *, now: datetime | None = None
    ) -> list[tuple[str, datetime, str]]:
        return review.entries_due_for_review(self._ctx, now=now or utcnow())

    def confirm_review(
        self, entry_ref: str, officer: str, *, now: datetime | None = None
    ) -> datetime:
        return review.confirm_review(self._ctx, entry_ref, officer, now=now or utcnow())

    # -- establishments ----------------------------------------------------------------------

    def add_establishment(
        self,
        registration_number: str,
        name: str,
        officers: tuple[tuple[str, str], tuple[str, str]],
        *,
        registered_by: str,
        daily_quota: int | None = None,
        monthly_quota: int | None = None,
        now: datetime | None = None,
    ) -> tuple[Establishment, str]:
        """Register an establishment; returns it and its API key (shown once)."""
        return establishments.add_establishment(
            self._ctx,
            registration_number,
            name,
            officers,
            registered_by=registered_by,
            daily_quota=daily_quota,
            monthly_quota=monthly_quota,
            now=now or utcnow(),
        )

    def establishments(self) -> list[Establishment]:
        return establishments.list_establishments(self._ctx)

    def establishment(self, registration_number: str) -> Establishment:
        return establishments.get_establishment(self._ctx, registration_number)

    def authenticate(self, api_key: str, *, now: datetime | None = None) -> Establishment:
        return establishments.authenticate(self._ctx, api_key, now=now or utcnow())

    def unlock(
        self, registration_number: str, officer: str, reason: str, *, now: datetime | None = None
    ) -> None:
        establishments.unlock(self._ctx, registration_number, officer, reason, now=now or utcnow())

    def rotate_api_key(
        self, registration_number: str, officer: str, *, now: datetime | None = None
    ) -> str:
        return establishments.rotate_api_key(
            self._ctx, registration_number, officer, now=now or utcnow()
        )

    # -- checks ------------------------------------------------------------------------------

    def check(
        self, request: CheckRequest, establishment: Establishment, *, now: datetime | None = None
    ) -> CheckAnswer:
        """CLEAR, PENDING_REVIEW or DO_NOT_ENGAGE, with a reference, dates and how to appeal."""
        return checks.check(self._ctx, request, establishment, now=now or utcnow())

    def reject(
        self, establishment: Establishment, reason: str, *, now: datetime | None = None
    ) -> str:
        """Record a malformed request (counts towards quota and mismatch rate)."""
        return checks.reject(self._ctx, establishment, reason, now=now or utcnow())

    def check_status(self, check_ref: str, establishment: Establishment) -> CheckAnswer:
        return checks.check_status(self._ctx, check_ref, establishment)

    def check_history(self, establishment: Establishment, *, limit: int = 50) -> list[CheckRecord]:
        """This establishment's own checks, newest first (no person named)."""
        return checks.history(self._ctx, establishment, limit=limit)

    def quota_used(
        self, establishment: Establishment, *, now: datetime | None = None
    ) -> tuple[int, int]:
        """Checks counted against the quota today and this month."""
        return checks.quota_used(self._ctx, establishment, now=now or utcnow())

    # -- review and rights -------------------------------------------------------------------

    def review_queue(self) -> list[ReviewItem]:
        return review.review_queue(self._ctx)

    def review_detail(
        self, check_ref: str, officer: str, *, now: datetime | None = None
    ) -> ReviewDetail:
        return review.review_detail(self._ctx, check_ref, officer, now=now or utcnow())

    def resolve(
        self,
        check_ref: str,
        decision: Outcome,
        officer: str,
        note: str = "",
        *,
        now: datetime | None = None,
    ) -> None:
        now = now or utcnow()
        notify = review.resolve(self._ctx, check_ref, decision, officer, note, now=now)
        monitoring.dispatch(self._ctx, notify, now=now)

    def subject_access(
        self, cnic: str, officer: str, *, now: datetime | None = None
    ) -> list[SubjectAccessRow]:
        """Which establishments checked (or monitor) the person with this CNIC."""
        return review.subject_access(self._ctx, normalise_cnic(cnic), officer, now=now or utcnow())

    def appeal(
        self,
        *,
        grounds: str,
        received_by: str,
        check_ref: str | None = None,
        entry_ref: str | None = None,
        now: datetime | None = None,
    ) -> str:
        return review.open_appeal(
            self._ctx,
            grounds=grounds,
            received_by=received_by,
            check_ref=check_ref,
            entry_ref=entry_ref,
            now=now or utcnow(),
        )

    def appeals(self, *, open_only: bool = True) -> list[AppealItem]:
        """Appeals, oldest first (their grounds stay sealed)."""
        return review.list_appeals(self._ctx, open_only=open_only)

    def decide_appeal(
        self,
        appeal_ref: str,
        *,
        granted: bool,
        officer: str,
        note: str = "",
        now: datetime | None = None,
    ) -> None:
        now = now or utcnow()
        notify = review.decide_appeal(
            self._ctx, appeal_ref, granted=granted, officer=officer, note=note, now=now
        )
        monitoring.dispatch(self._ctx, notify, now=now)

    # -- monitoring --------------------------------------------------------------------------

    def register_worker(
        self,
        establishment: Establishment,
        registration: WorkerRegistration,
        *,
        now: datetime | None = None,
    ) -> str:
        return monitoring.register_worker(
            self._ctx, establishment, registration, now=now or utcnow()
        )

    def end_worker(
        self, establishment: Establishment, worker_ref: str, *, now: datetime | None = None
    ) -> None:
        monitoring.end_worker(self._ctx, establishment, worker_ref, now=now or utcnow())

    def notifications(self, *, undelivered: bool = False) -> list[Notification]:
        return monitoring.list_notifications(self._ctx, undelivered=undelivered)

    def mark_notification_delivered(
        self, notification_id: int, *, now: datetime | None = None
    ) -> None:
        monitoring.mark_delivered(self._ctx, notification_id, now=now or utcnow())
