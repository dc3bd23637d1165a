"""A faithful Primero v2 simulator: a real HTTP server with Primero's quirks.

Used as the demo backend, the tests' Primero and a rehearsal target for IT staff::

    with PrimeroSimulator(cases=1000) as sim:
        requests.get(sim.url + "/api/v2/cases", auth=("cpims-adapter", "sim-password"))

`cpims-adapter simulate primero --port N --cases N` runs `serve_forever(port, cases, seed, host)`.

Seeded users (password for all: ``sim-password``)
-------------------------------------------------
=================  =====================  ===============================================
user_name          role                   notes
=================  =====================  ===============================================
cpims-adapter      role-integration       group `all`; read/create/write/referral/flag/
                                          sync_external/change_log, users read,
                                          dashboard dash_shared_with_others; no
                                          `notes` form, protection
                                          concern details read-only (silent drops)
cp_worker1..3      role-cp-case-worker    group `self` (own + assigned cases), all forms
health_gateway     role-health-gateway    can receive referrals (CP and GBV)
cp_supervisor1     role-cp-supervisor     agency scope; approves disclosure decisions
cp_viewer          role-cp-viewer         read only: referral attempts are 403
system_monitor     role-system-monitor    user_category `system`: cannot receive referrals
primero_admin      role-superuser         manages forms, modules, webhooks
=================  =====================  ===============================================

Permitted fields: reads return core fields + filter fields + the fields of the role's forms for
the record's module + record-information fields (`last_updated_at`, `owned_by`, consent flags,
...); writes keep only fields of forms the role holds "rw" plus the core schema, dropping the
rest silently (permissions.py).

Control API (no auth)
---------------------
GET /_sim/health · POST /_sim/faults {status(500|502|503|429), count, retry_after,
path_prefix, delay_seconds, mutate_on_list}, or a fault plan {seed, rules, mutate_on_list}
(adapter/simulator/faults.py) · GET /_sim/faults · DELETE /_sim/faults · POST /_sim/config_lock
{locked, retry_after} · POST /_sim/touch {ids|count} · GET /_sim/cases/{id} · GET
/_sim/users/{user_name} · POST /_sim/cases/{id}/decisions {user_name, department, basis,
legal_reference?, reason?, unique_id?, _destroy?} (a user records a disclosure decision, as
their own PATCH would) · POST /_sim/idp_tokens {user_name, token?} · PUT
/_sim/roles/{role}/forms {forms} · PUT /_sim/roles/{role}/permissions {resource: [actions]}
· PATCH /_sim/modules/{unique_id} {module_options} · POST
/_sim/session_timeout {seconds} · PATCH /_sim/options · GET /_sim/stats · GET
/_sim/webhook_deliveries

Verified against Primero's source (primeroIMS/primero @ 4b95bf9474, v2.15.2.1)
-----------------------------------------------------------------------------
- Date ranges on jsonb fields: `TO_TIMESTAMP(.., 'YYYY-MM-DD"T"HH24:MI:SS')` on *both* the stored
  value and the bound, `>=` / `<=` inclusive at second granularity; a stored 10:00:00.500 is
  *inside* `..10:00:00Z`. The bound's offset is applied by `Time.zone.parse` (UTC) before that,
  so `+05:00` (URL-encoded) is honoured, while a raw `+` decodes to a space, the value is no
  datetime and the filter is silently dropped. `..to` (nil from) also drops the filter; date-only
  bounds compare whole days. Fields with a `srch_` datetime column (created_at,
  registration_date, ...) compare at full precision instead.
  [app/models/search_filters/date_range.rb, date_value.rb, app/models/report.rb,
  app/services/destringify_service.rb, app/services/search_filter_service.rb, db/schema.rb]
- Referral `process!`: same status or unknown transition is a no-op; accept/reject only from
  in_progress, done only from accepted (service row implemented + provider note), revoke from
  any; every save re-runs consent/receiver validations; every effective change saves the case.
  [app/models/referral.rb, app/models/transition.rb, app/controllers/api/v2/referrals_controller.rb,
  app/models/concerns/transition_alertable.rb]
- Receiver check excludes sender, disabled and system/maintenance users; needs
  `receive_referral` in the module. [app/services/user_transition_service.rb]
- PATCH merge by `unique_id`, `_destroy`, `[]` leaves rows intact.
  [app/services/record_merge_data_hash_service.rb]
- Create 204 when `data.id`; response = changed ∩ permitted; errors `status`/`resource`/`detail`.
  [app/controllers/api/v2/concerns/record.rb, app/services/error_service.rb,
  app/views/api/v2/records/*.jbuilder, app/views/api/v2/transitions/_transition.json.jbuilder]
- Pagination (`per` cap 1000, Ruby `to_i`), filters and permitted fields.
  [app/controllers/api/v2/concerns/pagination.rb, app/services/permitted_field_service.rb,
  app/services/field_selection_service.rb, app/services/record_data_service.rb]
- Schema types. [app/services/record_json_validator_service.rb, json_validator_service.rb]
- Auth: Devise lockable 6 / 30 min, `paranoid = true` (locked accounts get the *invalid* message;
  `PATCH /_sim/options {"paranoid": false}` shows "Your account is locked."), Rack::Attack
  6/min/user name (fixed window), CSRF message, 401 header.
  [config/initializers/devise.rb, rack_attack.rb, session_store.rb,
  app/controllers/concerns/csrf_protection.rb, app/middleware/www_authenticate.rb,
  app/controllers/api/v2/tokens_controller.rb]
- Sign-in order: Rack::Attack 429, configuration lock 503, CSRF 403 (the token comes from
  `GET /health/:id?session=true`), then the password 401; sign-in renews the session id and
  drops its CSRF token. [devise.rb parent_controller + clean_up_csrf_token_on_authentication,
  app/controllers/application_api_controller.rb, app/controllers/health_controller.rb,
  app/services/health_check_service.rb]
- Modules: show/update by numeric id only; PATCH permits description, associated_record_types,
  form_section_unique_ids — `module_options` is dropped, and a PATCH without the form list
  detaches every form. [app/controllers/api/v2/primero_modules_controller.rb,
  app/models/primero_module.rb#update_with_properties]
- List order: unknown `order` directions sort ascending; identifier search is ILIKE over ID
  values. [app/services/search/identifier_search_query.rb, search_result.rb]
- Webhooks and sync status. [app/models/concerns/webhookable.rb, app/jobs/webhook_job.rb,
  app/services/api_connector/webhook_connector.rb, app/controllers/api/v2/webhooks_controller.rb,
  app/controllers/api/v2/webhook_syncs_controller.rb]
"""

from adapter.simulator.primero.app import create_app
from adapter.simulator.primero.seed import seed
from adapter.simulator.primero.server import PrimeroSimulator, build_state, serve_forever
from adapter.simulator.primero.state import SimulatorState

__all__ = [
    "PrimeroSimulator",
    "SimulatorState",
    "build_state",
    "create_app",
    "seed",
    "serve_forever",
]
