DROP TABLE deriver_queue;
DROP TABLE documents;
DROP TABLE collections;
DROP TABLE metamessages;
DROP TABLE messages;
DROP TABLE sessions;
DROP TABLE users;
DROP TABLE apps;
