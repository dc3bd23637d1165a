"""Proving who recorded a decision from Primero's record history (adapter/privacy/decisions.py).

History entries have the shape of record_histories/index.json.jbuilder: newest first,
``record_changes`` a list of ``{field: {"from": ..., "to": ...}}`` where a subform's value is
its whole list of rows before and after the save (historical.rb ``saved_changes_to_record``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.privacy import DisclosurePolicy, Stage
from adapter.privacy.decisions import (
    BASIS,
    DECISIONS_FIELD,
    DEPARTMENT,
    LEGAL_REFERENCE,
    REASON,
    Approvers,
    PrimeroUser,
    for_referral,
    prove_decisions,
)

from .conftest import NOW

SUPERVISORS = Approvers(user_names=frozenset({"sup_a"}), roles=frozenset({"role-sup"}))
LEGAL = "Sindh CP Authority Act 2011 s.15"


def row(
    row_id: str,
    *,
    department: str = "police",
    basis: str = "mandatory_report",
    legal: str = LEGAL,
    reason: str = "Synthetic reason.",
) -> dict[str, Any]:
    return {
        "unique_id": row_id,
        DEPARTMENT: department,
        BASIS: basis,
        LEGAL_REFERENCE: legal,
        REASON: reason,
    }


def entry(user: str, minutes_ago: float, before: Any, after: Any, **other: Any) -> dict[str, Any]:
    when = NOW - timedelta(minutes=minutes_ago)
    return {
        "record_id": "c",
        "record_type": "cases",
        "datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "user_name": user,
        "action": "update",
        "record_changes": [{DECISIONS_FIELD: {"from": before, "to": after}}]
        + [{k: v} for k, v in other.items()],
    }


def prove(value: Any, history: list[dict[str, Any]], **kw: Any) -> list[Any]:
    kw.setdefault("department", "police")
    kw.setdefault("approvers", SUPERVISORS)
    kw.setdefault("now", NOW)
    return prove_decisions(value, history, **kw)


def test_the_author_is_whoever_last_changed_the_row() -> None:
    r = row("r1")
    history = [entry("sup_a", 5, None, [r])]
    (d,) = prove([r], history)
    assert d.valid and d.author == "sup_a"
    assert d.expires_at == d.recorded_at + timedelta(hours=72)
    assert d.override("case-1").approved_by == "sup_a"


def test_an_edit_by_someone_else_makes_them_the_author() -> None:
    original, edited = row("r1"), row("r1", legal="PPC s.376")
    history = [  # newest first
        entry("cp_worker1", 1, [original], [edited]),
        entry("sup_a", 5, None, [original]),
    ]
    (d,) = prove([edited], history)
    assert d.author == "cp_worker1" and "cp_worker1 is not an approver" in d.problem


def test_a_value_naming_a_supervisor_proves_nothing() -> None:
    forged = row("r1", reason="approved by sup_a")
    history = [entry("cp_worker1", 1, None, [forged], approved_by="sup_a", user_name="sup_a")]
    (d,) = prove([forged], history)
    assert not d.valid and d.author == "cp_worker1"


def test_history_that_disagrees_with_the_row_proves_nothing() -> None:
    history = [entry("sup_a", 5, None, [row("r1", legal="other")])]
    (d,) = prove([row("r1")], history)
    assert not d.valid and d.author is None and "does not match" in d.problem


def test_no_history_means_no_proof_and_names_change_log() -> None:
    (d,) = prove([row("r1")], [])
    assert not d.valid and "change_log" in d.problem


def test_other_rows_and_fields_do_not_count_as_changes_of_a_row() -> None:
    mine, other = row("r1"), row("r2", department="health", basis="s3_approval")
    history = [
        entry("cp_worker1", 1, [mine], [mine, other]),  # adds another row only
        entry("sup_a", 5, None, [mine]),
    ]
    (d,) = prove([mine, other], history)
    assert d.row_id == "r1" and d.author == "sup_a" and d.valid


def test_approvers_by_role_group_and_disabled_accounts() -> None:
    r = row("r1")
    directory = {
        "sup_b": PrimeroUser("sup_b", "role-sup", frozenset()),
        "gone": PrimeroUser("gone", "role-sup", frozenset(), disabled=True),
        "grp": PrimeroUser("grp", "role-cw", frozenset({"g-sup"})),
    }
    approvers = Approvers(roles=frozenset({"role-sup"}), user_groups=frozenset({"g-sup"}))
    for user, ok in (("sup_b", True), ("grp", True), ("gone", False), ("stranger", False)):
        (d,) = prove([r], [entry(user, 1, None, [r])], approvers=approvers, directory=directory.get)
        assert d.valid is ok, (user, d.problem)


def test_the_adapters_own_account_never_approves() -> None:
    r = row("r1")
    approvers = Approvers(user_names=frozenset({"cpims-adapter"}))
    (d,) = prove(
        [r],
        [entry("cpims-adapter", 1, None, [r])],
        approvers=approvers,
        service_user="cpims-adapter",
    )
    assert not d.valid and "adapter's own" in d.problem


def test_form_problems_expiry_and_future_dates() -> None:
    bare = row("r1", legal="", reason="")
    (d,) = prove([bare], [entry("sup_a", 1, None, [bare])])
    assert "legal reference" in d.problem and "reason" in d.problem
    s3 = row("r2", department="health", basis="s3_approval", legal="", reason="")
    (d,) = prove([s3], [entry("sup_a", 1, None, [s3])], department="health")
    assert d.valid  # an S3 approval needs no legal reference
    old = row("r3")
    (d,) = prove([old], [entry("sup_a", 60 * 73, None, [old])])
    assert "expired" in d.problem
    (d,) = prove([old], [entry("sup_a", 90, None, [old])], lifetime=timedelta(hours=1))
    assert "expired" in d.problem
    (d,) = prove([old], [entry("sup_a", -60, None, [old])])
    assert "future" in d.problem
    odd = row("r4", basis="because")
    (d,) = prove([odd], [entry("sup_a", 1, None, [odd])])
    assert "basis must be one of" in d.problem


def test_the_requester_of_a_referral_cannot_approve_it() -> None:
    r = row("r1")
    (d,) = prove([r], [entry("sup_a", 1, None, [r])])
    (mine,) = for_referral([d], "SUP_A")
    assert "made the referral and approved it themselves" in mine.problem
    (theirs,) = for_referral([d], "cp_worker1")
    assert theirs.valid


def test_the_history_is_read_only_as_far_as_needed() -> None:
    r = row("r1")
    read: list[int] = []

    def pages() -> Iterator[dict[str, Any]]:
        for n in range(1000):
            read.append(n)
            yield entry("sup_a", 1 + n, None, [r]) if n == 0 else entry("x", 10 + n, [], [])

    (d,) = prove([r], pages())
    assert d.valid and len(read) <= 2


# --- the property: no combination of decision fields written by a non-approver releases data ---

USERS = st.sampled_from(["cp_worker1", "cp_worker2", "health_gateway", "sup_a ", "SUP_A", "x"])
BASES = st.sampled_from(
    ["s3_approval", "mandatory_report", "risk_to_life", "court_order", "best_interests", "", "?"]
)
DEPARTMENTS = st.sampled_from(["police", "health", "courts", ""])
TEXTS = st.sampled_from(["", LEGAL, "approved by sup_a", "sup_a", " "])


@st.composite
def forged_rows(draw: st.DrawFn) -> dict[str, Any]:
    return row(
        draw(st.sampled_from(["r1", "r2", str(uuid.uuid4())])),
        department=draw(DEPARTMENTS),
        basis=draw(BASES),
        legal=draw(TEXTS),
        reason=draw(TEXTS),
    )


@st.composite
def non_approver_histories(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows as they stand and a history in which only non-approvers ever changed them (they
    may write a supervisor's name anywhere in the values or in other fields)."""
    rows = draw(st.lists(forged_rows(), min_size=1, max_size=4, unique_by=lambda r: r["unique_id"]))
    history = []
    before: list[dict[str, Any]] | None = None
    steps = draw(st.integers(min_value=1, max_value=4))
    for step in range(steps):
        after = rows if step == steps - 1 else draw(st.lists(forged_rows(), max_size=3))
        user = draw(USERS.filter(lambda u: u.strip().casefold() != "sup_a"))
        history.insert(0, entry(user, 10 - step, before, after, last_updated_by="sup_a"))
        before = after
    return rows, history


