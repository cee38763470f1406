-- rollcall foundation schema (SQLite). Keep in step with ../postgres/0001_foundation.sql:
-- same tables, columns and constraint names; only the types differ.

CREATE TABLE organizations (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    slug            TEXT NOT NULL,
    name            TEXT NOT NULL,
    require_2fa     BOOLEAN NOT NULL DEFAULT FALSE,
    sso_enforced    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CONSTRAINT organizations_slug_key UNIQUE (slug)
);

CREATE TABLE users (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    email            TEXT NOT NULL,
    -- Lower-cased and trimmed in Rust, so uniqueness is the same on both backends.
    email_normalized TEXT NOT NULL,
    display_name     TEXT,
    given_name       TEXT,
    family_name      TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email_normalized)
);

CREATE TABLE memberships (
    org_id      INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    is_admin    BOOLEAN NOT NULL DEFAULT FALSE,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    source      TEXT NOT NULL CHECK (source IN ('invitation', 'sso', 'scim', 'manual', 'bootstrap')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships(user_id);

CREATE TABLE teams (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id          INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    name_normalized TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CONSTRAINT teams_org_name_key UNIQUE (org_id, name_normalized)
);

CREATE TABLE team_memberships (
    team_id     INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    org_id      INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('manual', 'sso', 'scim', 'invitation')),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (team_id, user_id),
    -- A team membership cannot outlive the org membership it hangs on.
    FOREIGN KEY (org_id, user_id) REFERENCES memberships(org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX team_memberships_member_idx ON team_memberships(org_id, user_id);

CREATE TABLE sessions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_hash   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    revoked_at    TEXT,
    CONSTRAINT sessions_secret_hash_key UNIQUE (secret_hash)
);
CREATE INDEX sessions_user_idx ON sessions(user_id);

CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    -- First characters of the token, shown in listings so a user can tell tokens apart.
    display_prefix TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    expires_at    TEXT,
    revoked_at    TEXT,
    CONSTRAINT api_tokens_secret_hash_key UNIQUE (secret_hash)
);
CREATE INDEX api_tokens_user_idx ON api_tokens(user_id);

CREATE TABLE audit_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       INTEGER REFERENCES organizations(id) ON DELETE CASCADE,
    actor_user_id INTEGER,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT,
    before_state TEXT,
    after_state  TEXT,
    request_id   TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX audit_events_org_idx ON audit_events(org_id, id);
