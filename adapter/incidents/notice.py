"""The notice the data-protection officer and the affected departments receive (policy §3.4;
privacy.md §6.2, §6.7).

It lists what happened (event kinds, counts, first and last time, the adapter's own event
details), the deadline, the affected departments and, when a department's case-code key may be
exposed, **every case code issued to that department under the affected key version** (from
``issued_codes``), so the department knows which of its records to re-key through the crosswalk.
It never holds a case id, a name or free text: event details are adapter-written phrases, and
case codes are the department's own pseudonyms.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from adapter.incidents.records import Incident
from adapter.incidents.rules import Rule, rule_for
from adapter.privacy._tables import issued_codes, security_events
from adapter.privacy._tables import keys as keys_table
from adapter.privacy.events import SecurityEventKind

if TYPE_CHECKING:
    from adapter.config import Settings

RUNBOOK = "docs/runbook-breach.md"
_MAX_DETAILS = 20
# Event details quote department names ('police') and key versions ("version 2"): both are
# written by the adapter (events.py), so reading them back is reading our own words.
_QUOTED = re.compile(r"'([a-z][a-z0-9_]{1,39})'")
_VERSION = re.compile(r"version (\d{1,6})\b")


def known_departments(conn: Connection, settings: Settings) -> set[str]:
    """Every department name the adapter knows: configured, with contacts, or a case-code key."""
    keyed = conn.execute(
        sa.select(sa.distinct(keys_table.c.scope)).where(keys_table.c.role == "token")
    ).scalars()
    return (
        set(settings.departments)
        | set(settings.incidents.department_contacts)
        | {str(d) for d in keyed}
    )


def incident_events(conn: Connection, incident: Incident) -> list[tuple[str, str | None]]:
    """``(detail, department)`` of every event the incident holds, in order."""
    query = (
        sa.select(security_events.c.detail, security_events.c.department)
        .where(
            security_events.c.kind == incident.kind,
            security_events.c.id >= incident.first_event_id,
            security_events.c.id <= incident.last_event_id,
        )
        .order_by(security_events.c.id)
    )
    if rule_for(incident.kind).group_by == "department":
        query = query.where(_same_department(incident.department))
    return [(row.detail, row.department) for row in conn.execute(query)]


def affected_departments(
    incident: Incident, events: Iterable[tuple[str, str | None]], known: Iterable[str]
) -> list[str]:
    """The incident's department plus every known department its events name (e.g. the
    department whose code another one presented)."""
    known_set = set(known)
    found = {incident.department} if incident.department else set()
    for detail, department in events:
        if department:
            found.add(department)
        found.update(name for name in _QUOTED.findall(detail) if name in known_set)
    return sorted(d for d in found if d)


def affected_codes(
    conn: Connection, incident: Incident, events: Iterable[tuple[str, str | None]]
) -> tuple[list[int], list[str]]:
    """For a key kind with a department: the key versions named by its events (every version
    the department holds codes under if none is named) and every code issued under them."""
    if not rule_for(incident.kind).lists_codes or not incident.department:
        return [], []
    versions = sorted({int(v) for detail, _ in events for v in _VERSION.findall(detail)})
    if not versions:
        versions = sorted(
            int(v)
            for v in conn.execute(
                sa.select(sa.distinct(issued_codes.c.key_version)).where(
                    issued_codes.c.department == incident.department
                )
            ).scalars()
        )
    codes = conn.execute(
        sa.select(issued_codes.c.code)
        .where(
            issued_codes.c.department == incident.department,
            issued_codes.c.key_version.in_(versions),
        )
        .order_by(issued_codes.c.issued_at, issued_codes.c.code)
    ).scalars()
    return versions, [str(code) for code in codes]


def build_notice(
    conn: Connection,
    incident: Incident,
    *,
    known: Iterable[str],
    notify_within_hours: int,
) -> str:
    """The plain-text notice for ``incident`` as the database stands now."""
    rule = rule_for(incident.kind)
    events = incident_events(conn, incident)
    departments = affected_departments(incident, events, known)
    versions, codes = affected_codes(conn, incident, events)
    lines = [
        f"cpims-adapter: suspected personal-data breach, incident {incident.id} "
        f"({incident.severity})",
        "",
        f"Detected:  {_time(incident.opened_at)}",
        f"Deadline:  {_time(incident.deadline_at)} - the data-protection officer is notified "
        f"within {notify_within_hours} hours of detection (policy §3.4)",
        f"Status:    {incident.status}",
        "",
        "What happened",
        f"  {incident.kind}: {incident.event_count} event(s), "
        f"first {_time(incident.first_event_at)}, last {_time(incident.last_event_at)}",
        f"  Meaning: {rule.meaning}",
    ]
    details = Counter(detail for detail, _ in events)
    if details:
        lines.append("  Event details (written by the adapter):")
        for detail, count in details.most_common(_MAX_DETAILS):
            lines.append(f"  - {detail}" + (f" (x{count})" if count > 1 else ""))
        if len(details) > _MAX_DETAILS:
            lines.append(f"  - ... and {len(details) - _MAX_DETAILS} other kinds of detail")
    lines += ["", f"Affected departments: {', '.join(departments) or 'none named'}"]
    if rule.lists_codes and incident.department:
        which = ", ".join(str(v) for v in versions) or "none"
        lines += [
            "",
            f"Affected case codes: every code issued to {incident.department} under key "
            f"version(s) {which}: {len(codes)}",
            *(f"  {code}" for code in codes),
        ]
    lines += ["", *_steps(incident, rule, departments)]
    return "\n".join(lines) + "\n"


def _steps(incident: Incident, rule: Rule, departments: list[str]) -> list[str]:
    steps: list[str] = []
    if rule.lists_codes:
        for department in departments or ["DEPARTMENT"]:
            steps.append(
                f"Rotate the key: cpims-adapter keys rotate {department} --crosswalk "
                f"{department}-crosswalk.csv"
            )
        steps.append(
            "Re-issue the codes: deliver the crosswalk (old code -> new code) to each affected "
            "department; old codes are refused after the grace window"
        )
    leaked = [d for d in departments if d != incident.department]
    if incident.kind == SecurityEventKind.WRONG_DEPARTMENT and incident.department and leaked:
        # Runbook §5: the owner of a presented code must learn that its codes leaked.
        steps.append(
            f"Tell {', '.join(leaked)} that its case codes or referral keys were presented by "
            f"{incident.department}: they have left the department"
        )
    steps += [
        f"Send this notice to the data-protection officer before {_time(incident.deadline_at)} "
        "(the adapter e-mails incidents.dpo_emails; check with `cpims-adapter incidents show "
        f"{incident.id}`)",
        "Notify the affected departments: " + (", ".join(departments) or "none named"),
        "Verify the audit chain: cpims-adapter audit verify",
        f"Close the incident: cpims-adapter incidents close {incident.id} --by NAME "
        "--resolution TEXT",
    ]
    return [f"Next steps ({RUNBOOK})", *(f"  {i}. {step}" for i, step in enumerate(steps, 1))]


def _same_department(department: str | None) -> sa.ColumnElement[bool]:
    if department is None:
        return security_events.c.department.is_(None)
    return security_events.c.department == department


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")
