"""Where each item of privacy.md §7 (the adversarial test list) is tested.

1. Sequential CNICs throttled and locked; invalid/unknown/known indistinguishable —
   tests/registry/test_abuse.py::test_sequential_cnics_lock_the_establishment,
   tests/registry/test_checks.py::test_answers_have_one_shape_and_one_size,
   tests/adversarial/test_registry_oracle.py::test_answers_have_one_byte_length_over_http
2. Known CNIC with a wrong name or DOB is PENDING_REVIEW and reveals nothing —
   tests/registry/test_checks.py::test_registered_cnic_with_the_wrong_name_or_dob_is_pending_and_reveals_nothing
3. Hit and miss indistinguishable by size and by time (KS test) —
   tests/registry/test_api.py::test_every_outcome_has_the_same_size_and_is_never_cached,
   tests/registry/test_checks.py::test_hit_and_miss_do_the_same_database_work,
   tests/adversarial/test_registry_oracle.py::test_response_times_do_not_tell_hit_miss_or_pending_apart
4. A re-used consent_ref, a CNIC alone — rejected —
   tests/registry/test_checks.py::test_consent_references_are_single_use,
   tests/registry/test_checks.py::test_a_cnic_alone_is_refused
5. A common name without a CNIC hit is PENDING_REVIEW, never DO_NOT_ENGAGE —
   tests/registry/test_checks.py::test_common_name_without_a_cnic_hit_is_pending_never_do_not_engage,
   tests/registry/test_matching.py::test_a_fuzzy_only_match_is_never_do_not_engage
6. Health and police share no joinable value; probes are k-anonymous —
   tests/adversarial/test_outbound_payloads.py::test_health_and_police_share_no_joinable_value,
   tests/adversarial/test_outbound_payloads.py::test_no_document_holds_a_primero_id_or_a_hash_of_an_identifier,
   tests/privacy/test_properties.py::test_probes_are_anonymous_and_k_anonymous
7. A police code at the health endpoint is refused and is a security event —
   tests/privacy/test_codes.py::test_wrong_department_is_refused_and_raises_a_security_event,
   tests/incidents/test_inbound.py::test_a_code_from_the_wrong_department_opens_an_incident
8. Codes are no hash of an identifier, nor an HMAC under another key; no unkeyed hash leaves —
   tests/privacy/test_properties.py::test_identified_payloads_obey_allow_list_suppression_and_default_deny,
   tests/adversarial/test_outbound_payloads.py::test_no_document_holds_a_primero_id_or_a_hash_of_an_identifier
9. A leaked police key opens police codes only and raises a breach; rotation drill —
   tests/privacy/test_codes.py::test_a_leaked_police_key_opens_no_health_code,
   tests/privacy/test_codes.py::test_rotation_reissues_every_code_with_a_crosswalk_then_retires_the_old_key,
   tests/incidents/test_breaches.py::test_a_leaked_police_key_raises_an_incident_listing_every_police_code
10. An unknown or retired key version is refused, no fallback —
    tests/privacy/test_codes.py::test_unknown_key_version_has_no_fallback
11. An HMAC over a CNIC falls to brute force; codes seal case UUIDs only —
    tests/adversarial/test_outbound_payloads.py::test_an_hmac_over_a_cnic_falls_to_brute_force_once_its_key_leaks,
    tests/adversarial/test_outbound_payloads.py::test_case_codes_seal_the_case_uuid_and_nothing_else
12. Bad CNICs (lengths, provinces, digit scripts, dashes, invisibles, 10 kB, injections) —
    tests/privacy/test_normalise.py::test_cnic_spellings_normalise_to_13_digits,
    tests/privacy/test_normalise.py::test_province_rules_and_no_parity_check,
    tests/privacy/test_normalise.py::test_bad_cnics_are_refused_without_echoing_them
13. Phones to E.164, landlines flagged —
    tests/privacy/test_normalise.py::test_mobile_spellings_become_e164,
    tests/privacy/test_normalise.py::test_landlines_are_flagged_and_bad_numbers_refused
14. Urdu letter variants share a match key, the display value is kept —
    tests/privacy/test_normalise.py::test_spelling_variants_share_a_key,
    tests/privacy/test_normalise.py::test_display_value_is_not_touched,
    tests/registry/test_matching.py::test_urdu_folding_gives_one_key
15. Bidi overrides and controls: stripped from keys, cannot forge log lines —
    tests/privacy/test_normalise.py::test_bidi_and_control_characters_never_reach_a_key,
    tests/privacy/test_log_filter.py::test_log_forging_and_bidi_tricks_are_neutralised
16. Homoglyphs flagged; NFC/NFD and fullwidth fold —
    tests/privacy/test_normalise.py::test_mixed_scripts_and_homoglyphs_are_flagged,
    tests/registry/test_matching.py::test_nfc_nfd_fullwidth_and_bidi_controls_fold
17. No consent, no identified disclosure; consent is per department; withdrawal stops it —
    tests/privacy/test_properties.py::test_no_consent_means_no_disclosure,
    tests/privacy/test_consent.py::test_override_replaces_consent_for_its_department_only,
    tests/privacy/test_consent.py::test_withdrawal_stops_disclosure_and_queues_one_deletion_request
18. Overrides: requester = approver or no legal reference refused; every one audited —
    tests/privacy/test_consent.py::test_bad_overrides_are_rejected_and_ignored,
    tests/privacy/test_consent.py::test_recorded_override_is_audited_and_used
19. Mutations: consent defaults, a new upstream Primero field —
    tests/privacy/test_consent.py::test_only_boolean_true_counts,
    tests/privacy/test_properties.py::test_identified_payloads_obey_allow_list_suppression_and_default_deny,
    tests/adversarial/test_outbound_payloads.py::test_new_fields_never_leave_and_s3_text_never_leaves
20. S3 narrative never leaves (12-character runs); NADRA never gets a concern —
    tests/privacy/test_properties.py::test_identified_payloads_obey_allow_list_suppression_and_default_deny,
    tests/privacy/test_disclosure.py::test_birth_registration_never_gets_concerns,
    tests/adversarial/test_outbound_payloads.py::test_new_fields_never_leave_and_s3_text_never_leaves
21. An edited, reordered or deleted audit entry fails verification —
    tests/privacy/test_audit.py::test_edit_is_detected,
    tests/privacy/test_audit.py::test_reorder_is_detected,
    tests/privacy/test_audit.py::test_deletion_in_the_middle_is_detected
22. Crypto-shredding makes archives and backups unreadable; aggregates stay right —
    tests/retention/test_flow.py::test_after_seven_years_the_case_is_shredded_even_in_a_restored_backup
23. Small cells suppressed; two releases cannot be differenced —
    tests/retention/test_stats.py::test_small_cells_and_their_complements_are_hidden,
    tests/retention/test_stats.py::test_two_releases_cannot_be_subtracted_to_reveal_a_few_cases
24. A removal applies at the next check; subject access lists every checker —
    tests/registry/test_checks.py::test_removal_then_recheck_is_clear_at_once,
    tests/registry/test_review.py::test_subject_access_lists_every_establishment_that_checked
25. A key-access anomaly opens an incident with a 24 h deadline and queues notices —
    tests/incidents/test_notify.py::test_a_key_access_anomaly_opens_an_incident_and_the_dpo_is_mailed,
    tests/incidents/test_detect.py::test_deadline_overdue_and_missed
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_REFERENCE = re.compile(r"(tests/[\w/]+\.py)::(\w+)")
_ITEM = re.compile(r"^(\d+)\. ", re.MULTILINE)


def test_every_item_of_the_list_names_tests_that_exist() -> None:
    """The map above cannot rot: every §7 item is there, and every test it names exists."""
    assert __doc__ is not None
    assert [int(n) for n in _ITEM.findall(__doc__)] == list(range(1, 26))
    items = re.split(r"^\d+\. ", __doc__, flags=re.MULTILINE)[1:]
    missing = []
    for number, item in enumerate(items, start=1):
        references = _REFERENCE.findall(item)
        assert references, f"§7 item {number} names no test"
        for path, name in references:
            source = ROOT / path
            if not source.exists() or f"def {name}(" not in source.read_text(encoding="utf-8"):
                missing.append(f"item {number}: {path}::{name}")
    assert not missing, "renamed or removed tests; update this map: " + ", ".join(missing)
