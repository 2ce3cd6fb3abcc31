-- The partial indexes over open cases (`cases_open_*`) and over closed cases' paths
-- (`cases_status_org_path`, `cases_status_area_path`) spelt their condition as
-- `status IN (...)`. SQLite tests a list of more than two values by building a temporary
-- index of it, and a partial index's condition is tested for every row written: seven such
-- temporary indexes were built and dropped for every case inserted or updated (~1.5 µs
-- each; a seed's writer took ~30% longer a case with the five open-case indexes kept live).
-- The same conditions spelt as equalities joined by OR are tested in place. Queries repeat
-- them exactly (`list::OPEN`, `list::CLOSED`) so that SQLite still uses the indexes.
--
-- The seven indexes are built again here, from the cases as they are: at 10M cases about
-- two minutes, once. An import under way (indexes set aside) has these built now too.
DELETE FROM deferred_indexes WHERE name IN (
    'cases_open_newest', 'cases_open_deadline', 'cases_open_updated', 'cases_open_org_keys',
    'cases_open_area_keys', 'cases_status_org_path', 'cases_status_area_path');

DROP INDEX IF EXISTS cases_open_newest;
CREATE INDEX cases_open_newest ON cases (id, status, org_path, area_path, created_by)
    WHERE (status = 'reported' OR status = 'accepted' OR status = 'dispatched' OR status = 'in_progress' OR status = 'replied');
DROP INDEX IF EXISTS cases_open_deadline;
CREATE INDEX cases_open_deadline ON cases (deadline_key, id, status, org_path, area_path, created_by)
    WHERE (status = 'reported' OR status = 'accepted' OR status = 'dispatched' OR status = 'in_progress' OR status = 'replied');
DROP INDEX IF EXISTS cases_open_updated;
CREATE INDEX cases_open_updated ON cases (updated_at, id, status, org_path, area_path, created_by)
    WHERE (status = 'reported' OR status = 'accepted' OR status = 'dispatched' OR status = 'in_progress' OR status = 'replied');
DROP INDEX IF EXISTS cases_open_org_keys;
CREATE INDEX cases_open_org_keys
    ON cases (status, org_path, overdue, deadline, updated_at)
    WHERE (status = 'reported' OR status = 'accepted' OR status = 'dispatched' OR status = 'in_progress' OR status = 'replied');
DROP INDEX IF EXISTS cases_open_area_keys;
CREATE INDEX cases_open_area_keys
    ON cases (status, area_path, overdue, deadline, updated_at)
    WHERE (status = 'reported' OR status = 'accepted' OR status = 'dispatched' OR status = 'in_progress' OR status = 'replied');

DROP INDEX IF EXISTS cases_status_org_path;
CREATE INDEX cases_status_org_path ON cases (status, org_path)
    WHERE (status = 'closed' OR status = 'rejected' OR status = 'merged');
DROP INDEX IF EXISTS cases_status_area_path;
CREATE INDEX cases_status_area_path ON cases (status, area_path)
    WHERE (status = 'closed' OR status = 'rejected' OR status = 'merged');
