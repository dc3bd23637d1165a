"""The record types each configured department may send back over the inbound API: read from
the mapping files the configuration names (``[record_types.<name>]``), once, at start-up."""

from __future__ import annotations

from adapter.app.departments import configured_mappings
from adapter.config import Settings
from adapter.mappings.mapped_spec import RecordTypeSpec


def declared_records(settings: Settings) -> dict[str, dict[str, RecordTypeSpec]]:
    """Each department with a mapping file → the record types that file declares (label,
    statuses, details). Raises MappingFileError (file, key, fix) for a missing or bad file."""
    return {
        name: dict(mapping.record_types) for name, mapping in configured_mappings(settings).items()
    }
