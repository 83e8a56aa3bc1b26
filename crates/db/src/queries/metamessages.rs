// Queries of the metamessages table: see the module docs of `queries`.
