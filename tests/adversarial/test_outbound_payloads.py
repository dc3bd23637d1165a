"""privacy.md §7 items 6, 8, 11, 19 and 20 on what departments actually receive.

tests/privacy/test_properties.py checks the *disclosure* (the policy's minimised payload).
These tests go one step further down the chain the sync engine runs — policy → pseudonymise →
the department's real mapping (FHIR for health, config/mappings/*.toml for the others) — and
check the *documents* a department would receive, for thousands of generated Primero cases:

* item 6: health and police get no common identifier, timestamp to the second or code: a join
  of every health column with every police column, over a population of cases, matches nothing;
* item 8: no document holds an unkeyed hash (SHA-256, SHA-1, MD5; hex, base32, base64) of any
  identifier, nor an HMAC of one under any department's key, nor a Primero id;
* item 11: case codes seal the case's random UUID and nothing else (a CNIC is refused as input),
  because an HMAC over a CNIC falls to brute force once its key leaks (shown here);
* item 19: a field Primero adds tomorrow — at the top, in a subform, in a service row — never
  reaches a document;
* item 20: an S3 case's documents hold no 12-character run of any narrative or free text, and
  birth registration documents never hold a protection concern.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.app.departments import load_mapping
from adapter.mappings.base import DepartmentMapping, Document
from adapter.mappings.fhir import OrgRef
from adapter.mappings.health import HealthMapping
from adapter.mappings.routing import RoutedReferral
from adapter.privacy import (
    CodeRefused,
    ConsentOverride,
    DisclosurePolicy,
    KeyRing,
    OverrideBasis,
    PolicySet,
    Stage,
    _codec,
)
from adapter.privacy.keys import KeyRole
from adapter.state import StateStore
from tests.privacy.conftest import GAZETTEER, NOW, POLICY_DIR
from tests.privacy.test_properties import (
    UNKNOWN_PREFIX,
    cases,
    strings,
    text_values,
)

MAPPINGS = Path(__file__).resolve().parents[2] / "config" / "mappings"
PURPOSES = {
    "health": "referral",
    "police": "referral",
    "birth_registration": "birth_registration",
    "courts": "court_order",
}
SERVICES = {
    "health": "health_medical_service",
    "police": "police_other_service",
    "birth_registration": "registration_service",
    "courts": "legal_assistance_service",
}
# Every basis a disclosure can rest on, so identified documents flow for most cases.
BASES = {
    "police": (OverrideBasis.MANDATORY_REPORT, OverrideBasis.S3_APPROVAL),
    "courts": (OverrideBasis.COURT_ORDER, OverrideBasis.S3_APPROVAL),
    "health": (OverrideBasis.S3_APPROVAL,),
    "birth_registration": (OverrideBasis.S3_APPROVAL,),
}
# What can join two departments' records: UUIDs, long hex or base32 runs (codes, digests),
# and times to the second.
_IDENTIFIER_LIKE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\b[0-9a-f]{16,}\b|\b[a-z2-7]{20,}\b"
    r"|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}"
)


@dataclass
class Chain:
    """The tail of the sync engine's chain, for every department."""

    policy: DisclosurePolicy
    ring: KeyRing
    mappings: dict[str, DepartmentMapping]

    def documents(self, case: dict[str, Any]) -> dict[str, list[Document]]:
        """What each department receives for ``case``: its capacity probe (if it has one)
        and its identified referral, each through the department's real mapping."""
        out: dict[str, list[Document]] = {}
        for department, mapping in self.mappings.items():
            referral = routed(case, department)
            overrides = overrides_for(case, department)
            docs = []
            for stage in (Stage.PROBE, Stage.IDENTIFIED):
                decision = self.policy.decide(
                    case,
                    department,
                    PURPOSES[department],
                    stage,
                    codes=self.ring,
                    overrides=overrides,
                    referral=referral.transition,
                    now=NOW,
                )
                if not decision.allowed:
                    continue
                if stage is Stage.IDENTIFIED:
                    docs.append(mapping.referral(referral, decision, after_probe=True))
                elif department == "health" or getattr(mapping, "has_probe", False):
                    docs.append(mapping.probe(referral, decision))
            out[department] = docs
        return out


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    policy = DisclosurePolicy.load(POLICY_DIR, gazetteer=GAZETTEER)
    policies = PolicySet.load(POLICY_DIR)
    with StateStore(f"sqlite:///{tmp_path_factory.mktemp('chain')}/ring.db") as store:
        ring = KeyRing.init(store, secrets.token_bytes(32), policy.departments, now=NOW)
        mappings: dict[str, DepartmentMapping] = {
            "health": HealthMapping(
                department="health",
                performer=OrgRef(system="urn:cpims-adapter:org", value="civil-hospital-karachi"),
                requester=OrgRef(system="urn:cpims-adapter:org", value="cpu-karachi"),
            ),
        }
        for department in ("police", "birth_registration", "courts"):
            mappings[department] = load_mapping(
                MAPPINGS / f"{department}.toml", department, policy=policies
            )
        yield Chain(policy, ring, mappings)


