"""Configuration: file, environment overrides, unknown keys, secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args, get_origin

import pytest
from pydantic import BaseModel

from adapter.config import Settings, load_settings
from adapter.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "config" / "adapter.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "adapter.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_is_valid_and_documents_every_key() -> None:
    load_settings(EXAMPLE)
    text = EXAMPLE.read_text(encoding="utf-8")
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if get_origin(model) is dict:  # [departments.<name>], [jobs.<name>]
            model = get_args(model)[1]
            assert re.search(rf"^\[{section}\.\w+\]", text, re.MULTILINE), section
        else:
            assert f"[{section}]" in text
        for key, sub in model.model_fields.items():  # type: ignore[union-attr]
            table = next((a for a in get_args(sub.annotation) if isinstance(a, type)), None)
            if table is not None and issubclass(table, BaseModel):  # e.g. [departments.x.sftp]
                # Under a named table ([departments.x.sftp]), or an optional one shown
                # commented out ([console.oidc]).
                named = rf"^\[{section}\.\w+\.{key}\]"
                if get_origin(field.annotation) is not dict:
                    named = rf"^#? ?\[{section}\.{key}\]"
                assert re.search(named, text, re.MULTILINE), key
                for inner in table.model_fields:
                    assert re.search(rf"^#? ?{inner} = ", text, re.MULTILINE), f"{key}.{inner}"
                continue
            assert re.search(rf"^#? ?{key} = ", text, re.MULTILINE), f"{section}.{key} undocumented"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[primero]\nurl = "https://a.example"\nusername = "svc"\n')
    monkeypatch.setenv("CPIMS_ADAPTER_PRIMERO__URL", "https://b.example")
    monkeypatch.setenv("CPIMS_ADAPTER_PRIMERO__PASSWORD", "s3cret-value")
    monkeypatch.setenv("CPIMS_ADAPTER_STATE__URL", "sqlite:///elsewhere.db")
    settings = load_settings(path)
    assert settings.primero.url == "https://b.example"
    assert settings.primero.username == "svc"  # untouched keys keep the file's value
    assert settings.primero.secret() == "s3cret-value"
    assert settings.state.url == "sqlite:///elsewhere.db"


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[primero]\nurl = "https://env.example"\n')
    monkeypatch.setenv("CPIMS_ADAPTER_CONFIG", str(path))
    assert load_settings().primero.url == "https://env.example"


def test_unknown_key_names_the_key_and_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[primero]\nurl = "https://a.example"\npasword = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "primero.pasword" in message and str(path) in message and "password" in message


def test_unknown_section_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'primer'"):
        load_settings(write(tmp_path, '[primer]\nurl = "x"\n'))


def test_bad_value_names_the_key_and_env_but_not_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, '[primero]\nurl = "ftp://secret-host"\npage_size = 5000\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "primero.page_size" in message and "CPIMS_ADAPTER_PRIMERO__PAGE_SIZE" in message
    assert "primero.url" in message and "secret-host" not in message


def test_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "missing.toml")


def test_broken_toml_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[primero\n"))


def test_secrets_are_never_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPIMS_ADAPTER_PRIMERO__PASSWORD", "hunter2-canary")
    settings = load_settings(write(tmp_path, '[primero]\nurl = "https://a.example"\n'))
    assert "hunter2-canary" not in repr(settings)
    assert "hunter2-canary" not in str(settings.redacted())


def test_password_file_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    settings = load_settings(
        write(tmp_path, f'[primero]\nurl = "https://a.example"\npassword_file = "{secret}"\n')
    )
    assert settings.primero.secret() == "from-a-file"


def test_a_job_must_name_a_configured_department(tmp_path: Path) -> None:
    path = write(tmp_path, '[jobs.x]\ndepartment = "police"\nagencies = ["a"]\n')
    with pytest.raises(ConfigError, match=r"jobs.x.department = 'police' names no"):
        load_settings(path)


def test_a_job_without_routing_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[departments.health]\nbase_url = "http://127.0.0.1:1/fhir"\norganization = "h"\n'
        '[jobs.h]\ndepartment = "health"\n',
    )
    with pytest.raises(ConfigError, match="agencies or gateway_users"):
        load_settings(path)


def test_department_keys_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        '[departments.health]\nbase_url = "http://127.0.0.1:1/fhir"\norganization = "h"\n',
    )
    monkeypatch.setenv("CPIMS_ADAPTER_DEPARTMENTS__HEALTH__TOKEN", "tok-canary")
    monkeypatch.setenv("CPIMS_ADAPTER_DEPARTMENTS__HEALTH__AUTH", "bearer")
    settings = load_settings(path)
    assert settings.departments["health"].secret() == "tok-canary"
    assert "tok-canary" not in str(settings.redacted())


def test_an_unreadable_department_secret_file_names_the_department_and_the_path(
    tmp_path: Path,
) -> None:
    from adapter.departments.health import HealthConnector

    missing = tmp_path / "secrets" / "health-token"
    settings = load_settings(
        write(
            tmp_path,
            '[departments.health]\nbase_url = "http://127.0.0.1:1/fhir"\norganization = "h"\n'
            f'auth = "bearer"\ntoken_file = "{missing}"\n',
        )
    )
    with pytest.raises(ConfigError) as caught:
        HealthConnector.from_settings("health", settings.departments["health"])
    message = str(caught.value)
    assert message.startswith("departments.health.token_file: cannot read the secret file ")
    assert str(missing) in message and "No such file" in message


def test_an_unknown_key_from_the_environment_names_the_variable_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, '[primero]\nurl = "https://a.example"\n')
    monkeypatch.setenv("CPIMS_ADAPTER_PRIMERO__USERNAM", "svc")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert message.startswith("environment variable CPIMS_ADAPTER_PRIMERO__USERNAM: unknown key")
    assert "'primero.usernam'" in message and "username" in message
    assert str(path) not in message


def test_a_bad_value_from_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CPIMS_ADAPTER_SYNC__LAG_SECONDS", "two minutes")
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, "[sync]\nlease_seconds = 900\n"))
    message = str(caught.value)
    assert message.startswith("environment variable CPIMS_ADAPTER_SYNC__LAG_SECONDS: key")
    assert "two minutes" not in message


def test_an_unknown_nested_key_lists_the_keys_of_its_own_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[departments.health]\nbase_url = "http://127.0.0.1:1/fhir"\norganization = "h"\n'
        "token_filee = 'x'\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "token_file," in str(caught.value) and "retention" not in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "words"),
    [
        ("CPIMS_ADAPTER_PRIMERO_URL", "CPIMS_ADAPTER_PRIMERO__URL"),
        ("CPIMS_ADAPTER_PRIMEROS__URL", "no configuration section 'primeros'"),
    ],
)
def test_a_mistyped_variable_is_not_silently_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, words: str
) -> None:
    monkeypatch.setenv(variable, "https://b.example")
    with pytest.raises(ConfigError, match=words) as caught:
        load_settings(write(tmp_path, '[primero]\nurl = "https://a.example"\n'))
    assert str(caught.value).startswith(f"environment variable {variable}:")


def test_the_tools_own_variables_are_not_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CPIMS_ADAPTER_SKIP_POSTGRES", "1")
    monkeypatch.setenv("CPIMS_ADAPTER_CRASH_SEED", "7")
    assert load_settings(write(tmp_path, "")).primero.url is None
