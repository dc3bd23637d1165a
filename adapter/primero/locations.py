"""The location codes Primero knows, so the inbound API can refuse a district Primero would
refuse later (finding F1 of the inbound API fuzzing, tests/fuzz/test_api_schema.py).

    catalogue = LocationCatalogue(lambda: PrimeroClient.from_settings(settings.primero))
    catalogue.knows("PK-SD-KHI")   # True, False, or None when Primero cannot be asked

Primero checks a case's select fields against their options, and the options of a
Location-sourced field (``location_current``) are its locations: any other code is answered
422 (primero-api.md §4 "Type validation"; the simulator's permissions.py ``_lookup_values``).

The catalogue holds only the codes (not personal data), read from ``GET /api/v2/locations``
(every page, 1000 a page, without ``hierarchy=true``: only ``code`` is needed), kept in memory
for a TTL and reloaded lazily by the first caller after it expires. ``None`` means "cannot
tell": the caller must then accept, because a child's referral is never refused only because
Primero is unreachable; the write path copes with a code Primero refuses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from adapter.errors import AdapterError, PrimeroAuthError
from adapter.primero.client import PrimeroClient

log = logging.getLogger("adapter.primero.locations")

LOCATIONS = "/api/v2/locations"
DEFAULT_TTL_SECONDS = 3600.0
# After a failed load, callers get "cannot tell" at once for this long instead of each waiting
# for Primero's timeout again.
RETRY_SECONDS = 60.0


def location_codes(client: PrimeroClient) -> frozenset[str]:
    """Every location code Primero lists to the account (``GET /api/v2/locations``, all
    pages). Disabled locations are kept: only a code Primero has never heard of is sure to be
    refused."""
    return frozenset(
        item["code"]
        for item in client.list_locations(hierarchy=False)
        if isinstance(item.get("code"), str) and item["code"]
    )


@dataclass(frozen=True)
class _Snapshot:
    codes: frozenset[str] | None  # None: not loaded (or the last load failed)
    expires: float  # on the catalogue's clock


class LocationCatalogue:
    """Primero's location codes, cached for ``ttl_seconds`` and thread-safe.

    One caller at a time reloads an expired catalogue; the others meanwhile answer from the
    expired one (or wait, when there is none yet). Each load opens a client from
    ``client_factory`` and closes it.
    """

    def __init__(
        self,
        client_factory: Callable[[], PrimeroClient],
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_factory = client_factory
        self._ttl = ttl_seconds
        self._retry = min(retry_seconds, ttl_seconds)
        self._clock = clock
        self._snapshot = _Snapshot(None, float("-inf"))
        self._loading = threading.Lock()

    def codes(self) -> frozenset[str] | None:
        """The known codes, loading them if the cache expired; None when they cannot be
        loaded (Primero down, the account refused, no locations listed)."""
        snapshot = self._snapshot
        if self._clock() < snapshot.expires:
            return snapshot.codes
        # With a catalogue in hand, a caller does not queue behind another's reload.
        if not self._loading.acquire(blocking=snapshot.codes is None):
            return snapshot.codes
        try:
            snapshot = self._snapshot
            if self._clock() < snapshot.expires:  # reloaded while this caller waited
                return snapshot.codes
            self._snapshot = self._load()
            return self._snapshot.codes
        finally:
            self._loading.release()

    def knows(self, code: str) -> bool | None:
        """Whether Primero knows ``code``; None when the catalogue cannot be loaded."""
        codes = self.codes()
        return None if codes is None else code in codes

    def _load(self) -> _Snapshot:
        try:
            with self._client_factory() as client:
                codes = location_codes(client)
        except PrimeroAuthError as exc:
            # Every refused login counts towards Primero's lock-out after six
            # (primero-api.md §2): do not ask again before the TTL is over.
            log.warning("location catalogue not loaded, districts unchecked: %s", exc)
            return _Snapshot(None, self._clock() + self._ttl)
        except Exception as exc:  # noqa: BLE001 - a referral must not fail on a lookup
            reason = str(exc) if isinstance(exc, AdapterError) else type(exc).__name__
            log.warning("location catalogue not loaded, districts unchecked: %s", reason)
            return _Snapshot(None, self._clock() + self._retry)
        if not codes:
            # An empty list would refuse every district: more likely a role that cannot see
            # locations than an instance without any.
            log.warning(
                "Primero listed no locations to the integration account: districts unchecked"
            )
            return _Snapshot(None, self._clock() + self._retry)
        log.info("location catalogue loaded: %d codes", len(codes))
        return _Snapshot(codes, self._clock() + self._ttl)


__all__ = ["DEFAULT_TTL_SECONDS", "LocationCatalogue", "location_codes"]
