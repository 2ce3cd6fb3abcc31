-- Gauges keyed by `(org, key)` alone: as a rowid table with a covering index
-- (`rollup_gauges_org`, migration 0003) every gauge was stored twice, and every change of a
-- case's status wrote two B-trees at each org of its area path: under intake at ten million
-- cases, two scattered pages per org and case of the ~18 each commit rewrites. A table
-- without rowid is its own covering index. Copied once, in key order; `gridloop copy` pages
-- it by that key.
CREATE TABLE rollup_gauges_by_key (
    org TEXT NOT NULL,
    key TEXT NOT NULL,
    n   INTEGER NOT NULL,
    PRIMARY KEY (org, key)
) WITHOUT ROWID;
INSERT INTO rollup_gauges_by_key (org, key, n)
SELECT org, key, n FROM rollup_gauges ORDER BY org, key;
DROP TABLE rollup_gauges;
ALTER TABLE rollup_gauges_by_key RENAME TO rollup_gauges;
