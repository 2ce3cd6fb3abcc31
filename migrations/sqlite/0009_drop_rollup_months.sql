-- Counters per org and month (0003, 0004) are no longer read: since the running totals
-- (0005) any period's counters are two key lookups per org. Keeping them cost every rollup
-- write an upsert per org and month, and ~40 bytes a case.
DROP TABLE IF EXISTS rollup_months;
