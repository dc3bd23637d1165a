"""The department staff's side of a simulator: its control API, with plain HTTP calls.

Tests, the demo and rehearsals use it to play the police station, the Union Council or the
court: register an FIR, make a court order, register a birth, change a status, make the API
fail on purpose, and look at what the adapter sent.
"""

from __future__ import annotations

from typing import Any

import requests


class Desk:
    """The control API (``/_sim``) of a simulator at ``base_url``."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Desk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = self.http.request(method, f"{self.base_url}/_sim{path}", json=body, timeout=10)
        answer.raise_for_status()
        return answer.json()

    # -- looking -------------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        """Every record the department holds (one per referral)."""
        found: list[dict[str, Any]] = self._call("GET", "/records")
        return found

    def record(self, referral_key: str) -> dict[str, Any]:
        return next(r for r in self.records() if r["referral_key"] == referral_key)

    def requests(self) -> list[dict[str, Any]]:
        """Every API request seen: method, path, idempotency key."""
        seen: list[dict[str, Any]] = self._call("GET", "/requests")["requests"]
        return seen

    def token_fetches(self) -> int:
        return int(self._call("GET", "/requests")["tokens"])

    # -- acting ------------------------------------------------------------------------------

    def set_status(self, referral_key: str, status: str, **outcome: Any) -> dict[str, Any]:
        done: dict[str, Any] = self._call(
            "POST", f"/referrals/{referral_key}/status", {"status": status, **outcome}
        )
        return done

    def register_fir(self, referral_key: str, **fir: Any) -> dict[str, Any]:
        """Police: ``station``, ``sections``, ``investigating_officer{rank,name}``,
        ``medico_legal_required``; ``year``/``serial`` default to this year's next serial."""
        done: dict[str, Any] = self._call("POST", f"/referrals/{referral_key}/fir", fir)
        return done

    def make_order(self, referral_key: str, **order: Any) -> dict[str, Any]:
        """Courts: a court order in the case of a summary the court holds."""
        done: dict[str, Any] = self._call("POST", f"/referrals/{referral_key}/order", order)
        return done

    def add_registered_child(self, **child: Any) -> dict[str, Any]:
        """Birth registration: a child whose birth is already registered."""
        done: dict[str, Any] = self._call("POST", "/registry", child)
        return done

    def register_birth(self, referral_key: str, **registration: Any) -> dict[str, Any]:
        """Birth registration: the Union Council registers a requested birth."""
        done: dict[str, Any] = self._call(
            "POST", f"/referrals/{referral_key}/register", registration
        )
        return done

    def fail_next(
        self,
        status: int,
        *,
        count: int = 1,
        path_prefix: str = "/",
        retry_after: int | None = None,
        after: bool = False,
    ) -> None:
        """The next ``count`` API requests under ``path_prefix`` answer ``status``; with
        ``after`` they are carried out first and only the answer is lost."""
        self._call(
            "POST",
            "/faults",
            {
                "status": status,
                "count": count,
                "path_prefix": path_prefix,
                "retry_after": retry_after,
                "after": after,
            },
        )

    def expire_tokens(self) -> None:
        """Every OAuth2 token issued so far stops working."""
        self._call("POST", "/tokens/expire")
