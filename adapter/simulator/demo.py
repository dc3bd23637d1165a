"""The end-to-end demo on embedded defaults: the health referral job between the Primero
simulator and a real FHIR server, with a SQLite state store and a simulated hospital.

1. CPOs have referred children to Civil Hospital Karachi in Primero (seeded cases, plus a
   dozen new referrals); the adapter sends the hospital anonymous capacity probes only.
2. The hospital accepts most and declines one; the adapter sends identified referrals for the
   accepted ones (pseudonymous Patient, ServiceRequest, Consent) and writes statuses back.
3. The hospital completes some, with a medico-legal report; the CPO sees "done" in Primero.
4. Nothing changed: the next run sends nothing.

Then the same engine carries referrals to the three REST departments, each a simulator with
its shipped mapping (config/mappings/) and policy (config/policy/) files:

- police: three children (two with consent, one under a mandatory report a supervisor
  recorded) → the police register FIRs → the FIR links show in Primero;
- birth registration: a verification search for three children, answered at once (two
  registered births, one not found) → the answers show in Primero;
- courts: case summaries for two children under a recorded court order → the court makes
  orders → the orders show in Primero.

Each ends with a run that sends nothing.
"""

from __future__ import annotations

import secrets
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from adapter.app.jobs import open_job
from adapter.config import Settings
from adapter.jobs.sync import SyncReport
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import AuditLog, KeyRing, OverrideBasis
from adapter.simulator.departments import DepartmentSimulator, Desk
from adapter.simulator.departments.scenario import (
    COURT_AGENCY,
    COURT_SERVICE,
    NADRA_AGENCY,
    police_settings,
    record_override,
    refer_children,
    rest_settings,
)
from adapter.simulator.fhir_server import start_fhir_server
from adapter.simulator.hospital import Hospital
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import (
    SIM_PASSWORD,
    health_settings,
    install_linked_records_form,
    record_decision,
    refer_children_to_health,
    referral_status,
)
from adapter.state import StateStore
from adapter.state.held import NOTE_PREFIX
from adapter.state.schema import links

DEMO_REFERRALS = 12
DEPARTMENTS = ["health", "police", "birth_registration", "courts"]
NADRA_SERVICE = "registration_service"
WAITING = "waiting"


@dataclass
class DepartmentRun:
    """One department's part of the demo: the runs, what its CPOs' children show, and the
    story of every referral addressed to it (found → refused or probed → accepted → sent
    identified → outcome in Primero), counted once each rather than once per run."""

    department: str
    children: int
    runs: list[tuple[str, SyncReport]] = field(default_factory=list)
    linked_rows: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    # Referrals addressed to the department in Primero when its first run read them (the demo
    # adds none afterwards).
    found: int = 0
    # (stage, reason) → referrals whose latest decision was that refusal (the audit log).
    refusals: Counter[tuple[str, str]] = field(default_factory=Counter)
    # What the department (a simulator the demo drives) did with what reached it.
    accepted: int = 0
    declined: int = 0
    # How the department's acceptance reads, e.g. "registered an FIR for {n}".
    accepted_as: str = "accepted {n}"
    # The status written back into Primero for every referral the adapter carried to the
    # department (``waiting``: no answer from the department yet).
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def outcomes_back(self) -> int:
        return sum(n for status, n in self.outcomes.items() if status != WAITING)

    @property
    def probed(self) -> int:
        return sum(r.delivered.get("probe", 0) for _, r in self.runs)

    @property
    def identified(self) -> int:
        return sum(r.delivered.get("referral", 0) for _, r in self.runs)

    def refused(self, stage: str | None = None) -> int:
        return sum(n for (at, _), n in self.refusals.items() if stage in (None, at))

    @property
    def sent(self) -> int:
        return sum(sum(r.delivered.values()) for _, r in self.runs)

    @property
    def statuses_back(self) -> int:
        return sum(r.status_updates for _, r in self.runs)

    @property
    def written_back(self) -> int:
        return sum(r.write_backs for _, r in self.runs)


