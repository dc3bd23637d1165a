"""A demo world for the console: a school registered in the offender registry, a demo DPO
and a demo establishment officer with fresh random passwords (``cpims-adapter demo
--console`` prints them and serves the console over the demo's state store)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from adapter.console.accounts import Accounts, Role
from adapter.privacy.keys import KeyRing
from adapter.registry import Registry, UnknownReference
from adapter.state import StateStore

DEMO_SCHOOL = "DEMO-SCH-001"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: Role


def demo_logins(store: StateStore, keyring: KeyRing) -> list[DemoLogin]:
    """Register the demo school (once) and create a demo DPO and a demo school officer with
    random passwords. Each call makes new usernames, so a login printed by an earlier run is
    never silently changed."""
    registry = Registry.open(store, keyring)
    try:
        registry.establishment(DEMO_SCHOOL)
    except UnknownReference:
        registry.add_establishment(
            DEMO_SCHOOL,
            "Demo Government Primary School",
            (("Demo Head", "head@school.example"), ("Demo Deputy", "deputy@school.example")),
            registered_by="demo",
        )
    accounts = Accounts(store, keyring)
    suffix = secrets.token_hex(2)
    logins = []
    for name, role, school in (
        (f"demo.dpo.{suffix}", Role.dpo, None),
        (f"demo.school.{suffix}", Role.establishment_officer, DEMO_SCHOOL),
    ):
        password = secrets.token_urlsafe(12)
        accounts.add(
            name,
            display_name="Demo DPO" if role is Role.dpo else "Demo school officer",
            role=role,
            password=password,
            created_by="demo",
            establishment=school,
        )
        logins.append(DemoLogin(name, password, role))
    return logins
