"""Webhook registration rules and delivery (primero-api.md §7).

Delivery mirrors WebhookJob + WebhookConnector: runs in the background after the save, only when
the record's module lists "case" in `module_options.use_webhooks_for`, POSTs
`{"data": {"record_id", "record_type": "case", "hostname", ...fields}}` once to each webhook
registered for `case.<action>`, with **no retry**; failures are only logged. Each send is logged
`sending` then `sent` / `failed` per URL, which feeds the case's `sync_status`
(app/jobs/webhook_job.rb, app/services/api_connector/webhook_connector.rb, webhookable.rb).
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
from typing import Any

import requests

from adapter.simulator.primero import permissions, records
from adapter.simulator.primero.state import Case, Json, SimulatorState, User

log = logging.getLogger(__name__)


def _matches(webhook: Json, event: str) -> bool:
    events = webhook.get("events")
    return events == event or (isinstance(events, list) and event in events)


def payload(state: SimulatorState, webhook: Json, case: Case) -> Json | None:
    """post_params: fields readable by the webhook's role for the module + core fields."""
    role = state.roles.get(webhook.get("role_unique_id") or "")
    if role is None:
        return None  # Role.find_by(...) is nil: the job raises and only logs
    module_id = case.data.get("module_id")
    names = {f["name"] for f in permissions.form_fields(state, role, module_id, writeable=False)}
    names |= set(permissions.CORE_FIELDS)
    pseudo_user = User(
        id=0,
        user_name="",
        password="",
        role_unique_id=role.unique_id,
        agency_unique_id="",
        full_name="",
    )
    data = records.present(state, pseudo_user, case, names)
    data.pop("id", None)
    data.pop("enabled", None)
    return {
        "data": {
            "record_id": case.id,
            "record_type": "case",
            "hostname": state.options.hostname,
            **data,
        }
    }


def _headers(webhook: Json) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    secret = webhook.get("auth_secret")
    if webhook.get("auth_type") == "api_key" and secret:
        headers["x-api-key"] = str(secret)
    elif webhook.get("auth_type") == "basic_auth" and secret:
        headers["Authorization"] = "Basic " + base64.b64encode(str(secret).encode()).decode()
    return headers


class WebhookDispatcher:
    """Background worker draining `state.webhook_events` (the delayed_job `api` queue)."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="primero-sim-webhooks", daemon=True)

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current delivery."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                case_id, action = self.state.webhook_events.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                self.deliver(case_id, action)
            except Exception:
                log.exception("Error sending out case %s", case_id)

    def deliver(self, case_id: str, action: str) -> None:
        """Send one record event to every matching webhook (called on the worker thread)."""
        state = self.state
        event = f"case.{action}"
        sends: list[tuple[Json, Json | None, Json]] = []
        with state.lock:
            case = state.cases.get(case_id)
            if case is None:
                return
            module = state.modules.get(case.data.get("module_id") or "")
            if not module or "case" not in (module["module_options"].get("use_webhooks_for") or []):
                return
            for webhook in list(state.webhooks.values()):
                if not _matches(webhook, event):
                    continue
                body = payload(state, webhook, case)
                entry = {
                    "resource_url": webhook["url"],
                    "status": "sending",
                    "timestamp": state.stamp(),
                }
                case.sync_logs.append(entry)
                sends.append((webhook, body, entry))
        for webhook, body, entry in sends:
            self._send(case_id, event, webhook, body, entry)

    def _send(
        self, case_id: str, event: str, webhook: Json, body: Json | None, entry: Json
    ) -> None:
        status_code: int | None = None
        error: str | None = None
        if body is None:
            error = f"role {webhook.get('role_unique_id')!r} not found"
        else:
            try:
                response = requests.post(
                    webhook["url"],
                    json=body,
                    headers=_headers(webhook),
                    timeout=self.state.options.webhook_timeout_seconds,
                )
                status_code = response.status_code
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}: {exc}"
        if error:
            log.warning("webhook %s for case %s failed: %s", webhook["url"], case_id, error)
        delivered: dict[str, Any] = {
            "webhook_id": webhook["id"],
            "url": webhook["url"],
            "event": event,
            "record_id": case_id,
            "status_code": status_code,
            "error": error,
            "payload": body,
        }
        with self.state.lock:
            ok = status_code is not None and status_code < 400
            entry["status"] = "sent" if ok else "failed"
            delivered["delivered_at"] = self.state.stamp()
            self.state.webhook_deliveries.append(delivered)
