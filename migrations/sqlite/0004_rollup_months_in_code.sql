-- The store now adds each write's counters to `rollup_months` itself, in the same
-- statement batch as the days: the triggers of 0003 gave every rollup upsert a statement
-- journal, which made bulk imports five times slower. Days written directly (a copy from
-- another store) get their months rebuilt when the store opens.
DROP TRIGGER IF EXISTS rollup_months_insert;
DROP TRIGGER IF EXISTS rollup_months_update;
DROP TRIGGER IF EXISTS rollup_months_delete;
