-- The deriver's queue, per session: items carry their app and user (for status by app or user) and
-- the time before which they are not retried; a session is worked on under a lease.
-- The first queue table was never written to (no release enqueued), so it is replaced, not altered.
DROP TABLE deriver_queue;

CREATE TABLE deriver_queue (
    id           BIGSERIAL PRIMARY KEY,
    app_id       VARCHAR(21) NOT NULL,
    user_id      VARCHAR(21) NOT NULL,
    -- No foreign keys: rows are written in the transaction that stored the message (and locked its
    -- session row); messages and sessions are never deleted.
    session_id   VARCHAR(21) NOT NULL,
    message_id   VARCHAR(21) NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending',
    attempts     INTEGER NOT NULL DEFAULT 0,
    not_before   TIMESTAMPTZ NOT NULL,
    last_error   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT deriver_queue_status_check CHECK (status IN ('pending', 'processing', 'done', 'failed'))
);
-- The open items of a session, in order: the head of each session is found here.
CREATE INDEX deriver_queue_open ON deriver_queue (session_id, id) WHERE status IN ('pending', 'processing');
-- Sessions with open work, oldest first (what workers scan to claim).
CREATE INDEX deriver_queue_open_order ON deriver_queue (id) WHERE status IN ('pending', 'processing');
CREATE INDEX deriver_queue_app_status ON deriver_queue (app_id, status);
-- Failed items, kept for inspection: counted for metrics without reading the done ones.
CREATE INDEX deriver_queue_failed ON deriver_queue (id) WHERE status = 'failed';

-- One row while a worker holds a session; `token` changes with every claim, and a worker's writes
-- are accepted only under its own token.
CREATE TABLE deriver_leases (
    session_id   VARCHAR(21) PRIMARY KEY,
    token        VARCHAR(36) NOT NULL,
    worker       TEXT NOT NULL,
    leased_until TIMESTAMPTZ NOT NULL
);