def with_referrals(case: dict[str, Any], second: datetime) -> dict[str, Any]:
    """The case with a referral to every department, all made by the CPO in the same second
    (so a timestamp to the second would join them), and fields Primero may add tomorrow in
    the service rows and the transitions."""
    rows = list(case.get("services_section") or [])
    transitions = {}
    for department, service in SERVICES.items():
        row_id = str(uuid.uuid4())
        rows.append(
            {
                "unique_id": row_id,
                "service_type": service,
                "service_response_timeframe": "1_day",
                "service_new_upstream_field": UNKNOWN_PREFIX + row_id,
            }
        )
        transitions[department] = {
            "id": str(uuid.uuid4()),
            "type": "Referral",
            "service_record_id": row_id,
            "created_at": second.isoformat().replace("+00:00", "Z"),
            "remote": True,
            "new_transition_field": UNKNOWN_PREFIX + "transition",
        }
    # Primero's own timestamp of the case, to the second: it must never leave (item 6).
    created = (second - timedelta(days=3, seconds=7)).isoformat().replace("+00:00", "Z")
    case = dict(case, services_section=rows, created_at=created)
    case["_transitions"] = transitions
    return case


def routed(case: dict[str, Any], department: str) -> RoutedReferral:
    transition = case["_transitions"][department]
    return RoutedReferral(
        key=f"ref-{transition['id']}",
        source="referral",
        referral_id=transition["id"],
        service_row_id=transition["service_record_id"],
        service_type=SERVICES[department],
        urgency="1_day",
        primero_status="in_progress",
        transition=transition,
    )


def overrides_for(case: dict[str, Any], department: str) -> list[ConsentOverride]:
    return [
        ConsentOverride(
            case_id=case["id"],
            department=department,
            basis=basis,
            legal_reference="CPWA 2011 s.x",
            requested_by="caseworker",
            approved_by="supervisor",
            created_at=NOW - timedelta(hours=1),
            expires_at=NOW + timedelta(hours=1),
            id=n + 1,
        )
        for n, basis in enumerate(BASES[department])
    ]


def consented(case: dict[str, Any]) -> dict[str, Any]:
    return dict(case, consent_for_services=True, disclosure_other_orgs=True)


def texts(documents: list[Document]) -> list[str]:
    return [s for d in documents for s in strings(d.body)]


def identifier_like(documents: list[Document]) -> set[str]:
    return {m.group(0) for t in texts(documents) for m in _IDENTIFIER_LIKE.finditer(t)}


def examples(long_mode: bool, base: int) -> int:
    return base * 10 if long_mode else base


SECONDS = st.datetimes(datetime(2025, 1, 1), datetime(2026, 2, 1)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC)
)


# -- item 6 -----------------------------------------------------------------------------------


