"""Settings of the offender registry, mounted by ``adapter.config`` as the ``[registry]`` section.

Environment overrides follow the usual pattern, e.g. ``CPIMS_ADAPTER_REGISTRY__DAILY_QUOTA=40``.
The defaults are the starting points of privacy.md §6.6; the data-protection officer and the
DPISP ratify the real values.
"""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Offences whose conviction orders put a person on the register (issue 6: "configured
# offences"). Pakistan Penal Code sections on sexual abuse and exploitation of children, as
# inserted by the Criminal Law (Amendment) Act 2016: a starting point for the DPISP to ratify.
DEFAULT_OFFENCES = (
    "ppc_292a",  # exposure to seduction
    "ppc_292b",  # child pornography
    "ppc_292c",  # punishment for child pornography
    "ppc_366a",  # procuration of a minor girl
    "ppc_369a",  # trafficking of persons
    "ppc_376",  # rape (sub-section 3: of a minor)
    "ppc_377a",  # sexual abuse
    "ppc_377b",  # punishment for sexual abuse
)

# privacy.md §6.6 item 1: establishments recruiting for education, care, custody or welfare.
DEFAULT_PURPOSES = ("education", "care", "custody", "welfare")

DEFAULT_APPEAL_TEXT = (
    "The person checked may ask the registry office for a review, an appeal or a correction, "
    "quoting this check reference, and may ask which establishments checked them. "
    "PENDING_REVIEW is not a finding: a registry officer decides it."
)


class RegistrySettings(BaseModel):
    """What the registry accepts, how it matches, and the abuse limits (privacy.md §6.6)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    offences: list[str] = list(DEFAULT_OFFENCES)
    purposes: list[str] = list(DEFAULT_PURPOSES)
    # Registry officers who may sign an import: name → base64 of the raw 32-byte Ed25519
    # public key. The signature covers the file's SHA-256 (ingest.py).
    officer_keys: dict[str, str] = {}
    # Departments (names under [departments]) whose conviction orders the inbound API accepts
    # at POST /v1/convictions: the court connector. Empty: that route refuses everyone (403).
    court_departments: list[str] = []

    # Default quotas for a new establishment (privacy.md §6.6 item 7: e.g. 20/day, 200/month).
    daily_quota: int = Field(20, ge=1, le=100_000)
    monthly_quota: int = Field(200, ge=1, le=1_000_000)

    # Matching (privacy.md §6.6 item 4). A CNIC hit needs every informative name token to agree
    # (same Double Metaphone code or Jaro-Winkler ≥ jw_threshold) and the DOB to be equal.
    jw_threshold: float = Field(0.85, ge=0.5, le=1.0)
    # A blocked fuzzy candidate whose score (0.5 name + 0.3 father + 0.2 DOB) reaches
    # fuzzy_threshold, with a name score ≥ name_floor, goes to review. Never to DO_NOT_ENGAGE.
    fuzzy_threshold: float = Field(0.8, ge=0.5, le=1.0)
    name_floor: float = Field(0.75, ge=0.3, le=1.0)

    # The answer (privacy.md §6.6 item 5): every outcome is padded to exactly this many bytes.
    answer_bytes: int = Field(768, ge=384, le=4096)
    # Every check is answered no sooner than this many milliseconds after it arrived, whatever
    # the outcome: a hit does more work than a miss (review rows, monitoring), and the time
    # must not tell them apart (privacy.md §7 item 3). Above the p99 of a check's own work.
    answer_min_ms: int = Field(60, ge=0, le=5000)
    answer_valid_days: int = Field(90, ge=1, le=365)
    how_to_appeal: str = Field(DEFAULT_APPEAL_TEXT, min_length=20, max_length=400)
    # A registry officer resolves PENDING_REVIEW within this many working days.
    review_working_days: int = Field(5, ge=1, le=60)
    # KP CPW (Amendment) Act 2022 draft: each entry is reviewed every 3 years (privacy.md §3).
    entry_review_years: int = Field(3, ge=1, le=10)

    # Enumeration detection (privacy.md §6.6 item 7), over a sliding window.
    window_days: int = Field(30, ge=1, le=365)
    # "more than 3 establishments in 30 days" checking one subject → alert.
    subject_alert_establishments: int = Field(3, ge=1, le=100)
    # "more than 20% mismatches or invalid" → alert and lock, once there are enough checks.
    mismatch_alert_rate: float = Field(0.2, gt=0, le=1)
    mismatch_min_checks: int = Field(10, ge=1, le=10_000)
    # This many distinct CNICs from one establishment within one block of 1,000 consecutive
    # numbers (or the blocks either side) → sequential enumeration: alert and lock.
    sequential_alert_count: int = Field(3, ge=2, le=1000)
    # Bodies above this size are refused before parsing (privacy.md §7 item 12: 10 kB inputs).
    max_body_bytes: int = Field(4096, ge=512, le=65536)

    @field_validator("officer_keys")
    @classmethod
    def _keys_are_ed25519(cls, value: dict[str, str]) -> dict[str, str]:
        for officer, key in value.items():
            try:
                raw = base64.b64decode(key.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"officer_keys.{officer} is not base64") from None
            if len(raw) != 32:
                raise ValueError(
                    f"officer_keys.{officer} must be a raw 32-byte Ed25519 public key (base64)"
                )
        return value

    @field_validator("how_to_appeal")
    @classmethod
    def _ascii_appeal(cls, value: str) -> str:
        # Padding counts bytes; ASCII keeps one character one byte in every client.
        if not value.isascii():
            raise ValueError("how_to_appeal must be ASCII text")
        return value
