"""The console in a real browser (Debian's chromium driven by Playwright) against a real
``cpims-adapter serve`` on 127.0.0.1: each role's main flow, a TOTP sign-in, refusals, the
accessibility check (axe-core) and screenshots of each page in English and Urdu.

Screenshots go to tests/console/artefacts/ (git-ignored); the path is printed. Skipped only when
/usr/bin/chromium is missing: .ci/run installs it. Never `playwright install`.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest

from adapter.config import Settings
from adapter.console.accounts import Accounts, Role
from adapter.incidents import scan_security_events
from adapter.privacy import KeyRing
from adapter.privacy.events import SecurityEventKind, record_security_event
from adapter.registry import CheckRequest, ConvictionOrder, Registry
from adapter.state import StateStore

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = Path(__file__).parent / "artefacts"
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
PASSWORD = "correct horse battery staple"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is not installed (apt-get install chromium; .ci/run does it)",
)


@dataclass
class Served:
    url: str
    store_url: str
    kek: bytes


@contextmanager
def serving(
    home: Path, state_url: str, kek: bytes, *, extra_config: str = "", port: int = 0
) -> Iterator[str]:
    """`cpims-adapter serve` with the console on, over ``state_url``, as a subprocess on
    127.0.0.1 (``port`` 0: any free one); yields its base URL, and stops it after, with no
    traceback allowed on its standard error."""
    config = home / "adapter.toml"
    config.write_text(
        '[primero]\nurl = "http://127.0.0.1:9"\nusername = "cpims-adapter"\n\n'
        f'[state]\nurl = "{state_url}"\n\n'
        "[console]\nenabled = true\ncookie_secure = false\n" + extra_config,
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "CPIMS_ADAPTER_CONFIG": str(config),
        "CPIMS_ADAPTER_PRIVACY__KEK": base64.b64encode(kek).decode(),
        "CPIMS_ADAPTER_PRIMERO__PASSWORD": "not-used",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from adapter.cli import main; sys.exit(main())",
            "serve",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"Inbound API on (http://127\.0\.0\.1:\d+)", line)
        assert match, f"serve did not start: {line!r}"
        yield match.group(1)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
        assert "Traceback" not in stderr, stderr


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A fresh world (two schools, one registered conviction, one account per role) and
    ``cpims-adapter serve`` over it, with the console on (development cookies: plain http)."""
    home = tmp_path_factory.mktemp("console-browser")
    kek = secrets.token_bytes(32)
    state_url = f"sqlite:///{home}/state.sqlite3"
    with StateStore(state_url) as store:
        ring = KeyRing.init(store, kek, ["health"])
        registry = Registry.open(store, ring)
        for number in ("SCH-001", "SCH-002"):
            registry.add_establishment(
                number,
                f"Government School {number}",
                (("Amina Khan", "amina@school.example"), ("Bilal Shah", "bilal@school.example")),
                registered_by="r.officer",
            )
        registry.ingest_conviction(
            ConvictionOrder(
                court="lhc",
                order_ref="CRL-2024-1",
                order_date="2024-01-15",
                offence_code="ppc_377a",
                cnic="35202-1234567-1",
                full_name="Muhammad Ali",
                father_name="Muhammad Aslam",
                date_of_birth="1990-05-01",
            )
        )
        # A check the reviewer must decide: the registered person's name and birth date under
        # another CNIC.
        queued = registry.check(
            CheckRequest(
                cnic="42101-7654321-3",
                full_name="Muhammad Ali",
                father_name="Muhammad Aslam",
                date_of_birth="1990-05-01",  # type: ignore[arg-type]
                consent_ref="CF-2026-000900",
                position="Driver",
                purpose="education",
            ),
            registry.establishment("SCH-002"),
        )
        assert str(queued.status) == "PENDING_REVIEW"
        # A suspected breach for the DPO.
        with store.transaction() as conn:
            record_security_event(
                conn, SecurityEventKind.AUDIT_CHAIN_BROKEN, department=None, detail="seq 3 broken"
            )
        scan_security_events(store, Settings())
        accounts = Accounts(store, ring)
        for name, role, school in (
            ("officer1", Role.establishment_officer, "SCH-001"),
            ("officer2", Role.establishment_officer, "SCH-002"),
            ("operator1", Role.operator, None),
            ("dpo1", Role.dpo, None),
            ("reviewer1", Role.reviewer, None),
        ):
            accounts.add(
                name,
                display_name=name.title(),
                role=role,
                password=PASSWORD,
                created_by="test",
                establishment=school,
            )
    with serving(home, state_url, kek) as url:
        yield Served(url, state_url, kek)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


