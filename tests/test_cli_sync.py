"""`cpims-adapter sync JOB --dry-run`: what would leave, shown without printing it.

A police job against the Primero and police simulators on loopback, driven through the CLI
in-process: by default no value of any identifying field of the simulator's cases reaches the
output; ``--show-values`` (a data-protection officer's review) prints them.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from adapter.cli import _common, _sync
from adapter.primero import PrimeroClient
from adapter.privacy import KeyRing, PolicySet
from adapter.simulator.departments import DepartmentSimulator
from adapter.simulator.departments.scenario import MAPPINGS_DIR, POLICE_AGENCY, refer_children
from adapter.simulator.departments.state import API_KEY, API_KEY_HEADER
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import POLICY_DIR, SIM_PASSWORD, install_linked_records_form
from adapter.state import StateStore

REFERRED = 4
# What identifies a child or the people around it, by the policy's own field catalogue.
IDENTIFYING_KINDS = {"identity", "identifier", "address", "contact", "family", "perpetrator"}
MASKED = re.compile(r"^<masked (\d+) chars #([0-9a-f]{8})>$")


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    kek = secrets.token_bytes(32)
    url = f"sqlite:///{tmp_path}/state.sqlite3"
    with PrimeroSimulator(cases=20) as sim, DepartmentSimulator("police") as police:
        install_linked_records_form(sim.url)
        refer_children(
            sim.url,
            REFERRED,
            fields={"telephone_current": "0300-1234567"},
        )
        config = tmp_path / "adapter.toml"
        config.write_text(
            f'[state]\nurl = "{url}"\n'
            f'[primero]\nurl = "{sim.url}"\nusername = "cpims-adapter"\n'
            f'password = "{SIM_PASSWORD}"\n'
            f'[privacy]\nkek = "{base64.b64encode(kek).decode()}"\npolicy_dir = "{POLICY_DIR}"\n'
            "[sync]\nlag_seconds = 0\n"
            f'[departments.police]\nconnector = "rest"\nbase_url = "{police.url}"\n'
            f'auth = "api_key"\napi_key = "{API_KEY}"\napi_key_header = "{API_KEY_HEADER}"\n'
            f'mapping_file = "{MAPPINGS_DIR / "police.toml"}"\ntwo_stage = false\n'
            f'[jobs.police]\ndepartment = "police"\nagencies = ["{POLICE_AGENCY}"]\n',
            encoding="utf-8",
        )
        monkeypatch.setenv("CPIMS_ADAPTER_CONFIG", str(config))
        monkeypatch.setattr(_common.state, "config_path", None)
        with StateStore(url) as store:
            KeyRing.init(store, kek, ["police"])
        yield {"sim": sim, "police": police, "url": url}


def cli() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        """Test root."""

    _sync.register(root)
    return root


def dry_run(*extra: str) -> tuple[list[dict[str, Any]], str, str]:
    result = CliRunner().invoke(cli(), ["sync", "police", "--dry-run", *extra])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return lines, result.stdout, result.stderr


def identifying_values(sim: PrimeroSimulator) -> set[str]:
    """Every value of an identifying field (policy catalogue) of every case in the simulator,
    plus dates of birth."""
    catalogue = PolicySet.load(POLICY_DIR).field_kinds
    fields = {f for f, kind in catalogue.items() if kind in IDENTIFYING_KINDS}
    fields.add("date_of_birth")
    found: set[str] = set()
    with PrimeroClient(sim.url, username="cpims-adapter", password=SIM_PASSWORD) as client:
        for case in client.iter_cases(None):
            for field in fields:
                top, _, sub = field.partition(".")
                rows = case.get(top) if sub else [case]
                for row in rows if isinstance(rows, list) else []:
                    value = row.get(sub or top) if isinstance(row, dict) else None
                    for item in value if isinstance(value, list) else [value]:
                        if isinstance(item, str) and len(item) >= 4 and item.strip("*"):
                            found.add(item)
    return found


def test_a_dry_run_masks_every_identifying_value_and_shows_the_codes(
    world: dict[str, Any],
) -> None:
    lines, stdout, stderr = dry_run()
    assert len(lines) == REFERRED
    secrets_seen = identifying_values(world["sim"])
    assert {"Synthetic Child 0", "House 0, Street 4, Lyari", "0300-1234567"} <= secrets_seen
    assert [value for value in secrets_seen if value in stdout] == []

    child = lines[0]["document"]["json"]["referral"]["child"]
    # The field is there, with its length and a short hash prefix; codes stay readable.
    name = MASKED.match(child["name"])
    assert name is not None and int(name.group(1)) == len("Synthetic Child 0")
    assert MASKED.match(child["date_of_birth"])
    referral = lines[0]["document"]["json"]["referral"]
    assert referral["case_code"].startswith("cp1.police.")
    assert referral["protection_concerns"] == ["physically_or_mentally_abused"]
    assert lines[0]["referral_key"].startswith("ref-")
    # Equal values share a prefix within one run: all four children live in "PK-SD-KHI".
    locations = {line["document"]["json"]["referral"]["whereabouts"]["location"] for line in lines}
    assert len(locations) == 1 and MASKED.match(locations.pop())
    assert "values masked" in stderr and "--show-values" in stderr
    with StateStore(world["url"]) as store:
        assert store.get_cursor("police", "cases") is None  # a dry run moved nothing


def test_show_values_prints_them_for_a_data_protection_officer(world: dict[str, Any]) -> None:
    lines, stdout, stderr = dry_run("--show-values")
    assert len(lines) == REFERRED
    names = {line["document"]["json"]["referral"]["child"]["name"] for line in lines}
    assert names == {f"Synthetic Child {n}" for n in range(REFERRED)}
    assert "House 0, Street 4, Lyari" in stdout and "<masked" not in stdout
    assert "holds personal data" in stderr


def test_show_values_needs_a_dry_run(world: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli(), ["sync", "police", "--show-values"])
    assert result.exit_code == 2
    assert "--dry-run" in result.output
    with StateStore(world["url"]) as store:
        assert store.get_cursor("police", "cases") is None  # nothing ran


def test_the_mask_is_keyed_per_run() -> None:
    line = {"document": {"name": "Synthetic Child 0", "code": "x", "flag": True, "age": 9}}
    first = _sync.value_mask(b"k" * 32)(line)
    assert first["document"]["code"] == "x" and first["document"]["flag"] is True
    assert MASKED.match(first["document"]["age"])
    assert first == _sync.value_mask(b"k" * 32)(line)
    assert first != _sync.value_mask(b"j" * 32)(line)
