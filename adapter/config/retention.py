"""Settings of retention (privacy policy §3.6), mounted by ``adapter.config`` as ``[retention]``.

Environment overrides follow the usual pattern, e.g. ``CPIMS_ADAPTER_RETENTION__RETAIN_YEARS=7``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RetentionSettings(BaseModel):
    """How long the adapter keeps what it holds about a closed case, and how statistics are
    published."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Closed cases are kept (archived, encrypted under a per-case key) this long, then the key
    # is destroyed (crypto-shredding). Policy §3.6: seven years.
    retain_years: int = Field(7, ge=1, le=100)
    # Published statistics suppress every cell below this count (GBVIMS style).
    min_cell: int = Field(5, ge=2, le=100)
