"""Deterministic synthetic child-protection cases for the simulator.

`seed(state, cases=N, seed=42)` fills an (already configured) state with N cases: Pakistani
names in Latin script with an Urdu rendering in `name_local_script`, districts of Sindh,
Balochistan and KP, ages 0-17, consent flags (mostly given), protection concerns including the
sensitive ones, ~10% GBV cases (name hidden), services with internal referrals to
`health_gateway` and remote referrals to health/police/NADRA/court agencies, family details and
short case notes. Timestamps spread over the year before `now` with distinct milliseconds.

Everything is synthetic: names are drawn independently (first name x family name), identity
numbers use the reserved-looking prefix 99 and are random.
"""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from adapter.simulator.primero import records
from adapter.simulator.primero.state import Case, Json, SimulatorState
from adapter.simulator.primero.timestamps import iso_ms

BOYS = [
    ("Muhammad", "محمد"),
    ("Mohd", "محمد"),
    ("Muhammed", "محمد"),
    ("Mohammad", "محمد"),
    ("Ali", "علی"),
    ("Hassan", "حسن"),
    ("Hussain", "حسین"),
    ("Bilal", "بلال"),
    ("Usman", "عثمان"),
    ("Hamza", "حمزہ"),
    ("Zubair", "زبیر"),
    ("Kashif", "کاشف"),
    ("Asad", "اسد"),
    ("Waqas", "وقاص"),
    ("Danish", "دانش"),
    ("Faisal", "فیصل"),
    ("Naveed", "نوید"),
    ("Sajid", "ساجد"),
    ("Junaid", "جنید"),
    ("Arsalan", "ارسلان"),
]
GIRLS = [
    ("Ayesha", "عائشہ"),
    ("Aisha", "عائشہ"),
    ("Fatima", "فاطمہ"),
    ("Zainab", "زینب"),
    ("Sana", "ثنا"),
    ("Maryam", "مریم"),
    ("Hira", "حرا"),
    ("Iqra", "اقرا"),
    ("Rabia", "رابعہ"),
    ("Saima", "صائمہ"),
    ("Nadia", "نادیہ"),
    ("Mehwish", "مہوش"),
    ("Gul", "گل"),
    ("Shabana", "شبانہ"),
    ("Bushra", "بشریٰ"),
    ("Amna", "آمنہ"),
    ("Sadia", "سعدیہ"),
    ("Kiran", "کرن"),
    ("Nimra", "نمرہ"),
    ("Zara", "زارا"),
]
FAMILY = [
    ("Khan", "خان"),
    ("Baloch", "بلوچ"),
    ("Shah", "شاہ"),
    ("Memon", "میمن"),
    ("Siddiqui", "صدیقی"),
    ("Qureshi", "قریشی"),
    ("Ahmed", "احمد"),
    ("Hussain", "حسین"),
    ("Bugti", "بگٹی"),
    ("Marri", "مری"),
    ("Khattak", "خٹک"),
    ("Soomro", "سومرو"),
    ("Jamali", "جمالی"),
    ("Mengal", "مینگل"),
    ("Durrani", "درانی"),
    ("Abbasi", "عباسی"),
    ("Chandio", "چانڈیو"),
    ("Mirza", "مرزا"),
    ("Yousaf", "یوسف"),
    ("Gul", "گل"),
]
# District, weight, home office (user) — the case worker who owns cases there.
DISTRICTS = [
    ("PK-SD-KHI", 30, "cp_worker1"),
    ("PK-SD-HYD", 8, "cp_worker1"),
    ("PK-SD-SUK", 5, "cp_worker1"),
    ("PK-SD-LRK", 4, "cp_worker1"),
    ("PK-SD-TPK", 4, "cp_worker1"),
    ("PK-BA-QTA", 10, "cp_worker3"),
    ("PK-BA-GWD", 3, "cp_worker3"),
    ("PK-BA-KCH", 3, "cp_worker3"),
    ("PK-BA-KHZ", 3, "cp_worker3"),
    ("PK-KP-PEW", 14, "cp_worker2"),
    ("PK-KP-SWT", 6, "cp_worker2"),
    ("PK-KP-MRD", 5, "cp_worker2"),
    ("PK-KP-ABT", 5, "cp_worker2"),
]
CONCERNS = [
    ("physically_or_mentally_abused", 25),
    ("child_labour", 20),
    ("street_child", 10),
    ("sexually_exploited", 6),
    ("gbv_survivor", 6),
    ("trafficked_smuggled", 5),
    ("arrested_detained", 6),
    ("child_mother", 3),
    ("disabled", 4),
    ("mentally_distressed", 5),
    ("other", 5),
]
# service type -> (agency for remote referrals, provider label)
SERVICES = {
    "health_medical_service": ("agency-civil-hospital-karachi", "Duty medical officer"),
    "psychosocial_service": ("agency-cpu-sindh", "Psychosocial counsellor"),
    "police_other_service": ("agency-sindh-police", "Women & Child Protection Cell"),
    "legal_assistance_service": ("agency-juvenile-court-karachi", "Court liaison officer"),
    "registration_service": ("agency-nadra", "NADRA registration desk"),
    "family_mediation_service": ("agency-cpu-sindh", "Family mediation officer"),
    "education_service": ("agency-cpu-sindh", "School enrolment focal point"),
}
NOTES = [
    "Child referred by a neighbour; home visit held with the mother present.",
    "Follow-up call with caregiver; child attending school again this week.",
    "Child seen at the CPU office; agreed a safety plan with the family.",
    "Caregiver asked for support with birth registration for all siblings.",
    "Case conference with the school head teacher; attendance to be monitored.",
    "Child reported working long hours at a workshop; employer contacted.",
]
RELATIONS = [
    ("mother", "Ammi"),
    ("father", "Abbu"),
    ("uncle", "Chacha"),
    ("grandmother", "Nani"),
    ("aunt", "Khala"),
    ("brother", "Bhai"),
]
BLOCKED_NAMES = {("Imran", "Khan"), ("Shahid", "Afridi"), ("Malala", "Yousafzai")}
YEAR_MS = 365 * 24 * 3600 * 1000


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _pick_weighted(rng: random.Random, items: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    cumulative = _CUMULATIVE.get(id(items))
    if cumulative is None:
        cumulative = _CUMULATIVE[id(items)] = list(itertools.accumulate(i[1] for i in items))
    return rng.choices(items, cum_weights=cumulative)[0]


_CUMULATIVE: dict[int, list[int]] = {}


def _identity_number(rng: random.Random) -> str:
    return f"99{rng.randrange(1000):03d}-{rng.randrange(10**7):07d}-{rng.randrange(10)}"


def _services(rng: random.Random, created: datetime, district: str) -> list[Json]:
    rows = []
    for service_type in rng.sample(list(SERVICES), rng.choice([0, 1, 1, 2, 2, 3])):
        day = created + timedelta(days=rng.randrange(1, 20), minutes=rng.randrange(600))
        agency = SERVICES[service_type][0]
        rows.append(
            {
                "unique_id": _uuid(rng),
                "service_response_type": "service_provision",
                "service_type": service_type,
                "service_response_day_time": iso_ms(day),
                "service_response_timeframe": rng.choice(["1_hour", "3_hours", "1_day", "3_days"]),
                "service_appointment_date": (day + timedelta(days=rng.randrange(1, 10)))
                .date()
                .isoformat(),
                "service_implementing_agency": agency,
                "service_delivery_location": district,
                "service_provider": SERVICES[service_type][1],
                "service_status_referred": False,
                "service_implemented": "not_implemented",
            }
        )
    return rows


def build_case(rng: random.Random, created: datetime, updated: datetime) -> Case:
    """One synthetic case (without referrals)."""
    sex = rng.choice(["male", "female"])
    first, family = rng.choice(BOYS if sex == "male" else GIRLS), rng.choice(FAMILY)
    while (first[0], family[0]) in BLOCKED_NAMES:
        family = rng.choice(FAMILY)
    district, _, owner = _pick_weighted(rng, DISTRICTS)
    age = rng.randrange(0, 18)
    dob = created.date().replace(month=1, day=1) - timedelta(days=365 * age + rng.randrange(365))
    gbv = rng.random() < 0.10
    concerns = {_pick_weighted(rng, CONCERNS)[0] for _ in range(rng.choice([1, 1, 2, 3]))}
    if gbv:
        concerns.add("gbv_survivor")
    unique_identifier = _uuid(rng)
    stamp_created, stamp_updated = iso_ms(created), iso_ms(updated)
    agency = {
        "cp_worker1": "agency-cpu-sindh",
        "cp_worker2": "agency-kp-cpwc",
        "cp_worker3": "agency-cpu-balochistan",
    }[owner]
    data: Json = {
        "unique_identifier": unique_identifier,
        "case_id": unique_identifier,
        "short_id": unique_identifier[-7:],
        "case_id_display": unique_identifier[-7:],
        "status": "closed" if rng.random() < 0.12 else "open",
        "record_state": True,
        "workflow": rng.choice(["new", "assessment", "case_plan", "service_provision"]),
        "module_id": "primeromodule-gbv" if gbv else "primeromodule-cp",
        "name": f"{first[0]} {family[0]}",
        "name_first": first[0],
        "name_last": family[0],
        "name_local_script": f"{first[1]} {family[1]}",
        "sex": sex,
        "age": age,
        "date_of_birth": dob.isoformat(),
        "estimated": rng.random() < 0.3,
        "registration_date": created.date().isoformat(),
        "location_current": district,
        "owned_by": owner,
        "owned_by_agency_id": agency,
        "owned_by_location": district,
        "owned_by_groups": [],
        "assigned_user_names": [],
        "consent_for_services": rng.random() < 0.88,
        "disclosure_other_orgs": rng.random() < 0.82,
        "consent_reporting": rng.choice(["true", "true", "true", "false"]),
        "protection_concerns": sorted(concerns),
        "urgent_protection_concern": rng.choice(["true", "false", "false", "false"]),
        "risk_level": rng.choice(["high", "medium", "medium", "low", "low"]),
        "services_section": _services(rng, created, district),
        "family_details_section": [
            {
                "unique_id": _uuid(rng),
                "relation": rel,
                "relation_name": f"{nick} ({family[0]})",
                "relation_is_alive": "true",
                "relation_is_caregiver": i == 0,
            }
            for i, (rel, nick) in enumerate(rng.sample(RELATIONS, rng.choice([1, 1, 2])))
        ],
        "notes_section": [
            {
                "unique_id": _uuid(rng),
                "note_subject": "Case note",
                "note_date": (created + timedelta(days=i * 7)).date().isoformat(),
                "note_text": rng.choice(NOTES),
                "note_created_by": owner,
            }
            for i in range(rng.choice([0, 1, 1, 2]))
        ],
        "created_by": owner,
        "created_organization": agency,
        "created_at": stamp_created,
        "posted_at": stamp_created,
        "last_updated_by": owner,
        "last_updated_at": stamp_updated,
        "flagged": False,
    }
    if gbv:
        data["hidden_name"] = True
    if age >= 15 and rng.random() < 0.2:
        data["national_id_no"] = _identity_number(rng)
    if rng.random() < 0.5:
        data["b_form_no"] = _identity_number(rng)
    # Seeded as if created long ago: history starts at the next save (saved = the data now).
    return Case(id=_uuid(rng), data=data, saved=dict(data))


def _add_referrals(state: SimulatorState, rng: random.Random, case: Case) -> None:
    """Some service rows referred: internally to health_gateway, or remotely to an agency."""
    for row in case.data["services_section"]:
        roll = rng.random()
        if roll > 0.35:
            continue
        remote = not (row["service_type"] == "health_medical_service" and roll < 0.2)
        created = row["service_response_day_time"]
        status = rng.choice(["in_progress", "in_progress", "accepted", "done", "rejected"])
        transition: Json = {
            "id": _uuid(rng),
            "type": "Referral",
            "allow_case_creation": False,
            "consent_individual_transfer": False,
            "consent_overridden": False,
            "created_at": created,
            "record_id": case.id,
            "record_type": "Child",
            "remote": remote,
            "status": "in_progress" if remote else status,
            "transitioned_by": case.data["owned_by"],
            "service": row["service_type"],
            "service_record_id": row["unique_id"],
            "notes": "Please see the child this week.",
            "record_owned_by": case.data["owned_by"],
            "record_owned_by_agency": case.data["owned_by_agency_id"],
            "record_owned_by_groups": [],
            "transitioned_by_user_agency": case.data["owned_by_agency_id"],
            "transitioned_by_user_groups": [],
        }
        row["service_status_referred"] = True
        if remote:
            transition["transitioned_to_agency"] = row["service_implementing_agency"]
            transition["transitioned_to_remote"] = row["service_provider"]
        else:
            transition["transitioned_to"] = "health_gateway"
            transition["transitioned_to_user_agency"] = "agency-civil-hospital-karachi"
            transition["transitioned_to_user_groups"] = []
            if status in ("in_progress", "accepted"):
                case.data["assigned_user_names"] = ["health_gateway"]
            if status != "in_progress":
                transition["responded_at"] = created
            if status == "done":
                row["service_implemented"] = "implemented"
                row["service_implemented_day_time"] = created
                transition["rejection_note"] = "Examined and treated; follow-up in two weeks."
                row["note_on_referral_from_provider"] = transition["rejection_note"]
            if status == "rejected":
                transition["rejected_reason"] = "Service not available this week."
        state.transitions[transition["id"]] = transition
        case.transition_ids.append(transition["id"])
    # Every case was saved once, and every save computes the summary (transitionable.rb).
    records.update_referral_summary(state, case)
    case.saved = dict(case.data)


def seed(
    state: SimulatorState, cases: int = 0, seed: int = 42, now: datetime | None = None
) -> list[str]:
    """Add `cases` synthetic cases; deterministic for a given seed and `now`.

    `now` defaults to the start of the current UTC day, so a seed gives the same data all day.
    Returns the ids of the new cases.
    """
    rng = random.Random(seed)
    anchor = now or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = anchor - timedelta(milliseconds=YEAR_MS)
    created_ms = rng.sample(range(YEAR_MS - 1), cases)
    used: set[int] = set()
    ids = []
    with state.lock:
        for offset in created_ms:
            updated = offset + rng.randrange(1, YEAR_MS - offset)
            while updated in used:
                updated += 1
            used.add(updated)
            case = build_case(
                rng,
                start + timedelta(milliseconds=offset),
                start + timedelta(milliseconds=min(updated, YEAR_MS)),
            )
            _add_referrals(state, rng, case)
            state.cases[case.id] = case
            ids.append(case.id)
        state.reset_indexes()
    return ids
