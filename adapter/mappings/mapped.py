"""Departments driven by a mapping file: documents out, status changes in (pure; no I/O).

A new department is a mapping file plus configuration, no code (issue item 1). The file
(``config/mappings/<department>.toml``, format in ``config/mappings/README.md``) says, per kind
of document, where it goes and what it looks like, with references into the disclosure payload
the privacy policy already minimised; and how the department's status answers read back.

Default deny stays with the policy: a reference can only ever resolve to a value of the
payload (or a fact of the referral such as the case code), so a mapping can leave a field out
but never add one the policy withheld.

    data = read_mapping_file("config/mappings/police.toml")  # the wiring reads it
    mapping = MappedMapping.from_data(data, "police", "config/mappings/police.toml")
    document = mapping.referral(routed, disclosure, after_probe=False)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from adapter.errors import MappingError
from adapter.mappings.base import Document, body_hash
from adapter.mappings.mapped_spec import (
    CONTEXT,
    DEFAULT_ROUTE,
    DocumentSpec,
    MappingFile,
    MappingFileError,
    Route,
    StatusSpec,
    ValueSpec,
    parse_spec,
)
from adapter.mappings.mapped_template import (
    ABSENT,
    Format,
    Node,
    Obj,
    is_empty,
    literals,
    references,
    render,
    text_of,
)
from adapter.mappings.routing import RoutedReferral
from adapter.mappings.vocabulary import StatusUpdate
from adapter.privacy import Disclosure, PolicySet

log = logging.getLogger("adapter.mappings.mapped")

# Payload keys that are the policy's bookkeeping, not facts about the child.
_BOOKKEEPING = frozenset({"stage", "probe_ref"})
_SERVICES = "services_section"
# What $service_type and $urgency stand for, in an identified payload and in a probe.
_SERVICE_FIELDS = (f"{_SERVICES}.service_type", "services")
_URGENCY_FIELDS = (f"{_SERVICES}.service_response_timeframe", "urgency")


@dataclass(frozen=True)
class Endpoint:
    """Where one kind of document goes (the path may hold ``{referral_key}``)."""

    method: str
    path: str
    reference: Format | None


class MappedMapping:
    """A ``DepartmentMapping`` read from a mapping file (see the module docstring)."""

    def __init__(self, department: str, spec: MappingFile, source: str | None = None) -> None:
        self._department = department
        self.spec = spec
        self.source = source

    @classmethod
    def from_data(
        cls,
        data: Mapping[str, Any],
        department: str,
        source: str,
        *,
        policy: PolicySet | None = None,
    ) -> MappedMapping:
        """Check the parsed mapping file ``data`` (``source`` names it in errors) for
        ``department``; with ``policy``, also check every payload field the file names is on the
        department's allow-list. Raises MappingFileError. The wiring reads the file
        (``adapter.app.departments.load_mapping``)."""
        dept_policy = policy.department(department) if policy is not None else None
        spec = parse_spec(data, source, policy=dept_policy)
        if spec.department != department:
            raise MappingFileError(
                f"{source}: key 'department': the file is for '{spec.department}' but "
                f"[departments.{department}] uses it: point mapping_file at {department}'s own "
                "mapping file"
            )
        return cls(department, spec, source)

    @property
    def department(self) -> str:
        return self._department

    @property
    def has_probe(self) -> bool:
        return "probe" in self.spec.documents

    @property
    def status(self) -> StatusSpec | None:
        return self.spec.status

    # -- documents (the DepartmentMapping protocol) ---------------------------------------

    def probe(self, referral: RoutedReferral, disclosure: Disclosure) -> Document:
        if not self.has_probe:
            raise MappingError(
                f"mapping for {self.department} has no [documents.probe]; set "
                f"departments.{self.department}.two_stage = false or add one"
            )
        return self._build("probe", referral, disclosure, after_probe=None)

    def referral(
        self, referral: RoutedReferral, disclosure: Disclosure, *, after_probe: bool
    ) -> Document:
        return self._build("referral", referral, disclosure, after_probe=after_probe)

    def update(self, referral: RoutedReferral, disclosure: Disclosure) -> Document:
        return self._build("update", referral, disclosure, after_probe=None)

    def cancel(self, referral_key: str, reason: str) -> Document:
        return self._bare("cancel", referral_key, reason)

    def withdraw(self, referral_key: str) -> Document:
        return self._bare("withdraw", referral_key, "consent-withdrawn")

    # -- what the connector needs ---------------------------------------------------------

    def endpoint(self, kind: str, route: str = DEFAULT_ROUTE) -> Endpoint:
        """Where a document of ``kind`` on ``route`` goes. Raises MappingError for a kind or
        route the file does not have (a message queued before the file changed)."""
        spec = self._document_spec(kind, route)
        return Endpoint(spec.method, spec.path, spec.reference)

    def status_update(self, item: Mapping[str, Any]) -> tuple[StatusUpdate | None, str | None]:
        """One item of the department's changes, in the adapter's vocabulary, with its
        watermark. ``(None, watermark)`` for an item that is not ours or has an unmapped
        status: the poll moves past it."""
        spec = self.spec.status
        if spec is None:
            return None, None
        watermark = spec.watermark.render(item)
        key = spec.referral_key.render(item)
        raw = spec.status.render(item)
        status = self.spec.status_map(spec.record_type).get(raw or "", spec.unknown)
        if not key or status is None:
            return None, watermark
        updated = spec.updated_at.render(item) if spec.updated_at else None
        details: dict[str, str] = {}
        for name, detail in spec.details.items():
            text = detail.format.render(item)
            if text is not None:
                details[name] = detail.map.get(text, text) if detail.map else text
        note = spec.note.render(item) if spec.note else None
        update = StatusUpdate(
            referral_key=key,
            status=status,
            external_ref=spec.external_reference.render(item) if spec.external_reference else None,
            reason=spec.reason.render(item) if spec.reason else None,
            note=note[:500] if note else None,
            updated_at=_timestamp(updated),
            version=(spec.version.render(item) if spec.version else None) or watermark,
            record_type=spec.record_type,
            details=details,
        )
        return update, watermark

    def literals(self) -> set[Any]:
        """Every value the mapping file itself may put into a document (for reviews and the
        property that nothing else but payload values ever appears)."""
        found: set[Any] = set()
        nodes: list[Node | None] = [self.spec.record]
        nodes += [d.body for d in self.spec.documents.values()]
        nodes += [d.body for r in self.spec.routes for d in r.documents.values()]
        for node in nodes:
            if node is not None:
                found.update(v for v in literals(node) if not isinstance(v, list | dict))
        for value in self.spec.values.values():
            table = self._value_map(value) or {}
            found.update(table.values())
            if value.default is not None:
                found.add(value.default)
        found.update(route.name for route in self.spec.routes)
        found.add(DEFAULT_ROUTE)
        return found

    # -- building ---------------------------------------------------------------------------

    def _build(
        self,
        kind: str,
        referral: RoutedReferral,
        disclosure: Disclosure,
        *,
        after_probe: bool | None,
    ) -> Document:
        payload = disclosure.payload
        context: dict[str, Any] = {
            "referral_key": referral.key,
            "purpose": disclosure.purpose,
            "department": self.department,
            "service_type": _carried(referral.service_type, payload, _SERVICE_FIELDS),
            "urgency": _carried(referral.urgency, payload, _URGENCY_FIELDS)
            if kind != "probe"
            else payload.get("urgency", ABSENT),
        }
        if kind != "probe":
            context["case_code"] = disclosure.case_code or payload.get("case_code", ABSENT)
            # "consent", "mandatory_report", "consent+court_order": the basis the department
            # must know it received the case under (privacy.md §6.3).
            context["consent_basis"] = disclosure.consent_basis
        if after_probe is not None:
            context["after_probe"] = after_probe
        resolve = self._resolver(payload, context)
        route = self._choose_route(resolve)
        context["route"] = route
        spec = self._document_spec(kind, route)
        record: dict[str, Any] | None = None
        if self.spec.record is not None and _uses_record(spec.body):
            rendered = render(self.spec.record, resolve)
            record = rendered if isinstance(rendered, dict) else {}
            context["record"] = record
        body = render(spec.body, resolve)
        body = body if isinstance(body, dict) else {}
        # The fingerprint of what the department holds: the record (the same in a referral
        # and a later update of it) and the route, not the envelope around them (base.py).
        held: dict[str, Any] = {"route": route}
        held.update({"record": record} if record is not None else {"body": body})
        used = self._payload_refs(spec.body, with_record=record is not None)
        return Document(
            kind,
            {"referral_key": referral.key, "route": route, "json": body},
            body_hash(held),
            _not_carried(payload, used, self._missing_required(used, resolve)),
        )

    def _bare(self, kind: str, referral_key: str, reason: str) -> Document:
        context = {"referral_key": referral_key, "reason": reason, "department": self.department}
        spec = self._document_spec(kind, DEFAULT_ROUTE)
        body = render(spec.body, self._resolver({}, context))
        body = body if isinstance(body, dict) else {}
        envelope = {"referral_key": referral_key, "route": DEFAULT_ROUTE, "json": body}
        return Document(kind, envelope, body_hash(envelope))

    def _resolver(
        self, payload: Mapping[str, Any], context: Mapping[str, Any]
    ) -> Callable[[str], Any]:
        def resolve(name: str) -> Any:
            if name.startswith("payload."):
                return payload_value(payload, name.removeprefix("payload."))
            if name in self.spec.values and name not in CONTEXT:
                value = self.spec.values[name]
                return derive(value, resolve(value.source), self._value_map(value))
            found = context.get(name, ABSENT)
            return ABSENT if found is not ABSENT and is_empty(found) else found

        return resolve

    def _value_map(self, value: ValueSpec) -> Mapping[str, Any] | None:
        if isinstance(value.map, str):
            return self.spec.maps[value.map]
        return value.map

    def _choose_route(self, resolve: Callable[[str], Any]) -> str:
        for route in self.spec.routes:
            if _route_applies(route, resolve):
                return route.name
        return DEFAULT_ROUTE

    def _document_spec(self, kind: str, route: str) -> DocumentSpec:
        # Without [documents.update], an update re-sends the referral document (to the same
        # endpoint): the department's system takes it as an idempotent upsert.
        base_kind = kind if self.spec.document(kind) or kind != "update" else "referral"
        base = self.spec.document(base_kind)
        if base is None:
            raise MappingError(f"mapping for {self.department} has no [documents.{kind}]")
        if route == DEFAULT_ROUTE:
            return base
        chosen = next((r for r in self.spec.routes if r.name == route), None)
        if chosen is None:
            raise MappingError(f"mapping for {self.department} has no route '{route}'")
        override = chosen.document(kind) or chosen.document(base_kind)
        if override is None:
            return base
        return DocumentSpec(
            method=override.method or base.method,
            path=override.path or base.path,
            body=override.body if override.body is not None else base.body,
            reference=override.reference or base.reference,
        )

    def _payload_refs(self, body: Obj, *, with_record: bool) -> set[str]:
        names = [name for name, _ in references(body)]
        if with_record and self.spec.record is not None:
            names += [name for name, _ in references(self.spec.record)]
        used: set[str] = set()
        for name in names:
            if name in self.spec.values and name not in CONTEXT:
                name = self.spec.values[name].source
            if name.startswith("payload."):
                used.add(name.removeprefix("payload."))
            elif name == "service_type":
                used.update(_SERVICE_FIELDS)
            elif name == "urgency":
                used.update(_URGENCY_FIELDS)
            elif name == "case_code":
                used.add("case_code")
        return used

    def _missing_required(self, used: set[str], resolve: Callable[[str], Any]) -> list[str]:
        return [
            value.source.removeprefix("payload.")
            for name, value in self.spec.values.items()
            if value.required
            and value.source.removeprefix("payload.") in used
            and resolve(name) is ABSENT
        ]


# --- pure helpers ------------------------------------------------------------------------------


def payload_value(payload: Mapping[str, Any], field: str) -> Any:
    """A payload field by the policy's name: ``sex``, or ``services_section.service_type``
    (a list over the subform's rows). ABSENT when the payload does not carry it."""
    if "." not in field:
        value = payload.get(field)
        if is_empty(value):
            return ABSENT
        return list(value) if isinstance(value, list) else value
    form, sub = field.split(".", 1)
    rows = payload.get(form)
    if isinstance(rows, Mapping):
        value = rows.get(sub)
        return ABSENT if is_empty(value) else value
    if not isinstance(rows, list):
        return ABSENT
    values = [row.get(sub) for row in rows if isinstance(row, Mapping)]
    values = [v for v in values if not is_empty(v)]
    return values or ABSENT


def derive(value: ValueSpec, source: Any, table: Mapping[str, Any] | None) -> Any:
    """A [values] entry applied to its source: map, pick, join. ABSENT stays ABSENT."""
    if source is ABSENT:
        return ABSENT
    several = isinstance(source, list)
    items = list(source) if several else [source]
    if table is not None:
        mapped = []
        for item in items:
            key = text_of(item)
            if key is not None and key in table:
                mapped.append(table[key])
            elif value.default is not None:
                mapped.append(value.default)
            elif value.keep_unmapped:
                mapped.append(item)
        items = mapped
    if not items:
        return ABSENT
    result: Any = items if several and value.pick == "all" else items[0]
    if value.join is not None:
        parts = result if isinstance(result, list) else [result]
        result = value.join.join(t for t in (text_of(p) for p in parts) if t)
        return result or ABSENT
    return result


def _carried(fact: str | None, payload: Mapping[str, Any], fields: tuple[str, str]) -> Any:
    """``fact`` (the referral's service or timeframe) only when the payload carries that very
    value: the mapping may not state what the policy withheld."""
    if not fact:
        return ABSENT
    identified, probe = fields
    values = payload_value(payload, identified)
    if values is ABSENT:
        values = payload_value(payload, probe)
    if values is ABSENT:
        return ABSENT
    carried = values if isinstance(values, list) else [values]
    return fact if fact in carried else ABSENT


def _route_applies(route: Route, resolve: Callable[[str], Any]) -> bool:
    """Whether any listed reference has any listed value. The route does not depend on the
    kind of document, so a referral and its later updates stay on the same route."""
    for ref, wanted in route.when.items():
        value = resolve(ref)
        if value is ABSENT:
            continue
        have = {text_of(v) for v in (value if isinstance(value, list) else [value])}
        if have & {text_of(w) for w in wanted}:
            return True
    return False


def _uses_record(body: Obj) -> bool:
    return any(name == "record" for name, _ in references(body))


def _not_carried(payload: Mapping[str, Any], used: set[str], missing: list[str]) -> tuple[str, ...]:
    """Fields the policy let out that this document does not carry, and fields the mapping
    marks required that the payload lacks; names only, never values."""
    present: set[str] = set()
    for key, value in payload.items():
        if key in _BOOKKEEPING or is_empty(value):
            continue
        rows = [value] if isinstance(value, Mapping) else value if isinstance(value, list) else None
        if rows and all(isinstance(r, Mapping) for r in rows):
            if key in used:
                continue  # the whole subform is carried
            present.update(f"{key}.{sub}" for r in rows for sub, v in r.items() if not is_empty(v))
        else:
            present.add(key)
    return tuple(sorted((present - used) | set(missing)))


# Department systems run on Pakistan Standard Time (UTC+5, no daylight saving): a time without
# a zone is read in it, as csv_import reads department files.
_PKT = timezone(timedelta(hours=5), "PKT")


def _timestamp(text: str | None) -> datetime | None:
    # A naive time, or one in year 1 or 9999 (no UTC form: OverflowError), failed in the state
    # store on every poll of the feed, so one bad item stopped the department's statuses
    # (tests/fuzz/test_department_feeds.py). An implausible year is no time at all.
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_PKT)
    return value if 1900 <= value.year <= 2199 else None
