"""The record types each configured department may send back over the inbound API: read from
the mapping files the configuration names (``[record_types.<name>]``), once, at start-up."""

from __future__ import annotations

from adapter.app.departments import read_mapping
from adapter.config import Settings
from adapter.mappings.mapped_spec import RecordTypeSpec

# The connectors whose department is described by a mapping file (app/departments.py).
MAPPED_CONNECTORS = ("rest", "sftp")


def declared_records(settings: Settings) -> dict[str, dict[str, RecordTypeSpec]]:
    """Each department with a mapping file → the record types that file declares (label,
    statuses, details). Raises MappingFileError (file, key, fix) for a missing or bad file."""
    return {
        name: dict(read_mapping(department.mapping_path(name)).record_types)
        for name, department in sorted(settings.departments.items())
        if department.connector in MAPPED_CONNECTORS
    }
