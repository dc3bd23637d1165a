"""Configuration and introspection: version, health, capabilities, forms, lookups, agencies,
users to refer to, webhooks and modules."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from adapter.errors import (
    PrimeroForbidden,
    PrimeroNoOp,
    PrimeroNotFound,
    PrimeroVersionError,
)
from adapter.primero._dropped import stored_as_sent
from adapter.primero._errors import malformed
from adapter.primero._requester import CASES, Requester, segment
from adapter.primero._transport import Replay, parse_retry_after
from adapter.primero._versions import parse_version
from adapter.primero.models import Capabilities, Capability, HealthStatus, Record

SETTINGS = "/api/v2/system_settings"
MODULES = "/api/v2/primero_modules"
WEBHOOKS = "/api/v2/webhooks"
FORMS = "/api/v2/forms"
_UNKNOWN = Capability(
    "unknown",
    "cannot be known without a write: the account may not read its own role; check the role "
    "in Primero",
)


class AdminMixin(Requester):
    """Everything that is not a case or a referral."""

    _min_version: str
    _username: str | None

    # --- version and health -----------------------------------------------------------------

    def system_settings(self) -> Record:
        """`GET /api/v2/system_settings` (includes `primero_version`)."""
        return self._dict("GET", SETTINGS, self._data("GET", SETTINGS))

    def primero_version(self) -> str:
        """The server's version, e.g. "2.15.2.1" (system_settings.rb#set_version)."""
        version = self.system_settings().get("primero_version")
        if not isinstance(version, str) or not version:
            raise malformed("GET", SETTINGS, 200, "has no primero_version")
        return version

    def check_version(self, min_version: str | None = None) -> str:
        """Return the server's version; raise PrimeroVersionError if older than `min_version`
        (default: primero.min_version)."""
        wanted = min_version or self._min_version
        version = self.primero_version()
        try:
            too_old = parse_version(version) < parse_version(wanted)
        except ValueError:
            raise PrimeroVersionError(
                f"GET {SETTINGS}: Primero reports a version the adapter cannot read; it needs "
                f"{wanted} or newer. Check that primero.url points at Primero v2.",
                method="GET",
                resource=SETTINGS,
            ) from None
        if too_old:
            raise PrimeroVersionError(
                f"Primero {version} is older than {wanted}, the oldest this adapter supports "
                "(Basic auth without CSRF and the cookie session arrived in v2.11; "
                "primero-api.md §9). Upgrade Primero, or lower primero.min_version only after "
                "testing against that version.",
                method="GET",
                resource=SETTINGS,
            )
        return version

    def health(self) -> HealthStatus:
        """`GET /health`: 204 healthy, 503 otherwise. Sent once, without credentials."""
        response = self._transport.send("GET", "/health", replay=Replay.ONCE)
        response.close()
        return HealthStatus(
            healthy=200 <= response.status_code < 300,
            status=response.status_code,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC)),
        )

    def capabilities(self, forms: Mapping[str, str] | None = None) -> Capabilities:
        """What the account may do, established with read-only calls (for the `check` CLI).

        Writes cannot be probed without writing, so they are "unknown" unless the account's
        own role is readable (`GET /api/v2/users/:id?extended=true`: its permission list and
        `permitted_form`, the form unique_id → "r"/"rw" of role.rb#form_section_permission).
        ``forms`` names form unique_ids and the access the adapter needs on them ("r" or "rw"):
        each becomes a check ``forms.<id>.read`` or ``forms.<id>.write``.
        """
        version = self.primero_version()
        checks: dict[str, Capability] = {}
        checks["cases.read"] = self._probe(CASES, {"per": 1, "fields": "id"}, "listed cases")
        checks["referrals.create"] = self._probe(
            "/api/v2/users/refer-to",
            {"record_type": "case"},
            "listed users to refer to (needs case:referral)",
        )
        checks["webhooks.manage"] = self._probe(WEBHOOKS, None, "listed webhooks")
        checks["forms.read"] = self._probe(FORMS, {"record_type": "case"}, "listed case forms")
        role = self._own_role()
        permissions = role[0] if role else None
        derived = {
            "cases.write": ("cases", {"write", "manage"}),
            "cases.create": ("cases", {"create", "manage"}),
            "cases.sync_external": ("cases", {"sync_external", "manage"}),
            # The record history proves who recorded a disclosure decision (decisions.py).
            "cases.change_log": ("cases", {"change_log", "manage"}),
            "forms.manage": ("metadata", {"manage"}),
            # A dashboard that filters on the referral summary puts it in the case listing
            # (permitted_field_service.rb PERMITTED_DASHBOARD_FILTERS): the sync then fetches
            # referrals only for cases that carry one (adapter/mappings/routing.py).
            "cases.referral_summary": (
                "dashboards",  # `p.resource.pluralize` (users/_user.json.jbuilder)
                {"dash_shared_with_others", "dash_shared_from_my_team"},
            ),
        }
        for name, (resource, actions) in derived.items():
            if permissions is None:
                checks[name] = _UNKNOWN
            else:
                granted = permissions.get(resource, set()) & actions
                shown = ",".join(sorted(granted)) or "none of " + "/".join(sorted(actions))
                checks[name] = Capability(
                    "yes" if granted else "no", f"role grants {resource}:{shown}"
                )
        for form_id, wanted in (forms or {}).items():
            name = f"forms.{form_id}.{'write' if wanted == 'rw' else 'read'}"
            if role is None:
                checks[name] = _UNKNOWN
                continue
            held = role[1].get(form_id)
            ok = held == "rw" or (wanted == "r" and held == "r")
            shown = {"rw": "read and write", "r": "read only"}.get(str(held), "no access")
            checks[name] = Capability("yes" if ok else "no", f"role has {shown} on {form_id}")
        identity = self._auth.identity or {}
        user = identity.get("user_name")
        return Capabilities(
            version=version,
            auth_mode=self._auth.mode,
            user_name=user if isinstance(user, str) else self._username,
            checks=checks,
        )

    def _probe(self, path: str, params: Mapping[str, Any] | None, what: str) -> Capability:
        try:
            self._call("GET", path, params=params).close()
        except PrimeroForbidden:
            return Capability("no", f"GET {path} answered 403")
        except PrimeroNotFound:
            return Capability("unknown", f"GET {path} answered 404 (older Primero?)")
        return Capability("yes", what)

    def _own_role(self) -> tuple[dict[str, set[str]], dict[str, str]] | None:
        """The account's own permissions (resource → actions) and form access (unique_id →
        "r"/"rw"), or None when its user record cannot be read."""
        identity = self._auth.identity or {}
        user_id = identity.get("id")
        try:
            if user_id is None and self._username:
                found = self._data("GET", "/api/v2/users", params={"user_name": self._username})
                if isinstance(found, list) and len(found) == 1 and isinstance(found[0], dict):
                    user_id = found[0].get("id")
            if user_id is None:
                return None
            path = f"/api/v2/users/{segment(user_id, 'user id')}"
            user = self._data("GET", path, params={"extended": "true"})
        except (PrimeroForbidden, PrimeroNotFound):
            return None
        listed = user.get("permissions", {}).get("list") if isinstance(user, dict) else None
        if not isinstance(listed, list):
            return None
        granted: dict[str, set[str]] = {}
        for item in listed:
            if isinstance(item, dict) and isinstance(item.get("resource"), str):
                actions = item.get("actions") or []
                granted.setdefault(item["resource"], set()).update(
                    action for action in actions if isinstance(action, str)
                )
        permitted = user.get("permitted_form")
        forms = (
            {str(k): str(v) for k, v in permitted.items()} if isinstance(permitted, dict) else {}
        )
        return granted, forms

    # --- forms, lookups, agencies, users -----------------------------------------------------

    def list_forms(
        self, record_type: str | None = None, module_id: str | None = None
    ) -> list[Record]:
        """Form sections (`GET /api/v2/forms`), optionally for one record type and module."""
        params = {
            k: v for k, v in {"record_type": record_type, "module_id": module_id}.items() if v
        }
        return self._list("GET", FORMS, self._data("GET", FORMS, params=params or None))

    def create_form(self, form: Mapping[str, Any]) -> Record:
        """Create a form section. Not repeated after a timeout."""
        return self._dict(
            "POST",
            FORMS,
            self._data("POST", FORMS, json={"data": dict(form)}, replay=Replay.UNSENT),
        )

    def update_form(self, form_id: int | str, form: Mapping[str, Any]) -> Record:
        """Update a form section (`PATCH /api/v2/forms/:id`)."""
        path = f"{FORMS}/{segment(form_id, 'form_id')}"
        return self._dict("PATCH", path, self._data("PATCH", path, json={"data": dict(form)}))

    def list_lookups(self) -> list[Record]:
        """Every lookup (`GET /api/v2/lookups`, all pages)."""
        return self._collect("/api/v2/lookups")

    def get_lookup(self, unique_id: str | int) -> Record:
        """One lookup by its `unique_id` (e.g. "lookup-service-type") or numeric id."""
        if isinstance(unique_id, int) or unique_id.isdigit():
            path = f"/api/v2/lookups/{segment(unique_id, 'lookup id')}"
            return self._dict("GET", path, self._data("GET", path))
        # Primero's show action finds by numeric id only (lookups_controller.rb#show).
        for lookup in self.list_lookups():
            if lookup.get("unique_id") == unique_id:
                return lookup
        raise PrimeroNotFound(
            "GET /api/v2/lookups: no lookup with that unique_id is visible to the account.",
            status=404,
            method="GET",
            resource="/api/v2/lookups",
        )

    def list_agencies(self) -> list[Record]:
        """Every agency (`GET /api/v2/agencies`, all pages)."""
        return self._collect("/api/v2/agencies")

    def list_locations(self, hierarchy: bool = True) -> list[Record]:
        """Every location the account may see (`GET /api/v2/locations`, all pages).

        Items carry `id`, `code`, `type`, `disabled` and `name`; `admin_level`, `placename` and
        `hierarchy` come only with `hierarchy=true` (locations/_location.json.jbuilder). The
        listing pages by 100 unless told, without Primero's usual 1000 cap
        (locations_controller.rb#per); we ask for 1000 a page and follow every page.
        """
        params = {"hierarchy": "true"} if hierarchy else None
        return self._collect("/api/v2/locations", params)

    def refer_to_users(
        self,
        record_type: str = "case",
        record_module_id: str | None = None,
        agency: str | None = None,
        location: str | None = None,
        service: str | None = None,
    ) -> list[Record]:
        """Users the account may refer `record_type` records to.

        The filter is `service` (singular) in the code; the docs' `services` is ignored
        (users_transitions_controller.rb#user_filters; DOC≠CODE).
        """
        params = {
            "record_type": record_type,
            "record_module_id": record_module_id,
            "agency": agency,
            "location": location,
            "service": service,
        }
        path = "/api/v2/users/refer-to"
        query = {key: value for key, value in params.items() if value is not None}
        return self._list("GET", path, self._data("GET", path, params=query))

    # --- webhooks and modules (primero-api.md §7) ---------------------------------------------

    def list_webhooks(self) -> list[Record]:
        """Registered webhooks (needs webhook:manage)."""
        return self._list("GET", WEBHOOKS, self._data("GET", WEBHOOKS))

    def create_webhook(
        self,
        events: str,
        url: str,
        role_unique_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Record:
        """Register one webhook for ONE event ("case.create", "case.update" or "case.post").

        Primero permits `events` only as a scalar string (webhooks_controller.rb); register one
        webhook per event. `auth_type`/`auth_secret` cannot be set through the API.
        """
        if not isinstance(events, str) or not events or "," in events or " " in events:
            raise ValueError("events must be one event name, e.g. 'case.update'")
        data: dict[str, Any] = {"events": events, "url": url}
        if role_unique_id is not None:
            data["role_unique_id"] = role_unique_id
        if metadata is not None:
            data["metadata"] = dict(metadata)
        return self._dict(
            "POST",
            WEBHOOKS,
            self._data("POST", WEBHOOKS, json={"data": data}, replay=Replay.UNSENT),
        )

    def delete_webhook(self, webhook_id: int | str) -> None:
        """Delete a webhook."""
        path = f"{WEBHOOKS}/{segment(webhook_id, 'webhook_id')}"
        self._call("DELETE", path).close()

    def get_module(self, module_id: int | str) -> Record:
        """A Primero module by numeric id or `unique_id` (e.g. "primeromodule-cp")."""
        if isinstance(module_id, int) or module_id.isdigit():
            path = f"{MODULES}/{segment(module_id, 'module_id')}"
            return self._dict("GET", path, self._data("GET", path))
        # The show action finds by numeric id only (primero_modules_controller.rb).
        for module in self._list("GET", MODULES, self._data("GET", MODULES)):
            if module.get("unique_id") == module_id:
                return module
        raise PrimeroNotFound(
            f"GET {MODULES}: no module with that unique_id.",
            status=404,
            method="GET",
            resource=MODULES,
        )

    def require_module_options(self, module_id: int | str, options: Mapping[str, Any]) -> Record:
        """Check that a module has ``options`` (e.g. ``use_webhooks_for``); never writes.

        Primero's API cannot set them: its controller permits only description,
        associated_record_types and form_section_unique_ids (primero_modules_controller.rb
        #modules_params), and a PATCH without form_section_unique_ids detaches every form from
        the module, after which no role may write any of its fields. So this only reads, and
        raises PrimeroNoOp naming the admin-console step when the options are missing.
        """
        module = self.get_module(module_id)
        if not stored_as_sent(dict(options), module.get("module_options")):
            path = f"{MODULES}/{segment(module.get('id', module_id), 'module id')}"
            raise PrimeroNoOp(
                f"{path}: module_options lack {sorted(options)}; Primero's API cannot set them. "
                "Set use_webhooks_for (and use_webhook_sync_for) in Primero's admin console or "
                "configuration seed.",
                status=200,
                method="GET",
                resource=path,
            )
        return module
