"""Did Primero store what we sent? Comparing a PATCH payload with the stored case.

Primero silently drops fields the role may not write and still answers 200; its answer lists only
the fields that CHANGED (primero-api.md §4, records_controller#select_updated_fields). A sent field
missing from the answer was either already equal or dropped, and only reading it back tells which.

Subforms (arrays of objects) are merged row by row on `unique_id`; `"_destroy": true` removes a
row (record_merge_data_hash_service.rb). We compare the rows we sent, by their keys, and ignore
rows we did not send.
"""

from __future__ import annotations

import copy
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any


def with_row_ids(
    data: Mapping[str, Any], new_id: Callable[[], str] | None = None
) -> dict[str, Any]:
    """A copy of `data` whose new subform rows carry a client `unique_id`.

    Primero keeps a supplied `unique_id` (record.rb#populate_subform_ids only fills blanks), so a
    retried PATCH updates the same row instead of appending a duplicate, and the stored row can
    be found again to check it.
    """
    make = new_id or (lambda: str(uuid.uuid4()))
    result = copy.deepcopy(dict(data))
    for value in result.values():
        if _is_subform(value):
            for row in value:
                if not row.get("unique_id") and not row.get("_destroy"):
                    row["unique_id"] = make()
    return result


def stored_as_sent(sent: Any, stored: Any) -> bool:
    """True when `stored` holds what `sent` asked for (deep, subform rows by `unique_id`)."""
    if sent is None:
        return stored is None
    if isinstance(sent, Mapping):
        if not isinstance(stored, Mapping):
            return False
        return all(stored_as_sent(value, stored.get(key)) for key, value in sent.items())
    if _is_subform(sent):
        return _rows_stored(sent, stored)
    if isinstance(sent, list):
        if sent == [] and (stored is None or _is_subform(stored)):
            return True  # an empty array never clears a subform: the merge keeps old rows
        if not isinstance(stored, list):
            return False
        return bool(Counter(map(_normal, sent)) == Counter(map(_normal, stored)))
    return bool(_normal(sent) == _normal(stored))


def _rows_stored(rows: list[Mapping[str, Any]], stored: Any) -> bool:
    stored_list = stored if isinstance(stored, list) else []
    stored_rows = [row for row in stored_list if isinstance(row, Mapping)]
    by_id = {row.get("unique_id"): row for row in stored_rows if row.get("unique_id")}
    for row in rows:
        row_id = row.get("unique_id")
        wanted = {key: value for key, value in row.items() if key != "_destroy"}
        if row.get("_destroy"):
            if row_id in by_id:
                return False
            continue
        if row_id:
            if row_id not in by_id or not stored_as_sent(wanted, by_id[row_id]):
                return False
        elif not any(stored_as_sent(wanted, candidate) for candidate in stored_rows):
            return False
    return True


def _is_subform(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _normal(value: Any) -> Any:
    """Scalars as comparable values: ISO datetimes by instant, numbers by value."""
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] in "T ":
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return value
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    return repr(value)
