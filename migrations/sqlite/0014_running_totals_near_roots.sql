-- Running totals only for the orgs near a root: the roots and their children (issue #5).
--
-- Every org kept a running total per day with counters. Under intake at ten million cases
-- that meant three more scattered pages a case, rewritten in every commit: the rows of the
-- case's community, grid and unit, among ~30 million. Those orgs have few days of counters
-- each (a unit a few dozen, a community at most one a day), so their counters of any period
-- are a short range read of `rollup_counters` (keyed by org and day), and their running
-- totals were never worth their writes. The totals pay off only at the top, where an org has
-- a row on every day and the province's dashboard reads its thousand children at once.
--
-- `rollup_running_orgs` lists the orgs whose running totals are kept, and complete: the
-- roots and their children of the tree as it is now, and the orgs laid out under a parent
-- (`rollup_siblings`). The store adds an org when a path first puts it near a root, building
-- its totals from its days (`rollups.rs`); reads sum the days of every org not listed.
CREATE TABLE IF NOT EXISTS rollup_running_orgs (
    org TEXT NOT NULL PRIMARY KEY
) WITHOUT ROWID;
-- Listed only with complete totals: every org has them before this migration; run again,
-- an org whose rows it dropped stays unlisted, and one without counters has nothing to miss.
INSERT OR IGNORE INTO rollup_running_orgs (org)
SELECT code FROM (
    SELECT code FROM orgs WHERE parent IS NULL
    UNION
    SELECT o.code FROM orgs AS o JOIN orgs AS p ON p.code = o.parent WHERE p.parent IS NULL
    UNION
    SELECT org FROM rollup_siblings
) AS near
WHERE EXISTS (SELECT 1 FROM rollup_running AS r WHERE r.org = near.code)
   OR NOT EXISTS (SELECT 1 FROM rollup_counters AS c WHERE c.org = near.code);

-- Only the listed orgs' rows are kept, copied in key order; dropping the old table hands its
-- pages (~140 bytes a case) to the free list for new rows.
CREATE TABLE rollup_running_near_roots (
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
INSERT INTO rollup_running_near_roots
    (org, day, received, closed, closed_on_time, rework, rated, satisfied)
SELECT r.org, r.day, r.received, r.closed, r.closed_on_time, r.rework, r.rated, r.satisfied
FROM rollup_running_orgs AS s JOIN rollup_running AS r ON r.org = s.org
ORDER BY r.org, r.day;
DROP TABLE rollup_running;
ALTER TABLE rollup_running_near_roots RENAME TO rollup_running;
