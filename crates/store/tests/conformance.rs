//! Runs every conformance scenario on SQLite and on the local PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use okno_store::conformance::*;

okno_store::both_backends!(
    channels_round_trip,
    connectors_round_trip,
    calls_are_kept_once_under_the_number_s_contact,
    typed_ids_round_trip,
    contacts_upsert_by_external_id_and_search,
    inbound_creates_contact_identity_and_conversation_once,
    a_group_is_a_property_of_its_identity,
    resolved_conversation_reopens_on_new_message,
    conversations_page_by_recent_activity,
    outbound_writes_message_and_job_once,
    jobs_keep_order_per_queue_and_leases_expire,
    concurrent_claims_never_share_a_job,
    queues_stay_ordered_and_moving_under_concurrent_writers,
    delivery_outcomes_update_message_identity_and_emit,
    a_batch_of_sends_is_recorded_once_each,
    statistics_follow_a_growing_table,
    merge_moves_identities_conversations_and_fields,
    attach_identity_moves_a_person_to_a_contact,
    url_attachments_defer_the_inbound_event,
    webhooks_and_their_delivery_log,
    webhooks_and_news_keep_their_creator,
    tokens_operators_and_audit,
    setup_links_make_exactly_one_first_administrator,
    ping_and_backup,
    one_process_holds_a_channel_lease_and_the_cursor_persists,
    link_codes_link_once_and_fold_in_the_contact_okno_made,
    edits_blocks_moves_buttons_and_reply_resolution,
    events_are_idempotent_notify_once_fall_back_and_collect_answers,
    sends_and_events_end_their_jobs_with_their_outcome,
    notify_all_queues_each_person_once_in_order,
    receipts_only_move_a_status_forward,
    an_inbound_context_is_kept_and_sent_to_webhooks,
    a_receipt_before_its_send_is_recorded_is_applied_then,
    an_e_mail_sender_is_the_contact_with_that_address,
    a_bounce_blocks_the_address_it_went_to,
    a_stranger_answering_a_conversation_s_tag_writes_into_it,
);
