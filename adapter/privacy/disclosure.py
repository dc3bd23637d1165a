"""The disclosure decision: what of a Primero case may go to a department, for a purpose, now.

This is the one call the sync engine makes before anything leaves (STYLE.md data flow:
Primero → **policy** → pseudonymise → map → outbox)::

    policy = DisclosurePolicy.load("config/policy", gazetteer=gazetteer)
    d = policy.decide(case, "health", "referral", Stage.IDENTIFIED,
                      codes=keyring, overrides=overrides, now=now)
    if d.allowed:
        outbox.put(d.payload)        # only allow-listed fields, case code instead of any id

Pure: no I/O, no clock unless ``now`` is omitted. The order of checks is privacy.md §6.3/§6.5:

1. a department and purpose with a policy file (otherwise default deny);
2. the consent gate (Primero flags or an adapter override);
3. the stage: a probe carries only coarse, k-anonymous fields; identified data only after the
   receiver accepted the probe;
4. sensitivity suppression (S3: only service codes; name to police only under consent or a
   mandatory report; a second person's approval), *before*
5. the allow-list of the department and purpose (a field not listed never leaves), then each
   rule's basis and sensitivity limits and its transform (date → year, location → district);
6. guards over the finished payload: at S3 no 12-character run of any narrative or free text,
   no Primero record identifier anywhere, no protection-concern code to a department that may
   never receive one (birth registration).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from adapter.clock import utcnow
from adapter.errors import PolicyViolation
from adapter.privacy.consent import ConsentDecision, ConsentOverride, check_consent
from adapter.privacy.errors import CodeRefused
from adapter.privacy.policy import (
    CASE_CODE_KEY,
    JOIN_KEYS,
    TEXT_KINDS,
    DepartmentPolicy,
    FieldRule,
    PolicySet,
    level_index,
)
from adapter.privacy.probe import (
    PROBE_KEYS,
    Gazetteer,
    Population,
    age_band,
    age_years,
    build_probe,
    parse_date,
)
from adapter.privacy.sensitivity import Sensitivity, classify, protection_concerns

MALFORMED_FIELD = "<malformed field name>"
_FIELD_NAME = re.compile(r"[A-Za-z0-9_]{1,100}")
NARRATIVE_WINDOW = 12  # privacy.md §6.5/§7 item 20: no 12-character run of free text may leave
_IDENTIFIER_FIELDS = (
    "id",
    "unique_identifier",
    "case_id",
    "case_id_display",
    "short_id",
    "cpims_id",
)
# Verdicts remembered per policy (``_field_verdict``): a verdict depends only on the field path,
# department, purpose, sensitivity level and bases, so a sync page repeats the same few hundred.
# Capped because field names come from Primero: a flood of made-up names must not grow memory.
_VERDICTS_KEPT = 20_000


AWAITING_APPROVAL = "s3_approval"
AWAITING_OVERRIDE = "consent_or_override"


class Stage(StrEnum):
    """The two stages of a referral (issue 3 item 3)."""

    PROBE = "probe"  # anonymous capacity question, before the department accepts
    IDENTIFIED = "identified"  # only after the department accepted the probe


class CaseCoder(Protocol):
    """Anything that turns a Primero case id into a department's case code (``KeyRing``)."""

    def case_code(self, case_id: str, department: str) -> str: ...


