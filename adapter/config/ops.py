"""Settings of the long-running service (``cpims-adapter run``): the scheduler and the
operations endpoint (health and Prometheus metrics). Mounted by ``adapter.config`` as
``[scheduler]`` and ``[ops]``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SchedulerSettings(BaseModel):
    """APScheduler 3.11 defaults for every job (architecture.md §2.1–2.2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A run that could not start on time still starts if it is at most this late; later
    # ones are dropped (the next run catches up: the work is cursor-driven).
    misfire_grace_seconds: int = Field(300, ge=1)
    # Random delay added to each run so several instances do not hit Primero in lockstep.
    jitter_seconds: int = Field(10, ge=0)
    # Run the inbound API in the same process (when [api] is configured for it).
    serve_api: bool = False


class OpsSettings(BaseModel):
    """The operations endpoint (/healthz, /readyz and /metrics) and when ``status`` says a
    queue needs attention."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Loopback by default; 0 turns the endpoint off.
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)
    # A message still retrying this long after it was queued needs attention.
    retrying_attention_minutes: int = Field(15, ge=1)
    # A job whose last this-many runs delivered nothing while its outbox grew needs attention.
    stalled_after_runs: int = Field(3, ge=1)
