-- The running totals of a root org's children side by side (issue #5): a province's stats
-- read the totals of its thousand streets at two days. From `rollup_running`, keyed by org
-- first, that is two B-tree descents per street; here the streets' rows of one day are
-- adjacent, so the same answer is two short range reads.
--
-- `rollup_siblings` says which orgs are laid out so, and under which parent: the children
-- of a root org, as the area paths written place them (an org written at the second place
-- of a path joins under the path's root; an org that moves is copied under its new
-- parent). `rollup_running_by_parent` holds, for exactly those orgs, a copy of every one of
-- their `rollup_running` rows, kept in the same transaction (`rollups.rs`) and rebuilt
-- with it (end of a bulk import, a copy whose days were written directly).
CREATE TABLE IF NOT EXISTS rollup_siblings (
    org    TEXT NOT NULL PRIMARY KEY,
    parent TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollup_siblings_parent ON rollup_siblings (parent, org);

CREATE TABLE IF NOT EXISTS rollup_running_by_parent (
    parent         TEXT NOT NULL,
    day            TEXT NOT NULL,
    org            TEXT NOT NULL,
    received       INTEGER NOT NULL DEFAULT 0,
    closed         INTEGER NOT NULL DEFAULT 0,
    closed_on_time INTEGER NOT NULL DEFAULT 0,
    rework         INTEGER NOT NULL DEFAULT 0,
    rated          INTEGER NOT NULL DEFAULT 0,
    satisfied      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (parent, day, org)
) WITHOUT ROWID;

-- Filled anew (idempotent, like the migrations before it).
DELETE FROM rollup_running_by_parent;
DELETE FROM rollup_siblings;
INSERT INTO rollup_siblings (org, parent)
SELECT o.code, o.parent FROM orgs AS o JOIN orgs AS p ON p.code = o.parent
WHERE p.parent IS NULL;

INSERT INTO rollup_running_by_parent
    (parent, day, org, received, closed, closed_on_time, rework, rated, satisfied)
SELECT s.parent, r.day, r.org, r.received, r.closed, r.closed_on_time, r.rework, r.rated,
       r.satisfied
FROM rollup_siblings AS s JOIN rollup_running AS r ON r.org = s.org;
-- Not sorted first: the sort held the whole table in memory (+85 MB of peak RSS in the
-- server that migrates a 10M-case store, ~1M rows; the same time either way, ~20 s).
