"""Crash safety: `cpims-adapter sync` killed with SIGKILL at random points, then restarted.

The promise (architecture.md §5.2): a crash anywhere re-does at most one page or one message,
and the re-do is harmless. So after many kills and restarts every referral exists exactly once
at the hospital, and every answer the hospital gave is written back into Primero.

Kills land a seeded random fraction of a run's length after the run took its lease, so they
fall in the pull, in planning, in delivery and in the write-back; the hospital answers between
phases. ``CPIMS_ADAPTER_CRASH_TRIALS`` sets the kills per phase (default 6; CI keeps it low).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import AuditLog, KeyRing
from adapter.simulator.hospital import Hospital
from adapter.simulator.scenario import referral_status
from adapter.state import StateStore, schema
from tests.jobs.crash_support import (
    STAGES,
    CrashWorld,
    SyncProcesses,
    crash_world,
    nothing_left_to_do,
)

CHILDREN = 24
REJECTED = 4  # the hospital has no capacity for the last four probes
COMPLETED = 8  # and completes the first eight referrals it accepted
TRIALS = int(os.environ.get("CPIMS_ADAPTER_CRASH_TRIALS", "8"))
STAGE_JITTER = 0.25  # seconds: a kill lands up to this long after a stage's first commit

# Primero's referral status, and the status on the linked-records row, for each final answer.
PRIMERO_STATUS = {"accepted": "accepted", "completed": "done", "rejected": "rejected"}


@pytest.fixture
def world(tmp_path: Path, state_url: str) -> Iterator[CrashWorld]:
    with crash_world(tmp_path, state_url, children=CHILDREN, page_size=5) as made:
        yield made


@pytest.fixture
def runs(world: CrashWorld) -> Iterator[SyncProcesses]:
    processes = SyncProcesses(world)
    try:
        yield processes
    finally:
        processes.close()


def test_sigkill_at_random_points_loses_nothing_and_duplicates_nothing(
    world: CrashWorld, runs: SyncProcesses
) -> None:
    hospital = world.hospital
    rng = random.Random(1234)
    landed: Counter[str] = Counter()

    def crash_repeatedly() -> None:
        for trial in range(TRIALS):
            # Stages in run order, so each kill leaves work for the next ones to cut into.
            stage = STAGES[trial * len(STAGES) // TRIALS]
            outcome = runs.kill_mid_run(stage, rng.random() * STAGE_JITTER)
            landed[outcome] += 1
            if outcome == "finished":
                break  # a whole run did the phase's work: nothing left for a kill to cut
        runs.run_to_end()  # the restart after the last crash, left to finish

    # 1. Capacity probes, under crashes: one Task per referral and nothing identified.
    crash_repeatedly()
    keys = sorted(Hospital.referral_key(task) for task in hospital.referral_tasks())
    assert keys == sorted(f"ref-{referral_id}" for _, referral_id in world.referred)
    assert hospital.search("Patient") == [] and hospital.search("ServiceRequest") == []

    # 2. The hospital answers every probe; identified referrals go out, under crashes.
    accepted, rejected = keys[:-REJECTED], keys[-REJECTED:]
    for key in accepted:
        hospital.accept(key)
    for key in rejected:
        hospital.reject(key, "no-capacity")
    crash_repeatedly()

    # 3. The hospital completes some referrals; the outcomes go back, under crashes.
    completed = accepted[:COMPLETED]
    for key in completed:
        hospital.complete(key, "Examined; report attached.")
    crash_repeatedly()

    # Restart until a run finds nothing left to do (the last write-backs echo once).
    for _ in range(4):
        if nothing_left_to_do(runs.run_to_end()):
            break
    else:
        pytest.fail("sync still had work after four uninterrupted runs")

    answer = {key: "accepted" for key in accepted} | {key: "rejected" for key in rejected}
    answer |= {key: "completed" for key in completed}
    _assert_once_at_the_hospital(hospital, keys, accepted)
    _assert_written_back(world, answer)
    _assert_nothing_pending_and_audit_intact(world)
    # A restart right after SIGKILL is never refused: the dead run's lease is taken over.
    assert runs.refused == 0
    # The kills did land inside runs, not only before or after them.
    assert sum(n for stage, n in landed.items() if stage != "finished") >= TRIALS, landed
    print(f"kills by the last stage they committed: {dict(landed)}")


def _assert_once_at_the_hospital(hospital: Hospital, keys: list[str], accepted: list[str]) -> None:
    tasks = hospital.referral_tasks()
    assert sorted(Hospital.referral_key(task) for task in tasks) == keys
    assert len(hospital.search("ServiceRequest")) == len(accepted)
    assert len(hospital.search("Patient")) == len(accepted)  # one case per referral here
    assert len(hospital.search("Consent")) == len(accepted)
    for resource_type in ("Task", "ServiceRequest", "Patient", "Consent"):
        identifiers = Counter(
            (identifier.get("system"), identifier.get("value"))
            for resource in hospital.search(resource_type)
            for identifier in resource.get("identifier", [])
        )
        duplicated = [value for value, count in identifiers.items() if count > 1]
        assert not duplicated, f"{resource_type}: {len(duplicated)} identifiers twice or more"
    by_status = Counter(task["status"] for task in tasks)
    assert by_status == {"accepted": len(accepted) - COMPLETED, "completed": COMPLETED} | {
        "rejected": len(keys) - len(accepted)
    }


def _assert_written_back(world: CrashWorld, answer: dict[str, str]) -> None:
    with PrimeroClient(
        world.sim.url, auth="basic", username="cpims-adapter", password="sim-password"
    ) as adapter:
        for case_id, referral_id in world.referred:
            key = f"ref-{referral_id}"
            status = answer[key]
            assert referral_status(world.sim.url, case_id, referral_id) == PRIMERO_STATUS[status]
            rows = adapter.get_case(case_id).get(SUBFORM_FIELD) or []
            assert [(row["link_key"], row["link_status"]) for row in rows] == [
                (f"health:{key}", status)
            ]


def _assert_nothing_pending_and_audit_intact(world: CrashWorld) -> None:
    with StateStore(world.state_url) as store:
        with store.transaction() as conn:
            left: dict[str, Any] = dict(
                conn.execute(
                    sa.select(schema.outbox.c.status, sa.func.count())
                    .where(schema.outbox.c.status.in_(["pending", "dead"]))
                    .group_by(schema.outbox.c.status)
                ).all()
            )
        assert left == {}
        report = AuditLog(store, KeyRing.open(store, world.kek)).verify()
        assert report.ok, report.problems
