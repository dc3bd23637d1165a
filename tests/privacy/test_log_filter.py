"""No personal data in logs, exceptions or metrics (issue 3 item 7).

Canary values go through the whole privacy pipeline and its error paths; the tests fail if any
canary reaches a captured log line (from any logger, SQLAlchemy's included) or the message of
any exception raised.
"""

from __future__ import annotations

import io
import logging
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from adapter.privacy import (
    AuditLog,
    CaseCodes,
    ConsentOverride,
    DisclosureGate,
    OverrideBasis,
    PolicySet,
    RedactingFilter,
    Stage,
    normalise_cnic,
    normalise_phone,
    redact,
    sensitive_values,
)

from .conftest import NOW, POLICY_DIR, make_case

CANARY_NAME = "Rukhsana Canarybibi"
CANARY_CNIC = "42101-7654321-3"
CANARY_PHONE = "0345-7654321"
CANARY_NARRATIVE = "canary narrative: the neighbour hurt her near the canal on Tuesday"
CANARIES = (
    CANARY_NAME,
    CANARY_CNIC,
    "4210176543213",
    CANARY_PHONE,
    "03457654321",
    "7654321",
    CANARY_NARRATIVE[:20],
    "Canarybibi",
)


def canary_case(**fields: object) -> dict[str, object]:
    return make_case(
        name=CANARY_NAME,
        national_id_no=CANARY_CNIC,
        telephone_current=CANARY_PHONE,
        notes_section=[{"note_text": CANARY_NARRATIVE, "note_subject": CANARY_NAME}],
        police_referral_extract=CANARY_NARRATIVE,
        family_details_section=[{"relation_name": CANARY_NAME, "relation_telephone": CANARY_PHONE}],
        **fields,
    )


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log record of every logger at DEBUG, through the redacting filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def assert_clean(text: str) -> None:
    for canary in CANARIES:
        assert canary not in text, canary


def test_redact_patterns() -> None:
    assert redact("cnic 35202-1234567-1 ok") == "cnic [CNIC] ok"
    assert redact("cnic ۳۵۲۰۲-۱۲۳۴۵۶۷-۱") == "cnic [CNIC]"
    assert redact("b-form 3520212345671") == "b-form [CNIC]"
    assert redact("call 0300-1234567 or +92 300 1234567 or 00923001234567") == (
        "call [PHONE] or [PHONE] or [PHONE]"
    )
    assert redact("landline +92-21-35123456") == "landline [PHONE]"
    assert redact("mail a.b@example.org now") == "mail [EMAIL] now"
    assert redact("id 123456789012345") == "id [NUMBER]"
    # Record UUIDs and timestamps stay readable: operators need them (STYLE.md).
    keep = "case 437189fc-1a2b-4c3d-8e9f-001122334455 at 2026-03-01 09:00:00"
    assert redact(keep) == keep


def test_log_forging_and_bidi_tricks_are_neutralised() -> None:
    assert redact("name Ali\nINFO forged line") == "name Ali\\nINFO forged line"
    assert redact("Ali\u202eKhan\u200b") == "AliKhan"
    assert "\r" not in redact("a\rb")


def test_registered_values_are_redacted_in_any_case_and_fragment() -> None:
    with sensitive_values([CANARY_NAME, CANARY_NARRATIVE, "ab"]):
        assert redact(f"child {CANARY_NAME.upper()} seen") == "child [REDACTED] seen"
        fragment = CANARY_NARRATIVE[10:40]
        assert redact(f"note: {fragment}!") == "note: [REDACTED]!"
        assert redact("about the cab") == "about the cab"  # 2-character values are ignored
    assert redact(CANARY_NAME) == CANARY_NAME  # only inside the block


def test_filter_redacts_args_exceptions_and_extras(captured: io.StringIO) -> None:
    log = logging.getLogger("adapter.test")
    log.warning("phone %s for %s", CANARY_PHONE, "x", extra={"cnic": CANARY_CNIC})
    try:
        raise ValueError(f"bad {CANARY_CNIC}")
    except ValueError:
        log.exception("failed")
    with sensitive_values([CANARY_NAME]):
        log.info("processing %s", CANARY_NAME)
    log.info("%s %s", "too few")  # unformattable: kept, not crashed
    output = captured.getvalue()
    assert "Traceback" in output and "[CNIC]" in output and "[PHONE]" in output
    assert_clean(output)


