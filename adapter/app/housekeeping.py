"""The duties `cpims-adapter run` performs beside the sync jobs, so that policy is done by the
software rather than by memory (issue 7):

- ``incidents`` every minute: security events → breach incidents, notices to the DPO within
  the policy's 24 hours (policy §3.4, adapter/incidents);
- ``retention`` daily: closed cases archived, destroyed after seven years, statistics kept
  (policy §3.6, adapter/retention);
- ``audit-verify`` daily: the hash-chained audit log checked end to end; a break is a security
  event and so an incident;
- ``keys-expire`` daily: token keys past their rotation grace window destroyed (privacy.md §6.2).

Each records its runs in the runs table (``cpims-adapter status`` shows them) and is guarded by
a lease, so with several instances each duty runs in one of them at a time.
"""

from __future__ import annotations

from apscheduler.triggers.interval import IntervalTrigger

from adapter.app.scheduler import Housekeeping, StopCheck
from adapter.config import Settings
from adapter.incidents import run_incident_checks
from adapter.ops.status import AUDIT_VERIFY_JOB, recorded_run
from adapter.primero import PrimeroClient
from adapter.privacy import AuditLog, KeyRing
from adapter.retention import run_retention
from adapter.state import StateStore


def check_incidents(settings: Settings, store: StateStore, should_stop: StopCheck) -> None:
    del should_stop  # one short pass
    run_incident_checks(settings, store)


def apply_retention(settings: Settings, store: StateStore, should_stop: StopCheck) -> None:
    keyring = KeyRing.open(store, settings.privacy.load_kek())
    with PrimeroClient.from_settings(settings.primero) as client:
        run_retention(settings, store, keyring, client, should_stop=should_stop)


def verify_audit(settings: Settings, store: StateStore, should_stop: StopCheck) -> None:
    del should_stop
    with recorded_run(store, AUDIT_VERIFY_JOB) as run:
        # verify() records an audit_chain_broken security event itself; the next incident
        # check turns it into an incident.
        report = AuditLog(store, KeyRing.open(store, settings.privacy.load_kek())).verify()
        run.stats["entries"] = report.entries
        if not report.ok:
            run.fail("AuditChainBroken")


def expire_keys(settings: Settings, store: StateStore, should_stop: StopCheck) -> None:
    del should_stop
    with recorded_run(store, "keys-expire") as run:
        destroyed = KeyRing.open(store, settings.privacy.load_kek()).destroy_expired()
        run.stats["destroyed"] = len(destroyed)


def _every(**interval: float) -> IntervalTrigger:
    return IntervalTrigger(**interval, timezone="UTC")


HOUSEKEEPING: tuple[Housekeeping, ...] = (
    Housekeeping("incidents", lambda: _every(minutes=1), check_incidents),
    Housekeeping("retention", lambda: _every(hours=24), apply_retention),
    Housekeeping("audit-verify", lambda: _every(hours=24), verify_audit),
    Housekeeping("keys-expire", lambda: _every(hours=24), expire_keys),
)
