"""JSON logs of a real sync carry structure and no personal data; progress bars appear only on
a terminal and count what the listing read."""

from __future__ import annotations

import io
import json
import logging

from rich.console import Console

from adapter.app.jobs import open_job
from adapter.app.logs import configure_logging
from adapter.cli._progress import observe_pull, progress_bar
from adapter.logs import log_context
from adapter.primero import PrimeroClient
from adapter.simulator.departments.scenario import refer_children
from tests.ops.conftest import CHILDREN, PoliceWorld

CNIC = "42101-1234567-1"


def test_a_sync_logs_json_lines_without_personal_data(police_world: PoliceWorld) -> None:
    world = police_world
    (with_cnic,) = refer_children(world.sim.url, 1, fields={"national_id_no": CNIC})
    # INFO, the default level: at DEBUG the Primero transport logs request paths, which hold
    # Primero's case UUIDs (reported to the lead; adapter/primero/_transport.py).
    configure_logging("INFO", "json")
    (handler,) = logging.getLogger("adapter").handlers
    buffer = io.StringIO()
    handler.setStream(buffer)
    # One referral fails for good: its dead-letter warning is in the log too.
    world.desk.fail_next(500, count=1, path_prefix="/api/v1/referrals")

    with log_context(job="police", department="police"), open_job(world.settings, "police") as job:
        report = job.run()
    assert report.dead_lettered == 1

    lines = buffer.getvalue().splitlines()
    assert len(lines) >= 2
    entries = [json.loads(line) for line in lines]  # every line is one JSON document
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    pulled = [e for e in entries if "pulled" in e["message"]]
    assert pulled and pulled[0]["job"] == "police" and pulled[0]["department"] == "police"
    assert any(e["level"] == "WARNING" and "dead letter" in e["message"] for e in entries)

    with PrimeroClient(
        world.sim.url, auth="basic", username="cpims-adapter", password="sim-password"
    ) as client:
        cases = [client.get_case(case_id) for case_id, _ in [*world.referred, with_cnic]]
    seeded = {CNIC, CNIC.replace("-", ""), "Synthetic Child", "Street 4, Lyari"}
    for case in cases:
        seeded |= {str(case["id"]), str(case["name"]), str(case.get("case_id_display", "id"))}
    seeded |= {referral_id for _, referral_id in [*world.referred, with_cnic]}
    text = buffer.getvalue()
    for value in seeded:
        assert value not in text, "personal data or a case id in the JSON log"


def test_progress_bars_only_on_a_terminal() -> None:
    pipe = io.StringIO()
    with progress_bar("backfill police", unit="cases", console=Console(file=pipe)) as on_progress:
        on_progress(5, 10)
    assert pipe.getvalue() == ""

    terminal = io.StringIO()
    console = Console(file=terminal, force_terminal=True, width=100)
    with progress_bar("backfill police", unit="cases", console=console) as on_progress:
        on_progress(5, 10)
    assert "backfill police" in terminal.getvalue()

    with progress_bar("backfill", unit="cases", enabled=False, console=console) as on_progress:
        on_progress(1, 1)  # a no-op


def test_a_backfill_reports_cases_read_of_primeros_total(police_world: PoliceWorld) -> None:
    seen: list[tuple[int, int | None]] = []
    with open_job(police_world.settings, "police") as job:
        observe_pull(job, lambda done, total: seen.append((done, total)))
        report = job.run()
    assert report.pull is not None and report.pull.records_read == CHILDREN
    assert seen and seen[-1] == (CHILDREN, CHILDREN)
    assert report.delivered == {"referral": CHILDREN}  # the observed client still does it all
