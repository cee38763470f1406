-- OpenID Connect sign-ins in flight (PostgreSQL). Keep in step with ../sqlite/0007_oidc.sql.

-- One row per browser sent to an OpenID provider: the callback finds it by its state (stored
-- hashed) and deletes it, so a state works once, on any instance.
CREATE TABLE oidc_logins (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state_hash    TEXT NOT NULL,
    connection_id BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to     TEXT NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT oidc_logins_state_key UNIQUE (state_hash)
);
