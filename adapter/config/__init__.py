"""Configuration: one TOML file, every key overridable from the environment.

The file is ``config/adapter.toml`` unless ``--config PATH`` or ``CPIMS_ADAPTER_CONFIG`` names
another. Every key can be overridden by ``CPIMS_ADAPTER_<SECTION>__<KEY>``, for example
``CPIMS_ADAPTER_PRIMERO__PASSWORD``. Unknown keys are errors naming the key and the file, so a
typo never silently falls back to a default. Secrets are ``SecretStr`` and never printed;
``config/adapter.example.toml`` documents every key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from adapter.config.api import ApiSettings
from adapter.config.console import ConsoleSettings
from adapter.config.incidents import IncidentSettings
from adapter.config.ops import OpsSettings, SchedulerSettings
from adapter.config.privacy import DecisionSettings, PrivacySettings
from adapter.config.registry import RegistrySettings
from adapter.config.retention import RetentionSettings
from adapter.errors import ConfigError

ENV_PREFIX = "CPIMS_ADAPTER_"
CONFIG_ENV = "CPIMS_ADAPTER_CONFIG"
DEFAULT_CONFIG_PATH = Path("config/adapter.toml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrimeroSettings(_Section):
    """How to reach Primero and as whom (primero-api.md §2)."""

    url: str | None = None
    auth: Literal["basic", "session", "bearer"] = "basic"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    timeout_seconds: float = Field(30.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    max_retries: int = Field(4, ge=0, le=20)
    backoff_seconds: float = Field(1.0, ge=0)
    max_retry_after_seconds: float = Field(300.0, ge=0)
    # Primero silently caps `per` at 1000 (primero-api.md §3, pagination.rb).
    page_size: int = Field(1000, ge=1, le=1000)
    verify_tls: bool = True
    ca_bundle: Path | None = None
    # Basic auth without CSRF and the cookie session arrived in v2.11 (primero-api.md §9).
    min_version: str = "2.11"

    @field_validator("url")
    @classmethod
    def _url_has_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for a simulator on loopback)")
        return value

    def secret(self) -> str | None:
        """The password (basic/session) or token (bearer), from the value or its file."""
        if self.auth == "bearer":
            return _read_secret(self.token, self.token_file, "primero.token")
        return _read_secret(self.password, self.password_file, "primero.password")


class StateSettings(_Section):
    """Where the adapter keeps cursors, runs, leases and (later) its outbox."""

    # SQLite by default; a PostgreSQL URL (postgresql+psycopg://...) for several processes.
    url: str = "sqlite:///var/cpims-adapter.sqlite3"


class SyncSettings(_Section):
    """Incremental-pull tuning (architecture.md §5.2-5.3)."""

    # Records updated within `lag_seconds` of a run's start are left to the next run, so a
    # transaction still committing in Primero cannot be skipped.
    lag_seconds: int = Field(120, ge=0)
    lease_seconds: int = Field(900, ge=10)


class SftpSettings(_Section):
    """A CSV drop on the department's SFTP server (``[departments.<name>.sftp]``)."""

    host: str
    port: int = Field(22, ge=1, le=65535)
    username: str
    # Key authentication only; the host key must be known (no trust on first use).
    private_key_file: Path
    known_hosts_file: Path
    outbound_dir: str = "to_department"
    inbound_dir: str = "from_department"
    rejects_dir: str = "rejects"


class EmailSettings(_Section):
    """E-mail as a last-resort transport for file drops (``[departments.<name>.email]``)."""

    smtp_host: str
    smtp_port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    sender: str
    recipients: list[str]

    def secret(self, department: str = "*") -> str | None:
        """The SMTP password, from its value or its file (errors name ``department``)."""
        return _read_secret(
            self.password, self.password_file, f"departments.{department}.email.password"
        )


