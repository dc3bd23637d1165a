"""End to end: a file department (CSV over SFTP) through the sync engine, against a real OpenSSH
sshd on 127.0.0.1 (``tests/support/sftp_server.py``; departments.md §6–§7).

A CPO refers a child to the juvenile court under a court order a supervisor recorded → ``sync``
uploads exactly one CSV case summary (with its ``.sha256`` sidecar, no ``.part`` left) to the
court's outbound directory; a re-run uploads nothing new → the court clerk drops a court-order
CSV (with its sidecar) into the inbound directory, one row of it bad → the next ``sync`` writes
the good row into the Primero case's "Linked department records" as a ``court_order`` and a
reject file names the bad row and why (never its values).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.app.jobs import open_job
from adapter.config import Settings
from adapter.departments.csv_import import read_csv, verify_sidecar, write_csv
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import KeyRing, OverrideBasis
from adapter.simulator.departments.scenario import (
    COURT_AGENCY,
    COURT_SERVICE,
    MAPPINGS_DIR,
    file_settings,
    record_override,
    refer_children,
)
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import install_linked_records_form
from adapter.state import StateStore
from tests.support.sftp_server import SftpServer

DEPARTMENTS = ["health", "police", "birth_registration", "courts"]
# How the court's clerk names the columns of the orders export.
FILES_SECTION = """
[files]
inbound = { record_type = "court_order", columns = { "Reference" = "referral_key", \
"Court" = "court", "Case No." = "case_number", "Order No." = "order_number", \
"Order Type" = "order_type", "Order Date" = "order_date", "Status" = "status" } }
"""


@pytest.fixture
def world(state_url: str, sftp: SftpServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    # The shipped courts mapping, plus what the court's returned files hold.
    mapping = tmp_path / "courts.toml"
    mapping.write_text((MAPPINGS_DIR / "courts.toml").read_text() + FILES_SECTION)
    with PrimeroSimulator(cases=0) as sim:
        install_linked_records_form(sim.url)
        kek = secrets.token_bytes(32)
        with StateStore(state_url) as store:
            KeyRing.init(store, kek, DEPARTMENTS)
        # No consent: only the court order a supervisor recorded lets the summary leave.
        (child,) = refer_children(
            sim.url, 1, agency=COURT_AGENCY, service=COURT_SERVICE, consent=False
        )
        record_override(
            state_url,
            kek,
            child[0],
            "courts",
            basis=OverrideBasis.COURT_ORDER,
            legal_reference="Juvenile Court Karachi, order JC-114/2026",
        )
        yield {
            "sim": sim,
            "child": child,
            "settings": file_settings(
                primero_url=sim.url,
                state_url=state_url,
                kek=kek,
                department="courts",
                sftp=sftp.settings(),
                agencies=[COURT_AGENCY],
                services=[COURT_SERVICE],
                purpose="court_order",
                mapping_file=mapping,
            ),
        }


def sync(settings: Settings) -> Any:
    with open_job(settings, "courts") as job:
        return job.run()


def linked_rows(sim: PrimeroSimulator, case_id: str) -> list[dict[str, Any]]:
    with PrimeroClient(
        sim.url, auth="basic", username="cpims-adapter", password="sim-password"
    ) as client:
        return list(client.get_case(case_id).get(SUBFORM_FIELD) or [])


def test_a_court_summary_goes_out_as_a_file_and_the_court_order_comes_back(
    world: dict[str, Any], sftp: SftpServer
) -> None:
    sim, settings = world["sim"], world["settings"]
    case_id, referral_id = world["child"]
    key = f"ref-{referral_id}"

    # 1. One CSV (+ sidecar) in the court's outbound directory; nothing half-written.
    first = sync(settings)
    assert first.delivered == {"referral": 1}
    outbound = sftp.names("to_department")
    (csv_name,) = [n for n in outbound if n.endswith(".csv")]
    assert outbound == [csv_name, f"{csv_name}.sha256"]
    assert not any(n.endswith(".part") for n in outbound)
    data = (sftp.root / "to_department" / csv_name).read_bytes()
    ok, _ = verify_sidecar(data, (sftp.root / "to_department" / f"{csv_name}.sha256").read_bytes())
    assert ok
    (row,) = read_csv(data)
    # The case summary, one column per fact; disclosed under the recorded court order.
    assert row["referral_key"] == key
    assert row["case_summary.basis"] == "court_order"
    assert row["case_summary.case_code"].startswith("cp1.courts.")
    assert row["case_summary.child.name"] == "Synthetic Child 0"
    assert case_id not in data.decode("utf-8-sig")

    # 2. A re-run uploads nothing new.
    again = sync(settings)
    assert not again.enqueued and not again.delivered
    assert sftp.names("to_department") == outbound

    # 3. The court's orders export: row 2 is good, row 3 has an order type no court uses.
    orders = write_csv(
        [
            {
                "Reference": key,
                "Court": "Juvenile Court Karachi",
                "Case No.": "JC-114",
                "Order No.": "3",
                "Order Type": "supervision",
                "Order Date": "01/03/2026",
                "Status": "active",
            },
            {
                "Reference": key,
                "Court": "Juvenile Court Karachi",
                "Case No.": "JC-115",
                "Order No.": "4",
                "Order Type": "banishment",
                "Order Date": "02/03/2026",
                "Status": "active",
            },
        ]
    )
    sftp.drop_inbound("orders-march.csv", orders)
    back = sync(settings)
    assert back.status_updates == 1 and back.write_backs == 1
    assert not back.delivered  # importing sends nothing

    (linked,) = linked_rows(sim, case_id)
    assert linked["link_department"] == "courts"
    assert linked["link_record_type"] == "court_order"
    assert "JC-114" in linked["link_external_reference"]
    assert linked["link_case_code"].startswith("cp1.courts.")
    assert "banishment" not in str(linked) and "JC-115" not in str(linked)

    # The bad row is reported by number and reason, never by value.
    (reject_name,) = sftp.names("rejects")
    assert reject_name == "orders-march.csv.rejects.csv"
    rejects = read_csv((sftp.root / "rejects" / reject_name).read_bytes())
    assert [(r["row"], r["field"]) for r in rejects] == [("3", "order_type")]
    assert rejects[0]["reason"]
    assert "banishment" not in (sftp.root / "rejects" / reject_name).read_text("utf-8-sig")
    # The file left the inbound directory; nothing is imported twice.
    assert sftp.names("from_department") == []
    last = sync(settings)
    assert last.status_updates == 0 and not last.delivered
    assert len(linked_rows(sim, case_id)) == 1
