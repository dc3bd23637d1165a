"""A simulated hospital: its staff answering referrals on their own FHIR server.

It plays the department's side in the demo, the tests and rehearsals: it reads the Tasks the
adapter created and moves them along (accept, reject, start, complete with a medico-legal
report reference), exactly as the hospital's own system would, with plain FHIR REST calls.
"""

from __future__ import annotations

from typing import Any

import requests

from adapter.mappings.fhir import case_code_system
from adapter.mappings.fhir_codes import REFERRAL_SYSTEM

FHIR_JSON = "application/fhir+json"


class Hospital:
    """The receiving side of a FHIR server at ``base_url`` (ending in ``/fhir``)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()
        self.http.headers.update({"Accept": FHIR_JSON, "Content-Type": FHIR_JSON})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Hospital:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def search(self, resource_type: str, **params: str) -> list[dict[str, Any]]:
        """Every match, following the server's paging."""
        found: list[dict[str, Any]] = []
        url: str | None = f"{self.base_url}/{resource_type}"
        query: dict[str, str] | None = {"_count": "200", **params}
        while url:
            answer = self.http.get(url, params=query, timeout=30)
            answer.raise_for_status()
            bundle = answer.json()
            found.extend(e["resource"] for e in bundle.get("entry", []))
            url = next(
                (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
            )
            query = None
        return found

    def count(self, resource_type: str, system: str, value: str) -> int:
        return len(self.search(resource_type, identifier=f"{system}|{value}"))

    def patients_of(self, case_code: str, department: str = "health") -> int:
        return self.count("Patient", case_code_system(department), case_code)

    def referral_tasks(self, status: str | None = None) -> list[dict[str, Any]]:
        """The Tasks that carry a referral identifier of the adapter's."""
        return [
            t
            for t in self.search("Task", **({"status": status} if status else {}))
            if any(i.get("system") == REFERRAL_SYSTEM for i in t.get("identifier", []))
        ]

    def task(self, referral_key: str) -> dict[str, Any]:
        (task,) = self.search("Task", identifier=f"{REFERRAL_SYSTEM}|{referral_key}")
        return task

    @staticmethod
    def referral_key(task: dict[str, Any]) -> str:
        return next(
            str(i["value"])
            for i in task.get("identifier", [])
            if i.get("system") == REFERRAL_SYSTEM
        )

    def update_task(self, referral_key: str, status: str, **elements: Any) -> dict[str, Any]:
        """PUT the Task with a new status (and e.g. statusReason, output), If-Match its version."""
        task = {**self.task(referral_key), "status": status, **elements}
        answer = self.http.put(
            f"{self.base_url}/Task/{task['id']}",
            json=task,
            headers={"If-Match": f'W/"{task["meta"]["versionId"]}"'},
            timeout=30,
        )
        answer.raise_for_status()
        return dict(answer.json())

    def accept(self, referral_key: str) -> dict[str, Any]:
        return self.update_task(referral_key, "accepted")

    def reject(self, referral_key: str, reason: str = "no-capacity") -> dict[str, Any]:
        return self.update_task(referral_key, "rejected", statusReason={"text": reason})

    def complete(self, referral_key: str, note: str = "Seen and treated.") -> dict[str, Any]:
        """Complete with a note and a medico-legal report as the Task's output."""
        report = self.create(
            {
                "resourceType": "DocumentReference",
                "status": "current",
                "type": {"text": "medico-legal report"},
                "content": [{"attachment": {"contentType": "application/pdf", "title": "MLR"}}],
            }
        )
        return self.update_task(
            referral_key,
            "completed",
            note=[{"text": note}],
            output=[
                {
                    "type": {"text": "medico-legal-report"},
                    "valueReference": {"reference": f"DocumentReference/{report['id']}"},
                }
            ],
        )

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        answer = self.http.post(
            f"{self.base_url}/{resource['resourceType']}", json=resource, timeout=30
        )
        answer.raise_for_status()
        return dict(answer.json())
