-- The whole honcho-rs schema on PostgreSQL. Every table has an internal bigserial `id` (insertion
-- order, used for ordering and cursors) and a 21-character public id that the API shows.

CREATE TABLE apps (
    id          BIGSERIAL PRIMARY KEY,
    public_id   VARCHAR(21) NOT NULL UNIQUE,
    name        TEXT NOT NULL UNIQUE,
    metadata    JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX apps_metadata_gin ON apps USING gin (metadata jsonb_path_ops);

CREATE TABLE users (
    id          BIGSERIAL PRIMARY KEY,
    public_id   VARCHAR(21) NOT NULL UNIQUE,
    app_id      VARCHAR(21) NOT NULL REFERENCES apps (public_id),
    name        TEXT NOT NULL,
    metadata    JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT users_app_name_key UNIQUE (app_id, name),
    CONSTRAINT users_app_public_key UNIQUE (app_id, public_id)
);
CREATE INDEX users_app_order ON users (app_id, id);
CREATE INDEX users_metadata_gin ON users USING gin (metadata jsonb_path_ops);

CREATE TABLE sessions (
    id            BIGSERIAL PRIMARY KEY,
    public_id     VARCHAR(21) NOT NULL UNIQUE,
    app_id        VARCHAR(21) NOT NULL,
    user_id       VARCHAR(21) NOT NULL,
    is_active     BOOLEAN NOT NULL DEFAULT true,
    metadata      JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- Messages stored in the session; kept in the same transaction as every insert so that a page's
    -- total needs no count over the session.
    message_count BIGINT NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (app_id, user_id) REFERENCES users (app_id, public_id)
);
CREATE INDEX sessions_user_order ON sessions (user_id, id);
CREATE INDEX sessions_metadata_gin ON sessions USING gin (metadata jsonb_path_ops);

CREATE TABLE messages (
    id          BIGSERIAL PRIMARY KEY,
    public_id   VARCHAR(21) NOT NULL UNIQUE,
    app_id      VARCHAR(21) NOT NULL,
    user_id     VARCHAR(21) NOT NULL,
    -- No foreign key: every insert first updates (and so locks) its session row in the same
    -- transaction, which checks more (the session's user and app) at a fraction of the cost of a
    -- per-row reference check; sessions are never deleted.
    session_id  VARCHAR(21) NOT NULL,
    is_user     BOOLEAN NOT NULL,
    content     TEXT NOT NULL,
    metadata    JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Every message list is within one session, so its filter runs over this range: no GIN index.
CREATE INDEX messages_session_order ON messages (session_id, id);

CREATE TABLE metamessages (
    id          BIGSERIAL PRIMARY KEY,
    public_id   VARCHAR(21) NOT NULL UNIQUE,
    app_id      VARCHAR(21) NOT NULL,
    user_id     VARCHAR(21) NOT NULL REFERENCES users (public_id),
    session_id  VARCHAR(21) REFERENCES sessions (public_id),
    message_id  VARCHAR(21) REFERENCES messages (public_id),
    label       TEXT NOT NULL,
    content     TEXT NOT NULL,
    metadata    JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX metamessages_user_order ON metamessages (user_id, id);
CREATE INDEX metamessages_session_order ON metamessages (session_id, id);
CREATE INDEX metamessages_message ON metamessages (message_id);
CREATE INDEX metamessages_label ON metamessages (user_id, label, id);
CREATE INDEX metamessages_metadata_gin ON metamessages USING gin (metadata jsonb_path_ops);

CREATE TABLE collections (
    id          BIGSERIAL PRIMARY KEY,
    public_id   VARCHAR(21) NOT NULL UNIQUE,
    app_id      VARCHAR(21) NOT NULL,
    user_id     VARCHAR(21) NOT NULL REFERENCES users (public_id),
    name        TEXT NOT NULL,
    metadata    JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- Document revision drawn when a document of the collection was last deleted (see documents).
    deleted_revision BIGINT NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT collections_user_name_key UNIQUE (user_id, name)
);
CREATE INDEX collections_user_order ON collections (user_id, id);
CREATE INDEX collections_metadata_gin ON collections USING gin (metadata jsonb_path_ops);

CREATE TABLE documents (
    id            BIGSERIAL PRIMARY KEY,
    public_id     VARCHAR(21) NOT NULL UNIQUE,
    app_id        VARCHAR(21) NOT NULL,
    user_id       VARCHAR(21) NOT NULL,
    collection_id VARCHAR(21) NOT NULL REFERENCES collections (public_id) ON DELETE CASCADE,
    content       TEXT NOT NULL,
    metadata      JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- Little-endian f32 values; `embedder` names the model that produced them.
    embedding     BYTEA NOT NULL,
    embedder      TEXT NOT NULL,
    dimensions    INTEGER NOT NULL,
    -- Drawn from one sequence on insert and on every new embedding: with the largest id of a
    -- collection and its deleted_revision it tells whether a cached copy of its vectors is current.
    revision      BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE SEQUENCE documents_revision_seq;
CREATE INDEX documents_collection_order ON documents (collection_id, id);
CREATE INDEX documents_collection_revision ON documents (collection_id, revision);
CREATE INDEX documents_metadata_gin ON documents USING gin (metadata jsonb_path_ops);

-- Transactional outbox of work for the deriver, written with the messages it refers to.
CREATE TABLE deriver_queue (
    id           BIGSERIAL PRIMARY KEY,
    session_id   VARCHAR(21) NOT NULL REFERENCES sessions (public_id),
    message_id   VARCHAR(21) NOT NULL REFERENCES messages (public_id),
    status       TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    leased_by    TEXT,
    leased_until TIMESTAMPTZ,
    last_error   TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT deriver_queue_status_check CHECK (status IN ('pending', 'processing', 'done', 'failed'))
);
CREATE INDEX deriver_queue_pending ON deriver_queue (session_id, id) WHERE status IN ('pending', 'processing');
