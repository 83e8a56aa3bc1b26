DROP INDEX deriver_queue_session;
DROP TABLE erasures;
