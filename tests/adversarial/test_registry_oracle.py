"""privacy.md §7 item 3: the registry's answers are no oracle, by size or by time, over HTTP.

An establishment that checks a registered CNIC (DO_NOT_ENGAGE), the same CNIC under another
name (PENDING_REVIEW) and an unknown CNIC (CLEAR) gets answers of exactly the same byte length,
and cannot tell them apart by response time: the time distributions pass a two-sample
Kolmogorov-Smirnov test (scipy is not a dependency; the statistic and its asymptotic p-value
are a few lines below).
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from adapter.privacy import KeyRing
from adapter.registry import Outcome, Registry, RegistrySettings
from adapter.registry.api import create_app
from adapter.state import StateStore
from tests.registry.conftest import NOW, OFFICER, order, request
from tests.support.servers import free_port

WARM_UP = 20
SAMPLES = 120  # per outcome: at p = 0.01, a KS test of 120 v 120 sees a shift of ~0.2 sd


def ks_statistic(a: list[float], b: list[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the samples'
    empirical distribution functions."""
    xs, ys = sorted(a), sorted(b)
    i = j = 0
    gap = 0.0
    while i < len(xs) and j < len(ys):
        value = min(xs[i], ys[j])
        while i < len(xs) and xs[i] == value:
            i += 1
        while j < len(ys) and ys[j] == value:
            j += 1
        gap = max(gap, abs(i / len(xs) - j / len(ys)))
    return gap


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """The asymptotic p-value of ``statistic`` for samples of sizes n and m (Kolmogorov's
    distribution, with Stephens' small-sample correction as in Numerical Recipes §14.3)."""
    effective = math.sqrt(n * m / (n + m))
    lam = (effective + 0.12 + 0.11 / effective) * statistic
    if lam < 0.2:
        return 1.0
    total = sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return max(0.0, min(1.0, 2 * total))


def test_the_ks_test_tells_different_distributions_apart_and_not_equal_ones() -> None:
    """The hand-written test has power (a 30 % shift is seen) and no bias (same source)."""
    rng = secrets.SystemRandom()
    same_a = [rng.gauss(10, 1) for _ in range(SAMPLES)]
    same_b = [rng.gauss(10, 1) for _ in range(SAMPLES)]
    shifted = [rng.gauss(13, 1) for _ in range(SAMPLES)]
    assert ks_p_value(ks_statistic(same_a, same_a), SAMPLES, SAMPLES) == 1.0
    assert ks_p_value(ks_statistic(same_a, shifted), SAMPLES, SAMPLES) < 1e-6
    # Two samples of one distribution: p < 0.001 once in a thousand runs.
    assert ks_p_value(ks_statistic(same_a, same_b), SAMPLES, SAMPLES) > 0.001
    # Kolmogorov's distribution at its tabulated 5 % and 1 % points (λ = 1.358, 1.628).
    effective = math.sqrt(SAMPLES * SAMPLES / (2 * SAMPLES))
    for lam, p in ((1.358, 0.05), (1.628, 0.01)):
        statistic = lam / (effective + 0.12 + 0.11 / effective)
        assert ks_p_value(statistic, SAMPLES, SAMPLES) == pytest.approx(p, abs=0.0005)


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry on SQLite holding one conviction; the abuse alarms are widened so a few
    hundred checks of one establishment do not lock it (they are tested in test_abuse.py)."""
    settings = RegistrySettings(
        officer_keys={},
        mismatch_min_checks=10_000,
        mismatch_alert_rate=1,
        sequential_alert_count=1000,
        subject_alert_establishments=100,
    )
    url = f"sqlite:///{tmp_path_factory.mktemp('oracle')}/state.sqlite3"
    with StateStore(url) as store:
        ring = KeyRing.init(store, secrets.token_bytes(32), ["health"], now=NOW)
        opened = Registry.open(store, ring, settings)
        opened.ingest_conviction(order())
        yield opened


@pytest.fixture
def client(registry: Registry) -> Iterator[httpx.Client]:
    config = uvicorn.Config(
        create_app(registry), host="127.0.0.1", port=free_port(), log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.02)
    _, key = registry.add_establishment(
        "ORACLE-1",
        "Oracle School",
        (("Amina Khan", "amina@school.example"), ("Bilal Shah", "bilal@school.example")),
        registered_by=OFFICER,
        daily_quota=100_000,
        monthly_quota=1_000_000,
    )
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{config.port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(10)


def _body(outcome: Outcome) -> dict[str, str]:
    if outcome is Outcome.DO_NOT_ENGAGE:
        fields = {}
    elif outcome is Outcome.PENDING_REVIEW:
        fields = {"full_name": "Ahmed Raza"}  # the registered CNIC under another name
    else:
        # An unknown CNIC and a name no entry resembles (random, never sequential).
        fields = {
            "cnic": f"42101-{secrets.randbelow(9_000_000) + 1_000_000}-3",
            "full_name": "Bilal Ahmed",
            "father_name": "Tariq Mehmood",
        }
    return request(**fields).model_dump(mode="json")


def _timed_rounds(client: httpx.Client, rounds: int) -> dict[Outcome, list[float]]:
    """Round-robin over the three outcomes in a fresh random order each round, so machine
    noise (other processes, GC) falls on every outcome alike."""
    times: dict[Outcome, list[float]] = {o: [] for o in Outcome}
    rng = secrets.SystemRandom()
    for _ in range(rounds):
        order_ = list(Outcome)
        rng.shuffle(order_)
        for outcome in order_:
            body = _body(outcome)
            started = time.perf_counter()
            response = client.post("/v1/registry/checks", json=body)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200
            assert response.json()["status"] == outcome.value
            times[outcome].append(elapsed)
    return times


def test_answers_have_one_byte_length_over_http(client: httpx.Client) -> None:
    sizes = {}
    for outcome in Outcome:
        response = client.post("/v1/registry/checks", json=_body(outcome))
        assert response.json()["status"] == outcome.value
        sizes[outcome] = (len(response.content), response.headers["content-length"])
        later = client.get(f"/v1/registry/checks/{response.json()['check_ref']}")
        assert len(later.content) == len(response.content)
    assert len(set(sizes.values())) == 1, sizes


def test_response_times_do_not_tell_hit_miss_or_pending_apart(client: httpx.Client) -> None:
    _timed_rounds(client, WARM_UP)  # connections, caches, the first page of each index
    # Retry once: at p > 0.01 a sound implementation still fails one run in a hundred per
    # comparison; two failures in a row (1 in 10,000) is a timing oracle, not bad luck.
    for _ in range(2):
        times = _timed_rounds(client, SAMPLES)
        p_values = {
            pair: ks_p_value(ks_statistic(times[pair[0]], times[pair[1]]), SAMPLES, SAMPLES)
            for pair in (
                (Outcome.DO_NOT_ENGAGE, Outcome.CLEAR),
                (Outcome.PENDING_REVIEW, Outcome.CLEAR),
                (Outcome.DO_NOT_ENGAGE, Outcome.PENDING_REVIEW),
            )
        }
        if all(p > 0.01 for p in p_values.values()):
            return
    medians = {o.value: sorted(t)[len(t) // 2] * 1000 for o, t in times.items()}
    pytest.fail(f"response times differ by outcome: p = {p_values}, median ms = {medians}")
