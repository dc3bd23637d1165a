"""The console's languages: English (the source strings) and Urdu, from Babel message
catalogues in ``adapter/console/locale/<lang>/LC_MESSAGES/console.{po,mo}``.

The compiled ``.mo`` files are committed; ``tests/console/test_i18n.py`` fails when one is not
what compiling its ``.po`` gives, or when a template string has no Urdu translation. After
editing a template: ``pybabel extract -F adapter/console/babel.cfg -o
adapter/console/locale/console.pot adapter/console``, ``pybabel update -D console -i …pot -d
adapter/console/locale``, translate, ``pybabel compile -D console -d adapter/console/locale``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.support import NullTranslations, Translations

LOCALES = ("en", "ur")
DOMAIN = "console"
LOCALE_DIR = Path(__file__).parent / "locale"


@cache
def translations(locale: str) -> NullTranslations:
    """The catalogue for ``locale`` (English is the source text: no catalogue)."""
    if locale == "en":
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [locale], DOMAIN)
