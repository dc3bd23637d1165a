"""Settings of breach handling (privacy policy §3.4), mounted by ``adapter.config`` as
``[incidents]``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IncidentSettings(BaseModel):
    """Who is told about a suspected breach, and by when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Policy §3.4: the data-protection officer is notified within 24 hours.
    notify_within_hours: int = Field(24, ge=1, le=72)
    # Addresses of the data-protection officer (and deputies) who receive incident notices.
    dpo_emails: list[str] = []