@dataclass(frozen=True)
class Disclosure:
    """The decision and, when allowed, the payload to send.

    ``payload`` holds only allow-listed fields after suppression and transforms, plus
    ``case_code`` (identified stage) or the probe's own keys. ``field_reasons`` explains every
    present field, sent or withheld, by name; no value appears in any reason. ``consent_basis``
    is every basis the disclosure rests on, joined by "+" ("consent", "mandatory_report",
    "consent+court_order"), or "none" when refused.
    """

    allowed: bool
    reason: str
    department: str
    purpose: str
    stage: Stage
    payload: dict[str, Any]
    fields_out: tuple[str, ...]
    fields_withheld: tuple[str, ...]
    sensitivity: str
    consent_basis: str
    sensitivity_reason: str = ""
    field_reasons: Mapping[str, str] = field(default_factory=dict)
    case_code: str | None = None
    consent_withdrawn: bool = False
    override_id: int | None = None
    # Field names the final guard caught on their way out (then ``allowed`` is False): the
    # gate records an ``allow_list_violation`` security event for them.
    allow_list_violation: tuple[str, ...] = ()
    # A refusal that a person's decision would lift (privacy.md §6.3, §6.5): AWAITING_APPROVAL
    # (an S3 case needs a second person's approval) or AWAITING_OVERRIDE (no consent: consent
    # in Primero, or a supervisor's override). "" for every other outcome.
    awaiting: str = ""
    # Who approved what this disclosure rests on (overrides and approvals; never a reason).
    approvals: tuple[Mapping[str, Any], ...] = ()

    def __iter__(self) -> Iterator[Any]:
        # ``ok, reason = policy.decide(...)``, like the consent gate and responses' matchers.
        yield self.allowed
        yield self.reason

    def audit_entry(self) -> dict[str, Any]:
        """The audit-log entry for this decision: names and reasons, never a value."""
        entry: dict[str, Any] = {
            "event": "disclosure" if self.allowed else "refusal",
            "allowed": self.allowed,
            "department": self.department,
            "purpose": self.purpose,
            "stage": str(self.stage),
            "case_code": self.case_code if self.allowed else None,
            "fields": list(self.fields_out),
            "withheld": list(self.fields_withheld),
            "sensitivity": self.sensitivity,
            "consent_basis": self.consent_basis,
            "reason": self.reason,
            "override_id": self.override_id,
        }
        if self.approvals:
            # Who approved what this disclosure rests on (privacy.md §6.3): names, bases and
            # legal references, one per approval, never a reason.
            entry["approved_by"] = [str(a["approved_by"]) for a in self.approvals]
            entry["approval_bases"] = [str(a["consent_basis"]) for a in self.approvals]
            entry["legal_reference"] = [str(a["legal_reference"]) for a in self.approvals]
            entry["decision_refs"] = [str(a["ref"]) for a in self.approvals]
        return entry


