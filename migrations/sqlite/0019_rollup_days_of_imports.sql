-- The daily counters a bulk import writes, kept day first until its end (issue #5).
--
-- `rollup_counters` is keyed by org, then day, as stats read it. An import writes history in
-- time order, so each of its write jobs (16,000 cases over a day or two) added a row at the
-- end of thousands of orgs' ranges: a page each, scattered over the whole table. At 10M
-- cases that table outgrows the cache, and those pages were most of what every import
-- commit wrote to the WAL (and read back) — the import slowed from ~11,800 to ~6,000 cases a
-- second as the store grew. Keyed day first, the same rows land at the end of this table,
-- a few pages a job; `bulk::end` moves them into `rollup_counters` in one sorted pass, before
-- it builds the running totals and the deferred indexes, and a crash before that is
-- completed by the next open like the rest of the import's end. Stats leave out what an
-- unfinished import wrote.
CREATE TABLE IF NOT EXISTS rollup_counters_imported (
    day            TEXT NOT NULL,
    org            TEXT NOT NULL,
    received       INTEGER NOT NULL DEFAULT 0,
    closed         INTEGER NOT NULL DEFAULT 0,
    closed_on_time INTEGER NOT NULL DEFAULT 0,
    rework         INTEGER NOT NULL DEFAULT 0,
    rated          INTEGER NOT NULL DEFAULT 0,
    satisfied      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, org)
) WITHOUT ROWID;
