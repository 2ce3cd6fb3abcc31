-- The keys of open cases by subtree (issue #5). A street's queue or overdue list among a
-- province's open cases used to read the row of every candidate from the path indexes
-- (status, path) to check the rest of the filter and learn its sort key: an overdue list
-- read every open case of its area to keep the third that are overdue, a queue with a
-- backlog every unaccepted report to keep the first page. With the overdue flag and every
-- sort key beside the path, a list filtered by nothing else is decided and sorted on these
-- entries, and reads the rows of its page only (`list.rs`).
--
-- The deadline rather than its generated sort key `deadline_key`: SQLite reads the row for
-- a virtual column even when an index holds it, so lists compute the key from `deadline`
-- and the id, as the column's definition does.
--
-- Partial over open cases, a small share of all once the store has history (~65,000 of
-- 10 million), so a few megabytes; queries repeat the condition verbatim for SQLite to use
-- them.
CREATE INDEX IF NOT EXISTS cases_open_org_keys
    ON cases (status, org_path, overdue, deadline, updated_at)
    WHERE status IN ('reported', 'accepted', 'dispatched', 'in_progress', 'replied');
CREATE INDEX IF NOT EXISTS cases_open_area_keys
    ON cases (status, area_path, overdue, deadline, updated_at)
    WHERE status IN ('reported', 'accepted', 'dispatched', 'in_progress', 'replied');
