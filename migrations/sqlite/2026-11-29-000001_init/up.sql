-- The whole honcho-rs schema on SQLite. Same tables and columns as on PostgreSQL: metadata is JSON
-- text, timestamps are RFC 3339 text in UTC, embeddings are blobs.

CREATE TABLE apps (
    id          INTEGER PRIMARY KEY,
    public_id   TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL UNIQUE,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    public_id   TEXT NOT NULL UNIQUE,
    app_id      TEXT NOT NULL REFERENCES apps (public_id),
    name        TEXT NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    CONSTRAINT users_app_name_key UNIQUE (app_id, name),
    CONSTRAINT users_app_public_key UNIQUE (app_id, public_id)
);
CREATE INDEX users_app_order ON users (app_id, id);

CREATE TABLE sessions (
    id            INTEGER PRIMARY KEY,
    public_id     TEXT NOT NULL UNIQUE,
    app_id        TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    is_active     BOOLEAN NOT NULL DEFAULT 1,
    metadata      TEXT NOT NULL DEFAULT '{}',
    message_count BIGINT NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    FOREIGN KEY (app_id, user_id) REFERENCES users (app_id, public_id)
);
CREATE INDEX sessions_user_order ON sessions (user_id, id);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    public_id   TEXT NOT NULL UNIQUE,
    app_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    -- No foreign key, as on PostgreSQL: inserts update their session row first.
    session_id  TEXT NOT NULL,
    is_user     BOOLEAN NOT NULL,
    content     TEXT NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);
CREATE INDEX messages_session_order ON messages (session_id, id);

CREATE TABLE metamessages (
    id          INTEGER PRIMARY KEY,
    public_id   TEXT NOT NULL UNIQUE,
    app_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (public_id),
    session_id  TEXT REFERENCES sessions (public_id),
    message_id  TEXT REFERENCES messages (public_id),
    label       TEXT NOT NULL,
    content     TEXT NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);
CREATE INDEX metamessages_user_order ON metamessages (user_id, id);
CREATE INDEX metamessages_session_order ON metamessages (session_id, id);
CREATE INDEX metamessages_message ON metamessages (message_id);
CREATE INDEX metamessages_label ON metamessages (user_id, label, id);

CREATE TABLE collections (
    id          INTEGER PRIMARY KEY,
    public_id   TEXT NOT NULL UNIQUE,
    app_id      TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (public_id),
    name        TEXT NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}',
    deleted_revision BIGINT NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    CONSTRAINT collections_user_name_key UNIQUE (user_id, name)
);
CREATE INDEX collections_user_order ON collections (user_id, id);

-- AUTOINCREMENT: ids are never reused, which the vector cache's freshness check relies on.
CREATE TABLE documents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id     TEXT NOT NULL UNIQUE,
    app_id        TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    collection_id TEXT NOT NULL REFERENCES collections (public_id) ON DELETE CASCADE,
    content       TEXT NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}',
    embedding     BLOB NOT NULL,
    embedder      TEXT NOT NULL,
    dimensions    INTEGER NOT NULL,
    revision      BIGINT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX documents_collection_order ON documents (collection_id, id);
CREATE INDEX documents_collection_revision ON documents (collection_id, revision);
-- Serves `max(revision)`, which draws the next revision (SQLite has no sequences).
CREATE INDEX documents_revision ON documents (revision);

CREATE TABLE deriver_queue (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id   TEXT NOT NULL REFERENCES sessions (public_id),
    message_id   TEXT NOT NULL REFERENCES messages (public_id),
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'processing', 'done', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    leased_by    TEXT,
    leased_until TEXT,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX deriver_queue_pending ON deriver_queue (session_id, id) WHERE status IN ('pending', 'processing');
