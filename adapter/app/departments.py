"""Which connector and mapping serve a department, by its configured ``connector``: the
wiring reads the department's mapping and policy files here and hands the parts what they
need."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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
from adapter.privacy import PolicySet


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
        mapped = MappedMapping.load(
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
        mapped = MappedMapping.load(
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
