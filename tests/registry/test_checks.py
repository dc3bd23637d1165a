"""Checks: the outcome rules, the answer's shape, and what never leaks (privacy.md §6.6,
§7 items 1-5, 12, 14-16, 24)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from adapter.privacy import AuditLog, KeyRing
from adapter.registry import (
    CheckRequest,
    ConsentRefUsed,
    Establishment,
    Outcome,
    Registry,
    RequestRejected,
)
from adapter.state import StateStore
from tests.registry.conftest import CNIC, NOW, order, request

SIZE = 768


def answer_bytes(registry: Registry, school: Establishment, **fields: str) -> tuple[Outcome, bytes]:
    answer = registry.check(request(**fields), school, now=NOW)
    return answer.status, answer.to_json(SIZE)


def test_registered_cnic_with_matching_identity_is_do_not_engage(
    registry: Registry, school: Establishment
) -> None:
    registry.ingest_conviction(order(), now=NOW)
    for variant in ({}, {"full_name": "Mohd. Ali", "father_name": "Mohammad Aslam"}):
        assert registry.check(request(**variant), school, now=NOW).status is Outcome.DO_NOT_ENGAGE


def test_registered_cnic_with_the_wrong_name_or_dob_is_pending_and_reveals_nothing(
    registry: Registry, school: Establishment
) -> None:
    # privacy.md §7 item 2: the NADRA SMS anti-pattern must be impossible.
    registry.ingest_conviction(order(), now=NOW)
    for wrong in (
        {"full_name": "Ahmed Raza"},
        {"father_name": "Zafar Iqbal"},
        {"date_of_birth": "1991-05-01"},
    ):
        status, body = answer_bytes(registry, school, **wrong)
        assert status is Outcome.PENDING_REVIEW
        answer = json.loads(body)
        assert answer["how_to_appeal"] == registry.settings.how_to_appeal  # fixed text
        dynamic = json.dumps([v for k, v in answer.items() if k != "how_to_appeal"]).casefold()
        for secret in ("ali", "aslam", "1990", "35202", "377", "lhc", "re-"):
            assert secret not in dynamic, secret


def test_answers_have_one_shape_and_one_size(registry: Registry, school: Establishment) -> None:
    registry.ingest_conviction(order(), now=NOW)
    bodies = {
        answer_bytes(registry, school)[0]: answer_bytes(registry, school)[1],
        Outcome.PENDING_REVIEW: answer_bytes(registry, school, full_name="Ahmed Raza")[1],
        Outcome.CLEAR: answer_bytes(
            registry, school, cnic="42101-7654321-3", full_name="Bilal Ahmed"
        )[1],
    }
    assert set(bodies) == set(Outcome)
    assert {len(b) for b in bodies.values()} == {SIZE}
    assert {tuple(json.loads(b)) for b in bodies.values()} == {
        ("status", "check_ref", "checked_at", "valid_until", "how_to_appeal", "pad")
    }


def test_common_name_without_a_cnic_hit_is_pending_never_do_not_engage(
    registry: Registry, school: Establishment
) -> None:
    # privacy.md §7 item 5: many "Muhammad Ali"s born in 1990, none with the asked CNIC.
    for i in range(12):
        registry.ingest_conviction(
            order(cnic=f"42101-{2000000 + i}-1", date_of_birth=f"1990-0{1 + i % 9}-1{i % 9}"),
            now=NOW,
        )
    asked = request(cnic="61101-7777777-5", full_name="Mohd Ali", father_name="M. Aslam")
    answer = registry.check(asked, school, now=NOW)
    assert answer.status is Outcome.PENDING_REVIEW
    # A namesake with another father, born years apart, is simply CLEAR.
    other = request(cnic="61101-7777778-5", father_name="Zafar Iqbal", date_of_birth="1975-02-03")
    assert registry.check(other, school, now=NOW).status is Outcome.CLEAR


def test_unknown_cnic_and_unknown_name_is_clear(registry: Registry, school: Establishment) -> None:
    registry.ingest_conviction(order(), now=NOW)
    fresh = request(cnic="42101-7654321-3", full_name="Bilal Ahmed", father_name="Zafar Iqbal")
    assert registry.check(fresh, school, now=NOW).status is Outcome.CLEAR


def test_removal_then_recheck_is_clear_at_once(registry: Registry, school: Establishment) -> None:
    # privacy.md §7 item 24: no cache anywhere; the fuzzy index forgets the entry too.
    entry = registry.ingest_conviction(order(), now=NOW).entry_ref
    assert entry is not None
    assert registry.check(request(), school, now=NOW).status is Outcome.DO_NOT_ENGAGE
    registry.remove(entry, "quashed by the High Court", "r.officer", now=NOW)
    assert registry.check(request(), school, now=NOW).status is Outcome.CLEAR
    namesake = request(cnic="61101-7777777-5")
    assert registry.check(namesake, school, now=NOW).status is Outcome.CLEAR


@pytest.mark.parametrize(
    "spelling",
    [
        "35202-1234567-1",
        "3520212345671",
        "٣٥٢٠٢-١٢٣٤٥٦٧-١",  # Arabic-Indic digits
        "۳۵۲۰۲-۱۲۳۴۵۶۷-۱",  # Urdu digits
        "３５２０２－１２３４５６７－１",  # fullwidth
        "35202–1234567—1",  # en and em dashes
        "35202\u00a01234567\u00a01",  # NBSP
        "\ufeff35202-\u200b1234567-1\u200e\n",  # BOM, ZWSP, LRM, newline
    ],
)
def test_identifier_spellings_reach_the_same_entry(
    registry: Registry, school: Establishment, spelling: str
) -> None:
    registry.ingest_conviction(order(), now=NOW)
    assert registry.check(request(cnic=spelling), school, now=NOW).status is Outcome.DO_NOT_ENGAGE


@pytest.mark.parametrize(
    "bad",
    [
        "35202-123456-1",  # 12 digits
        "35202-12345678-1",  # 14 digits
        "3520A-1234567-1",
        "05202-1234567-1",  # province 0
        "95202-1234567-1",  # province 9
        "1" * 10_000,
        "35202-1234567-1'; DROP TABLE registry_entries; --",
        '{"$ne": null}',
    ],
)
def test_malformed_cnics_are_refused_without_echo(bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        request(cnic=bad)
    messages = " ".join(e["msg"] for e in caught.value.errors())
    assert bad[:8] not in messages and "1234567" not in messages


def test_a_cnic_alone_is_refused() -> None:
    with pytest.raises(ValidationError):
        CheckRequest.model_validate({"cnic": CNIC})
    with pytest.raises(ValidationError):
        CheckRequest.model_validate({**request().model_dump(mode="json"), "extra": "x"})


def test_homoglyph_names_are_refused_and_controls_are_folded(
    registry: Registry, school: Establishment
) -> None:
    with pytest.raises(ValidationError):
        request(full_name="Muh\u0430mmad Ali")  # Cyrillic а
    registry.ingest_conviction(order(), now=NOW)
    tricked = request(full_name="\u202eMuhammad\u200d Ali", father_name="Ｍｕｈａｍｍａｄ Aslam")
    assert registry.check(tricked, school, now=NOW).status is Outcome.DO_NOT_ENGAGE


def test_urdu_names_match_across_keyboard_variants(
    registry: Registry, school: Establishment
) -> None:
    registry.ingest_conviction(
        order(full_name="Muhammad Ali", full_name_urdu="محمد علی", father_name_urdu="محمد اسلم"),
        now=NOW,
    )
    urdu = request(full_name="مُحَمَّد علي", father_name="محـمد اسلم")
    assert registry.check(urdu, school, now=NOW).status is Outcome.DO_NOT_ENGAGE


def test_consent_references_are_single_use(registry: Registry, school: Establishment) -> None:
    first = request()
    registry.check(first, school, now=NOW)
    with pytest.raises(ConsentRefUsed):
        registry.check(
            request(consent_ref=first.consent_ref, cnic="42101-7654321-3"), school, now=NOW
        )


def test_unknown_purpose_is_refused(registry: Registry, school: Establishment) -> None:
    with pytest.raises(RequestRejected):
        registry.check(request(purpose="marketing"), school, now=NOW)


def test_every_check_is_audited_with_the_subjects_hmac_only(
    registry: Registry, school: Establishment, store: StateStore, ring: KeyRing
) -> None:
    registry.ingest_conviction(order(), now=NOW)
    made = registry.check(request(), school, now=NOW)
    log = AuditLog(store, ring)
    assert log.verify().ok
    entries = [r.entry for r in log.entries() if r.entry["event"] == "registry_check"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["case_code"] == made.check_ref
    assert entry["department"] == "SCH-001"
    assert len(entry["case_ref"]) == 64 and "1234567" not in json.dumps(entry)
    assert "status=DO_NOT_ENGAGE" in entry["reason"]


def test_hit_and_miss_do_the_same_database_work(
    registry: Registry, school: Establishment, store: StateStore
) -> None:
    # privacy.md §7 item 3, made deterministic: the same statements on every path (the
    # benchmark measures the time distributions).
    registry.ingest_conviction(order(), now=NOW)
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement.split()[0])

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        registry.check(request(), school, now=NOW)
        hit = list(statements)
        statements.clear()
        registry.check(request(cnic="42101-7654321-3"), school, now=NOW)
        miss = list(statements)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    assert hit == miss


def test_no_identifier_or_name_is_stored_in_the_clear(
    registry: Registry, school: Establishment, store: StateStore
) -> None:
    if store.backend != "sqlite":
        pytest.skip("reads the SQLite file")
    registry.ingest_conviction(
        order(full_name="Zubaida Qureshi", father_name="Tanveer Akhtar"), now=NOW
    )
    registry.check(
        request(full_name="Zubaida Qureshi", father_name="Zorawar Akhtar"), school, now=NOW
    )
    registry.check(request(cnic="42101-7654321-3", full_name="Zubaida Qureshi"), school, now=NOW)
    database = Path(store.engine.url.database or "")
    raw = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    for secret in ("3520212345671", "35202-1234567-1", "Zubaida", "Qureshi", "Tanveer", "Zorawar"):
        assert secret.encode() not in raw, secret
