"""Every command, fed what an operator gets wrong, answers in one clear line: never a traceback.

The commands are enumerated from the typer app, so a command added later is run too. Each runs
in-process through the real entry point (`adapter.cli.main`) against:

- a config file that does not exist, and one that is not TOML;
- a valid config whose Primero and department servers are a closed port on 127.0.0.1, with a
  fresh, empty state store, and ids (cases, dead letters, incidents, registry references) that
  are not there.
"""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pytest
import typer.main
from typer.core import TyperArgument, TyperGroup, TyperOption

from adapter.cli import app, main
from tests.support.servers import free_port

ROOT = Path(__file__).parent.parent
KEK = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="
SECONDS_PER_COMMAND = 60
INFO_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (INFO|DEBUG) ")

# Values for required arguments and options, by parameter name: plausible, and unknown to the
# empty store. Paths are filled in per test (under tmp_path); a name not listed gets "x".
VALUES = {
    "case_id": "5c52392",
    "case": "5c52392",
    "basis": "s3_approval",
    "approved_by": "cp_supervisor1",
    "decision_id": "999",
    "department": "health",
    "job": "health",
    "name": "police",
    "message_id": "999",
    "message_ids": "999",
    "incident_id": "999",
    "entry_ref": "ENTRY-NOPE",
    "check_ref": "CHECK-NOPE",
    "appeal_ref": "APPEAL-NOPE",
    "registration_number": "REG-NOPE",
    "decision": "clear",
    "cnic": "42101-1234567-1",
    "dob": "2010-01-01",
    "officer1_email": "one@example.org",
    "officer2_email": "two@example.org",
    "role": "dpo",
    "username": "new.dpo",
}
PATHS = {"path", "file", "signature", "key", "crosswalk", "private_key"}

# Servers: given a port that is taken, they must refuse to start in one line (else they would
# serve for ever). `demo` runs its own simulators end to end (tests/test_demo.py); here it gets a
# value it must refuse.
SERVERS = {"run", "serve", "simulate primero", "simulate department", "simulate fhir"}
BAD_OPTIONS = {"demo": ["--cases", "-5"]}
# Commands whose first act is to read Primero (explain: once it has the store's keys).
NEEDS_PRIMERO = {"check", "explain", "primero cases", "primero locations", "primero install-forms"}
# Commands that need no configuration: they may succeed whatever the config file says.
CONFIG_FREE = {
    "registry keygen",
    "registry sign",
    "simulate primero",
    "simulate department",
    "simulate fhir",
}


def _leaves(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, object]]:
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield " ".join(path), command


COMMANDS = dict(_leaves(typer.main.get_command(app)))


