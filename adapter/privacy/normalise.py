"""Identifier and name normalisation (privacy.md §4.1, §4.2, adversarial list §7 items 12-16).

Every function here takes untrusted text and either returns a canonical form or raises
:class:`IdentifierError` whose message describes the *shape* problem, never the value.

* CNIC / SNIC / NICOP / B-Form (CRC): 13 digits, written ``#####-#######-#``.
* Phone numbers: E.164 (``+923001234567``); mobile vs landline is reported, the carrier never.
* Names: a folding *key* for matching Urdu/Sindhi and Latin spellings; the display value is
  always kept as entered.
* Scripts: mixed-script and confusable detection (Cyrillic ``а`` inside "Muhаmmad").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import phonenumbers

from adapter.privacy.errors import IdentifierError

MAX_ID_INPUT = 64  # a CNIC with every separator doubled fits; 10 kB inputs are refused early
MAX_PHONE_INPUT = 40
# Characters people put between digit groups. NFKC already maps the fullwidth forms.
_SEPARATORS = frozenset("-‐‑‒–—―−﹘﹣ .")


# --- digits and invisible characters ------------------------------------------------------


def strip_invisible(text: str) -> str:
    """Drop format characters (category Cf: ZWSP, ZWNJ, ZWJ, LRM, RLM, bidi overrides, BOM,
    soft hyphen). They are invisible, so they must never make two values differ."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def ascii_digits(text: str) -> str:
    """Map every decimal digit (Urdu ۰-۹, Arabic-Indic ٠-٩, fullwidth, Devanagari …) to ASCII."""
    return "".join(
        str(unicodedata.decimal(ch)) if unicodedata.category(ch) == "Nd" else ch for ch in text
    )


def _identifier_chars(raw: object, *, limit: int, label: str) -> str:
    if not isinstance(raw, str):
        raise IdentifierError(f"{label} must be text, got {type(raw).__name__}.")
    if len(raw) > limit:
        raise IdentifierError(f"{label} is {len(raw)} characters long; at most {limit} allowed.")
    return ascii_digits(strip_invisible(unicodedata.normalize("NFKC", raw)))


# --- CNIC and B-Form / CRC ------------------------------------------------------------------


def normalise_cnic(raw: str, *, label: str = "CNIC") -> str:
    """The canonical 13-digit string of a CNIC (or SNIC, NICOP, POC, B-Form/CRC).

    Accepts Urdu, Arabic-Indic and fullwidth digits, any dash or space between groups and
    invisible characters anywhere. Requires 13 digits with a province digit 1-8 (8 = AJK,
    validator.js #2776). Does *not* check the last digit's parity against sex: NADRA lets
    transgender persons choose it (privacy.md §4.1), so it proves nothing.
    """
    text = _identifier_chars(raw, limit=MAX_ID_INPUT, label=label)
    digits = "".join(ch for ch in text if ch not in _SEPARATORS and not ch.isspace())
    if digits and (not digits.isascii() or not digits.isdigit()):
        raise IdentifierError(
            f"{label} may contain only digits, dashes and spaces; found other characters."
        )
    if len(digits) != 13:
        raise IdentifierError(f"{label} must have 13 digits; found {len(digits)}.")
    if digits[0] not in "12345678":
        raise IdentifierError(
            f"{label} must start with a province digit 1-8; found {digits[0]} (check the number)."
        )
    return digits


def normalise_crc(raw: str) -> str:
    """The canonical 13 digits of a B-Form / Child Registration Certificate number (the same
    shape and rules as a CNIC; only the error messages say "B-Form/CRC")."""
    return normalise_cnic(raw, label="B-Form/CRC")


def format_cnic(digits: str) -> str:
    """``#####-#######-#`` from canonical digits."""
    return f"{digits[:5]}-{digits[5:12]}-{digits[12]}"


