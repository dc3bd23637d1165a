"""A ready-made health-referral scenario on the simulators, for the demo, tests and benchmarks.

A CPO (``cp_worker1``) registers children with consent and refers each one to Civil Hospital
Karachi as a remote referral from a health service row — exactly what a CPO does in Primero's
UI today, where the referral ends as a printed PDF.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
from pydantic import SecretStr

from adapter.config import (
    DepartmentSettings,
    JobSettings,
    PrimeroSettings,
    Settings,
    StateSettings,
    SyncSettings,
)
from adapter.config.privacy import DecisionSettings, PrivacySettings

# The simulator's synthetic accounts share one password; none of them exists outside it.
SIM_PASSWORD = "sim-password"  # noqa: S105
CPO = ("cp_worker1", SIM_PASSWORD)
SUPERVISOR = "cp_supervisor1"  # an approver of disclosure decisions (role-cp-supervisor)
# The simulator's supervisors approve disclosure decisions ([decisions] in a real config).
SUPERVISORS = DecisionSettings(
    approver_roles=("role-cp-supervisor",),
    approvers_reason="The simulated CPU's supervisors (seed_access.py role-cp-supervisor).",
)
DEPARTMENTS = ("birth_registration", "courts", "health", "police")
HEALTH_AGENCY = "agency-civil-hospital-karachi"
POLICY_DIR = Path(__file__).resolve().parents[2] / "config" / "policy"
MAPPINGS_DIR = Path(__file__).resolve().parents[2] / "config" / "mappings"


def shipped_record_types() -> dict[str, str]:
    """The record types the shipped mapping files declare (id → label)."""
    from adapter.app.departments import read_mapping
    from adapter.mappings.mapped_spec import declared_record_types

    return declared_record_types(read_mapping(p) for p in sorted(MAPPINGS_DIR.glob("*.toml")))


def health_settings(
    *,
    primero_url: str,
    fhir_url: str,
    state_url: str,
    kek: bytes,
    lag_seconds: int = 0,
    two_stage: bool = True,
    max_attempts: int = 8,
    policy_dir: Path = POLICY_DIR,
) -> Settings:
    """Settings for one health job against the simulators."""
    return Settings(
        primero=PrimeroSettings(
            url=primero_url,
            username="cpims-adapter",
            password=SecretStr(SIM_PASSWORD),
            backoff_seconds=0.05,
        ),
        state=StateSettings(url=state_url),
        sync=SyncSettings(lag_seconds=lag_seconds),
        privacy=PrivacySettings(
            policy_dir=policy_dir, kek=SecretStr(base64.b64encode(kek).decode())
        ),
        decisions=SUPERVISORS,
        departments={
            "health": DepartmentSettings(
                base_url=fhir_url,
                organization="civil-hospital-karachi",
                two_stage=two_stage,
                max_attempts=max_attempts,
                rate_per_second=1000.0,
            )
        },
        jobs={
            "health": JobSettings(
                department="health",
                agencies=[HEALTH_AGENCY],
                gateway_users=["health_gateway"],
                services=["health_medical_service", "psychosocial_service"],
                requester_organization="child-protection-unit-sindh",
            )
        },
    )


def refer_children_to_health(
    primero_url: str, count: int, *, concerns: Sequence[str] = ("physically_or_mentally_abused",)
) -> list[tuple[str, str]]:
    """Create ``count`` consented cases, each with a remote referral to the hospital.
    Returns ``(case_id, referral_id)`` pairs."""
    made = []
    with requests.Session() as cpo:
        cpo.auth = CPO
        for n in range(count):
            row_id = str(uuid.uuid4())
            case = _post(
                cpo,
                f"{primero_url}/api/v2/cases",
                {
                    "name": f"Synthetic Child {n}",
                    "sex": "female" if n % 2 else "male",
                    "age": 6 + n % 11,
                    "date_of_birth": f"{2010 + n % 10}-0{1 + n % 9}-15",
                    "consent_for_services": True,
                    "disclosure_other_orgs": True,
                    "module_id": "primeromodule-cp",
                    "protection_concerns": list(concerns),
                    "location_current": "PK-SD-KHI",
                    "services_section": [
                        {
                            "unique_id": row_id,
                            "service_type": "health_medical_service",
                            "service_implementing_agency": HEALTH_AGENCY,
                            "service_response_timeframe": "1_day",
                        }
                    ],
                },
            )
            rows = case.get("services_section") or [{"unique_id": row_id}]
            row_id = str(rows[0]["unique_id"])  # the id Primero kept (or gave) the row
            referral = _post(
                cpo,
                f"{primero_url}/api/v2/cases/{case['id']}/referrals",
                {
                    "remote": True,
                    "service": "health_medical_service",
                    "service_record_id": row_id,
                    "transitioned_to_agency": HEALTH_AGENCY,
                    "transitioned_to_remote": "Duty medical officer",
                    "notes": "Medical examination needed.",
                },
            )
            made.append((str(case["id"]), str(referral["id"])))
    return made


def cpo_edit(primero_url: str, case_id: str, fields: dict[str, Any]) -> None:
    """A CPO edits a case in Primero."""
    with requests.Session() as cpo:
        cpo.auth = CPO
        answer = cpo.patch(
            f"{primero_url}/api/v2/cases/{case_id}", json={"data": fields}, timeout=30
        )
        answer.raise_for_status()


def referral_status(primero_url: str, case_id: str, referral_id: str) -> str | None:
    """The referral's status as the CPO sees it in Primero."""
    with requests.Session() as cpo:
        cpo.auth = CPO
        answer = cpo.get(f"{primero_url}/api/v2/cases/{case_id}/referrals", timeout=30)
        answer.raise_for_status()
        for referral in answer.json()["data"]:
            if referral["id"] == referral_id:
                return str(referral["status"])
    return None


