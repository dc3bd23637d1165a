"""A department presenting another department's case code to the inbound API is refused (403)
and, at the next scan, an incident (privacy.md §7 item 7; §6.7)."""

from __future__ import annotations

from adapter.incidents import list_incidents, render_notice, run_incident_checks
from adapter.state.links import Links
from tests.api.conftest import World, fir_body, message_id, sim, world
from tests.incidents.conftest import DPO, POLICE_IT, incident_settings
from tests.support.smtp_sink import SmtpSink

__all__ = ["sim", "world"]  # fixtures of the inbound API's tests, reused here


def test_a_code_from_the_wrong_department_opens_an_incident(world: World, sink: SmtpSink) -> None:
    case_id = world.new_case(name="Synthetic Child", sex="female", age=9)
    health_code = world.code(case_id, "health")
    for _ in range(3):
        assert world.post("/v1/fir-links", fir_body(health_code), "police").status_code == 403

    settings = incident_settings(world.store, sink.port)
    report = run_incident_checks(settings, world.store)
    (incident,) = list_incidents(world.store)
    assert report.scan.opened == [incident.id]
    assert (incident.kind, incident.department, incident.event_count) == (
        "wrong_department_code",
        "police",
        3,
    )
    notice = render_notice(world.store, incident, settings)
    # Which departments: police presented a code issued to health.
    assert "Affected departments: health, police" in notice
    assert case_id not in notice and health_code not in notice
    assert len(sink.messages) == 2  # the DPO and the police contact


def test_the_department_whose_case_code_leaked_is_named_and_told(
    world: World, sink: SmtpSink
) -> None:
    """Runbook §5: the department whose code another one presented must be told."""
    case_id = world.new_case(name="Synthetic Child", sex="male", age=11)
    police_code = world.code(case_id, "police")
    assert world.post("/v1/fir-links", fir_body(police_code), "courts").status_code == 403

    settings = incident_settings(world.store, sink.port)
    run_incident_checks(settings, world.store)
    (incident,) = list_incidents(world.store)
    assert (incident.kind, incident.department) == ("wrong_department_code", "courts")
    notice = render_notice(world.store, incident, settings)
    assert "Affected departments: courts, police" in notice
    assert "Notify the affected departments: courts, police" in notice
    assert "Tell police that its case codes or referral keys were presented by courts" in notice
    assert case_id not in notice and police_code not in notice
    assert sorted(to for m in sink.messages for to in m.rcpt_tos) == sorted([DPO, POLICE_IT])


def test_the_department_whose_referral_key_leaked_is_named_and_told(
    world: World, sink: SmtpSink
) -> None:
    case_id = world.new_case(name="Synthetic Child", sex="female", age=7)
    Links(world.store).update(
        "police:ref-7",
        job="police",
        department="police",
        case_id=case_id,
        case_code=world.code(case_id, "police"),
        stage="identified",
    )
    body = {"message_id": message_id(), "action": "accept"}
    assert world.post("/v1/referrals/ref-7/response", body, "courts").status_code == 404

    settings = incident_settings(world.store, sink.port)
    run_incident_checks(settings, world.store)
    (incident,) = list_incidents(world.store)
    assert (incident.kind, incident.department) == ("wrong_department_code", "courts")
    notice = render_notice(world.store, incident, settings)
    assert "Affected departments: courts, police" in notice
    assert "Tell police that its case codes or referral keys were presented by courts" in notice
    assert "ref-7" not in notice and case_id not in notice
    assert sorted(to for m in sink.messages for to in m.rcpt_tos) == sorted([DPO, POLICE_IT])
