-- Users and sessions can be erased (with everything stored about them): the rows of every table that
-- name them are deleted in one transaction. Comments of earlier migrations saying that sessions and
-- messages are never deleted predate this.

-- One row per erasure: when, of what kind, and how many rows of each kind it removed; never whose
-- (the ids went with their rows). Rows are never deleted: every process drops its in-memory copies
-- of search data when their count changes.
CREATE TABLE erasures (
    id           BIGSERIAL PRIMARY KEY,
    scope        TEXT NOT NULL CHECK (scope IN ('user', 'session')),
    erased_at    TIMESTAMPTZ NOT NULL,
    users        BIGINT NOT NULL,
    sessions     BIGINT NOT NULL,
    messages     BIGINT NOT NULL,
    metamessages BIGINT NOT NULL,
    collections  BIGINT NOT NULL,
    documents    BIGINT NOT NULL,
    queue_items  BIGINT NOT NULL,
    keys         BIGINT NOT NULL
);

-- A session's queue rows, done and failed ones included (erasing a session deletes them all).
CREATE INDEX deriver_queue_session ON deriver_queue (session_id);
