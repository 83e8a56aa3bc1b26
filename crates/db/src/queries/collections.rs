// Queries of the collections table: see the module docs of `queries`.
