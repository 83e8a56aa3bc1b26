// The tables, shared by both backends. `MetaJson` and `Moment` are the backend's SQL types for metadata
// (jsonb / JSON text) and timestamps (timestamptz / RFC 3339 text); see `types` in each backend.

diesel::table! {
    use diesel::sql_types::*;
    use super::super::types::{MetaJson, Moment};

    apps (id) {
        id -> BigInt,
        public_id -> Text,
        name -> Text,
        metadata -> MetaJson,
        created_at -> Moment,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::super::types::{MetaJson, Moment};

    users (id) {
        id -> BigInt,
        public_id -> Text,
        app_id -> Text,
        name -> Text,
        metadata -> MetaJson,
        created_at -> Moment,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::super::types::{MetaJson, Moment};

    sessions (id) {
        id -> BigInt,
        public_id -> Text,
        app_id -> Text,
        user_id -> Text,
        is_active -> Bool,
        metadata -> MetaJson,
        message_count -> BigInt,
        created_at -> Moment,
        vector_revision -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::super::types::{MetaJson, Moment};

    messages (id) {
        id -> BigInt,
        public_id -> Text,
        app_id -> Text,
        user_id -> Text,
        session_id -> Text,
        is_user -> Bool,
        content -> Text,
        metadata -> MetaJson,
        created_at -> Moment,
        embedding -> Nullable<Binary>,
        embedder -> Nullable<Text>,
        dimensions -> Nullable<Integer>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::super::types::{MetaJson, Moment};

    metamessages (id) {
        id -> BigInt,
        public_id -> Text,
        app_id -> Text,
        user_id -> Text,
        session_id -> Nullable<Text>,
        message_id -> Nullable<Text>,
        label -> Text,
        content -> Text,
        metadata -> MetaJson,
        created_at -> Moment,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::super::types::{MetaJson, Moment};

    collections (id) {
        id -> BigInt,
        public_id -> Text,
        app_id -> Text,
        user_id -> Text,
        name -> Text,
        metadata -> MetaJson,
        deleted_revision -> BigInt,
        created_at -> Moment,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::super::types::{MetaJson, Moment};

    documents (id) {
        id -> BigInt,
        public_id -> Text,
        app_id -> Text,
        user_id -> Text,
        collection_id -> Text,
        content -> Text,
        metadata -> MetaJson,
        embedding -> Binary,
        embedder -> Text,
        dimensions -> Integer,
        revision -> BigInt,
        created_at -> Moment,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::super::types::Moment;

    deriver_queue (id) {
        id -> BigInt,
        app_id -> Text,
        user_id -> Text,
        session_id -> Text,
        message_id -> Text,
        status -> Text,
        attempts -> Integer,
        not_before -> Moment,
        last_error -> Nullable<Text>,
        created_at -> Moment,
        updated_at -> Moment,
        message_count -> Integer,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::super::types::Moment;

    deriver_leases (session_id) {
        session_id -> Text,
        token -> Text,
        worker -> Text,
        leased_until -> Moment,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::super::types::Moment;

    api_keys (id) {
        id -> BigInt,
        public_id -> Text,
        app_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
        session_id -> Nullable<Text>,
        collection_id -> Nullable<Text>,
        label -> Nullable<Text>,
        expires_at -> Nullable<Moment>,
        created_at -> Moment,
        revoked_at -> Nullable<Moment>,
        digest -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::super::types::Moment;

    erasures (id) {
        id -> BigInt,
        scope -> Text,
        erased_at -> Moment,
        users -> BigInt,
        sessions -> BigInt,
        messages -> BigInt,
        metamessages -> BigInt,
        collections -> BigInt,
        documents -> BigInt,
        queue_items -> BigInt,
        keys -> BigInt,
    }
}

// Tables read together in one statement (a join, or a subselect in the select list).
diesel::allow_tables_to_appear_in_same_query!(users, sessions);
diesel::allow_tables_to_appear_in_same_query!(collections, documents);
