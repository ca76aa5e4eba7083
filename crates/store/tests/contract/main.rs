//! The storage contract, run against every implementation: `memory_store::*`,
//! `sqlite_store::*` and, when `TEST_DATABASE_URL` is set, `postgres_store::*`.
//! Every test gets a private store: a new in-memory store, a new SQLite file, or a new
//! PostgreSQL schema, dropped afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod cases;
mod fixtures;
mod ledger;
mod reads;

/// One module of tests per backend, one test per case.
macro_rules! suite {
    ($module:ident, $fixture:path, [$($case:ident),* $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $case() {
                    if let Some(fixture) = $fixture() {
                        super::cases::$case(&fixture);
                    }
                }
            )*
        }
    };
}

/// The cases every store must pass.
macro_rules! common_suite {
    ($module:ident, $fixture:path $(, $extra:ident)*) => {
        suite!($module, $fixture, [
            a_created_trunk_reads_back_equal,
            trunks_are_listed_by_id_ascending_and_only_the_owners,
            another_owner_can_neither_see_nor_change_nor_delete_a_trunk,
            the_same_number_username_and_address_conflicts_within_an_owner_only,
            threads_racing_to_create_the_same_trunk_give_exactly_one_winner,
            an_update_into_another_trunks_identity_conflicts_and_changes_nothing,
            update_and_delete_of_an_absent_trunk_are_not_found,
            a_deleted_trunk_is_gone_and_its_id_is_never_reused,
            timestamps_round_trip_to_the_microsecond,
            allow_lists_round_trip_in_canonical_first_seen_order,
            updated_at_moves_on_a_real_change_and_not_on_an_empty_one,
            an_update_applies_every_field_sent_and_reports_the_legs,
            an_update_breaking_a_rule_of_the_stored_trunk_is_rejected_and_changes_nothing,
            concurrent_updates_of_one_trunk_are_all_applied,
            a_users_email_is_unique_and_found_again,
            a_user_is_found_by_id_and_an_unknown_id_is_not_found,
            api_keys_authenticate_list_record_use_and_revoke,
            a_token_with_a_wrong_secret_or_key_id_is_refused,
            keys_and_trunks_of_a_missing_user_are_not_found,
            reads_for_clients_show_the_trunk_without_its_password,
            a_list_is_read_in_pages_by_id_that_resume_after_the_last_row,
            an_owner_holds_at_most_its_trunk_limit,
            racing_creates_never_take_an_owner_past_its_trunk_limit,
            racing_creates_of_several_owners_each_get_their_own_answer,
            creates_queued_at_once_each_get_their_own_answer,
            reads_queued_at_once_each_get_their_own_answer,
            queued_creates_of_an_account_near_its_limit_fill_it_exactly,
            an_owner_holds_at_most_its_api_key_limit,
            ledger_a_trunk_being_created_is_hidden_until_finished_and_still_holds_its_identity,
            ledger_an_abandoned_create_is_gone_and_the_legs_it_made_are_queued,
            ledger_a_lease_has_one_holder_until_it_runs_out,
            ledger_a_lease_is_renewed_by_its_holder_only_and_never_after_it_ended,
            ledger_a_retried_create_waits_for_a_live_one_and_takes_a_dead_ones_place,
            ledger_an_update_onto_a_dead_hidden_creates_identity_succeeds_and_a_live_ones_conflicts,
            ledger_committed_legs_replace_the_old_ones_which_are_queued_for_removal,
            ledger_a_commit_for_settings_changed_meanwhile_writes_nothing,
            ledger_a_concurrent_rename_survives_a_commit_of_new_legs,
            ledger_a_deleted_trunk_queues_both_legs_and_removals_are_retried_when_due,
            ledger_a_trunk_released_for_repair_is_claimed_once,
            ledger_a_postponed_repair_is_not_claimed_before_its_time_but_a_client_may_lease_it,
            ledger_a_create_whose_lease_ran_out_is_claimed_for_rollback,
            ledger_the_reconciler_lease_has_one_holder_at_a_time,
            ledger_leg_references_cover_every_trunk_hidden_ones_included,
            ledger_only_a_ready_trunk_nobody_works_on_is_marked_for_repair,
            ledger_a_holder_that_dies_while_changing_legs_leaves_the_trunk_to_the_reconciler,
            ledger_leg_checks_and_failures_are_kept_per_trunk_and_read_by_its_owner_only,
            a_trunks_probe_slot_is_taken_once_per_spacing_even_by_racing_replicas,
            number_conflicts_are_recorded_up_to_the_budget_per_window_and_owner,
            racing_number_conflicts_never_pass_the_budget,
            each_carrier_address_of_the_trunks_is_due_once_synced_claimed_once_and_gone_with_its_trunks,
            a_carriers_health_round_trips_and_is_due_again_when_recorded,
            racing_probers_claim_each_carrier_once,
            trunks_are_counted_by_their_carriers_state_hidden_creates_left_out,
            $($extra,)*
        ]);
    };
}

common_suite!(memory_store, crate::fixtures::memory);
/// The common cases plus those about what the SQL stores keep on disk.
macro_rules! sql_suite {
    ($module:ident, $fixture:path) => {
        common_suite!(
            $module,
            $fixture,
            the_stored_password_is_sealed_never_plaintext,
            a_store_opened_with_another_key_reports_corrupt_rows_cleanly,
            a_rotated_key_ring_opens_old_rows_and_seals_new_writes_with_the_new_key,
            a_row_that_no_longer_parses_is_reported_corrupt,
            one_row_that_does_not_read_never_fails_the_list,
            a_code_column_that_no_longer_parses_is_named_and_the_rest_of_the_page_still_reads,
            a_sealed_password_moved_to_another_trunk_does_not_open,
            reseal_moves_every_row_to_the_current_key_and_is_safe_to_run_again,
            reseal_reports_rows_it_cannot_open_and_leaves_them_as_they_are,
            passwords_bound_to_their_owner_only_are_rebound_to_their_trunk,
            the_key_ids_of_the_stored_passwords_are_listed_once_each,
            an_account_counter_that_drifted_high_is_corrected_instead_of_refusing,
            imported_trunks_count_against_the_limit,
            a_batch_of_creates_fills_an_account_exactly_to_its_limit,
            a_batch_of_creates_answers_each_collision_as_its_own_insert_would,
            a_batch_of_reads_answers_each_as_its_own_read_would
        );
    };
}

sql_suite!(sqlite_store, crate::fixtures::sqlite);
sql_suite!(postgres_store, crate::fixtures::postgres);