@dataclass
class DemoResult:
    primero_url: str
    fhir_url: str
    state_url: str
    # The demo's key-encryption key: `demo --console` serves the console over its store.
    kek: bytes = field(default=b"", repr=False)
    runs: list[tuple[str, SyncReport]] = field(default_factory=list)
    tasks: int = 0
    service_requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    linked_rows: int = 0
    departments: list[DepartmentRun] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def run_demo(
    cases: int = 300, state_dir: Path | None = None, say: Callable[[str], None] = print
) -> DemoResult:
    """Run the demo; ``problems`` lists any expectation that did not hold."""
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
                KeyRing.init(store, kek, DEPARTMENTS)
            referred = refer_children_to_health(sim.url, DEMO_REFERRALS)
            say(f"CPOs refer {DEMO_REFERRALS} more children to Civil Hospital Karachi in Primero")
            result = DemoResult(sim.url, fhir.base_url, state_url, kek=kek)

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
            hospital_answers = (len(accepted), len(declined))
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
            say(
                f"health: {result.linked_rows} linked hospital rows in Primero for the "
                f"{DEMO_REFERRALS} new referrals"
            )
            health = DepartmentRun("health", DEMO_REFERRALS, list(result.runs))
            health.linked_rows, health.statuses = result.linked_rows, result.statuses
            health.accepted, health.declined = hospital_answers
            result.departments.append(health)
            _run_departments(result, settings, kek, say)
            _count_story(result, kek)
    finally:
        fhir.cleanup()
    return result


def _run_departments(
    result: DemoResult, health: Settings, kek: bytes, say: Callable[[str], None]
) -> None:
    """Police, birth registration and courts, one after the other, through the same engine."""
    primero_url, state_url = result.primero_url, result.state_url
    with (
        DepartmentSimulator("police", auth="oauth2") as police,
        DepartmentSimulator("birth_registration", auth="oauth2") as nadra,
        DepartmentSimulator("courts", auth="basic") as court,
        Desk(police.url) as police_desk,
        Desk(nadra.url) as nadra_desk,
        Desk(court.url) as court_desk,
    ):
        say(f"department simulators: police {police.url}, birth registration {nadra.url}")
        say(f"  and courts {court.url}, through the same sync engine and mapping files")
        parts = [
            health,
            police_settings(
                primero_url=primero_url, police_url=police.url, state_url=state_url, kek=kek
            ),
            rest_settings(
                primero_url=primero_url,
                state_url=state_url,
                kek=kek,
                department="birth_registration",
                base_url=nadra.url,
                agencies=[NADRA_AGENCY],
                services=[NADRA_SERVICE],
                purpose="birth_registration",
                auth="oauth2",
            ),
            rest_settings(
                primero_url=primero_url,
                state_url=state_url,
                kek=kek,
                department="courts",
                base_url=court.url,
                agencies=[COURT_AGENCY],
                services=[COURT_SERVICE],
                purpose="court_order",
                auth="basic",
            ),
        ]
        settings = Settings(
            primero=health.primero,
            state=health.state,
            sync=health.sync,
            privacy=health.privacy,
            decisions=health.decisions,
            departments={k: v for part in parts for k, v in part.departments.items()},
            jobs={k: v for part in parts for k, v in part.jobs.items()},
        )
        _police(result, settings, police_desk, say)
        _birth_registration(result, settings, nadra_desk, say)
        _courts(result, settings, court_desk, kek, say)


def _begin(
    result: DemoResult, settings: Settings, department: str, children: int
) -> tuple[DepartmentRun, Callable[[str], SyncReport]]:
    part = DepartmentRun(department, children)
    result.departments.append(part)

    def sync(label: str) -> SyncReport:
        with open_job(settings, department) as job:
            report = job.run()
        part.runs.append((label, report))
        return report

    return part, sync


