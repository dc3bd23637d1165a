"""Which connector and mapping serve a department, by its configured ``connector``: the
wiring reads the department's mapping and policy files here and hands the parts what they
need."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from adapter.config import Settings
from adapter.departments.base import Connector
from adapter.departments.csv_import import InboundFormat
from adapter.departments.files import FileConnector
from adapter.departments.health import HealthConnector
from adapter.departments.rest import RestConnector
from adapter.errors import ConfigError
from adapter.mappings.base import DepartmentMapping
from adapter.mappings.fhir import OrgRef
from adapter.mappings.health import HealthMapping
from adapter.mappings.mapped import MappedMapping
from adapter.mappings.mapped_spec import (
    MappingFile,
    MappingFileError,
    declared_record_types,
    parse_spec,
)
from adapter.privacy import PolicySet
from adapter.privacy.policy import DepartmentPolicy


def read_mapping_file(path: str | Path) -> dict[str, Any]:
    """The parsed TOML of one mapping file. Raises MappingFileError naming the file and the
    fix; the mappings package validates what this returns and reads no file itself."""
    source = Path(path)
    try:
        return tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingFileError(
            f"{source}: no such mapping file. Set departments.<name>.mapping_file, or copy one "
            "from config/mappings/ (README.md there explains the format)."
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingFileError(f"{source}: not valid TOML ({exc}). Fix the syntax.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingFileError(f"{source}: cannot be read ({type(exc).__name__}).") from None


def read_mapping(path: str | Path, *, policy: DepartmentPolicy | None = None) -> MappingFile:
    """Read and validate one mapping file (``mapped_spec.parse_spec``)."""
    return parse_spec(read_mapping_file(path), str(path), policy=policy)


def load_mapping(
    path: str | Path, department: str, *, policy: PolicySet | None = None
) -> MappedMapping:
    """Read one mapping file and check it for ``department`` (``MappedMapping.from_data``);
    with ``policy``, also against the department's allow-list. Raises MappingFileError."""
    return MappedMapping.from_data(read_mapping_file(path), department, str(path), policy=policy)


# The connectors whose department is described by a mapping file (open_department).
MAPPED_CONNECTORS = ("rest", "sftp")


def configured_mappings(settings: Settings) -> dict[str, MappingFile]:
    """Each configured department described by a mapping file → that file, read and validated
    (MappingFileError names the file, the key and the fix)."""
    return {
        name: read_mapping(department.mapping_path(name))
        for name, department in sorted(settings.departments.items())
        if department.connector in MAPPED_CONNECTORS
    }


def configured_record_types(settings: Settings) -> dict[str, str]:
    """The record types (id → label) the configured departments' mapping files declare: the
    "Linked department records" record-type select offers them besides the adapter's own."""
    return declared_record_types(configured_mappings(settings).values())


@contextmanager
def open_department(
    settings: Settings, department: str
) -> Iterator[tuple[Connector, DepartmentMapping]]:
    """The department's connector (closed afterwards) and its mapping."""
    config = settings.departments.get(department)
    if config is None:
        raise ConfigError(f"no [departments.{department}] section in the configuration.")
    if config.connector == "fhir":
        connector: Connector = HealthConnector.from_settings(department, config)
        requester = next(
            (
                j.requester_organization
                for j in settings.jobs.values()
                if j.department == department
            ),
            "child-protection-unit",
        )
        mapping: DepartmentMapping = HealthMapping(
            department=department,
            performer=OrgRef(system=config.organization_system, value=config.organization),
            requester=OrgRef(system=config.organization_system, value=requester),
        )
    elif config.connector == "rest":
        # The policy is read here too so a mapping that names a field no allow-list has
        # fails at start-up, naming the key, instead of silently carrying nothing.
        mapped = load_mapping(
            config.mapping_path(department),
            department,
            policy=PolicySet.load(settings.privacy.policy_dir),
        )
        if config.two_stage and not mapped.has_probe:
            raise ConfigError(
                f"departments.{department}.two_stage is true, but {mapped.source} has no "
                "[documents.probe] for the anonymous capacity probe: add one, or set "
                f"departments.{department}.two_stage = false where the data-sharing agreement "
                "makes the probe pointless (e.g. a mandatory report to police)."
            )
        connector = RestConnector.from_settings(department, config, mapped)
        mapping = mapped
    elif config.connector == "sftp":
        mapped = load_mapping(
            config.mapping_path(department),
            department,
            policy=PolicySet.load(settings.privacy.policy_dir),
        )
        files = mapped.spec.files
        inbound = None
        if files and files.inbound:
            declared = mapped.spec.record_types.get(files.inbound.record_type)
            inbound = InboundFormat(
                files.inbound.record_type,
                dict(files.inbound.columns),
                statuses=dict(declared.statuses) if declared else {},
                details=tuple(declared.details) if declared else (),
            )
        connector = FileConnector.from_settings(
            department,
            config,
            inbound=inbound,
            email_kinds=tuple(files.email_kinds) if files else (),
        )
        mapping = mapped
    else:
        raise ConfigError(
            f"departments.{department}.connector = '{config.connector}' is not available yet."
        )
    try:
        yield connector, mapping
    finally:
        connector.close()
