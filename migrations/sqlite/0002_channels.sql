-- Channels: night visits, hotline calls, and the case columns their lists filter on.
--
-- The new case columns are derived from the document on every write, like the others;
-- existing rows are filled in here from their documents.

ALTER TABLE cases ADD COLUMN lat REAL;
ALTER TABLE cases ADD COLUMN lng REAL;
ALTER TABLE cases ADD COLUMN source_key TEXT;
ALTER TABLE cases ADD COLUMN visit_id INTEGER;

UPDATE cases SET
    lat        = json_extract(doc, '$.location.lat'),
    lng        = json_extract(doc, '$.location.lng'),
    source_key = json_extract(doc, '$.source_key'),
    visit_id   = json_extract(doc, '$.visit_id');

-- Repeats of one source join its latest open case.
CREATE INDEX cases_source_key ON cases (source_key, created_at) WHERE source_key IS NOT NULL;
-- The concerns raised on one night visit.
CREATE INDEX cases_visit_id ON cases (visit_id) WHERE visit_id IS NOT NULL;
-- Nearby cases: a latitude range, longitude checked on the index entries.
CREATE INDEX cases_lat_lng ON cases (lat, lng) WHERE lat IS NOT NULL;
-- Cases reported within a period.
CREATE INDEX cases_created ON cases (created_at, id);

-- Updates of all cases within a period (Open311 service request updates).
CREATE INDEX events_at ON events (at);

-- Night visits (夜访日记); concerns raised become cases with `visit_id` set.
CREATE TABLE night_visits (
    id         INTEGER PRIMARY KEY,
    org        TEXT NOT NULL,
    org_path   TEXT NOT NULL,
    group_name TEXT NOT NULL,
    leader     TEXT NOT NULL,
    visited_at INTEGER NOT NULL,
    place      TEXT NOT NULL,
    households INTEGER NOT NULL,
    people_met INTEGER NOT NULL,
    notes      TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX night_visits_org_path ON night_visits (org_path, id);

-- Hotline calls taken by operators (热线受理记录).
CREATE TABLE hotline_calls (
    id       INTEGER PRIMARY KEY,
    phone    TEXT NOT NULL,
    operator TEXT NOT NULL,
    org_path TEXT NOT NULL,
    at       INTEGER NOT NULL,
    summary  TEXT NOT NULL,
    case_id  INTEGER REFERENCES cases (id)
);
CREATE INDEX hotline_calls_phone ON hotline_calls (phone, id);
CREATE INDEX hotline_calls_case_id ON hotline_calls (case_id) WHERE case_id IS NOT NULL;