def _finish(
    result: DemoResult,
    part: DepartmentRun,
    sync: Callable[[str], SyncReport],
    referred: list[tuple[str, str]],
    record_type: str,
    expected_status: str,
    say: Callable[[str], None],
) -> None:
    """Look at what the CPOs see in Primero, then check a last run sends nothing."""
    name = part.department
    rows = _rows(result.primero_url, [case_id for case_id, _ in referred])
    ours = [
        row
        for row in rows
        if row.get("link_department") == name
        and not str(row.get("link_key", "")).startswith(NOTE_PREFIX)  # a decision's note
    ]
    part.linked_rows = len(ours)
    for case_id, referral_id in referred:
        status = referral_status(result.primero_url, case_id, referral_id) or "unknown"
        part.statuses[status] = part.statuses.get(status, 0) + 1
    part.statuses = dict(sorted(part.statuses.items()))
    references = ", ".join(str(row.get("link_external_reference")) for row in ours)
    say(f"{name}: {len(ours)} linked {record_type} rows in Primero ({references})")
    if len(ours) != len(referred) or any(
        row.get("link_record_type") != record_type for row in ours
    ):
        result.problems.append(f"{name}: not every child has one {record_type} row in Primero")
    if part.statuses != {expected_status: len(referred)}:
        result.problems.append(f"{name}: Primero referral statuses {part.statuses}")
    again = sync("no change")
    say(f"{name}: nothing changed, the next run sends {sum(again.delivered.values())}")
    if again.enqueued or again.delivered or again.retrying or again.dead_lettered:
        result.problems.append(f"{name}: a run with nothing changed still sent something")


def _police(result: DemoResult, settings: Settings, desk: Desk, say: Callable[[str], None]) -> None:
    part, sync = _begin(result, settings, "police", 3)
    referred = refer_children(result.primero_url, 2)
    referred += refer_children(
        result.primero_url, 1, concerns=["sexually_exploited"], consent=False
    )
    say(
        "police: CPOs refer 3 children to the Sindh Police WCPC (2 consented, 1 without "
        "consent: the caregiver is suspected)"
    )
    sync("referrals")
    keys = {f"ref-{referral_id}" for _, referral_id in referred}
    unconsented = f"ref-{referred[-1][1]}"
    sent = {r["referral_key"] for r in desk.records()}
    say(
        f"police: {len(keys & sent)} of ours sent; the one without consent is held until a "
        "supervisor decides, and the CPO sees why in the case's linked records"
    )
    if unconsented in sent or len(keys & sent) != 2:
        result.problems.append("police: the referral without consent was not held")
    record_decision(
        result.primero_url,
        referred[-1][0],
        department="police",
        basis="mandatory_report",
        legal_reference="Sindh Child Protection Authority Act 2011 s.15 (mandatory report)",
        reason="Synthetic: injuries reported by the school.",
    )
    decided = sync("supervisor's decision")
    held = {r["referral_key"] for r in desk.records()}
    say(
        "police: the CPU supervisor records a mandatory report in the case's 'Disclosure "
        "decisions'; Primero's record history proves who did, and the next run sends it "
        f"({decided.released} released); ours at the police: {len(keys & held)}"
    )
    if not keys <= held:
        result.problems.append("police: a referral did not reach the police")
    for n, key in enumerate(sorted(keys)):
        desk.register_fir(
            key,
            station="PS-Kalri",
            year=2026,
            sections=["PPC 328-A"],
            investigating_officer={"rank": "SI", "name": f"Synthetic Officer {n}"},
        )
    say(f"police: the station registers {len(keys)} FIRs")
    part.accepted, part.accepted_as = len(keys), "registered an FIR for {n}"
    second = sync("FIRs back")
    say(f"police: {second.status_updates} statuses back, {second.write_backs} written back")
    _finish(result, part, sync, referred, "fir", "accepted", say)


def _birth_registration(
    result: DemoResult, settings: Settings, desk: Desk, say: Callable[[str], None]
) -> None:
    part, sync = _begin(result, settings, "birth_registration", 3)
    referred = refer_children(result.primero_url, 3, agency=NADRA_AGENCY, service=NADRA_SERVICE)
    # The registry already holds the births of the first two (refer_children's names).
    for n in range(2):
        desk.add_registered_child(
            given_name="Synthetic",
            family_name=f"Child{n}",
            birth_date=f"{2010 + n}-0{1 + n}-15",
            sex="female" if n % 2 else "male",
            registration_number=f"BRN-4220-{2010 + n}-00004{n}",
        )
    say("birth_registration: CPOs ask NADRA to verify 3 children's birth registration")
    first = sync("searches")
    matched = sum(1 for r in desk.records() if r.get("status") == "match")
    say(
        f"birth_registration: {sum(first.delivered.values())} searches sent, answered at once "
        f"({matched} registered); {first.write_backs} written back"
    )
    part.accepted = len(desk.records())
    part.accepted_as = f"answered {{n}} ({matched} registered births found)"
    if matched != 2 or first.write_backs < len(referred):
        result.problems.append("birth_registration: the registry's answers did not come back")
    _finish(result, part, sync, referred, "birth_registration", "done", say)


