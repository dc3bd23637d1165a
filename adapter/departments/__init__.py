"""Department connectors: one module per kind of department system (departments.md §7).

Each connector turns a mapped payload into calls on the department's system and classifies every
failure into ``adapter.errors``' taxonomy (``Retryable``, ``RateLimited``, ``Fatal``); it never
retries by itself, the outbox does.
"""

from adapter.departments._http import Rejected
from adapter.departments.fhir import EntryResult, FhirClient, TransactionResult

__all__ = ["EntryResult", "FhirClient", "Rejected", "TransactionResult"]
