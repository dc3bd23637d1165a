"""Primero version strings: "2.15.2.1" (config/version.rb), "2.16.0-rc2" (tags), "v2.11"."""

from __future__ import annotations

import re

_VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)(?:[-.]?(rc|beta|alpha|pre)\.?(\d*))?$", re.IGNORECASE)


def parse_version(text: str) -> tuple[tuple[int, ...], int, int]:
    """A sortable key: numbers padded to four parts, then release after any pre-release.

    "2.16.0-rc2" sorts before "2.16.0" and "2.16", after "2.15.2.1". Raises ValueError.
    """
    match = _VERSION.match(text.strip())
    if not match:
        raise ValueError(f"not a Primero version: {text!r} (expected e.g. 2.15.2.1 or 2.16.0-rc2)")
    numbers = tuple(int(part) for part in match.group(1).split("."))
    numbers = (*numbers, 0, 0, 0, 0)[: max(4, len(numbers))]
    if match.group(2):
        return numbers, 0, int(match.group(3) or 0)
    return numbers, 1, 0
