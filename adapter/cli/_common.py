"""Shared CLI plumbing: the app, the --config option, output and error helpers."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
import typer.main
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from adapter import __version__
from adapter.app.logs import configure_logging
from adapter.config import Settings, load_settings
from adapter.errors import AdapterError, ConfigError, InvalidCaseReference, LeaseHeld

app = typer.Typer(
    name="cpims-adapter",
    help="Integration layer between Primero/CPIMS+ and the departments that serve children.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class State:
    config_path: Path | None = None
    verbose: bool = False


state = State()


def _version(value: bool) -> None:
    if value:
        out.print(f"cpims-adapter {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Config file (default: $CPIMS_ADAPTER_CONFIG or config/adapter.toml).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    state.config_path = config
    state.verbose = verbose


def command_tree() -> TyperGroup:
    """The whole command line as one click command, with every help text made to print as
    written: typer renders help as rich markup, which swallows a config section such as
    ``[jobs.*]`` or ``[ops]`` (STYLE.md: escape rich markup in help text). Done here, once, so
    a command added later is covered too. A flag takes no value, so no ``<bool>`` type is shown
    beside it."""
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)  # the app has sub-commands
    _print_as_written(root, typer.Context(root))
    return root


def _print_as_written(command: TyperCommand | TyperGroup, ctx: typer.Context) -> None:
    if command.help and not command.short_help:
        # The commands table shows the first paragraph; typer keeps its line breaks there.
        first = inspect.cleandoc(command.help).split("\n\n")[0]
        command.short_help = " ".join(first.split())
    if command.help:
        command.help = escape(command.help)
    if command.short_help:
        command.short_help = escape(command.short_help)
    for param in [*command.params, command.get_help_option(ctx)]:
        if not isinstance(param, TyperOption | TyperArgument):
            continue
        if param.help:
            param.help = escape(param.help)
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""  # shown instead of the type label: nothing
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            assert isinstance(sub, TyperCommand | TyperGroup)
            _print_as_written(sub, typer.Context(sub, parent=ctx))


def settings() -> Settings:
    """Load the configuration named on the command line and set up logging from it."""
    loaded = load_settings(state.config_path)
    configure_logging("DEBUG" if state.verbose else loaded.logging.level, loaded.logging.format)
    return loaded


def print_error(message: str) -> None:
    # Messages name config sections like [primero]: escape them, or rich eats them as markup.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)


def exit_code_for(exc: AdapterError) -> int:
    if isinstance(exc, ConfigError | InvalidCaseReference):
        return 2
    if isinstance(exc, LeaseHeld):
        return 75
    return 1


def parse_since(value: str | None, option: str = "--updated-since") -> datetime | None:
    """An ISO 8601 time from the command line, as aware UTC (a bare date means midnight UTC)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"'{value}' is not an ISO 8601 time; write e.g. 2025-01-31T00:00:00Z", param_hint=option
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


__all__ = ["app", "command_tree", "err", "out", "parse_since", "print_error", "settings", "state"]
