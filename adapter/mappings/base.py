"""What every department mapping produces: documents, and the protocol the engine calls.

A mapping is pure: it turns a privacy decision (``Disclosure``, already minimised) and a routed
referral into the document a department receives. The FHIR mapping (health) is code; the
others are driven by a reviewable mapping file, so a new department needs no code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

from adapter.mappings.routing import RoutedReferral
from adapter.privacy import Disclosure


@dataclass(frozen=True)
class Document:
    """One outbound document: what the connector delivers, and the fingerprint of what the
    department will hold after it. The fingerprint, not the document, decides whether anything
    changed: a referral and a later update of the same content must compare equal."""

    kind: str
    body: dict[str, Any]
    content_hash: str
    not_carried: tuple[str, ...] = ()


def body_hash(body: dict[str, Any]) -> str:
    """A stable fingerprint of a JSON-able body (key order does not matter)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class DepartmentMapping(Protocol):
    """The documents of one department, one method per kind (adapter.departments.base)."""

    @property
    def department(self) -> str: ...

    def probe(self, referral: RoutedReferral, disclosure: Disclosure) -> Document: ...

    def referral(
        self, referral: RoutedReferral, disclosure: Disclosure, *, after_probe: bool
    ) -> Document: ...

    def update(self, referral: RoutedReferral, disclosure: Disclosure) -> Document: ...

    def cancel(self, referral_key: str, reason: str) -> Document: ...

    def withdraw(self, referral_key: str) -> Document: ...
