-- Counters per org and calendar month, beside the daily ones: a year's stats of an org read
-- twelve month rows (and the days of partial months at the ends) instead of 365 day rows,
-- which matters for the province's dashboard with its thousand streets.
--
-- Triggers keep the months equal to the sum of their days whoever writes the days (the
-- store's rollups, a copy between stores), so no code path can forget them.

CREATE TABLE rollup_months (
    org            TEXT NOT NULL,
    -- 'YYYY-MM', the first seven characters of the days it sums.
    month          TEXT NOT NULL,
    received       INTEGER NOT NULL DEFAULT 0,
    closed         INTEGER NOT NULL DEFAULT 0,
    closed_on_time INTEGER NOT NULL DEFAULT 0,
    rework         INTEGER NOT NULL DEFAULT 0,
    rated          INTEGER NOT NULL DEFAULT 0,
    satisfied      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org, month)
) WITHOUT ROWID;
-- WITHOUT ROWID: a read is one descent of the key's B-tree, not an index and then the table.

-- The gauges of an org from index entries alone, for the same reason (a province's thousand
-- streets are a thousand reads per dashboard).
CREATE INDEX rollup_gauges_org ON rollup_gauges (org, key, n);

INSERT INTO rollup_months (org, month, received, closed, closed_on_time, rework, rated, satisfied)
SELECT org, substr(day, 1, 7), sum(received), sum(closed), sum(closed_on_time), sum(rework),
       sum(rated), sum(satisfied)
FROM rollup_counters
GROUP BY org, substr(day, 1, 7);

CREATE TRIGGER rollup_months_insert AFTER INSERT ON rollup_counters
BEGIN
    INSERT INTO rollup_months (org, month, received, closed, closed_on_time, rework, rated, satisfied)
    VALUES (NEW.org, substr(NEW.day, 1, 7), NEW.received, NEW.closed, NEW.closed_on_time,
            NEW.rework, NEW.rated, NEW.satisfied)
    ON CONFLICT (org, month) DO UPDATE SET
        received = received + excluded.received,
        closed = closed + excluded.closed,
        closed_on_time = closed_on_time + excluded.closed_on_time,
        rework = rework + excluded.rework,
        rated = rated + excluded.rated,
        satisfied = satisfied + excluded.satisfied;
END;

CREATE TRIGGER rollup_months_update AFTER UPDATE ON rollup_counters
BEGIN
    INSERT INTO rollup_months (org, month, received, closed, closed_on_time, rework, rated, satisfied)
    VALUES (NEW.org, substr(NEW.day, 1, 7), NEW.received - OLD.received, NEW.closed - OLD.closed,
            NEW.closed_on_time - OLD.closed_on_time, NEW.rework - OLD.rework,
            NEW.rated - OLD.rated, NEW.satisfied - OLD.satisfied)
    ON CONFLICT (org, month) DO UPDATE SET
        received = received + excluded.received,
        closed = closed + excluded.closed,
        closed_on_time = closed_on_time + excluded.closed_on_time,
        rework = rework + excluded.rework,
        rated = rated + excluded.rated,
        satisfied = satisfied + excluded.satisfied;
END;

CREATE TRIGGER rollup_months_delete AFTER DELETE ON rollup_counters
BEGIN
    UPDATE rollup_months SET
        received = received - OLD.received,
        closed = closed - OLD.closed,
        closed_on_time = closed_on_time - OLD.closed_on_time,
        rework = rework - OLD.rework,
        rated = rated - OLD.rated,
        satisfied = satisfied - OLD.satisfied
    WHERE org = OLD.org AND month = substr(OLD.day, 1, 7);
END;
