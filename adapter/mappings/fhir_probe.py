"""Stage one of a health referral as FHIR: the anonymous capacity probe (pure, no I/O).

By policy (privacy.md §6.3 "Stage order"; adapter/privacy/probe.py) a department is first asked
whether it can take a case like this one, with nothing that names or codes the child; identified
data leaves only after it accepts. Over FHIR the question is a single Task:

- ``status=requested``, ``businessStatus`` *capacity-check*, ``code`` *capacity-check* (local:
  R4's task-code has no such task), ``owner`` the receiving organization;
- the probe's coarse values as coded ``Task.input`` entries, and nothing else: no ``for``, no
  ``focus``, no ``note``, no ``description``, no ``authoredOn`` (a timestamp to the second is a
  join key, privacy.md §6.1);
- the referral identifier ``urn:cpims-adapter:referral|<key>``, the same one the ServiceRequest
  and Task of the identified stage carry, as a conditional create. So when the identified bundle
  follows (:func:`adapter.mappings.fhir.build_referral_bundle`), its Task entry finds this Task and
  leaves it alone, and :meth:`FhirClient.link_task <adapter.departments.fhir.FhirClient.link_task>`
  adds ``focus``/``for``: one Task per referral from probe to outcome.

``intent`` is ``order``, the same as the identified stage's Task. The caseworker has already
decided to refer; the probe only asks about capacity. The Task stays one Task through both
stages, and its intent should not change halfway through (BSeR and SDOHCC referral Tasks fix
``intent=order``). ``proposal`` would also say "no authority to act", which an accepted probe
then has to contradict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from fhir.resources.R4B.bundle import Bundle

from adapter.errors import MappingError
from adapter.mappings import fhir_codes as codes

# Building blocks shared with the identified stage: one home (fhir.py), so both stages agree
# on identifiers, fullUrls, security labels and validation.
from adapter.mappings.fhir import (
    OrgRef,
    _bundle,
    _entry,
    _identifier_query,
    _identifier_value,
    _meta,
    _validated,
    full_url,
)
from adapter.privacy.probe import PROBE_KEYS

__all__ = ["PROBE_KEYS", "CapacityProbe", "build_probe_bundle", "probe_bundle_json"]

# PROBE_KEYS (adapter/privacy/probe.py): any other key is refused, not dropped: a new key is a
# policy change that needs a mapping decision first.
# Keys accepted but not sent. ``stage`` only says what the payload is (and must say "probe").
# ``probe_ref`` is a random handle for answering the probe. On FHIR the Task's referral
# identifier already is that handle, so a second one would only give the department more to hold.
_NOT_SENT: Final = frozenset({"stage", "probe_ref"})
_KEY_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")


@dataclass(frozen=True)
class CapacityProbe:
    """One referral's capacity probe to a health department, already through the privacy core.

    ``referral_key`` is the adapter's key of the referral (the identified stage uses the same
    one). ``service_type`` is the Primero service this referral asks for (a key of
    ``fhir_codes.SERVICE_CATEGORIES``). ``urgency`` is the probe's urgency level (``emergency``,
    ``urgent``, ``normal``); None takes ``probe["urgency"]``. ``probe`` is the probe payload of
    ``DisclosurePolicy.decide(..., Stage.PROBE)``, keys in :data:`PROBE_KEYS` only.
    """

    referral_key: str
    service_type: str
    performer_org: OrgRef
    requester_org: OrgRef
    urgency: str | None = None
    probe: Mapping[str, Any] = field(default_factory=dict)


def build_probe_bundle(p: CapacityProbe) -> Bundle:
    """The transaction that asks the department: one Task, created once per referral key.

    Raises MappingError naming the key (never the value) for an unknown probe key or a value
    that is not one of the probe's codes.
    """
    return _validated(Bundle, probe_bundle_json(p))


def probe_bundle_json(p: CapacityProbe) -> dict[str, Any]:
    """:func:`build_probe_bundle` as the plain JSON dict it validates (the sync's hot path;
    tests/mappings/test_fhir_plain.py holds it to the model, byte for byte)."""
    key = _identifier_value(p.referral_key, "referral_key")
    referral_id = {"system": codes.REFERRAL_SYSTEM, "value": key}
    task = _probe_task(p, referral_id)
    return _bundle(
        [_entry(full_url(key, "Task"), task, "POST", "Task", _identifier_query(referral_id))]
    )


def _probe_task(p: CapacityProbe, identifier: dict[str, str]) -> dict[str, Any]:
    values = _probe_values(p)
    _display, priority = codes.PROBE_URGENCIES[values["urgency"]]
    body: dict[str, Any] = {
        "resourceType": "Task",
        "meta": _meta(),
        "identifier": [identifier],
        "status": "requested",
        "businessStatus": {"coding": [dict(codes.STAGE_CAPACITY_CHECK)]},
        "intent": "order",
        "priority": priority,
        "code": {"coding": [dict(codes.TASK_CAPACITY_CHECK)]},
        "requester": p.requester_org.to_reference("requester_org"),
        "owner": p.performer_org.to_reference("performer_org"),
        "input": _inputs(values),
    }
    return body


def _probe_values(p: CapacityProbe) -> dict[str, str]:
    """The probe's values, checked against its vocabulary; keys of PROBE_INPUT_TYPES."""
    if not isinstance(p.probe, Mapping):
        raise MappingError("probe must be the probe payload (a mapping of probe keys)")
    # Unknown keys are refused even when empty: the key itself is the policy change.
    unknown = sorted(_key_name(k) for k in p.probe if k not in PROBE_KEYS)
    if unknown:
        raise MappingError(
            f"probe keys {unknown} are not capacity-probe keys (known: {sorted(PROBE_KEYS)}): a "
            "probe carries nothing else; change adapter/privacy/probe.py and this mapping together"
        )
    present = {k: v for k, v in p.probe.items() if v is not None}
    if present.get("stage", "probe") != "probe":
        raise MappingError("probe.stage must be 'probe': only a stage-one payload maps to a probe")

    service = p.service_type
    if not isinstance(service, str) or service not in codes.SERVICE_CATEGORIES:
        raise MappingError(
            f"service_type is not a health service (known: {sorted(codes.SERVICE_CATEGORIES)})"
        )
    if "services" in present:
        services = present["services"]
        if not isinstance(services, list | tuple):
            raise MappingError("probe.services must be a list of Primero service codes")
        if service not in services:
            raise MappingError("probe.services does not include service_type: probe the same")
    values: dict[str, str] = {"service": service}

    urgency = p.urgency if p.urgency is not None else present.get("urgency")
    if not isinstance(urgency, str) or urgency not in codes.PROBE_URGENCIES:
        raise MappingError(f"urgency must be one of {sorted(codes.PROBE_URGENCIES)}")
    if "urgency" in present and present["urgency"] != urgency:
        raise MappingError("urgency and probe.urgency disagree: pass one")
    values["urgency"] = urgency

    for name in ("province", "district"):
        if name in present:
            if not isinstance(present[name], str) or not _CODE.fullmatch(present[name]):
                raise MappingError(f"probe.{name} must be a Primero location code")
            values[name] = present[name]
    if "age_band" in present:
        if not isinstance(present["age_band"], str) or (
            present["age_band"] not in codes.PROBE_AGE_BANDS
        ):
            raise MappingError(f"probe.age_band must be one of {sorted(codes.PROBE_AGE_BANDS)}")
        values["age_band"] = present["age_band"]
    if "sex" in present:
        if not isinstance(present["sex"], str) or present["sex"] not in codes.PROBE_SEXES:
            raise MappingError(f"probe.sex must be one of {sorted(codes.PROBE_SEXES)}")
        values["sex"] = present["sex"]
    return values


