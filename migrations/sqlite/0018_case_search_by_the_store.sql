-- New cases' search terms are written by the store's one insert function (`cases.rs`),
-- from the case it holds, instead of by the trigger of migration 0017, which decompressed
-- and parsed every new document on the serial writer to read its title and description
-- back (issue #5: most of the ~65 µs the index cost the writer per case). `case_terms`
-- stays registered for 0017's backfill of older stores.
DROP TRIGGER IF EXISTS cases_search_insert;
