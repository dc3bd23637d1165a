"""Settings of the privacy layer, mounted by ``adapter.config`` as the ``[privacy]`` section.

Environment overrides follow the usual pattern: ``CPIMS_ADAPTER_PRIVACY__KEK`` (base64 of 32
random bytes), ``CPIMS_ADAPTER_PRIVACY__KEK_FILE``, ``CPIMS_ADAPTER_PRIVACY__POLICY_DIR``.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from adapter.errors import KeyringError

KEK_BYTES = 32
KEK_ENV = "CPIMS_ADAPTER_PRIVACY__KEK"


class PrivacySettings(BaseModel):
    """Where the disclosure policy lives and where the key-encryption key (KEK) comes from.

    Set exactly one of ``kek`` (usually from the environment) and ``kek_file``. The KEK wraps
    every key in the state store (privacy.md §6.2): keep it out of the repository, the config
    file and backups of the state store.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy_dir: Path = Path("config/policy")
    kek: SecretStr | None = None
    kek_file: Path | None = None
    # privacy.md §6.2: after a rotation departments get 30 days to switch to the new codes.
    rotation_grace_days: int = Field(30, ge=1, le=365)

    def load_kek(self) -> bytes:
        """The 32-byte KEK from ``kek`` or ``kek_file``. Raises KeyringError naming the fix."""
        if self.kek is not None and self.kek_file is not None:
            raise KeyringError(
                "privacy.kek and privacy.kek_file are both set: keep one (the environment "
                f"variable {KEK_ENV} or a file outside the repository)."
            )
        if self.kek is not None:
            return parse_kek(self.kek.get_secret_value(), source=f"{KEK_ENV} / privacy.kek")
        if self.kek_file is not None:
            return read_kek_file(self.kek_file)
        raise KeyringError(
            f"no key-encryption key: set {KEK_ENV} to base64 of 32 random bytes, or "
            "privacy.kek_file to a file outside the repository holding it. Generate one with "
            "`python -c 'import secrets,base64; print(base64.b64encode(secrets.token_bytes(32))"
            ".decode())'`."
        )


def parse_kek(text: str, *, source: str = "KEK") -> bytes:
    """Decode a base64 KEK and check its length. The message never echoes the value."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(
            f"{source}: not valid base64. Store base64 of 32 random bytes."
        ) from None
    if len(raw) != KEK_BYTES:
        raise KeyringError(
            f"{source}: decodes to {len(raw)} bytes, needs {KEK_BYTES}. "
            "Store base64 of 32 random bytes."
        )
    return raw


def read_kek_file(path: Path) -> bytes:
    """Read a KEK file, refusing one inside a git work tree or readable by group/others."""
    resolved = path.expanduser().resolve()
    # privacy.md §6.2: key material is the "additional information" of GDPR Art 4(5) and must be
    # kept separately; a file inside a checkout ends up in commits, archives and CI caches.
    for parent in [resolved.parent, *resolved.parent.parents]:
        if (parent / ".git").exists():
            raise KeyringError(
                f"privacy.kek_file is inside the git work tree at {parent}: move it outside "
                "the repository (e.g. /etc/cpims-adapter/kek) and point kek_file there."
            )
    try:
        info = resolved.stat()
    except OSError as exc:
        raise KeyringError(
            f"privacy.kek_file {resolved}: cannot be read ({exc.strerror})."
        ) from None
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyringError(
            f"privacy.kek_file {resolved} is readable by group or others: run chmod 600 on it."
        )
    try:
        text = resolved.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        raise KeyringError(f"privacy.kek_file {resolved}: cannot be read as base64 text.") from None
    return parse_kek(text, source=f"privacy.kek_file {resolved}")


def new_kek() -> str:
    """A fresh KEK, base64-encoded, for an operator to store (``keys init`` may print it once)."""
    return base64.b64encode(secrets.token_bytes(KEK_BYTES)).decode("ascii")


class DecisionSettings(BaseModel):
    """Who may approve a disclosure decision recorded in Primero (``[decisions]``).

    A decision in the case's "Disclosure decisions" form counts only when Primero's record
    history proves it was written by one of these users (privacy.md §6.3: "requester ≠
    approver (supervisor)"; Sindh policy Data Protection supplement §3.3.1 (5-6): exceptions
    to consent are decided at the highest level). ``approvers_reason`` records why these people
    (the policy clause, the notification that appointed them); ``cpims-adapter check`` and
    ``decisions list`` show it. Roles and user groups are Primero ``unique_id`` values, read
    from ``GET /api/v2/users`` (the integration role then needs Users: read).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    approver_user_names: tuple[str, ...] = ()
    approver_roles: tuple[str, ...] = ()
    approver_user_groups: tuple[str, ...] = ()
    approvers_reason: str = ""
    # privacy.md §6.3: an override expires at most 72 hours after it was recorded.
    lifetime_hours: float = Field(72, gt=0, le=72)
    # A referral still waiting for a decision after this long makes `status` exit 1.
    attention_after_hours: float = Field(24, gt=0)
