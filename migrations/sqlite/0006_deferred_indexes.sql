-- Indexes set aside while a bulk import fills an empty store (`Store::begin_bulk_import`):
-- their definitions, so that `end_bulk_import` — or the next open, after a crash in between
-- — builds them again, once, from sorted data instead of one random insert per row.
CREATE TABLE deferred_indexes (
    name TEXT PRIMARY KEY,
    sql  TEXT NOT NULL
);
