"""One fault model for every simulator: what to break, on which routes, how often.

A :class:`FaultPlan` is a seed and a list of :class:`FaultRule`s, validated by pydantic. Each
rule names a route pattern (a path prefix, or an ``fnmatch`` pattern when it contains ``*``),
optional methods, a ``kind`` and when it fires: at a ``rate`` (0..1, drawn from the rule's own
seeded generator) or on an exact schedule ``at`` (the N-th matching request, 1-based), each
firing lasting ``burst`` consecutive matching requests, at most ``limit`` firings in all. The
same plan and the same order of requests give the same failures (deterministic under a seed).

Kinds, and what a peer really does that way (departments.md §5, primero-api.md §7, peers.md):

- ``error``: a 5xx (``status``, default 500) before the request is carried out;
- ``throttle``: 503 or 429 with ``Retry-After: retry_after`` (a rate limiter or Primero's
  configuration lock), before the request is carried out;
- ``timeout``: the server hangs ``delay_seconds`` (set it past the client's timeout), then
  answers 504 without carrying the request out;
- ``slow``: the answer comes ``delay_seconds`` late but comes;
- ``malformed``: the request is carried out, the answer's body is cut to invalid JSON (a
  proxy's error page or a half-written buffer, with a correct ``Content-Length``);
- ``truncated``: the request is carried out, the answer announces its full ``Content-Length``
  but the connection closes half way through the body;
- ``duplicate``: the request is carried out twice (a retrying proxy or a department that
  re-sends); the second answer is returned;
- ``session_expiry``: every session / token the simulator issued stops being valid, then the
  request goes on (and gets a 401 unless the client signs in again).

Primero's "cases change while pages are read" is ``mutate_on_list`` on the plan (the Primero
simulator touches that many cases after each case list page).

Every simulator takes a plan over its control API (``POST /_sim/faults`` with ``{"seed": ..,
"rules": [..]}``; ``GET /_sim/faults`` shows what fired; ``DELETE /_sim/faults`` clears it) and
``cpims-adapter simulate ... --faults FILE`` (JSON or TOML). :class:`FaultMiddleware` applies
a plan to any ASGI app; ``adapter.simulator.fault_proxy`` puts it in front of a server we do not
control (the FHIR server).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import random
import threading
import time
import tomllib
from collections import Counter, deque
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapter.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FaultKind = Literal[
    "error", "throttle", "timeout", "slow", "malformed", "truncated", "duplicate", "session_expiry"
]
# Paths never faulted: the control API (a test must always be able to look and to stop faults).
CONTROL_PREFIX = "/_sim"


class FaultRule(BaseModel):
    """One way to fail, on one route pattern, at a rate or on a schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    path: str = "/"
    methods: list[str] = []
    rate: float = Field(0.0, ge=0.0, le=1.0)
    at: list[int] = []
    burst: int = Field(1, ge=1, le=10_000)
    limit: int | None = Field(None, ge=0)
    status: int | None = Field(None, ge=400, le=599)
    retry_after: int | None = Field(None, ge=0, le=86_400)
    delay_seconds: float = Field(0.0, ge=0.0, le=600.0)

    @model_validator(mode="after")
    def _consistent(self) -> FaultRule:
        if not self.rate and not self.at:
            raise ValueError("set rate (0..1) or at (request numbers) or the rule never fires")
        if any(n < 1 for n in self.at):
            raise ValueError("at counts matching requests from 1")
        if self.kind == "throttle" and self.status not in (None, 429, 503):
            raise ValueError("a throttle answers 429 or 503")
        if self.kind == "error" and self.status is not None and self.status < 500:
            raise ValueError("an error fault answers a 5xx status")
        if self.kind in ("timeout", "slow") and not self.delay_seconds:
            raise ValueError(f"a {self.kind} fault needs delay_seconds")
        return self

    def matches(self, method: str, path: str) -> bool:
        """True when a request's method and path fall under this rule."""
        if self.methods and method.upper() not in {m.upper() for m in self.methods}:
            return False
        if "*" in self.path or "?" in self.path:
            return fnmatch.fnmatchcase(path, self.path)
        return path.startswith(self.path)

    def answer_status(self) -> int:
        """The status an ``error`` / ``throttle`` / ``timeout`` fault answers."""
        if self.status is not None:
            return self.status
        return {"throttle": 503, "timeout": 504}.get(self.kind, 500)


class FaultPlan(BaseModel):
    """A seed and the rules (first firing rule wins); ``mutate_on_list`` for Primero."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    rules: list[FaultRule] = []
    mutate_on_list: int = Field(0, ge=0, le=1000)


def parse_plan(data: Any, *, source: str = "the fault plan") -> FaultPlan:
    """Validate untrusted plan data; errors name the field and the fix."""
    try:
        return FaultPlan.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{source} is not a valid fault plan: {problems}") from None


def load_plan(path: Path) -> FaultPlan:
    """A plan from a JSON or TOML file (``cpims-adapter simulate ... --faults FILE``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--faults {path}: cannot read the file ({exc.strerror})") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"--faults {path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} "
            f"({exc.__class__.__name__}); use a .json or .toml file"
        ) from None
    return parse_plan(data, source=f"--faults {path}")