class DisclosurePolicy:
    """The loaded policy files plus the gazetteer; ``decide`` is the whole public behaviour."""

    def __init__(self, policy: PolicySet, *, gazetteer: Gazetteer | None = None) -> None:
        self.policy = policy
        self.gazetteer = gazetteer
        # The policy files are frozen models loaded once, so a verdict never goes stale; a third
        # of ``decide`` was recomputing them for every field of every case (BENCHMARKS.md).
        self._verdicts: dict[tuple[str, str, str, str, tuple[str, ...]], FieldRule | str] = {}

    @classmethod
    def load(
        cls, policy_dir: str | Path, *, gazetteer: Gazetteer | None = None
    ) -> DisclosurePolicy:
        """Load and validate ``policy_dir`` (raises PolicyFileError)."""
        return cls(PolicySet.load(policy_dir), gazetteer=gazetteer)

    @property
    def departments(self) -> list[str]:
        return sorted(self.policy.departments)

    def purposes(self, department: str) -> list[str]:
        dept = self.policy.department(department)
        return sorted(dept.purposes) if dept else []

    def classify(self, case: Mapping[str, Any]) -> Sensitivity:
        """The case's sensitivity level S0-S3 and why."""
        return classify(case, self.policy)

    def decide(
        self,
        case: Mapping[str, Any],
        department: str,
        purpose: str,
        stage: Stage,
        *,
        codes: CaseCoder | None = None,
        overrides: Iterable[ConsentOverride] = (),
        referral: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        population: Population | None = None,
    ) -> Disclosure:
        """Decide one disclosure; see the module docstring for the order of the checks.

        ``codes`` is required for the identified stage. ``overrides`` are the adapter's
        recorded overrides for this case; ``referral`` the Primero referral, if any;
        ``population`` the counts that keep probes k-anonymous.
        """
        now = now or utcnow()
        stage = Stage(stage)
        present = _present_fields(case)
        sens = classify(case, self.policy)
        base = _Draft(department, purpose, stage, sens, present)
        dept = self.policy.department(department)
        if dept is None or purpose not in dept.purposes:
            return base.refuse(
                f"no policy for department '{department}' and purpose '{purpose}' "
                "(config/policy/): nothing may be sent (default deny)"
            )
        consent = check_consent(
            case, department, purpose, now=now, overrides=overrides, referral=referral
        )
        base.consent = consent
        if not consent.allowed:
            return base.refuse(consent.reason, awaiting=AWAITING_OVERRIDE)
        if stage is Stage.PROBE:
            return _final_guard(self._probe(case, dept, base, now, population), dept)
        return _final_guard(self._identified(case, dept, base, codes, now), dept)

    # -- stages ---------------------------------------------------------------------------

    def _probe(
        self,
        case: Mapping[str, Any],
        dept: DepartmentPolicy,
        base: _Draft,
        now: datetime,
        population: Population | None,
    ) -> Disclosure:
        probe = build_probe(
            case,
            dept,
            k=self.policy.sensitivity.probe.k,
            now=now,
            gazetteer=self.gazetteer,
            population=population,
        )
        if probe is None:
            return base.refuse(
                f"the case asks for no service that '{dept.department}' provides (services in "
                f"{dept.department}.toml): nothing to probe"
            )
        reasons = {f: "probe: coarsened to k-anonymous values" for f in probe.source_fields}
        return base.allow(
            probe.payload,
            reasons,
            f"{base.consent_reason}; anonymous capacity probe ({probe.coarsening})",
        )

    def _identified(
        self,
        case: Mapping[str, Any],
        dept: DepartmentPolicy,
        base: _Draft,
        codes: CaseCoder | None,
        now: datetime,
    ) -> Disclosure:
        level = base.sens.level
        suppression = self.policy.sensitivity.suppression.get(level)
        if suppression and suppression.two_person_approval and not base.consent_approved:
            return base.refuse(
                f"{base.consent_reason}; but a {level} case needs a second person's approval for "
                "every identified disclosure (privacy.md §6.5): an approver records an "
                "s3_approval decision for this case and department",
                awaiting=AWAITING_APPROVAL,
            )
        if codes is None:
            raise PolicyViolation("an identified disclosure needs codes= (the KeyRing).")
        case_id = case.get("id")
        try:
            code = codes.case_code(str(case_id), dept.department)
        except CodeRefused:
            return base.refuse("the case has no valid Primero id (UUID) to derive a case code from")

        reasons: dict[str, str] = {}
        sent: dict[str, list[tuple[int | None, Any]]] = {}
        for path, values in base.present.items():
            verdict = self._field_verdict(path, dept, base)
            if isinstance(verdict, str):
                reasons[path] = verdict
                continue
            rule = verdict
            out: list[tuple[int | None, Any]] = []
            failure = ""
            for row, value in values:
                if row is not None and not _row_for_department(case, path, row, dept):
                    continue
                reduced, failure = self._transform(rule, path, value, now)
                if failure:
                    break
                out.append((row, reduced))
            if failure:
                reasons[path] = f"withheld: {failure}"
            elif not out:
                reasons[path] = "withheld: only rows for other departments' services"
            else:
                sent[path] = out
                note = "" if rule.transform == "as_is" else f" (sent as {rule.transform})"
                reasons[path] = f"sent: {rule.why}{note}"

        for path, why in _guards(case, sent, base, dept, self.policy.field_kinds):
            del sent[path]
            reasons[path] = f"withheld: {why}"
        payload: dict[str, Any] = {CASE_CODE_KEY: code}
        payload.update(_assemble(case, sent))
        reasons[CASE_CODE_KEY] = "sent: the department's case code replaces every Primero id"
        return base.allow(payload, reasons, base.consent_reason, case_code=code)

    def _field_verdict(self, path: str, dept: DepartmentPolicy, base: _Draft) -> FieldRule | str:
        """The allow rule for ``path``, or why it is withheld (suppression first, §6.5)."""
        key = (path, dept.department, base.purpose, base.sens.level, base.bases)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdict(path, dept, base)
            if len(self._verdicts) < _VERDICTS_KEPT:
                self._verdicts[key] = verdict
        return verdict

    def _verdict(self, path: str, dept: DepartmentPolicy, base: _Draft) -> FieldRule | str:
        """:meth:`_field_verdict` computed from the policy files."""
        if any(part in JOIN_KEYS for part in path.split(".")):
            return (
                "withheld: a Primero record identifier is a join key between departments; the "
                "case code replaces it (privacy.md §6.1)"
            )
        kind = self.policy.field_kinds.get(path)
        level = base.sens.level
        suppression = self.policy.sensitivity.suppression.get(level)
        excepted = suppression is not None and any(
            exc.department == dept.department
            and path in exc.fields
            and bool(set(base.bases) & set(exc.bases))
            for exc in suppression.exceptions
        )
        # The S3 text rule is the adapter's, not the file's: it holds even if a file says else.
        if level == "S3" and (kind is None or kind in TEXT_KINDS):
            what = "uncatalogued" if kind is None else kind
            return f"withheld: {what} fields never leave at S3 (privacy.md §6.5)"
        if suppression is not None and not excepted:
            if suppression.keep_kinds is not None and kind not in suppression.keep_kinds:
                kept = ", ".join(suppression.keep_kinds) or "nothing"
                return f"withheld: at {level} only {kept} fields leave (sensitivity.toml)"
            if kind in suppression.withhold_kinds:
                return f"withheld: {kind} fields are suppressed at {level} (sensitivity.toml)"
        if kind is not None and kind in dept.never_kinds:
            return f"withheld: {dept.department} never receives {kind} fields"
        rule = dept.rule(base.purpose, path)
        if rule is None:
            if kind is None:
                return (
                    "withheld: not catalogued and not on the allow-list (default deny: a new "
                    "Primero field stays inside until someone lists it)"
                )
            return f"withheld: not on the allow-list of {dept.department}/{base.purpose}"
        if level_index(level) > level_index(rule.max_sensitivity):
            return f"withheld: allowed only up to {rule.max_sensitivity}; this case is {level}"
        if rule.bases is not None and not set(base.bases) & set(rule.bases):
            return (
                f"withheld: allowed only under {' or '.join(rule.bases)}; this disclosure "
                f"rests on {' and '.join(base.bases)}"
            )
        return rule

    def _transform(self, rule: FieldRule, path: str, value: Any, now: datetime) -> tuple[Any, str]:
        """The value as it leaves, or ``(None, why it cannot)``."""
        if not _is_plain(value):
            return None, "a nested structure; list its parts individually"
        kind = self.policy.field_kinds.get(path)
        if kind == "identity" and isinstance(value, str) and value and set(value) <= {"*"}:
            return None, "Primero masks this name (hidden_name)"
        transform = rule.transform
        if transform == "as_is":
            return value, ""
        if transform in ("date", "year_month", "year"):
            parsed = parse_date(value)
            if parsed is None:
                return None, f"not a date, cannot reduce to {transform}"
            text = parsed.isoformat()
            return {"date": text, "year_month": text[:7], "year": text[:4]}[transform], ""
        if transform == "age_band":
            years = age_years(
                {"date_of_birth": value} if isinstance(value, str) else {"age": value}, now.date()
            )
            band = age_band(years)
            return (band, "") if band else (None, "no usable age or date of birth")
        if transform in ("district", "province"):
            if self.gazetteer is None:
                return None, f"no gazetteer configured to reduce a location to its {transform}"
            place = getattr(self.gazetteer, transform)(value)
            return (place, "") if place else (None, f"location has no known {transform}")
        return None, f"unknown transform {transform}"


