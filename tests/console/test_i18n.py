"""The message catalogues: every template string has an Urdu translation, the committed .mo is
what compiling the .po gives, and Urdu pages are right-to-left."""

from __future__ import annotations

import io
import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from adapter.console.i18n import LOCALE_DIR
from tests.console.conftest import World, sign_in

CONSOLE = Path(__file__).parents[2] / "adapter" / "console"
PO = LOCALE_DIR / "ur" / "LC_MESSAGES" / "console.po"
MO = LOCALE_DIR / "ur" / "LC_MESSAGES" / "console.mo"


def template_strings() -> set[str]:
    found = extract_from_dir(
        str(CONSOLE / "templates"), method_map=[("**.html", "jinja2")], options_map={}
    )
    return {message for _, _, message, *_ in found if isinstance(message, str)}


def test_every_template_string_has_an_urdu_translation() -> None:
    strings = template_strings()
    assert len(strings) > 50
    with PO.open("rb") as handle:
        catalogue = read_po(handle)
    translated = {m.id: m.string for m in catalogue if m.id}
    missing = sorted(s for s in strings if not translated.get(s))
    assert not missing, f"translate these in {PO}: {missing}"
    for source, urdu in translated.items():
        # The same placeholders, and real Urdu script (not the English copied).
        assert re.findall(r"%\(\w+\)s", source) == sorted(
            re.findall(r"%\(\w+\)s", urdu), key=source.index
        )
        assert re.search(r"[\u0600-\u06ff]", urdu), source


def test_the_committed_mo_is_the_compiled_po() -> None:
    with PO.open("rb") as handle:
        catalogue = read_po(handle)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    want = {m.id: m.string for m in read_mo(compiled) if m.id}
    with MO.open("rb") as handle:
        got = {m.id: m.string for m in read_mo(handle) if m.id}
    assert got == want, "run: .venv/bin/pybabel compile -D console -d adapter/console/locale"


def test_urdu_pages_are_right_to_left_and_chosen_per_user(world: World) -> None:
    anonymous = world.client().get("/console/sign-in", params={"lang": "ur"}).text
    assert 'lang="ur" dir="rtl"' in anonymous and "سائن ان" in anonymous
    client = sign_in(world, world.client(), "officer1")
    page = client.get("/console/establishment").text
    assert 'dir="ltr"' in page and "Check a person" in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    client.post(
        "/console/language",
        data={"csrf_token": csrf, "locale": "ur", "back": "/console/establishment"},
    )
    urdu = client.get("/console/establishment").text
    assert 'lang="ur" dir="rtl"' in urdu and "کسی فرد کی جانچ" in urdu
    assert world.console.accounts.by_username("officer1").locale == "ur"  # type: ignore[union-attr]
