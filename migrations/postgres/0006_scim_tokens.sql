-- SCIM bearer tokens (PostgreSQL). Keep in step with ../sqlite/0006_scim_tokens.sql.

-- An org's identity provider authenticates to /scim/v2/{org} with one of these; the token
-- alone decides the org. Each belongs to the SSO connection of the same identity provider,
-- whose group mappings apply to the groups it pushes and whose sign-ins find the people it
-- pushed.
CREATE TABLE scim_tokens (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        org_id         BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    connection_id  BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    display_prefix TEXT NOT NULL,
    secret_hash    TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    last_used_at   TIMESTAMPTZ,
    revoked_at     TIMESTAMPTZ,
    CONSTRAINT scim_tokens_secret_hash_key UNIQUE (secret_hash)
);
CREATE INDEX scim_tokens_org_idx ON scim_tokens(org_id);
