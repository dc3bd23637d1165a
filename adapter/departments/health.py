"""The health connector: FHIR R4 documents in, Task statuses out (departments.md §1).

Delivery by kind (documents come from ``adapter.mappings.health``):

- ``probe``: the one-Task transaction; the Task is the anonymous capacity question;
- ``referral``: the identified bundle (Patient, ServiceRequest, Consent; the Task already exists,
  so its conditional create returns it unchanged), then the Task is linked to them without
  touching the hospital's status;
- ``update``: conditional updates of the same resources after a case edit;
- ``cancel`` / ``withdraw``: the Task is cancelled with a coded reason; on withdrawal the
  Consent is also made inactive, which is the department's instruction to erase.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from adapter.config import DepartmentSettings
from adapter.departments.base import Delivery
from adapter.departments.fhir import FhirClient
from adapter.errors import ConfigError, Fatal
from adapter.mappings.fhir_task import TaskUpdate
from adapter.mappings.vocabulary import (
    ACCEPTED,
    CANCEL,
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PROBE,
    REFERRAL,
    REJECTED,
    REQUESTED,
    UPDATE,
    WITHDRAW,
    StatusUpdate,
)

# FHIR Task.status → the adapter's vocabulary (http://hl7.org/fhir/R4/valueset-task-status.html).
_TASK_STATUS = {
    "draft": REQUESTED,
    "requested": REQUESTED,
    "received": REQUESTED,
    "ready": REQUESTED,
    "accepted": ACCEPTED,
    "rejected": REJECTED,
    "in-progress": IN_PROGRESS,
    "on-hold": IN_PROGRESS,
    "completed": COMPLETED,
    "cancelled": CANCELLED,
    "failed": FAILED,
    "entered-in-error": CANCELLED,
}


class HealthConnector:
    """A FHIR R4 server of the health department."""

    def __init__(self, department: str, client: FhirClient) -> None:
        self.department = department
        self.client = client

    @classmethod
    def from_settings(cls, department: str, settings: DepartmentSettings) -> HealthConnector:
        if settings.base_url is None or settings.auth not in ("none", "bearer", "basic"):
            raise ConfigError(
                f"departments.{department}: the FHIR connector needs base_url and auth "
                "none, bearer or basic."
            )
        secret = settings.secret(department)
        client = FhirClient(
            settings.base_url,
            bearer_token=secret if settings.auth == "bearer" else None,
            basic_auth=(settings.username or "", secret or "")
            if settings.auth == "basic"
            else None,
            timeout=(min(10.0, settings.timeout_seconds), settings.timeout_seconds),
            verify=settings.verify_tls,
            # One kept connection per delivery thread (the outbox's concurrency).
            pool_size=settings.concurrency,
        )
        return cls(department, client)

    def deliver(
        self, kind: str, document: Mapping[str, Any], *, idempotency_key: str = ""
    ) -> Delivery:
        # FHIR conditional creates and If-Match updates make every send idempotent already.
        key = str(document["referral_key"])
        if kind == PROBE:
            result = self.client.send_transaction(document["bundle"])
            return Delivery(_ref("Task", result.of("Task").id))
        if kind == REFERRAL:
            # After a probe, identified data leaves only if the department accepted it (or has
            # already started); without a probe the bundle creates the Task, already linked.
            expected = ("accepted", "in-progress") if document.get("after_probe") else None
            _, task = self.client.send_identified_bundle(
                key, document["bundle"], expected_status=expected
            )
            return Delivery(_ref("Task", task.task_id))
        if kind == UPDATE:
            self.client.send_transaction(document["bundle"])
            return Delivery()
        if kind in (CANCEL, WITHDRAW):
            if kind == WITHDRAW:
                # Cancels the Task and makes the Consent inactive: the instruction to erase.
                self.client.withdraw_consent(key)
                return Delivery()
            cancelled = self.client.cancel_referral(key, str(document.get("reason")))
            return Delivery(_ref("Task", cancelled.task_id) if cancelled else None)
        raise Fatal(f"health connector cannot deliver a '{kind}' document")

    def check(self) -> str:
        """Reach the FHIR server with a harmless read (its CapabilityStatement)."""
        statement = self.client.capability_statement()
        version = statement.get("fhirVersion")
        if not isinstance(version, str) or not version.startswith("4."):
            raise Fatal(
                f"{self.client.base_url}/metadata: FHIR version {version!r}, not R4 (4.0.x): "
                "point departments.<name>.base_url at the server's R4 endpoint"
            )
        return f"FHIR {version} at {self.client.base_url} (GET /metadata)"

    def status_updates(self, since: str | None) -> Iterator[tuple[StatusUpdate, str]]:
        start = datetime.fromisoformat(since) if since else None
        for task in self.client.search_tasks_updated(start):
            watermark = task.last_updated.isoformat() if task.last_updated else (since or "")
            yield status_from_task(task), watermark

    def close(self) -> None:
        self.client.close()


def status_from_task(task: TaskUpdate) -> StatusUpdate:
    """A FHIR Task, in the adapter's status vocabulary (no personal data but the provider's
    note, which is shown to the CPO and never logged)."""
    outputs = tuple(
        o.reference or o.identifier or "" for o in task.outputs if o.reference or o.identifier
    )
    return StatusUpdate(
        referral_key=task.referral_key,
        status=_TASK_STATUS.get(task.status, REQUESTED),
        external_ref=_ref("Task", task.task_id),
        linked=task.linked,
        reason=task.status_reason,
        note=" ".join(task.note)[:500] or None,
        outputs=outputs,
        updated_at=task.last_updated,
        version=task.version,
    )


def _ref(resource_type: str, resource_id: str | None) -> str | None:
    return f"{resource_type}/{resource_id}" if resource_id else None
