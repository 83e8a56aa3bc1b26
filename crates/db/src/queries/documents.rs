// Queries of the documents table: see the module docs of `queries`.
