"""A thin FHIR R4 client for health departments (departments.md §1, §7).

Our own ``requests`` client rather than fhirpy, because the conditional headers and elements must
be explicit (departments.md §1: fhirpy sends conditional-create criteria as query parameters, and a
server then duplicates the Patient). Every call has a timeout, TLS is verified, redirects are not
followed (they could carry credentials elsewhere), and nothing is retried here: failures are
classified (``Retryable``, ``RateLimited``, :class:`Rejected`) for the outbox to act on. (A 412
in a versioned update below is not a failure to retry but news to read: the next PUT is a new
request built from the department's latest version.)

Reading changes back is polling (departments.md §1 "Incremental sync"; subscriptions are an
optimisation department servers rarely offer): :meth:`FhirClient.search_tasks_updated`.

A referral goes in two stages (privacy.md §6.3). :meth:`FhirClient.send_probe` asks with an
anonymous Task. Once the department has accepted it, :meth:`FhirClient.send_identified` sends the
Patient, Consent and ServiceRequest and links *the same* Task to them
(:meth:`FhirClient.link_task`), so there is one Task per referral from question to outcome.
:meth:`FhirClient.cancel_referral` and :meth:`FhirClient.withdraw_consent` end it.

Each change to a resource the department holds is a read, then a full PUT with ``If-Match`` on
the version read. A 412 means the department wrote in between: read again and re-apply, a bounded
number of times. A full PUT rather than PATCH, because the change is computed from what was read
and validated as a whole before it leaves, and PUT + If-Match is the one versioned write every R4
server has (sekmet also takes JSON Patch; many department servers do not).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from fhir.resources.R4B.bundle import Bundle

from adapter.connection import POOL_SIZE, environment_verify, long_lived_session
from adapter.departments._http import Rejected, json_or_none, raise_for_status, send
from adapter.errors import ConfigError, Fatal, Retryable
from adapter.mappings.fhir import (
    HealthReferral,
    build_content_update_bundle,
    build_referral_bundle,
    consent_search_token,
    referral_search_token,
    to_json,
)
from adapter.mappings.fhir_codes import REFERRAL_SYSTEM
from adapter.mappings.fhir_probe import CapacityProbe, build_probe_bundle
from adapter.mappings.fhir_task import (
    TaskUpdate,
    cancelled_task,
    linked_task,
    task_update_from_json,
    withdrawn_consent,
)

__all__ = [
    "ConsentWithdrawal",
    "EntryResult",
    "FhirClient",
    "Rejected",
    "TransactionResult",
    "UnexpectedTaskState",
]

FHIR_JSON = "application/fhir+json"
# FHIR issue-type codes are lowercase words joined by '-' ("structure", "multiple-matches").
# Anything else in issue.code is dropped rather than risk echoing a value.
_ISSUE_CODE = re.compile(r"^[a-z][a-z\-]{0,39}$")
_LOCATION = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/([^/]+))?$")
_RESOURCE_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
#: Versioned writes tried before giving up with Retryable: each 412 means the department wrote
#: the resource between our read and our PUT, which happens rarely and not many times in a row.
MAX_VERSION_CONFLICTS = 3


class UnexpectedTaskState(Fatal):
    """The referral's Task is not in the status this step needs (or does not exist).

    ``status`` is the Task's status code, or None when the department holds no Task for the
    referral. Raised *before* identified data is sent when the probe was not accepted.
    """

    def __init__(self, message: str, *, status: str | None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ConsentWithdrawal:
    """What :meth:`FhirClient.withdraw_consent` left at the department.

    ``task`` is the referral's Task afterwards (None: there was none). ``consent_id`` and
    ``consent_status`` describe its Consent (None: the department never received one, e.g. the
    referral stopped at the probe, so there is nothing identified to erase).
    """

    task: TaskUpdate | None
    consent_id: str | None
    consent_status: str | None


@dataclass(frozen=True)
class EntryResult:
    """What the server did with one transaction entry (in the order the entries were sent)."""

    resource_type: str
    id: str | None
    version: str | None
    status: int
    #: True for 201 (created), False for 200: the conditional create found the resource already
    #: there, or the conditional update replaced it.
    created: bool
    location: str | None
    #: The resource as the server answered it (``Prefer: return=representation``; R4 http.html
    #: "transaction response": an entry may carry it), or None when the answer left it out. For
    #: a conditional create that found the resource, it is the one the server already held.
    #: Left out of repr and comparisons: a Patient's demographics are personal data.
    resource: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class TransactionResult:
    """The answer to one transaction Bundle."""

    entries: tuple[EntryResult, ...]

    def of(self, resource_type: str) -> EntryResult:
        """The first entry of ``resource_type`` (each referral bundle has one of each)."""
        for entry in self.entries:
            if entry.resource_type == resource_type:
                return entry
        raise KeyError(resource_type)

    @property
    def created(self) -> tuple[str, ...]:
        """Resource types the server created (``Type``), in entry order."""
        return tuple(e.resource_type for e in self.entries if e.created)


class FhirClient:
    """One department's FHIR R4 endpoint.

    ``base_url`` is the service base (``https://host/fhir``). Authentication is none, a static
    bearer token, or basic; values come resolved from the configuration (never logged).
    ``timeout`` is ``(connect, read)`` seconds. ``session`` is the seam for tests and for
    connection pooling; the client closes only a session it created, which reads the proxy and
    CA environment once (adapter/connection.py) and keeps ``pool_size`` connections open (one
    per thread that shares the client).
    """

    def __init__(
        self,
        base_url: str,
        *,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
        verify: bool | str = True,
        session: requests.Session | None = None,
        user_agent: str = "cpims-adapter",
        pool_size: int = POOL_SIZE,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ConfigError(
                "the FHIR base_url must be an http(s) URL without a query, e.g. "
                "https://fhir.example.org/fhir"
            )
        if bearer_token and basic_auth:
            raise ConfigError("configure either a bearer token or basic auth for FHIR, not both")
        self.base_url = base_url.rstrip("/")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._timeout = timeout
        self._verify = environment_verify(verify)
        self._owns_session = session is None
        # Links are followed only on this origin (_same_origin): one origin's proxy to resolve.
        self._session = session or long_lived_session(self.base_url, pool_size=pool_size)
        self._headers = {"Accept": FHIR_JSON, "User-Agent": user_agent}
        if bearer_token:
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        elif basic_auth:
            pair = f"{basic_auth[0]}:{basic_auth[1]}".encode()
            self._headers["Authorization"] = f"Basic {base64.b64encode(pair).decode('ascii')}"

    def __repr__(self) -> str:  # never the Authorization header
        return f"FhirClient({self.base_url!r})"

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writes ------------------------------------------------------------------------------

    def capability_statement(self) -> dict[str, Any]:
        """``GET [base]/metadata``: the server's CapabilityStatement (a harmless read every
        FHIR server answers, RESTful API §3.1.0.9 "capabilities"), for ``check``."""
        response = self._call("GET", f"{self.base_url}/metadata", resource="/metadata")
        body = json_or_none(response)
        if not isinstance(body, dict) or body.get("resourceType") != "CapabilityStatement":
            raise Fatal("GET /metadata: the answer is not a FHIR CapabilityStatement")
        return body

    def send_transaction(self, bundle: Bundle | Mapping[str, Any] | str) -> TransactionResult:
        """POST a transaction Bundle to the base URL; the server applies all entries or none.

        ``bundle`` is a model, its JSON as a dict, or its JSON text (as stored by the outbox).
        A dict or text is sent as it is, not validated again: the mapping that built it is the
        one place bundles are validated (adapter/mappings/fhir.py; tests/mappings prove its
        dicts valid R4B and byte for byte the validated model's JSON), and re-validating every
        stored bundle on send was 12-17% of a sync's CPU (issue 15). Only its shape is checked
        (:func:`_transaction_body`), so a corrupt outbox row is still Fatal in one line.
        ``Prefer: return=representation`` asks for each entry's resource in the answer, whose
        id and version we keep (departments.md §1 "Bundle transaction").
        """
        if isinstance(bundle, Bundle):
            body = to_json(bundle)
            count = len(bundle.entry or [])
        else:
            body, count = _transaction_body(bundle)
        response = self._call(
            "POST",
            self.base_url,
            resource="Bundle",
            data=body.encode("utf-8"),
            extra_headers={"Content-Type": FHIR_JSON, "Prefer": "return=representation"},
        )
        _retry_if_garbled(response, "POST Bundle")
        answer = json_or_none(response)
        if not isinstance(answer, dict) or answer.get("type") != "transaction-response":
            raise Fatal(
                "POST Bundle answered 2xx without a transaction-response Bundle: is base_url "
                "the FHIR service base?"
            )
        entries = answer.get("entry") or []
        if len(entries) != count:
            raise Fatal(f"POST Bundle: {count} entries sent but {len(entries)} answered")
        return TransactionResult(tuple(_entry_result(e) for e in entries))

    def send_referral(self, referral: HealthReferral) -> TransactionResult:
        """Create the referral (idempotent: a re-send finds every resource already there)."""
        return self.send_transaction(build_referral_bundle(referral))

    def update_content(self, referral: HealthReferral) -> TransactionResult:
        """Replace the department's Patient, Consent and ServiceRequest after a case edit.

        Conditional updates, so the department's copy is updated and never duplicated; the Task
        (the receiver's) is left as it is (adapter/mappings/fhir.py).
        """
        return self.send_transaction(build_content_update_bundle(referral))

    # --- the two stages, and the end --------------------------------------------------------

    def send_probe(self, probe: CapacityProbe) -> TransactionResult:
        """Stage one: the anonymous capacity-probe Task (created once per referral key)."""
        return self.send_transaction(build_probe_bundle(probe))

    def send_identified(
        self,
        referral: HealthReferral,
        *,
        expected_status: str | Collection[str] | None = "accepted",
    ) -> tuple[TransactionResult, TaskUpdate]:
        """Stage two: send the identified referral and link the probe's Task to it.

        See :meth:`send_identified_bundle`, which this calls with the referral's bundle.
        """
        return self.send_identified_bundle(
            referral.referral_key, build_referral_bundle(referral), expected_status=expected_status
        )

    def send_identified_bundle(
        self,
        referral_key: str,
        bundle: Bundle | Mapping[str, Any] | str,
        *,
        expected_status: str | Collection[str] | None = "accepted",
    ) -> tuple[TransactionResult, TaskUpdate]:
        """Stage two with a bundle already built (the outbox stores built documents).

        The Task is checked first: unless it is in ``expected_status`` (the department accepted
        the probe) nothing is sent and :class:`UnexpectedTaskState` is raised. ``None`` skips
        the check, for a referral sent without a probe (the bundle then creates the Task, already
        linked). The link itself does not re-check the status: once the data has left, pointing
        the Task at it is what lets the department find what to erase if it has since declined.
        Safe to repeat after a failure (the outbox delivers at least once).
        """
        key = referral_key
        if expected_status is not None:
            try:
                _expect(self._find_task(key), expected_status)
            except UnexpectedTaskState:
                # An earlier attempt may have sent the bundle and failed before the link, and the
                # department moved on meanwhile (accepted → in-progress). The data has left
                # already; finishing the link is what is left to do, so only a referral that
                # was never sent stops here.
                if self._find_one("ServiceRequest", referral_search_token(key)) is None:
                    raise
        result = self.send_transaction(bundle)
        update = self.link_task(
            key,
            service_request_ref=_literal_ref(result.of("ServiceRequest")),
            patient_ref=_literal_ref(result.of("Patient")),
            answered=result.of("Task").resource,
        )
        return result, update

    def link_task(
        self,
        referral_key: str,
        *,
        service_request_ref: str,
        patient_ref: str,
        expected_status: str | Collection[str] | None = None,
        answered: Mapping[str, Any] | None = None,
    ) -> TaskUpdate:
        """Point the referral's Task at its ServiceRequest (``focus``) and Patient (``for``).

        The department's ``status`` is kept as it is; ``businessStatus`` becomes
        ``referral-details-sent`` unless the department set its own (adapter/mappings/
        fhir_task.py linked_task). Idempotent: a linked Task is returned without a write.
        ``expected_status`` (a status or several), checked on every read, refuses to link a
        Task in any other status with :class:`UnexpectedTaskState`.

        ``answered`` is the Task as the transaction that sent the referral returned it (its
        response entry). It stands in for the first read: a Task the bundle created is born
        linked and is returned with no request at all; the probe's Task (the conditional
        create found it, so the entry holds the department's copy) is PUT on the version it
        carries. Without it (a server that left the resource out), the Task is read first.
        """

        def change(task: dict[str, Any]) -> dict[str, Any] | None:
            if expected_status is not None:
                _expect(task, expected_status)
            return linked_task(
                task, service_request_ref=service_request_ref, patient_ref=patient_ref
            )

        first = _usable_task(answered, referral_key)
        task = self._versioned_update(
            "Task", lambda: self._find_task(referral_key), change, first=first
        )
        if task is None:
            raise UnexpectedTaskState(
                "link Task: the department holds no Task for this referral; send the probe or "
                "the referral first",
                status=None,
            )
        return self._task_update(task)

    def cancel_referral(self, referral_key: str, reason_code: str) -> TaskUpdate | None:
        """Cancel the referral's Task with a coded reason (``consent-withdrawn``,
        ``referral-revoked``; fhir_codes.CANCEL_REASONS), never free text.

        Idempotent, and it never overrides an outcome: a Task already cancelled, or settled by
        the department (completed, rejected, failed), is returned unchanged. None when the
        department has no Task for the referral (nothing was ever sent).
        """
        task = self._versioned_update(
            "Task",
            lambda: self._find_task(referral_key),
            lambda found: cancelled_task(found, reason_code),
        )
        return None if task is None else self._task_update(task)

    def withdraw_consent(self, referral_key: str) -> ConsentWithdrawal:
        """The deletion request after consent is withdrawn (privacy.md §6.3).

        The Task is cancelled with ``consent-withdrawn`` (unless settled, see
        :meth:`cancel_referral`) and the referral's Consent is set ``inactive``: together they
        tell the department the basis is gone and the referral's data must be erased. It cannot
        recall what was disclosed. Idempotent.
        """
        task = self.cancel_referral(referral_key, "consent-withdrawn")
        consent = self._versioned_update(
            "Consent", lambda: self._find_consent(referral_key), withdrawn_consent
        )
        return ConsentWithdrawal(
            task=task,
            consent_id=None if consent is None else str(consent.get("id")),
            consent_status=None if consent is None else str(consent.get("status")),
        )

    # --- reads -------------------------------------------------------------------------------

    def get_task_by_referral(self, referral_key: str) -> TaskUpdate | None:
        """The Task of one referral, or None when the department has none."""
        task = self._find_task(referral_key)
        return None if task is None else task_update_from_json(task)

    def search_tasks_updated(
        self,
        since: datetime | None,
        count: int = 100,
        *,
        overlap: timedelta = timedelta(seconds=5),
    ) -> Iterator[TaskUpdate]:
        """Our Tasks changed at or after ``since`` (minus ``overlap``), oldest change first.

        Keep the largest ``last_updated`` seen as the next ``since``: it is the server's
        ``meta.lastUpdated``, so no clock of ours is involved. ``ge`` plus ``overlap`` deliver
        the boundary again (a write committed late can carry an earlier timestamp,
        departments.md §1), so apply updates idempotently, by ``(referral_key, version)``.

        Paging: a ``link[next]`` says more pages exist, but the next page is asked for with
        ``_lastUpdated=ge<last timestamp seen>`` instead of following the link. Next links are
        often offset-based (sekmet's are): a Task updated while we page moves to the end and
        shifts every later Task one place back, so the offset would skip one for ever. A full
        page of one timestamp, or a page the server did not sort, falls back to the link.

        A Task that is not valid R4 raises MappingError: the poll stops there instead of moving
        the watermark past an update it could not read.
        """
        if count < 1:
            raise ValueError("count must be at least 1")
        cursor = None if since is None else since - overlap
        seen: set[tuple[str | None, str | None]] = set()
        url: str | None = f"{self.base_url}/Task"
        params: dict[str, str] | None = self._task_query(cursor, count)
        while url is not None:
            response = self._call("GET", url, resource="Task", params=params)
            _retry_if_garbled(response, "GET Task")
            page = json_or_none(response)
            tasks = list(_resources(page, "Task"))
            for task in tasks:
                update = task_update_from_json(task)
                if update is None:  # not one of ours
                    continue
                key = (update.task_id, update.version)
                if key in seen:
                    continue
                seen.add(key)
                yield update
            next_url = _next_link(page)
            if next_url is None or not tasks:
                return
            stamps = [s for s in (_last_updated(t) for t in tasks) if s is not None]
            last = stamps[-1] if stamps else None
            # Re-anchoring is only sound on a page sorted by _lastUpdated; a server that ignored
            # _sort (or left meta.lastUpdated out) gets its own next link.
            in_order = len(stamps) == len(tasks) and stamps == sorted(stamps)
            if in_order and last is not None and (cursor is None or last > cursor):
                url, params, cursor = f"{self.base_url}/Task", self._task_query(last, count), last
            else:
                url, params = self._same_origin(next_url), None

    # --- plumbing ----------------------------------------------------------------------------

    def _find_task(self, referral_key: str) -> dict[str, Any] | None:
        return self._find_one("Task", referral_search_token(referral_key))

    def _find_consent(self, referral_key: str) -> dict[str, Any] | None:
        return self._find_one("Consent", consent_search_token(referral_key))

    def _find_one(self, resource_type: str, identifier: str) -> dict[str, Any] | None:
        response = self._call(
            "GET",
            f"{self.base_url}/{resource_type}",
            resource=resource_type,
            params={"identifier": identifier, "_count": "2"},
        )
        _retry_if_garbled(response, f"GET {resource_type}")
        found = list(_resources(json_or_none(response), resource_type))
        if len(found) > 1:
            # The promise of conditional creates is one per referral: say so loudly.
            raise Fatal(
                f"GET {resource_type}: more than one {resource_type} carries one referral "
                "identifier"
            )
        return dict(found[0]) if found else None

    def _versioned_update(
        self,
        resource_type: str,
        read: Callable[[], dict[str, Any] | None],
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
        *,
        first: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Read, change, PUT with If-Match on the version read; on 412 start again.

        Returns the resource as the server now holds it, the unchanged read when ``change``
        had nothing to do, or None when ``read`` found nothing. ``change`` runs on every fresh
        read, so a check inside it (an expected status) sees the department's latest write.
        ``first``, when given, is a copy the server has just answered with: it replaces the
        first read (a 412 on it reads again, as after any stale read).
        """
        for attempt in range(MAX_VERSION_CONFLICTS):
            current = first if attempt == 0 and first is not None else read()
            if current is None:
                return None
            body = change(current)
            if body is None:
                return current
            rid = current.get("id")
            version = (current.get("meta") or {}).get("versionId")
            if not isinstance(rid, str) or not _RESOURCE_ID.match(rid) or not version:
                raise Fatal(
                    f"GET {resource_type}: the server gave no usable id and meta.versionId; "
                    "versioned updates (If-Match) are required"
                )
            try:
                response = self._call(
                    "PUT",
                    f"{self.base_url}/{resource_type}/{rid}",
                    resource=resource_type,
                    data=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
                    extra_headers={
                        "Content-Type": FHIR_JSON,
                        "If-Match": f'W/"{version}"',
                        "Prefer": "return=representation",
                    },
                )
            except Rejected as exc:
                if exc.status == 412:  # the department wrote in between: re-read, re-apply
                    continue
                raise
            answer = json_or_none(response)
            if isinstance(answer, dict) and answer.get("resourceType") == resource_type:
                return answer
            return read()  # a server that ignored Prefer: return=representation
        raise Retryable(
            f"PUT {resource_type}: the department changed it {MAX_VERSION_CONFLICTS} times "
            "between our read and our write; try again later"
        )

    @staticmethod
    def _task_update(task: Mapping[str, Any]) -> TaskUpdate:
        update = task_update_from_json(task)
        if update is None:  # found by our identifier, so it carries it: a server bug
            raise Fatal("Task: the referral identifier is missing from the Task we wrote")
        return update

    def _task_query(self, since: datetime | None, count: int) -> dict[str, str]:
        # identifier=<system>| (system only): our Tasks, not every Task the hospital runs.
        params = {
            "identifier": f"{REFERRAL_SYSTEM}|",
            "_sort": "_lastUpdated",
            "_count": str(count),
        }
        if since is not None:
            params["_lastUpdated"] = f"ge{_fhir_instant(since)}"
        return params

    def _same_origin(self, url: str) -> str:
        """A server-given URL, refused unless it is on our base URL's origin (it gets our
        Authorization header)."""
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self._origin:
            raise Fatal(
                "the FHIR server's link[next] points outside the configured base URL: fix the "
                "server's base URL setting (or ours)"
            )
        return url

    def _call(
        self,
        method: str,
        url: str,
        *,
        resource: str,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        headers = {**self._headers, **(extra_headers or {})}
        response = send(
            self._session,
            method,
            url,
            resource=resource,
            timeout=self._timeout,
            headers=headers,
            params=params,
            data=data,
            verify=self._verify,
        )
        if not 200 <= response.status_code < 300:
            raise_for_status(
                response, method=method, resource=resource, reasons=_issue_codes(response)
            )
        return response


def _expect(task: Mapping[str, Any] | None, expected: str | Collection[str]) -> None:
    wanted = {expected} if isinstance(expected, str) else set(expected)
    status = None if task is None else task.get("status")
    if status not in wanted:
        shown = "none" if status is None else repr(status)
        raise UnexpectedTaskState(
            f"Task status is {shown}, not {sorted(wanted)}: the step needs the department's "
            "answer first (identified data leaves only after it accepted the probe)",
            status=status if isinstance(status, str) else None,
        )


def _usable_task(answered: Mapping[str, Any] | None, referral_key: str) -> dict[str, Any] | None:
    """The transaction's answered Task when it can stand in for a read: this referral's Task
    (our identifier on it) with an id and a version to send If-Match on; else None."""
    if not isinstance(answered, Mapping) or answered.get("resourceType") != "Task":
        return None
    meta = answered.get("meta")
    if not isinstance(meta, Mapping) or not meta.get("versionId") or not answered.get("id"):
        return None
    ours = any(
        isinstance(ident, Mapping)
        and ident.get("system") == REFERRAL_SYSTEM
        and ident.get("value") == referral_key
        for ident in answered.get("identifier") or []
    )
    return dict(answered) if ours else None


def _literal_ref(entry: EntryResult) -> str:
    if not entry.id:
        raise Fatal(f"POST Bundle: the server did not say the {entry.resource_type}'s id")
    return f"{entry.resource_type}/{entry.id}"


def _transaction_body(bundle: Mapping[str, Any] | str) -> tuple[str, int]:
    """The JSON to POST for a stored transaction, and its number of entries.

    A dict is serialised compactly (the bytes the validated model gave, tests/mappings/
    test_fhir_plain.py); text is sent unchanged. One structural guard instead of a full
    validation: a Bundle of type transaction with a list of entries, each with a resource or
    a request. Anything else can never be delivered as stored: Fatal, not retried.
    """
    if isinstance(bundle, str):
        text = bundle
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
    else:
        parsed = bundle
        text = ""
    entries = parsed.get("entry") if isinstance(parsed, Mapping) else None
    if (
        not isinstance(parsed, Mapping)
        or parsed.get("resourceType") != "Bundle"
        or parsed.get("type") != "transaction"
        or not isinstance(entries, list)
        or not all(_is_request_entry(e) for e in entries)
    ):
        # Fatal, not MappingError: to the outbox this delivery can never succeed as stored.
        raise Fatal(
            "the stored transaction is not a FHIR Bundle of type 'transaction' with a list of "
            "entries (resourceType, type, entry[].request): the outbox row is corrupt; "
            "re-map the referral"
        )
    if not text:
        text = json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))
    return text, len(entries)


def _is_request_entry(entry: object) -> bool:
    return isinstance(entry, Mapping) and isinstance(entry.get("request"), Mapping)


def _issue_codes(response: requests.Response) -> list[str]:
    """OperationOutcome issue codes only: diagnostics are free text and may quote our data."""
    body = json_or_none(response)
    found: list[str] = []
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        for issue in body.get("issue") or []:
            code = issue.get("code") if isinstance(issue, dict) else None
            if isinstance(code, str) and _ISSUE_CODE.match(code) and code not in found:
                found.append(code)
    return found


def _entry_result(entry: Mapping[str, Any]) -> EntryResult:
    response = entry.get("response") or {}
    status_text = str(response.get("status", ""))
    status = int(status_text.split()[0]) if status_text[:3].isdigit() else 0
    location = response.get("location")
    resource = entry.get("resource") or {}
    rtype, rid, version = resource.get("resourceType"), resource.get("id"), None
    match = _LOCATION.search(location.split("?")[0]) if isinstance(location, str) else None
    if match:
        rtype, rid, version = match.group(1), match.group(2), match.group(3)
    meta = resource.get("meta") or {}
    return EntryResult(
        resource_type=str(rtype or ""),
        id=rid,
        version=version or meta.get("versionId"),
        status=status,
        created=status == 201,
        location=location if isinstance(location, str) else None,
        resource=resource if resource else None,
    )


def _retry_if_garbled(response: requests.Response, call: str) -> None:
    """Raise Retryable for a 2xx that says it is JSON but does not parse: it was cut or garbled
    on its way (a proxy, a connection dropped inside the body; tests/faults found these ending
    as dead letters). Repeating is safe: reads, and transactions of conditional creates. A page
    that is not JSON at all (a login page: a wrong base_url) stays Fatal."""
    media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media.endswith("json") and json_or_none(response) is None:
        raise Retryable(f"{call} answered 2xx with JSON that does not parse; will retry")


def _resources(bundle: Any, resource_type: str) -> Iterator[Mapping[str, Any]]:
    """Resources of one type from a searchset, matches only (never _include'd or outcomes)."""
    if not isinstance(bundle, dict):
        raise Fatal(f"GET {resource_type} answered 2xx without a Bundle")
    for entry in bundle.get("entry") or []:
        mode = (entry.get("search") or {}).get("mode", "match")
        resource = entry.get("resource")
        if mode == "match" and isinstance(resource, dict):
            if resource.get("resourceType") == resource_type:
                yield resource


def _next_link(bundle: Any) -> str | None:
    for link in bundle.get("link") or [] if isinstance(bundle, dict) else []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


def _last_updated(resource: Mapping[str, Any]) -> datetime | None:
    value = (resource.get("meta") or {}).get("lastUpdated")
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _fhir_instant(moment: datetime) -> str:
    """UTC with milliseconds and 'Z': no '+' to be mangled in a query string."""
    if moment.tzinfo is None:
        raise ValueError("since must be timezone-aware (the server's meta.lastUpdated is)")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
