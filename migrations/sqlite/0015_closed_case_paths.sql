-- The subtree indexes by status over closed cases only (issue #5). Every new case and every
-- change between open statuses inserted into four index B-trees at a random place keyed by
-- path: `cases_status_org_path` and `cases_status_area_path` here, and the keys of open
-- cases `cases_open_org_keys` and `cases_open_area_keys` (migration 0012), which lead with
-- the same (status, path) and already hold every open case. At ten million cases each of
-- those inserts dirties a page of its own in the single writer's commit (~16 scattered
-- pages a case); with these two partial over the final statuses, an intake writes two fewer.
--
-- Lists collect a subtree of open cases from the open keys and one of closed cases from
-- these, each part repeating its index's condition verbatim for SQLite to use it
-- (`list.rs`). The condition lists the final statuses (`Status::is_open` is false) rather
-- than "not open": an IN list on the leading column is one seek per status.
--
-- Same names, so that a bulk import defers them as before and builds them again from the
-- definitions stored here. An import interrupted with them set aside keeps the old
-- definitions in `deferred_indexes`: they are built here and dropped from that list.
DROP INDEX IF EXISTS cases_status_org_path;
DROP INDEX IF EXISTS cases_status_area_path;
DELETE FROM deferred_indexes WHERE name IN ('cases_status_org_path', 'cases_status_area_path');
CREATE INDEX cases_status_org_path ON cases (status, org_path)
    WHERE status IN ('closed', 'rejected', 'merged');
CREATE INDEX cases_status_area_path ON cases (status, area_path)
    WHERE status IN ('closed', 'rejected', 'merged');
