"""Crash safety of the inbound API: `cpims-adapter serve` killed with SIGKILL while in use.

A police system posts referrals to the CPU and answers (accept, then complete) to referrals
the CPU sent it, as fast as it gets answers. When the connection drops it waits and re-sends
the same message (same ``message_id``), as a real department does. Meanwhile the server —
which also drains the accepted work into Primero — is killed at random moments and started
again. The promise (adapter/jobs/inbound/): a message is either refused by the crash (and the
re-send is the first) or stored with its work in one transaction (and the re-send is replayed);
a drain killed half way is redone harmlessly. So after quiescence every referral is one case in
Primero, every answer is applied once, every message is in the inbox once, and nothing waits in
the outbox. On SQLite and PostgreSQL; ``pytest --long`` kills many more times.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import secrets
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import sqlalchemy as sa

from adapter.jobs.inbound import CASE_NAMESPACE
from adapter.primero import PrimeroClient
from adapter.primero.linked_records import SUBFORM_FIELD
from adapter.privacy import AuditLog, KeyRing
from adapter.simulator.fault_proxy import FaultProxy
from adapter.simulator.faults import parse_plan
from adapter.simulator.fhir_server import free_port
from adapter.simulator.primero import PrimeroSimulator
from adapter.simulator.scenario import (
    CPO,
    POLICY_DIR,
    SIM_PASSWORD,
    install_linked_records_form,
    referral_status,
)
from adapter.state import StateStore, schema
from adapter.state.links import Links
from tests.jobs.crash_support import RUN_TIMEOUT, kill_when, start_cli

SEED = int(os.environ.get("CPIMS_ADAPTER_CRASH_SEED", "1234"))
API_KEY = "crash-test-police-key"
REFERRALS = 10  # the police refer this many children to the CPU
ANSWERED = 5  # and accept, then complete, this many of the CPU's referrals to them
TRIALS = 4  # kills per backend (×5 under --long)
# Between the police system and the API, a network that loses answers after the server stored
# the message (so the re-send must be a replay), delivers some messages twice, and fails some.
NETWORK_FAULTS = parse_plan(
    {
        "seed": SEED,
        "rules": [
            {"kind": "truncated", "path": "/v1/referrals", "methods": ["POST"], "rate": 0.15},
            {"kind": "duplicate", "path": "/v1/referrals", "methods": ["POST"], "rate": 0.15},
            {"kind": "error", "path": "/v1/referrals", "status": 503, "rate": 0.1},
        ],
    }
)


@dataclass
class InboundWorld:
    sim: PrimeroSimulator
    state_url: str
    kek: bytes
    config: Path
    port: int
    log: Path
    sent_to_police: list[tuple[str, str]]  # (case id, referral id) the CPU referred earlier

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CPIMS_ADAPTER_")}
        env["CPIMS_ADAPTER_CONFIG"] = str(self.config)
        env["CPIMS_ADAPTER_PRIVACY__KEK"] = base64.b64encode(self.kek).decode()
        return env


@pytest.fixture
def world(tmp_path: Path, state_url: str) -> Iterator[InboundWorld]:
    with PrimeroSimulator(cases=0) as sim:
        install_linked_records_form(sim.url)
        kek = secrets.token_bytes(32)
        with StateStore(state_url) as store:
            keyring = KeyRing.init(store, kek, ["health", "police", "birth_registration", "courts"])
            sent = [_referred_to_police(sim, store, keyring) for _ in range(ANSWERED)]
        port = free_port()
        yield InboundWorld(
            sim=sim,
            state_url=state_url,
            kek=kek,
            config=_write_config(tmp_path / "adapter.toml", sim.url, state_url, port),
            port=port,
            log=tmp_path / "serve.log",
            sent_to_police=sent,
        )


def _write_config(path: Path, primero_url: str, state_url: str, port: int) -> Path:
    key_sha256 = hashlib.sha256(API_KEY.encode()).hexdigest()
    path.write_text(
        "\n".join(
            [
                "[primero]",
                f"url = {json.dumps(primero_url)}",
                'username = "cpims-adapter"',
                f"password = {json.dumps(SIM_PASSWORD)}",
                "backoff_seconds = 0.05",
                "",
                "[state]",
                f"url = {json.dumps(state_url)}",
                "",
                "[privacy]",
                f"policy_dir = {json.dumps(str(POLICY_DIR))}",
                "",
                "[api]",
                f"port = {port}",
                'default_cpo = "cp_worker1"',
                # Retries of failed Primero work come soon: the test waits for quiescence.
                "drain_interval_seconds = 0.5",
                "",
                "[departments.police]",
                'connector = "rest"',
                'base_url = "http://127.0.0.1:9"',  # never called: the API only receives
                f"inbound_api_key_sha256 = [{json.dumps(key_sha256)}]",
                "max_attempts = 50",
                "",
                "[jobs.police]",
                'department = "police"',
                'agencies = ["agency-sindh-police"]',
                "",
            ]
        ),
        encoding="utf-8",
    )
    return path


def _referred_to_police(
    sim: PrimeroSimulator, store: StateStore, keyring: KeyRing
) -> tuple[str, str]:
    """What a police sync leaves behind: a case with a remote referral in Primero, and the
    link (tests/api/test_records.py does the same)."""
    with PrimeroClient(sim.url, auth="basic", username="cp_worker1", password=SIM_PASSWORD) as cpo:
        case_id = cpo.create_case(
            {
                "module_id": "primeromodule-cp",
                "consent_for_services": True,
                "name": "Synthetic Child",
                "sex": "female",
                "age": 12,
                "disclosure_other_orgs": True,
            }
        ).id
    answer = requests.post(
        f"{sim.url}/api/v2/cases/{case_id}/referrals",
        json={
            "data": {
                "remote": True,
                "service": "police_other_service",
                "transitioned_to_agency": "agency-sindh-police",
                "transitioned_to_remote": "Women & Child Protection Cell",
            }
        },
        auth=CPO,
        timeout=10,
    )
    answer.raise_for_status()
    referral_id = str(answer.json()["data"]["id"])
    Links(store).update(
        f"police:ref-{referral_id}",
        job="police",
        department="police",
        case_id=case_id,
        referral_id=referral_id,
        case_code=keyring.case_code(case_id, "police"),
        stage="identified",
        remote_status="requested",
    )
    return case_id, referral_id


@dataclass
class PoliceSystem:
    """The department's side: posts its messages in order, re-sending on connection errors."""

    url: str
    messages: list[tuple[str, dict[str, Any]]]
    rng: random.Random
    answers: Counter[str] = field(default_factory=Counter)
    failure: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        try:
            with httpx.Client(base_url=self.url, timeout=5, headers=headers) as http:
                for path, body in self.messages:
                    self._deliver(http, path, body)
                    time.sleep(self.rng.uniform(0, 0.1))
        except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
            self.failure = f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()

    def _deliver(self, http: httpx.Client, path: str, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            try:
                answer = http.post(path, json=body)
            except httpx.TransportError:
                self.answers["connection error"] += 1
                time.sleep(0.05)  # the server is down: wait, then send the same message again
                continue
            if answer.status_code >= 500:
                self.answers[f"{answer.status_code}"] += 1  # the proxy's answer: server gone
                time.sleep(0.05)
                continue
            if answer.status_code != 202:
                raise AssertionError(f"{path} answered {answer.status_code}: {answer.text}")
            replayed = answer.headers.get("Idempotent-Replayed") == "true"
            self.answers["replayed" if replayed else "accepted"] += 1
            return
        raise AssertionError(f"{path} was never accepted in {RUN_TIMEOUT}s")


def _messages(world: InboundWorld, rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    referrals = [
        (
            "/v1/referrals",
            {
                "message_id": str(uuid.uuid4()),
                "reference": f"WCPC-CRASH-{n:03d}",
                "child": {
                    "name": f"Crashchild {chr(ord('A') + n)}{secrets.token_hex(3)}",
                    "sex": "female",
                    "date_of_birth": "2014-05-02",
                    "district": "PK-SD-KHI",
                },
                "concern_codes": ["physically_or_mentally_abused"],
                "reason": "Found working at night.",
                "urgency": "high",
                "referring_officer": {"name": "Inspector Synthetic", "rank": "Inspector"},
            },
        )
        for n in range(REFERRALS)
    ]
    answers: list[tuple[str, dict[str, Any]]] = []
    for _, referral_id in world.sent_to_police:
        path = f"/v1/referrals/ref-{referral_id}/response"
        answers.append(
            (path, {"message_id": str(uuid.uuid4()), "action": "accept", "external_ref": "W/1"})
        )
    completions = [
        (
            f"/v1/referrals/ref-{referral_id}/response",
            {"message_id": str(uuid.uuid4()), "action": "complete", "note": "Challan submitted."},
        )
        for _, referral_id in world.sent_to_police
    ]
    # Referrals and answers interleaved; each referral's completion after its acceptance.
    mixed = referrals + answers
    rng.shuffle(mixed)
    return mixed + completions


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _pending(state_url: str) -> Counter[str]:
    outbox = schema.outbox
    with StateStore(state_url) as store, store.transaction() as conn:
        rows = conn.execute(
            sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
        ).all()
    return Counter({status: count for status, count in rows if status != "sent"})


def test_sigkill_of_the_inbound_api_loses_nothing_and_applies_nothing_twice(
    world: InboundWorld, long_mode: bool
) -> None:
    rng = random.Random(SEED)
    messages = _messages(world, rng)
    with FaultProxy(world.url, NETWORK_FAULTS) as proxy:
        police = PoliceSystem(proxy.url, messages, random.Random(SEED + 1))
        kills = _kill_and_restart(world, police, rng, TRIALS * 5 if long_mode else TRIALS)
    assert police.failure is None, police.failure
    assert kills >= 1, "every start ended before its kill"
    # Some answers were lost after their message was stored: the re-sends were replays.
    assert police.answers["replayed"] >= 1, police.answers

    _assert_each_referral_is_one_case(world, messages)
    _assert_each_answer_applied_once(world)
    with StateStore(world.state_url) as store:
        with store.transaction() as conn:
            inbox = conn.execute(
                sa.select(schema.inbox.c.message_id, sa.func.count()).group_by(
                    schema.inbox.c.message_id
                )
            ).all()
        assert sorted(str(m) for m, _ in inbox) == sorted(b["message_id"] for _, b in messages)
        assert all(n == 1 for _, n in inbox)
        report = AuditLog(store, KeyRing.open(store, world.kek)).verify()
        assert report.ok, report.problems
    assert police.answers["accepted"] + police.answers["replayed"] == len(messages)


def _kill_and_restart(
    world: InboundWorld, police: PoliceSystem, rng: random.Random, trials: int
) -> int:
    """Run the police system against servers killed ``trials`` times, then one left to run
    until quiescent; returns how many kills landed inside a server's life."""
    client = threading.Thread(target=police.run, name="police-system", daemon=True)
    client.start()
    kills = 0
    for _ in range(trials):
        if police.done.is_set():
            break
        server = start_cli(["serve"], world.env(), world.log)
        # Killed a random moment after it answers: while it takes messages and drains them.
        kills += kill_when(server, lambda: _healthy(world.url), rng.uniform(0.05, 0.8))

    # The last start is left to run until everything is in Primero.
    server = start_cli(["serve"], world.env(), world.log)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not (police.done.is_set() and _pending(world.state_url) == Counter()):
            assert time.monotonic() < deadline, f"not quiescent: {_pending(world.state_url)}"
            assert server.poll() is None, world.log.read_text(errors="replace")[-3000:]
            time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    client.join(timeout=10)
    return kills


def _assert_each_referral_is_one_case(
    world: InboundWorld, messages: list[tuple[str, dict[str, Any]]]
) -> None:
    references = [b["reference"] for path, b in messages if path == "/v1/referrals"]
    with PrimeroClient(
        world.sim.url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD
    ) as primero:
        total = primero.list_cases({"per": 1})[1]["total"]
        assert total == len(references) + len(world.sent_to_police)
        for reference in references:
            case_id = str(uuid.uuid5(CASE_NAMESPACE, f"police:{reference}"))
            case = primero.get_case(case_id)  # raises if the case was never created
            assert case["name"].startswith("Crashchild ")


def _assert_each_answer_applied_once(world: InboundWorld) -> None:
    with PrimeroClient(
        world.sim.url, auth="basic", username="cpims-adapter", password=SIM_PASSWORD
    ) as primero:
        for case_id, referral_id in world.sent_to_police:
            assert referral_status(world.sim.url, case_id, referral_id) == "done"
            rows = primero.get_case(case_id).get(SUBFORM_FIELD) or []
            assert [(r["link_key"], r["link_status"]) for r in rows] == [
                (f"police:ref-{referral_id}", "completed")
            ]