def synthetic_case(s3: bool) -> dict[str, Any]:
    """An S3 case with consent (only the second person's approval is missing), or an S2 case
    without consent (only an override of consent would release it)."""
    return {
        "id": str(uuid.uuid4()),
        "module_id": "primeromodule-cp",
        "name": "Synthetic Child",
        "sex": "female",
        "date_of_birth": "2015-01-15",
        "protection_concerns": ["sexual_abuse_violence" if s3 else "physical_abuse_violence"],
        "consent_for_services": s3,
        "disclosure_other_orgs": s3,
    }


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=non_approver_histories(), s3=st.booleans())
def test_no_decision_written_by_a_non_approver_ever_releases_data(
    policy: DisclosurePolicy, data: tuple[list[dict[str, Any]], list[dict[str, Any]]], s3: bool
) -> None:
    rows, history = data
    case = {**synthetic_case(s3), DECISIONS_FIELD: rows}
    department = "health" if s3 else "police"
    decisions = prove(
        rows,
        history,
        department=department,
        directory=lambda name: PrimeroUser(name, "role-cw", frozenset()),
    )
    assert not any(d.valid for d in decisions)
    overrides = [d.override(case["id"]) for d in decisions if d.valid]
    verdict = policy.decide(
        case,
        department,
        "referral",
        Stage.IDENTIFIED,
        codes=_Codes(),
        overrides=overrides,
        referral={"transitioned_by": "cp_worker1"},
        now=NOW,
    )
    assert not verdict.allowed and verdict.awaiting


class _Codes:
    def case_code(self, case_id: str, department: str) -> str:
        return f"cp1.{department}.1.TEST"


def test_the_same_case_is_released_by_a_proven_approver(policy: DisclosurePolicy) -> None:
    """The control for the property above: the cases it generates do leave once an approver
    who did not make the referral recorded the decision."""
    for s3, basis in ((True, "s3_approval"), (False, "mandatory_report")):
        department = "health" if s3 else "police"
        r = row("r1", department=department, basis=basis)
        case = synthetic_case(s3)
        (d,) = prove([r], [entry("sup_a", 1, None, [r])], department=department)
        verdict = policy.decide(
            case,
            department,
            "referral",
            Stage.IDENTIFIED,
            codes=_Codes(),
            overrides=[d.override(case["id"])],
            referral={"transitioned_by": "cp_worker1"},
            now=NOW,
        )
        assert verdict.allowed, verdict.reason
        assert verdict.audit_entry()["approved_by"] == ["sup_a"]
        refused = policy.decide(
            case,
            department,
            "referral",
            Stage.IDENTIFIED,
            codes=_Codes(),
            overrides=[d.override(case["id"])],
            referral={"transitioned_by": "sup_a"},
            now=NOW,
        )
        assert not refused.allowed and "approved it themselves" in refused.reason
