"""Identifier and name normalisation: the adversarial cases of privacy.md §7 items 12-16."""

from __future__ import annotations

import unicodedata

import pytest

from adapter.privacy import (
    IdentifierError,
    format_cnic,
    is_mixed_script,
    mask_cnic,
    name_key,
    normalise_cnic,
    normalise_crc,
    normalise_phone,
    script_profile,
)

CNIC = "3520212345671"

# --- CNIC and B-Form (§7 item 12) -----------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "35202-1234567-1",
        "3520212345671",
        "35202 1234567 1",
        "٣٥٢٠٢-١٢٣٤٥٦٧-١",  # Arabic-Indic digits
        "۳۵۲۰۲-۱۲۳۴۵۶۷-۱",  # Urdu (extended Arabic-Indic) digits
        "３５２０２－１２３４５６７－１",  # fullwidth digits and hyphen
        "35202–1234567—1",  # en and em dash
        "35202\u00a01234567\u00a01",  # NBSP
        "35202\u200b-1234567-\u200b1",  # ZWSP
        "\u200f35202-1234567-1\u200e",  # RLM / LRM
        "\ufeff35202-1234567-1",  # BOM
        "35202-1234567-1\n",  # trailing newline
        "3\u200d5\u200c202-1234567-1",  # ZWJ / ZWNJ inside
    ],
)
def test_cnic_spellings_normalise_to_13_digits(raw: str) -> None:
    assert normalise_cnic(raw) == CNIC
    assert normalise_crc(raw) == CNIC


def test_province_rules_and_no_parity_check() -> None:
    assert normalise_cnic("81234-1234567-1") == "8123412345671"  # 8 = AJK is valid
    assert normalise_cnic("35202-1234567-0") == "3520212345670"  # last digit 0 is valid
    assert normalise_cnic("35202-1234567-2")  # parity never checked against sex
    for bad in ("05202-1234567-1", "95202-1234567-1", "00000-0000000-0"):
        with pytest.raises(IdentifierError, match="province digit"):
            normalise_cnic(bad)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("35202-1234567", "13 digits; found 12"),
        ("352021234567", "found 12"),
        ("35202-12345678-1", "found 14"),
        ("35202-12A4567-1", "only digits"),
        ("35202-1234567-1'; DROP TABLE cases;--", "only digits|characters long"),
        ('{"cnic": "35202-1234567-1"}', "only digits"),
        ("1" * 10_000, "characters long"),
        ("", "found 0"),
    ],
)
def test_bad_cnics_are_refused_without_echoing_them(raw: str, problem: str) -> None:
    with pytest.raises(IdentifierError, match=problem) as info:
        normalise_cnic(raw)
    assert "12345" not in str(info.value) and "DROP" not in str(info.value)


def test_crc_errors_say_b_form() -> None:
    with pytest.raises(IdentifierError, match="B-Form/CRC"):
        normalise_crc("12")
    with pytest.raises(IdentifierError, match="must be text"):
        normalise_cnic(3520212345671)  # type: ignore[arg-type]


def test_display_forms() -> None:
    assert format_cnic(CNIC) == "35202-1234567-1"
    assert mask_cnic(CNIC) == "35202-*******-1"


# --- phones (§7 item 13) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "03001234567",
        "0300-1234567",
        "+92 300 1234567",
        "+92-300-1234567",
        "00923001234567",
        "923001234567",
        "3001234567",
        "۰۳۰۰۱۲۳۴۵۶۷",
        "٠٣٠٠١٢٣٤٥٦٧",
        "+۹۲۳۰۰۱۲۳۴۵۶۷",
        "(0300) 123 4567",
        "\u200f0300\u200b1234567",
    ],
)
def test_mobile_spellings_become_e164(raw: str) -> None:
    phone = normalise_phone(raw)
    assert phone.e164 == "+923001234567" and phone.mobile


def test_landlines_are_flagged_and_bad_numbers_refused() -> None:
    landline = normalise_phone("021-35123456")
    assert landline.e164 == "+922135123456" and not landline.mobile
    with pytest.raises(IdentifierError, match="landline"):
        normalise_phone("021-35123456", mobile_only=True)
    for bad in ("030012345", "0300-CALLNOW", "1" * 100, "+"):
        with pytest.raises(IdentifierError):
            normalise_phone(bad)


# --- names (§7 items 14-16) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "variants",
    [
        ["علی", "علي", "على"],  # yeh variants
        ["کاشف", "كاشف", "ڪاشف"],  # kaf variants
        ["فاطمہ", "فاطمه", "فاطمة", "فاطمۃ"],  # heh / teh marbuta
        ["عائشہ", "عایشہ"],  # hamza on yeh
        ["محمد", "مـحـمـد", "مُحَمَّد"],  # tatweel, harakat
        ["عبدالرحمان", "عبد\u200cالرحمان", "عبد\u200dالرحمان"],  # ZWNJ / ZWJ
        ["آمنہ", "امنہ"],  # madda
        ["Muhammad", "MUHAMMAD", "Ｍｕｈａｍｍａｄ"],  # fullwidth Latin folds
        ["José", "Jose\u0301", "jose"],  # NFC vs NFD
    ],
)
def test_spelling_variants_share_a_key(variants: list[str]) -> None:
    keys = {name_key(v) for v in variants}
    assert len(keys) == 1, keys


def test_display_value_is_not_touched() -> None:
    original = "مُحَمَّد علي"
    name_key(original)
    assert original == "مُحَمَّد علي"


def test_aspirates_can_be_kept() -> None:
    assert name_key("بھٹو") == name_key("بہٹو")  # default: recall first
    assert name_key("بھٹو", keep_aspirates=True) == name_key("بهٹو", keep_aspirates=True)
    assert name_key("بھٹو", keep_aspirates=True) != name_key("بہٹو", keep_aspirates=True)


def test_sindhi_letters_are_kept() -> None:
    assert name_key("ڄامي") != name_key("جامي")
    assert "ٻ" in name_key("ٻار")


def test_bidi_and_control_characters_never_reach_a_key() -> None:
    key = name_key("Ali\u202eKhan\u202c\u200b")
    assert key == "alikhan"
    assert all(unicodedata.category(ch)[0] != "C" for ch in name_key("a\u0000b\tc\nd"))


def test_mixed_scripts_and_homoglyphs_are_flagged() -> None:
    fake = "Muh\u0430mmad"  # Cyrillic а
    profile = script_profile(fake)
    assert profile.mixed and profile.confusables == (3,) and profile.suspicious
    assert is_mixed_script("Ali علی")
    assert not is_mixed_script("Muhammad Ali")
    assert not is_mixed_script("محمد علی")
    assert not is_mixed_script("Ｍｕｈａｍｍａｄ")  # fullwidth is still Latin
    assert script_profile("Ali\u202eKhan").controls
    assert not script_profile("Ali Khan").suspicious
