"""Who is calling: one department per credential, by API key or by TLS client certificate.

API keys: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. The configuration holds
only the SHA-256 (hex) of each key (``departments.<name>.inbound_api_key_sha256``); the
presented key is hashed and compared with *every* configured hash in constant time, so
neither the match nor its position leaks through timing.

Client certificates: with mutual TLS on (``api.tls_client_ca_file``) the TLS handshake has
already verified the chain; the subject (RFC 4514, as ``openssl x509 -noout -subject -nameopt
RFC2253`` prints it) is read from the ASGI TLS extension (``scope["extensions"]["tls"]
["client_cert_name"]``, filled by ``adapter.api.server``) and matched against
``departments.<name>.inbound_client_cert_subjects``. No HTTP header is ever trusted for it.
If both a certificate and a key identify the caller, they must name the same department.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapter.api.errors import ApiError
from adapter.config import DepartmentSettings
from adapter.errors import ConfigError

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="cpims-adapter"'}


@dataclass(frozen=True)
class Credentials:
    """Every department's key hashes and certificate subjects, checked at start-up."""

    key_hashes: tuple[tuple[bytes, str], ...]
    subjects: Mapping[str, str]

    @classmethod
    def from_departments(cls, departments: Mapping[str, DepartmentSettings]) -> Credentials:
        """Build from ``[departments.*]``; ConfigError for a malformed or shared credential."""
        hashes: list[tuple[bytes, str]] = []
        seen: dict[str, str] = {}
        subjects: dict[str, str] = {}
        for name, department in sorted(departments.items()):
            for value in department.inbound_api_key_sha256:
                digest = value.strip().lower()
                if not _HEX64.match(digest):
                    raise ConfigError(
                        f"departments.{name}.inbound_api_key_sha256: each entry must be the "
                        'SHA-256 of a key as 64 hex characters (e.g. `printf %s "$KEY" | '
                        "sha256sum`), not the key itself."
                    )
                if digest in seen and seen[digest] != name:
                    raise ConfigError(
                        f"departments.{name}.inbound_api_key_sha256 repeats a key of "
                        f"departments.{seen[digest]}: every department needs its own key."
                    )
                seen[digest] = name
                hashes.append((bytes.fromhex(digest), name))
            for subject in department.inbound_client_cert_subjects:
                normal = normalise_subject(subject)
                if subjects.get(normal, name) != name:
                    raise ConfigError(
                        f"departments.{name}.inbound_client_cert_subjects repeats a subject of "
                        f"departments.{subjects[normal]}: every department needs its own."
                    )
                subjects[normal] = name
        return cls(tuple(hashes), subjects)

    @property
    def empty(self) -> bool:
        return not self.key_hashes and not self.subjects

    def department_for_key(self, key: str) -> str | None:
        """The department whose key this is, or None (constant time over all keys)."""
        presented = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        found: str | None = None
        for digest, department in self.key_hashes:
            if hmac.compare_digest(presented, digest):
                found = department
        return found

    def department_for_subject(self, subject: str) -> str | None:
        return self.subjects.get(normalise_subject(subject))


def normalise_subject(subject: str) -> str:
    """``CN = police , O=Sindh Police`` → ``CN=police,O=Sindh Police`` (types upper-cased)."""
    parts = []
    for part in subject.split(","):
        kind, _, value = part.partition("=")
        parts.append(f"{kind.strip().upper()}={value.strip()}")
    return ",".join(parts)


def authenticate(
    credentials: Credentials,
    *,
    bearer: str | None,
    api_key: str | None,
    scope: Mapping[str, Any],
) -> str:
    """The calling department, or ApiError 401 saying what to send."""
    if bearer is not None and api_key is not None and bearer != api_key:
        raise _unauthorised("send one API key, either as Bearer or as X-API-Key, not two.")
    key = bearer if bearer is not None else api_key
    by_key = credentials.department_for_key(key) if key else None
    if key and by_key is None:
        raise _unauthorised(
            "the API key is not known: check it, or ask the adapter's operator for your "
            "department's key."
        )
    subject = client_cert_subject(scope)
    by_cert = credentials.department_for_subject(subject) if subject else None
    if by_key and by_cert and by_key != by_cert:
        raise _unauthorised("the API key and the client certificate belong to different callers.")
    department = by_key or by_cert
    if department is None:
        raise _unauthorised(
            "no credentials: send your department's key as 'Authorization: Bearer <key>' or "
            "'X-API-Key: <key>', or connect with your department's client certificate."
        )
    return department


def client_cert_subject(scope: Mapping[str, Any]) -> str | None:
    """The verified client certificate subject from the ASGI TLS extension, if any."""
    extensions = scope.get("extensions") or {}
    tls = extensions.get("tls") if isinstance(extensions, Mapping) else None
    name = tls.get("client_cert_name") if isinstance(tls, Mapping) else None
    return name if isinstance(name, str) and name else None


def _unauthorised(message: str) -> ApiError:
    return ApiError(401, "unauthenticated", message, headers=_CHALLENGE)
