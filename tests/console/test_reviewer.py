"""The reviewer's pages: the queue with deadlines and no identity; a check's sealed identity
opened only for the reviewer who took it (audited); decide with a reason; appeals; subject
access."""

from __future__ import annotations

from adapter.console.app import Role
from adapter.privacy.audit import AuditLog
from adapter.registry import CheckRequest
from tests.console.conftest import PASSWORD, World, csrf_of, sign_in
from tests.console.test_establishment import convict

NEAR = {
    "cnic": "42101-7654321-3",  # another CNIC, the registered person's name and birth date
    "full_name": "Muhammad Ali",
    "father_name": "Muhammad Aslam",
    "date_of_birth": "1990-05-01",
    "consent_ref": "CF-2026-000077",
    "position": "Driver",
    "purpose": "education",
}


def queued_check(world: World) -> str:
    convict(world.registry)
    school = world.registry.establishment("SCH-001")
    answer = world.registry.check(CheckRequest(**NEAR), school)  # type: ignore[arg-type]
    assert str(answer.status) == "PENDING_REVIEW"
    return answer.check_ref


def events(world: World) -> list[dict[str, object]]:
    return [r.entry for r in AuditLog(world.console.store, world.console.keyring).entries()]


def test_only_the_reviewer_who_took_a_check_opens_and_decides_it(world: World) -> None:
    ref = queued_check(world)
    world.console.accounts.add(
        "reviewer2",
        display_name="Reviewer Two",
        role=Role.reviewer,
        password=PASSWORD,
        created_by="test",
    )
    world.totp["reviewer2"] = world.console.accounts.totp_secret(
        world.console.accounts.by_username("reviewer2")  # type: ignore[arg-type]
    )
    one = sign_in(world, world.client(), "reviewer1")
    queue = one.get("/console/reviewer").text
    assert ref in queue and "42101" not in queue and "Muhammad" not in queue  # no identity
    # Not taken yet: nobody may open it.
    assert one.get(f"/console/reviewer/checks/{ref}").status_code == 403
    taken = one.post(f"/console/reviewer/checks/{ref}/take", data={"csrf_token": csrf_of(queue)})
    assert taken.headers["location"] == f"/console/reviewer/checks/{ref}"
    opened = one.get(f"/console/reviewer/checks/{ref}").text
    assert "42101-7654321-3" in opened or "4210176543213" in opened
    assert "ppc_377a" in opened

    two = sign_in(world, world.client("192.0.2.40"), "reviewer2")
    csrf = csrf_of(two.get("/console/reviewer").text)
    assert two.get(f"/console/reviewer/checks/{ref}").status_code == 403
    assert (
        two.post(f"/console/reviewer/checks/{ref}/take", data={"csrf_token": csrf}).status_code
        == 409
    )
    steal = two.post(
        f"/console/reviewer/checks/{ref}/decide",
        data={"csrf_token": csrf, "decision": "clear", "note": "not the same person at all"},
    )
    assert steal.status_code == 403

    csrf = csrf_of(opened)
    short = one.post(
        f"/console/reviewer/checks/{ref}/decide",
        data={"csrf_token": csrf, "decision": "clear", "note": "no"},
    )
    assert short.status_code == 400
    decided = one.post(
        f"/console/reviewer/checks/{ref}/decide",
        data={"csrf_token": csrf, "decision": "clear", "note": "different father, CNIC checked"},
    )
    assert decided.headers["location"] == "/console/reviewer?done=decided"
    school = world.registry.establishment("SCH-001")
    assert str(world.registry.check_status(ref, school).status) == "CLEAR"
    names = [e["event"] for e in events(world)]
    assert "registry_review_opened" in names and "console_review_opened" in names
    assert "console_review_refused" in names


def test_appeals_are_recorded_and_decided(world: World) -> None:
    ref = queued_check(world)
    reviewer = sign_in(world, world.client(), "reviewer1")
    csrf = csrf_of(reviewer.get("/console/reviewer").text)
    recorded = reviewer.post(
        "/console/reviewer/appeals",
        data={"csrf_token": csrf, "about": ref, "grounds": "I am not the person on the register"},
    )
    assert recorded.headers["location"] == "/console/reviewer?done=appeal"
    page = reviewer.get("/console/reviewer").text
    appeal_ref = world.registry.appeals()[0].appeal_ref
    assert appeal_ref in page and "I am not the person" not in page  # grounds stay sealed
    decided = reviewer.post(
        f"/console/reviewer/appeals/{appeal_ref}/decide",
        data={"csrf_token": csrf, "decision": "grant", "note": "identity documents differ"},
    )
    assert decided.headers["location"] == "/console/reviewer?done=appeal_decided"
    assert world.registry.appeals() == []
    unknown = reviewer.post(
        "/console/reviewer/appeals",
        data={"csrf_token": csrf, "about": "RC-NOPE", "grounds": "some grounds given here"},
    )
    assert "No check, entry or appeal has that reference" in unknown.text


def test_subject_access_lists_who_checked_the_person(world: World) -> None:
    queued_check(world)
    reviewer = sign_in(world, world.client(), "reviewer1")
    csrf = csrf_of(reviewer.get("/console/reviewer").text)
    found = reviewer.post(
        "/console/reviewer/subject-access", data={"csrf_token": csrf, "cnic": NEAR["cnic"]}
    ).text
    assert "School SCH-001" in found and NEAR["cnic"] not in found  # the CNIC is not echoed
    bad = reviewer.post(
        "/console/reviewer/subject-access", data={"csrf_token": csrf, "cnic": "<b>12</b>"}
    ).text
    assert "not a valid CNIC" in bad and "<b>12</b>" not in bad
    assert any(e["event"] == "registry_subject_access" for e in events(world))


def test_other_roles_cannot_review(world: World) -> None:
    officer = sign_in(world, world.client(), "officer1")
    assert officer.get("/console/reviewer").status_code == 403
    dpo = sign_in(world, world.client("192.0.2.41"), "dpo1")
    assert dpo.get("/console/reviewer").status_code == 403


def test_reflected_input_is_escaped_in_the_reviewer_forms(world: World) -> None:
    xss = '"><script>alert(1)</script>'
    ref = queued_check(world)
    reviewer = sign_in(world, world.client(), "reviewer1")
    csrf = csrf_of(reviewer.get("/console/reviewer").text)
    reviewer.post(f"/console/reviewer/checks/{ref}/take", data={"csrf_token": csrf})
    pages = [
        reviewer.post(
            f"/console/reviewer/checks/{ref}/decide",
            data={"csrf_token": csrf, "decision": xss, "note": xss},
        ).text,
        reviewer.post(
            "/console/reviewer/appeals", data={"csrf_token": csrf, "about": xss, "grounds": xss}
        ).text,
        reviewer.post(
            f"/console/reviewer/appeals/{xss}/decide",
            data={"csrf_token": csrf, "decision": "grant", "note": xss},
        ).text,
        reviewer.post(
            "/console/reviewer/subject-access", data={"csrf_token": csrf, "cnic": xss}
        ).text,
    ]
    for page in pages:
        assert "<script>alert(1)" not in page
    assert "&lt;script&gt;" in pages[0]  # the note came back into its box, escaped