def arguments(path: str, command: object, tmp_path: Path, taken_port: int) -> list[str]:
    """The command line: the command, then every required argument and option."""
    args = path.split()
    # Input files exist but hold nothing: an empty CSV, signature, key or backup.
    values = {name: str(tmp_path / f"empty-{name}") for name in PATHS}
    for name in PATHS:
        (tmp_path / f"empty-{name}").touch()
    values["private_key"] = str(tmp_path / "officer.pem")
    values["crosswalk"] = str(tmp_path / "crosswalk.csv")
    values.update(VALUES)
    for param in getattr(command, "params", []):
        if isinstance(param, TyperArgument) and param.required:
            args.append(values.get(param.name or "", "x"))
        elif isinstance(param, TyperOption) and param.required:
            if param.is_flag:
                args.append(param.opts[0])
            else:
                args += [param.opts[0], values.get(param.name or "", "x")]
    if path == "simulate fhir":  # its FHIR server takes any free port; the desk's is given
        args += ["--control-port", str(taken_port)]
    elif path in SERVERS and path != "run":
        args += ["--port", str(taken_port)]
    return args + BAD_OPTIONS.get(path, [])


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class _Hung(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Hung


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Outcome:
    """`cpims-adapter ARGV` in-process; an exception escaping main() is the traceback a user
    would have seen, and fails the test with it."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS_PER_COMMAND)
    try:
        code = main(argv)
    except _Hung:
        pytest.fail(f"`cpims-adapter {' '.join(argv)}` still running after {SECONDS_PER_COMMAND}s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def assert_clear(outcome: Outcome, argv: list[str]) -> None:
    """No traceback; a failure is said in one line (or, for the report commands, a report)."""
    shown = f"`cpims-adapter {' '.join(argv)}` exited {outcome.code}:\n{outcome.text}"
    assert "Traceback" not in outcome.text and "internal error" not in outcome.text, shown
    if outcome.code == 0:
        return
    # INFO lines of the log (a fresh store's migrations, a service stopping) are not errors.
    errors = [
        line for line in outcome.err.splitlines() if line.strip() and not INFO_LOG.match(line)
    ]
    if errors:
        assert len(errors) == 1, shown
        assert errors[0].startswith(("error:", "Aborted")), shown
    else:
        assert outcome.out.strip(), f"failed without saying why: {shown}"


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CPIMS_ADAPTER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "200")


def unreachable_config(tmp_path: Path, taken_port: int, closed: int | None = None) -> Path:
    closed = closed or free_port()
    config = tmp_path / "adapter.toml"
    config.write_text(
        f'[primero]\nurl = "http://127.0.0.1:{closed}"\nusername = "svc"\npassword = "pw"\n'
        f'[state]\nurl = "sqlite:///{tmp_path}/state.sqlite3"\n'
        f'[privacy]\npolicy_dir = "{ROOT}/config/policy"\nkek = "{KEK}"\n'
        f'[departments.health]\nbase_url = "http://127.0.0.1:{closed}/fhir"\n'
        'organization = "h"\n'
        f'[jobs.health]\ndepartment = "health"\nagencies = ["agency-h"]\n'
        f"[ops]\nport = {taken_port}\n"
        f'[incidents]\nsmtp_host = "127.0.0.1"\nsmtp_port = {closed}\n'
        'dpo_emails = ["dpo@example.org"]\n',
        encoding="utf-8",
    )
    return config


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_a_missing_or_garbled_config_is_one_line(
    path: str, tmp_path: Path, taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    garbled = tmp_path / "garbled.toml"
    garbled.write_text('[primero\nurl = "https://x', encoding="utf-8")
    for config, words in ((tmp_path / "nope.toml", "no such config file"), (garbled, "TOML")):
        argv = ["--config", str(config), *arguments(path, COMMANDS[path], tmp_path, taken_port)]
        outcome = run(argv, capsys)
        assert_clear(outcome, argv)
        if path not in CONFIG_FREE and path not in BAD_OPTIONS:
            assert outcome.code == 2, outcome.text
            assert words in outcome.err


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_unreachable_servers_and_an_empty_store_are_one_line(
    path: str, tmp_path: Path, taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = free_port()
    config = unreachable_config(tmp_path, taken_port, closed)
    argv = ["--config", str(config), *arguments(path, COMMANDS[path], tmp_path, taken_port)]
    outcome = run(argv, capsys)
    assert_clear(outcome, argv)
    if path in NEEDS_PRIMERO:
        assert outcome.code == 1, outcome.text
        assert f"GET http://127.0.0.1:{closed}/api/v2/" in outcome.text
        assert "connection refused" in outcome.text
    if path in SERVERS:
        assert outcome.code != 0  # refused to start: never serving on a bad setup


@pytest.mark.usefixtures("clean_env")
def test_a_case_that_is_no_case_id_is_a_usage_error(
    tmp_path: Path, taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    config = unreachable_config(tmp_path, taken_port)
    argv = ["--config", str(config), "explain", "Ayesha Khan", "--department", "health"]
    outcome = run(argv, capsys)
    assert outcome.code == 2 and "Ayesha" not in outcome.text
    assert_clear(outcome, argv)


def test_a_usage_error_is_one_line_naming_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run(["deadletter", "show", "not-a-number"], capsys)
    assert outcome.code == 2 and outcome.out == ""
    assert outcome.err.count("\n") == 1
    assert outcome.err.startswith("error: Invalid value for 'message_id': ")
    assert outcome.err.endswith("(see `cpims-adapter deadletter show --help`)\n")


def test_a_file_that_cannot_be_written_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, extract = tmp_path / "officer.pem", tmp_path / "extract.csv"
    extract.write_text("cnic_hmac\n", encoding="utf-8")
    assert run(["registry", "keygen", "--out", str(key)], capsys).code == 0
    target = tmp_path / "no-such-dir" / "extract.csv.sig"
    argv = ["registry", "sign", str(extract), "--key", str(key), "--out", str(target)]
    outcome = run(argv, capsys)
    assert outcome.code == 1
    assert outcome.err == f"error: {target}: No such file or directory\n"


@pytest.mark.usefixtures("clean_env")
def test_an_internal_error_is_one_line_without_its_text(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import adapter.cli._common as common

    def broken(path: object = None) -> None:
        raise RuntimeError("Couldn't parse case of Ayesha Khan")  # a bug quoting data

    monkeypatch.setattr(common, "load_settings", broken)
    outcome = run(["db", "status"], capsys)
    assert outcome.code == 70
    assert outcome.err.startswith("error: internal error (RuntimeError): please report it")
    assert outcome.err.count("\n") == 1 and "Ayesha" not in outcome.text

    verbose = run(["--verbose", "db", "status"], capsys)
    assert verbose.code == 70 and "Traceback" in verbose.err  # asked for: the details