# --- helpers -----------------------------------------------------------------------------------


@dataclass
class _Draft:
    """What every outcome of one decision shares."""

    department: str
    purpose: str
    stage: Stage
    sens: Sensitivity
    present: dict[str, list[tuple[int | None, Any]]]
    consent: ConsentDecision | None = None

    @property
    def bases(self) -> tuple[str, ...]:
        return self.consent.bases if self.consent else ()

    @property
    def consent_reason(self) -> str:
        return self.consent.reason if self.consent else ""

    @property
    def consent_approved(self) -> bool:
        return bool(self.consent and self.consent.approved)

    def refuse(self, reason: str, *, awaiting: str = "") -> Disclosure:
        withheld = tuple(sorted(self.present))
        return Disclosure(
            allowed=False,
            reason=reason,
            department=self.department,
            purpose=self.purpose,
            stage=self.stage,
            payload={},
            fields_out=(),
            fields_withheld=withheld,
            sensitivity=self.sens.level,
            consent_basis="none",
            sensitivity_reason=self.sens.reason,
            field_reasons={f: "withheld: nothing is sent (disclosure refused)" for f in withheld},
            consent_withdrawn=bool(self.consent and self.consent.withdrawn),
            awaiting=awaiting,
        )

    def allow(
        self,
        payload: dict[str, Any],
        reasons: dict[str, str],
        reason: str,
        *,
        case_code: str | None = None,
    ) -> Disclosure:
        out = tuple(
            sorted(f for f in self.present if reasons.get(f, "").startswith(("sent", "probe")))
        )
        withheld = tuple(sorted(f for f in self.present if f not in out))
        for f in withheld:
            reasons.setdefault(f, "withheld: not used by a capacity probe")
        assert self.consent is not None
        return Disclosure(
            allowed=True,
            reason=reason,
            department=self.department,
            purpose=self.purpose,
            stage=self.stage,
            payload=payload,
            fields_out=out,
            fields_withheld=withheld,
            sensitivity=self.sens.level,
            consent_basis="+".join(self.consent.bases),
            sensitivity_reason=self.sens.reason,
            field_reasons=reasons,
            case_code=case_code,
            consent_withdrawn=self.consent.withdrawn,
            override_id=self.consent.override_id,
            approvals=tuple(_approval(o) for o in self.consent.used),
        )


