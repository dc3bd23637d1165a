"""`cpims-adapter simulate fhir`: a real FHIR R4 server (sekmet) with a simulated hospital
desk in front of it, for rehearsing the health job end to end without writing code.

The desk answers the referral Tasks the adapter creates, as the hospital's staff would:

- on a schedule (``answer="accept"``): every ``every`` seconds it accepts each new Task
  (rejecting every ``reject_every``-th with "no-capacity"), and completes accepted ones with a
  medico-legal report ``complete_after`` seconds later (never when negative);
- on command, through a small control API on 127.0.0.1 (JSON):
  ``GET /tasks`` lists the referral Tasks (``referral_key``, ``status``);
  ``POST /tasks/{referral_key}/accept``, ``/reject`` (``{"reason": ...}``) and ``/complete``
  (``{"note": ...}``) move one along.

Everything is synthetic and on loopback; the desk never sees a name (probes are anonymous,
identified referrals pseudonymous).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import requests

from adapter.mappings.fhir_codes import REFERRAL_SYSTEM
from adapter.simulator.hospital import Hospital

log = logging.getLogger("adapter.simulator.hospital_desk")

Answer = Literal["manual", "accept"]
ACTIONS = ("accept", "reject", "complete")


@dataclass
class DeskPolicy:
    """How the desk answers on its own (see the module docstring)."""

    answer: Answer = "accept"
    every: float = 2.0
    reject_every: int = 0
    complete_after: float = 10.0


@dataclass
class HospitalDesk:
    """The scheduled answers and the control API over one FHIR server."""

    fhir_url: str
    policy: DeskPolicy = field(default_factory=DeskPolicy)
    host: str = "127.0.0.1"
    port: int = 0
    _answered: int = 0
    _accepted_at: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def control_url(self) -> str:
        assert self._server is not None
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> HospitalDesk:
        self._server = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True)]
        if self.policy.answer == "accept":
            self._threads.append(threading.Thread(target=self._schedule, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    # -- what the staff do ------------------------------------------------------------------

    def tasks(self) -> list[dict[str, str]]:
        with Hospital(self.fhir_url) as hospital:
            return [
                {"referral_key": Hospital.referral_key(t), "status": str(t["status"])}
                for t in hospital.referral_tasks()
            ]

    def act(self, action: str, referral_key: str, text: str | None = None) -> str:
        """Move one Task along; returns its new status. KeyError if there is no such Task."""
        with self._lock, Hospital(self.fhir_url) as hospital:
            if not hospital.search("Task", identifier=_identifier(referral_key)):
                raise KeyError(referral_key)
            if action == "accept":
                hospital.accept(referral_key)
                self._accepted_at[referral_key] = time.monotonic()
            elif action == "reject":
                hospital.reject(referral_key, text or "no-capacity")
            else:
                hospital.complete(referral_key, text or "Examined; report attached.")
                self._accepted_at.pop(referral_key, None)
            return str(hospital.task(referral_key)["status"])

    def tick(self) -> None:
        """One round of the schedule: answer new Tasks, complete those accepted long enough."""
        with Hospital(self.fhir_url) as hospital:
            waiting = [Hospital.referral_key(t) for t in hospital.referral_tasks("requested")]
            accepted = [Hospital.referral_key(t) for t in hospital.referral_tasks("accepted")]
        for key in sorted(waiting):
            self._answered += 1
            every = self.policy.reject_every
            self.act("reject" if every and self._answered % every == 0 else "accept", key)
        if self.policy.complete_after < 0:
            return
        now = time.monotonic()
        for key in accepted:
            since = self._accepted_at.setdefault(key, now)
            if now - since >= self.policy.complete_after:
                self.act("complete", key)

    def _schedule(self) -> None:
        while not self._stop.wait(self.policy.every):
            try:
                self.tick()
            except requests.RequestException as exc:
                # The FHIR server restarting or busy: the next tick tries again.
                log.warning("hospital desk: FHIR server not answering (%s)", type(exc).__name__)


def _identifier(referral_key: str) -> str:
    return f"{REFERRAL_SYSTEM}|{referral_key}"


def _handler(desk: HospitalDesk) -> Callable[..., BaseHTTPRequestHandler]:
    class Control(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug("control: %s", format % args)

        def _answer(self, status: HTTPStatus, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/tasks":
                self._answer(HTTPStatus.OK, {"tasks": desk.tasks()})
            else:
                self._answer(HTTPStatus.NOT_FOUND, {"error": "GET /tasks only"})

        def do_POST(self) -> None:
            parts = self.path.strip("/").split("/")
            if len(parts) != 3 or parts[0] != "tasks" or parts[2] not in ACTIONS:
                self._answer(
                    HTTPStatus.NOT_FOUND,
                    {"error": "POST /tasks/{referral_key}/accept|reject|complete"},
                )
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": "the body must be JSON"})
                return
            text = body.get("reason") or body.get("note") if isinstance(body, dict) else None
            try:
                status = desk.act(parts[2], parts[1], str(text) if text else None)
            except KeyError:
                self._answer(HTTPStatus.NOT_FOUND, {"error": "no referral Task with that key"})
                return
            except requests.HTTPError as exc:
                code = exc.response.status_code if exc.response is not None else 502
                self._answer(HTTPStatus.CONFLICT, {"error": f"the FHIR server answered {code}"})
                return
            self._answer(HTTPStatus.OK, {"referral_key": parts[1], "status": status})

    return Control


def config_lines(fhir_url: str) -> list[str]:
    """The configuration to paste so the health job talks to this server."""
    return [
        "[departments.health]",
        'connector = "fhir"',
        f'base_url = "{fhir_url}"',
        'auth = "none"',
        'organization = "civil-hospital-karachi"',
        "two_stage = true",
        "",
        "[jobs.health]",
        'department = "health"',
        'agencies = ["agency-civil-hospital-karachi"]',
        'gateway_users = ["health_gateway"]',
        'services = ["health_medical_service", "psychosocial_service"]',
        'requester_organization = "child-protection-unit-sindh"',
    ]
