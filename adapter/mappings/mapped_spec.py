"""The mapping file: its schema, its validation and the cross-checks a reviewer relies on.

``config/mappings/README.md`` explains the format to a data-protection officer and IT staff;
this module enforces it on the parsed file (the wiring reads it; no I/O here). Everything is
checked when the file is loaded, never half-way through a sync: unknown keys, references that
could never resolve, value maps that do not exist, a cancel that tries to carry case data.
Each error names the file, the key and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    model_validator,
)

from adapter.errors import ConfigError
from adapter.mappings.mapped_template import (
    REF_PATTERN,
    Format,
    Node,
    Obj,
    parse_template,
    references,
)
from adapter.privacy.policy import DepartmentPolicy
from adapter.vocabulary import CORE_RECORD_TYPES


class MappingFileError(ConfigError):
    """A mapping file in ``config/mappings/`` is missing, malformed or inconsistent."""


Kind = Literal["probe", "referral", "update", "cancel", "withdraw"]
RoutedKind = Literal["probe", "referral", "update"]
Method = Literal["POST", "PUT", "PATCH", "DELETE"]
AdapterStatus = Literal[
    "requested", "accepted", "rejected", "in_progress", "completed", "cancelled", "failed"
]
Scalar = str | int | float | bool

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
DEFAULT_ROUTE = "default"
# Only the referral key may appear in a path: it is a Primero transition UUID, never personal
# data, and error messages print the path *template* anyway (errors.py).
_PATH_PATTERN = r"^/[A-Za-z0-9_\-./~]*(\{referral_key\}[A-Za-z0-9_\-./~]*)*$"
_HEADER_PATTERN = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"

# What a probe payload holds (adapter.privacy.probe.build_probe): nothing that names the child.
PROBE_FIELDS = frozenset(
    {"services", "urgency", "district", "province", "age_band", "sex", "probe_ref"}
)
# Facts of the referral a template may use besides the payload, per place they are used.
CONTEXT = frozenset(
    {
        "case_code",
        "referral_key",
        "service_type",
        "urgency",
        "purpose",
        "department",
        "route",
        "after_probe",
        "reason",
        "record",
        "consent_basis",
    }
)
_IDENTIFIED = frozenset(
    {
        "case_code",
        "referral_key",
        "service_type",
        "urgency",
        "purpose",
        "department",
        "route",
        "consent_basis",
    }
)
SCOPES: Mapping[str, frozenset[str]] = {
    "probe": frozenset(
        {"referral_key", "service_type", "urgency", "purpose", "department", "route"}
    ),
    "referral": _IDENTIFIED | {"after_probe", "record"},
    "update": _IDENTIFIED | {"record"},
    "record": _IDENTIFIED,
    "when": frozenset({"service_type", "urgency", "purpose", "department", "consent_basis"}),
    # Cancel and withdraw name the referral only: the engine calls them without any case data.
    "cancel": frozenset({"referral_key", "reason", "department"}),
    "withdraw": frozenset({"referral_key", "reason", "department"}),
}


def _to_template(value: Any) -> Obj:
    if isinstance(value, Obj):
        return value
    if not isinstance(value, Mapping):
        raise ValueError("must be a table (the JSON object to send)")
    node = parse_template(value)
    assert isinstance(node, Obj)
    return node


def _to_format(value: Any) -> Format:
    if isinstance(value, Format):
        return value
    if not isinstance(value, str):
        raise ValueError('must be a text format such as "{station}/{year}/{serial}"')
    return Format.parse(value)


Template = Annotated[Obj, PlainValidator(_to_template)]
FormatText = Annotated[Format, PlainValidator(_to_format)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueSpec(_Strict):
    """A named value derived from one reference: ``[values] sex = { from = "payload.sex" }``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str = Field(alias="from", pattern=REF_PATTERN)
    # A [maps] name or an inline table: the department's code for each of our values.
    map: str | dict[str, Scalar] | None = None
    # Used for a value the map does not list (otherwise that value is left out) ...
    default: Scalar | None = None
    # ... or pass such values through unchanged.
    keep_unmapped: bool = False
    # A subform field or a multi-select gives several values: "first" takes one.
    pick: Literal["all", "first"] = "all"
    # Several values as one text, e.g. ", ".
    join: str | None = None
    # Listed in the run's "not carried" report when the payload lacks it.
    required: bool = False


