"""Health: from a privacy decision to the FHIR documents a hospital receives (pure; no I/O).

The disclosure payload is already minimised by the privacy core; this module only chooses how
each allowed field is expressed in FHIR. A field the policy allows but FHIR mapping does not
carry yet (e.g. ``name``: the Patient stays pseudonymous, departments.md §1) is reported in
``not_carried`` and never silently sent elsewhere.

Bundles are built as plain dicts, not fhir.resources models: per referral, model validation
and fhir_core's serialiser cost ~25x the JSON itself (BENCHMARKS.md). That the dicts are valid
R4B, and the models' exact bytes, is held by tests/mappings/test_fhir_plain.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from adapter.mappings.base import Document, body_hash
from adapter.mappings.fhir import (
    HealthReferral,
    OrgRef,
    content_fingerprint,
    content_update_bundle_json,
    referral_bundle_json,
)
from adapter.mappings.fhir_probe import CapacityProbe, probe_bundle_json
from adapter.mappings.routing import RoutedReferral
from adapter.privacy import Disclosure

# Disclosure payload key → HealthReferral demographics key.
_DEMOGRAPHICS = {"date_of_birth": "date_of_birth", "sex": "sex", "location_current": "district"}
# Keys that are expressed elsewhere in the bundle, or are bookkeeping.
_ELSEWHERE = {"case_code", "protection_concerns", "services_section", "stage"}


@dataclass(frozen=True)
class HealthMapping:
    """Documents for one health department system."""

    department: str
    performer: OrgRef
    requester: OrgRef

    def probe(self, referral: RoutedReferral, disclosure: Disclosure) -> Document:
        services = list(disclosure.payload.get("services") or [])
        # The probe names the service this referral asks for, when the probe lists it.
        service = referral.service_type or "health_medical_service"
        if services and service not in services:
            service = str(services[0])
        bundle = probe_bundle_json(
            CapacityProbe(
                referral_key=referral.key,
                service_type=service,
                performer_org=self.performer,
                requester_org=self.requester,
                probe=disclosure.payload,
            )
        )
        body = {"referral_key": referral.key, "bundle": bundle}
        return Document("probe", body, body_hash(body))

    def referral(
        self, referral: RoutedReferral, disclosure: Disclosure, *, after_probe: bool
    ) -> Document:
        health, not_carried = self._health_referral(referral, disclosure)
        body = {
            "referral_key": referral.key,
            "after_probe": after_probe,
            "bundle": referral_bundle_json(health),
        }
        return Document("referral", body, content_fingerprint(health), not_carried)

    def update(self, referral: RoutedReferral, disclosure: Disclosure) -> Document:
        health, not_carried = self._health_referral(referral, disclosure)
        body = {"referral_key": referral.key, "bundle": content_update_bundle_json(health)}
        return Document("update", body, content_fingerprint(health), not_carried)

    def cancel(self, referral_key: str, reason: str) -> Document:
        body = {"referral_key": referral_key, "reason": reason}
        return Document("cancel", body, body_hash(body))

    def withdraw(self, referral_key: str) -> Document:
        body = {"referral_key": referral_key, "reason": "consent-withdrawn"}
        return Document("withdraw", body, body_hash(body))

    def _health_referral(
        self, referral: RoutedReferral, disclosure: Disclosure
    ) -> tuple[HealthReferral, tuple[str, ...]]:
        payload = disclosure.payload
        demographics = {
            target: payload[source]
            for source, target in _DEMOGRAPHICS.items()
            if payload.get(source) not in (None, "", [])
        }
        carried = set(_DEMOGRAPHICS) | _ELSEWHERE
        not_carried = tuple(sorted(key for key in payload if key not in carried))
        concerns = payload.get("protection_concerns") or []
        # Deterministic dates (the referral's own creation), so a re-send is byte-identical.
        created = _date_of(referral.transition) if referral.transition else None
        health = HealthReferral(
            case_code=str(disclosure.case_code),
            referral_key=referral.key,
            service_type=referral.service_type or "health_medical_service",
            requester_org=self.requester,
            performer_org=self.performer,
            consent_basis=disclosure.consent_basis.split("+")[0],
            consent_date=created or date(1970, 1, 1),
            urgency=referral.urgency,
            demographics=demographics,
            reason_codes=tuple(str(c) for c in concerns) if isinstance(concerns, list) else (),
            authored_on=_datetime_of(referral.transition) if referral.transition else None,
            department=self.department,
        )
        return health, not_carried


def _datetime_of(transition: Mapping[str, Any] | None) -> datetime | None:
    value = (transition or {}).get("created_at")
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _date_of(transition: Mapping[str, Any] | None) -> date | None:
    moment = _datetime_of(transition)
    return moment.date() if moment else None