class Visitor:
    """One person's browser context, recording CSP violations reported in its console."""

    def __init__(self, browser: Any, served: Served) -> None:
        self.context = browser.new_context(viewport={"width": 390, "height": 844})
        self.page = self.context.new_page()
        self.served = served
        self.csp_violations: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.csp_violations.append(m.text) if "Content Security Policy" in m.text else None
            ),
        )

    def goto(self, path: str) -> Any:
        return self.page.goto(self.served.url + path)

    def sign_in(self, username: str) -> None:
        self.goto("/console/sign-in")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()

    def totp(self) -> None:
        """Enrol: read the secret the page shows, type the authenticator's code."""
        secret = self.page.locator("#totp-secret").inner_text()
        self.page.get_by_label("Six-digit code").fill(pyotp.TOTP(secret).now())
        self.page.get_by_role("button", name="Continue").click()

    def shoot(self, name: str) -> None:
        ARTEFACTS.mkdir(exist_ok=True)
        path = ARTEFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")

    def accessible(self) -> None:
        """No serious or critical axe-core violation (WCAG 2 A and AA rules) on the page."""
        self.page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
        violations = self.page.evaluate(
            "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']}))"
            ".violations.filter(v => ['serious', 'critical'].includes(v.impact))"
            ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
        )
        assert violations == [], violations

    def to_urdu(self) -> None:
        self.page.get_by_role("button", name="اردو").click()
        assert self.page.locator("html").get_attribute("dir") == "rtl"

    def close(self) -> None:
        assert self.csp_violations == []
        self.context.close()


def test_establishment_officer_checks_a_person_in_english_and_urdu(
    served: Served, browser: Any
) -> None:
    officer = Visitor(browser, served)
    officer.goto("/console/sign-in")
    officer.accessible()
    officer.shoot("sign-in-en")
    officer.sign_in("officer1")
    assert officer.page.url.endswith("/console/establishment")
    page = officer.page
    page.get_by_label("CNIC or B-form number").fill("35202-1234567-1")
    page.get_by_label("Full name").fill("Muhammad Ali")
    page.get_by_label("Father's name").fill("Muhammad Aslam")
    page.get_by_label("Date of birth").fill("1990-05-01")
    page.get_by_label("Consent form reference").fill("CF-2026-000001")
    page.get_by_label("Role applied for").fill("Teacher")
    page.get_by_label("Purpose").select_option("education")
    page.get_by_role("button", name="Check", exact=True).click()
    result = page.locator("#result")
    assert "DO NOT ENGAGE" in result.inner_text()
    ref = page.locator("#check-ref").inner_text()
    assert ref.startswith("RC") and ref in page.locator("#history").inner_text()
    assert "1 of 20 today" in page.locator("#quota").inner_text()
    officer.accessible()
    officer.shoot("establishment-en")
    officer.to_urdu()
    assert "کسی فرد کی جانچ" in page.locator("h1").inner_text()
    officer.accessible()
    officer.shoot("establishment-ur")
    officer.close()

    # Another school's officer sees none of it, by history or by address.
    other = Visitor(browser, served)
    other.sign_in("officer2")
    assert ref not in other.page.locator("main").inner_text()
    other.goto(f"/console/establishment/checks/{ref}")
    assert ref not in other.page.locator("main").inner_text()
    assert "no check with that reference" in other.page.locator("main").inner_text()
    # And may not open the operator's page.
    answer = other.goto("/console/operator")
    assert answer.status == 403
    other.close()


