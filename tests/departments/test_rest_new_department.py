"""A fifth department is a mapping file plus configuration, no code (issue item 1).

Education is written here from scratch, in a temporary directory: its privacy policy (a copy of
config/policy/ plus education.toml: what may leave, and why), its mapping file, and its
[departments] and [jobs] settings. The unchanged engine then runs the whole two-stage flow
against a generic REST department: an anonymous capacity probe, the school's acceptance, the
identified enrolment request, and the enrolment written back into Primero as education's own
record type (school_enrolment, declared in its mapping file with its statuses), which
install-forms added to the "Linked department records" form from the configuration.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.app.jobs import open_job
from adapter.cli._forms import configured_record_types
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import KeyRing
from adapter.simulator.departments import DepartmentSimulator, Desk
from adapter.simulator.departments.scenario import refer_children, rest_settings
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import POLICY_DIR, install_linked_records_form, referral_status
from adapter.state import StateStore

EDUCATION_POLICY = """
department = "education"
title = "Education: school enrolment"
services = ["education_service"]
never_kinds = ["concern", "incident", "perpetrator", "narrative", "free_text", "clinical"]

[purposes.enrolment]
description = "Enrolling an out-of-school child"

[[purposes.enrolment.allow]]
field = "name"
bases = ["consent"]
why = "The school enrols the child by name, with consent (privacy.md §6.4)."

[[purposes.enrolment.allow]]
field = "date_of_birth"
transform = "age_band"
why = "The class depends on the age band, not the date (privacy.md §6.4)."

[[purposes.enrolment.allow]]
field = "services_section.service_type"
why = "Enrolment only."
"""

EDUCATION_MAPPING = """
department = "education"
title = "Education: enrolment requests to the district education office"

[record]
referral_key = "$referral_key"
case_code = "$case_code"
service = "$service_type"
child = { name = "$payload.name", age_band = "$payload.date_of_birth" }

[documents.probe]
path = "/probes"
body = { referral_key = "$referral_key", service = "$service_type", urgency = "$urgency" }

[documents.referral]
path = "/enrolments"
reference = "{id}"
body = { referral_key = "$referral_key", enrolment = "$record" }

[documents.update]
method = "PUT"
path = "/enrolments/{referral_key}"
body = { referral_key = "$referral_key", enrolment = "$record" }

[documents.cancel]
path = "/enrolments/{referral_key}/cancel"
body = { referral_key = "$referral_key", reason = "$reason" }

[documents.withdraw]
path = "/enrolments/{referral_key}/erase"
body = { referral_key = "$referral_key" }

[status]
path = "/changes"
since_param = "since"
record_type = "school_enrolment"
external_reference = "{id}"
note = "{note}"
details = { school = "{school}" }

# Education's own record type: a row of the case's "Linked department records".
[record_types.school_enrolment]
label = "School enrolment"
statuses = { accepted = "accepted", enrolled = "completed", declined = "rejected" }
# Facts a school_enrolment sent over the inbound API may carry (tests/api/test_declared_records.py).
details = ["school", "class"]
"""

N = 3


@pytest.fixture
def world(tmp_path: Path, state_url: str) -> Iterator[dict[str, Any]]:
    policy_dir = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, policy_dir)
    (policy_dir / "education.toml").write_text(EDUCATION_POLICY, encoding="utf-8")
    mapping_file = tmp_path / "education.toml"
    mapping_file.write_text(EDUCATION_MAPPING, encoding="utf-8")
    kek = secrets.token_bytes(32)
    with (
        PrimeroSimulator(cases=0) as sim,
        DepartmentSimulator("generic", auth="api_key") as school,
        Desk(school.url) as desk,
    ):
        with StateStore(state_url) as store:
            KeyRing.init(store, kek, ["education"])  # `cpims-adapter keys init`
        settings = rest_settings(
            primero_url=sim.url,
            state_url=state_url,
            kek=kek,
            department="education",
            base_url=school.url,
            agencies=["agency-cpu-sindh"],
            services=["education_service"],
            purpose="enrolment",
            mapping_file=mapping_file,
            policy_dir=policy_dir,
            two_stage=True,
        )
        # `cpims-adapter primero install-forms`: the record-type select offers what the
        # configured mapping files declare.
        install_linked_records_form(sim.url, record_types=configured_record_types(settings))
        referred = refer_children(
            sim.url, N, agency="agency-cpu-sindh", service="education_service"
        )
        yield {"sim": sim, "desk": desk, "settings": settings, "referred": referred}


def run(settings: Any) -> Any:
    with open_job(settings, "education") as job:
        return job.run()


def test_a_fifth_department_needs_only_a_mapping_file_and_config(world: dict[str, Any]) -> None:
    sim, desk, settings = world["sim"], world["desk"], world["settings"]
    case_id, referral_id = world["referred"][0]
    key = f"ref-{referral_id}"

    # 1. Anonymous capacity probes: no name, no case code.
    first = run(settings)
    assert first.delivered == {"probe": N}
    probes = desk.records()
    assert {r["collection"] for r in probes} == {"probes"}
    assert probes[0]["body"] == {
        "referral_key": probes[0]["referral_key"],
        "service": "education_service",
        "urgency": "emergency",
    }

    # 2. The school accepts one; only that child's enrolment request is identified.
    desk.set_status(key, "accepted")
    second = run(settings)
    assert second.delivered == {"referral": 1}
    record = desk.record(key)
    assert record["collection"] == "enrolments" and record["versions"] == 2
    enrolment = record["body"]["enrolment"]
    assert enrolment["child"] == {"name": "Synthetic Child 0", "age_band": "15-17"}
    assert enrolment["case_code"].startswith("cp1.education.")
    assert "date_of_birth" not in str(record["body"])  # the policy's age band, not the date

    # 3. The child is enrolled: Primero shows it.
    desk.set_status(key, "enrolled", note="Enrolled in class 9.", school="GBSS Lyari")
    run(settings)
    assert referral_status(sim.url, case_id, referral_id) == "done"
    with PrimeroClient(
        sim.url, auth="basic", username="cpims-adapter", password="sim-password"
    ) as client:
        (row,) = client.get_case(case_id)[SUBFORM_FIELD]
    assert row["link_department"] == "education" and row["link_status"] == "completed"
    assert row["link_record_type"] == "school_enrolment"
    assert row["link_external_reference"] == record["record_id"]
    assert "school: GBSS Lyari" in row["link_status_note"]

    # Nothing more to send.
    again = run(settings)
    assert not again.enqueued and not again.delivered
