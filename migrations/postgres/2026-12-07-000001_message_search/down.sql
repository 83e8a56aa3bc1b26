ALTER TABLE sessions DROP COLUMN vector_revision;
ALTER TABLE messages DROP COLUMN dimensions;
ALTER TABLE messages DROP COLUMN embedder;
ALTER TABLE messages DROP COLUMN embedding;
