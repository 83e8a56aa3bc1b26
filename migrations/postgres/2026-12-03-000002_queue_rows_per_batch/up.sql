-- A queue row covers `message_count` consecutive messages of its session, starting at `message_id`:
-- a stored batch is queued as one row. A worker takes the row's first message; when that message is
-- done or failed, a row recording it is written and the batch row moves on to the next message.
ALTER TABLE deriver_queue ADD COLUMN message_count INTEGER NOT NULL DEFAULT 1;
