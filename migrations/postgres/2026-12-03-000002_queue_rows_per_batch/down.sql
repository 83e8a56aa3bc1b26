ALTER TABLE deriver_queue DROP COLUMN message_count;