def _approval(override: ConsentOverride) -> dict[str, Any]:
    """The audit's record of one override or approval: who, basis, legal reference."""
    return {
        "source": override.source,
        "ref": override.label,
        "consent_basis": str(override.basis),
        "legal_reference": override.legal_reference,
        "approved_by": override.approved_by,
        "expires_at": override.expires_at.isoformat(),
    }


def _present_fields(case: Mapping[str, Any]) -> dict[str, list[tuple[int | None, Any]]]:
    """Every non-empty field as ``path → [(row, value)]``; subform fields are ``form.field``
    with their row index, a nested mapping counts as a one-row subform."""
    found: dict[str, list[tuple[int | None, Any]]] = {}
    for key, value in case.items():
        if not isinstance(key, str) or not _FIELD_NAME.fullmatch(key):
            # A name with a dot could pose as a subform path ("services_section.x") and skip
            # the row filter; it is withheld under a placeholder, never echoed (it is input).
            found.setdefault(MALFORMED_FIELD, []).append((None, value))
            continue
        if type(value) in _SCALARS:
            # Most of a case: a plain value is neither a subform nor, unless "" or None,
            # empty (``_empty``) — decided without the slower Mapping check (BENCHMARKS.md).
            if value is not None and value != "":
                found.setdefault(key, []).append((None, value))
            continue
        rows: list[Any] | None = None
        if isinstance(value, Mapping):
            rows = [value]
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            rows = value
        if rows is None:
            if not _empty(value):
                found.setdefault(key, []).append((None, value))
            continue
        for i, row in enumerate(rows):
            for sub, subvalue in row.items():
                if not isinstance(sub, str) or not _FIELD_NAME.fullmatch(sub):
                    found.setdefault(MALFORMED_FIELD, []).append((None, subvalue))
                elif not _empty(subvalue):
                    found.setdefault(f"{key}.{sub}", []).append((i, subvalue))
    return found


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _is_plain(value: Any) -> bool:
    scalar = (str, int, float, bool)
    return isinstance(value, scalar) or (
        isinstance(value, list) and all(isinstance(v, scalar) for v in value)
    )


def _row_for_department(
    case: Mapping[str, Any], path: str, row: int, dept: DepartmentPolicy
) -> bool:
    # A services_section row names one service; a department sees only its own services' rows,
    # never (say) the HIV clinic referral when police ask (privacy.md §6.4 "need to know").
    form = path.split(".", 1)[0]
    if form != "services_section":
        return True
    rows = case.get(form)
    if not isinstance(rows, list) or row >= len(rows) or not isinstance(rows[row], Mapping):
        return False
    return rows[row].get("service_type") in dept.services