class HttpSpec(_Strict):
    """How the department's API takes a write."""

    # Every write carries the outbox's idempotency key in this header (a replay is harmless).
    idempotency_header: str = Field("Idempotency-Key", pattern=_HEADER_PATTERN)
    # Fixed headers the department asks for (never secrets: those live in the configuration).
    headers: dict[str, str] = {}
    # A harmless GET the department offers for monitoring (e.g. "/health"): `check` calls it.
    # Without it, `check` reads one item of the [status] feed.
    health_path: str | None = Field(None, pattern=_PATH_PATTERN)


class DocumentSpec(_Strict):
    """One kind of document: where it goes and what it looks like."""

    method: Method = "POST"
    path: str = Field(pattern=_PATH_PATTERN)
    body: Template = Obj((), False)
    # The department's reference for what it received, read from its JSON answer.
    reference: FormatText | None = None


class RouteDocument(_Strict):
    """A route's replacement for parts of a document (unset parts come from the main one)."""

    method: Method | None = None
    path: str | None = Field(None, pattern=_PATH_PATTERN)
    body: Template | None = None
    reference: FormatText | None = None


class Route(_Strict):
    """Another endpoint (or body) for some referrals, e.g. juvenile-in-conflict cases."""

    name: str = Field(pattern=NAME_PATTERN)
    why: str = Field(min_length=3)
    # The route applies when ANY reference listed has ANY of the listed values.
    when: dict[str, list[Scalar]] = Field(min_length=1)
    documents: dict[RoutedKind, RouteDocument] = Field(min_length=1)

    def document(self, kind: str) -> RouteDocument | None:
        return next((d for k, d in self.documents.items() if k == kind), None)


