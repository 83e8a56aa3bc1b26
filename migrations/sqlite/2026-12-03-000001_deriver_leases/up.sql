-- The deriver's queue, per session: items carry their app and user (for status by app or user) and
-- the time before which they are not retried; a session is worked on under a lease.
-- The first queue table was never written to (no release enqueued), so it is replaced, not altered.
DROP TABLE deriver_queue;

CREATE TABLE deriver_queue (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id       TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'processing', 'done', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    not_before   TEXT NOT NULL,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX deriver_queue_open ON deriver_queue (session_id, id) WHERE status IN ('pending', 'processing');
CREATE INDEX deriver_queue_open_order ON deriver_queue (id) WHERE status IN ('pending', 'processing');
CREATE INDEX deriver_queue_app_status ON deriver_queue (app_id, status);
CREATE INDEX deriver_queue_failed ON deriver_queue (id) WHERE status = 'failed';

CREATE TABLE deriver_leases (
    session_id   TEXT PRIMARY KEY,
    token        TEXT NOT NULL,
    worker       TEXT NOT NULL,
    leased_until TEXT NOT NULL
);