def mask_cnic(digits: str) -> str:
    """``35202-*******-1``: locality and check digit only, for screens and explanations."""
    return f"{digits[:5]}-*******-{digits[12]}"


# --- phone numbers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Phone:
    """A phone number in E.164, and whether it is a mobile (landlines cannot take SMS)."""

    e164: str
    mobile: bool


def normalise_phone(raw: str, *, mobile_only: bool = False) -> Phone:
    """E.164 for a Pakistani number in any usual spelling (``03001234567``, ``0300-1234567``,
    ``+92 300 1234567``, ``0092…``, ``92…``, ``3001234567``, Urdu digits), or a foreign number
    given with ``+``/``00``. Raises IdentifierError for invalid numbers, and for landlines when
    ``mobile_only``. The carrier is never looked up: number portability makes it a guess
    (privacy.md §4.1) and storing it adds nothing.
    """
    text = _identifier_chars(raw, limit=MAX_PHONE_INPUT, label="phone number")
    compact = "".join(
        ch for ch in text if ch not in _SEPARATORS and ch not in "()" and not ch.isspace()
    )
    body = compact[1:] if compact.startswith("+") else compact
    if not body.isascii() or not body.isdigit():
        raise IdentifierError("phone number may contain only digits, +, spaces, dashes, dots.")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    try:
        number = phonenumbers.parse(compact, "PK")
    except phonenumbers.NumberParseException:
        raise IdentifierError("phone number cannot be parsed (check the digits).") from None
    if not phonenumbers.is_valid_number(number):
        raise IdentifierError(
            "phone number is not valid for its country (a Pakistani mobile is 03XX plus 7 digits)."
        )
    kind = phonenumbers.number_type(number)
    mobile = kind in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )
    if mobile_only and not mobile:
        raise IdentifierError("phone number is a landline; a mobile number is required here.")
    return Phone(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), mobile)


# --- names ------------------------------------------------------------------------------------

_TATWEEL = "\u0640"
# Letter folds NFKC does not do (privacy.md §4.2, all measured). Matching keys only.
_LETTER_FOLDS = str.maketrans(
    {
        "\u064a": "\u06cc",  # ي Arabic yeh → ی Farsi yeh
        "\u0649": "\u06cc",  # ى alef maksura → ی
        "\u06d0": "\u06cc",  # ې Pashto yeh → ی
        "\u0643": "\u06a9",  # ك Arabic kaf → ک keheh
        # ڪ Sindhi swash kaf → ک. In Sindhi spelling ڪ is the plain k and ک the aspirate, so
        # this fold trades Sindhi precision for recall across keyboards, as issue 3 asks.
        "\u06aa": "\u06a9",
        "\u0647": "\u06c1",  # ه Arabic heh → ہ heh goal
        "\u06be": "\u06c1",  # ھ do-chashmi heh → ہ (see keep_aspirates)
        "\u06c3": "\u06c1",  # ۃ teh marbuta goal → ہ
        "\u0629": "\u06c1",  # ة teh marbuta → ہ (فاطمة ~ فاطمہ)
        "\u0623": "\u0627",  # أ alef with hamza above → ا
        "\u0625": "\u0627",  # إ alef with hamza below → ا
        "\u0671": "\u0627",  # ٱ alef wasla → ا
    }
)
# Urdu consonants that take an aspirate ھ (بھ پھ تھ ٹھ جھ چھ دھ ڈھ ڑھ کھ گھ لھ مھ نھ).
_ASPIRABLE = frozenset("بپتٹجچدڈڑکگلمنك")
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)


