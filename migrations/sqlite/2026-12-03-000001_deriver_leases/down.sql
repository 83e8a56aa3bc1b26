DROP TABLE deriver_leases;
DROP TABLE deriver_queue;
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
