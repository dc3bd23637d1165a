"""Breach handling (policy §3.4; privacy.md §6.2, §6.7): security events become incidents, the
data-protection officer and the affected departments get a notice within the deadline, and an
officer closes the incident after following docs/runbook-breach.md.

Library API (the CLI ``cpims-adapter incidents ...`` and the daemon are thin shells over it)::

    report = run_incident_checks(settings, store)     # scan + send due notices; a runs row
    counts = open_incident_summary(store)              # IncidentSummary(open, overdue)
    for incident in list_incidents(store): ...
    close_incident(store, 3, by="A. Khan", resolution="police key rotated, crosswalk sent")

Nothing in this package imports ``adapter.config`` at import time: ``config`` mounts
``incidents.settings``.
"""

from __future__ import annotations

from adapter.config.incidents import IncidentSettings
from adapter.incidents.checks import IncidentReport, report_key_compromise, run_incident_checks
from adapter.incidents.detect import ScanResult, scan_security_events
from adapter.incidents.notify import (
    DeliveryResult,
    SmtpNotices,
    deliver_due_notifications,
    render_notice,
)
from adapter.incidents.records import (
    Incident,
    IncidentError,
    IncidentStatus,
    IncidentSummary,
    Notification,
    close_incident,
    get_incident,
    list_incidents,
    notifications_of,
    open_incident_summary,
)
from adapter.incidents.rules import RULES, Rule, Severity, rule_for

__all__ = [
    "RULES",
    "DeliveryResult",
    "Incident",
    "IncidentError",
    "IncidentReport",
    "IncidentSettings",
    "IncidentStatus",
    "IncidentSummary",
    "Notification",
    "Rule",
    "ScanResult",
    "Severity",
    "SmtpNotices",
    "close_incident",
    "deliver_due_notifications",
    "get_incident",
    "list_incidents",
    "notifications_of",
    "open_incident_summary",
    "render_notice",
    "report_key_compromise",
    "rule_for",
    "run_incident_checks",
    "scan_security_events",
]