def name_key(text: str, *, keep_aspirates: bool = False) -> str:
    """A folding key under which spelling variants of one name compare equal.

    Latin: NFKC (fullwidth → ASCII), accents dropped, case-folded. Arabic script: yeh, kaf and
    heh variants folded, tatweel, harakat and hamza/madda marks dropped, ZWNJ/ZWJ and other
    invisible characters removed, digits mapped to ASCII. NFC and NFD inputs give the same key.
    Punctuation becomes a single space.

    ``keep_aspirates``: by default ھ and ه fold into ہ, so keyboards that type one for the other
    still match. With ``True`` an aspirate after a consonant (بھ, کھ, and ه typed for it) is kept
    as ھ, for phonetic tokenisers that need the distinction (privacy.md §4.2).
    """
    text = unicodedata.normalize("NFKC", strip_invisible(text))
    if keep_aspirates:
        text = _mark_aspirates(text)
    # NFKD splits precomposed letters into base + marks (آ → ا + madda, ئ → ي + hamza, é → e +
    # acute); dropping every mark removes harakat, madda, hamza-above and Latin accents at once.
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(
        ch for ch in decomposed if unicodedata.category(ch) != "Mn" and ch != _TATWEEL
    )
    folded = ascii_digits(stripped).translate(_LETTER_FOLDS)
    if keep_aspirates:
        folded = folded.replace("\x00", "\u06be")
    folded = unicodedata.normalize("NFC", folded).casefold()
    return " ".join(_NON_WORD.sub(" ", folded).split())


def _mark_aspirates(text: str) -> str:
    # A placeholder survives the heh fold below and becomes ھ again afterwards.
    out: list[str] = []
    for ch in text:
        if ch in ("\u06be", "\u0647") and out and out[-1] in _ASPIRABLE:
            out.append("\x00")
        else:
            out.append(ch)
    return "".join(out)


# --- scripts and confusables ------------------------------------------------------------------

# Cyrillic and Greek letters that render like Latin ones (the common homoglyph set).
_LATIN_LOOKALIKES = frozenset("аеорсухіјѕԁԛԝһӏАВЕКМНОРСТХІЈЅԚԜαβεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ")


@dataclass(frozen=True)
class ScriptProfile:
    """The scripts of a name's letters, and the reasons to flag it.

    ``mixed``: letters from more than one script (Latin + Arabic in one field, or Latin +
    Cyrillic). ``confusables``: positions of Cyrillic/Greek letters that look Latin.
    ``controls``: bidi overrides or other invisible format characters were present.
    """

    scripts: frozenset[str]
    mixed: bool
    confusables: tuple[int, ...]
    controls: bool

    @property
    def suspicious(self) -> bool:
        """Flag for review: mixed scripts, lookalikes or hidden controls."""
        return self.mixed or bool(self.confusables) or self.controls


def script_of(ch: str) -> str:
    """``Latin``, ``Arabic``, ``Cyrillic``, ``Greek`` … for a letter, ``Common`` otherwise."""
    if not unicodedata.category(ch).startswith("L"):
        return "Common"
    name = unicodedata.name(ch, "")
    if "LATIN" in name.split():
        return "Latin"
    first = name.split(" ", 1)[0] if name else "Unknown"
    return first.capitalize()


def script_profile(text: str) -> ScriptProfile:
    """Classify a name's letters by script (privacy.md §4.2, §7 item 16). Fullwidth Latin is
    folded first (it is Latin), so only genuine script mixing is flagged."""
    controls = any(unicodedata.category(ch) == "Cf" for ch in text)
    normal = unicodedata.normalize("NFKC", strip_invisible(text))
    letters = [(i, ch, script_of(ch)) for i, ch in enumerate(normal)]
    scripts = frozenset(s for _, _, s in letters if s != "Common")
    confusables: tuple[int, ...] = ()
    if "Latin" in scripts and len(scripts) > 1:
        confusables = tuple(
            i for i, ch, s in letters if s in ("Cyrillic", "Greek") and ch in _LATIN_LOOKALIKES
        )
    return ScriptProfile(scripts, len(scripts) > 1, confusables, controls)


def is_mixed_script(text: str) -> bool:
    """True when a name mixes scripts (e.g. a Cyrillic ``а`` inside a Latin name)."""
    return script_profile(text).mixed
