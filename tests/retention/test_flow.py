"""End to end: cases referred to the hospital, closed in Primero, archived, reopened, destroyed.

Real servers on loopback (the Primero simulator, a FHIR server), state on SQLite and
PostgreSQL. Closure and reopening are what a CPO does in Primero: set ``status`` (and
``date_closure``) on the case.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapter.app.jobs import open_job
from adapter.config import Settings
from adapter.primero import PrimeroClient
from adapter.privacy import KeyRing, PolicySet
from adapter.privacy._tables import audit_log
from adapter.retention import (
    RetentionReport,
    backup_store,
    destroyed_cases,
    is_destroyed,
    restore_store,
    run_retention,
)
from adapter.retention._crypto import open_archive
from adapter.retention._tables import case_archives
from adapter.retention.aggregates import Contribution, counts
from adapter.simulator.fhir_server import start_fhir_server
from adapter.simulator.hospital import Hospital
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import (
    cpo_edit,
    health_settings,
    install_linked_records_form,
    refer_children_to_health,
)
from adapter.state import StateStore
from adapter.state.schema import inbox, links, outbox

N = 3
CLOSED_ON = "2026-01-10"
AFTER_SEVEN_YEARS = datetime(2033, 1, 11, tzinfo=UTC)
BEFORE_SEVEN_YEARS = datetime(2033, 1, 9, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path, state_url: str) -> Iterator[dict[str, Any]]:
    """N children referred to the hospital; all accepted; the first two completed with a
    report (so links hold the department's free-text note and outputs)."""
    fhir = start_fhir_server(tmp_path)
    try:
        with PrimeroSimulator(cases=0) as sim, Hospital(fhir.base_url) as hospital:
            install_linked_records_form(sim.url)
            kek = secrets.token_bytes(32)
            settings = health_settings(
                primero_url=sim.url, fhir_url=fhir.base_url, state_url=state_url, kek=kek
            )
            with StateStore(state_url) as store:
                KeyRing.init(store, kek, ["health", "police", "birth_registration", "courts"])
            referred = refer_children_to_health(sim.url, N)
            sync(settings)
            for task in hospital.referral_tasks():
                hospital.accept(Hospital.referral_key(task))
            sync(settings)
            for _, referral_id in referred[:2]:
                hospital.complete(f"ref-{referral_id}", "Examined; report attached.")
            sync(settings)
            yield {"sim": sim, "settings": settings, "referred": referred, "kek": kek}
    finally:
        fhir.cleanup()


def sync(settings: Settings) -> None:
    with open_job(settings, "health") as job:
        job.run()


def retention(
    settings: Settings, *, now: datetime | None = None, dry_run: bool = False
) -> RetentionReport:
    with (
        StateStore(settings.state.url) as store,
        PrimeroClient.from_settings(settings.primero) as client,
    ):
        ring = KeyRing.open(store, settings.privacy.load_kek())
        return run_retention(settings, store, ring, client, now=now, dry_run=dry_run)


def close(world: dict[str, Any], case_id: str) -> None:
    cpo_edit(world["sim"].url, case_id, {"status": "closed", "date_closure": CLOSED_ON})


def link_rows(settings: Settings, case_id: str) -> list[Any]:
    with StateStore(settings.state.url) as store, store.transaction() as conn:
        return list(conn.execute(sa.select(links).where(links.c.case_id == case_id)))


def aggregate_counts(settings: Settings) -> dict[Contribution, int]:
    with StateStore(settings.state.url) as store, store.transaction() as conn:
        return counts(conn)


def expected_cell(world: dict[str, Any], n: int) -> Contribution:
    """The scenario's case n: PK-SD-KHI, physical abuse (S2 in config/policy), age 6 + n."""
    policy = PolicySet.load(world["settings"].privacy.policy_dir)
    level = policy.concern_levels["physically_or_mentally_abused"]
    band = "5-9" if 6 + n <= 9 else "10-14"
    return Contribution("PK-SD-KHI", "2026-01", level, band, "female" if n % 2 else "male")


def test_a_closed_case_is_archived_once_and_its_live_copy_blanked(world: dict[str, Any]) -> None:
    settings = world["settings"]
    case_id, referral_id = world["referred"][0]
    other_id = world["referred"][1][0]
    before = link_rows(settings, case_id)
    assert before and before[0].remote_note  # the department's free text is held
    # Something the department sent us through the inbound API, and a dead letter.
    with StateStore(settings.state.url) as store:
        ring = KeyRing.open(store, world["kek"])
    with StateStore(settings.state.url) as store, store.transaction() as conn:
        conn.execute(
            inbox.insert().values(
                department="health",
                message_id="m-1",
                route="referral-response",
                request_hash="0" * 64,
                status="accepted",
                response_status=200,
                response_body={"outcome": "noted"},
                link_key=before[0].link_key,
                received_at=datetime.now(UTC),
            )
        )
        now = datetime.now(UTC)
        conn.execute(
            outbox.insert().values(
                idempotency_key="dead-1",
                job="health",
                destination="health",
                kind="update",
                link_key=before[0].link_key,
                payload=ring.encrypt_payload(b'{"doc": 1}', context=b"dead-1"),
                status="dead",
                attempts=8,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )

    close(world, case_id)
    report = retention(settings)
    assert report.archived == 1 and report.outbox_held == 1 and report.inbox_bodies_archived == 1

    (after,) = link_rows(settings, case_id)
    assert after.remote_note is None and after.remote_outputs is None
    # What idempotency needs stays: keys, code, stage, references, statuses, hash.
    for column in ("link_key", "case_code", "stage", "external_ref", "remote_status"):
        assert getattr(after, column) == getattr(before[0], column)
    assert link_rows(settings, other_id)[0].remote_note  # an open case is untouched
    with StateStore(settings.state.url) as store, store.transaction() as conn:
        (body,) = conn.execute(sa.select(inbox.c.response_body)).scalars()
        assert body == {}
        dead = conn.execute(sa.select(outbox).where(outbox.c.idempotency_key == "dead-1")).one()
        assert dead.payload  # the delivery still owns a dead letter's payload
        (archive,) = conn.execute(sa.select(case_archives))
        assert case_id not in archive.case_ref and archive.destroyed_at is None
        assert case_id.encode() not in bytes(archive.blob)
        entries = list(conn.execute(sa.select(audit_log.c.entry)).scalars())
        assert any('"case_archived"' in e and archive.case_ref in e for e in entries)
        assert not any(case_id in e for e in entries)
    with StateStore(settings.state.url) as store:
        runs = store.recent_runs("retention")
        assert runs[0].status == "ok" and runs[0].stats["archived"] == 1

    assert aggregate_counts(settings) == {expected_cell(world, 0): 1}
    # Seen again (edited while closed), and re-run: still counted once.
    cpo_edit(world["sim"].url, case_id, {"age": 7})
    again = retention(settings)
    assert again.archived == 0 and again.cases_read >= 1
    assert aggregate_counts(settings) == {expected_cell(world, 0): 1}
    assert referral_id  # the referral itself stays Primero's


def test_dry_run_reports_counts_and_changes_nothing(world: dict[str, Any]) -> None:
    settings = world["settings"]
    case_id = world["referred"][0][0]
    close(world, case_id)
    dry = retention(settings, dry_run=True)
    assert dry.dry_run and dry.archived == 1 and dry.links_blanked == 1
    assert link_rows(settings, case_id)[0].remote_note
    assert aggregate_counts(settings) == {}
    with StateStore(settings.state.url) as store, store.transaction() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(case_archives)).scalar() == 0
        assert store.get_cursor("retention", "cases", conn) is None
    with StateStore(settings.state.url) as store:
        assert store.recent_runs("retention") == []
    assert retention(settings).archived == 1  # the dry run moved no watermark


def test_a_dry_run_reports_exactly_what_the_real_run_then_archives_and_destroys(
    world: dict[str, Any],
) -> None:
    """The rehearsal must show the irreversible step: cases closed more than seven years ago
    are archived and destroyed in the same run, and a reopened case is not destroyed."""
    settings = world["settings"]
    (first, _), (second, _), (third, _) = world["referred"]
    close(world, first)
    assert retention(settings).archived == 1
    cpo_edit(world["sim"].url, first, {"status": "open"})  # reopened: its archive must go
    close(world, second)
    close(world, third)

    dry = retention(settings, now=AFTER_SEVEN_YEARS, dry_run=True)
    with StateStore(settings.state.url) as store, store.transaction() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(case_archives)).scalar() == 1
    real = retention(settings, now=AFTER_SEVEN_YEARS)

    assert (real.unarchived, real.archived, real.destroyed) == (1, 2, 2)
    assert {k: v for k, v in dry.stats().items() if k != "dry_run"} == {
        k: v for k, v in real.stats().items() if k != "dry_run"
    }
    assert not is_destroyed_by_id(settings, first)
    assert is_destroyed_by_id(settings, second) and is_destroyed_by_id(settings, third)