def test_canaries_never_reach_logs_or_exceptions(
    captured: io.StringIO, gate: DisclosureGate, tmp_path: Path
) -> None:
    errors: list[BaseException] = []

    def expect_error(call: Callable[[], object]) -> None:
        with pytest.raises(Exception) as info:
            call()
        errors.append(info.value)

    logging.getLogger("adapter.privacy").debug("pipeline starts")
    for concerns in (["neglect"], ["rape"], ["brand_new_code"]):
        case = canary_case(protection_concerns=concerns)
        for dept in gate.policy.departments:
            for purpose in gate.policy.purposes(dept):
                for stage in Stage:
                    gate.disclose(case, dept, purpose, stage, now=NOW)
                gate.explain(case, dept, purpose, now=NOW)
    # Refusals and error paths.
    gate.disclose(
        canary_case(consent_for_services=None), "police", "referral", Stage.IDENTIFIED, now=NOW
    )
    gate.disclose(canary_case(id=CANARY_NAME), "health", "referral", Stage.IDENTIFIED, now=NOW)
    gate.disclose(
        canary_case(module_id=CANARY_NAME), "health", "referral", Stage.IDENTIFIED, now=NOW
    )
    gate.disclose(
        canary_case(date_of_birth=CANARY_NARRATIVE, location_current=CANARY_CNIC),
        "health",
        "referral",
        Stage.IDENTIFIED,
        now=NOW,
    )
    bad_override = ConsentOverride(
        case_id="c",
        department="police",
        basis=OverrideBasis.MANDATORY_REPORT,
        legal_reference="",
        requested_by=CANARY_NAME,
        approved_by=CANARY_NAME,
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
        reason=CANARY_NARRATIVE,
    )
    expect_error(lambda: gate.record_override(bad_override, now=NOW))
    good_override = ConsentOverride(
        case_id="c",
        department="police",
        basis=OverrideBasis.MANDATORY_REPORT,
        legal_reference="s.x",
        requested_by="a",
        approved_by="b",
        created_at=NOW,
        expires_at=NOW + timedelta(hours=1),
        reason=CANARY_NARRATIVE,
    )
    gate.record_override(good_override, now=NOW)
    expect_error(lambda: normalise_cnic(CANARY_CNIC + "9"))
    expect_error(lambda: normalise_cnic(CANARY_NAME))
    expect_error(lambda: normalise_phone(CANARY_PHONE[:-1]))
    codes = CaseCodes(gate.store, gate.keyring)
    expect_error(lambda: codes.resolve(f"cp1.health.1.{CANARY_NAME}", "health"))
    expect_error(lambda: codes.resolve_short_code(CANARY_PHONE, "health"))
    expect_error(lambda: gate.keyring.case_code(CANARY_NAME, "health"))
    broken = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, broken)
    (broken / "health.toml").write_text(
        f'department = "health"\ntitle = "{CANARY_NAME}"\nservices = ["{CANARY_CNIC}"]\n'
        f'purposes = {{ referral = {{ description = 7 }} }}\nsecret = "{CANARY_NARRATIVE}"\n',
        encoding="utf-8",
    )
    expect_error(lambda: PolicySet.load(broken))
    logging.getLogger("adapter.privacy").debug("pipeline ends")

    output = captured.getvalue()
    assert "pipeline ends" in output
    assert_clean(output)
    assert len(errors) == 8
    for error in errors:
        assert_clean(f"{error!s} {error!r}")
    audit = AuditLog(gate.store, gate.keyring)
    assert audit.verify().ok
    assert_clean(repr([r.entry for r in audit.entries(limit=10_000)]))


def test_without_the_filter_the_adapter_logs_no_canary(
    caplog: pytest.LogCaptureFixture, gate: DisclosureGate
) -> None:
    # The filter is a safety net: the privacy code itself never logs a value.
    caplog.set_level(logging.DEBUG, logger="adapter")
    for dept in gate.policy.departments:
        for purpose in gate.policy.purposes(dept):
            gate.disclose(canary_case(), dept, purpose, Stage.IDENTIFIED, now=NOW)
    assert_clean("\n".join(r.getMessage() for r in caplog.records if r.name.startswith("adapter")))
