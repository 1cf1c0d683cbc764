-- issue 16: the shared state of every instance, as the SQLite files hold it (bot/records.py,
-- bot/session.py, web/staff.py, bot/accounts.py), so the same SQL reads both.
-- Times stay ISO 8601 text (UTC) and epoch seconds, as in SQLite: the modules compare them as such.
-- "rowid" is SQLite's implicit insertion order, made explicit: "ORDER BY rowid" reads the same on both.

CREATE TABLE query_log (
    rowid bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id text PRIMARY KEY,             -- time-ordered UUID made in the process, returned with the answer
    ts text NOT NULL,                -- UTC, ISO 8601
    query text NOT NULL,             -- masked
    band text NOT NULL,
    faq_id text,
    candidates text NOT NULL,        -- JSON list of FAQ ids
    confidence double precision
);
CREATE INDEX query_log_ts ON query_log (ts);

CREATE TABLE feedback (
    rowid bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id text PRIMARY KEY,
    ts text NOT NULL,
    faq_id text NOT NULL,
    helpful integer NOT NULL,        -- 1 役に立った, 0 役に立たなかった
    comment text,                    -- masked
    query_id text                    -- no foreign key: the query row may come from another instance's writer a moment later
);
CREATE INDEX feedback_ts ON feedback (ts);

CREATE TABLE sessions (
    id text PRIMARY KEY,
    last_seen double precision NOT NULL,  -- seconds since the epoch
    state text NOT NULL                   -- JSON of Session, turns masked
);
CREATE INDEX sessions_last_seen ON sessions (last_seen);

CREATE TABLE staff_sessions (
    id_hash text PRIMARY KEY,        -- sha256 of the cookie: the database never holds a usable login
    expires double precision NOT NULL,
    csrf text NOT NULL
);

CREATE TABLE staff_accounts (
    name text PRIMARY KEY,
    role text NOT NULL,
    password_hash text NOT NULL,     -- argon2id
    must_change integer NOT NULL,
    disabled integer NOT NULL DEFAULT 0,
    created text NOT NULL
);

CREATE TABLE staff_session_owner (
    id_hash text PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE audit_log (
    rowid bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    ts text NOT NULL,
    who text NOT NULL,
    action text NOT NULL,
    faq_id text,
    detail text
);
