"""The ``cpims-adapter`` command: a thin shell over the library (typer + rich).

Exit codes: 0 success; 1 the work failed (Primero unreachable, a run failed); 2 usage or
configuration error; 75 skipped because another process holds the job's lease (EX_TEMPFAIL).
"""

from __future__ import annotations

import sys

from adapter.cli import (
    _db,
    _decisions,
    _demo,
    _forms,
    _incidents,
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
from adapter.cli._common import app, exit_code_for, print_error
from adapter.errors import AdapterError

app.add_typer(_db.app, name="db")
app.add_typer(_primero.app, name="primero")
app.add_typer(_simulate.app, name="simulate")
_demo.register(app)
_primero.register_check(app)
_privacy.register(app)
_sync.register(app)
_forms.register(_primero.app)
_serve.register(app)
_registry.register(app)
_retention.register(app)
_incidents.register(app)
_run.register(app)
_status.register(app)
_decisions.register(app)

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; never shows a traceback for an error the adapter understands."""
    # Standalone mode lets typer report usage errors itself (exit 2); errors the adapter
    # raises on purpose are printed as one clear line, never as a traceback.
    try:
        app(args=argv, prog_name="cpims-adapter")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except AdapterError as exc:
        print_error(str(exc))
        return exit_code_for(exc)
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