def _courts(
    result: DemoResult, settings: Settings, desk: Desk, kek: bytes, say: Callable[[str], None]
) -> None:
    part, sync = _begin(result, settings, "courts", 2)
    referred = refer_children(result.primero_url, 2, agency=COURT_AGENCY, service=COURT_SERVICE)
    for n, (case_id, _) in enumerate(referred):
        record_override(
            result.state_url,
            kek,
            case_id,
            "courts",
            basis=OverrideBasis.COURT_ORDER,
            legal_reference=f"Juvenile Court Karachi, order JC-{114 + n}/2026",
        )
    say("courts: CPOs send case summaries for 2 children under a recorded court order")
    first = sync("summaries")
    keys = {f"ref-{referral_id}" for _, referral_id in referred}
    held = {r["referral_key"] for r in desk.records()}
    say(
        f"courts: {sum(first.delivered.values())} case summaries sent; ours at the court: "
        f"{len(keys & held)}"
    )
    if not keys <= held:
        result.problems.append("courts: a case summary did not reach the court")
    for n, key in enumerate(sorted(keys)):
        desk.make_order(
            key,
            court={"type": "juvenile", "name": "Juvenile Court Karachi", "district": "South"},
            case_number=f"JC-{114 + n}",
            case_year=2026,
            order_type="supervision",
            order_date="2026-03-01",
        )
    say(f"courts: the court makes {len(keys)} supervision orders")
    part.accepted, part.accepted_as = len(keys), "made an order on {n}"
    second = sync("orders back")
    say(f"courts: {second.status_updates} statuses back, {second.write_backs} written back")
    _finish(result, part, sync, referred, "court_order", "accepted", say)


def _count_story(result: DemoResult, kek: bytes) -> None:
    """Each department's story, one count per referral: found (its first run), refused (the
    latest decision per case in the audit log is a refusal, by stage and reason) and the
    outcome the adapter wrote back into Primero for every referral it carried (its links;
    ``waiting`` while the department has not answered)."""
    by_department = {part.department: part for part in result.departments}
    for part in result.departments:
        part.found = part.runs[0][1].referrals_routed if part.runs else 0
    latest: dict[tuple[str, str], dict[str, object]] = {}
    outcomes: dict[str, Counter[str]] = {name: Counter() for name in by_department}
    with StateStore(result.state_url) as store:
        audit = AuditLog(store, KeyRing.open(store, kek))
        seq = 0
        while records := audit.entries(after_seq=seq):
            seq = records[-1].seq
            for record in records:
                entry = record.entry
                if entry.get("event") in ("disclosure", "refusal"):
                    latest[(str(entry["department"]), str(entry["case_ref"]))] = entry
        with store.transaction() as conn:
            for department, written in conn.execute(
                sa.select(links.c.department, links.c.written_back_status)
            ):
                if department in outcomes:
                    outcomes[department][str(written or WAITING)] += 1
    for (department, _), entry in latest.items():
        if department in by_department and entry["event"] == "refusal":
            by_department[department].refusals[(str(entry["stage"]), str(entry["reason"]))] += 1
    for name, part in by_department.items():
        part.outcomes = dict(sorted(outcomes[name].items()))


def _rows(primero_url: str, case_ids: list[str]) -> list[dict[str, object]]:
    with PrimeroClient(
        primero_url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD
    ) as client:
        return [dict(row) for c in case_ids for row in client.get_case(c).get(SUBFORM_FIELD) or []]


def _linked_rows(primero_url: str, case_ids: list[str]) -> int:
    with PrimeroClient(
        primero_url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD
    ) as client:
        return sum(len(client.get_case(c).get(SUBFORM_FIELD) or []) for c in case_ids)