def _inputs(values: Mapping[str, str]) -> list[dict[str, Any]]:
    """Task.input in a fixed order (coarse to fine), every value a coding from a known system."""
    urgency_display, _priority = codes.PROBE_URGENCIES[values["urgency"]]
    service = values["service"]
    value_codings: dict[str, list[dict[str, str]]] = {
        "service": [
            {"system": codes.PRIMERO_SERVICE_TYPE_SYSTEM, "code": service},
            *(dict(c) for c in codes.SERVICE_CATEGORIES[service]),
        ],
        "urgency": [
            {
                "system": codes.PROBE_URGENCY_SYSTEM,
                "code": values["urgency"],
                "display": urgency_display,
            }
        ],
    }
    for name in ("province", "district"):
        if name in values:
            value_codings[name] = [{"system": codes.LOCATION_SYSTEM, "code": values[name]}]
    if "age_band" in values:
        value_codings["age_band"] = [{"system": codes.AGE_BAND_SYSTEM, "code": values["age_band"]}]
    if "sex" in values:
        value_codings["sex"] = [{"system": codes.ADMINISTRATIVE_GENDER, "code": values["sex"]}]
    return [
        {
            "type": {"coding": [dict(codes.PROBE_INPUT_TYPES[name])]},
            "valueCodeableConcept": {"coding": value_codings[name]},
        }
        for name in codes.PROBE_INPUT_TYPES
        if name in value_codings
    ]


def _key_name(key: object) -> str:
    # A key is a field name, safe to name in an error; anything else is not echoed.
    if isinstance(key, str) and _KEY_NAME.fullmatch(key):
        return key
    return "<malformed key>"