class DepartmentSettings(_Section):
    """How to reach one department system (``[departments.<name>]``)."""

    # fhir (health), rest (JSON API driven by a mapping file), sftp (CSV files driven by a
    # mapping file, with e-mail as a last resort).
    connector: Literal["fhir", "rest", "sftp"] = "fhir"
    base_url: str | None = None
    # none | bearer (token) | basic (username + password) | api_key (header) | oauth2
    # (client credentials at token_url).
    auth: Literal["none", "bearer", "basic", "api_key", "oauth2"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    api_key_header: str = "X-API-Key"
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    token_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    scope: str | None = None
    timeout_seconds: float = Field(30.0, gt=0)
    verify_tls: bool = True
    # The receiving organisation: the FHIR Task owner / ServiceRequest performer.
    organization_system: str = "urn:cpims-adapter:organization"
    organization: str = ""
    # rest and sftp: the department's mapping file (default config/mappings/<name>.toml).
    mapping_file: Path | None = None
    sftp: SftpSettings | None = None
    email: EmailSettings | None = None
    # An anonymous capacity probe first, identified data only once the receiver accepts
    # (Data Protection supplement; privacy.md §6.3). Turn off only where a data-sharing
    # agreement makes the probe pointless.
    two_stage: bool = True
    # Delivery: attempts before a message becomes a dead letter, parallel requests, and a
    # rate budget in requests per second.
    max_attempts: int = Field(8, ge=1, le=100)
    concurrency: int = Field(4, ge=1, le=64)
    rate_per_second: float = Field(20.0, gt=0)
    # The inbound API: SHA-256 (hex) of each API key this department's system may present —
    # the keys themselves are never stored — and/or the subjects of its mTLS client certificates.
    inbound_api_key_sha256: list[str] = []
    inbound_client_cert_subjects: list[str] = []

    @field_validator("base_url", "token_url")
    @classmethod
    def _url_has_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with https:// (or http:// for a simulator on loopback)")
        return value

    @model_validator(mode="after")
    def _connector_needs(self) -> DepartmentSettings:
        if self.connector in ("fhir", "rest") and not self.base_url:
            raise ValueError(f"connector '{self.connector}' needs base_url")
        if self.connector == "fhir" and not self.organization:
            raise ValueError("connector 'fhir' needs organization (the receiving Organization)")
        if self.connector == "sftp" and self.sftp is None and self.email is None:
            raise ValueError("connector 'sftp' needs an [sftp] (or, last resort, [email]) table")
        if self.auth == "oauth2" and not (self.token_url and self.client_id):
            raise ValueError("auth 'oauth2' needs token_url and client_id")
        return self

    def secret(self, department: str = "*") -> str | None:
        """The secret the configured ``auth`` uses, from its value or its file. Errors name
        the key as ``departments.<department>.<key>``."""
        where = f"departments.{department}"
        if self.auth == "bearer":
            return _read_secret(self.token, self.token_file, f"{where}.token")
        if self.auth == "basic":
            return _read_secret(self.password, self.password_file, f"{where}.password")
        if self.auth == "api_key":
            return _read_secret(self.api_key, self.api_key_file, f"{where}.api_key")
        if self.auth == "oauth2":
            secret_file = self.client_secret_file
            return _read_secret(self.client_secret, secret_file, f"{where}.client_secret")
        return None

    def mapping_path(self, department: str) -> Path:
        return self.mapping_file or Path("config/mappings") / f"{department}.toml"


class JobSettings(_Section):
    """One sync job (``[jobs.<name>]``): which referrals go to which department, and why."""

    department: str
    purpose: str = "referral"
    # A referral is addressed to the department when it is a remote referral to one of these
    # agencies (Primero's transitioned_to_agency), or a referral to one of these gateway users,
    # or a services_section row whose implementing agency is one of the agencies.
    agencies: list[str] = []
    gateway_users: list[str] = []
    # If set, only these Primero service types (lookup-service-type) are carried.
    services: list[str] = []
    requester_organization: str = "child-protection-unit"
    # Write statuses back into Primero's referral and the "Linked department records" form.
    write_back: bool = True
    # Also PATCH mark_synced/mark_synced_status (needs case:sync_external); off by default.
    mark_synced: bool = False
    # Department facts also copied into Primero case fields, beside the linked record:
    # "<record_type>.<fact>" = "<primero field>", e.g. "court_order.order_type" =
    # "court_order_type". The integration role must be able to write those fields.
    primero_fields: dict[str, str] = {}
    # `cpims-adapter run`: every `every_seconds`, or on a 5-field crontab in UTC (wins if set).
    every_seconds: int = Field(300, ge=10)
    cron: str | None = None
    # A run still going after this long is stopped between pages (nothing is lost: the next
    # run resumes from the watermark).
    deadline_seconds: int = Field(3600, ge=30)

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(
                f"'{value}' is not a 5-field crontab (minute hour day month weekday), "
                f"e.g. '*/15 * * * *': {exc}"
            ) from None
        return value


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    primero: PrimeroSettings = PrimeroSettings()
    state: StateSettings = StateSettings()
    sync: SyncSettings = SyncSettings()
    logging: LoggingSettings = LoggingSettings()
    privacy: PrivacySettings = PrivacySettings()
    decisions: DecisionSettings = DecisionSettings()
    departments: dict[str, DepartmentSettings] = {}
    jobs: dict[str, JobSettings] = {}
    api: ApiSettings = ApiSettings()
    registry: RegistrySettings = RegistrySettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    ops: OpsSettings = OpsSettings()
    retention: RetentionSettings = RetentionSettings()
    incidents: IncidentSettings = IncidentSettings()
    console: ConsoleSettings = ConsoleSettings()

    # The config file load_settings read; None when it found none (defaults and environment
    # only) or the settings were built in code. ``status`` names it when no job is configured.
    _config_file: Path | None = PrivateAttr(default=None)

    @property
    def config_file(self) -> Path | None:
        """The config file these settings were read from, if any."""
        return self._config_file

    @model_validator(mode="after")
    def _jobs_name_known_departments(self) -> Settings:
        for name, job in self.jobs.items():
            if job.department not in self.departments:
                raise ValueError(
                    f"jobs.{name}.department = '{job.department}' names no [departments.*] "
                    f"section (known: {', '.join(sorted(self.departments)) or 'none'})"
                )
            if not (job.agencies or job.gateway_users):
                raise ValueError(
                    f"jobs.{name} needs agencies or gateway_users: otherwise no referral can "
                    "ever be addressed to its department"
                )
        return self

    def job(self, name: str) -> JobSettings:
        """The job called ``name``, or a ConfigError listing the configured jobs."""
        if name not in self.jobs:
            raise ConfigError(
                f"no job '{name}' in the configuration; configured jobs: "
                f"{', '.join(sorted(self.jobs)) or 'none'} (add a [jobs.{name}] section)."
            )
        return self.jobs[name]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment must win over the file.
        return (env_settings, init_settings)

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as a dict, secrets replaced by '**********'."""
        return self.model_dump(mode="json")  # SecretStr dumps as '**********'


def resolve_config_path(explicit: str | Path | None = None) -> tuple[Path, bool]:
    """The config file to read and whether the user named it (a named file must exist)."""
    if explicit:
        return Path(explicit), True
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env), True
    return DEFAULT_CONFIG_PATH, False


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the config file (if any), apply env overrides, validate. Raises ConfigError."""
    config_path, named = resolve_config_path(path)
    data: dict[str, Any] = {}
    source = str(config_path)
    read_from: Path | None = None
    if config_path.is_file():
        read_from = config_path
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML ({exc}). Fix the syntax.") from None
        except OSError as exc:
            raise ConfigError(f"{source}: cannot be read ({exc.strerror}).") from None
    elif named:
        raise ConfigError(
            f"{source}: no such config file. Pass --config PATH or set {CONFIG_ENV}; "
            "config/adapter.example.toml shows every key."
        )
    else:
        source = "defaults and environment"
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    environment = _setting_variables(os.environ)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source, environment)) from None
    settings._config_file = read_from
    return settings


