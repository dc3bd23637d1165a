"""`cpims-adapter demo --console`: the demo school and logins that really sign in."""

from __future__ import annotations

from adapter.console.accounts import Accounts
from adapter.console.app import Role
from adapter.console.demo import DEMO_SCHOOL, demo_logins
from adapter.privacy import KeyRing
from adapter.registry import Registry
from adapter.state import StateStore


def test_demo_logins_sign_in_and_never_change_an_earlier_one(
    store: StateStore, ring: KeyRing
) -> None:
    first = demo_logins(store, ring)
    again = demo_logins(store, ring)
    assert {login.role for login in first} == {Role.dpo, Role.establishment_officer}
    assert {login.username for login in first}.isdisjoint(login.username for login in again)
    accounts = Accounts(store, ring)
    for login in first + again:
        account = accounts.verify_password(login.username, login.password)
        assert account is not None and account.role is login.role
    school = [a for a in accounts.list() if a.role is Role.establishment_officer]
    assert {a.establishment for a in school} == {DEMO_SCHOOL}
    assert Registry.open(store, ring).establishment(DEMO_SCHOOL).status == "active"
