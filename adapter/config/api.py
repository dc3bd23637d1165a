"""Settings of the inbound API, meant to be mounted by ``adapter.config`` as ``[api]``.

Environment overrides follow the usual pattern, e.g. ``CPIMS_ADAPTER_API__PORT=8700``.
Departments' credentials live in their own sections
(``departments.<name>.inbound_api_key_sha256`` and ``inbound_client_cert_subjects``).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_PORT = 8700
DEFAULT_MAX_BODY_BYTES = 64 * 1024


class ApiSettings(BaseModel):
    """Where the inbound API listens, how large a body may be, TLS, and where a department's
    referral lands in Primero."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Loopback by default: exposing the API is a deliberate act (and then needs TLS).
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    # Bodies above this get 413 before any parsing; the largest valid message is ~10 KiB.
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1024, le=10 * 1024 * 1024)
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    # Setting this turns on mutual TLS: every client must present a certificate signed by
    # this CA, and its subject may identify the department (inbound_client_cert_subjects).
    tls_client_ca_file: Path | None = None
    # The Primero module of cases created from departments' referrals.
    module_id: str = "primeromodule-cp"
    # department -> the Primero user_name of the CPO responsible for its referrals.
    responsible_cpo: dict[str, str] = {}
    default_cpo: str | None = None
    # How often the server retries Primero work that failed (0: only after each request).
    drain_interval_seconds: float = Field(30.0, ge=0)
    # How long Primero's location codes (checked against a referral's child.district) are
    # kept before the next referral reloads them from GET /api/v2/locations.
    locations_ttl_seconds: float = Field(3600.0, gt=0)
    # Processes `cpims-adapter serve` answers requests from, each with its own connections
    # to the state store (unset: one per CPU core). `run`'s embedded API is one process.
    workers: int | None = Field(None, ge=1, le=64)
    # Primero webhooks (POST /v1/primero/webhook) bring the sync jobs' next run forward. The
    # SHA-256 (hex) of the secret Primero sends as `x-api-key` (its webhook auth_type api_key);
    # unset: the route answers 404. Polling stays the source of truth (Primero never retries).
    primero_webhook_key_sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")

    @model_validator(mode="after")
    def _tls_complete(self) -> ApiSettings:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("api.tls_certfile and api.tls_keyfile go together: set both")
        if self.tls_client_ca_file is not None and self.tls_certfile is None:
            raise ValueError("api.tls_client_ca_file (mutual TLS) needs api.tls_certfile/keyfile")
        return self

    @property
    def worker_count(self) -> int:
        """``workers``, or the number of CPU cores this process may use."""
        if self.workers is not None:
            return self.workers
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None

    @property
    def mutual_tls(self) -> bool:
        return self.tls_client_ca_file is not None

    def is_loopback(self, host: str | None = None) -> bool:
        """Whether ``host`` (default: the configured one) only accepts local connections."""
        name = (host or self.host).strip("[]")
        if name == "localhost":
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False