def _setting_variables(environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """The ``CPIMS_ADAPTER_<SECTION>__<KEY>`` variables set, by the key path they set (lower
    case, as pydantic-settings matches them). A variable that can only be a mistyped setting is
    a ConfigError naming it: the environment must not be where a typo hides."""
    found: dict[tuple[str, ...], str] = {}
    for name in environ:
        if not name.upper().startswith(ENV_PREFIX) or name.upper() in _TOOL_VARIABLES:
            continue
        path = tuple(name[len(ENV_PREFIX) :].lower().split("__"))
        section = path[0]
        if section in Settings.model_fields:
            found[path] = name
        elif len(path) > 1:
            raise ConfigError(
                f"environment variable {name}: no configuration section '{section}'. Known "
                f"sections: {', '.join(sorted(Settings.model_fields))}. Fix the name or unset it."
            )
        else:
            near = next((s for s in Settings.model_fields if section.startswith(f"{s}_")), None)
            if near is not None:
                key = section.removeprefix(f"{near}_").upper()
                raise ConfigError(
                    f"environment variable {name}: a setting's section and key are separated "
                    f"by two underscores: {ENV_PREFIX}{near.upper()}__{key}. Rename it."
                )
    return found


# Variables of the same prefix that are not settings: the config file's path, and the
# scripts' and tests' own switches.
_TOOL_VARIABLES = frozenset(
    {CONFIG_ENV, "CPIMS_ADAPTER_VENV", "CPIMS_ADAPTER_FHIR_VENV", "CPIMS_ADAPTER_SKIP_POSTGRES"}
)


def _explain(exc: ValidationError, source: str, environment: Mapping[tuple[str, ...], str]) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(str(part) for part in err["loc"])
        key = ".".join(loc)
        env = ENV_PREFIX + "__".join(loc).upper()
        # The variable that set this key (or the table it sits in), when one did: then the
        # environment, not the file, is what to fix.
        variable = next(
            (environment[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in environment),
            None,
        )
        origin = f"environment variable {variable}" if variable else source
        if not loc:  # a rule across sections: its message names the keys
            lines.append(f"{source}: {err['msg'].removeprefix('Value error, ')}.")
        elif err["type"] == "extra_forbidden":
            known = _known_keys(loc[:-1])
            fix = (
                "Fix the variable's name or unset it"
                if variable
                else "Fix the spelling or remove it (config/adapter.example.toml lists every key)"
            )
            lines.append(
                f"{origin}: unknown key '{key}'. Known keys here: {', '.join(known)}. {fix}."
            )
        elif variable:
            # Never echo the value: it may be a secret.
            lines.append(f"{origin}: key '{key}': {err['msg']}.")
        else:
            lines.append(f"{source}: key '{key}' (or env {env}): {err['msg']}.")
    return "\n".join(lines)


def _known_keys(table: tuple[str, ...]) -> list[str]:
    """The keys allowed in the table at ``table`` (``()`` for the top level), following
    ``[departments.<name>]`` and ``[departments.<name>.sftp]`` style nesting."""
    model: Any = Settings
    for part in table:
        fields = _fields_of(model)
        if part in fields:
            model = _table_model(fields[part].annotation)
        elif get_origin(model) is dict:
            model = _table_model(get_args(model)[1])
        else:
            return sorted(Settings.model_fields)
        if model is None:
            return sorted(Settings.model_fields)
    return sorted(_fields_of(model))


def _fields_of(model: Any) -> dict[str, Any]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return dict(model.model_fields)
    return {}


def _table_model(annotation: Any) -> Any:
    """The model (or ``dict[str, Model]``) a field's annotation holds, unwrapping ``| None``."""
    if get_origin(annotation) is dict:
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _read_secret(value: SecretStr | None, file: Path | None, key: str) -> str | None:
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    if file is None:
        return None
    try:
        return file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"{key}_file: cannot read the secret file {file} ({reason}). Create it readable by "
            "the service's user only (mode 0400 or 0600), or fix the path."
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{key}_file: the secret file {file} is not UTF-8 text. Write the secret as text."
        ) from None
