-- Text search by index (issue #5): the terms of every case's number, title and description
-- (pairs of adjacent letters or digits, `search.rs`) in a full-text index, so that a search
-- (`q`) among millions of cases reads the few that may match. Without it a rare word searched
-- across a province read every document: minutes at ten million cases.
--
-- Contentless and without positions: the index answers "which cases hold all these terms"
-- and nothing else; the list still checks each candidate's text with LIKE. A case's number,
-- title and description never change once reported, so new cases are indexed by a trigger
-- and no update needs to touch the index. `case_terms` is the store's own SQL function
-- (registered on every connection it opens), so cases are inserted through the store.
CREATE VIRTUAL TABLE IF NOT EXISTS cases_search USING fts5(
    terms, content = '', detail = none, tokenize = 'ascii'
);
DROP TRIGGER IF EXISTS cases_search_insert;
CREATE TRIGGER cases_search_insert AFTER INSERT ON cases
BEGIN
    INSERT INTO cases_search (rowid, terms) VALUES (new.id, case_terms(new.number, new.doc));
END;
-- The cases before it, in id order (run again, the index is built anew).
INSERT INTO cases_search (cases_search) VALUES ('delete-all');
INSERT INTO cases_search (rowid, terms)
SELECT id, case_terms(number, doc) FROM cases ORDER BY id;
-- No automatic merging of the index's segments on writes. With it, every commit of new cases
-- merged levels of the index in turn, up to rewriting the large segment of the cases before:
-- at ten million cases the writer spent ~400 µs more a case (intake 2,800 -> 1,100-1,300 a
-- second); without it ~65 µs. Crisis merges (16 segments at a level) still bound the number
-- of segments a search reads.
INSERT INTO cases_search (cases_search, rank) VALUES ('automerge', 0);
