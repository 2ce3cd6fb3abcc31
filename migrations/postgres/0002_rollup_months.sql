-- Counters per org and calendar month, beside the daily ones (like migrations/sqlite/0003 +
-- 0004): a year's stats of an org read twelve month rows (and the days of partial months at
-- the ends) instead of 365 day rows, which matters for the province's dashboard with its
-- thousand streets.
--
-- The store adds every write's counters to both tables in the same transaction; there are
-- no triggers. `month` is 'YYYY-MM', the first seven characters of the days it sums.

CREATE TABLE rollup_months (
    org            TEXT COLLATE "C" NOT NULL,
    month          TEXT COLLATE "C" NOT NULL,
    received       BIGINT NOT NULL DEFAULT 0,
    closed         BIGINT NOT NULL DEFAULT 0,
    closed_on_time BIGINT NOT NULL DEFAULT 0,
    rework         BIGINT NOT NULL DEFAULT 0,
    rated          BIGINT NOT NULL DEFAULT 0,
    satisfied      BIGINT NOT NULL DEFAULT 0,
    region         TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (org, month)
);

INSERT INTO rollup_months (org, month, region, received, closed, closed_on_time, rework, rated,
                           satisfied)
SELECT org, substr(day, 1, 7), min(region), sum(received), sum(closed), sum(closed_on_time),
       sum(rework), sum(rated), sum(satisfied)
FROM rollup_counters
GROUP BY org, substr(day, 1, 7);
