"""The policy files are untrusted configuration: validated, cross-checked, and every error
names the file, the key and the fix, never a value."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adapter.errors import ConfigError
from adapter.privacy import PolicyFileError, PolicySet

from .conftest import POLICY_DIR

CANARY = "CANARY-Shabana-Parveen"


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def load_error(policy_dir: Path) -> str:
    with pytest.raises(PolicyFileError) as info:
        PolicySet.load(policy_dir)
    assert isinstance(info.value, ConfigError)
    message = str(info.value)
    assert CANARY not in message
    return message


def test_the_shipped_policy_loads_with_four_departments() -> None:
    policy = PolicySet.load(POLICY_DIR)
    assert sorted(policy.departments) == ["birth_registration", "courts", "health", "police"]
    assert "concern" in policy.departments["birth_registration"].never_kinds
    assert policy.sensitivity.suppression["S3"].keep_kinds == ("service",)


def test_unknown_key_names_file_key_and_fix(policy_dir: Path) -> None:
    edit(policy_dir / "health.toml", 'transform = "district"', f'transfrom = "{CANARY}"')
    message = load_error(policy_dir)
    assert "health.toml" in message
    assert "purposes.referral.allow[4].transfrom" in message
    assert "unknown key" in message


def test_bad_value_is_explained_without_echoing_it(policy_dir: Path) -> None:
    edit(policy_dir / "police.toml", 'transform = "date"', f'transform = "{CANARY}"')
    message = load_error(policy_dir)
    assert "police.toml" in message and "transform" in message
    assert "'as_is'" in message  # pydantic names the allowed values


def test_field_missing_from_the_catalogue_is_refused(policy_dir: Path) -> None:
    edit(policy_dir / "courts.toml", 'field = "sex"', 'field = "religion"')
    message = load_error(policy_dir)
    assert "courts.toml" in message and "religion" in message
    assert "sensitivity.toml [fields]" in message


@pytest.mark.parametrize("field", ["case_id_display", "id", "services_section.unique_id"])
def test_primero_identifiers_can_never_be_allowed(policy_dir: Path, field: str) -> None:
    edit(policy_dir / "health.toml", 'field = "sex"', f'field = "{field}"')
    message = load_error(policy_dir)
    assert "join key" in message


def test_identifiers_can_never_be_catalogued(policy_dir: Path) -> None:
    edit(policy_dir / "sensitivity.toml", 'identity = ["name",', 'identity = ["case_id", "name",')
    assert "record identifier" in load_error(policy_dir)


def test_birth_registration_can_never_drop_the_concern_rule(policy_dir: Path) -> None:
    edit(policy_dir / "birth_registration.toml", 'never_kinds = ["concern", ', "never_kinds = [")
    message = load_error(policy_dir)
    assert "birth_registration.toml" in message and "never_kinds" in message


def test_listing_a_concern_for_birth_registration_is_refused(policy_dir: Path) -> None:
    edit(policy_dir / "birth_registration.toml", 'field = "sex"', 'field = "protection_concerns"')
    assert "never_kinds forbids" in load_error(policy_dir)


def test_s3_may_not_keep_narrative(policy_dir: Path) -> None:
    edit(policy_dir / "sensitivity.toml", 'keep_kinds = ["service"]', 'keep_kinds = ["narrative"]')
    assert "never leave at S3" in load_error(policy_dir)


def test_s3_needs_a_whitelist(policy_dir: Path) -> None:
    edit(policy_dir / "sensitivity.toml", 'keep_kinds = ["service"]\n', "")
    assert "suppression.S3.keep_kinds" in load_error(policy_dir)


def test_transform_must_fit_the_kind(policy_dir: Path) -> None:
    edit(
        policy_dir / "health.toml",
        'field = "protection_concerns"\n',
        'field = "protection_concerns"\ntransform = "district"\n',
    )
    assert "does not apply to a concern field" in load_error(policy_dir)


def test_department_must_match_its_file_name(policy_dir: Path) -> None:
    edit(policy_dir / "courts.toml", 'department = "courts"', 'department = "police"')
    assert "must equal the file name 'courts'" in load_error(policy_dir)


def test_duplicate_concern_mapping_is_refused(policy_dir: Path) -> None:
    edit(policy_dir / "sensitivity.toml", '  "neglect",\n', '  "neglect",\n  "rape",\n')
    assert "already mapped" in load_error(policy_dir)


def test_broken_toml_and_missing_files(policy_dir: Path) -> None:
    (policy_dir / "health.toml").write_text(f'department = "{CANARY}\n', encoding="utf-8")
    assert "not valid TOML" in load_error(policy_dir)
    (policy_dir / "sensitivity.toml").unlink()
    assert "sensitivity.toml: missing" in load_error(policy_dir)
    with pytest.raises(PolicyFileError, match="no such policy directory"):
        PolicySet.load(policy_dir / "nope")
