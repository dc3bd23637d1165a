"""Sign-in through the province's identity provider in a real browser: Debian's chromium
(Playwright) against a real ``cpims-adapter serve`` with ``[console.oidc]`` set, and a real
OpenID Connect provider (oidc-provider-mock) on 127.0.0.1 whose form the browser fills in.

Skipped only when /usr/bin/chromium is missing (.ci/run installs it)."""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapter.console.accounts import Accounts, Role
from adapter.privacy import KeyRing
from adapter.privacy.audit import AuditLog
from adapter.registry import Registry
from adapter.state import StateStore
from tests.console.test_browser import (  # noqa: F401 - the browser fixture
    CHROMIUM,
    Served,
    Visitor,
    browser,
    serving,
)
from tests.support.oidc_provider import OidcProviderMock

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is not installed (apt-get install chromium; .ci/run does it)",
)


def _free_port() -> int:
    # The provider must know the callback's port before serve starts.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served_with_oidc(
    tmp_path: Path, oidc_provider: OidcProviderMock
) -> Iterator[tuple[Served, OidcProviderMock]]:
    """``cpims-adapter serve`` with the console and its OIDC sign-in on, one school officer
    whose account is linked to the provider's subject ``head-sch001``."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    client = oidc_provider.register_client(f"{base}/console/oidc/callback")
    secret = tmp_path / "oidc-client-secret"
    secret.write_text(client.client_secret, encoding="utf-8")
    secret.chmod(0o600)
    oidc_provider.add_user("head-sch001", name="Head Teacher")
    kek = secrets.token_bytes(32)
    state_url = f"sqlite:///{tmp_path}/state.sqlite3"
    with StateStore(state_url) as store:
        ring = KeyRing.init(store, kek, ["health"])
        Registry.open(store, ring).add_establishment(
            "SCH-001",
            "Government School SCH-001",
            (("Amina Khan", "amina@school.example"), ("Bilal Shah", "bilal@school.example")),
            registered_by="r.officer",
        )
        Accounts(store, ring).add(
            "head.sch001",
            display_name="Head Teacher",
            role=Role.establishment_officer,
            password=None,
            created_by="test",
            establishment="SCH-001",
            oidc_issuer=oidc_provider.issuer,
            oidc_subject="head-sch001",
        )
    oidc = (
        "\n[console.oidc]\n"
        f'issuer = "{oidc_provider.issuer}"\n'
        f'client_id = "{client.client_id}"\n'
        f'client_secret_file = "{secret}"\n'
        f'redirect_uri = "{base}/console/oidc/callback"\n'
        f'post_logout_redirect_uri = "{base}/console/sign-in"\n'
    )
    with serving(tmp_path, state_url, kek, extra_config=oidc, port=port) as url:
        yield Served(url, state_url, kek), oidc_provider


def test_a_school_officer_signs_in_at_the_provider_and_out_again(
    served_with_oidc: tuple[Served, OidcProviderMock],
    browser: Any,  # noqa: F811 - the fixture imported above
) -> None:
    served, provider = served_with_oidc
    officer = Visitor(browser, served)
    officer.goto("/console/establishment")  # not signed in: to the sign-in page
    officer.accessible()
    officer.page.get_by_role("link", name="Sign in with the identity provider").click()
    # The provider's own page: the person types who they are and authorises.
    assert officer.page.url.startswith(provider.issuer)
    officer.page.get_by_placeholder("sub").fill("head-sch001")
    officer.page.get_by_role("button", name="Authorize").click()
    officer.page.wait_for_url(f"{served.url}/console/establishment")
    assert officer.page.get_by_role("heading", level=1).count() == 1
    assert "Government School SCH-001" in officer.page.content()
    officer.accessible()
    officer.shoot("oidc-establishment-en")
    officer.page.get_by_role("button", name="Sign out").click()
    # The console's session ends, then the provider's end-session page.
    officer.page.wait_for_url(re.compile(re.escape(provider.issuer) + r"/oauth2/end_session"))
    officer.goto("/console/establishment")
    assert officer.page.url.startswith(f"{served.url}/console/sign-in")
    officer.close()
    with StateStore(served.store_url) as store:
        entries = [r.entry for r in AuditLog(store, KeyRing.open(store, served.kek)).entries()]
    events = [
        (e["event"], e.get("reason")) for e in entries if e.get("recorded_by") == "head.sch001"
    ]
    assert ("console_sign_in", "method=oidc") in events
    assert "console_sign_out" in [event for event, _ in events]
