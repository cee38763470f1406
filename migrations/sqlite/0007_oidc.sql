-- OpenID Connect sign-ins in flight (SQLite). Keep in step with ../postgres/0007_oidc.sql.

-- One row per browser sent to an OpenID provider: the callback finds it by its state (stored
-- hashed) and deletes it, so a state works once, on any instance.
CREATE TABLE oidc_logins (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    state_hash    TEXT NOT NULL,
    connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to     TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    CONSTRAINT oidc_logins_state_key UNIQUE (state_hash)
);
