"""`cpims-adapter demo`: the main job, end to end, on embedded defaults.

The report tells one story per department that a child protection officer and an IT officer
both follow: referrals found in Primero, refused by the privacy policy (and why, in words),
probed anonymously, accepted by the department, sent identified, and the outcomes back in
Primero. Each referral is counted once, not once per run.
"""

from __future__ import annotations

import base64
from collections import Counter
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import SecretStr
from rich import box
from rich.table import Column, Table

from adapter.app.logs import configure_logging
from adapter.cli._common import out
from adapter.config import Settings, StateSettings
from adapter.config.console import ConsoleSettings
from adapter.config.privacy import PrivacySettings
from adapter.privacy import KeyRing
from adapter.state import StateStore

# The demo's driver lives with the simulators it drives (docs/architecture.md): it loads only
# when the command runs, so no production command imports a simulator.
if TYPE_CHECKING:
    from adapter.simulator.demo import DepartmentRun

# Refusal reasons are the policy's own sentences (adapter/privacy/disclosure.py, consent.py);
# these say the same in a CPO's words. An unknown reason is shown as the policy wrote it.
_IN_WORDS = (
    ("consent refused or withdrawn", "consent to share is refused or withdrawn in Primero"),
    ("no consent recorded", "no consent to share is recorded in Primero"),
    ("no consent rule for", "only child-protection and GBV cases may be shared"),
    ("second person's approval", "an S3 case waits for a second person's approval"),
    ("asks for no service", "the referral asks for no service this department provides"),
    ("no policy for department", "no disclosure policy for this department and purpose"),
)


_COLUMNS = ("found", "refused", "probed", "accepted", "identified", "outcomes")


def register(root: typer.Typer) -> None:
    root.command("demo")(demo)


def demo(
    cases: Annotated[int, typer.Option(min=0, help="Synthetic background cases in Primero.")] = 300,
    console: Annotated[
        bool,
        typer.Option(
            help="Afterwards, serve the web console over the demo's state on 127.0.0.1 and print "
            "a demo DPO's and a demo school officer's sign-in (Ctrl-C stops it)."
        ),
    ] = False,
) -> None:
    """Referrals from a Primero simulator to a FHIR server and three departments, with a report."""
    from adapter.simulator.demo import run_demo  # lazy: a developer tool, see above

    configure_logging("WARNING")
    result = run_demo(cases=cases, say=lambda line: out.print(line, highlight=False))
    out.print()
    out.print("[bold]What happened to every referral, department by department[/]")
    for part in result.departments:
        for line in story(part):
            out.print(line, highlight=False)
    summary = Table(
        Column("department", no_wrap=True),
        *(Column(name, no_wrap=True, justify="right") for name in _COLUMNS),
        title="Demo: every referral counted once",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    for part in result.departments:
        summary.add_row(
            part.department,
            str(part.found),
            str(part.refused()),
            str(part.probed) if part.probed else "-",
            str(part.accepted),
            str(part.identified),
            str(part.outcomes_back),
        )
    out.print(summary)
    out.print(
        f"FHIR server: {result.tasks} Tasks (one per probe), {result.service_requests} "
        "ServiceRequests (one per identified referral)."
    )
    statuses = "; ".join(f"{p.department} {_counts(p.statuses)}" for p in result.departments)
    out.print(f"Primero referral statuses of the demo's new referrals: {statuses}.")
    out.print(f"state kept in {result.state_url}")
    if not result.ok:
        for problem in result.problems:
            out.print(f"[red]problem:[/] {problem}")
        raise typer.Exit(1)
    out.print(
        "[green]demo passed: every referral once, identified data only after acceptance, "
        "outcomes visible in Primero, nothing sent twice; police, birth registration and "
        "courts the same way[/]"
    )
    if console:
        serve_demo_console(result.state_url, result.kek)
    else:
        out.print(
            "The web console over this demo's state, with a demo DPO's and a demo school "
            "officer's sign-in: scripts/demo --console"
        )


def serve_demo_console(state_url: str, kek: bytes) -> None:
    """The inbound API with the console on, over the demo's store, until Ctrl-C."""
    from adapter.api.inbound import inbound_app  # lazy: only `demo --console` serves
    from adapter.api.server import serve_api
    from adapter.console.demo import demo_logins

    settings = Settings(
        state=StateSettings(url=state_url),
        privacy=PrivacySettings(kek=SecretStr(base64.b64encode(kek).decode())),
        # Plain http on loopback: the development cookie override, refused anywhere else.
        console=ConsoleSettings(enabled=True, cookie_secure=False),
    )
    with StateStore(state_url) as store:
        logins = demo_logins(store, KeyRing.open(store, kek))
        app = inbound_app(settings, store)

        def ready(url: str) -> None:
            out.print(f"[bold]Web console:[/] {url}/console/", highlight=False)
            for login in logins:
                second = " (sets up TOTP at first sign-in)" if login.role == "dpo" else ""
                out.print(
                    f"  {login.role}: {login.username} / {login.password}{second}",
                    highlight=False,
                )
            out.print("Ctrl-C stops it.")

        serve_api(lambda: app, settings.api, host="127.0.0.1", port=0, on_ready=ready)


def story(part: DepartmentRun) -> list[str]:
    """One department's story in lines of words and counts (no names, ids or codes)."""
    two_stage = part.probed > 0
    before = part.refused("probe") if two_stage else part.refused()
    lines = [f"{part.department}: {part.found} referrals to the department found in Primero"]
    lines += _refusals(part, "probe" if two_stage else None, before, "before anything was sent")
    if two_stage:
        lines.append(
            f"  {part.probed} sent as anonymous capacity probes (no name, no case code): the "
            f"department accepted {part.accepted}, declined {part.declined}"
        )
        after = part.refused("identified")
        lines += _refusals(part, "identified", after, "after acceptance, nothing identified sent")
        lines.append(f"  {part.identified} sent identified (under a case code) after acceptance")
    else:
        lines.append(
            f"  {part.identified} sent identified (under a case code; this department gets no "
            "capacity probe)"
        )
        lines.append(f"  the department {part.accepted_as.format(n=part.accepted)}")
    lines.append(
        f"  {part.outcomes_back} outcomes back in Primero, of {sum(part.outcomes.values())} "
        f"referrals carried: {_counts(part.outcomes).replace('_', ' ')}"
    )
    return lines


def _refusals(part: DepartmentRun, stage: str | None, total: int, when: str) -> list[str]:
    if not total:
        return [f"  0 refused by the privacy policy {when}"]
    words: Counter[str] = Counter()
    for (at, reason), count in part.refusals.items():
        if stage in (None, at):
            words[in_words(reason)] += count
    said = "; ".join(f"{text} ({count})" for text, count in words.most_common())
    return [f"  {total} refused by the privacy policy {when}: {said}"]


def in_words(reason: str) -> str:
    """A refusal reason as a CPO would say it."""
    for marker, words in _IN_WORDS:
        if marker in reason:
            return words
    return reason


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "-"
