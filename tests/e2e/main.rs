//! End-to-end: the real binary over HTTP, on SQLite (`sqlite_e2e::*`) and, when
//! `TEST_DATABASE_URL` is set, on PostgreSQL (`postgres_e2e::*`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod bounds;
mod carriers;
mod exits;
mod faults;
mod harness;
mod kamailio;
mod keys;
mod livekit;
mod replicas;
mod scenarios;
mod simulator;

/// Every scenario, by name.
mod cases {
    pub use crate::bounds::*;
    pub use crate::carriers::*;
    pub use crate::exits::*;
    pub use crate::faults::*;
    pub use crate::kamailio::*;
    pub use crate::keys::*;
    pub use crate::livekit::*;
    pub use crate::replicas::*;
    pub use crate::scenarios::*;
    pub use crate::simulator::*;
}

macro_rules! e2e_suite {
    ($module:ident, $database:path, [$($case:ident),* $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $case() {
                    if let Some(database) = $database() {
                        crate::cases::$case(&database);
                    }
                }
            )*
        }
    };
}

e2e_suite!(
    sqlite_e2e,
    crate::harness::sqlite,
    [
        the_contract_walkthrough_works_over_http,
        data_and_tokens_survive_a_restart,
        the_password_never_appears_in_a_response_or_the_log,
        a_sqlite_database_gets_a_private_key_file,
        the_service_refuses_to_start_without_a_key_the_stored_rows_need,
        a_lost_sqlite_key_file_is_never_replaced_while_passwords_are_stored,
        reencrypt_moves_every_row_to_the_current_key_so_the_old_one_can_go,
        thirty_two_identical_creates_give_one_201_and_the_rest_409,
        every_acknowledged_write_survives_a_sigkill,
        every_sqlite_file_the_service_creates_is_private,
        the_open_file_limit_is_raised_and_connections_are_capped,
        livekit_holds_the_legs_of_every_trunk_through_create_update_and_delete,
        a_half_livekit_configuration_refuses_to_start_and_none_means_registry_only,
        reconcile_lists_then_heals_what_livekit_lost,
        a_sigkill_between_two_provisioning_steps_is_healed_after_a_restart,
        a_create_and_an_update_retried_right_after_a_sigkill_get_their_true_answers,
        kamailio_enforces_on_sip_traffic_what_the_api_stores,
        the_simulator_agrees_with_the_real_edge_on_every_generated_call,
        the_simulator_writes_outbound_numbers_as_the_real_edge_does,
        kamailio_relays_nothing_a_stranger_dresses_as_in_dialog,
        kamailio_sends_the_platforms_calls_out_only_with_its_secret,
        kamailio_rpc_answers_only_the_service_and_only_its_methods,
        kamailio_down_during_a_write_gives_the_500_or_converges_once_it_is_back,
        a_failed_reload_leaves_the_edge_taking_calls_exactly_as_before,
        kamailio_carries_every_value_the_api_accepts_and_the_api_refuses_the_rest,
        reconcile_heals_what_kamailio_lost_and_removes_what_nobody_references,
        a_sqlite_edge_is_shared_with_kamailio_running_as_its_own_user,
        the_cli_writing_beside_a_sqlite_server_never_costs_a_client_a_locked_database,
        the_phone_number_endpoints_list_and_rename_the_callers_trunks,
        concurrent_uncached_reads_of_many_accounts_each_answer_that_accounts_own_trunks,
        the_json_log_is_one_object_per_line_with_request_ids_and_no_secret,
        the_metrics_listener_counts_requests_by_route_template_away_from_the_api,
        existing_clients_check_their_key_with_me_and_get_404_for_endpoints_this_service_lacks,
        a_taken_default_metrics_port_costs_the_metrics_not_the_service,
        strangers_methods_and_paths_leave_the_metrics_and_the_log_bounded,
        each_carrier_is_probed_once_a_period_however_many_trunks_use_it,
        a_probe_asked_for_shows_in_the_status_at_once_and_after_a_restart,
    ]
);

e2e_suite!(
    postgres_e2e,
    crate::harness::postgres,
    [
        the_contract_walkthrough_works_over_http,
        data_and_tokens_survive_a_restart,
        the_password_never_appears_in_a_response_or_the_log,
        thirty_two_identical_creates_give_one_201_and_the_rest_409,
        every_acknowledged_write_survives_a_sigkill,
        the_service_refuses_to_start_without_a_key_the_stored_rows_need,
        reencrypt_moves_every_row_to_the_current_key_so_the_old_one_can_go,
        livekit_holds_the_legs_of_every_trunk_through_create_update_and_delete,
        reconcile_lists_then_heals_what_livekit_lost,
        a_sigkill_between_two_provisioning_steps_is_healed_after_a_restart,
        a_create_and_an_update_retried_right_after_a_sigkill_get_their_true_answers,
        kamailio_enforces_on_sip_traffic_what_the_api_stores,
        the_simulator_agrees_with_the_real_edge_on_every_generated_call,
        the_simulator_writes_outbound_numbers_as_the_real_edge_does,
        kamailio_relays_nothing_a_stranger_dresses_as_in_dialog,
        kamailio_sends_the_platforms_calls_out_only_with_its_secret,
        kamailio_rpc_answers_only_the_service_and_only_its_methods,
        kamailio_down_during_a_write_gives_the_500_or_converges_once_it_is_back,
        a_failed_reload_leaves_the_edge_taking_calls_exactly_as_before,
        kamailio_carries_every_value_the_api_accepts_and_the_api_refuses_the_rest,
        reconcile_heals_what_kamailio_lost_and_removes_what_nobody_references,
        a_write_or_revocation_through_one_replica_is_seen_by_the_others_at_once,
        thirty_two_creates_spread_over_three_replicas_give_one_201,
        a_replica_killed_mid_burst_loses_no_acknowledged_write_and_catches_up,
        the_per_key_limit_admits_n_requests_across_three_replicas_not_3n,
        one_account_spread_over_three_replicas_gets_its_limit_to_within_two_percent,
        a_refused_request_retried_after_its_retry_after_is_admitted_by_another_replica,
        with_redis_gone_requests_are_served_on_per_process_limits_and_sharing_resumes,
        the_phone_number_endpoints_list_and_rename_the_callers_trunks,
        concurrent_uncached_reads_of_many_accounts_each_answer_that_accounts_own_trunks,
        the_json_log_is_one_object_per_line_with_request_ids_and_no_secret,
        the_metrics_listener_counts_requests_by_route_template_away_from_the_api,
        existing_clients_check_their_key_with_me_and_get_404_for_endpoints_this_service_lacks,
        each_carrier_is_probed_once_a_period_however_many_trunks_use_it,
        a_probe_asked_for_shows_in_the_status_at_once_and_after_a_restart,
    ]
);

e2e_suite!(
    postgres_tls_e2e,
    crate::harness::postgres_tls,
    [every_command_exits_with_its_status_every_time_over_tls]
);
