"""Query strings as Rails sees them: Rack's nested params, then DestringifyService.

`DestringifyService` (app/services/destringify_service.rb) turns filter text into ints,
booleans, dates and times (an explicit offset is converted to UTC by `Time.zone.parse`), lists
(`a,b`) and ranges (`x..y`, `from..`; `..y` gives a nil `from`).
"""

from __future__ import annotations

import re
from typing import Any

from adapter.simulator.primero.timestamps import (
    DATE_REGEX,
    DATETIME_REGEX,
    parse_date,
    parse_rails_time,
)


def nested_params(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Rack's nested query parsing: `a[b]=1`, `a[]=1&a[]=2`, last scalar wins."""
    params: dict[str, Any] = {}
    for key, value in pairs:
        base = key.split("[", 1)[0]
        subs = re.findall(r"\[([^\]]*)\]", key[len(base) :])
        target: Any = params
        path = [base, *subs]
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if part == "" and isinstance(target, list):
                target.append(value if last else {})
                break
            if not isinstance(target, dict):
                break
            if last:
                target[part] = value
            else:
                nxt = target.get(part)
                want_list = path[i + 1] == ""
                if want_list and not isinstance(nxt, list):
                    nxt = target[part] = []
                elif not want_list and not isinstance(nxt, dict):
                    nxt = target[part] = {}
                target = nxt
    return params


def destringify(value: Any, lists_and_ranges: bool = True) -> Any:
    """DestringifyService.destringify (app/services/destringify_service.rb)."""
    if value is None or value == "":
        return None
    if isinstance(value, list):
        return [destringify(v, lists_and_ranges) for v in value]
    if isinstance(value, dict):
        if value and all(re.fullmatch(r"\d+", k) for k in value):
            return [
                destringify(v, lists_and_ranges)
                for _, v in sorted(value.items(), key=lambda kv: int(kv[0]))
            ]
        return {k: destringify(v, lists_and_ranges) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    if DATE_REGEX.match(value):
        return parse_date(value) or value
    if DATETIME_REGEX.match(value):
        return parse_rails_time(value) or value
    if value in ("true", "false"):
        return value == "true"
    if re.fullmatch(r"\d+", value):
        return int(value)
    if lists_and_ranges:
        if "," in value:
            return [destringify(v, lists_and_ranges) for v in value.split(",")]
        if ".." in value:
            parts = [p for p in value.split("..")]
            while parts and parts[-1] == "":  # Ruby's split drops trailing empty strings
                parts.pop()
            return {
                "from": destringify(parts[0] if parts else None, lists_and_ranges),
                "to": destringify(parts[1] if len(parts) > 1 else None, lists_and_ranges),
            }
    return value
