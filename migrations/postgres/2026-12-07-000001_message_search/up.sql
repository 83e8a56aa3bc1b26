-- Message search: a message may carry the stored vector of its content (made by `embedder`, of
-- `dimensions`), written by the embedding worker when the embedder is a remote service (or by
-- `honcho reembed`). Messages are stored without one: an embedder running in process computes it
-- when a process reads the message for search. A message without a vector is found by its words.
ALTER TABLE messages ADD COLUMN embedding BYTEA;
ALTER TABLE messages ADD COLUMN embedder TEXT;
ALTER TABLE messages ADD COLUMN dimensions INTEGER;
-- Bumped whenever messages of the session get a vector after they were stored (re-embedding, the
-- embedding worker): with the sessions' message counts it tells whether a cached copy of a user's
-- messages is current.
ALTER TABLE sessions ADD COLUMN vector_revision BIGINT NOT NULL DEFAULT 0;
