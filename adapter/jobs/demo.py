"""The end-to-end demo on embedded defaults: the health referral job between the Primero
simulator and a real FHIR server, with a SQLite state store and a simulated hospital.

1. CPOs have referred children to Civil Hospital Karachi in Primero (seeded cases, plus a
   dozen new referrals); the adapter sends the hospital anonymous capacity probes only.
2. The hospital accepts most and declines one; the adapter sends identified referrals for the
   accepted ones (pseudonymous Patient, ServiceRequest, Consent) and writes statuses back.
3. The hospital completes some, with a medico-legal report; the CPO sees "done" in Primero.
4. Nothing changed: the next run sends nothing.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from adapter.jobs.sync import SyncReport, open_job
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import KeyRing
from adapter.simulator.scenario import (
    SIM_PASSWORD,
    health_settings,
    install_linked_records_form,
    refer_children_to_health,
    referral_status,
)
from adapter.state import StateStore

DEMO_REFERRALS = 12


@dataclass
class DemoResult:
    primero_url: str
    fhir_url: str
    state_url: str
    runs: list[tuple[str, SyncReport]] = field(default_factory=list)
    tasks: int = 0
    service_requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    linked_rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def run_demo(
    cases: int = 300, state_dir: Path | None = None, say: Callable[[str], None] = print
) -> DemoResult:
    """Run the demo; ``problems`` lists any expectation that did not hold."""
    from adapter.simulator.fhir_server import start_fhir_server
    from adapter.simulator.hospital import Hospital
    from adapter.simulator.primero import PrimeroSimulator

    workdir = state_dir or Path(tempfile.mkdtemp(prefix="cpims-demo-"))
    state_url = f"sqlite:///{workdir}/demo-state.sqlite3"
    fhir = start_fhir_server(workdir)
    try:
        with PrimeroSimulator(cases=cases, seed=42) as sim, Hospital(fhir.base_url) as hospital:
            say(f"Primero simulator with {cases} synthetic cases at {sim.url}")
            say(f"hospital FHIR R4 server (sekmet) at {fhir.base_url}")
            install_linked_records_form(sim.url)
            kek = secrets.token_bytes(32)
            settings = health_settings(
                primero_url=sim.url, fhir_url=fhir.base_url, state_url=state_url, kek=kek
            )
            with StateStore(state_url) as store:
                KeyRing.init(store, kek, ["health", "police", "birth_registration", "courts"])
            referred = refer_children_to_health(sim.url, DEMO_REFERRALS)
            say(f"CPOs refer {DEMO_REFERRALS} more children to Civil Hospital Karachi in Primero")
            result = DemoResult(sim.url, fhir.base_url, state_url)

            def sync(label: str) -> SyncReport:
                with open_job(settings, "health") as job:
                    report = job.run()
                result.runs.append((label, report))
                return report

            first = sync("1 probes")
            probes = len(hospital.referral_tasks("requested"))
            say(f"hospital sees {probes} anonymous capacity probes, no Patient, no name")
            if hospital.search("Patient"):
                result.problems.append("identified data left before any acceptance")
            keys = sorted(Hospital.referral_key(t) for t in hospital.referral_tasks("requested"))
            ours = sorted(f"ref-{referral_id}" for _, referral_id in referred)
            declined = ours[:1]
            accepted = [key for key in keys if key not in declined]
            for key in accepted:
                hospital.accept(key)
            for key in declined:
                hospital.reject(key, "no-capacity")
            say(f"hospital accepts {len(accepted)} and declines {len(declined)}")
            second = sync("2 identified")
            # Completed: six of the new referrals, and half of the others.
            others = [key for key in accepted if key not in ours]
            completed = ours[1:7] + others[: len(others) // 2]
            for key in completed:
                hospital.complete(key, "Examined; report attached.")
            say(f"hospital completes {len(completed)} with a medico-legal report")
            sync("3 outcomes")
            again = sync("4 no change")
            if again.enqueued or again.delivered:
                result.problems.append("a run with nothing changed still sent something")
            if again.retrying or again.dead_lettered:
                result.problems.append("deliveries or write-backs are still failing")
            result.tasks = len(hospital.referral_tasks())
            result.service_requests = len(hospital.search("ServiceRequest"))
            if result.tasks != first.delivered.get("probe", 0):
                result.problems.append("Tasks on the FHIR server != probes sent")
            # S3 cases need a second person's approval before identified data leaves
            # (privacy.md §6.5), so fewer referrals than acceptances may follow.
            if result.service_requests != second.delivered.get("referral", 0):
                result.problems.append("ServiceRequests on the server != referrals sent")
            for case_id, referral_id in referred:
                status = referral_status(sim.url, case_id, referral_id) or "unknown"
                result.statuses[status] = result.statuses.get(status, 0) + 1
            result.statuses = dict(sorted(result.statuses.items()))
            result.linked_rows = _linked_rows(sim.url, [case_id for case_id, _ in referred])
    finally:
        fhir.cleanup()
    return result


def _linked_rows(primero_url: str, case_ids: list[str]) -> int:
    with PrimeroClient(
        primero_url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD
    ) as client:
        return sum(len(client.get_case(c).get(SUBFORM_FIELD) or []) for c in case_ids)