class DetailSpec(_Strict):
    """A fact shown to the CPO in the linked record: a format, optionally through a map."""

    format: FormatText
    map: dict[str, str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_format(cls, data: Any) -> Any:
        return {"format": data} if isinstance(data, str) else data


class StatusSpec(_Strict):
    """How to read the department's status changes back."""

    path: str = Field(pattern=_PATH_PATTERN)
    since_param: str = "updated_since"
    page_size_param: str | None = None
    page_size: int = Field(100, ge=1, le=10_000)
    # Where the list of items is in the answer (dotted); "" when the answer is the list.
    items: str = "items"
    referral_key: FormatText = Format.parse("{referral_key}")
    status: FormatText = Format.parse("{status}")
    watermark: FormatText = Format.parse("{updated_at}")
    updated_at: FormatText | None = Format.parse("{updated_at}")
    version: FormatText | None = None
    external_reference: FormatText | None = None
    note: FormatText | None = None
    reason: FormatText | None = None
    # A core record type (referral) or one of the file's [record_types].
    record_type: str = Field("referral", pattern=NAME_PATTERN)
    # The department's status → the adapter's. A declared record type keeps its statuses in
    # [record_types.<name>.statuses] instead (``MappingFile.status_map``).
    map: dict[str, AdapterStatus] = {}
    # The adapter status for a department status the map does not list; unset = ignore it.
    unknown: AdapterStatus | None = None
    details: dict[str, DetailSpec] = {}


class InboundFiles(_Strict):
    """File transports: what the department's returned files hold (``csv_import.InboundFormat``:
    a record type and its column names onto the record's fields)."""

    record_type: str = Field(pattern=NAME_PATTERN)
    columns: dict[str, str] = {}


class FilesSpec(_Strict):
    """Settings only the file connector (CSV over SFTP, e-mail) reads."""

    inbound: InboundFiles | None = None
    # The kinds of document that may travel by e-mail when SFTP is unreachable (last resort).
    email_kinds: list[Kind] = []


class RecordTypeSpec(_Strict):
    """A kind of record the department keeps about a case (``[record_types.<name>]``): a row
    type of the case's "Linked department records", offered by its record-type select."""

    # What a child protection officer sees in the row's record-type select.
    label: str = Field(min_length=2, max_length=80)
    # The department's status words for this record → the adapter's status.
    statuses: dict[str, AdapterStatus] = {}
    # Facts a record of this type may carry (a returned file's columns, shown to the CPO).
    details: list[str] = []


class MappingFile(_Strict):
    """One ``config/mappings/<department>.toml``."""

    format_version: Literal[1] = Field(1, alias="format")
    department: str = Field(pattern=NAME_PATTERN)
    title: str = Field(min_length=3)
    http: HttpSpec = HttpSpec()
    maps: dict[str, dict[str, Scalar]] = {}
    values: dict[str, ValueSpec] = {}
    record: Template | None = None
    documents: dict[Kind, DocumentSpec]
    routes: list[Route] = []
    status: StatusSpec | None = None
    files: FilesSpec | None = None
    record_types: dict[str, RecordTypeSpec] = {}

    def document(self, kind: str) -> DocumentSpec | None:
        return next((d for k, d in self.documents.items() if k == kind), None)

    def status_map(self, record_type: str) -> Mapping[str, AdapterStatus]:
        """The department's status words for ``record_type`` → the adapter's statuses."""
        declared = self.record_types.get(record_type)
        if declared is not None:
            return declared.statuses
        return self.status.map if self.status is not None else {}


def declared_record_types(specs: Iterable[MappingFile]) -> dict[str, str]:
    """Each record type the mapping files declare → its label (the first file's label), for
    the "Linked department records" record-type select (``install_forms``)."""
    found: dict[str, str] = {}
    for spec in specs:
        for name, declared in spec.record_types.items():
            found.setdefault(name, declared.label)
    return found


# --- validating ------------------------------------------------------------------------------


def parse_spec(
    data: Mapping[str, Any], source: str, *, policy: DepartmentPolicy | None = None
) -> MappingFile:
    """Validate one mapping file's parsed TOML (``source`` names the file in errors); with
    ``policy``, also check every payload field it names is on that department's allow-list.
    Raises MappingFileError (file, key, fix). Reading the file is the wiring's job
    (``adapter.app.departments.read_mapping``)."""
    try:
        spec = MappingFile.model_validate(data)
    except ValidationError as exc:
        raise MappingFileError(_explain(source, exc)) from None
    problems = list(check(spec))
    if policy is not None:
        problems += check_policy(spec, policy)
    if problems:
        raise MappingFileError("\n".join(f"{source}: key '{k}': {m}." for k, m in problems))
    return spec


def _explain(source: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = err["loc"]
        if loc and loc[-1] == "[key]":  # a table key outside its allowed names
            key = _loc(loc[:-1])
            fix = "unknown key: " + str(err["msg"]).replace("Input should be", "use")
            lines.append(f"{source}: key '{key}': {fix}.")
            continue
        key = _loc(loc)
        if err["type"] == "extra_forbidden":
            fix = "unknown key: fix its spelling or remove it (config/mappings/README.md)"
        elif err["type"] == "missing":
            fix = "required: add it"
        elif err["type"] == "string_pattern_mismatch":
            fix = (
                "use lowercase letters, digits and '_'"
                if key.endswith(("department", "name"))
                else "not an accepted value here (paths start with '/' and may use only "
                "{referral_key}; references look like payload.sex)"
            )
        else:
            fix = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{source}: key '{key}': {fix}.")
    return "\n".join(lines)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --- cross-checks ------------------------------------------------------------------------------


def check(spec: MappingFile) -> Iterator[tuple[str, str]]:
    """Every ``(key, problem)`` of a schema-valid file; empty when the file is usable."""
    yield from _check_record_types(spec)
    for kind in ("referral", "cancel", "withdraw"):
        if kind not in spec.documents:
            yield (
                f"documents.{kind}",
                "required: every department must take referrals, cancellations and withdrawals "
                "of consent (the request to erase)",
            )
    for name, value in spec.values.items():
        key = f"values.{name}"
        if name in CONTEXT:
            yield key, f"'{name}' is a context name; choose another name for this value"
        elif value.source in spec.values or value.source == "record":
            yield f"{key}.from", "a value derives from the payload or the context, not another"
        if isinstance(value.map, str) and value.map not in spec.maps:
            yield f"{key}.map", f"no [maps.{value.map}] table: add it or write the map inline"
    if spec.record is not None:
        yield from _check_template(spec, spec.record, "record", "record")
    for kind, document in spec.documents.items():
        yield from _check_template(spec, document.body, kind, f"documents.{kind}.body")
    names: set[str] = set()
    for i, route in enumerate(spec.routes):
        key = f"routes[{i}]"
        if route.name == DEFAULT_ROUTE or route.name in names:
            yield f"{key}.name", f"'{route.name}' is taken: give each route its own name"
        names.add(route.name)
        for ref in route.when:
            problem = _check_ref(spec, ref, "when")
            if problem:
                yield f"{key}.when.{ref}", problem
        for kind, override in route.documents.items():
            if kind not in spec.documents and not (
                kind == "update" and "referral" in spec.documents
            ):
                yield f"{key}.documents.{kind}", f"there is no [documents.{kind}] to re-route"
            if override.body is not None:
                yield from _check_template(
                    spec, override.body, kind, f"{key}.documents.{kind}.body"
                )


def _check_record_types(spec: MappingFile) -> Iterator[tuple[str, str]]:
    for name, declared in spec.record_types.items():
        key = f"record_types.{name}"
        if name in CORE_RECORD_TYPES:
            yield (
                key,
                f"'{name}' is the adapter's own record type: give the department's another name",
            )
        elif not re.match(NAME_PATTERN, name) or len(name) > 40:
            yield key, "use up to 40 lowercase letters, digits and '_', starting with a letter"
        for fact in declared.details:
            if not re.match(NAME_PATTERN, fact):
                yield f"{key}.details", f"'{fact}': use lowercase letters, digits and '_'"
    uses = []
    if spec.status is not None:
        uses.append(("status.record_type", spec.status.record_type))
    if spec.files is not None and spec.files.inbound is not None:
        uses.append(("files.inbound.record_type", spec.files.inbound.record_type))
    for key, name in uses:
        if name not in CORE_RECORD_TYPES and name not in spec.record_types:
            yield (
                key,
                (
                    f"'{name}' is neither the adapter's own ({', '.join(CORE_RECORD_TYPES)}) nor "
                    f"declared here: add [record_types.{name}] with its label and statuses"
                ),
            )
    if spec.status is None:
        return
    name = spec.status.record_type
    if name in spec.record_types:
        if spec.status.map:
            yield (
                "status.map",
                (f"the statuses of '{name}' are [record_types.{name}.statuses]: move them there"),
            )
        elif not spec.record_types[name].statuses:
            yield (
                f"record_types.{name}.statuses",
                ("required: map each of the department's statuses onto the adapter's"),
            )
    elif not spec.status.map:
        yield "status.map", "required: map each of the department's statuses onto the adapter's"


def _check_template(
    spec: MappingFile, node: Node, scope: str, where: str
) -> Iterator[tuple[str, str]]:
    for name, key in references(node):
        problem = _check_ref(spec, name, scope)
        if problem:
            yield f"{where}.{key}" if key else where, problem


def _check_ref(spec: MappingFile, name: str, scope: str) -> str | None:
    """Why ``$name`` cannot be used in ``scope`` (None when it can)."""
    if name.startswith("payload."):
        field = name.removeprefix("payload.")
        if scope in ("cancel", "withdraw"):
            return (
                f"${name}: {scope} documents carry no case data (the engine sends them without "
                f"it); use only ${', $'.join(sorted(SCOPES[scope]))}"
            )
        if scope == "probe" and field not in PROBE_FIELDS:
            return (
                f"${name}: a capacity probe carries only {', '.join(sorted(PROBE_FIELDS))} "
                "(privacy.md §6.3)"
            )
        return None
    if name in spec.values and name not in CONTEXT:
        return _check_ref(spec, spec.values[name].source, scope)
    if name in CONTEXT:
        if name == "record" and spec.record is None and scope in SCOPES["referral"]:
            return "$record: there is no [record] table to embed"
        if name in SCOPES[scope]:
            return None
        return f"${name} cannot be used here; available: ${', $'.join(sorted(SCOPES[scope]))}"
    return (
        f"${name} is neither payload.<field>, a context name ({', '.join(sorted(CONTEXT))}) nor "
        "a [values] name"
    )


def payload_fields(spec: MappingFile) -> dict[str, str]:
    """Every payload field an identified document can carry → the first key naming it."""
    found: dict[str, str] = {}

    def visit(node: Node | None, where: str) -> None:
        if node is None:
            return
        for name, key in references(node):
            add(name, f"{where}.{key}" if key else where)

    def add(name: str, key: str) -> None:
        if name in spec.values and name not in CONTEXT:
            name = spec.values[name].source
        if name.startswith("payload."):
            found.setdefault(name.removeprefix("payload."), key)

    visit(spec.record, "record")
    for kind, document in spec.documents.items():
        if kind in ("referral", "update"):
            visit(document.body, f"documents.{kind}.body")
    for i, route in enumerate(spec.routes):
        for ref in route.when:
            add(ref, f"routes[{i}].when.{ref}")
        for kind, override in route.documents.items():
            if kind != "probe":
                visit(override.body, f"routes[{i}].documents.{kind}.body")
    return found


def check_policy(spec: MappingFile, policy: DepartmentPolicy) -> list[tuple[str, str]]:
    """Payload fields the mapping names that the department's policy never lets out: such a
    reference can never resolve, so it is a typo or a field the DPO has not listed."""
    listed = {rule.field for purpose in policy.purposes.values() for rule in purpose.allow}
    subforms = {field.split(".", 1)[0] for field in listed if "." in field}
    problems = []
    for field, key in payload_fields(spec).items():
        if field in listed or field in subforms or field == "case_code":
            continue
        problems.append(
            (
                key,
                f"payload.{field} is on no allow-list of config/policy/{policy.department}.toml, "
                "so it can never be carried: fix the spelling, or ask the data-protection officer "
                "to list it there",
            )
        )
    return problems
