"""Crash safety: `cpims-adapter sync` killed with SIGKILL at random points, then restarted.

The promise (architecture.md §5.2): a crash anywhere re-does at most one page or one message,
and the re-do is harmless. So after many kills and restarts every referral exists exactly once
at the hospital, and every answer the hospital gave is written back into Primero.

Each kill waits until the run has committed work in a chosen stage (start-up and the first
page, the pull and planning, delivery, write-back), then a seeded random moment more; the
hospital answers in batches between kills. ``CPIMS_ADAPTER_CRASH_TRIALS`` sets the kills per
phase (default 8, about 50 s per state backend) and ``CPIMS_ADAPTER_CRASH_SEED`` the seed.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import AuditLog, KeyRing
from adapter.simulator.hospital import Hospital
from adapter.simulator.scenario import referral_status
from adapter.state import StateStore, schema
from tests.jobs.crash_support import (
    DELIVERING,
    PULLING,
    STAGES,
    STARTING,
    WRITING_BACK,
    CrashWorld,
    SyncProcesses,
    crash_world,
    nothing_left_to_do,
)

CHILDREN = 24
REJECTED = 4  # the hospital has no capacity for the last four probes
COMPLETED = 8  # and completes the first eight referrals it accepted
TRIALS = int(os.environ.get("CPIMS_ADAPTER_CRASH_TRIALS", "8"))
SEED = int(os.environ.get("CPIMS_ADAPTER_CRASH_SEED", "1234"))
# A kill lands up to this many seconds after the stage's first commit. Delivery bursts (the
# rate budget allows a second's worth at once), so its kills come soon, while requests are
# in flight: a document the department took but the outbox has not marked sent.
STAGE_JITTER = {STARTING: 0.25, PULLING: 0.25, DELIVERING: 0.05, WRITING_BACK: 0.25}

# The hospital's final answer (also the linked-records row's status) → Primero's referral status.
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
    rng = random.Random(SEED)
    landed: Counter[str] = Counter()

    def crash(trials: int) -> None:
        for trial in range(trials):
            # Stages in run order, so each kill leaves work for the next ones to cut into.
            stage = STAGES[trial * len(STAGES) // trials]
            outcome = runs.kill_mid_run(stage, rng.random() * STAGE_JITTER[stage])
            landed[outcome] += 1
            if outcome == "finished":
                return  # a whole run did the work: nothing left for a kill to cut into

    # 1. Capacity probes, under crashes: one Task per referral and nothing identified.
    crash(TRIALS)
    runs.run_to_end()  # the restart after the last crash, left to finish
    keys = sorted(Hospital.referral_key(task) for task in hospital.referral_tasks())
    assert keys == sorted(f"ref-{referral_id}" for _, referral_id in world.referred)
    assert hospital.search("Patient") == [] and hospital.search("ServiceRequest") == []

    # 2. The hospital answers the probes in two batches while runs keep being killed; the
    #    identified referrals go out for the accepted ones.
    accepted, rejected = keys[:-REJECTED], keys[-REJECTED:]
    for batch in (slice(0, None, 2), slice(1, None, 2)):
        for key in accepted[batch]:
            hospital.accept(key)
        for key in rejected[batch]:
            hospital.reject(key, "no-capacity")
        crash(TRIALS // 2)
    runs.run_to_end()

    # 3. The hospital completes some referrals, in two batches, under crashes.
    completed = accepted[:COMPLETED]
    for batch in (slice(0, None, 2), slice(1, None, 2)):
        for key in completed[batch]:
            hospital.complete(key, "Examined; report attached.")
        crash(TRIALS // 2)

    # Restart until a run finds nothing left to do (the last write-backs echo once).
    for _ in range(4):
        if nothing_left_to_do(runs.run_to_end()):
            break
    else:
        pytest.fail("sync still had work after four uninterrupted runs")

    answer = {key: "accepted" for key in accepted} | {key: "rejected" for key in rejected}
    answer |= {key: "completed" for key in completed}
    _assert_once_at_the_hospital(hospital, answer)
    _assert_written_back(world, answer)
    _assert_nothing_pending_and_audit_intact(world)
    # The kills landed inside runs, not only before or after them.
    assert sum(n for outcome, n in landed.items() if outcome != "finished") >= TRIALS, landed


def _assert_once_at_the_hospital(hospital: Hospital, answer: dict[str, str]) -> None:
    accepted = sum(status != "rejected" for status in answer.values())
    found = {
        resource_type: hospital.search(resource_type)
        for resource_type in ("Task", "ServiceRequest", "Patient", "Consent")
    }
    # One Task per referral; identified data only for the accepted (one case per referral).
    assert {resource_type: len(found[resource_type]) for resource_type in found} == {
        "Task": len(answer),
        "ServiceRequest": accepted,
        "Patient": accepted,
        "Consent": accepted,
    }
    for resource_type, resources in found.items():
        identifiers = Counter(
            (identifier.get("system"), identifier.get("value"))
            for resource in resources
            for identifier in resource.get("identifier", [])
        )
        twice = sum(count > 1 for count in identifiers.values())
        assert twice == 0, f"{twice} {resource_type} identifiers are carried more than once"
    assert {Hospital.referral_key(task): task["status"] for task in found["Task"]} == answer


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
            left = conn.execute(
                sa.select(schema.outbox.c.status, sa.func.count())
                .where(schema.outbox.c.status.in_(["pending", "dead"]))
                .group_by(schema.outbox.c.status)
            ).all()
        assert [tuple(row) for row in left] == []
        report = AuditLog(store, KeyRing.open(store, world.kek)).verify()
        assert report.ok, report.problems
