"""What one identified health referral document costs to build, step by step (one core).

    .venv/bin/python benchmarks/bench_mapping.py [N]

The FHIR mapping was once the sync engine's largest cost (see BENCHMARKS.md), so this splits
it: the plain-dict bundle the sync builds (``referral_bundle_json``), the content fingerprint
stored with the link, the whole ``referral`` document as ``HealthMapping`` makes it (both),
and, for comparison, the validated-model path it replaced (``build_referral_bundle`` with five
fhir.resources models, then fhir_core's ``to_json``), which tests and golden files still use.
The baseline is ``json.dumps`` of the very same bundle as a plain dict: the least any mapping
must do to produce those bytes, so each ratio says how far a step is from writing it out.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapter.mappings.fhir import (
    HealthReferral,
    OrgRef,
    build_referral_bundle,
    content_fingerprint,
    referral_bundle_json,
    to_json,
)

ORG_SYSTEM = "urn:cpims-adapter:organization"


def sample_referral(n: int = 0) -> HealthReferral:
    """A referral as the health mapping builds one from a decision (allow-listed fields)."""
    return HealthReferral(
        case_code=f"cp1.health.1.{n:052d}",
        referral_key=f"ref-8d1f5c9e-4a5b-4c3d-9e8f-{n:012d}",
        service_type="health_medical_service",
        requester_org=OrgRef(system=ORG_SYSTEM, value="child-protection-unit-sindh"),
        performer_org=OrgRef(system=ORG_SYSTEM, value="civil-hospital-karachi"),
        consent_basis="consent",
        consent_date=date(2026, 1, 2),
        urgency="1_day",
        demographics={"date_of_birth": "2015-06-15", "sex": "male", "district": "PK-SD-KHI"},
        reason_codes=("physically_or_mentally_abused",),
        authored_on=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        department="health",
    )


def per_call_ms(fn: Callable[[], object], n: int, repetitions: int = 3) -> float:
    """Milliseconds per call: the median of ``repetitions`` loops of ``n`` calls."""
    fn()
    times = []
    for _ in range(repetitions):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - started) * 1000 / n)
    return float(statistics.median(times))


def measure(n: int = 300) -> list[tuple[str, float]]:
    """``(step, ms per document)``, the baseline first."""
    referral = sample_referral()
    bundle = build_referral_bundle(referral)
    plain = json.loads(to_json(bundle))
    return [
        ("baseline: `json.dumps` of the same bundle as a plain dict", per_call_ms(
            lambda: json.dumps(plain, separators=(",", ":")), n
        )),
        ("`referral_bundle_json` (plain dicts: the sync's path)", per_call_ms(
            lambda: referral_bundle_json(referral), n
        )),
        ("`content_fingerprint` (canonical JSON of the referral, SHA-256)", per_call_ms(
            lambda: content_fingerprint(referral), n
        )),
        ("whole document as `HealthMapping.referral` builds it (both above)", per_call_ms(
            lambda: (referral_bundle_json(referral), content_fingerprint(referral)), n
        )),
        ("replaced: `build_referral_bundle` (fhir.resources models, validated)", per_call_ms(
            lambda: build_referral_bundle(referral), n
        )),
        ("replaced: `to_json(bundle)` (fhir_core serialiser) + `json.loads`", per_call_ms(
            lambda: json.loads(to_json(bundle)), n
        )),
    ]  # fmt: skip


def markdown(steps: list[tuple[str, float]]) -> str:
    base = steps[0][1]
    lines = ["| Step | ms per document | × baseline |", "|---|---:|---:|"]
    for label, ms in steps:
        lines.append(f"| {label} | {ms:.3f} | {ms / base:,.1f}× |")
    return "\n".join(lines)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print(markdown(measure(n)))


if __name__ == "__main__":
    main()
