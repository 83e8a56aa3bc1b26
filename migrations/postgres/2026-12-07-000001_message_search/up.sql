-- Message search: each message may carry the vector of its content (made by `embedder`, of
-- `dimensions`), written in the transaction that stores it when the embedder runs in process, or
-- afterwards by the message embedding worker when it is a remote service. A message without a
-- vector is still found by its words.
ALTER TABLE messages ADD COLUMN embedding BYTEA;
ALTER TABLE messages ADD COLUMN embedder TEXT;
ALTER TABLE messages ADD COLUMN dimensions INTEGER;
-- Bumped whenever messages of the session get a vector after they were stored (re-embedding, the
-- embedding worker): with the sessions' message counts it tells whether a cached copy of a user's
-- messages is current.
ALTER TABLE sessions ADD COLUMN vector_revision BIGINT NOT NULL DEFAULT 0;
-- Messages waiting for a vector (the embedding worker's queue).
CREATE INDEX messages_unembedded ON messages (id) WHERE embedder IS NULL;
