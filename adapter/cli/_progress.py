"""Progress bars for long commands (a backfill of 100k cases, a key rotation, a registry import).

Drawn on stderr, and only when stderr is a terminal: a script reading stdout, a cron mail or
a JSON log never sees them. They carry counts only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from adapter.cli._common import err

if TYPE_CHECKING:
    from adapter.jobs.sync import SyncJob
    from adapter.primero import PrimeroClient
    from adapter.primero.models import CasePage

# on_progress(done, total): total None while unknown.
OnProgress = Callable[[int, int | None], None]


def _ignore(_done: int, _total: int | None = None) -> None:
    return None


@contextmanager
def progress_bar(
    description: str, *, unit: str, enabled: bool = True, console: Console | None = None
) -> Iterator[OnProgress]:
    """Show a transient progress bar while the block runs; yields ``on_progress(done, total)``.

    A no-op unless ``enabled`` and the console (stderr by default) is a terminal.
    """
    console = console or err
    if not (enabled and console.is_terminal):
        yield _ignore
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def on_progress(done: int, total: int | None = None) -> None:
            bar.update(task, completed=done, total=total)

        yield on_progress


class _ObservedCases:
    """The job's Primero client, reporting the case listing's progress page by page.

    Interim: the sync engine takes no progress callback yet, so the CLI watches the pages
    through the client (the seam it already has); everything else passes straight through.
    """

    def __init__(self, client: PrimeroClient, on_progress: OnProgress) -> None:
        self._client = client
        self._on_progress = on_progress

    def iter_case_pages(self, *args: Any, **kwargs: Any) -> Iterator[CasePage]:
        done = 0
        for page in self._client.iter_case_pages(*args, **kwargs):
            done += len(page.records)
            # Primero's total is counted when the listing starts; edits may add a few.
            self._on_progress(done, max(page.total, done))
            yield page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def observe_pull(job: SyncJob, on_progress: OnProgress) -> None:
    """Report ``job``'s case listing (records read of Primero's total) to ``on_progress``."""
    if on_progress is _ignore:
        return
    job.client = cast("PrimeroClient", _ObservedCases(job.client, on_progress))