class FaultInjector:
    """A plan in action: per-rule request counters and generators, and what fired."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._lock = threading.Lock()
        self._seen = [0] * len(plan.rules)
        self._burst_left = [0] * len(plan.rules)
        self._firings = [0] * len(plan.rules)
        # One generator per rule, so adding a rule does not change when the others fire.
        self._rngs = [random.Random(f"{plan.seed}:{i}") for i in range(len(plan.rules))]
        self.fired: Counter[str] = Counter()
        self.requests = 0
        # (monotonic time, method, path, Idempotency-Key, kind or None) of every request, so a
        # test can check what a client did after a fault (e.g. waited out Retry-After).
        self.events: deque[tuple[float, str, str, str | None, str | None]] = deque(maxlen=100_000)

    def decide(self, method: str, path: str, key: str | None = None) -> FaultRule | None:
        """The rule that fires for this request, or None (the request goes through).
        ``key`` is the request's ``Idempotency-Key``, kept in :attr:`events`."""
        if path.startswith(CONTROL_PREFIX):
            return None
        with self._lock:
            self.requests += 1
            chosen: FaultRule | None = None
            for i, rule in enumerate(self.plan.rules):
                if not rule.matches(method, path):
                    continue
                self._seen[i] += 1
                # Draw for every matching request, so a rule's firings depend only on its own
                # request count, not on which rule happened to win before it.
                drawn = self._rngs[i].random() < rule.rate
                if chosen is not None:
                    continue
                if self._burst_left[i] > 0:
                    self._burst_left[i] -= 1
                    chosen = rule
                elif (rule.limit is None or self._firings[i] < rule.limit) and (
                    self._seen[i] in rule.at or drawn
                ):
                    self._firings[i] += 1
                    self._burst_left[i] = rule.burst - 1
                    chosen = rule
            if chosen is not None:
                self.fired[chosen.kind] += 1
            self.events.append(
                (time.monotonic(), method, path, key, chosen.kind if chosen else None)
            )
            return chosen

    def report(self) -> dict[str, Any]:
        """What the plan did so far: requests seen and firings by kind."""
        with self._lock:
            return {
                "plan": self.plan.model_dump(),
                "requests": self.requests,
                "fired": dict(self.fired),
            }


class FaultMiddleware:
    """ASGI middleware applying the current plan of ``injector()`` to every request.

    ``expire_sessions`` is the simulator's own way to drop every session or token it issued.
    """

    def __init__(
        self,
        app: ASGIApp,
        injector: Callable[[], FaultInjector | None],
        expire_sessions: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.injector = injector
        self.expire_sessions = expire_sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        injector = self.injector() if scope["type"] == "http" else None
        rule = None
        if injector is not None:
            key = dict(scope.get("headers") or []).get(b"idempotency-key")
            rule = injector.decide(scope["method"], scope["path"], key.decode() if key else None)
        if rule is None:
            await self.app(scope, receive, send)
            return
        kind = rule.kind
        if kind in ("error", "throttle"):
            await send_status(send, rule.answer_status(), rule.retry_after)
        elif kind == "timeout":
            await asyncio.sleep(rule.delay_seconds)
            await send_status(send, rule.answer_status(), None)
        elif kind == "slow":
            await asyncio.sleep(rule.delay_seconds)
            await self.app(scope, receive, send)
        elif kind == "session_expiry":
            if self.expire_sessions is not None:
                self.expire_sessions()
            await self.app(scope, receive, send)
        elif kind == "duplicate":
            body = await _read_body(receive)
            await self.app(scope, _replay(body), _discard)
            await self.app(scope, _replay(body), send)
        else:
            start, body = await _capture(self.app, scope, receive)
            await _send_damaged(send, start, body, truncated=kind == "truncated")


async def send_status(send: Send, status: int, retry_after: int | None) -> None:
    """A small JSON error answer, with ``Retry-After`` when given."""
    body = json.dumps({"errors": [{"status": status, "message": "injected fault"}]}).encode()
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            # The app waits for a disconnect only after answering; never block it.
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _discard(_: Message) -> None:
    return None


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> tuple[Message, bytes]:
    """Run the app to the end and keep its answer instead of sending it."""
    start: Message = {"type": "http.response.start", "status": 500, "headers": []}
    chunks: list[bytes] = []

    async def keep(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, keep)
    return start, b"".join(chunks)


async def _send_damaged(send: Send, start: Message, body: bytes, *, truncated: bool) -> None:
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    if truncated:
        # Announce the whole body (at least one byte more than we send), send half, stop: the
        # server closes the connection and the client sees an incomplete read.
        announced = max(len(body), 2)
        headers.append((b"content-length", str(announced).encode()))
        await send({**start, "headers": headers})
        half = body[: announced // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        # Returning with the body unfinished makes uvicorn close the connection (it logs one
        # line, "ASGI callable returned without completing response").
        return
    damaged = body[: max(len(body) // 2, 1)] if len(body) > 1 else b"{"
    if _parses(damaged):
        damaged = b'{"data": ['
    headers.append((b"content-length", str(len(damaged)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": damaged})


def _parses(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True
