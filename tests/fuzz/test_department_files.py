"""Hypothesis against the department file importer (adapter/departments/csv_import.py), the
inbound half of the SFTP connector (issue 8 item 4).

Whatever a department's clerk uploads — arbitrary bytes, UTF-16 or Windows-1256 instead of
UTF-8, byte-order marks, NUL bytes, huge fields, quoted line breaks, spreadsheet formulas
(``=``, ``+``, ``-``, ``@``), missing, extra, unknown or duplicated columns, Urdu and
Arabic-Indic digits — the importer:

* never raises: a file is either refused whole (one reject, row 0, with the reason) or read
  row by row, each non-blank row becoming exactly one update or at least one reject;
* names the row and the field of every rejected row, never its value;
* gives the same updates, with the same content versions, every time it reads the same file
  (the consumer's idempotency key: a re-import changes nothing);
* only hands on times the engine can store (convertible to UTC).

The same files then go through a real OpenSSH sftp server twice: good rows are taken exactly
once, refused files move to the rejects directory whole, and re-dropping a file yields the
same versions.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.departments.csv_import import (
    ROW_TYPES,
    CsvFormatError,
    InboundFormat,
    ParsedFile,
    parse_file,
    read_csv,
    read_table,
)
from adapter.departments.files import FileConnector
from adapter.primero.linked_records import linked_record_row
from tests.support.sftp_server import SftpServer

FORMATS = {
    "court_order": InboundFormat(
        "court_order", columns={"Case No.": "case_number", "Ref": "referral_key"}
    ),
    "birth_registration": InboundFormat("birth_registration"),
    "referral": InboundFormat("referral", columns={"Department Status": "status"}),
}
# A marker no reason or field name contains: if it shows up in a reject, a value leaked.
SECRET = "Zxq"
URDU_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
ARABIC_INDIC_DIGITS = "٠١٢٣٤٥٦٧٨٩"


def _digits(text: str, table: str) -> str:
    return text.translate(str.maketrans("0123456789", table))


def _dates(*texts: str) -> st.SearchStrategy[str]:
    """Dates as written, also in Urdu and Arabic-Indic digits (which the importer reads)."""
    plain = st.sampled_from(texts)
    return st.one_of(
        plain,
        plain.map(lambda d: _digits(d, URDU_DIGITS)),
        plain.map(lambda d: _digits(d, ARABIC_INDIC_DIGITS)),
    )


# Per field: values a department would send, and values it should not (but one day will).
GOOD: dict[str, st.SearchStrategy[str]] = {
    "referral_key": st.from_regex(r"ref-[a-z0-9]{1,8}", fullmatch=True),
    "updated_at": st.sampled_from(["2026-03-05T10:00:00", "2026-03-05T10:00:00+05:00", ""]),
    "court": st.sampled_from(["Juvenile Court Lahore", '=HYPERLINK("x")', "@SUM(A1)", "-2+3"]),
    "case_number": st.sampled_from(["CPC-12/2026", "JC 7/2026"]),
    "order_number": st.sampled_from(["ORD-1", ""]),
    "order_type": st.sampled_from(["custody", "bail", "placement"]),
    "order_date": _dates("2026-03-05", "05/03/2026"),
    "effective_from": _dates("2026-03-06", ""),
    "effective_to": _dates("2026-06-06", ""),
    "review_date": _dates("2026-09-01", ""),
    "next_hearing_date": _dates("2026-04-01", ""),
    "status": st.sampled_from(["active", "discharged", "accepted", "completed"]),
    "match_status": st.sampled_from(["match", "no_match", "multiple"]),
    "registration_number": st.sampled_from(["UC-12/2026", "CRC-1"]),
    "registration_date": _dates("2015-01-02", ""),
    "crc_number": st.sampled_from(["B-123", ""]),
    "checked_at": st.sampled_from(["2026-03-05T10:00:00Z", ""]),
    "external_ref": st.sampled_from(["HOSP-1", ""]),
    "reason": st.sampled_from(["no_capacity", ""]),
    "note": st.text(max_size=40),
}
BAD: dict[str, st.SearchStrategy[str]] = {
    "updated_at": st.sampled_from(
        ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00", "yesterday", "2026-02-30T00:00"]
    ),
    "order_date": _dates("31/02/2026", "2026-13-01", "01/01/0001", "1899-12-31"),
    "order_type": st.sampled_from(["adoption", "Custody"]),
    "status": st.sampled_from(["closed", "Active"]),
    "match_status": st.sampled_from(["MATCH", "yes"]),
    "registration_number": st.sampled_from(["=1+1", "UC 12"]),
    "external_ref": st.sampled_from(["=cmd|' /C calc'!A0"]),
    "reason": st.sampled_from(["Not Eligible"]),
    "case_number": st.sampled_from(["+92-300", "a,b"]),
}


def _cell(draw: st.DrawFn, field: str) -> str:
    """Mostly a good value for the field; now and then a bad one or something odd."""
    roll = draw(st.integers(0, 19))
    if roll < 2 and field in BAD:
        return draw(BAD[field])
    if roll < 4 or field not in GOOD:
        return draw(nasty_cells)
    return draw(GOOD[field])


def _header(draw: st.DrawFn, record_type: str) -> list[str]:
    """Mostly what the record type needs plus some optional columns, in any order, maybe with
    a column the adapter must not read; sometimes any jumble of names (duplicates, gaps)."""
    model = ROW_TYPES[record_type].model_fields
    names = [*model, "Child Name", "CNIC", "Case No.", "Ref", "", "Order Date"]
    if draw(st.integers(0, 4)) == 0:
        return draw(st.lists(st.sampled_from(names), min_size=1, max_size=10))
    required = [f for f, info in model.items() if info.is_required()]
    optional = [f for f, info in model.items() if not info.is_required() and f != "case_code"]
    chosen = ["referral_key", *required]
    chosen += draw(st.lists(st.sampled_from(optional), unique=True, max_size=len(optional)))
    chosen = list(dict.fromkeys(chosen))
    chosen += draw(st.lists(st.sampled_from(["Child Name", "CNIC", "Remarks"]), max_size=1))
    return list(draw(st.permutations(chosen)))


_odd_cells = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "=1+1",
            "+92 300 1234567",
            "-2+3",
            "@SUM(A1:A9)",
            '=HYPERLINK("http://x","y")',
            "line one\nline two",
            'a "quoted" word',
            "\x00",
            "\ufeff",
            "\u202eevil",
            "٣٥٢٠٢-١٢٣٤٥٦٧-١",
        ]
    ),
    st.from_regex(r"Zxq[0-9a-f]{4,8}", fullmatch=True),
)
_huge_cells = st.text(min_size=1, max_size=8).map(lambda t: t * 20_000)  # past csv's limit
# One cell in twenty is huge: it refuses the whole file, which must not be all we test.
nasty_cells = st.integers(0, 19).flatmap(lambda n: _huge_cells if n == 0 else _odd_cells)


@st.composite
def department_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """A department's file: mostly a plausible export gone wrong in some way, sometimes noise."""
    record_type = draw(st.sampled_from(sorted(FORMATS)))
    if draw(st.integers(0, 19)) == 0:
        return record_type, draw(st.binary(max_size=300))
    header = _header(draw, record_type)
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        row = [_cell(draw, _field_of(record_type, name)) for name in header]
        if draw(st.integers(0, 9)) == 0:  # a row cut short, or with cells past the header
            row = row[: draw(st.integers(0, len(row)))] + draw(st.lists(nasty_cells, max_size=2))
        rows.append(row)
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator=draw(st.sampled_from(["\r\n", "\n"]))).writerows(
        [header, *rows]
    )
    # Mostly UTF-8 (with or without the mark); sometimes what Excel saves on a Windows PC set
    # to Urdu or Arabic, or Notepad's "Unicode".
    encoding = draw(st.sampled_from(["utf-8-sig"] * 4 + ["utf-8"] * 4 + ["utf-16", "cp1256"]))
    data = buffer.getvalue().encode(encoding, errors="replace")
    if draw(st.integers(0, 19)) == 0:  # a byte changed in transit
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=3)) + data[cut + 1 :]
    return record_type, data


