-- What Single Logout needs of a SAML sign-in (PostgreSQL). Keep in step with
-- ../sqlite/0012_saml_sessions.sql.

-- The IdP's name for the person and its session, by the rollcall session they started
-- (its secret's hash), so signing out can tell the IdP which session ends.
CREATE TABLE saml_sessions (
    session_hash   TEXT PRIMARY KEY,
    org_id         BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    connection_id  BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    name_id        TEXT NOT NULL,
    name_id_format TEXT,
    session_index  TEXT,
    expires_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX saml_sessions_expiry_idx ON saml_sessions(expires_at);
