-- A case's document (the whole case as compressed JSON, two thirds of a case row) moves
-- out of `cases` into `case_docs`, one row per case under the same id.
--
-- What reads a case's columns and not its document paid for the document's bytes anyway,
-- as they shared the row and so the pages. At 10M cases the table was 7.5 GB: each index
-- built at the end of a bulk import read all of it, mostly from disk (~40 s each, five of
-- them; ~25 s over the same columns without the documents, 2.4 GB). Reads that want the
-- document (a case, a page of a list) look it up by id, one more rowid search a case.
--
-- On a large store this copies every document once and rewrites the table (a few minutes
-- at 10M cases); the pages freed go to the free list and are reused by later writes.
CREATE TABLE case_docs (
    id  INTEGER PRIMARY KEY REFERENCES cases (id),
    -- BLOB: no affinity, so compressed documents and older JSON text keep their type.
    doc BLOB NOT NULL
);
INSERT INTO case_docs (id, doc) SELECT id, doc FROM cases ORDER BY id;
ALTER TABLE cases DROP COLUMN doc;
