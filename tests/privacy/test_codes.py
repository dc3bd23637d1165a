"""Case codes: per department, authenticated, reversible only inside the adapter, rotated with a
crosswalk and a grace window; short printed codes from a vault (privacy.md §6.1, §7 items 7-10)."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta

import pytest

from adapter.privacy import (
    CaseCodes,
    CodeRefused,
    DisclosureGate,
    KeyRing,
    SecurityEventKind,
    Stage,
    list_security_events,
    new_short_code,
    normalise_short_code,
)
from adapter.state import StateStore

from .conftest import NOW, make_case


def test_code_shape_determinism_and_reversal(ring: KeyRing) -> None:
    case_id = str(uuid.uuid4())
    code = ring.case_code(case_id, "health")
    assert code.startswith("cp1.health.1.") and len(code.rsplit(".", 1)[1]) == 52
    assert ring.case_code(case_id, "health") == code
    assert ring.open_case_code(code, "health", now=NOW) == case_id
    assert ring.case_code(case_id, "police") != code


def test_wrong_department_is_refused_and_raises_a_security_event(
    store: StateStore, ring: KeyRing
) -> None:
    codes = CaseCodes(store, ring)
    police_code = ring.case_code(str(uuid.uuid4()), "police")
    with pytest.raises(CodeRefused) as info:
        codes.resolve(police_code, "health", now=NOW)
    assert info.value.kind == SecurityEventKind.WRONG_DEPARTMENT
    # Relabelling the police code as a health code fails authentication under health's key.
    forged = police_code.replace("cp1.police.", "cp1.health.")
    with pytest.raises(CodeRefused) as info:
        codes.resolve(forged, "health", now=NOW)
    assert info.value.kind == SecurityEventKind.FORGED_CODE
    with pytest.raises(CodeRefused):
        codes.resolve("cp1.health.1.not-a-code", "health", now=NOW)
    events = list_security_events(store)
    assert [e.kind for e in events] == ["wrong_department_code", "forged_code", "malformed_code"]
    assert all(e.department == "health" for e in events)
    # The event names departments, never the presented code or the case.
    body = police_code.rsplit(".", 1)[1]
    assert all(body not in e.detail for e in events)


def test_flipped_bit_and_non_canonical_spelling_are_refused(ring: KeyRing) -> None:
    code = ring.case_code(str(uuid.uuid4()), "courts")
    head, body = code.rsplit(".", 1)
    flipped = body[:-1] + ("a" if body[-1] != "a" else "q")
    with pytest.raises(CodeRefused):
        ring.open_case_code(f"{head}.{flipped}", "courts", now=NOW)
    with pytest.raises(CodeRefused):
        ring.open_case_code(code.upper(), "courts", now=NOW)


def test_unknown_key_version_has_no_fallback(ring: KeyRing) -> None:
    code = ring.case_code(str(uuid.uuid4()), "health").replace("cp1.health.1.", "cp1.health.9.")
    with pytest.raises(CodeRefused) as info:
        ring.open_case_code(code, "health", now=NOW)
    assert info.value.kind == SecurityEventKind.UNKNOWN_KEY


def test_a_leaked_police_key_opens_no_health_code(store: StateStore, ring: KeyRing) -> None:
    # privacy.md §7 item 9: the police key decrypts police codes only.
    from cryptography.hazmat.primitives.ciphers.aead import AESSIV

    from adapter.privacy import _codec
    from adapter.privacy.keys import KeyRole

    leaked = ring._key(KeyRole.TOKEN, "police", None).material
    assert leaked is not None
    case_id = str(uuid.uuid4())
    health = _codec.parse(ring.case_code(case_id, "health"))
    assert health is not None
    assert _codec.unseal(AESSIV(leaked), health) is None
    police = _codec.parse(ring.case_code(case_id, "police"))
    assert police is not None and _codec.unseal(AESSIV(leaked), police) == case_id


def test_rotation_reissues_every_code_with_a_crosswalk_then_retires_the_old_key(
    store: StateStore, kek: bytes, ring: KeyRing, gate: DisclosureGate
) -> None:
    cases = [make_case() for _ in range(5)]
    old_codes = {
        c["id"]: gate.disclose(c, "police", "referral", Stage.IDENTIFIED, now=NOW).case_code
        for c in cases
    }
    progress: list[tuple[int, int | None]] = []
    rotation = ring.rotate(
        "police",
        grace=timedelta(days=30),
        now=NOW,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert (rotation.old_version, rotation.new_version) == (1, 2)
    assert progress[-1] == (5, 5)  # what `keys rotate`'s progress bar shows at the end
    assert dict(rotation.crosswalk).keys() == set(old_codes.values())
    for case_id, old in old_codes.items():
        new = dict(rotation.crosswalk)[old]
        assert new == ring.case_code(case_id, "police") and new.startswith("cp1.police.2.")
        assert ring.open_case_code(new, "police", now=NOW) == case_id
        # Inside the grace window the old code still resolves ...
        assert ring.open_case_code(old, "police", now=NOW + timedelta(days=29)) == case_id
    assert CaseCodes(store, ring).crosswalk("police") == list(rotation.crosswalk)
    # ... after it, it is refused and raises a security event.
    codes = CaseCodes(store, ring)
    with pytest.raises(CodeRefused) as info:
        codes.resolve(next(iter(old_codes.values())), "police", now=NOW + timedelta(days=31))
    assert info.value.kind == SecurityEventKind.RETIRED_KEY
    assert [e.kind for e in list_security_events(store)] == ["retired_key_version"]
    # Other departments are untouched.
    assert ring.case_code(cases[0]["id"], "health").startswith("cp1.health.1.")
    destroyed = ring.destroy_expired(now=NOW + timedelta(days=31))
    assert [(s.scope, s.version, s.state) for s in destroyed] == [("police", 1, "destroyed")]
    reopened = (
        KeyRing.open(store, ring._kek_bytes_for_tests)
        if hasattr(ring, "_kek_bytes_for_tests")
        else ring
    )
    statuses = {(s.scope, s.version): s for s in reopened.status(now=NOW + timedelta(days=31))}
    assert (
        statuses[("police", 1)].state == "destroyed" and statuses[("police", 2)].state == "active"
    )
    assert statuses[("police", 2)].age_days == 31
    # A second rotation re-issues the version-2 codes, including those from the crosswalk.
    second = ring.rotate("police", now=NOW + timedelta(days=40))
    assert len(second.crosswalk) == 5


def test_rotation_survives_a_reopened_ring(store: StateStore, kek: bytes, ring: KeyRing) -> None:
    ring.rotate("health", now=NOW)
    reopened = KeyRing.open(store, kek)
    case_id = str(uuid.uuid4())
    assert reopened.case_code(case_id, "health") == ring.case_code(case_id, "health")
    assert reopened.case_code(case_id, "health").startswith("cp1.health.2.")


def test_short_codes(store: StateStore, ring: KeyRing) -> None:
    codes = CaseCodes(store, ring)
    case_id = str(uuid.uuid4())
    short = codes.short_code(case_id, "health", now=NOW)
    assert short.startswith("CP-") and len(short) == 11
    assert codes.short_code(case_id, "health") == short  # one per case and department
    assert codes.short_code(case_id, "police") != short
    # Typed loosely on a printed form: lower case, spaces, O for 0, I/L for 1.
    typed = short.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert codes.resolve_short_code(typed, "health") == case_id
    with pytest.raises(CodeRefused) as info:
        codes.resolve_short_code(short, "police")
    assert info.value.kind == SecurityEventKind.WRONG_DEPARTMENT
    assert [e.kind for e in list_security_events(store)] == ["wrong_department_code"]


def test_short_code_check_symbol_catches_typos() -> None:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    for _ in range(200):
        code = new_short_code()
        assert normalise_short_code(code) == code
        body = code[3:]
        for i in range(len(body)):
            for ch in alphabet:
                if ch != body[i]:
                    typo = "CP-" + body[:i] + ch + body[i + 1 :]
                    assert normalise_short_code(typo) is None
        for i in range(len(body) - 1):
            pair = {body[i], body[i + 1]}
            # Luhn mod N misses exactly one swap, 0 ↔ Z (like 09 ↔ 90 in decimal Luhn).
            if len(pair) == 2 and pair != {"0", "Z"}:
                swapped = body[:i] + body[i + 1] + body[i] + body[i + 2 :]
                assert normalise_short_code("CP-" + swapped) is None


def test_short_codes_carry_no_case_information() -> None:
    # Random, not derived: the same case never yields a predictable code.
    assert len({new_short_code() for _ in range(1000)}) == 1000
    assert all(base64.b32encode(b"x") not in c.encode() for c in [new_short_code()])


def test_one_printed_form_per_code(ring: KeyRing) -> None:
    # "b" after "a" (or "r" after "q") decodes to the same bytes: a second spelling, refused.
    code = ring.case_code(str(uuid.uuid4()), "health")
    assert code[-1] in "aq"
    other_spelling = code[:-1] + chr(ord(code[-1]) + 1)
    with pytest.raises(CodeRefused) as info:
        ring.open_case_code(other_spelling, "health", now=NOW)
    assert info.value.kind == SecurityEventKind.MALFORMED_CODE
