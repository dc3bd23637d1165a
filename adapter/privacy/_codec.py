"""The case-code format, pure: no keys are looked up and nothing is stored here.

``cp1.<department>.<kv>.<base32(AES-SIV(K_dept,kv, case_uuid16, AD=[b"cp1", dept, kv]))>``
(privacy.md §6.1). The associated data carries the department and key version, so a code
relabelled to another department or version fails authentication. It deliberately does *not*
carry the purpose: a department must see one stable code per case whatever the purpose,
otherwise its own records of one child would not join up and every new purpose would look
like a new child.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

SCHEME = "cp1"
TOKEN_KEY_BYTES = 64  # AES-SIV-512: Tink refuses smaller SIV keys (privacy.md §1.2)
_CODE_RE = re.compile(r"^cp1\.([a-z][a-z0-9_]{1,39})\.([1-9][0-9]{0,5})\.([a-z2-7]{52})$")
DEPARTMENT_RE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


@dataclass(frozen=True)
class ParsedCode:
    """The visible parts of a case code; the body is still sealed."""

    department: str
    version: int
    body: bytes


def case_uuid_bytes(case_id: str) -> bytes:
    """The 16 bytes of a Primero case UUID (its ``id``). Raises ValueError for anything else."""
    return uuid.UUID(case_id).bytes


def seal(siv: AESSIV, department: str, version: int, case_id: str) -> str:
    """The department's code for ``case_id`` under key version ``version``."""
    sealed = siv.encrypt(case_uuid_bytes(case_id), _associated_data(department, version))
    body = base64.b32encode(sealed).decode("ascii").rstrip("=").lower()
    return f"{SCHEME}.{department}.{version}.{body}"


def parse(code: str) -> ParsedCode | None:
    """Split a code into department, version and body; None when it is not well formed.

    Only the canonical base32 spelling is accepted (unused low bits zero), so one sealed value
    has exactly one printed form.
    """
    if not isinstance(code, str) or len(code) > 120:
        return None
    match = _CODE_RE.match(code)
    if match is None:
        return None
    department, version, text = match.groups()
    # 52 symbols carry 260 bits for 256: the last symbol's low 4 bits must be zero, which
    # leaves "a" (0) or "q" (16). Anything else is a second spelling of the same bytes.
    if text[-1] not in "aq":
        return None
    return ParsedCode(department, int(version), base64.b32decode(text.upper() + "===="))


def unseal(siv: AESSIV, parsed: ParsedCode) -> str | None:
    """The case UUID inside a parsed code, or None when authentication fails."""
    try:
        raw = siv.decrypt(parsed.body, _associated_data(parsed.department, parsed.version))
    except InvalidTag:
        return None
    if len(raw) != 16:
        return None
    return str(uuid.UUID(bytes=raw))


def _associated_data(department: str, version: int) -> list[bytes]:
    return [SCHEME.encode(), department.encode("ascii"), str(version).encode("ascii")]