def _field_of(record_type: str, header: str) -> str:
    return FORMATS[record_type].field_of(header) or header


def check_file(record_type: str, data: bytes) -> ParsedFile:
    """Every promise of the module docstring, for one file."""
    fmt = FORMATS[record_type]
    parsed = parse_file(data, fmt)  # must not raise, whatever the bytes
    again = parse_file(data, fmt)
    assert again == parsed, "the same file must give the same updates and versions"
    for reject in parsed.rejects:
        assert reject.reason
        assert SECRET not in reject.reason and SECRET not in reject.field
    if parsed.refused:
        assert parsed.updates == []
        assert [(r.row, r.field) for r in parsed.rejects] == [(0, "")]
        return parsed
    _, rows = read_table(data)
    known = set(ROW_TYPES[record_type].model_fields)
    filled = [n for n, cells in enumerate(rows, start=2) if any(c.strip() for c in cells)]
    rejected = {r.row for r in parsed.rejects}
    assert rejected <= set(filled), "a reject names a row that is not in the file"
    assert len(parsed.updates) + len(rejected) == len(filled), "a row was lost or doubled"
    for reject in parsed.rejects:
        # The field is the record's field name; only a row with too many cells has none.
        assert reject.field in known or (reject.field == "" and "cells" in reject.reason)
    for update in parsed.updates:
        when = update.updated_at
        if when is not None:
            when.astimezone(UTC)  # what the state store does with it
            linked_record_row(
                link_key=f"link-{update.referral_key}",
                department="courts",
                record_type=update.record_type,
                status=update.status,
                case_code=None,
                external_reference=update.external_ref,
                status_note=update.note,
                last_update=when,
            )
    if not parsed.rejects:
        return parsed  # no reject file is written
    report = read_csv(parsed.rejects_csv())
    assert [(int(r["row"]), r["field"]) for r in report] == [
        (r.row, r.field) for r in parsed.rejects
    ]
    return parsed


