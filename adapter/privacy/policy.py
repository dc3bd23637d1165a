"""The disclosure policy as data: TOML files a data-protection officer can read and review.

``config/policy/`` holds ``sensitivity.toml`` (field catalogue, S0-S3 map, suppression rules,
probe threshold) and one file per department (``health.toml``, ``police.toml``,
``birth_registration.toml``, ``courts.toml``; the file name is the department). Each department
file lists, per purpose, the fields that may leave and why (privacy.md §6.4). Anything not listed
never leaves: default deny, so a field Primero adds tomorrow stays inside until someone lists it.

The files are untrusted configuration: they are validated with pydantic, and cross-checked
(every listed field must be catalogued with a kind; Primero's record identifiers can never be
listed; a department keeps the never_kinds sensitivity.toml requires of it, e.g. birth
registration never receives protection concerns). Errors name the file, the
key and the fix, never a value.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapter.privacy._codec import DEPARTMENT_RE
from adapter.privacy.errors import PolicyFileError

Level = Literal["S0", "S1", "S2", "S3"]
LEVELS: tuple[Level, ...] = get_args(Level)
Kind = Literal[
    "identity",
    "identifier",
    "demographic",
    "address",
    "contact",
    "family",
    "concern",
    "incident",
    "perpetrator",
    "narrative",
    "free_text",
    "service",
    "clinical",
]
KINDS: tuple[str, ...] = get_args(Kind)
TEXT_KINDS = frozenset({"narrative", "free_text"})
Transform = Literal["as_is", "date", "year_month", "year", "age_band", "district", "province"]
Basis = Literal["consent", "mandatory_report", "risk_to_life", "court_order", "best_interests"]

SENSITIVITY_FILE = "sensitivity.toml"
# The payload key that carries the department's case code; no Primero field may take it.
CASE_CODE_KEY = "case_code"
# Primero's record identifiers and server bookkeeping (primero-api.md §4, §6): each is the same
# for every recipient, so listing one would let two departments join their records
# (privacy.md §6.1, §7 item 6). They can be neither catalogued nor allowed.
JOIN_KEYS = frozenset(
    {
        "id",
        "unique_identifier",
        "case_id",
        "case_id_display",
        "short_id",
        "unique_id",
        "created_at",
        "created_by",
        "last_updated_at",
        "last_updated_by",
        "posted_at",
        "owned_by",
        "owned_by_agency_id",
        "owned_by_groups",
        "assigned_user_names",
        "associated_user_names",
        "previously_owned_by",
        "record_state",
        "cpims_id",
        CASE_CODE_KEY,
    }
)
_FIELD_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$"
_TRANSFORM_KINDS: dict[str, frozenset[str]] = {
    "district": frozenset({"address", "incident"}),
    "province": frozenset({"address", "incident"}),
    "age_band": frozenset({"demographic"}),
}


_M = TypeVar("_M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldRule(_Strict):
    """One allowed field of one purpose: how it leaves, under which bases, and why."""

    field: str = Field(pattern=_FIELD_PATTERN)
    why: str = Field(min_length=3)
    transform: Transform = "as_is"
    # None: any basis the consent gate accepted. Otherwise only these (e.g. name: ["consent"]).
    bases: tuple[Basis, ...] | None = None
    # The highest case sensitivity at which this field may still leave.
    max_sensitivity: Level = "S3"


class PurposePolicy(_Strict):
    description: str = Field(min_length=3)
    allow: tuple[FieldRule, ...] = ()


class DepartmentPolicy(_Strict):
    """One department file."""

    department: str
    title: str = Field(min_length=3)
    # Primero service types this department provides: only those services_section rows reach
    # it and only those services appear in its capacity probes.
    services: tuple[str, ...] = ()
    # Kinds of field this department never receives, whatever a purpose lists.
    never_kinds: tuple[Kind, ...] = ()
    purposes: dict[str, PurposePolicy] = Field(min_length=1)

    def rule(self, purpose: str, field: str) -> FieldRule | None:
        """The allow rule for ``field`` under ``purpose``, None when it is not listed."""
        policy = self.purposes.get(purpose)
        if policy is None:
            return None
        for rule in policy.allow:
            if rule.field == field:
                return rule
        return None


class SuppressionException(_Strict):
    department: str
    fields: tuple[str, ...] = Field(min_length=1)
    bases: tuple[Basis, ...] = Field(min_length=1)
    why: str = Field(min_length=3)


class Suppression(_Strict):
    """What a sensitivity level removes before the allow-list is consulted (privacy.md §6.5)."""

    why: str = ""
    # When set, only these kinds survive at this level (a whitelist); None keeps every kind.
    keep_kinds: tuple[Kind, ...] | None = None
    withhold_kinds: tuple[Kind, ...] = ()
    exceptions: tuple[SuppressionException, ...] = ()
    # Identified disclosures at this level need a second person's recorded approval.
    two_person_approval: bool = False


class ProbePolicy(_Strict):
    # A probe's (district, age band, sex) must match at least k cases, else it is coarsened.
    k: int = Field(5, ge=2, le=1000)


class SensitivityPolicy(_Strict):
    """``sensitivity.toml``."""

    concerns: dict[Level, tuple[str, ...]]
    unknown_concern: Level = "S3"
    no_concern: Level = "S0"
    modules: dict[str, Level] = {}
    fields: dict[Kind, tuple[str, ...]]
    suppression: dict[Level, Suppression] = {}
    probe: ProbePolicy = Field(default_factory=lambda: ProbePolicy(k=5))
    # Kinds a department is never sent that its own file may not drop (department → kinds):
    # its never_kinds must list them, so removing one takes an edit to both files.
    never_kinds: dict[str, tuple[Kind, ...]] = {}


@dataclass(frozen=True)
class PolicySet:
    """Every policy file of one directory, validated and cross-checked."""

    source: Path
    sensitivity: SensitivityPolicy
    departments: Mapping[str, DepartmentPolicy]
    field_kinds: Mapping[str, str]
    concern_levels: Mapping[str, Level]

    @classmethod
    def load(cls, policy_dir: str | Path) -> PolicySet:
        """Read and validate ``policy_dir``. Raises PolicyFileError naming file, key and fix."""
        root = Path(policy_dir)
        if not root.is_dir():
            raise PolicyFileError(
                f"{root}: no such policy directory. Set privacy.policy_dir; the defaults live in "
                "config/policy/."
            )
        sens_path = root / SENSITIVITY_FILE
        sensitivity = _parse(sens_path, SensitivityPolicy)
        departments: dict[str, DepartmentPolicy] = {}
        for path in sorted(root.glob("*.toml")):
            if path.name == SENSITIVITY_FILE:
                continue
            departments[path.stem] = _parse(path, DepartmentPolicy)
        if not departments:
            raise PolicyFileError(
                f"{root}: no department files. Add one <department>.toml per department "
                "(see config/policy/health.toml)."
            )
        field_kinds = _field_kinds(sens_path, sensitivity)
        concern_levels = _concern_levels(sens_path, sensitivity)
        _check_suppression(sens_path, sensitivity, field_kinds, departments)
        for name in sensitivity.never_kinds:
            if name not in departments:
                raise _fail(sens_path, f"never_kinds.{name}", f"no department file '{name}.toml'")
        for path_stem, dept in departments.items():
            required = sensitivity.never_kinds.get(path_stem, ())
            _check_department(root / f"{path_stem}.toml", path_stem, dept, field_kinds, required)
        return cls(root, sensitivity, departments, field_kinds, concern_levels)

    def department(self, name: str) -> DepartmentPolicy | None:
        return self.departments.get(name)


# --- parsing ---------------------------------------------------------------------------------


def _parse(path: Path, model: type[_M]) -> _M:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyFileError(
            f"{path}: missing. Copy it from config/policy/ in the adapter's repository."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFileError(f"{path}: not valid TOML ({exc}). Fix the syntax.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError(f"{path}: cannot be read ({type(exc).__name__}).") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PolicyFileError(_explain(path, model, exc)) from None


def _explain(path: Path, model: type[BaseModel], exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        key = _loc(err["loc"])
        if err["type"] == "extra_forbidden":
            fix = "unknown key: fix its spelling or remove it"
        elif err["type"] == "missing":
            fix = "required: add it"
        elif err["type"] == "string_pattern_mismatch":
            fix = "use lowercase letters, digits and '_' (one '.' for a subform field)"
        else:
            fix = err["msg"]  # pydantic's messages name the expected type or values, not input
        lines.append(f"{path}: key '{key}': {fix}.")
    return "\n".join(lines)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fail(path: Path, key: str, message: str) -> PolicyFileError:
    return PolicyFileError(f"{path}: key '{key}': {message}.")


# --- cross-checks ------------------------------------------------------------------------------


def _field_kinds(path: Path, sens: SensitivityPolicy) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for kind, fields in sens.fields.items():
        for i, field in enumerate(fields):
            key = f"fields.{kind}[{i}]"
            if field in kinds:
                raise _fail(path, key, f"field '{field}' is already listed as {kinds[field]}")
            if _is_join_key(field):
                raise _fail(
                    path,
                    key,
                    f"'{field}' is a Primero record identifier, a join key between departments "
                    "(privacy.md §6.1): remove it; departments get the case code instead",
                )
            kinds[field] = kind
    return kinds


def _concern_levels(path: Path, sens: SensitivityPolicy) -> dict[str, Level]:
    levels: dict[str, Level] = {}
    for level, concerns in sens.concerns.items():
        for i, concern in enumerate(concerns):
            if concern in levels:
                raise _fail(
                    path,
                    f"concerns.{level}[{i}]",
                    f"concern '{concern}' is already mapped to {levels[concern]}: keep one",
                )
            levels[concern] = level
    return levels


def _check_suppression(
    path: Path,
    sens: SensitivityPolicy,
    kinds: Mapping[str, str],
    departments: Mapping[str, DepartmentPolicy],
) -> None:
    s3 = sens.suppression.get("S3")
    if s3 is None or s3.keep_kinds is None:
        raise _fail(
            path,
            "suppression.S3.keep_kinds",
            "S3 needs a whitelist of kinds (privacy.md §6.5: only service codes leave); "
            'add keep_kinds = ["service"]',
        )
    for level, rule in sens.suppression.items():
        if level == "S3" and TEXT_KINDS & set(rule.keep_kinds or ()):
            raise _fail(
                path,
                "suppression.S3.keep_kinds",
                "narrative and free text never leave at S3 (privacy.md §6.5): remove them",
            )
        for i, exc in enumerate(rule.exceptions):
            key = f"suppression.{level}.exceptions[{i}]"
            if exc.department not in departments:
                raise _fail(
                    path, f"{key}.department", f"no department file '{exc.department}.toml'"
                )
            for field in exc.fields:
                if field not in kinds:
                    raise _fail(path, f"{key}.fields", f"field '{field}' is not in [fields]")
                if kinds[field] in TEXT_KINDS:
                    raise _fail(
                        path,
                        f"{key}.fields",
                        f"'{field}' is {kinds[field]}: text may not be excepted from suppression",
                    )


def _check_department(
    path: Path,
    stem: str,
    dept: DepartmentPolicy,
    kinds: Mapping[str, str],
    required_never: Sequence[str] = (),
) -> None:
    if dept.department != stem or not DEPARTMENT_RE.match(stem):
        raise _fail(
            path,
            "department",
            f"must equal the file name '{stem}' (lowercase letters, digits, '_'; it is part of "
            "every case code)",
        )
    # Issue 3: some kinds are never a department's to receive (birth registration never learns
    # protection concerns); sensitivity.toml [never_kinds] names them, and the department's
    # own file cannot drop them.
    missing = [kind for kind in required_never if kind not in dept.never_kinds]
    if missing:
        listed = ", ".join(f'"{kind}"' for kind in missing)
        raise _fail(
            path,
            "never_kinds",
            f"must list {listed} in never_kinds (sensitivity.toml [never_kinds] requires it)",
        )
    for purpose, policy in dept.purposes.items():
        seen: set[str] = set()
        for i, rule in enumerate(policy.allow):
            key = f"purposes.{purpose}.allow[{i}].field"
            if rule.field in seen:
                raise _fail(path, key, f"field '{rule.field}' is listed twice: keep one")
            seen.add(rule.field)
            if _is_join_key(rule.field):
                raise _fail(
                    path,
                    key,
                    f"'{rule.field}' is a Primero record identifier (a join key between "
                    "departments, privacy.md §6.1): remove it; the case code replaces it",
                )
            kind = kinds.get(rule.field)
            if kind is None:
                raise _fail(
                    path,
                    key,
                    f"field '{rule.field}' is not in sensitivity.toml [fields]: add it under its "
                    "kind so sensitivity suppression knows what it is",
                )
            if kind in dept.never_kinds:
                raise _fail(path, key, f"'{rule.field}' is {kind}, which never_kinds forbids here")
            allowed = _TRANSFORM_KINDS.get(rule.transform)
            if allowed is not None and kind not in allowed:
                raise _fail(
                    path,
                    f"purposes.{purpose}.allow[{i}].transform",
                    f"'{rule.transform}' does not apply to a {kind} field",
                )


def _is_join_key(field: str) -> bool:
    return any(part in JOIN_KEYS for part in field.split("."))


def level_index(level: str) -> int:
    """0 for S0 … 3 for S3."""
    return ("S0", "S1", "S2", "S3").index(level)
