-- The daily counters of a bulk import's write jobs, appended as each job commits and summed
-- into `rollup_counters` once, in key order, at the import's end (`bulk::end`, which a
-- crash in between leaves to the next open, like the deferred indexes).
--
-- Written into `rollup_counters` directly, each job of 16,000 cases upserted ~50,000 rows
-- all over a table keyed by org (a province's 100,000 orgs, every one with rows for most
-- days): tens of thousands of pages changed and written to the WAL per job, ~27% of the
-- importer's writer in upserts alone at 4M cases and most of its commits. Appended here
-- they fill a few hundred pages in order. No index: nothing reads this table but the end.
CREATE TABLE IF NOT EXISTS rollup_days_staged (
    org            TEXT NOT NULL,
    day            TEXT NOT NULL,
    received       INTEGER NOT NULL,
    closed         INTEGER NOT NULL,
    closed_on_time INTEGER NOT NULL,
    rework         INTEGER NOT NULL,
    rated          INTEGER NOT NULL,
    satisfied      INTEGER NOT NULL
);