def test_operator_signs_in_with_totp_and_sees_the_status(served: Served, browser: Any) -> None:
    operator = Visitor(browser, served)
    operator.sign_in("operator1")
    assert "/console/totp" in operator.page.url
    operator.accessible()
    operator.shoot("totp-enrolment-en")
    operator.totp()
    assert operator.page.url.endswith("/console/operator")
    assert operator.page.get_by_role("link", name="Metrics (Prometheus)").count() == 1
    operator.accessible()
    operator.shoot("operator-en")
    operator.page.get_by_role("link", name="Run history").click()
    operator.accessible()
    operator.shoot("runs-en")
    operator.to_urdu()
    operator.accessible()
    operator.shoot("runs-ur")
    operator.goto("/console/operator")
    operator.accessible()
    operator.shoot("operator-ur")
    # A forged post (no CSRF token) from the signed-in browser is refused.
    forged = operator.page.request.post(served.url + "/console/operator/outbox/1/retry", form={})
    assert forged.status == 403
    # Role escalation: the operator may not check people.
    assert operator.goto("/console/establishment").status == 403
    operator.close()


def test_dpo_sees_the_incident_countdown_closes_it_and_verifies_the_audit_chain(
    served: Served, browser: Any
) -> None:
    dpo = Visitor(browser, served)
    dpo.sign_in("dpo1")
    dpo.totp()
    assert dpo.page.url.endswith("/console/dpo")
    incident = dpo.page.locator("article.card").first
    assert "left" in incident.inner_text() or "Overdue" in incident.inner_text()
    dpo.accessible()
    dpo.shoot("dpo-en")
    with dpo.page.expect_download() as download:
        dpo.page.get_by_role("link", name="Download the notice").first.click()
    assert download.value.suggested_filename.startswith("incident-")
    dpo.page.get_by_label("What was done (10-1000 characters)").first.fill(
        "Chain restored from the backup; the DPO was told in person."
    )
    dpo.page.get_by_role("button", name="Close the incident").first.click()
    assert "No incident is open." in dpo.page.locator("main").inner_text()
    dpo.page.get_by_role("button", name="Verify the audit chain now").click()
    assert "The audit log is intact" in dpo.page.locator("#audit-result").inner_text()
    dpo.to_urdu()
    dpo.accessible()
    dpo.shoot("dpo-ur")
    dpo.goto("/console/dpo/decisions")
    dpo.accessible()
    dpo.shoot("decisions-ur")
    dpo.goto("/console/dpo/explain")
    dpo.accessible()
    dpo.shoot("explain-ur")
    dpo.page.get_by_role("button", name="English").click()
    dpo.goto("/console/dpo/decisions")
    dpo.accessible()
    dpo.shoot("decisions-en")
    dpo.goto("/console/dpo/explain")
    dpo.shoot("explain-en")
    dpo.close()


def test_reviewer_takes_opens_and_decides_a_queued_check(served: Served, browser: Any) -> None:
    reviewer = Visitor(browser, served)
    reviewer.sign_in("reviewer1")
    reviewer.totp()
    assert reviewer.page.url.endswith("/console/reviewer")
    queue = reviewer.page.locator("#queue")
    assert "SCH-002" in queue.inner_text() and "Muhammad" not in queue.inner_text()
    reviewer.accessible()
    reviewer.shoot("reviewer-en")
    reviewer.page.get_by_role("button", name="Take").first.click()
    assert "/console/reviewer/checks/" in reviewer.page.url
    assert "Muhammad Ali" in reviewer.page.locator("#submitted").inner_text()
    reviewer.accessible()
    reviewer.shoot("review-en")
    reviewer.page.get_by_label("CLEAR: not the registered person").check()
    reviewer.page.get_by_label("Reason (at least 10 characters)").fill(
        "Different CNIC; NADRA record shows another father."
    )
    reviewer.page.get_by_role("button", name="Record the decision").click()
    assert "Nothing is waiting for review." in reviewer.page.locator("#queue").inner_text()
    reviewer.to_urdu()
    reviewer.accessible()
    reviewer.shoot("reviewer-ur")
    reviewer.close()