def test_a_plain_export_passes_the_checker_with_its_one_row() -> None:
    data = (
        b"Ref,Court,Case No.,Order Type,Order Date\r\n"
        b"ref-1,Juvenile Court Lahore,JC-1,custody,2026-03-05\r\n"
    )
    assert len(check_file("court_order", data).updates) == 1
    with pytest.raises(CsvFormatError):
        read_table(b"\xff\xfe")


def test_any_department_file_is_imported_or_refused_never_raises(examples: int) -> None:
    @settings(
        max_examples=examples * 5,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(file=department_files())
    def each(file: tuple[str, bytes]) -> None:
        check_file(*file)

    each()


@pytest.mark.parametrize(
    ("name", "data", "good", "refused"),
    [
        (
            "formulas-and-bom.csv",
            "\ufeffRef,Court,Case No.,Order Type,Order Date\r\n"
            'ref-1,"=HYPERLINK(""http://x"",""y"")",JC-1,custody,2026-03-05\r\n'
            "ref-2,@SUM(A1),JC-2,bail,05/03/2026\r\n"
            "ref-3,-2+3,+92-1,adoption,2026-03-05\r\n",
            2,
            False,
        ),
        (
            "quoted-newline-and-urdu-digits.csv",
            "Ref,Court,Case No.,Order Type,Order Date\r\n"
            '"ref-4","Juvenile\nCourt",JC-4,custody,۰۵/۰۳/۲۰۲۶\r\n'
            "ref-5,Court,JC-5,custody,01/01/0001\r\n",
            1,
            False,
        ),
        (
            "nul-and-extra-cells.csv",
            "Ref,Court,Case No.,Order Type,Order Date\r\n"
            "ref-6,Co\x00urt,JC-6,custody,2026-03-05\r\n"
            "ref-7,Court,JC-7,custody,2026-03-05,extra\r\n",
            1,
            False,
        ),
        ("duplicated-column.csv", "Ref,Ref,Court,Case No.,Order Type,Order Date\r\n", 0, True),
        (
            "huge-field.csv",
            "Ref,Court,Case No.,Order Type,Order Date\r\nref-8," + "x" * 200_000,
            0,
            True,
        ),
    ],
)
def test_adversarial_files_over_sftp_are_taken_once(
    sftp: SftpServer, name: str, data: str, good: int, refused: bool
) -> None:
    inbound = sftp.root / "from_department"
    (inbound / name).write_bytes(data.encode("utf-8"))
    courts = FileConnector("courts", sftp=sftp.settings(), inbound=FORMATS["court_order"])
    try:
        first = [u for u, _ in courts.status_updates(None)]
        assert len(first) == good
        assert list(courts.status_updates(None)) == [], "a second run must take nothing"
        rejects = sftp.root / "rejects"
        assert (rejects / f"{name}.rejects.csv").exists() == (refused or good < _rows(data))
        assert (rejects / name).exists() == refused  # a refused file moves there whole
        if refused:
            return
        # The department uploads the same file again: the same rows, the same versions, so
        # the consumer (keyed by referral key and version) changes nothing.
        (inbound / name).write_bytes(data.encode("utf-8"))
        second = [u for u, _ in courts.status_updates(None)]
        assert [(u.referral_key, u.version) for u in second] == [
            (u.referral_key, u.version) for u in first
        ]
    finally:
        courts.close()


def _rows(data: str) -> int:
    return len(read_table(data.encode())[1])