def record_decision(
    primero_url: str,
    case_id: str,
    *,
    user: str = SUPERVISOR,
    department: str,
    basis: str,
    legal_reference: str = "",
    reason: str = "",
    row_id: str | None = None,
) -> str:
    """``user`` records (or, with ``row_id``, edits) a row of the case's "Disclosure
    decisions" in Primero, as a supervisor does in the case form. Returns the row's id."""
    from adapter.privacy.decisions import (
        BASIS,
        DECISIONS_FIELD,
        DEPARTMENT,
        LEGAL_REFERENCE,
        REASON,
    )

    row_id = row_id or str(uuid.uuid4())
    row = {
        "unique_id": row_id,
        DEPARTMENT: department,
        BASIS: basis,
        LEGAL_REFERENCE: legal_reference,
        REASON: reason,
    }
    _patch_as(primero_url, user, case_id, {DECISIONS_FIELD: [row]})
    return row_id


def remove_decision(primero_url: str, case_id: str, row_id: str, *, user: str = SUPERVISOR) -> None:
    """``user`` removes a decision row (a revocation), as Primero's subform delete does."""
    from adapter.privacy.decisions import DECISIONS_FIELD

    _patch_as(
        primero_url, user, case_id, {DECISIONS_FIELD: [{"unique_id": row_id, "_destroy": True}]}
    )


def _patch_as(primero_url: str, user: str, case_id: str, data: dict[str, Any]) -> None:
    with requests.Session() as session:
        session.auth = (user, SIM_PASSWORD)
        answer = session.patch(
            f"{primero_url}/api/v2/cases/{case_id}", json={"data": data}, timeout=30
        )
        answer.raise_for_status()


def _post(session: requests.Session, url: str, data: dict[str, Any]) -> dict[str, Any]:
    answer = session.post(url, json={"data": data}, timeout=30)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()["data"]
    return body


def install_linked_records_form(
    primero_url: str,
    *,
    departments: Sequence[str] = DEPARTMENTS,
    record_types: Mapping[str, str] | None = None,
) -> None:
    """What an administrator does once: install the adapter's forms ("Linked department
    records", and "Disclosure decisions" for ``departments``) on the CP and GBV modules and
    grant the integration role read-write on the first (the seeded roles already hold the
    second: integration read, case workers and supervisors read-write). The record-type
    select offers ``record_types`` (default: those the shipped mapping files declare)."""
    from adapter.primero import PrimeroClient
    from adapter.primero.linked_records import FORM_ID, install_forms

    with PrimeroClient(
        primero_url, auth="basic", username="primero_admin", password=SIM_PASSWORD
    ) as admin:
        install_forms(
            admin,
            module_ids=("primeromodule-cp", "primeromodule-gbv"),
            departments=departments,
            record_types=shipped_record_types() if record_types is None else record_types,
        )
    answer = requests.put(
        f"{primero_url}/_sim/roles/role-integration/forms",
        json={"forms": {FORM_ID: "rw"}},
        timeout=10,
    )
    answer.raise_for_status()
