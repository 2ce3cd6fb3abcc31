-- Reads for the stats of an org with many children (issue #5; like migrations/sqlite/0005):
-- running totals of the counters, and the children from an index.
--
-- Running totals of the counters per org: each row holds the sum of the org's counters over
-- every day up to and including `day`, one row per day that has counters. The counters of
-- any period `from..=to` are then the row at or before `to` minus the row before `from`: two
-- key lookups per org whatever the period, instead of a range of days at each end of the
-- period and its months between. That matters for the province's dashboard, which asks for
-- the counters of its thousand streets at once.
--
-- The store keeps it in the same transaction as the days and months (`cases.rs`, after the
-- months, under the chain head lock that every rollup write holds); there are no triggers.

CREATE TABLE rollup_running (
    org            TEXT COLLATE "C" NOT NULL,
    day            TEXT COLLATE "C" NOT NULL,
    received       BIGINT NOT NULL DEFAULT 0,
    closed         BIGINT NOT NULL DEFAULT 0,
    closed_on_time BIGINT NOT NULL DEFAULT 0,
    rework         BIGINT NOT NULL DEFAULT 0,
    rated          BIGINT NOT NULL DEFAULT 0,
    satisfied      BIGINT NOT NULL DEFAULT 0,
    region         TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (org, day)
);

INSERT INTO rollup_running (org, day, region, received, closed, closed_on_time, rework, rated,
                            satisfied)
SELECT org, day, region, sum(received) OVER w, sum(closed) OVER w, sum(closed_on_time) OVER w,
       sum(rework) OVER w, sum(rated) OVER w, sum(satisfied) OVER w
FROM rollup_counters
WINDOW w AS (PARTITION BY org ORDER BY day ROWS UNBOUNDED PRECEDING);

-- The children of an org from the index (an index-only scan once the table is vacuumed):
-- the province's thousand streets without a heap fetch each. It replaces `orgs_parent`.
CREATE INDEX orgs_children ON orgs (parent, code) INCLUDE (name, level, path);
DROP INDEX orgs_parent;
