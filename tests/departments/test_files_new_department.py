"""A department over CSV/SFTP with its own record type is files and configuration, no code.

Labour is written here from scratch, in a temporary directory: its privacy policy (a copy of
config/policy/ plus labour.toml), its mapping file (the inspection request out; the labour
inspection, a record type it declares with its statuses and facts, back in a CSV file) and its
[departments] and [jobs] settings. Against a real sshd on 127.0.0.1, the unchanged engine uploads
one inspection request and imports the inspector's CSV; the inspection appears in the Primero
case's "Linked department records" as a labour_inspection row, which install-forms offered
because the configuration declares it.
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
from adapter.departments.csv_import import read_csv, write_csv
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import KeyRing
from adapter.simulator.departments.scenario import file_settings, refer_children
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import POLICY_DIR, install_linked_records_form
from adapter.state import StateStore
from tests.support.sftp_server import SftpServer

LABOUR_POLICY = """
department = "labour"
title = "Labour: inspections of workplaces where a child works"
services = ["livelihoods_service"]
never_kinds = ["concern", "incident", "perpetrator", "narrative", "free_text", "clinical"]

[purposes.inspection]
description = "An inspection to remove a child from hazardous work"

[[purposes.inspection.allow]]
field = "name"
bases = ["consent"]
why = "The inspector must recognise the child at the workplace, with consent."

[[purposes.inspection.allow]]
field = "date_of_birth"
transform = "age_band"
why = "Whether the work is lawful depends on the age band, not the date."

[[purposes.inspection.allow]]
field = "services_section.service_type"
why = "Inspection only."
"""

LABOUR_MAPPING = """
department = "labour"
title = "Labour: inspection requests to the district labour office (CSV over SFTP)"

[record]
referral_key = "$referral_key"
case_code = "$case_code"
service = "$service_type"
child = { name = "$payload.name", age_band = "$payload.date_of_birth" }

[documents.referral]
path = "/inspection-requests"
body = { referral_key = "$referral_key", inspection = "$record" }

[documents.cancel]
path = "/inspection-requests/{referral_key}/cancel"
body = { referral_key = "$referral_key", reason = "$reason" }

[documents.withdraw]
path = "/inspection-requests/{referral_key}/erase"
body = { referral_key = "$referral_key" }

# The inspector's export: one row per inspection.
[files.inbound]
record_type = "labour_inspection"
columns = { "Reference" = "referral_key", "Inspection No." = "external_ref", \
"Outcome" = "status", "Establishment" = "establishment", "Inspected On" = "inspected_on", \
"Remarks" = "note" }

[record_types.labour_inspection]
label = "Labour inspection"
statuses = { scheduled = "accepted", child_removed = "completed", \
no_child_found = "completed", entry_refused = "rejected" }
details = ["establishment", "inspected_on"]
"""

SERVICE, AGENCY = "livelihoods_service", "agency-cpu-sindh"


@pytest.fixture
def world(state_url: str, sftp: SftpServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    policy_dir = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, policy_dir)
    (policy_dir / "labour.toml").write_text(LABOUR_POLICY, encoding="utf-8")
    mapping_file = tmp_path / "labour.toml"
    mapping_file.write_text(LABOUR_MAPPING, encoding="utf-8")
    kek = secrets.token_bytes(32)
    with PrimeroSimulator(cases=0) as sim:
        with StateStore(state_url) as store:
            KeyRing.init(store, kek, ["labour"])  # `cpims-adapter keys init`
        settings = file_settings(
            primero_url=sim.url,
            state_url=state_url,
            kek=kek,
            department="labour",
            sftp=sftp.settings(),
            agencies=[AGENCY],
            services=[SERVICE],
            purpose="inspection",
            mapping_file=mapping_file,
            policy_dir=policy_dir,
        )
        # `cpims-adapter primero install-forms` with this configuration.
        install_linked_records_form(sim.url, record_types=configured_record_types(settings))
        (child,) = refer_children(sim.url, 1, agency=AGENCY, service=SERVICE)
        yield {"sim": sim, "settings": settings, "child": child}


def sync(settings: Any) -> Any:
    with open_job(settings, "labour") as job:
        return job.run()


def test_a_labour_department_over_sftp_needs_only_files_and_config(
    world: dict[str, Any], sftp: SftpServer
) -> None:
    sim, settings = world["sim"], world["settings"]
    case_id, referral_id = world["child"]
    key = f"ref-{referral_id}"

    # 1. One inspection request goes out as a CSV file, with the policy's age band.
    first = sync(settings)
    assert first.delivered == {"referral": 1}
    (csv_name,) = [n for n in sftp.names("to_department") if n.endswith(".csv")]
    (row,) = read_csv((sftp.root / "to_department" / csv_name).read_bytes())
    assert row["referral_key"] == key
    assert row["inspection.child.name"] == "Synthetic Child 0"
    assert row["inspection.case_code"].startswith("cp1.labour.")
    assert "date_of_birth" not in str(row)

    # 2. The inspector's export: row 2 is good, row 3 has an outcome labour never declared.
    export = write_csv(
        [
            {
                "Reference": key,
                "Inspection No.": "LI-2026-041",
                "Outcome": "child_removed",
                "Establishment": "brick kiln",
                "Inspected On": "12/03/2026",
                "Remarks": "Child referred back to the CPU.",
            },
            {
                "Reference": key,
                "Inspection No.": "LI-2026-042",
                "Outcome": "fined",
                "Establishment": "workshop",
                "Inspected On": "13/03/2026",
                "Remarks": "",
            },
        ]
    )
    sftp.drop_inbound("inspections-march.csv", export)
    back = sync(settings)
    assert back.status_updates == 1 and back.write_backs == 1

    # 3. The inspection is inside the Primero case, as labour's own record type.
    with PrimeroClient(
        sim.url, auth="basic", username="cpims-adapter", password="sim-password"
    ) as client:
        (linked,) = client.get_case(case_id)[SUBFORM_FIELD]
    assert linked["link_department"] == "labour"
    assert linked["link_record_type"] == "labour_inspection"
    assert linked["link_status"] == "completed"
    assert linked["link_external_reference"] == "LI-2026-041"
    assert "establishment: brick kiln" in linked["link_status_note"]
    assert "Child referred back to the CPU." in linked["link_status_note"]

    # The bad row is reported by number and field, never by value.
    (reject_name,) = sftp.names("rejects")
    rejects = read_csv((sftp.root / "rejects" / reject_name).read_bytes())
    assert [(r["row"], r["field"]) for r in rejects] == [("3", "status")]
    assert "fined" not in (sftp.root / "rejects" / reject_name).read_text("utf-8-sig")
    assert sync(settings).status_updates == 0
