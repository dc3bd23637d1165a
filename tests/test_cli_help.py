"""Every command's --help prints its text as written: config sections such as `[jobs.*]` are
not eaten as rich markup, and flags show no `<bool>` type."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.core import TyperGroup

from adapter.cli import app, main

# A config section as help texts name it: [ops], [jobs.*], [departments.<name>.sftp].
SECTION = re.compile(r"\[[a-z_][a-z0-9_.*<>-]*\]")


def _commands() -> list[tuple[tuple[str, ...], str]]:
    """(path, the help text as written in the source) of every command and group, from the
    typer app itself, so a command added later is covered too."""
    found: list[tuple[tuple[str, ...], str]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        texts = [getattr(command, "help", None) or ""]
        texts += [getattr(param, "help", None) or "" for param in getattr(command, "params", [])]
        found.append((path, "\n".join(texts)))
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()


def test_the_commands_are_found() -> None:
    paths = {" ".join(path) for path, _ in COMMANDS}
    assert {"", "sync", "run", "primero cases", "registry review show"} <= paths
    assert len(paths) > 40


@pytest.mark.parametrize(("path", "source"), COMMANDS, ids=lambda v: " ".join(v) or "root")
def test_help_prints_every_config_section_and_no_bool_placeholder(
    path: tuple[str, ...],
    source: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one line per sentence: sections are never split
    assert main([*path, "--help"]) == 0
    shown = capsys.readouterr().out
    assert "Usage: cpims-adapter" in shown
    for section in SECTION.findall(source):
        assert section in shown, f"{' '.join(path)} --help lost {section}"
    assert "<bool>" not in shown


def test_the_sections_the_issue_names_survive(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    main(["sync", "--help"])
    main(["run", "--help"])
    shown = capsys.readouterr().out
    assert "A job from the config's [jobs.*] sections." in shown
    assert "/metrics on [ops] and" in shown
