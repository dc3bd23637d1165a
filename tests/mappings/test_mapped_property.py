"""The privacy invariant of mapping files, as a property: a document holds nothing but values of
the disclosure payload, the mapping file's own literals and the referral's facts (case code,
referral key, purpose, basis, route). Whatever the payload — fields present or withheld, single
values or subform rows — a mapping can leave data out, never bring any in."""

from __future__ import annotations

import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.app.departments import load_mapping
from adapter.mappings.mapped import MappedMapping
from adapter.mappings.routing import RoutedReferral
from adapter.privacy import Disclosure, Stage

ROOT = Path(__file__).resolve().parents[2]

SYNTHETIC = textwrap.dedent(
    """
    department = "police"
    title = "Every kind of reference"
    [maps.sex]
    male = "M"
    [values]
    sex = { from = "payload.sex", map = "sex", keep_unmapped = true }
    sex_or_unknown = { from = "payload.sex", map = "sex", default = "U" }
    first_concern = { from = "payload.protection_concerns", pick = "first" }
    first_date = { from = "payload.incident_details.incident_date", pick = "first" }
    [record]
    code = "$case_code"
    sex = "$sex"
    sex2 = "$sex_or_unknown"
    concern = "$first_concern"
    concerns = "$payload.protection_concerns"
    dates = "$payload.incident_details.incident_date"
    first_date = "$first_date"
    rows = "$payload.incident_details"
    pairs = [
        { label = "name", value = "$payload.name" },
        { label = "dob", value = "$payload.date_of_birth" },
    ]
    nested = { deeper = { address = "$payload.address_current", fixed = "literal" } }
    [documents.referral]
    path = "/r"
    [documents.referral.body]
    record = "$record"
    basis = "$consent_basis"
    service = "$service_type"
    urgency = "$urgency"
    route = "$route"
    purpose = "$purpose"
    [documents.cancel]
    path = "/c"
    [documents.withdraw]
    path = "/w"
    """
)

TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 -", min_size=1, max_size=12).map(
    lambda s: f"v-{s}"  # never equal to a mapping literal by accident
)
VALUE = st.one_of(TEXT, st.integers(0, 10_000), st.booleans(), st.lists(TEXT, max_size=3))
ROW = st.dictionaries(
    st.sampled_from(["incident_date", "incident_location", "cp_incident_abuser_name"]),
    st.one_of(TEXT, st.none(), st.just("")),
    max_size=3,
)
PAYLOAD = st.fixed_dictionaries(
    {},
    optional={
        "name": VALUE,
        "sex": st.one_of(st.sampled_from(["male", "female"]), VALUE),
        "date_of_birth": VALUE,
        "address_current": VALUE,
        "location_current": VALUE,
        "protection_concerns": st.lists(TEXT, max_size=3),
        "police_referral_extract": VALUE,
        "incident_details": st.one_of(ROW, st.lists(ROW, max_size=3)),
        "services_section": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "service_type": st.sampled_from(["police_other_service", "v-other"]),
                    "service_response_timeframe": st.sampled_from(["1_day", "3_days", "v-x"]),
                },
            ),
            max_size=2,
        ),
    },
)


def leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item)
    else:
        yield value


def check(mapping: MappedMapping, payload: dict[str, Any], basis: str) -> None:
    code = "cp1.police.1.CODE"
    referral = RoutedReferral(
        "ref-7", "referral", "7", "row", "police_other_service", "1_day", "in_progress", None
    )
    decision = Disclosure(
        allowed=True,
        reason="",
        department="police",
        purpose="referral",
        stage=Stage.IDENTIFIED,
        payload={"case_code": code, **payload},
        fields_out=(),
        fields_withheld=(),
        sensitivity="S1",
        consent_basis=basis,
        case_code=code,
    )
    allowed = set(leaves(decision.payload)) | mapping.literals()
    allowed |= {"ref-7", "referral", basis}
    for document in (
        mapping.referral(referral, decision, after_probe=False),
        mapping.update(referral, decision),
    ):
        for value in leaves(document.body["json"]):
            assert value in allowed, f"{value!r} came from neither the payload nor the mapping"


def _synthetic() -> MappedMapping:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "police.toml"
        path.write_text(SYNTHETIC, encoding="utf-8")
        return load_mapping(path, "police")


POLICE = load_mapping(ROOT / "config" / "mappings" / "police.toml", "police")
EVERY_KIND = _synthetic()


@settings(max_examples=150, deadline=None)
@given(payload=PAYLOAD, basis=st.sampled_from(["consent", "mandatory_report"]))
def test_the_police_mapping_adds_no_value_of_its_own(payload: dict[str, Any], basis: str) -> None:
    check(POLICE, payload, basis)


@settings(max_examples=150, deadline=None)
@given(payload=PAYLOAD, basis=st.sampled_from(["consent", "mandatory_report"]))
def test_every_kind_of_reference_adds_no_value_of_its_own(
    payload: dict[str, Any], basis: str
) -> None:
    check(EVERY_KIND, payload, basis)
