"""The seam OIDC plugs into: verified claims find the mapped account and start the same
session a password+TOTP sign-in starts; anything unmapped is refused and audited."""

from __future__ import annotations

from fastapi import Request
from fastapi.testclient import TestClient
from starlette.responses import Response

from adapter.console.app import IdentityClaims, Role, sign_in_with_identity
from adapter.console.signin import source_of
from adapter.console.web import HOME
from adapter.privacy.audit import AuditLog
from tests.console.conftest import World

ISSUER = "https://idp.example.gov.pk/realms/sindh"


def with_oidc_callback(world: World) -> TestClient:
    """The console's app with a stand-in callback that trusts the claims it is given (the
    real one verifies an ID token first: adapter/console/oidc.py)."""
    console = world.console
    console_app = next(r for r in world.app.routes if getattr(r, "path", "") == "/console").app  # type: ignore[attr-defined]

    @console_app.get("/test-callback")
    async def callback(request: Request) -> Response:
        claims = IdentityClaims(ISSUER, request.query_params["sub"], "a@x.example", "A")
        visit = sign_in_with_identity(console, console.visit(request), claims, source_of(request))
        if visit is None or visit.account is None:
            return Response(status_code=403)
        return console.redirect(visit, HOME[visit.account.role])

    return world.client()


def test_verified_claims_start_the_mapped_accounts_session(world: World) -> None:
    world.console.accounts.add(
        "ayesha.oidc",
        display_name="Ayesha",
        role=Role.dpo,
        password=None,
        created_by="test",
        oidc_issuer=ISSUER,
        oidc_subject="f3a9-subject",
    )
    client = with_oidc_callback(world)
    client.get("/console/sign-in")
    anonymous = client.cookies["console"]
    answer = client.get("/console/test-callback", params={"sub": "f3a9-subject"})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/dpo"
    assert client.cookies["console"] != anonymous  # a new session id, as at any sign-in
    assert client.get("/console/dpo").status_code == 200
    entries = [r.entry for r in AuditLog(world.console.store, world.console.keyring).entries()]
    signed_in = [e for e in entries if e["event"] == "console_sign_in"]
    assert (
        signed_in[-1]["recorded_by"] == "ayesha.oidc" and signed_in[-1]["reason"] == "method=oidc"
    )


def test_an_unmapped_or_disabled_identity_is_refused(world: World) -> None:
    world.console.accounts.add(
        "gone.oidc",
        display_name="Gone",
        role=Role.operator,
        password=None,
        created_by="test",
        oidc_issuer=ISSUER,
        oidc_subject="gone-subject",
    )
    world.console.accounts.disable("gone.oidc")
    client = with_oidc_callback(world)
    assert client.get("/console/test-callback", params={"sub": "nobody"}).status_code == 403
    assert client.get("/console/test-callback", params={"sub": "gone-subject"}).status_code == 403
    assert client.get("/console/dpo").status_code == 303
    entries = [r.entry for r in AuditLog(world.console.store, world.console.keyring).entries()]
    assert any(e.get("reason") == "method=oidc;problem=unmapped" for e in entries)