def test_health_and_police_share_no_joinable_value(chain: Chain, long_mode: bool) -> None:
    @settings(
        max_examples=examples(long_mode, 15),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(population=st.lists(st.tuples(cases(), SECONDS), min_size=5, max_size=12))
    def each(population: list[tuple[dict[str, Any], datetime]]) -> None:
        health: set[str] = set()
        police: set[str] = set()
        for case, second in population:
            documents = chain.documents(with_referrals(consented(case), second))
            health |= identifier_like(documents["health"])
            police |= identifier_like(documents["police"])
        # Any value in both, for any case and any columns, is a join key (§7 item 6).
        assert health.isdisjoint(police), health & police

    each()


# -- items 6, 8 -------------------------------------------------------------------------------


def keyed_hashes(chain: Chain, case: dict[str, Any]) -> set[str]:
    """HMAC-SHA256 of the case's identifiers under every department's token key (item 8:
    a code must not be one, and no document may hold one), in hex, base32 and base64."""
    values = [
        str(case[k]) for k in ("id", "national_id_no", "name", "telephone_current") if case.get(k)
    ]
    out = set()
    for department in chain.policy.departments:
        key = chain.ring._key(KeyRole.TOKEN, department, None).material
        assert key is not None
        for value in values:
            digest = hmac.new(key, value.encode(), hashlib.sha256).digest()
            out |= _spellings(digest)
    return out


def _spellings(digest: bytes) -> set[str]:
    return {
        digest.hex(),
        base64.b32encode(digest).decode().rstrip("=").lower(),
        base64.b64encode(digest).decode().rstrip("="),
        base64.urlsafe_b64encode(digest).decode().rstrip("="),
    }


def unkeyed_hashes(case: dict[str, Any]) -> set[str]:
    """SHA-256, SHA-1 and MD5 of every identifier of the case, in every common spelling."""
    values = {
        str(case[k])
        for k in (
            "id",
            "unique_identifier",
            "case_id",
            "case_id_display",
            "short_id",
            "national_id_no",
            "name",
            "telephone_current",
        )
        if case.get(k)
    }
    values.add(uuid.UUID(case["id"]).hex)
    return {
        spelling
        for value in values
        for algorithm in ("sha256", "sha1", "md5")
        for spelling in _spellings(hashlib.new(algorithm, value.encode()).digest())
    }


def primero_identifiers(case: dict[str, Any]) -> set[str]:
    """Primero's own references to the case: each is the same for every recipient."""
    ids = {
        str(case[k])
        for k in ("id", "unique_identifier", "case_id", "case_id_display", "short_id")
        if case.get(k)
    }
    ids.add(str(case["created_at"])[:19])  # to the second, in any zone spelling
    ids.add(uuid.UUID(case["id"]).hex)
    ids |= {str(r["unique_id"]) for r in case.get("services_section") or [] if r.get("unique_id")}
    return ids


def test_no_document_holds_a_primero_id_or_a_hash_of_an_identifier(
    chain: Chain, long_mode: bool
) -> None:
    @settings(
        max_examples=examples(long_mode, 60),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(), second=SECONDS)
    def each(case: dict[str, Any], second: datetime) -> None:
        case = with_referrals(consented(case), second)
        documents = chain.documents(case)
        everything = "\x00".join(t for docs in documents.values() for t in texts(docs))
        # The referral keys are the department's handle on its own referral (ref-<id> of a
        # transition only it received), so the service rows they point at are allowed there.
        own_rows = {t["service_record_id"] for t in case["_transitions"].values()}
        for value in primero_identifiers(case) - own_rows:
            assert value not in everything, "a Primero id left the adapter"
        for department, docs in documents.items():
            others = own_rows - {case["_transitions"][department]["service_record_id"]}
            assert not any(row in t for t in texts(docs) for row in others)
        for digest in unkeyed_hashes(case) | keyed_hashes(chain, case):
            assert digest not in everything, "a hash of an identifier left the adapter"

    each()


# -- item 11 ----------------------------------------------------------------------------------


def test_case_codes_seal_the_case_uuid_and_nothing_else(chain: Chain) -> None:
    """Regression guard: the input of a case code stays the case's random UUID. A CNIC, a
    phone number or a name is refused as input, and the code, opened with its key, is the UUID."""
    for identifier in ("35202-1234567-1", "3520212345671", "+923001234567", "Zainab Qureshi"):
        with pytest.raises(CodeRefused):
            chain.ring.case_code(identifier, "health")
    case_id = str(uuid.uuid4())
    for department in chain.policy.departments:
        key = chain.ring._key(KeyRole.TOKEN, department, None).material
        assert key is not None
        parsed = _codec.parse(chain.ring.case_code(case_id, department))
        assert parsed is not None
        assert _codec.unseal(AESSIV(key), parsed) == case_id
    # Two cases of the same child (one CNIC, two Primero cases) get unrelated codes.
    assert chain.ring.case_code(str(uuid.uuid4()), "police") != chain.ring.case_code(
        str(uuid.uuid4()), "police"
    )


def test_an_hmac_over_a_cnic_falls_to_brute_force_once_its_key_leaks() -> None:
    """Why item 11 matters: a CNIC is 13 digits, most of them guessable (5 for the district,
    1 for the sex), so HMAC(K, cnic) is a lookup table once K leaks. Here one district block
    of 100,000 serials is searched; the rate measured shows the whole space of a district
    (10^7 serials x 2 sexes) in minutes on one core, and of Pakistan in days on a GPU. A case
    code seals a random 122-bit UUID instead: there is nothing to enumerate."""
    leaked = secrets.token_bytes(32)
    serial = secrets.randbelow(100_000)
    target = hmac.new(leaked, f"35202{12:02d}{serial:05d}1".encode(), hashlib.sha256).digest()
    started = time.perf_counter()
    found = None
    for guess in range(100_000):
        cnic = f"35202{12:02d}{guess:05d}1"
        if hmac.new(leaked, cnic.encode(), hashlib.sha256).digest() == target:
            found = guess
            break
    elapsed = max(time.perf_counter() - started, 1e-6)
    assert found == serial
    per_second = (found + 1) / elapsed
    assert 2 * 10**7 / per_second < 60 * 60, "one district's CNICs fall within an hour"


# -- items 19, 20 -----------------------------------------------------------------------------


def structural_text(chain: Chain) -> str:
    """What the documents of plain cases (no free text) hold: FHIR resource names, systems,
    the mappings' fixed words. Free text that happens to contain them leaks nothing."""
    found = []
    for concerns in (["neglect"], ["physical_abuse_violence"], ["sexual_abuse_violence"]):
        case = plain_case(protection_concerns=concerns)
        for docs in chain.documents(
            with_referrals(case, datetime(2026, 1, 5, tzinfo=UTC))
        ).values():
            found.extend(texts(docs))
    return "\x00".join(found)


def plain_case(**fields: Any) -> dict[str, Any]:
    """A consented CP case with no free text at all."""
    case = {
        "id": str(uuid.uuid4()),
        "module_id": "primeromodule-cp",
        "consent_for_services": True,
        "disclosure_other_orgs": True,
        "name": "Zainab Qureshi",
        "sex": "female",
        "date_of_birth": "2014-06-02",
        "location_current": "PK30101",
        "protection_concerns": ["neglect"],
    }
    case.update(fields)
    return case


def test_new_fields_never_leave_and_s3_text_never_leaves(chain: Chain, long_mode: bool) -> None:
    structure = structural_text(chain)

    @settings(
        max_examples=examples(long_mode, 150),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(), second=SECONDS)
    def each(case: dict[str, Any], second: datetime) -> None:
        case = with_referrals(case, second)
        documents = chain.documents(case)
        every_text = [t for docs in documents.values() for t in texts(docs)]
        # Item 19: what Primero adds tomorrow (top level, subform, service row, transition).
        assert not any(UNKNOWN_PREFIX in t for t in every_text)
        # Item 20: an S3 case's documents hold no 12-character run of its free text.
        if chain.policy.classify(case).level == "S3":
            joined = "\x00".join(every_text)
            # (the transitions ride along in the case dict for this harness only)
            primero_case = {k: v for k, v in case.items() if k != "_transitions"}
            for text in text_values(primero_case, chain.policy):
                for i in range(len(text) - 11):
                    run = text[i : i + 12]
                    # A run every case's documents hold ("ServiceRequest") is no leak.
                    assert run not in joined or run in structure, run
        # Item 20: birth registration never learns a protection concern, by any name.
        concerns = set(case.get("protection_concerns") or []) | {
            str(r.get("protection_concern_type"))
            for r in case.get("protection_concern_detail_subform_section") or []
        }
        nadra = texts(documents["birth_registration"])
        assert concerns.isdisjoint(nadra)
        assert not any(
            word in t for t in nadra for word in ("protection_concern", "reasonCode", "SDV")
        )

    each()


def test_the_chain_delivers_identified_documents_to_every_department(chain: Chain) -> None:
    """The properties above are not vacuous: a consented case reaches all four departments
    with an identified document, through their real mappings."""
    documents = chain.documents(
        with_referrals(plain_case(), datetime(2026, 1, 5, 9, 30, tzinfo=UTC))
    )
    kinds = {department: [d.kind for d in docs] for department, docs in documents.items()}
    assert all("referral" in k for k in kinds.values()), kinds
    assert "probe" in kinds["health"]
