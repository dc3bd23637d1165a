"""The ``cpims-adapter`` command: a thin shell over the library (typer + rich).

Exit codes: 0 success; 1 the work failed (Primero unreachable, a run failed); 2 usage or
configuration error; 70 an internal error (a bug: one line, the details with --verbose); 75
skipped because another process holds the job's lease (EX_TEMPFAIL).
"""

from __future__ import annotations

import sys
import traceback

import typer

from adapter.cli import (
    _check,
    _console,
    _db,
    _decisions,
    _demo,
    _forms,
    _incidents,
    _outbox,
    _primero,
    _privacy,
    _registry,
    _retention,
    _run,
    _serve,
    _simulate,
    _status,
    _sync,
)
from adapter.cli._common import app, command_tree, exit_code_for, print_error, state
from adapter.errors import AdapterError

app.add_typer(_db.app, name="db")
app.add_typer(_primero.app, name="primero")
app.add_typer(_simulate.app, name="simulate")
_demo.register(app)
_check.register(app)
_privacy.register(app)
_sync.register(app)
_forms.register(_primero.app)
_serve.register(app)
_registry.register(app)
_retention.register(app)
_incidents.register(app)
_run.register(app)
_status.register(app)
_outbox.register(app)
_decisions.register(app)
_console.register(app)

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: every failure is one line on stderr, never a traceback."""
    try:
        return _main(argv)
    finally:
        # The global options live for one command line only: a program (or a test) that runs
        # several in one process must not inherit the previous one's --config.
        state.config_path = None
        state.verbose = False


def _main(argv: list[str] | None) -> int:
    # Standalone mode lets typer report usage errors itself (exit 2); errors the adapter
    # raises on purpose are printed as one clear line, never as a traceback.
    try:
        # Not standalone: click's own rendering of a usage error is a usage line, a hint and a
        # boxed message; here every error is the same one line.
        code = command_tree().main(args=argv, prog_name="cpims-adapter", standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print_error("aborted")
        return 1
    except typer.TyperException as exc:  # click's usage errors: a bad option, a missing file
        return _usage_error(exc)
    except AdapterError as exc:
        print_error(str(exc))
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    except OSError as exc:  # a file the command was pointed at: missing, unreadable, a folder
        where = f"{exc.filename}: " if exc.filename else ""
        print_error(f"{where}{exc.strerror or type(exc).__name__}")
        return 1
    except Exception as exc:  # noqa: BLE001 (the last line of defence: never a traceback)
        # A bug, not the operator's mistake. Its text may quote data (a record, a query), so
        # only its class is shown; --verbose prints the traceback for the report.
        if state.verbose:
            traceback.print_exc()
        print_error(
            f"internal error ({type(exc).__name__}): please report it with what you ran; "
            "`--verbose` prints the details"
        )
        return 70  # EX_SOFTWARE
    # Not standalone, click returns what `raise typer.Exit(n)` carried (commands return None).
    return code if isinstance(code, int) else 0


def _usage_error(exc: typer.TyperException) -> int:
    code = getattr(exc, "exit_code", 2)
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    if not message:  # `cpims-adapter db` alone: the help was printed instead
        return int(code)
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    print_error(" ".join(str(message).split()) + hint)
    return int(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
