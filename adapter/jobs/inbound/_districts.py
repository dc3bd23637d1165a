"""Unknown-district handling: refuse a referral's district Primero's location catalogue lacks,
and write a case without a district Primero refuses anyway."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from adapter.errors import PrimeroValidationError
from adapter.jobs.inbound._errors import UnknownDistrict
from adapter.primero.locations import LocationCatalogue

log = logging.getLogger("adapter.jobs.inbound")
_T = TypeVar("_T")

# The case field of the child's district: a select over Primero's locations, so a code it
# does not know is refused (422, primero-api.md §4 "Type validation"; finding F1 of
# tests/fuzz/test_api_schema.py).
LOCATION_FIELD = "location_current"


def _check_district(locations: LocationCatalogue, district: str) -> None:
    # None (the catalogue cannot be loaded) accepts: a child's referral is never refused
    # because Primero is unreachable; the write path leaves out a code Primero refuses.
    if locations.knows(district) is False:
        raise UnknownDistrict(
            "child.district is not a location code Primero knows: use a Primero location code "
            "(such as PK-SD-KHI), or leave district out. Your CPU's IT officer can list the "
            "codes with `cpims-adapter primero locations`.",
            field="child.district",
        )


def _without_unknown_location(
    call: Callable[[dict[str, Any]], _T], fields: Mapping[str, Any]
) -> tuple[_T, bool]:
    """``call(fields)``; if Primero refuses (422) naming the district field, ``call`` again
    without it: the case lands without its district rather than as a dead letter. Returns
    (call's result, whether the district was left out).

    The refusal wrote nothing (the record's JSON schema is checked before it is saved, the
    "Type validation" row of primero-api.md §4: selects are checked against their enum), so
    the second call is the first write. Any other refusal stays fatal.
    """
    try:
        return call(dict(fields)), False
    except PrimeroValidationError as refused:
        if LOCATION_FIELD not in refused.fields or LOCATION_FIELD not in fields:
            raise
    # Only the field's name is logged: never the case or the child (house rules).
    log.warning(
        "Primero refused %s (an unknown location code from a department): writing the case "
        "without it",
        LOCATION_FIELD,
    )
    return call({k: v for k, v in fields.items() if k != LOCATION_FIELD}), True
