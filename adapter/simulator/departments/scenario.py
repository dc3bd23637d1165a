"""Ready-made referral scenarios for REST departments (police, birth registration, courts, a
generic one), for the demo, tests and rehearsals — the counterpart of
``adapter.simulator.scenario`` for health.

A CPO (``cp_worker1``) registers children and refers each one to the department as a remote
referral from a service row, exactly what Primero's UI does today (where the referral ends as a
printed PDF). Cases without consent go out only under an override a supervisor recorded in the
adapter (a mandatory report to police, a court order to a court).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import requests
from pydantic import SecretStr

from adapter.clock import utcnow
from adapter.config import (
    DepartmentSettings,
    JobSettings,
    PrimeroSettings,
    Settings,
    SftpSettings,
    StateSettings,
    SyncSettings,
)
from adapter.config.privacy import PrivacySettings
from adapter.privacy import (
    ConsentOverride,
    DisclosureGate,
    DisclosurePolicy,
    KeyRing,
    OverrideBasis,
)
from adapter.simulator.departments.state import (
    API_KEY,
    API_KEY_HEADER,
    BASIC_PASSWORD,
    BASIC_USER,
    CLIENT_ID,
    CLIENT_SECRET,
)
from adapter.simulator.scenario import CPO, POLICY_DIR, SIM_PASSWORD, SUPERVISORS
from adapter.state import StateStore

if TYPE_CHECKING:
    from adapter.simulator.primero import PrimeroSimulator

MAPPINGS_DIR = Path(__file__).resolve().parents[3] / "config" / "mappings"
POLICE_AGENCY = "agency-sindh-police"
POLICE_SERVICE = "police_other_service"
NADRA_AGENCY = "agency-nadra"
NADRA_SERVICE = "registration_service"
UNION_COUNCIL_AGENCY = "agency-union-council-saddar"
COURT_AGENCY = "agency-juvenile-court-karachi"
COURT_SERVICE = "legal_assistance_service"
Auth = Literal["none", "api_key", "basic", "oauth2"]


def rest_settings(
    *,
    primero_url: str,
    state_url: str,
    kek: bytes,
    department: str,
    base_url: str,
    agencies: Sequence[str],
    services: Sequence[str] = (),
    purpose: str = "referral",
    auth: Auth = "api_key",
    mapping_file: Path | None = None,
    policy_dir: Path = POLICY_DIR,
    two_stage: bool = False,
    max_attempts: int = 8,
    lag_seconds: int = 0,
) -> Settings:
    """Settings for one job (named after the department) against a department simulator."""
    credentials: dict[str, Any] = {}
    if auth == "api_key":
        credentials = {"api_key": SecretStr(API_KEY), "api_key_header": API_KEY_HEADER}
    elif auth == "basic":
        credentials = {"username": BASIC_USER, "password": SecretStr(BASIC_PASSWORD)}
    elif auth == "oauth2":
        credentials = {
            "token_url": f"{base_url}/oauth/token",
            "client_id": CLIENT_ID,
            "client_secret": SecretStr(CLIENT_SECRET),
        }
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
            department: DepartmentSettings(
                connector="rest",
                base_url=base_url,
                auth=auth,
                mapping_file=mapping_file or MAPPINGS_DIR / f"{department}.toml",
                two_stage=two_stage,
                max_attempts=max_attempts,
                rate_per_second=1000.0,
                **credentials,
            )
        },
        jobs={
            department: JobSettings(
                department=department,
                purpose=purpose,
                agencies=list(agencies),
                services=list(services),
            )
        },
    )


def police_settings(
    *, primero_url: str, police_url: str, state_url: str, kek: bytes, auth: Auth = "oauth2"
) -> Settings:
    """The police job: remote referrals to the Sindh Police WCPC, no capacity probe (a
    mandatory report is not a question of capacity)."""
    return rest_settings(
        primero_url=primero_url,
        state_url=state_url,
        kek=kek,
        department="police",
        base_url=police_url,
        agencies=[POLICE_AGENCY],
        services=[POLICE_SERVICE],
        auth=auth,
    )


def birth_registration_settings(
    *, primero_url: str, nadra_url: str, state_url: str, kek: bytes, auth: Auth = "oauth2"
) -> Settings:
    """Two jobs to the birth-registration department: ``birth_registration`` verifies a
    child's registration with NADRA (referrals to ``NADRA_AGENCY``), ``registration_request``
    asks the Union Council to register a birth the search did not find (referrals to
    ``UNION_COUNCIL_AGENCY``); both for ``registration_service``."""
    verify = rest_settings(
        primero_url=primero_url,
        state_url=state_url,
        kek=kek,
        department="birth_registration",
        base_url=nadra_url,
        agencies=[NADRA_AGENCY],
        services=[NADRA_SERVICE],
        purpose="birth_registration",
        auth=auth,
    )
    request = JobSettings(
        department="birth_registration",
        purpose="registration_request",
        agencies=[UNION_COUNCIL_AGENCY],
        services=[NADRA_SERVICE],
    )
    return verify.model_copy(update={"jobs": {**verify.jobs, "registration_request": request}})


def file_settings(
    *,
    primero_url: str,
    state_url: str,
    kek: bytes,
    department: str,
    sftp: SftpSettings,
    agencies: Sequence[str],
    services: Sequence[str] = (),
    purpose: str = "referral",
    mapping_file: Path | None = None,
    policy_dir: Path = POLICY_DIR,
) -> Settings:
    """Settings for one job (named after the department) to a CSV-over-SFTP department."""
    base = rest_settings(
        primero_url=primero_url,
        state_url=state_url,
        kek=kek,
        department=department,
        base_url="http://127.0.0.1:9",  # replaced below: a file department has no URL
        agencies=agencies,
        services=services,
        purpose=purpose,
        auth="none",
        mapping_file=mapping_file,
        policy_dir=policy_dir,
    )
    files = DepartmentSettings(
        connector="sftp",
        sftp=sftp,
        mapping_file=mapping_file or MAPPINGS_DIR / f"{department}.toml",
        two_stage=False,
        max_attempts=3,
    )
    return base.model_copy(update={"departments": {department: files}})


def add_union_council(sim: PrimeroSimulator, unique_id: str = UNION_COUNCIL_AGENCY) -> None:
    """A Primero administrator adds the Union Council as an agency providing
    ``registration_service`` (the seed knows NADRA only), so CPOs can refer children to it."""
    with sim.state.lock:
        sim.state.agencies[unique_id] = {
            "id": sim.state.next_id(),
            "unique_id": unique_id,
            "agency_code": unique_id.removeprefix("agency-").upper()[:12],
            "name": {"en": "Union Council Saddar (birth registration)"},
            "description": {"en": "Union Council Saddar (birth registration)"},
            "services": [NADRA_SERVICE],
            "disabled": False,
            "logo_enabled": False,
            "terms_of_use_enabled": False,
        }


def refer_again(
    primero_url: str,
    case_id: str,
    *,
    agency: str,
    service: str,
    notes: str = "Referred through cpims-adapter.",
) -> str:
    """The CPO adds a service row to an existing case and refers it to ``agency`` (a remote
    referral). Returns the referral id."""
    row_id = str(uuid.uuid4())
    row = {
        "unique_id": row_id,
        "service_type": service,
        "service_implementing_agency": agency,
        "service_response_timeframe": "1_day",
    }
    with requests.Session() as cpo:
        cpo.auth = CPO
        answer = cpo.patch(
            f"{primero_url}/api/v2/cases/{case_id}",
            json={"data": {"services_section": [row]}},
            timeout=30,
        )
        answer.raise_for_status()
        referral = _post(
            cpo,
            f"{primero_url}/api/v2/cases/{case_id}/referrals",
            {
                "remote": True,
                "service": service,
                "service_record_id": row_id,
                "transitioned_to_agency": agency,
                "transitioned_to_remote": "Duty officer",
                "notes": notes,
            },
        )
    return str(referral["id"])


def refer_children(
    primero_url: str,
    count: int,
    *,
    agency: str = POLICE_AGENCY,
    service: str = POLICE_SERVICE,
    concerns: Sequence[str] = ("physically_or_mentally_abused",),
    consent: bool = True,
    fields: dict[str, Any] | None = None,
) -> list[tuple[str, str]]:
    """Create ``count`` cases, each with a remote referral to ``agency`` for ``service``.
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
                    "name_first": "Synthetic",
                    "name_last": f"Child{n}",
                    "sex": "female" if n % 2 else "male",
                    "age": 6 + n % 11,
                    "date_of_birth": f"{2010 + n % 10}-0{1 + n % 9}-15",
                    "consent_for_services": consent,
                    "disclosure_other_orgs": consent,
                    "module_id": "primeromodule-cp",
                    "protection_concerns": list(concerns),
                    "location_current": "PK-SD-KHI",
                    "address_current": f"House {n}, Street 4, Lyari",
                    "services_section": [
                        {
                            "unique_id": row_id,
                            "service_type": service,
                            "service_implementing_agency": agency,
                            "service_response_timeframe": "1_day",
                        }
                    ],
                    **(fields or {}),
                },
            )
            rows = case.get("services_section") or [{"unique_id": row_id}]
            row_id = str(rows[0]["unique_id"])
            referral = _post(
                cpo,
                f"{primero_url}/api/v2/cases/{case['id']}/referrals",
                {
                    "remote": True,
                    "service": service,
                    "service_record_id": row_id,
                    "transitioned_to_agency": agency,
                    "transitioned_to_remote": "Duty officer",
                    "notes": "Referred through cpims-adapter.",
                    # Primero refuses a referral without consent unless it is overridden; the
                    # adapter itself still needs its own recorded override (consent.py).
                    **({} if consent else {"consent_overridden": True}),
                },
            )
            made.append((str(case["id"]), str(referral["id"])))
    return made


def record_override(
    state_url: str,
    kek: bytes,
    case_id: str,
    department: str,
    *,
    basis: OverrideBasis = OverrideBasis.MANDATORY_REPORT,
    legal_reference: str = "Sindh Child Protection Authority Act 2011 s.15 (mandatory report)",
    policy_dir: Path = POLICY_DIR,
) -> ConsentOverride:
    """A CPO requests and a supervisor approves an override (privacy.md §6.3), for 48 hours."""
    now = utcnow()
    with StateStore(state_url) as store:
        gate = DisclosureGate(store, DisclosurePolicy.load(policy_dir), KeyRing.open(store, kek))
        return gate.record_override(
            ConsentOverride(
                case_id=case_id,
                department=department,
                basis=basis,
                legal_reference=legal_reference,
                requested_by="cp_worker1",
                approved_by="cp_supervisor1",
                created_at=now,
                expires_at=now + timedelta(hours=48),
                reason="Synthetic: the caregiver is the alleged perpetrator.",
            ),
            now=now,
        )


def _post(session: requests.Session, url: str, data: dict[str, Any]) -> dict[str, Any]:
    answer = session.post(url, json={"data": data}, timeout=30)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()["data"]
    return body
