"""Templates of a mapping file: the shape of a department's JSON, with references (pure; no I/O).

A template is plain TOML data. A string that starts with ``$`` is a *reference* — to the
disclosure payload (``$payload.sex``, ``$payload.services_section.service_type``), to a fact of
the referral (``$case_code``, ``$referral_key``, ``$urgency``, …) or to a named derived value
of the file's ``[values]`` table. Everything else is a literal (``$$`` writes a literal ``$``).

Rendering never invents data: a reference that resolves to nothing (the policy withheld the
field) is left out, and an object or list whose references *all* resolved to nothing is left
out too — so ``{attribute = "given_name", value = "$payload.name_first"}`` disappears whole
when the name was withheld instead of going out half-empty.

Status answers are read with *formats*: ``"{station}/{year}/{serial}"``, where each ``{…}`` is
a dotted path into the department's JSON item.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Final

# A reference name: "payload.<field>" or "payload.<subform>.<field>", a context name, or a
# [values] name. Lowercase like Primero's field names and the policy files (policy.py).
REF_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){0,2}$"
_REF = re.compile(REF_PATTERN)
_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class _Absent:
    """Nothing to carry: the field is not in the payload (withheld or empty)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Final = _Absent()
Resolver = Callable[[str], Any]


@dataclass(frozen=True)
class Ref:
    """``$name``: a value looked up when the document is built."""

    name: str


@dataclass(frozen=True)
class Literal:
    """A value written in the mapping file itself."""

    value: Any


@dataclass(frozen=True)
class Obj:
    """A JSON object; ``has_refs`` when any reference sits below it."""

    items: tuple[tuple[str, Node], ...]
    has_refs: bool


@dataclass(frozen=True)
class Seq:
    """A JSON array; ``has_refs`` when any reference sits below it."""

    items: tuple[Node, ...]
    has_refs: bool


Node = Ref | Literal | Obj | Seq


class TemplateError(ValueError):
    """A template value cannot be used; ``key`` is where in the template, dotted."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"at '{key}': {message}" if key else message)
        self.key = key
        self.problem = message


def parse_template(value: Any, key: str = "") -> Node:
    """Turn TOML data into a template (raises TemplateError naming the key)."""
    if isinstance(value, str):
        if value.startswith("$$"):
            return Literal(value[1:])
        if value.startswith("$"):
            name = value[1:]
            if not _REF.match(name):
                raise TemplateError(
                    key,
                    f"'{value}' is not a reference: write $payload.<field>, "
                    "$payload.<subform>.<field>, a context name such as $case_code, or a "
                    "[values] name (lowercase letters, digits, '_'); $$ writes a literal $",
                )
            return Ref(name)
        return Literal(value)
    if isinstance(value, bool | int | float):
        return Literal(value)
    if isinstance(value, datetime | date | time):
        return Literal(value.isoformat())  # TOML dates leave as ISO 8601 text
    if isinstance(value, Mapping):
        items = []
        for sub, child in value.items():
            if not isinstance(sub, str) or not sub:
                raise TemplateError(key, "object keys must be non-empty text")
            items.append((sub, parse_template(child, f"{key}.{sub}" if key else sub)))
        return Obj(tuple(items), any(_has_refs(node) for _, node in items))
    if isinstance(value, list):
        nodes = tuple(parse_template(child, f"{key}[{i}]") for i, child in enumerate(value))
        return Seq(nodes, any(_has_refs(node) for node in nodes))
    raise TemplateError(key, f"a {type(value).__name__} cannot appear in a template")


def _has_refs(node: Node) -> bool:
    return isinstance(node, Ref) or (isinstance(node, Obj | Seq) and node.has_refs)


def references(node: Node, key: str = "") -> list[tuple[str, str]]:
    """Every ``(reference name, template key)`` in a template, in order."""
    if isinstance(node, Ref):
        return [(node.name, key)]
    if isinstance(node, Obj):
        return [ref for sub, child in node.items for ref in references(child, _join(key, sub))]
    if isinstance(node, Seq):
        return [
            ref for i, child in enumerate(node.items) for ref in references(child, f"{key}[{i}]")
        ]
    return []


def literals(node: Node) -> list[Any]:
    """Every literal value in a template (the values a mapping itself may add)."""
    if isinstance(node, Literal):
        return [node.value]
    if isinstance(node, Obj):
        return [value for _, child in node.items for value in literals(child)]
    if isinstance(node, Seq):
        return [value for child in node.items for value in literals(child)]
    return []


def render(node: Node, resolve: Resolver) -> Any:
    """The JSON value of ``node``; ABSENT when it carries nothing (see the module docstring)."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Ref):
        return resolve(node.name)
    if isinstance(node, Obj):
        out: dict[str, Any] = {}
        carried = False
        for sub, child in node.items:
            value = render(child, resolve)
            if value is ABSENT:
                continue
            out[sub] = value
            carried = carried or _has_refs(child)
        return out if carried or not node.has_refs else ABSENT
    items: list[Any] = []
    carried = False
    for child in node.items:
        value = render(child, resolve)
        if value is ABSENT:
            continue
        items.append(value)
        carried = carried or _has_refs(child)
    return items if carried or not node.has_refs else ABSENT


def is_empty(value: Any) -> bool:
    """Primero's and the policy's idea of "no value" (disclosure.py ``_empty``)."""
    return value is None or value == "" or value == [] or value == {}


def text_of(value: Any) -> str | None:
    """A scalar as the text a value map or a format sees; None for anything else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def dig(data: Any, path: str) -> Any:
    """The value at a dotted ``path`` of nested objects; None when any step is missing."""
    current = data
    for part in path.split(".") if path else []:
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


@dataclass(frozen=True)
class Format:
    """``"{station}/{year}/{serial}"``: text built from fields of a department's JSON item.

    Renders to None when any field is missing or empty, so a half-built reference never
    reaches Primero. Lists are joined with ", ", booleans read "true"/"false".
    """

    template: str
    # (literal text, field path or None), as string.Formatter parses the template.
    parts: tuple[tuple[str, str | None], ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.parts if name is not None)

    @classmethod
    def parse(cls, template: str) -> Format:
        parts: list[tuple[str, str | None]] = []
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ValueError(f"'{template}' is not a valid format ({exc}); use {{field}}") from None
        for literal, name, spec, conversion in parsed:
            if name is not None and (spec or conversion):
                raise ValueError(
                    f"'{template}': write plain {{field}} placeholders, without ':' or '!'"
                )
            if name is not None and not _PATH.match(name):
                raise ValueError(
                    f"'{template}': '{{{name}}}' must name a field, e.g. {{station}} or "
                    "{investigating_officer.rank}"
                )
            parts.append((literal, name))
        return cls(template, tuple(parts))

    def render(self, item: Any) -> str | None:
        out: list[str] = []
        for literal, name in self.parts:
            out.append(literal)
            if name is None:
                continue
            text = _format_text(dig(item, name))
            if text is None:
                return None
            out.append(text)
        return "".join(out)


def _format_text(value: Any) -> str | None:
    if isinstance(value, list):
        texts = [text_of(v) for v in value]
        parts = [t for t in texts if t]
        return ", ".join(parts) if parts else None
    text = text_of(value)
    return text if text else None


def _join(key: str, sub: str) -> str:
    return f"{key}.{sub}" if key else sub


def first_or_all(values: Sequence[Any], pick: str) -> Any:
    """``pick = "first"`` takes the first of several values; ``"all"`` keeps the list."""
    if not values:
        return ABSENT
    return values[0] if pick == "first" else list(values)
