"""Which connector and mapping serve a department, by its configured ``connector``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from adapter.config import Settings
from adapter.departments.base import Connector
from adapter.errors import ConfigError
from adapter.mappings.base import DepartmentMapping


@contextmanager
def open_department(
    settings: Settings, department: str
) -> Iterator[tuple[Connector, DepartmentMapping]]:
    """The department's connector (closed afterwards) and its mapping."""
    config = settings.departments.get(department)
    if config is None:
        raise ConfigError(f"no [departments.{department}] section in the configuration.")
    if config.connector == "fhir":
        from adapter.departments.health import HealthConnector
        from adapter.mappings.fhir import OrgRef
        from adapter.mappings.health import HealthMapping

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
    else:
        raise ConfigError(
            f"departments.{department}.connector = '{config.connector}' is not available yet."
        )
    try:
        yield connector, mapping
    finally:
        connector.close()
