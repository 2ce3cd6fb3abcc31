-- The search index's segments are merged a few pages at a time, in steps taken by the write
-- batches that index new cases (a page per four cases; `search.rs`, `merge_step`), instead
-- of all at once when a level fills up.
--
-- Since 0017 only crisis merges ran: when a level held 16 segments, the write that added the
-- 16th merged the whole level before it could commit. The higher the level, the larger its
-- segments, and an import leaves one very large segment: at 10M cases, the merge that
-- reaches it rewrites ~1.1 GB and held every write back for ~15 s (measured on a copy of
-- the seeded index; the intake benchmark saw one such stall of 15.7 s).
--
-- `usermerge` 16: a merge in steps starts on a level once it holds 16 segments, as crisis
-- merges did, so each term is rewritten as often as before, only in small steps.
-- `crisismerge` 64: the all-at-once merge stays only as a backstop, for when the steps fall
-- behind (a bulk import, whose batches are too large for them to keep up).
INSERT INTO cases_search (cases_search, rank) VALUES ('usermerge', 16);
INSERT INTO cases_search (cases_search, rank) VALUES ('crisismerge', 64);
