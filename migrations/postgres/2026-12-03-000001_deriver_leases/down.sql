DROP TABLE deriver_leases;
DROP TABLE deriver_queue;
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
