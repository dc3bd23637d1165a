"""A FHIR answer garbled on its way is retried; a page that is not FHIR at all is not.

The fault tests found referrals ending as dead letters after one malformed search answer
(``GET Task answered 2xx without a Bundle``, a Fatal). ``responses`` stands in for the two
answers here; the end-to-end case is test_health_faults.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from adapter.departments import FhirClient
from adapter.errors import Fatal, Retryable

BASE = "https://fhir.example.org/fhir"
FHIR_JSON = "application/fhir+json"


@pytest.fixture
def client() -> Iterator[FhirClient]:
    with FhirClient(BASE, timeout=(3.0, 7.0)) as fhir:
        yield fhir


def test_a_search_answer_cut_in_half_is_retryable(client: FhirClient) -> None:
    cut = '{"resourceType": "Bund'
    with responses.RequestsMock() as mocked:
        mocked.get(f"{BASE}/Task", status=200, body=cut, content_type=FHIR_JSON)
        with pytest.raises(Retryable, match="does not parse"):
            client.get_task_by_referral("ref-1")
        with pytest.raises(Retryable, match="does not parse"):
            list(client.search_tasks_updated(None))


def test_a_transaction_answer_cut_in_half_is_retryable(client: FhirClient) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    with responses.RequestsMock() as mocked:
        mocked.post(BASE, status=200, body='{"resourceType": "Bundle", "ty', content_type=FHIR_JSON)
        with pytest.raises(Retryable):
            client.send_transaction(bundle)
        mocked.post(BASE, status=200, body="<html>login</html>", content_type="text/html")
        with pytest.raises(Fatal, match="transaction-response") as caught:
            client.send_transaction(bundle)
        assert not isinstance(caught.value, Retryable)
