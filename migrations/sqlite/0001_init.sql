-- The initial schema of the embedded SQLite store.
--
-- Conventions (shared with the PostgreSQL store's own migrations):
-- * instants are INTEGER unix milliseconds (UTC); local days are TEXT 'YYYY-MM-DD';
-- * org paths are materialized ('/city/street/…/'), so "in this subtree" is the range
--   path >= :p AND path < subtree_end(:p), answered from a plain B-tree index;
-- * a case is one row: the indexed fields as columns, the whole domain case as JSON in
--   `doc` (the document is authoritative, the columns are derived from it on every write).

CREATE TABLE orgs (
    code     TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    level    TEXT NOT NULL,
    parent   TEXT REFERENCES orgs (code),
    path     TEXT NOT NULL UNIQUE,
    -- GeoJSON geometry, when the org has a boundary.
    boundary TEXT
);
CREATE INDEX orgs_parent ON orgs (parent, code);
CREATE INDEX orgs_level ON orgs (level);

CREATE TABLE tower_groups (
    code            TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    tier            INTEGER NOT NULL CHECK (tier BETWEEN 1 AND 3),
    parent          TEXT,
    org             TEXT NOT NULL,
    org_path        TEXT NOT NULL,
    commander_name  TEXT NOT NULL,
    commander_phone TEXT,
    members         INTEGER NOT NULL
);
CREATE INDEX tower_groups_org_path ON tower_groups (org_path, code);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL,
    org           TEXT NOT NULL REFERENCES orgs (code),
    org_path      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX users_org_path ON users (org_path);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
-- Expired sessions are purged by range; the user index serves the foreign key.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- One official holiday arrangement per year, as the domain's CalendarYear JSON.
CREATE TABLE calendar_years (
    year INTEGER PRIMARY KEY,
    json TEXT NOT NULL
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The bytes live in files (attachments/<first 2 hex>/<id>), written before the row commits.
CREATE TABLE attachments (
    id           TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    uploaded_by  TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE cases (
    id             INTEGER PRIMARY KEY,
    number         TEXT NOT NULL UNIQUE,
    status         TEXT NOT NULL,
    version        INTEGER NOT NULL,
    channel        TEXT NOT NULL,
    category       TEXT,
    area_path      TEXT NOT NULL,
    org_path       TEXT NOT NULL,
    created_by     TEXT,
    reporter_phone TEXT,
    deadline       INTEGER,
    -- The deadline sort key. Cases without a deadline sort after all others, among
    -- themselves by id (2^62 + id): distinct keys, so that a page cursor seeks straight to its
    -- place instead of skipping through one huge group of equal keys.
    deadline_key   INTEGER GENERATED ALWAYS AS (coalesce(deadline, 4611686018427387904 + id)) VIRTUAL,
    overdue        INTEGER NOT NULL,
    due_at         INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    doc            TEXT NOT NULL
);
-- Subtree lookups by status: "open cases in my subtree" seeks each open status's range and
-- reads index entries only; without a status filter every status is one seek.
CREATE INDEX cases_status_org_path ON cases (status, org_path);
CREATE INDEX cases_status_area_path ON cases (status, area_path);
CREATE INDEX cases_created_by ON cases (created_by) WHERE created_by IS NOT NULL;
CREATE INDEX cases_reporter_phone ON cases (reporter_phone) WHERE reporter_phone IS NOT NULL;
-- The sort orders of the case list (the table itself serves newest first) ...
CREATE INDEX cases_deadline ON cases (deadline_key, id);
CREATE INDEX cases_updated ON cases (updated_at, id);
-- ... and the same orders over open cases only, a small fraction of all once the store has
-- history: work queues ("open cases by deadline") walk these instead of wading through years
-- of closed cases. They also carry what visibility is decided on, so that a walk reads the
-- rows of matching cases only. Queries repeat this exact condition so that SQLite uses them.
CREATE INDEX cases_open_newest ON cases (id, status, org_path, area_path, created_by)
    WHERE status IN ('reported', 'accepted', 'dispatched', 'in_progress', 'replied');
CREATE INDEX cases_open_deadline ON cases (deadline_key, id, status, org_path, area_path, created_by)
    WHERE status IN ('reported', 'accepted', 'dispatched', 'in_progress', 'replied');
CREATE INDEX cases_open_updated ON cases (updated_at, id, status, org_path, area_path, created_by)
    WHERE status IN ('reported', 'accepted', 'dispatched', 'in_progress', 'replied');
-- The overdue sweep reads only cases that fell due; most cases never are.
CREATE INDEX cases_due_at ON cases (due_at) WHERE due_at IS NOT NULL;

-- The last case number handed out per local day.
CREATE TABLE case_numbers (
    day      TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
);

CREATE TABLE idempotency (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    case_id     INTEGER NOT NULL REFERENCES cases (id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
);

-- The timeline: one hash chain over the whole store; `id` is the position in the chain.
CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    case_id   INTEGER NOT NULL REFERENCES cases (id),
    seq       INTEGER NOT NULL,
    action    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    at        INTEGER NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    UNIQUE (case_id, seq)
);
-- Append-only in the database itself, not just by convention of the code.
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

-- The last event of the chain (id 0 and the genesis hash while there is none). Checking the
-- chain against it detects deleted newest events, which no link could reveal.
CREATE TABLE chain_head (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    id        INTEGER NOT NULL,
    hash      TEXT NOT NULL
);
INSERT INTO chain_head (singleton, id, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Measures, attributed to a case's area org and every ancestor of it.
CREATE TABLE rollup_counters (
    org            TEXT NOT NULL,
    day            TEXT NOT NULL,
    received       INTEGER NOT NULL DEFAULT 0,
    closed         INTEGER NOT NULL DEFAULT 0,
    closed_on_time INTEGER NOT NULL DEFAULT 0,
    rework         INTEGER NOT NULL DEFAULT 0,
    rated          INTEGER NOT NULL DEFAULT 0,
    satisfied      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org, day)
);

CREATE TABLE rollup_gauges (
    org TEXT NOT NULL,
    key TEXT NOT NULL,
    n   INTEGER NOT NULL,
    PRIMARY KEY (org, key)
);
