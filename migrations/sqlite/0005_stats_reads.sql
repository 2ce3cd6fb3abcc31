-- Reads for the stats of an org with many children (issue #5): running totals of the
-- counters, and the children from an index.
--
-- Running totals of the counters per org: each row holds the sum of the org's counters over
-- every day up to and including `day`, one row per day that has counters. The counters of
-- any period `from..=to` are then the row at or before `to` minus the row before `from`:
-- two key lookups per org whatever the period, instead of a range of days at each end of
-- the period and its months between. That matters for the province's dashboard, which asks
-- for the counters of its thousand streets at once (issue #5).
--
-- The store keeps it in the same transaction as the days and months (`rollups.rs`), and
-- fills it from the days when it is empty but the days are not (this migration, a copy
-- whose days were written directly).
CREATE TABLE rollup_running (
    org            TEXT NOT NULL,
    day            TEXT NOT NULL,
    received       INTEGER NOT NULL DEFAULT 0,
    closed         INTEGER NOT NULL DEFAULT 0,
    closed_on_time INTEGER NOT NULL DEFAULT 0,
    rework         INTEGER NOT NULL DEFAULT 0,
    rated          INTEGER NOT NULL DEFAULT 0,
    satisfied      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org, day)
) WITHOUT ROWID;

-- The children of an org from index entries alone: the province's thousand streets are read
-- from a few adjacent pages instead of a thousand rows scattered among their communities'
-- and grids' rows (`child_orgs` reads code, name, level, parent and path). It replaces
-- `orgs_parent (parent, code)`, of which it is an extension.
CREATE INDEX orgs_children ON orgs (parent, code, name, level, path);
DROP INDEX orgs_parent;
