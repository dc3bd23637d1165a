"""A department presenting another department's case code to the inbound API is refused (403)
and, at the next scan, an incident (privacy.md §7 item 7; §6.7)."""

from __future__ import annotations

from adapter.incidents import list_incidents, render_notice, run_incident_checks
from tests.api.conftest import World, fir_body, sim, world
from tests.incidents.conftest import incident_settings
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