def _assemble(
    case: Mapping[str, Any], sent: Mapping[str, list[tuple[int | None, Any]]]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    subforms: dict[str, dict[int, dict[str, Any]]] = {}
    for path, values in sent.items():
        if "." not in path:
            out[path] = values[0][1]
            continue
        form, sub = path.split(".", 1)
        for row, value in values:
            subforms.setdefault(form, {}).setdefault(row or 0, {})[sub] = value
    for form, rows in subforms.items():
        ordered = [rows[i] for i in sorted(rows)]
        out[form] = ordered[0] if isinstance(case.get(form), Mapping) else ordered
    return out


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _guards(
    case: Mapping[str, Any],
    sent: Mapping[str, list[tuple[int | None, Any]]],
    base: _Draft,
    dept: DepartmentPolicy,
    kinds: Mapping[str, str],
) -> list[tuple[str, str]]:
    """Fields to pull from a finished payload, with the reason: defence in depth behind the
    rules above, each a property the tests assert."""
    pulled: list[tuple[str, str]] = []
    windows: set[str] = set()
    if base.sens.level == "S3":
        for path, values in base.present.items():
            kind = kinds.get(path)
            if kind is None or kind in TEXT_KINDS:
                for _, value in values:
                    for text in _strings(value):
                        windows.update(_windows(text))
    identifiers = {
        str(case[f]) for f in _IDENTIFIER_FIELDS if isinstance(case.get(f), str | int)
    } | {
        str(v)
        for path, values in base.present.items()
        if path.endswith(".unique_id")
        for _, v in values
    }
    identifiers = {i for i in identifiers if len(i) >= 6}
    concerns = set(protection_concerns(case)) if "concern" in dept.never_kinds else set()
    for path, values in sent.items():
        texts = [t for _, v in values for t in _strings(v)]
        if windows and any(w in windows for t in texts for w in _windows(t)):
            pulled.append((path, "contains text from a narrative or free-text field (S3 scan)"))
        elif any(i in t for t in texts for i in identifiers):
            pulled.append((path, "contains a Primero record identifier (a join key)"))
        elif concerns and any(t in concerns for t in texts):
            pulled.append((path, f"a protection-concern code; {dept.department} never gets one"))
    return pulled


def _final_guard(decision: Disclosure, dept: DepartmentPolicy) -> Disclosure:
    """The last check before a payload can reach the outbox (privacy.md §6.7 "allow-list
    violations"): every field of the finished payload must be on the department's allow-list
    for the purpose (or be a probe key, or the case code), checked against the policy file
    itself rather than the steps that built the payload. Otherwise the whole disclosure is
    refused and marked, so the gate records a security event and an incident opens."""
    if not decision.allowed:
        return decision
    if decision.stage is Stage.PROBE:
        stray = sorted(key for key in decision.payload if key not in PROBE_KEYS)
    else:
        stray = sorted(
            path
            for path in _payload_paths(decision.payload)
            if path != CASE_CODE_KEY and dept.rule(decision.purpose, path) is None
        )
    if not stray:
        return decision
    withheld = tuple(sorted(set(decision.fields_out) | set(decision.fields_withheld)))
    return replace(
        decision,
        allowed=False,
        reason=(
            f"refused by the final allow-list guard: {len(stray)} field(s) not on the "
            f"allow-list of {decision.department}/{decision.purpose} were about to leave "
            "(a defect in the adapter: reported as a security incident)"
        ),
        payload={},
        fields_out=(),
        fields_withheld=withheld,
        consent_basis="none",
        case_code=None,
        allow_list_violation=tuple(stray),
    )


def _payload_paths(payload: Mapping[str, Any]) -> Iterator[str]:
    """Field paths of a payload as the allow-list names them (``form.field`` in subforms)."""
    for key, value in payload.items():
        rows = [value] if isinstance(value, Mapping) else value if isinstance(value, list) else []
        subforms = [row for row in rows if isinstance(row, Mapping)]
        if not subforms:
            yield str(key)
            continue
        for row in subforms:
            for sub in row:
                yield f"{key}.{sub}"


def _windows(text: str) -> Iterator[str]:
    for i in range(len(text) - NARRATIVE_WINDOW + 1):
        chunk = text[i : i + NARRATIVE_WINDOW]
        yield chunk
        yield chunk.casefold()