def is_destroyed_by_id(settings: Settings, case_id: str) -> bool:
    with StateStore(settings.state.url) as store:
        ring = KeyRing.open(store, settings.privacy.load_kek())
        with store.transaction() as conn:
            return is_destroyed(conn, ring, case_id)


def test_a_reopened_case_is_unarchived_and_counts_once_when_closed_again(
    world: dict[str, Any],
) -> None:
    settings = world["settings"]
    case_id = world["referred"][0][0]
    note = link_rows(settings, case_id)[0].remote_note
    close(world, case_id)
    assert retention(settings).archived == 1
    cpo_edit(world["sim"].url, case_id, {"status": "open", "case_status_reopened": True})
    reopened = retention(settings)
    assert reopened.unarchived == 1
    assert link_rows(settings, case_id)[0].remote_note == note
    assert aggregate_counts(settings) == {}
    close(world, case_id)
    assert retention(settings).archived == 1
    assert aggregate_counts(settings) == {expected_cell(world, 0): 1}


def test_after_seven_years_the_case_is_shredded_even_in_a_restored_backup(
    world: dict[str, Any], tmp_path: Path
) -> None:
    settings = world["settings"]
    case_id = world["referred"][0][0]
    close(world, case_id)
    close(world, world["referred"][1][0])
    assert retention(settings).archived == 2
    with StateStore(settings.state.url) as store:
        backup = backup_store(store, tmp_path / "before-shred.backup").path
        with store.transaction() as conn:
            (ref, blob, wrapped) = conn.execute(
                sa.select(
                    case_archives.c.case_ref, case_archives.c.blob, case_archives.c.wrapped_key
                )
            ).first()

    assert retention(settings, now=BEFORE_SEVEN_YEARS).destroyed == 0
    report = retention(settings, now=AFTER_SEVEN_YEARS)
    assert report.destroyed == 2
    with StateStore(settings.state.url) as store:
        ring = KeyRing.open(store, world["kek"])
    with StateStore(settings.state.url) as store, store.transaction() as conn:
        rows = list(conn.execute(sa.select(case_archives)))
        assert {r.case_ref for r in rows} >= {ref}
        for row in rows:  # only the tombstone columns remain
            assert row.destroyed_at is not None and row.blob is None and row.wrapped_key is None
            assert row.closed_at is None and row.destroy_after is None
        assert is_destroyed(conn, ring, case_id)
        assert destroyed_cases(conn, ring, [r[0] for r in world["referred"]]) == {
            r[0] for r in world["referred"][:2]
        }
        assert not is_destroyed(conn, ring, world["referred"][2][0])
        entries = list(conn.execute(sa.select(audit_log.c.entry)).scalars())
        assert sum('"case_destroyed"' in e for e in entries) == 2
    assert link_rows(settings, case_id) == []
    # The aggregates outlive the cases.
    assert aggregate_counts(settings) == {expected_cell(world, 0): 1, expected_cell(world, 1): 1}

    # Seen again in Primero: never archived again; a live row that reappeared is purged.
    with StateStore(settings.state.url) as store, store.transaction() as conn:
        conn.execute(
            links.insert().values(
                link_key="health:reappeared",
                job="health",
                department="health",
                case_id=case_id,
                case_code="cp1.health.1.x",
                stage="probe",
                created_at=AFTER_SEVEN_YEARS,
                updated_at=AFTER_SEVEN_YEARS,
            )
        )
    cpo_edit(world["sim"].url, case_id, {"age": 9})
    seen = retention(settings, now=AFTER_SEVEN_YEARS)
    assert seen.tombstoned_seen == 1 and seen.archived == 0 and seen.purged_links == 1
    assert link_rows(settings, case_id) == []
    assert aggregate_counts(settings) == {expected_cell(world, 0): 1, expected_cell(world, 1): 1}

    # The sync engine skips it too: the referral is still in Primero, yet nothing is sent
    # and no link comes back.
    with open_job(settings, "health") as job:
        report = job.run()
    # (Both destroyed cases changed in Primero since the last sync: closed, then edited.)
    assert report.refused["destroyed under retention"] == 2
    assert link_rows(settings, case_id) == []

    # A backup taken before the shred, restored: re-shredded before anything else runs.
    info = restore_store(
        settings.state.url, backup, world["kek"], force=True, now=AFTER_SEVEN_YEARS
    )
    assert info.destroyed == 2
    with StateStore(settings.state.url) as store:
        ring = KeyRing.open(store, world["kek"])
    with StateStore(settings.state.url) as store, store.transaction() as conn:
        (row,) = conn.execute(sa.select(case_archives).where(case_archives.c.case_ref == ref))
        assert row.blob is None and row.wrapped_key is None and row.destroyed_at is not None
        assert is_destroyed(conn, ring, case_id)
        # Nothing in the restored store opens the case any more. (The backup *file* still
        # does, with the KEK: the documented limit — keep backups briefly.)
        held = [bytes(b) for b in conn.execute(sa.select(case_archives.c.blob)).scalars() if b]
        assert bytes(blob) not in held
        assert open_archive(ring, ref, bytes(blob), bytes(wrapped))["case_id"] == case_id
    assert link_rows(settings, case_id) == []
    assert aggregate_counts(settings) == {expected_cell(world, 0): 1, expected_cell(world, 1): 1}
