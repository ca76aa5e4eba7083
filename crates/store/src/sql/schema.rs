//! Diesel's view of the tables in `migrations/{sqlite,postgres}`. Only SQL types that
//! `MultiConnection` supports on both backends are used: booleans are `SmallInt` 0/1, lists
//! and ciphertexts are `Text`.

diesel::table! {
    /// Tenants.
    users (id) {
        /// Never reused.
        id -> BigInt,
        /// Unique, lower-case.
        email -> Text,
        /// Display name.
        name -> Text,
        /// UTC.
        created_at -> Timestamp,
        /// The user's trunks, kept with every insert and delete of one.
        trunk_count -> BigInt,
        /// The user's live API keys, kept with every insert and delete of one.
        api_key_count -> BigInt,
    }
}

diesel::table! {
    /// API keys; only the SHA-256 of each token's secret is stored.
    api_keys (id) {
        /// Never reused; the token's prefix.
        id -> BigInt,
        /// Owner.
        user_id -> BigInt,
        /// Label.
        name -> Text,
        /// Lower-case hex SHA-256 of the secret; unique.
        token_hash -> Text,
        /// UTC, throttled.
        last_used_at -> Nullable<Timestamp>,
        /// UTC.
        created_at -> Timestamp,
    }
}

diesel::table! {
    /// SIP trunks; `(user_id, phone_number, sip_username, sip_address)` is unique.
    sip_trunks (id) {
        /// Never reused.
        id -> BigInt,
        /// Owner.
        user_id -> BigInt,
        /// `extension` or `number`.
        sip_trunk_type -> Text,
        /// As validated for the type.
        phone_number -> Text,
        /// Optional label.
        nickname -> Nullable<Text>,
        /// SIP auth username.
        sip_username -> Text,
        /// `base64(nonce || AES-256-GCM ciphertext || tag)`.
        sip_password_sealed -> Text,
        /// Id of the key that sealed the password.
        sip_password_key_id -> Text,
        /// What the sealed password is bound to: 1 the owner, 2 the owner and the trunk id.
        sip_password_binding -> SmallInt,
        /// Lower-case host.
        sip_address -> Text,
        /// `+e164`, `e164` or `national`.
        sip_calling_format -> Text,
        /// `auth` or `ip`.
        inbound_authorization_type -> Text,
        /// Canonical entries joined by `,`; NULL for `auth`.
        allowed_inbound_ips -> Nullable<Text>,
        /// 0 or 1.
        outbound_proxy -> SmallInt,
        /// ISO 3166-1 alpha-2.
        country_code -> Text,
        /// Voice-infrastructure inbound leg.
        inbound_trunk_id -> Nullable<Text>,
        /// Voice-infrastructure outbound leg.
        outbound_trunk_id -> Nullable<Text>,
        /// UTC, microseconds.
        created_at -> Timestamp,
        /// UTC, microseconds.
        updated_at -> Timestamp,
        /// 0 ready, 1 creating (hidden from clients), 2 repair.
        provisioning_state -> SmallInt,
        /// The token of whoever works on the legs.
        provisioning_lease -> Nullable<Text>,
        /// UTC; when others may take the lease over.
        provisioning_lease_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// Legs to remove from the voice infrastructure.
    leg_removals (id) {
        /// Queue order.
        id -> BigInt,
        /// `inbound` or `outbound`.
        leg_kind -> Text,
        /// The leg's id there.
        leg_id -> Text,
        /// UTC.
        queued_at -> Timestamp,
        /// Removals tried.
        attempts -> Integer,
        /// UTC; the next try.
        due_at -> Timestamp,
    }
}

diesel::table! {
    /// The one reconciler lease.
    reconciler_lease (name) {
        /// `reconciler`.
        name -> Text,
        /// Who holds it.
        holder -> Text,
        /// UTC; until when.
        lease_until -> Timestamp,
        /// UTC; when the last full scan began.
        last_full_scan_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    /// The number-taken answers each account got in the last hour.
    number_conflicts (id) {
        /// Insertion order.
        id -> BigInt,
        /// The account answered.
        user_id -> BigInt,
        /// UTC; when.
        answered_at -> Timestamp,
    }
}

diesel::table! {
    /// The health of each carrier address the trunks use (docs/diagnostics.md).
    carrier_health (address) {
        /// A trunk's `sip_address`.
        address -> Text,
        /// 0 unknown, 1 reachable, 2 unreachable.
        state -> SmallInt,
        /// UTC; when the state was entered.
        since -> Nullable<Timestamp>,
        /// UTC; the last probe.
        last_probe_at -> Nullable<Timestamp>,
        /// `answered`, `timeout`, `icmp_unreachable` or `dns_failure`.
        last_outcome -> Nullable<Text>,
        /// With `answered`: the status code.
        last_code -> Nullable<Integer>,
        /// With `answered`: the reason phrase (bounded).
        last_reason -> Nullable<Text>,
        /// The last answer's round trip.
        rtt_ms -> Nullable<Integer>,
        /// Answered probes in a row.
        successes_in_row -> SmallInt,
        /// Failed probes in a row.
        failures_in_row -> SmallInt,
        /// UTC; when the next probe is due (moved forward by the claim).
        next_probe_at -> Timestamp,
    }
}

diesel::table! {
    /// What the reconciler saw of a trunk's legs, and its last provisioning failure
    /// (docs/diagnostics.md); only for trunks that were divergent, repaired or failed.
    trunk_observations (trunk_id) {
        /// The trunk.
        trunk_id -> BigInt,
        /// UTC; when its legs were checked.
        checked_at -> Nullable<Timestamp>,
        /// The inbound leg then.
        inbound_leg -> Nullable<Text>,
        /// 0 or 1.
        inbound_held -> Nullable<SmallInt>,
        /// The outbound leg then.
        outbound_leg -> Nullable<Text>,
        /// 0 or 1.
        outbound_held -> Nullable<SmallInt>,
        /// `number_taken`, `refused`, `unauthorized` or `unavailable`.
        failure -> Nullable<Text>,
        /// UTC; when.
        failure_at -> Nullable<Timestamp>,
        /// UTC; the last probe a client asked for.
        probe_requested_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(sip_trunks -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    api_keys,
    sip_trunks,
    leg_removals,
    carrier_health,
    trunk_observations
);
