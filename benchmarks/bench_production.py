"""The whole command production runs, against a replay of its own recorded HTTP traffic.

    .venv/bin/python benchmarks/bench_production.py [--quick | --long]

**What runs.** ``cpims-adapter sync health`` (or ``sync police``) as an operator runs it: the
console script in a process of its own, a config file (``CPIMS_ADAPTER_CONFIG``), secrets in
the environment, keys made beforehand by ``cpims-adapter keys init`` (not timed; once per row,
the state store it filled is copied for each world of the row). Its peers,
each in a process of its own so that none of their CPU or memory is counted: the Primero
simulator holding a world built by ``_world.py`` (consented CP cases, each referred case with
one remote referral), the real FHIR server (sekmet-fhir, ``scripts/install-fhir-server``) with
a fresh database, or the police simulator (a REST department, ``_department.py``). The state
store is a fresh SQLite file or a fresh database on a private PostgreSQL cluster on 127.0.0.1
(``tests/support/servers.py``: fsync off, as in the tests). The job sends one identified
referral per referral (``two_stage = false``) with no rate budget (``rate_per_second = 1000``)
and writes statuses back to Primero (``write_back = true``, the default).

**The baseline.** One run of the same command, on a world built the same way, is recorded
(``_record.py``: every request in the order sent, its headers and exact body bytes). Then,
for each pair, the world is rebuilt identically (same cases, ids and timestamps; a new FHIR
database; a new copy of the keyed state store) and the command is timed unrecorded; the world is
rebuilt again and the recording is replayed (``_replay.py``: a bare ``requests.Session``,
keep-alive, sequential, same requests and bodies in the same order) in a process of its own.
Adapter and replay alternate; the figures are medians. Both are timed as whole processes
(``os.wait4``: wall clock from spawn to exit, user + system CPU, ``ru_maxrss``), so the
adapter's interpreter start and imports count against it, as they do in production. The ratio
does not depend on the adapter's design: fewer requests make both sides cheaper.

**Scaling** (SQLite, health): full syncs of 1k / 10k / 50k cases (one in ten referred;
``--long`` adds 100k), each on a world of its own; the first run after the biggest full sync
with nothing edited; then incremental runs (a CPO edits 100 referred cases, one run) in the
biggest world and in the 1k world, alternating. Requests by route come from the Primero
simulator's own counters (``/_sim/stats``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _harness import Row, median, say

from adapter.simulator.departments import API_KEY
from adapter.simulator.departments.scenario import MAPPINGS_DIR, POLICE_AGENCY, POLICE_SERVICE
from adapter.simulator.fhir_server import FhirServer, start_fhir_server
from adapter.simulator.scenario import (
    HEALTH_AGENCY,
    POLICY_DIR,
    SIM_PASSWORD,
    install_linked_records_form,
)

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
CLI = str(Path(sys.executable).parent / "cpims-adapter")
PY_SPY = str(Path(sys.executable).parent / "py-spy")
REFERRED_EVERY = 10
CHANGED = 100

# Goals of issue 15 (ratios in one run).
GOAL_SQLITE = 1.15
GOAL_POSTGRES = 1.25
GOAL_CPU = 2.0
GOAL_REQUESTS_PER_REFERRAL = 3.0
GOAL_REFERRAL_GETS = 1.1
GOAL_FULL_SYNC_50K_SECONDS = 50.0
GOAL_FIRST_RUN_BEYOND_LISTS_SECONDS = 1.0
GOAL_INCREMENTAL = 1.15
GOAL_RSS = 1.25


@dataclass(frozen=True)
class Plan:
    referrals: int  # cases in each side-by-side world, every one referred
    pairs: int  # adapter/replay pairs per row
    ladder: tuple[int, ...]  # full-sync world sizes (cases; one in ten referred)
    incremental_rounds: int
    profile: bool


PLANS = {
    "quick": Plan(100, 1, (1_000, 2_000), 1, True),
    "default": Plan(300, 3, (1_000, 10_000, 50_000), 3, True),
    "long": Plan(500, 5, (1_000, 10_000, 50_000, 100_000), 3, True),
}


@dataclass(frozen=True)
class Scenario:
    """One side-by-side row: which job, which state store."""

    label: str
    job: str  # health (FHIR) or police (REST)
    backend: str  # sqlite or postgresql
    goal: float | None


SCENARIOS = (
    Scenario("SQLite, health → real FHIR server", "health", "sqlite", GOAL_SQLITE),
    Scenario("PostgreSQL, health → real FHIR server", "health", "postgresql", GOAL_POSTGRES),
    Scenario("SQLite, police → REST simulator", "police", "sqlite", None),
)


@dataclass(frozen=True)
class Run:
    """One process, timed from spawn to exit by ``os.wait4``."""

    seconds: float
    cpu_seconds: float  # user + system, every thread
    rss_kib: int  # ru_maxrss: the process's peak resident set
    output: str = ""


def timed(command: list[str], env: dict[str, str], *, check: bool = True) -> Run:
    """Run ``command`` through ``_launch.py`` (a small process, so the command's peak RSS is
    its own); wall clock from fork to exit, CPU and peak RSS from ``os.wait4``."""
    with tempfile.NamedTemporaryFile("r", suffix=".out") as out:
        done = subprocess.run(
            [PYTHON, "-S", str(HERE / "_launch.py"), out.name, "--", *command],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        output = Path(out.name).read_text(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(f"_launch.py failed:\n{done.stderr[-2000:]}")
    cost = json.loads(done.stdout.strip().splitlines()[-1])
    if check and cost["exit"] != 0:
        raise RuntimeError(
            f"{' '.join(Path(c).name for c in command[:3])} exited {cost['exit']}:\n"
            + output[-3000:]
        )
    return Run(cost["seconds"], cost["cpu_seconds"], cost["rss_kib"], output)


@contextmanager
def child(script: str, *args: str) -> Iterator[str]:
    """Run ``benchmarks/<script>`` until the block ends; yields the URL it announced."""
    process = subprocess.Popen(
        [PYTHON, str(HERE / script), *args], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        if len(line) < 2 or line[0] != "READY":
            raise RuntimeError(f"{script} {' '.join(args)} did not start (exit {process.poll()})")
        yield line[1]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def primero_counts(primero: str) -> Counter[str]:
    """Requests the Primero simulator answered, by ``METHOD route`` (its control API left out)."""
    with requests.get(f"{primero}/_sim/stats", timeout=30) as answer:
        answer.raise_for_status()
        counts: dict[str, int] = answer.json()["requests"]
    return Counter(
        {route: n for route, n in counts.items() if not route.split(" ", 1)[1].startswith("/_sim")}
    )


class Postgres:
    """One private PostgreSQL cluster for the whole bench; a new database per world."""

    def __init__(self) -> None:
        from tests.support.servers import start_postgres

        self.server = start_postgres()
        self.made = 0

    def new_database(self, template: str = "") -> str:
        """A new database, empty or a copy of ``template`` (a URL this made)."""
        import psycopg

        self.made += 1
        name = f"bench_{self.made}"
        copy = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
        with psycopg.connect(
            f"host=127.0.0.1 port={self.server.port} user={self.server.superuser} dbname=postgres",
            autocommit=True,
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.server.url(name)

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Keys:
    """One key-encryption key and a state store holding keys made by `keys init` under it:
    the worlds of one row start from copies of it (`keys init` runs once, not per world)."""

    kek: str = field(default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode())
    template: str = ""  # state URL of the store `keys init` filled; copied for every world


@dataclass
class World:
    """Servers of one world and the config of the adapter that syncs it."""

    primero: str
    department: str  # FHIR base URL or the police simulator's URL
    job: str
    env: dict[str, str]
    state_url: str
    referred: int
    fhir: FhirServer | None = None
    primero_before: Counter[str] = field(default_factory=Counter)

    def command(self, *args: str) -> list[str]:
        return [CLI, *args]

    def sync(self, *, check: bool = True) -> Run:
        return timed(self.command("sync", self.job), self.env, check=check)

    def record(self, recording: Path) -> Run:
        return timed(
            [PYTHON, str(HERE / "_record.py"), str(recording), "--", "sync", self.job], self.env
        )

    def bases(self) -> dict[str, str]:
        return {"primero": self.primero, "department": self.department}


@contextmanager
def world(
    tmp: Path,
    job: str,
    backend: str,
    cases: int,
    referred_every: int,
    anchor: str,
    postgres: Postgres | None,
    keys: Keys | None = None,
) -> Iterator[World]:
    """A fresh world: Primero built from the same arguments and anchor, a fresh department
    (FHIR database or police simulator), a fresh state store with the keys of ``keys`` (made
    by `keys init` into the first world's store, copied into the others')."""
    keys = keys or Keys()
    with ExitStack() as stack:
        primero = stack.enter_context(
            child(
                "_world.py",
                "--cases",
                str(cases),
                "--referred-every",
                str(referred_every),
                "--department",
                job,
                "--anchor",
                anchor,
            )
        )
        install_linked_records_form(primero)
        fhir = None
        if job == "health":
            fhir = start_fhir_server(tempfile.mkdtemp(prefix="fhir-", dir=tmp))
            stack.callback(fhir.cleanup)
            department = fhir.base_url
        else:
            department = stack.enter_context(child("_department.py", "police"))
        if backend == "sqlite":
            state = Path(tempfile.mkdtemp(prefix="state-", dir=tmp)) / "state.sqlite3"
            if keys.template:
                shutil.copy2(keys.template.removeprefix("sqlite:///"), state)
            state_url = f"sqlite:///{state}"
        else:
            assert postgres is not None
            state_url = postgres.new_database(keys.template)
        config = Path(tempfile.mkdtemp(prefix="config-", dir=tmp)) / "adapter.toml"
        config.write_text(_config(primero, department, job, state_url))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CPIMS_ADAPTER_")}
        env.update(
            CPIMS_ADAPTER_CONFIG=str(config),
            CPIMS_ADAPTER_PRIMERO__PASSWORD=SIM_PASSWORD,
            CPIMS_ADAPTER_PRIVACY__KEK=keys.kek,
        )
        if job == "police":
            env["CPIMS_ADAPTER_DEPARTMENTS__POLICE__API_KEY"] = API_KEY
        if not keys.template:
            timed([CLI, "keys", "init"], env)
            if backend == "sqlite":
                template = Path(tempfile.mkdtemp(prefix="keys-", dir=tmp)) / "state.sqlite3"
                shutil.copy2(state_url.removeprefix("sqlite:///"), template)
                keys.template = f"sqlite:///{template}"
            else:
                assert postgres is not None
                keys.template = postgres.new_database(state_url)
        referred = len(range(0, cases, referred_every))
        made = World(primero, department, job, env, state_url, referred, fhir)
        made.primero_before = primero_counts(primero)
        yield made


def _config(primero: str, department: str, job: str, state_url: str) -> str:
    common = (
        f'[primero]\nurl = "{primero}"\nusername = "cpims-adapter"\n'
        f'[state]\nurl = "{state_url}"\n'
        "[sync]\nlag_seconds = 0\n"
        '[logging]\nlevel = "WARNING"\n'
        f'[privacy]\npolicy_dir = "{POLICY_DIR}"\n'
        '[decisions]\napprover_roles = ["role-cp-supervisor"]\n'
        'approvers_reason = "CPU supervisors (synthetic benchmark)"\n'
    )
    if job == "health":
        return common + (
            "[departments.health]\n"
            f'connector = "fhir"\nbase_url = "{department}"\nauth = "none"\n'
            'organization = "civil-hospital-karachi"\n'
            "two_stage = false\nrate_per_second = 1000\n"
            "[jobs.health]\n"
            f'department = "health"\npurpose = "referral"\nagencies = ["{HEALTH_AGENCY}"]\n'
            'gateway_users = ["health_gateway"]\n'
            'services = ["health_medical_service", "psychosocial_service"]\n'
            'requester_organization = "child-protection-unit-sindh"\n'
        )
    return common + (
        "[departments.police]\n"
        f'connector = "rest"\nbase_url = "{department}"\nauth = "api_key"\n'
        f'mapping_file = "{MAPPINGS_DIR / "police.toml"}"\n'
        "two_stage = false\nrate_per_second = 1000\n"
        "[jobs.police]\n"
        f'department = "police"\nagencies = ["{POLICE_AGENCY}"]\n'
        f'services = ["{POLICE_SERVICE}"]\n'
    )


# -- requests by kind ---------------------------------------------------------------------

_ID = re.compile(r"/[0-9a-fA-F-]{16,}|/\d+(?=/|$)")


def request_kind(method: str, url: str, bases: dict[str, str], job: str) -> str:
    """What a request is, for the per-referral counts: Primero list page, referral GET, …"""
    path = urlsplit(url).path
    if url.startswith(bases["primero"]):
        if method == "GET" and path == "/api/v2/cases":
            return "Primero list page (`GET /api/v2/cases`)"
        if method == "GET" and re.fullmatch(r"/api/v2/cases/[^/]+/referrals", path):
            return "Primero referral GET (`GET /api/v2/cases/{id}/referrals`)"
        if method == "GET" and re.fullmatch(r"/api/v2/cases/[^/]+", path):
            return "Primero case GET (`GET /api/v2/cases/{id}`)"
        if method == "PATCH":
            return f"Primero PATCH (`PATCH {_ID.sub('/{id}', path)}`)"
        return f"Primero other (`{method} {_ID.sub('/{id}', path)}`)"
    if job == "health":
        resource = path.split("/fhir", 1)[-1] or "/"
        query = urlsplit(url).query
        if method == "POST" and resource == "/":
            return "FHIR POST transaction (`POST /fhir`)"
        if method == "GET" and "_lastUpdated" in query:
            return "FHIR status feed page (`GET /Task?_lastUpdated=…`)"
        if method == "GET" and query:
            parameter = query.split("=", 1)[0]
            return f"FHIR GET search (`GET {_ID.sub('/{id}', resource)}?{parameter}=…`)"
        return f"FHIR {method} (`{method} {_ID.sub('/{id}', resource)}`)"
    if method == "GET":
        return f"REST status feed page (`GET {_ID.sub('/{id}', path)}`)"
    return f"REST (`{method} {_ID.sub('/{id}', path)}`)"


def _load(recording: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in recording.read_text().splitlines()]


def kinds_of(
    recording: Path, bases: dict[str, str], job: str
) -> tuple[Counter[str], dict[str, int]]:
    counts: Counter[str] = Counter()
    body_bytes: Counter[str] = Counter()
    for entry in _load(recording):
        kind = request_kind(entry["method"], entry["url"], bases, job)
        counts[kind] += 1
        body_bytes[kind] += len(base64.b64decode(entry["body"]))
    return counts, dict(body_bytes)


def is_list_page(kind: str) -> bool:
    """A page of a listing the run reads once whatever the referrals (Primero's case list,
    the department's status feed): left out of the per-referral count, shown beside it."""
    return kind.startswith("Primero list page") or "status feed page" in kind


def check_recording(recording: Path, made: World) -> None:
    """The recording holds every request Primero answered, or the replay is not the same
    traffic (a request made outside ``requests`` would be missing)."""
    recorded = sum(1 for e in _load(recording) if e["url"].startswith(made.primero))
    answered = sum((primero_counts(made.primero) - made.primero_before).values())
    if recorded != answered:
        raise RuntimeError(
            f"the recording holds {recorded} Primero requests but the simulator answered "
            f"{answered}: some request bypassed requests' HTTPAdapter.send (benchmarks/_record.py)"
        )


def replay(recording: Path, recorded_bases: dict[str, str], made: World, match: str = "") -> Run:
    command = [PYTHON, str(HERE / "_replay.py"), str(recording)]
    for key, old in recorded_bases.items():
        command += ["--map", f"{old}={made.bases()[key]}"]
    if match:
        command += ["--match", match]
    run = timed(command, made.env)
    answer = json.loads(run.output.strip().splitlines()[-1])
    if answer["status_differs"]:
        say(f"    note: {answer['status_differs']} replayed answers differ from the recording's")
    return run


# -- side by side -------------------------------------------------------------------------


@dataclass
class SideBySide:
    scenario: Scenario
    referrals: int
    adapter: list[Run]
    replay: list[Run]
    kinds: Counter[str]
    body_bytes: dict[str, int]

    def per_referral(self, runs: list[Run], what: str) -> float:
        return median([getattr(r, what) for r in runs]) / self.referrals

    @property
    def requests_per_referral(self) -> float:
        return sum(n for k, n in self.kinds.items() if not is_list_page(k)) / self.referrals


def side_by_side(
    scenario: Scenario, plan: Plan, tmp: Path, postgres: Postgres | None
) -> SideBySide:
    say(f"whole command vs replay: {scenario.label}, {plan.referrals} referrals")
    anchor = datetime.now(UTC).isoformat()
    recording = tmp / f"recording-{scenario.job}-{scenario.backend}.jsonl"

    keys = Keys()

    def fresh() -> Any:
        return world(tmp, scenario.job, scenario.backend, plan.referrals, 1, anchor, postgres, keys)

    with fresh() as made:
        made.record(recording)
        check_recording(recording, made)
        bases = made.bases()
    kinds, body_bytes = kinds_of(recording, bases, scenario.job)
    adapter_runs: list[Run] = []
    replay_runs: list[Run] = []
    for _ in range(plan.pairs):
        with fresh() as made:
            adapter_runs.append(made.sync())
        with fresh() as made:
            replay_runs.append(replay(recording, bases, made))
        a, r = adapter_runs[-1], replay_runs[-1]
        say(f"  adapter {_brief(a)}   replay {_brief(r)}")
    return SideBySide(scenario, plan.referrals, adapter_runs, replay_runs, kinds, body_bytes)


def _brief(run: Run) -> str:
    return f"{run.seconds:6.2f} s (CPU {run.cpu_seconds:5.2f} s, {run.rss_kib / 1024:4.0f} MiB)"


def side_by_side_rows(result: SideBySide) -> list[Row]:
    s = result.scenario
    adapter = median([r.seconds for r in result.adapter])
    base = median([r.seconds for r in result.replay])
    cpu_a = 1000 * result.per_referral(result.adapter, "cpu_seconds")
    cpu_r = 1000 * result.per_referral(result.replay, "cpu_seconds")
    rss_a = median([r.rss_kib for r in result.adapter]) / 1024
    rss_r = median([r.rss_kib for r in result.replay]) / 1024
    runs = f"{len(result.adapter)} pair" + ("s" if len(result.adapter) != 1 else "")
    command = f"`cpims-adapter sync {s.job}`"
    return [
        Row(
            name=f"Whole command {command} vs replay of its traffic: wall time, {s.label}, "
            f"{result.referrals} referrals",
            baseline=f"replay {base:.2f} s",
            measured=f"{adapter:.2f} s",
            ratio=adapter / base,
            goal=s.goal,
            peak_memory=f"adapter {rss_a:,.0f} MiB, replay {rss_r:,.0f} MiB",
            repetitions=runs,
        ),
        Row(
            name=f"CPU per referral (user + system) of {command} vs the replay, {s.label}",
            baseline=f"replay {cpu_r:.1f} ms",
            measured=f"{cpu_a:.1f} ms",
            ratio=cpu_a / cpu_r,
            goal=GOAL_CPU,
            repetitions=runs,
        ),
        Row(
            name=f"Requests per referral of {command} (list and status-feed pages left out), "
            f"{s.label}",
            baseline=f"budget: ≤ {GOAL_REQUESTS_PER_REFERRAL:g} per referral"
            if s.job == "health"
            else "— (no goal for REST)",
            measured=f"{result.requests_per_referral:.2f} per referral "
            f"({sum(result.kinds.values()):,} requests in all, of which "
            f"{sum(n for k, n in result.kinds.items() if is_list_page(k)):,} list and "
            "status-feed pages)",
            ratio=result.requests_per_referral / GOAL_REQUESTS_PER_REFERRAL
            if s.job == "health"
            else None,
            goal=1.0 if s.job == "health" else None,
            repetitions="1 recording",
        ),
    ]


def kinds_table(results: list[SideBySide]) -> str:
    lines = [
        "| Row | Request kind | Count | Per referral | Body bytes (mean) |",
        "|---|---|---:|---:|---:|",
    ]
    for result in results:
        for kind, n in sorted(result.kinds.items(), key=lambda kv: -kv[1]):
            mean = result.body_bytes.get(kind, 0) / n
            lines.append(
                f"| {result.scenario.label} | {kind} | {n:,} | {n / result.referrals:.2f} | "
                f"{mean:,.0f} |"
            )
    return "\n".join(lines)


def runs_table(results: list[SideBySide]) -> str:
    lines = [
        "| Row | Side | Wall (s) | CPU (s) | CPU per referral | Peak RSS |",
        "|---|---|---|---|---:|---:|",
    ]
    for result in results:
        for side, runs in (("adapter", result.adapter), ("replay", result.replay)):
            walls = ", ".join(f"{r.seconds:.2f}" for r in runs)
            cpus = ", ".join(f"{r.cpu_seconds:.2f}" for r in runs)
            per = 1000 * result.per_referral(runs, "cpu_seconds")
            rss = median([r.rss_kib for r in runs]) / 1024
            lines.append(
                f"| {result.scenario.label} | {side} | {walls} | {cpus} | {per:.1f} ms | "
                f"{rss:,.0f} MiB |"
            )
    return "\n".join(lines)


# -- scaling ------------------------------------------------------------------------------


def _edit(primero: str, round_no: int) -> None:
    done = subprocess.run(
        [PYTHON, str(HERE / "_sync_worker.py"), "edit", "--primero", primero,
         "--count", str(CHANGED), "--round", str(round_no)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"edit failed:\n{done.stderr[-2000:]}")


def _referral_gets(counts: Counter[str]) -> int:
    return sum(n for route, n in counts.items() if route.startswith("GET") and "referrals" in route)


def _list_pages(counts: Counter[str]) -> int:
    return sum(n for route, n in counts.items() if route == "GET /api/v2/cases")


def _copy_sqlite(state_url: str, tmp: Path) -> str:
    source = Path(state_url.removeprefix("sqlite:///"))
    target_dir = Path(tempfile.mkdtemp(prefix="state-copy-", dir=tmp))
    for path in source.parent.glob(source.name + "*"):
        shutil.copy2(path, target_dir / path.name)
    return f"sqlite:///{target_dir / source.name}"


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, every process: the adapter,
    the servers it talks to, and anything else), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(value) for value in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def scaling(plan: Plan, tmp: Path) -> dict[str, Any]:
    """Full syncs up the ladder; on the biggest and the 1k world, the first run after and the
    incremental runs (those two worlds stay up until the end)."""
    anchor = datetime.now(UTC).isoformat()
    biggest, smallest = max(plan.ladder), min(plan.ladder)
    full: dict[int, dict[str, Any]] = {}
    with ExitStack() as keep:
        kept: dict[int, World] = {}
        for cases in plan.ladder:
            stack = keep if cases in (biggest, smallest) else ExitStack()
            made = stack.enter_context(
                world(tmp, "health", "sqlite", cases, REFERRED_EVERY, anchor, None)
            )
            before = primero_counts(made.primero)
            busy_before = machine_busy_seconds()
            run = made.sync()
            busy = machine_busy_seconds() - busy_before
            counts = primero_counts(made.primero) - before
            full[cases] = {
                "run": run,
                "machine_busy": busy,
                "referred": made.referred,
                "referral_gets": _referral_gets(counts),
                "list_pages": _list_pages(counts),
                "primero_requests": sum(counts.values()),
            }
            say(
                f"  full sync {cases:>7,} cases: {run.seconds:6.1f} s, "
                f"CPU {run.cpu_seconds:5.1f} s, peak RSS {run.rss_kib / 1024:,.0f} MiB, "
                f"{full[cases]['referral_gets']:,} "
                f"referral GETs for {made.referred:,} referred"
            )
            if stack is keep:
                kept[cases] = made
            else:
                stack.close()

        # The first run after the full sync, nothing edited: timed on the state store; a copy
        # of the store taken before it makes a recorded twin, whose list pages are replayed.
        big = kept[biggest]
        twin = World(**{**big.__dict__, "env": {**big.env}})
        twin_url = _copy_sqlite(big.state_url, tmp)
        twin.env["CPIMS_ADAPTER_STATE__URL"] = twin_url
        before = primero_counts(big.primero)
        after_run = big.sync()
        counts = primero_counts(big.primero) - before
        recording = tmp / "recording-first-after.jsonl"
        twin.record(recording)
        pages = replay(recording, big.bases(), big, match=r"^GET [^?]*/api/v2/cases(\?|$)")
        say(
            f"  first run after the full sync of {biggest:,}: {after_run.seconds:.2f} s; its list "
            f"pages replayed: {pages.seconds:.2f} s"
        )
        first_after = {
            "run": after_run,
            "list_replay": pages,
            "primero": counts,
            "kinds": kinds_of(recording, big.bases(), "health")[0],
        }
        # The 1k world's first run after, untimed: its incremental runs start from the same
        # point as the big world's.
        kept[smallest].sync()

        incremental: dict[int, list[Run]] = {biggest: [], smallest: []}
        for round_no in range(1, plan.incremental_rounds + 1):
            for cases in (smallest, biggest):
                _edit(kept[cases].primero, round_no)
                incremental[cases].append(kept[cases].sync())
            say(
                f"  incremental run, {CHANGED} edited: among {smallest:,} "
                f"{incremental[smallest][-1].seconds:.2f} s, among {biggest:,} "
                f"{incremental[biggest][-1].seconds:.2f} s"
            )
    return {
        "full": full,
        "first_after": first_after,
        "incremental": incremental,
        "biggest": biggest,
        "smallest": smallest,
    }


def scaling_rows(result: dict[str, Any]) -> list[Row]:
    full, biggest, smallest = result["full"], result["biggest"], result["smallest"]
    big = full[biggest]
    small = full[smallest]
    rows = []
    if 50_000 in full:
        run = full[50_000]["run"]
        rows.append(
            Row(
                name="Full sync of 50,000 cases (one in ten referred), `cpims-adapter sync health`"
                ", SQLite, real FHIR server",
                baseline=f"budget: ≤ {GOAL_FULL_SYNC_50K_SECONDS:g} s",
                measured=f"{run.seconds:.1f} s (adapter CPU {run.cpu_seconds:.1f} s; the "
                f"machine busy {full[50_000]['machine_busy']:.0f} of "
                f"{(os.cpu_count() or 1) * run.seconds:.0f} core-seconds: the rest is the "
                "servers')",
                ratio=run.seconds / GOAL_FULL_SYNC_50K_SECONDS,
                goal=1.0,
                peak_memory=f"{run.rss_kib / 1024:,.0f} MiB",
                repetitions="1",
            )
        )
    gets = big["referral_gets"] / big["referred"]
    rows.append(
        Row(
            name=f"Referral GETs in a full sync of {biggest:,} cases ÷ referred cases",
            baseline=f"{big['referred']:,} referred cases",
            measured=f"{big['referral_gets']:,} referral GETs",
            ratio=gets,
            goal=GOAL_REFERRAL_GETS,
            repetitions="1 (simulator's counters)",
        )
    )
    first = result["first_after"]
    beyond = first["run"].seconds - first["list_replay"].seconds
    rows.append(
        Row(
            name=f"First run after the full sync of {biggest:,} cases, nothing edited: wall time "
            "beyond its list pages (whole process, start-up included)",
            baseline=f"budget: ≤ {GOAL_FIRST_RUN_BEYOND_LISTS_SECONDS:g} s",
            measured=f"{beyond:.2f} s ({first['run'].seconds:.2f} s − list pages replayed "
            f"{first['list_replay'].seconds:.2f} s)",
            ratio=beyond / GOAL_FIRST_RUN_BEYOND_LISTS_SECONDS,
            goal=1.0,
            peak_memory=f"{first['run'].rss_kib / 1024:,.0f} MiB",
            repetitions="1",
        )
    )
    inc_big = median([r.seconds for r in result["incremental"][biggest]])
    inc_small = median([r.seconds for r in result["incremental"][smallest]])
    cpu_big = median([r.cpu_seconds for r in result["incremental"][biggest]])
    cpu_small = median([r.cpu_seconds for r in result["incremental"][smallest]])
    rows.append(
        Row(
            name=f"Incremental run, {CHANGED} edited referred cases among {biggest:,} vs among "
            f"{smallest:,}",
            baseline=f"{inc_small:.2f} s (adapter CPU {cpu_small:.2f} s)",
            measured=f"{inc_big:.2f} s (adapter CPU {cpu_big:.2f} s)",
            ratio=inc_big / inc_small,
            goal=GOAL_INCREMENTAL,
            peak_memory=(
                f"{median([r.rss_kib for r in result['incremental'][biggest]]) / 1024:,.0f} vs "
                f"{median([r.rss_kib for r in result['incremental'][smallest]]) / 1024:,.0f} MiB"
            ),
            repetitions=str(len(result["incremental"][biggest])),
        )
    )
    rows.append(
        Row(
            name=f"Peak RSS of `cpims-adapter sync health`: full sync of {biggest:,} cases vs "
            f"{smallest:,}",
            baseline=f"{small['run'].rss_kib / 1024:,.0f} MiB",
            measured=f"{big['run'].rss_kib / 1024:,.0f} MiB",
            ratio=big["run"].rss_kib / small["run"].rss_kib,
            goal=GOAL_RSS,
            peak_memory="(this row)",
            repetitions="1 each",
        )
    )
    return rows


def ladder_table(result: dict[str, Any]) -> str:
    lines = [
        "| Cases (referred) | Wall | CPU | CPU per referral | Machine busy (all processes) "
        "| Peak RSS | Primero requests | list pages | referral GETs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cores = os.cpu_count() or 1
    for cases, full in sorted(result["full"].items()):
        run = full["run"]
        lines.append(
            f"| {cases:,} ({full['referred']:,}) | {run.seconds:.1f} s | {run.cpu_seconds:.1f} s | "
            f"{1000 * run.cpu_seconds / full['referred']:.1f} ms | "
            f"{full['machine_busy']:.0f} of {cores * run.seconds:.0f} core-s | "
            f"{run.rss_kib / 1024:,.0f} MiB | "
            f"{full['primero_requests']:,} | {full['list_pages']:,} | {full['referral_gets']:,} |"
        )
    first = result["first_after"]
    lines += [
        "",
        f"First run after the full sync of {result['biggest']:,} cases (nothing edited): "
        f"{first['run'].seconds:.2f} s wall, CPU {first['run'].cpu_seconds:.2f} s; its recorded "
        "twin (same state, copied before) made these requests:",
        "",
        "| Request kind | Count |",
        "|---|---:|",
    ]
    for kind, n in sorted(first["kinds"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {kind} | {n:,} |")
    return "\n".join(lines)


# -- profile ------------------------------------------------------------------------------

_BUCKETS = (
    ("fhir_core", "FHIR models (fhir.resources / fhir_core / pydantic)"),
    ("fhir/resources", "FHIR models (fhir.resources / fhir_core / pydantic)"),
    ("pydantic", "FHIR models (fhir.resources / fhir_core / pydantic)"),
    ("sqlalchemy", "SQLAlchemy"),
    ("sqlite3", "sqlite3"),
    ("psycopg", "psycopg"),
    ("requests/", "requests"),
    ("urllib3", "urllib3"),
    ("http/client", "http.client"),
    ("email/", "http.client (email header parsing)"),
    ("socket.py", "socket"),
    ("ssl.py", "ssl"),
    ("netrc", "netrc / proxy / environment lookups (requests trust_env)"),
    ("urllib/request", "netrc / proxy / environment lookups (requests trust_env)"),
    ("genericpath", "filesystem stat"),
    ("posixpath", "filesystem paths"),
    ("cryptography", "cryptography"),
    ("hmac", "hmac / hashlib"),
    ("hashlib", "hmac / hashlib"),
    ("json/", "json"),
    ("threading.py", "threading (locks, futures)"),
    ("concurrent/", "threading (locks, futures)"),
    ("queue.py", "threading (locks, futures)"),
    ("<frozen", "Python internals (frozen modules)"),
)
STARTUP = "start-up: imports (incl. module code they run, e.g. pydantic model building)"


def _in_adapter(path: str) -> bool:
    """py-spy names files relative to the working directory when it can."""
    return "site-packages" not in path and (path.startswith("adapter/") or "/adapter/" in path)


def _frame_file(frame: str) -> str:
    match = re.search(r"\((.*):\d+\)$", frame)
    return match.group(1) if match else frame


def _frame_name(frame: str) -> str:
    match = re.match(r"(.*) \((.*?):(\d+)\)$", frame)
    if not match:
        return frame
    name, path, _ = match.groups()
    short = path.split("site-packages/", 1)[-1].split("/adapter/", 1)
    where = f"adapter/{short[1]}" if len(short) == 2 else short[0].rsplit("/lib/python3", 1)[-1]
    return f"`{name}` ({where})"


def _bucket(frame: str) -> str:
    where = _frame_file(frame)
    if _in_adapter(where):
        return "adapter (own code)"
    for needle, bucket in _BUCKETS:
        if needle in where:
            return bucket
    return "other"


def profile(plan: Plan, tmp: Path) -> str:
    """py-spy samples of one whole ``sync health`` command (spawned by py-spy, start-up
    included); markdown for BENCHMARKS.md."""
    if not Path(PY_SPY).exists():
        return "py-spy is not installed in the venv (`scripts/bench` installs it): no profile."
    say(f"profile: py-spy record of `cpims-adapter sync health`, {plan.referrals} referrals")
    anchor = datetime.now(UTC).isoformat()
    raw = tmp / "profile.txt"
    with world(tmp, "health", "sqlite", plan.referrals, 1, anchor, None) as made:
        run = timed(
            [PY_SPY, "record", "--format", "raw", "--rate", "200", "--nonblocking",
             "--output", str(raw), "--", *made.command("sync", "health")],
            made.env, check=False,
        )  # fmt: skip
    if not raw.exists():
        tail = run.output[-800:]
        return f"py-spy could not record (`py-spy record -- command`):\n\n```\n{tail}\n```"
    stacks: list[tuple[list[str], int]] = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    total = sum(n for _, n in stacks) or 1
    by_bucket: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in stacks:
        importing = any(f.startswith("_find_and_load ") for f in frames)
        by_bucket[STARTUP if importing else _bucket(frames[-1])] += n
        if importing:
            continue
        by_leaf[_frame_name(frames[-1])] += n
        for frame in set(frames):
            where = _frame_file(frame)
            if _in_adapter(where) or "requests/" in where:
                inclusive[_frame_name(frame)] += n
    lines = [
        f"One `cpims-adapter sync health` of {plan.referrals} referrals (SQLite, real FHIR "
        f"server), spawned by `py-spy record --format raw --rate 200 --nonblocking -- "
        f"cpims-adapter sync health`: py-spy starts the command itself (no attaching to a "
        f"running process, which this sandbox's ptrace rules may refuse) and samples it from "
        f"its first instruction, start-up included. {total:,} samples of threads py-spy saw "
        f"running (threads it sees sleeping are left out; a thread inside a socket read may "
        f"still count, so socket and http.client self time is partly waiting for the "
        f"servers); wall {run.seconds:.1f} s under the profiler. Shares are of all samples.",
        "",
        "Self time by library (the innermost frame of each sample; a sample with an import "
        "anywhere on its stack counts as start-up):",
        "",
        "| Library | Samples | Share |",
        "|---|---:|---:|",
    ]
    for bucket, n in by_bucket.most_common():
        if n / total >= 0.005:
            lines.append(f"| {bucket} | {n:,} | {100 * n / total:.1f}% |")
    lines += [
        "",
        "Functions by self time, start-up left out (top 15):",
        "",
        "| Function | Share |",
        "|---|---:|",
    ]
    for name, n in by_leaf.most_common(15):
        lines.append(f"| {name} | {100 * n / total:.1f}% |")
    lines += [
        "",
        "Adapter and `requests` functions by inclusive time (samples with the function "
        "anywhere on the stack, start-up left out; top 20):",
        "",
        "| Function | Share |",
        "|---|---:|",
    ]
    for name, n in inclusive.most_common(20):
        lines.append(f"| {name} | {100 * n / total:.1f}% |")
    return "\n".join(lines)


# -- all of it ------------------------------------------------------------------------------


def measure(plan: Plan) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-production-") as name:
        tmp = Path(name)
        postgres = Postgres()
        try:
            results = [side_by_side(s, plan, tmp, postgres) for s in SCENARIOS]
        finally:
            postgres.stop()
        say(f"scaling: full syncs of {', '.join(f'{n:,}' for n in plan.ladder)} cases")
        scale = scaling(plan, tmp)
        flame = profile(plan, tmp) if plan.profile else ""
    rows = [row for result in results for row in side_by_side_rows(result)]
    rows += scaling_rows(scale)
    return {
        "rows": rows,
        "kinds": kinds_table(results),
        "runs": runs_table(results),
        "ladder": ladder_table(scale),
        "profile": flame,
    }


def main() -> None:
    mode = "quick" if "--quick" in sys.argv else "long" if "--long" in sys.argv else "default"
    result = measure(PLANS[mode])
    for row in result["rows"]:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "—"
        say(f"{row.name}: {row.measured} vs {row.baseline} = {ratio} {row.met}")
    say(result["kinds"])
    say(result["ladder"])
    say(result["profile"])


if __name__ == "__main__":
    main()
