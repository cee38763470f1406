-- SCIM bearer tokens (SQLite). Keep in step with ../postgres/0006_scim_tokens.sql.

-- An org's identity provider authenticates to /scim/v2/{org} with one of these; the token
-- alone decides the org. Each belongs to the SSO connection of the same identity provider,
-- whose group mappings apply to the groups it pushes and whose sign-ins find the people it
-- pushed.
CREATE TABLE scim_tokens (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
        org_id         INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    connection_id  INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    display_prefix TEXT NOT NULL,
    secret_hash    TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    last_used_at   TEXT,
    revoked_at     TEXT,
    CONSTRAINT scim_tokens_secret_hash_key UNIQUE (secret_hash)
);
CREATE INDEX scim_tokens_org_idx ON scim_tokens(org_id);
